"""Entropy, cross-entropy, KL and Jensen-Shannon for categorical distributions, and the GAN
optimum as a Jensen-Shannon identity.

Seed formulas (lecture notes, "Information theory" and "Generative adversarial networks"):

* entropy ``H(p) = -sum_x p(x) log p(x) >= 0``;
* cross-entropy ``H(p, q) = -sum_x p(x) log q(x) = H(p) + KL(p, q)``;
* ``KL(p, q) = sum_x p(x) log(p(x) / q(x)) >= 0``;
* Jensen-Shannon ``JS(p, q) = 1/2 KL(p, m) + 1/2 KL(q, m)`` with ``m = (p + q) / 2``,
  ``0 <= JS <= log 2``;
* GAN: for a fixed generator the optimal discriminator is ``D*(x) = p(x) / (p(x) + p_g(x))``
  and ``V(G, D*) = E_p[log D*] + E_{p_g}[log(1 - D*)] = 2 JS(p, p_g) - log 4``: the global
  minimum over generators is ``-log 4``, reached at ``p_g = p`` (one seed writes the
  per-sample form ``JS(p, p_theta) - ln 2``, which is this value halved).

Distributions are arrays whose last axis holds the probabilities (leading axes batch).
All logarithms are natural (nats). ``0 log 0 = 0``; ``KL(p, q) = inf`` where ``q = 0 < p``
(never NaN). On concrete inputs the probabilities are checked (non-negative, summing to 1
within ``atol``); under ``jit`` the check is skipped, since traced values cannot be inspected.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

__all__ = [
    "check_probabilities",
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "js_divergence",
    "optimal_discriminator",
    "gan_value",
    "gan_optimal_value",
    "LOG4",
]

LOG4 = math.log(4.0)
"""``log 4``: minus the GAN value at the optimum ``p_g = p``."""


def check_probabilities(fn: str, name: str, p, atol: float = 1e-5):
    """``p`` as a float array, after checking (on concrete values) that its last axis is a
    probability vector: finite, non-negative, summing to 1 within ``atol``."""
    p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    if p.ndim == 0:
        raise ValueError(f"{fn}: expected {name} with a last axis of probabilities, got a scalar")
    if isinstance(p, jax.core.Tracer):
        return p
    values = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{fn}: expected {name} to hold finite non-negative probabilities, got min "
                         f"{np.nanmin(values):.3g}")
    sums = values.sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > atol):
        worst = sums.ravel()[np.argmax(np.abs(sums - 1.0).ravel())]
        raise ValueError(f"{fn}: expected {name} to sum to 1 along the last axis, got a sum of {worst:.6g}")
    return p


def _pair(fn, p, q):
    p = check_probabilities(fn, "p", p)
    q = check_probabilities(fn, "q", q)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"{fn}: expected p and q over the same number of outcomes, got {p.shape} and {q.shape}")
    dtype = jnp.result_type(p.dtype, q.dtype)
    return p.astype(dtype), q.astype(dtype)


def entropy(p):
    """``H(p) = -sum p log p`` in nats over the last axis."""
    p = check_probabilities("entropy", "p", p)
    return -jnp.sum(xlogy(p, p), axis=-1)


def _cross(p, q):
    # -sum p log q with 0 log 0 = 0 and +inf where q = 0 < p.
    terms = jnp.where(p > 0, -p * jnp.log(jnp.where(p > 0, q, 1.0)), 0.0)
    return jnp.sum(terms, axis=-1)


def cross_entropy(p, q):
    """``H(p, q) = -sum p log q`` in nats over the last axis (``inf`` where ``q = 0 < p``)."""
    p, q = _pair("cross_entropy", p, q)
    return _cross(p, q)


def _kl(p, q):
    ratio = jnp.where(p > 0, p / jnp.where(p > 0, q, 1.0), 1.0)  # q = 0 < p gives inf
    return jnp.sum(jnp.where(p > 0, p * jnp.log(ratio), 0.0), axis=-1)


def kl_divergence(p, q):
    """``KL(p, q) = sum p log(p / q)`` in nats over the last axis (``inf`` where ``q = 0 < p``)."""
    p, q = _pair("kl_divergence", p, q)
    return _kl(p, q)


def js_divergence(p, q):
    """``JS(p, q) = KL(p, m)/2 + KL(q, m)/2`` with ``m = (p + q)/2``; in ``[0, log 2]``."""
    p, q = _pair("js_divergence", p, q)
    m = 0.5 * (p + q)
    return 0.5 * _kl(p, m) + 0.5 * _kl(q, m)


def optimal_discriminator(p_data, p_model):
    """``D*(x) = p_data(x) / (p_data(x) + p_model(x))`` (0.5 where both are 0)."""
    p, q = _pair("optimal_discriminator", p_data, p_model)
    total = p + q
    return jnp.where(total > 0, p / jnp.where(total > 0, total, 1.0), 0.5)


def gan_value(p_data, p_model, discriminator):
    """``V(G, D) = E_{p_data}[log D] + E_{p_model}[log(1 - D)]`` over a finite space.

    ``discriminator``: ``D(x)`` in ``[0, 1]`` for every outcome (same last axis).
    """
    fn = "gan_value"
    p, q = _pair(fn, p_data, p_model)
    d = jnp.asarray(discriminator, dtype=p.dtype)
    if d.shape[-1] != p.shape[-1]:
        raise ValueError(f"{fn}: expected a discriminator value per outcome ({p.shape[-1]}), got shape {d.shape}")
    if not isinstance(d, jax.core.Tracer) and (np.any(np.asarray(d) < 0) or np.any(np.asarray(d) > 1)):
        raise ValueError(f"{fn}: expected discriminator values in [0, 1]")
    return -_cross(p, d) - _cross(q, 1.0 - d)


def gan_optimal_value(p_data, p_model):
    """``V(G, D*) = 2 JS(p_data, p_model) - log 4``, evaluated through ``D*`` (not through JS),
    so that comparing it with :func:`js_divergence` checks the seeds' identity."""
    return gan_value(p_data, p_model, optimal_discriminator(p_data, p_model))
