"""Generalised linear models with canonical link functions.

Seed formulas implemented here:

* a GLM predicts the mean ``E[y | x] = sigma(w^T x)`` with an invertible
  ``sigma``; ``sigma^{-1}`` is the link function (logit
  ``sigma^{-1}(t) = log(t / (1 - t))`` for logistic regression);
* the logistic function ``sigma(z) = 1 / (1 + e^{-z})`` with
  ``sigma' = sigma (1 - sigma)``, the cross-entropy
  ``-log sigma((2y - 1) z) = softplus((1 - 2y) z)`` and the gradient
  ``nabla l_i = [sigma(w^T x_i) - y_i] x_i``.

For a canonical link the negative log-likelihood is
``A(eta) - y eta`` with ``A' = sigma`` (the log-partition), so every family
shares the seeds' gradient ``(sigma(w^T x) - y) x`` and the Hessian
``sigma'(w^T x) x x^T``. :func:`glm_fit` minimises

    J(w) = 1/s sum_i [A(x_i^T w) - y_i x_i^T w] + lam/2 ||w||^2

by damped Newton steps (iteratively reweighted least squares).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdl.classic._checks import as_float_array, check_finite, check_nonnegative, check_positive_int, check_rows
from jaxdl.classic._newton import ConvexFit, default_tolerance, newton_minimize

__all__ = ["GLMFamily", "GAUSSIAN", "BERNOULLI", "POISSON", "glm_mean", "glm_gradient", "glm_fit"]


class GLMFamily(NamedTuple):
    """An exponential family with its canonical link.

    link: mean -> linear predictor ``eta``; inverse_link: ``eta`` -> mean
    (``sigma``); inverse_link_derivative: ``sigma'``; log_partition: ``A`` with
    ``A' = sigma``.
    """

    name: str
    link: Callable
    inverse_link: Callable
    inverse_link_derivative: Callable
    log_partition: Callable


def _logit(mean):
    return jnp.log(mean) - jnp.log1p(-mean)


def _sigmoid_derivative(eta):
    p = jax.nn.sigmoid(eta)
    return p * (1 - p)


GAUSSIAN = GLMFamily("gaussian", lambda m: m, lambda e: e, jnp.ones_like, lambda e: 0.5 * e**2)
BERNOULLI = GLMFamily("bernoulli", _logit, jax.nn.sigmoid, _sigmoid_derivative, jax.nn.softplus)
POISSON = GLMFamily("poisson", jnp.log, jnp.exp, jnp.exp, jnp.exp)


def glm_mean(w, X, family: GLMFamily):
    """``E[y | x] = sigma(X w)``: f32[s] for w: f32[n], X: f32[s, n]."""
    return family.inverse_link(X @ w)


def glm_gradient(w, X, y, family: GLMFamily, lam: float = 0.0):
    """The seeds' gradient ``1/s sum_i (sigma(w^T x_i) - y_i) x_i + lam w`` of ``J``."""
    return X.T @ (family.inverse_link(X @ w) - y) / X.shape[0] + lam * w


def _check_family(fn: str, family):
    if not isinstance(family, GLMFamily):
        raise TypeError(f"{fn}: expected family to be a GLMFamily (GAUSSIAN, BERNOULLI, POISSON), got {family!r}")


def _check_targets(fn: str, family: GLMFamily, y):
    try:
        bad = {
            "bernoulli": jnp.any((y < 0) | (y > 1)),
            "poisson": jnp.any(y < 0),
        }.get(family.name, False)
        bad = bool(bad)
    except jax.errors.ConcretizationTypeError:
        bad = False
    if bad:
        expected = "in [0, 1]" if family.name == "bernoulli" else ">= 0"
        raise ValueError(f"{fn}: expected {family.name} targets y {expected}, got values outside")


def glm_fit(X, y, family: GLMFamily, lam: float = 0.0, *, max_steps: int = 100, tol: float | None = None):
    """Fit a canonical-link GLM by minimising ``J(w)`` (see the module docstring).

    Args:
      X: f32[s, n] inputs (append a column of ones for an intercept).
      y: f32[s] targets (in [0, 1] for BERNOULLI, counts for POISSON).
      family: GAUSSIAN (identity link), BERNOULLI (logit) or POISSON (log).
      lam: L2 penalty ``>= 0``. With ``lam = 0`` separable Bernoulli data has
        no finite minimiser; the fit then reports ``converged = False`` or huge
        weights.
      max_steps: most Newton steps.
      tol: gradient max-norm at which to stop (default ``eps^(2/3)``).

    Returns:
      :class:`ConvexFit` with ``params = w``: f32[n].
    """
    fn = "glm_fit"
    _check_family(fn, family)
    X = as_float_array(fn, "X", X, 2)
    y = as_float_array(fn, "y", y, 1).astype(X.dtype)
    check_rows(fn, X, y)
    check_finite(fn, "X", X)
    check_finite(fn, "y", y)
    _check_targets(fn, family, y)
    lam = check_nonnegative(fn, "lam", lam)
    max_steps = check_positive_int(fn, "max_steps", max_steps)
    tol = default_tolerance(X.dtype) if tol is None else check_nonnegative(fn, "tol", tol, strict=True)
    return _glm_fit(X, y, family, lam, max_steps, tol)


@partial(jax.jit, static_argnums=(2, 4))
def _glm_fit(X, y, family: GLMFamily, lam, max_steps: int, tol) -> ConvexFit:
    s, n = X.shape

    def objective(w):
        eta = X @ w
        return jnp.mean(family.log_partition(eta) - y * eta) + 0.5 * lam * w @ w

    def hessian(w):
        weights = family.inverse_link_derivative(X @ w)
        return (X.T * weights) @ X / s + lam * jnp.eye(n, dtype=X.dtype)

    return newton_minimize(
        objective,
        lambda w: glm_gradient(w, X, y, family, lam),
        hessian,
        jnp.zeros(n, X.dtype),
        max_steps=max_steps,
        tol=tol,
    )
