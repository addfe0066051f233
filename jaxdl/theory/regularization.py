"""Weight decay seen through the local quadratic model of the loss.

Seed formula (tricks-of-the-trade chapter, "Weight Decay" / "local loss
landscape"): near a minimum ``theta*`` with Hessian ``H = Q diag(lambda) Q^T``,
``R(theta) ~ R(theta*) + 1/2 (theta - theta*)^T H (theta - theta*)``. Adding
``mu/2 ||theta||^2`` moves the minimum to

    ``theta_mu* = (H + mu I)^{-1} H theta* = Q diag(lambda_i / (lambda_i + mu)) Q^T theta*``,

i.e. the component of ``theta*`` along eigenvector ``i`` shrinks by
``lambda_i / (lambda_i + mu)``: barely where the loss is curved
(``lambda_i >> mu``), to almost nothing along flat directions
(``lambda_i << mu``). :func:`weight_decay_shrinkage` returns the eigenbasis
and the factors, :func:`weight_decay_minimizer` the shrunk minimum, from a
Hessian matrix or directly from a loss function (Hessian by ``jax.hessian`` of
the flattened parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["Shrinkage", "weight_decay_minimizer", "weight_decay_shrinkage"]


class Shrinkage(NamedTuple):
    """``eigenvalues`` ``lambda_i`` (ascending), ``eigenvectors`` (columns of ``Q``) and
    ``factors`` ``lambda_i / (lambda_i + mu)`` of the weight-decayed quadratic."""

    eigenvalues: jax.Array
    eigenvectors: jax.Array
    factors: jax.Array


def _check_mu(name: str, mu):
    numeric = isinstance(mu, (int, float, np.floating, np.integer)) and not isinstance(mu, bool)
    if not numeric or not np.isfinite(mu) or mu < 0:
        raise ValueError(f"{name}: expected a finite weight decay mu >= 0, got {mu!r}")
    return float(mu)


def _concrete(x):
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def weight_decay_shrinkage(hessian, mu: float, rtol: float = 1e-6) -> Shrinkage:
    """Eigen-decomposition of the Hessian at a minimum and the seeds' factors
    ``lambda_i / (lambda_i + mu)``.

    Args:
      hessian: symmetric positive semi-definite ``f[d, d]`` (the Hessian of the
        unregularised loss at its minimum).
      mu: the weight decay ``mu >= 0``.
      rtol: eigenvalues above ``-rtol * max |lambda|`` count as zero (round-off);
        a more negative one means ``theta*`` is no minimum and raises.

    With ``mu = 0`` every factor is 1 (no shrinkage, also along flat directions).
    """
    name = "weight_decay_shrinkage"
    mu = _check_mu(name, mu)
    H = jnp.asarray(hessian)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"{name}: expected a square Hessian f[d, d], got shape {tuple(H.shape)}")
    if not jnp.issubdtype(H.dtype, jnp.floating):
        H = H.astype(jnp.result_type(float))
    concrete = _concrete(H)
    if concrete is not None:
        if not np.all(np.isfinite(concrete)):
            raise ValueError(f"{name}: the Hessian has non-finite entries")
        scale = max(np.abs(concrete).max(), np.finfo(concrete.dtype).tiny)
        if np.abs(concrete - concrete.T).max() > 1e-5 * scale:
            asymmetry = np.abs(concrete - concrete.T).max()
            raise ValueError(f"{name}: expected a symmetric Hessian, got an asymmetry of {asymmetry:.3g}")
    lam, Q = jnp.linalg.eigh((H + H.T) / 2)
    if concrete is not None and float(lam[0]) < -rtol * float(jnp.max(jnp.abs(lam))):
        raise ValueError(
            f"{name}: the Hessian has a negative eigenvalue {float(lam[0]):.3g}; the quadratic "
            "analysis needs a minimum (positive semi-definite Hessian)"
        )
    lam = jnp.maximum(lam, 0.0)
    factors = jnp.where(lam + mu > 0, lam / jnp.where(lam + mu > 0, lam + mu, 1.0), 1.0)
    return Shrinkage(lam, Q, factors)


def weight_decay_minimizer(hessian_or_loss, theta_star, mu: float):
    """The minimum ``theta_mu* = Q diag(lambda_i / (lambda_i + mu)) Q^T theta*`` of the
    seeds' quadratic model plus ``mu/2 ||theta||^2``.

    Args:
      hessian_or_loss: the Hessian ``f[d, d]`` at ``theta*``, or a loss function
        ``loss(theta) -> scalar`` whose Hessian at ``theta*`` is taken with
        ``jax.hessian`` (``theta*`` may then be any pytree).
      theta_star: the unregularised minimum (``f[d]`` with a Hessian matrix).
      mu: weight decay ``>= 0``.

    Returns:
      ``theta_mu*``, shaped like ``theta_star``.
    """
    name = "weight_decay_minimizer"
    mu = _check_mu(name, mu)
    flat, unravel = ravel_pytree(theta_star)
    if flat.size == 0:
        raise ValueError(f"{name}: theta_star has no entries")
    if callable(hessian_or_loss):
        loss: Callable = hessian_or_loss
        H = jax.hessian(lambda v: loss(unravel(v)))(flat)
    else:
        H = jnp.asarray(hessian_or_loss)
        if H.ndim != 2 or H.shape != (flat.size, flat.size):
            raise ValueError(
                f"{name}: expected a Hessian of shape {(flat.size, flat.size)} for theta_star "
                f"with {flat.size} entries, got {tuple(H.shape)}"
            )
    lam, Q, factors = weight_decay_shrinkage(H, mu)
    return unravel(Q @ (factors * (Q.T @ flat)))
