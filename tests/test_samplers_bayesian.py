"""Bayesian deep-learning helpers against closed forms and scipy: prior and likelihood
log-densities, the log-posterior of a linear stax model (a Gaussian with known mean
and covariance), the posterior predictive and the exp(-E) ensembling weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxdl import samplers, stax

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 4)).astype(np.float32)


def test_log_prior_is_the_gaussian_log_density():
    params = {"a": jnp.asarray(RNG.normal(size=(3, 2))), "b": jnp.asarray(RNG.normal(size=4))}
    expected = sum(stats.norm.logpdf(np.asarray(x), scale=2.5).sum() for x in jax.tree.leaves(params))
    np.testing.assert_allclose(samplers.log_prior_fn(2.5)(params), expected, rtol=1e-5)


def test_log_likelihoods_match_scipy():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(5, b_std=1.0), stax.Tanh(), stax.Dense(3, b_std=1.0))
    _, params = init_fn(jax.random.key(0), (-1, 4))
    logits = np.asarray(apply_fn(params, X), np.float64)
    labels = RNG.integers(0, 3, size=12)
    categorical = samplers.log_likelihood_fn(apply_fn, "categorical")
    expected = logits[np.arange(12), labels] - np.log(np.exp(logits).sum(axis=1))
    got = jax.jit(jax.vmap(categorical, in_axes=(None, 0)))(params, (X, labels))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    targets = RNG.normal(size=(12, 3)).astype(np.float32)
    gaussian = samplers.log_likelihood_fn(apply_fn, "gaussian", noise_std=0.7)
    expected = stats.norm.logpdf(targets, loc=logits, scale=0.7).sum(axis=1)
    got = jax.jit(jax.vmap(gaussian, in_axes=(None, 0)))(params, (X, targets))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # The full-batch log-posterior is prior + the sum of the per-datum terms.
    log_post = samplers.log_posterior_fn(apply_fn, X, labels, prior_std=2.0)
    per_datum = jax.jit(jax.vmap(categorical, in_axes=(None, 0)))(params, (X, labels))
    np.testing.assert_allclose(
        jax.jit(log_post)(params),
        jax.jit(samplers.log_prior_fn(2.0))(params) + per_datum.sum(),
        rtol=1e-5,
    )


def test_linear_stax_log_posterior_is_the_closed_form_gaussian():
    with jax.enable_x64(True):
        init_fn, apply_fn, _ = stax.Dense(1, W_std=1.0)  # f(x) = x W / sqrt(4)
        y = X @ np.array([1.0, -0.5, 0.2, 0.0]) + 0.3 * RNG.normal(size=12)
        log_post = samplers.log_posterior_fn(
            apply_fn, X.astype(np.float64), y[:, None], prior_std=1.5, likelihood="gaussian", noise_std=0.3
        )
        design = X.astype(np.float64) / 2.0
        precision = np.eye(4) / 1.5**2 + design.T @ design / 0.3**2
        mean = np.linalg.solve(precision, design.T @ y / 0.3**2)
        posterior = stats.multivariate_normal(mean, np.linalg.inv(precision))
        thetas = [mean + RNG.normal(size=4) * 0.1 for _ in range(3)]
        got = [float(log_post({"W": jnp.asarray(t[:, None])})) for t in thetas]
        expected = [posterior.logpdf(t) for t in thetas]
        np.testing.assert_allclose(np.diff(got), np.diff(expected), rtol=1e-8)


def test_posterior_predictive_averages_over_samples():
    init_fn, apply_fn, _ = stax.Dense(3, b_std=1.0)
    keys = jax.random.split(jax.random.key(1), 5)
    samples = jax.vmap(lambda k: init_fn(k, (-1, 4))[1])(keys)
    outputs = np.stack([np.asarray(samples["b"][j]) + X @ np.asarray(samples["W"][j]) / 2.0 for j in range(5)])
    softmax = np.exp(outputs) / np.exp(outputs).sum(-1, keepdims=True)
    np.testing.assert_allclose(
        samplers.posterior_predictive(apply_fn, samples, X), softmax.mean(0), rtol=1e-5
    )
    weights = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    np.testing.assert_allclose(
        samplers.posterior_predictive(apply_fn, samples, X, weights=weights),
        np.tensordot(weights, softmax, axes=1),
        rtol=1e-5,
    )
    mean, variance = samplers.posterior_predictive(
        apply_fn, samples, X, likelihood="gaussian", noise_std=0.5
    )
    np.testing.assert_allclose(mean, outputs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance, outputs.var(0) + 0.25, rtol=1e-4)


def test_ensemble_weights_are_normalised_boltzmann_weights():
    energies = np.array([3.0, 1.0, 2.0])
    expected = np.exp(-energies) / np.exp(-energies).sum()
    np.testing.assert_allclose(samplers.ensemble_weights(energies), expected, rtol=1e-6)
    huge = samplers.ensemble_weights(np.array([1e4, 1e4 + 1.0]))  # exp(-1e4) underflows
    np.testing.assert_allclose(huge, [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))], rtol=1e-5)


def test_bad_input_raises_clearly():
    _, apply_fn, _ = stax.Dense(3)
    with pytest.raises(ValueError, match="log_likelihood_fn: expected likelihood in"):
        samplers.log_likelihood_fn(apply_fn, "poisson")
    with pytest.raises(ValueError, match="log_posterior_fn: expected x and y with the same number of rows"):
        samplers.log_posterior_fn(apply_fn, X, np.zeros(5, int))
    with pytest.raises(ValueError, match="log_prior_fn: expected prior_std > 0"):
        samplers.log_prior_fn(0.0)
    with pytest.raises(ValueError, match="ensemble_weights: expected energies of shape"):
        samplers.ensemble_weights(np.ones((2, 2)))
    with pytest.raises(TypeError, match="posterior_predictive: expected apply_fn to be callable"):
        samplers.posterior_predictive(None, {}, X)
