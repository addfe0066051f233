"""Bayesian deep learning with stax models: prior, likelihood, posterior, predictive.

Seed formulas, for a model ``f(theta)`` (any ``apply_fn(params, x)``) and data ``S``:

* prior ``theta ~ N(0, sigma^2 I)``: ``log p(theta) = -|theta|^2 / (2 sigma^2) + const``
  (weight decay ``1 / sigma^2``);
* likelihood: Gaussian ``y ~ N(f(theta)(x), delta^2 I)`` or categorical
  ``y ~ softmax(f(theta)(x))``;
* posterior ``-log p(theta | S) = E(theta) + const``; for the Gaussian likelihood
  ``E(theta) = |y - f|^2 / (2 delta^2) + |theta|^2 / (2 sigma^2)``;
* predictive ``f_bar(x) = int f(theta)(x) p(theta | S) d theta``, estimated by the
  average over posterior samples;
* Bayesian ensembling ``f_bar(x) = sum_j exp(-E(theta_j)) f(theta_j)(x) / sum_j exp(-E(theta_j))``
  for models ``theta_j`` that are *not* posterior samples (independent fits or prior
  draws); MCMC samples are already posterior-distributed and get equal weights.

The log-densities include their normalising constants, so that they are true
log-densities (of the prior and of the data given ``theta``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.samplers.base import (
    PyTree,
    check_callable,
    check_finite_tree,
    check_positive,
    tree_sq_norm,
)

Likelihood = str  # "categorical" or "gaussian"
_LIKELIHOODS = ("categorical", "gaussian")


def _check_likelihood(name: str, likelihood: Any) -> None:
    if likelihood not in _LIKELIHOODS:
        raise ValueError(f"{name}: expected likelihood in {_LIKELIHOODS}, got {likelihood!r}")


def _num_scalars(tree: PyTree) -> int:
    return sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree.leaves(tree))


def log_prior_fn(prior_std: float = 1.0) -> Callable[[PyTree], jax.Array]:
    """``params -> log N(params; 0, prior_std^2 I)`` (the weight-decay prior)."""
    check_positive("log_prior_fn", "prior_std", prior_std)

    def log_prior(params: PyTree) -> jax.Array:
        num = _num_scalars(params)
        return -0.5 * tree_sq_norm(params) / prior_std**2 - 0.5 * num * np.log(
            2 * np.pi * prior_std**2
        )

    return log_prior


def _log_likelihood_of_outputs(outputs, y, likelihood, noise_std):
    """Per-example log-likelihood of ``y`` given model outputs ``f[n, k]``; returns ``f[n]``."""
    if likelihood == "categorical":
        log_probs = jax.nn.log_softmax(outputs, axis=-1)
        return jnp.take_along_axis(log_probs, y[:, None].astype(jnp.int32), axis=-1)[:, 0]
    y = jnp.reshape(y, outputs.shape)
    squared = jnp.sum(jnp.square(y - outputs).reshape(outputs.shape[0], -1), axis=-1)
    dim = int(np.prod(outputs.shape[1:]))
    return -0.5 * squared / noise_std**2 - 0.5 * dim * np.log(2 * np.pi * noise_std**2)


def log_likelihood_fn(
    apply_fn: Callable, likelihood: Likelihood = "categorical", noise_std: float = 1.0
) -> Callable[[PyTree, tuple[jax.Array, jax.Array]], jax.Array]:
    """``(params, (x_i, y_i)) -> log p(y_i | x_i, params)`` for ONE datum.

    The form :func:`jaxdl.samplers.sgld` and :func:`~jaxdl.samplers.sghmc` expect,
    with ``data = (x, y)``. ``y_i`` is an integer label (categorical) or a target
    of the output's shape (Gaussian with standard deviation ``noise_std``).
    """
    check_callable("log_likelihood_fn", "apply_fn", apply_fn)
    _check_likelihood("log_likelihood_fn", likelihood)
    check_positive("log_likelihood_fn", "noise_std", noise_std)

    def log_likelihood(params: PyTree, datum) -> jax.Array:
        x, y = datum
        outputs = apply_fn(params, x[None])
        return _log_likelihood_of_outputs(outputs, jnp.asarray(y)[None], likelihood, noise_std)[0]

    return log_likelihood


def log_posterior_fn(
    apply_fn: Callable,
    x,
    y,
    *,
    prior_std: float = 1.0,
    likelihood: Likelihood = "categorical",
    noise_std: float = 1.0,
) -> Callable[[PyTree], jax.Array]:
    """``params -> log p(params) + sum_i log p(y_i | x_i, params)`` over the full data.

    ``= -E(params)`` up to the evidence ``log p(S)``. ``x: f[n, ...]``; ``y: i[n]``
    labels (categorical) or ``f[n, ...]`` targets (Gaussian).
    """
    check_callable("log_posterior_fn", "apply_fn", apply_fn)
    _check_likelihood("log_posterior_fn", likelihood)
    check_positive("log_posterior_fn", "noise_std", noise_std)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"log_posterior_fn: expected x and y with the same number of rows, "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    check_finite_tree("log_posterior_fn", "x", x, "x")
    check_finite_tree("log_posterior_fn", "y", y, "y")
    log_prior = log_prior_fn(prior_std)

    def log_posterior(params: PyTree) -> jax.Array:
        outputs = apply_fn(params, x)
        return log_prior(params) + jnp.sum(
            _log_likelihood_of_outputs(outputs, y, likelihood, noise_std)
        )

    return log_posterior


def ensemble_weights(energies) -> jax.Array:
    """The seeds' Bayesian-ensembling weights ``exp(-E_j) / sum_k exp(-E_k)`` (stable softmax).

    ``energies: f[m]`` with ``E_j = -log p(theta_j | S)`` up to a common constant.
    """
    energies = jnp.asarray(energies)
    if energies.ndim != 1:
        raise ValueError(f"ensemble_weights: expected energies of shape (m,), got {energies.shape}")
    return jax.nn.softmax(-energies)


def posterior_predictive(
    apply_fn: Callable,
    samples: PyTree,
    x,
    *,
    likelihood: Likelihood = "categorical",
    noise_std: float = 1.0,
    weights=None,
):
    """Predictive distribution at inputs ``x`` averaged over parameter samples.

    Args:
      apply_fn: the model.
      samples: params pytree whose leaves carry a leading sample axis ``m`` (e.g.
        ``states.position`` from :func:`~jaxdl.samplers.sample`).
      x: ``f[n, ...]`` inputs.
      likelihood: ``"categorical"`` or ``"gaussian"``.
      noise_std: the Gaussian likelihood's ``delta``.
      weights: ``f[m]`` summing to one (e.g. :func:`ensemble_weights`); ``None``
        weighs samples equally.

    Returns:
      categorical: class probabilities ``f[n, classes]``;
      gaussian: ``(mean, variance)`` of ``y`` at ``x``, each ``f[n, ...]``
      (variance = spread of the model outputs + ``noise_std^2``).
    """
    check_callable("posterior_predictive", "apply_fn", apply_fn)
    _check_likelihood("posterior_predictive", likelihood)
    sizes = {jnp.shape(leaf)[0] for leaf in jax.tree.leaves(samples)}
    if len(sizes) != 1:
        raise ValueError(
            "posterior_predictive: expected samples whose leaves share a leading sample "
            f"axis, got leading sizes {sorted(sizes)}"
        )
    (num_samples,) = sizes
    if weights is None:
        weights = jnp.full((num_samples,), 1.0 / num_samples)
    weights = jnp.asarray(weights)
    if weights.shape != (num_samples,):
        raise ValueError(
            f"posterior_predictive: expected weights of shape ({num_samples},), got {weights.shape}"
        )
    outputs = jax.vmap(apply_fn, in_axes=(0, None))(samples, jnp.asarray(x))  # f[m, n, ...]

    def average(values):
        return jnp.tensordot(weights.astype(values.dtype), values, axes=1)

    if likelihood == "categorical":
        return average(jax.nn.softmax(outputs, axis=-1))
    mean = average(outputs)
    variance = average(jnp.square(outputs - mean)) + noise_std**2
    return mean, variance
