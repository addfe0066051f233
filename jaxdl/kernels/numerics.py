"""Numerically safe primitives shared by the kernel rules.

``safe_sqrt`` and ``safe_divide`` keep values *and gradients* finite at the
degenerate points every kernel recursion meets: zero inputs (zero variance) and
identical or collinear inputs (correlation exactly +-1). Written by hand because
``jnp.sqrt``/``jnp.where`` alone give infinite or NaN derivatives there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_jvp
def safe_sqrt(x):
    """``sqrt(max(x, 0))`` whose derivative is 0 (not inf/NaN) at and below 0."""
    return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    root = safe_sqrt(x)
    positive = x > 0
    denom = jnp.where(positive, 2 * root, 1.0)
    return root, jnp.where(positive, x_dot / denom, 0.0)


def safe_divide(num, den):
    """``num / den`` with 0 where ``den == 0`` (and finite gradients there)."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1.0), 0.0)
