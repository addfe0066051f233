"""Score matching and NCE (jaxdl.generative.score_matching / nce) against Gaussian closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.generative import nce, score_matching

MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.8, 0.3], [0.3, 0.5]])


def linear_score(params, x):
    """ψ(x) = A x + b, the score family of Gaussians."""
    return x @ params["A"].T + params["b"]


def _fit(loss, params, steps=600, lr=0.05):
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))  # decay damps the minibatch noise

    def body(carry, key):
        p, s = carry
        g = jax.grad(loss)(p, key)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), jax.random.split(jax.random.key(9), steps))
    return params


def test_dsm_recovers_the_score_of_the_noised_gaussian():
    sigma = 0.3
    x = jax.random.multivariate_normal(jax.random.key(0), MEAN, COV, (8000,))
    init = {"A": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
    params = _fit(lambda p, k: score_matching.dsm_loss(linear_score, p, x, k, sigma), init, steps=500)
    # minimiser: ∇ log N(m, S + σ² I) = -(S + σ² I)⁻¹ (x - m), i.e. A = -(S+σ²I)⁻¹, b = -A m
    a_true = -np.linalg.inv(np.asarray(COV) + sigma**2 * np.eye(2))
    np.testing.assert_allclose(np.asarray(params["A"]), a_true, atol=0.08)
    np.testing.assert_allclose(np.asarray(params["b"]), -a_true @ np.asarray(MEAN), atol=0.08)


def test_implicit_score_matching_matches_the_gaussian_mle():
    """For the Gaussian score family Hyvärinen's estimator is the sample mean / inverse sample covariance."""
    x = jax.random.multivariate_normal(jax.random.key(1), MEAN, COV, (1000,))
    init = {"A": -jnp.eye(2), "b": jnp.zeros(2)}
    params = _fit(lambda p, k: score_matching.implicit_score_matching_loss(linear_score, p, x), init, steps=500,
                  lr=0.1)
    xs = np.asarray(x, np.float64)
    prec = np.linalg.inv(np.cov(xs.T, bias=True))
    np.testing.assert_allclose(np.asarray(params["A"]), -prec, atol=0.02)
    np.testing.assert_allclose(np.asarray(params["b"]), prec @ xs.mean(0), atol=0.02)
    # the loss equals E||ψ_θ - ψ||²/2 up to a θ-free constant: compare two θ's against the explicit form.
    psi_true = lambda z: -(z - MEAN) @ jnp.linalg.inv(COV).T  # noqa: E731
    big = jax.random.multivariate_normal(jax.random.key(2), MEAN, COV, (40000,))
    thetas = [{"A": -jnp.eye(2), "b": jnp.zeros(2)}, {"A": -2 * jnp.eye(2), "b": jnp.ones(2)}]
    ism = [float(score_matching.implicit_score_matching_loss(linear_score, t, big)) for t in thetas]
    explicit = [float(0.5 * jnp.mean(jnp.sum((linear_score(t, big) - psi_true(big)) ** 2, 1))) for t in thetas]
    np.testing.assert_allclose(ism[1] - ism[0], explicit[1] - explicit[0], rtol=0.03)


def test_score_matching_bad_inputs():
    with pytest.raises(ValueError, match="^dsm_loss:"):
        score_matching.dsm_loss(linear_score, None, jnp.zeros((3, 2)), jax.random.key(0), 0.0)
    with pytest.raises(ValueError, match="^implicit_score_matching_loss:"):
        score_matching.implicit_score_matching_loss(linear_score, None, jnp.zeros(3))


def _noise_log_prob(x, scale=2.0):
    return jnp.sum(-0.5 * (x / scale) ** 2 - 0.5 * math.log(2 * math.pi * scale**2), axis=1)


def test_nce_recovers_the_log_normaliser():
    """p̄_θ(x) = exp(-||x - μ||²/(2 s²)) with log Z = d/2 log(2π s²); NCE's -log α → log Z."""
    scale_data = 0.7
    x_data = MEAN + scale_data * jax.random.normal(jax.random.key(0), (10000, 2))
    x_noise = 2.0 * jax.random.normal(jax.random.key(1), (20000, 2))

    def log_unnormalised(theta, x):
        return -0.5 * jnp.sum((x - theta["mu"]) ** 2, axis=1) * jnp.exp(-2 * theta["log_s"])

    params = {"theta": {"mu": jnp.zeros(2), "log_s": jnp.array(0.0)}, "log_alpha": jnp.array(0.0)}
    loss = lambda p, k: nce.nce_loss(log_unnormalised, p["theta"], p["log_alpha"], x_data, x_noise,  # noqa: E731
                                     _noise_log_prob)
    params = _fit(loss, params, steps=500, lr=0.1)
    s = float(jnp.exp(params["theta"]["log_s"]))
    np.testing.assert_allclose(s, scale_data, rtol=0.03)
    np.testing.assert_allclose(np.asarray(params["theta"]["mu"]), np.asarray(MEAN), atol=0.03)
    log_z = math.log(2 * math.pi * s**2)  # d = 2
    np.testing.assert_allclose(-float(params["log_alpha"]), log_z, atol=0.05)
    # with θ fixed at the truth only α is learned: -log α = log Z(θ) exactly in the limit.
    fixed = {"mu": MEAN, "log_s": jnp.array(math.log(scale_data))}
    only_alpha = _fit(lambda a, k: nce.nce_loss(log_unnormalised, fixed, a, x_data, x_noise, _noise_log_prob),
                      jnp.array(0.0), steps=300, lr=0.1)
    np.testing.assert_allclose(-float(only_alpha), math.log(2 * math.pi * scale_data**2), atol=0.04)


def test_nce_bad_inputs():
    with pytest.raises(ValueError, match="^nce_loss:"):
        nce.nce_loss(lambda t, x: x[:, 0], None, 0.0, jnp.zeros((3, 2)), jnp.zeros((3, 3)), _noise_log_prob)
    with pytest.raises(ValueError, match="^nce_logits:"):
        nce.nce_loss(lambda t, x: x, None, 0.0, jnp.zeros((3, 2)), jnp.zeros((3, 2)), _noise_log_prob)
