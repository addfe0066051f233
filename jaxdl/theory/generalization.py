"""Generalisation as measurements: random features, min-norm regression, bias-variance.

Seed formulas and statements implemented here:

* Bias-variance trade-off: ``E[(f(x) − y)²] = Bias² + Var + σ²``, the expectation over
  training sets (each giving a fitted ``f``), test inputs and label noise. With
  ``f̄(x) = E_S[f_S(x)]`` and ``y = f*(x) + ε``, ``Var(ε) = σ²``:
  ``Bias² = E_x[(f̄(x) − f*(x))²]`` and ``Var = E_x E_S[(f_S(x) − f̄(x))²]``
  (:func:`bias_variance_decomposition`).
* Double descent: "test error decreases, rises (at the interpolation threshold), and
  then decreases again" as the number of parameters ``p`` grows past the number of
  training samples ``n``. The cleanest model with the peak at ``p = n``: least squares on
  ``p`` random features ``φ(x) = relu(W x / √d)`` (:func:`random_features`), or on the
  ``p`` NTK features ``∂f(x)/∂θ`` of a small net (:func:`ntk_features`), solved by the
  minimum-norm least-squares solution ``β = Φ⁺ y`` (:func:`min_norm_regression`): for
  ``p < n`` it is ordinary least squares, for ``p ≥ n`` the interpolant of smallest
  ``‖β‖``, and at ``p = n`` the square system is ill-conditioned, so ``‖β‖`` and the
  test error blow up.

References: Belkin, Hsu, Ma, Mandal (2019), "Reconciling modern machine learning practice
and the bias-variance trade-off"; Hastie, Montanari, Rosset, Tibshirani (2022),
"Surprises in high-dimensional ridgeless least squares interpolation" (the Gaussian-design
closed form used in the tests: OLS with ``n > d + 1`` samples of ``x ~ N(0, I_d)`` has
``Bias² = 0`` and ``Var = σ² d / (n − d − 1)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxdl.stax.layer import check_key

_ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.scipy.special.erf,
    "cos": jnp.cos,
    "linear": lambda z: z,
}


def _check_positive_int(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: expected {name} to be a positive int, got {value!r}")
    return int(value)


def _finite_array(fn: str, name: str, value, ndims: tuple[int, ...]) -> jax.Array:
    array = jnp.asarray(value)
    if array.ndim not in ndims:
        raise ValueError(f"{fn}: expected {name} with {' or '.join(map(str, ndims))} dimensions, "
                         f"got shape {array.shape}")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(array))):
        raise ValueError(f"{fn}: expected finite {name}, got non-finite entries")
    return array


def random_features(key, input_dim: int, num_features: int, *, activation: str = "relu",
                    bias: bool = False) -> Callable:
    """A random-features map ``x ↦ φ(x W / √d (+ b))``, f[..., d] → f[..., p].

    ``W`` (d × p) has i.i.d. N(0, 1) entries (and ``b`` ~ N(0, 1) when ``bias``), drawn
    once from ``key``; ``activation`` is one of ``relu, tanh, erf, cos, linear``. Only the
    linear read-out on top of these features is trained (:func:`min_norm_regression`).
    """
    fn = "random_features"
    key = check_key(fn, key)
    input_dim = _check_positive_int(fn, "input_dim", input_dim)
    num_features = _check_positive_int(fn, "num_features", num_features)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{fn}: expected activation in {sorted(_ACTIVATIONS)}, got {activation!r}")
    phi = _ACTIVATIONS[activation]
    w_key, b_key = jax.random.split(key)
    weights = jax.random.normal(w_key, (input_dim, num_features)) / np.sqrt(input_dim)
    offset = jax.random.normal(b_key, (num_features,)) if bias else jnp.zeros((num_features,))

    def feature_map(x):
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != input_dim:
            raise ValueError(f"{fn}: expected inputs of shape (..., {input_dim}), got shape {x.shape}")
        return phi(x @ weights.astype(x.dtype) + offset.astype(x.dtype))

    return feature_map


def ntk_features(apply_fn: Callable, params, x) -> jax.Array:
    """The NTK features ``∂f(x)/∂θ`` of a one-output net: f[n, ...] → f[n, P].

    ``apply_fn(params, x)`` must return f[n, 1] (or f[n]); row ``i`` is the gradient of
    output ``i`` with respect to all ``P`` parameters, flattened, so that
    ``ntk_features(x1) @ ntk_features(x2).T`` is the empirical NTK
    (``jaxdl.kernels.empirical.empirical_ntk_fn``). Least squares on these features is
    regression with the linearised net around ``params``.
    """
    fn = "ntk_features"
    if not callable(apply_fn):
        raise TypeError(f"{fn}: expected a callable apply_fn(params, x), got {apply_fn!r}")
    x = jnp.asarray(x)
    flat, unravel = ravel_pytree(params)
    outputs = jax.eval_shape(lambda p: apply_fn(unravel(p), x), flat)
    if outputs.shape not in ((x.shape[0],), (x.shape[0], 1)):
        raise ValueError(f"{fn}: expected apply_fn to return shape ({x.shape[0]},) or ({x.shape[0]}, 1), "
                         f"got {outputs.shape}")

    def one(xi):
        return jax.grad(lambda p: jnp.sum(apply_fn(unravel(p), xi[None])))(flat)

    return jax.lax.map(one, x, batch_size=64)


def min_norm_regression(features, targets, *, ridge: float = 0.0, rcond: float | None = None) -> jax.Array:
    """The minimum-norm least-squares coefficients ``β = argmin ‖β‖ s.t. β minimises ‖Φβ − Y‖²``.

    ``β = Φ⁺ Y = V diag(1/s) Uᵀ Y`` from the thin SVD ``Φ = U diag(s) Vᵀ``; singular values
    below ``rcond · s_max`` count as zero (default ``rcond``: ``max(n, p)`` times the
    machine epsilon, as ``numpy.linalg.pinv``). With ``ridge = μ > 0`` it returns the
    ridge solution ``(ΦᵀΦ + μI)⁻¹ΦᵀY = V diag(s/(s² + μ)) UᵀY`` (its ``μ → 0`` limit is
    the min-norm solution).

    Args:
      features: Φ, f[n, p].
      targets: Y, f[n] or f[n, k].

    Returns f[p] or f[p, k].
    """
    fn = "min_norm_regression"
    phi = _finite_array(fn, "features", features, (2,))
    y = _finite_array(fn, "targets", targets, (1, 2))
    if y.shape[0] != phi.shape[0]:
        raise ValueError(f"{fn}: expected as many targets as feature rows ({phi.shape[0]}), got {y.shape[0]}")
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"{fn}: expected ridge >= 0, got {ridge!r}")
    dtype = jnp.promote_types(phi.dtype, y.dtype)
    phi, y = phi.astype(dtype), y.astype(dtype)
    u, s, vt = jnp.linalg.svd(phi, full_matrices=False)
    if rcond is None:
        rcond = max(phi.shape) * float(jnp.finfo(dtype).eps)
    keep = s > rcond * (s[0] if s.size else 0.0)
    if ridge > 0:
        inverse = jnp.where(keep, s / (s**2 + ridge), 0.0)
    else:
        inverse = jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0), 0.0)
    return vt.T @ (inverse[:, None] * (u.T @ y)) if y.ndim == 2 else vt.T @ (inverse * (u.T @ y))


class BiasVariance(NamedTuple):
    """``expected_mse = bias_squared + variance + noise`` (per test point and output, averaged)."""

    bias_squared: jax.Array
    variance: jax.Array
    noise: jax.Array
    expected_mse: jax.Array


def bias_variance_decomposition(predictions, true_values, noise_variance=0.0) -> BiasVariance:
    """The seeds' ``E[(f(x) − y)²] = Bias² + Var + σ²`` from predictions of models fitted to
    different training sets.

    Args:
      predictions: f[S, m] or f[S, m, k]: the prediction of the model fitted to training
        set ``s`` at test input ``j`` (output ``c``).
      true_values: f*(x_j), f[m] or f[m, k]: the noise-free targets (the test labels
        themselves when the noise is unknown; then ``noise_variance = 0`` and the label
        noise is part of ``Bias²``).
      noise_variance: σ², the variance of the label noise ``y − f*(x)``.

    Returns :class:`BiasVariance`, each term averaged over test inputs and outputs:
    ``Bias² = mean_j (f̄(x_j) − f*(x_j))²``, ``Var = mean_j mean_s (f_s(x_j) − f̄(x_j))²``
    (the 1/S population variance, so that ``Bias² + Var`` equals the mean squared error
    against ``f*`` over the draws exactly), ``noise = σ²`` and their sum, the expected test
    MSE against noisy labels.
    """
    fn = "bias_variance_decomposition"
    preds = _finite_array(fn, "predictions", predictions, (2, 3))
    truth = _finite_array(fn, "true_values", true_values, (1, 2))
    if preds.shape[1:] != truth.shape:
        raise ValueError(f"{fn}: expected predictions of shape (S, {', '.join(map(str, truth.shape))}) "
                         f"to match true_values, got {preds.shape}")
    if preds.shape[0] < 2:
        raise ValueError(f"{fn}: expected predictions from at least 2 training sets, got {preds.shape[0]}")
    noise = jnp.asarray(noise_variance, preds.dtype)
    if noise.ndim != 0 or not bool(jnp.isfinite(noise)) or float(noise) < 0:
        raise ValueError(f"{fn}: expected noise_variance to be a finite scalar >= 0, got {noise_variance!r}")
    mean_prediction = preds.mean(axis=0)
    bias_squared = jnp.mean((mean_prediction - truth) ** 2)
    variance = jnp.mean((preds - mean_prediction) ** 2)
    return BiasVariance(bias_squared, variance, noise, bias_squared + variance + noise)
