"""Index gymnastics on covariance arrays in the neural-tangents layout.

A covariance array has ``batch_ndim`` leading batch axes (1 or 2) followed by
the spatial axes, each present twice and interleaved (``X, X', Y, Y'``) or once
when ``diagonal_spatial``. These helpers extract per-sample variances and build
the pairwise combinations ``var1[i, x] (op) var2[j, x']`` that every elementwise
kernel rule needs. Written by hand: it is specific to this layout.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def zip_axes(x: jax.Array, start: int = 0) -> jax.Array:
    """``[..., a1..aS, b1..bS]`` (from ``start``) -> ``[..., a1, b1, ..., aS, bS]``."""
    n = (x.ndim - start) // 2
    order = list(range(start))
    for i in range(n):
        order += [start + i, start + n + i]
    return jnp.transpose(x, order)


def diagonal_pairs(x: jax.Array, start: int) -> jax.Array:
    """Take the diagonal of every interleaved axis pair from ``start`` on:
    ``f[..., X, X, Y, Y] -> f[..., X, Y]``."""
    n = (x.ndim - start) // 2
    for _ in range(n):
        # The pair to reduce is always right after the already-reduced axes.
        x = jnp.diagonal(x, axis1=start, axis2=start + 1)  # pair moves to the end
    return x


def variances(cov, diagonal_batch: bool, diagonal_spatial: bool):
    """Per-sample, per-position variances ``f[n, X, Y, ...]`` of a ``cov1``/``cov2`` array."""
    if cov is None:
        return None
    if not diagonal_batch:
        cov = jnp.moveaxis(jnp.diagonal(cov, axis1=0, axis2=1), -1, 0)
    if not diagonal_spatial:
        cov = diagonal_pairs(cov, 1)
    return cov


def pairwise(
    v1: jax.Array,
    v2: jax.Array,
    pair_batch: bool,
    pair_spatial: bool,
    op: Callable = jnp.multiply,
) -> jax.Array:
    """``op(v1[i, x], v2[j, x'])`` laid out as a covariance array.

    v1, v2: f[n, X, Y, ...]. Batch axes are paired (``i, j``) when ``pair_batch``
    else shared (``i``); spatial axes likewise with ``pair_spatial``.
    """
    def expand(v, first: bool):
        shape = []
        if pair_batch:
            shape += [v.shape[0], 1] if first else [1, v.shape[0]]
        else:
            shape += [v.shape[0]]
        for d in v.shape[1:]:
            if pair_spatial:
                shape += [d, 1] if first else [1, d]
            else:
                shape += [d]
        return v.reshape(shape)

    return op(expand(v1, True), expand(v2, False))


def variance_pairs(k, cov1=None, cov2=None):
    """Broadcastable variance pairs ``(q1, q2)`` for ``nngp``, ``cov1`` and ``cov2``.

    Returns ``{"nngp": (q1, q2), "cov1": (q1, q2), "cov2": (q1, q2) or None}``,
    each ``q`` broadcasting against the respective covariance array. ``cov1`` /
    ``cov2`` replace ``k.cov1`` / ``k.cov2`` as the source of the variances.
    """
    cov1 = k.cov1 if cov1 is None else cov1
    cov2 = k.cov2 if cov2 is None else cov2
    var1 = variances(cov1, k.diagonal_batch, k.diagonal_spatial)
    var2 = variances(cov2, k.diagonal_batch, k.diagonal_spatial)
    pair_spatial = not k.diagonal_spatial

    def both(v, w, pair_batch):
        left = pairwise(v, w, pair_batch, pair_spatial, lambda a, b: a)
        right = pairwise(v, w, pair_batch, pair_spatial, lambda a, b: b)
        return left, right

    return {
        "nngp": both(var1, var1 if var2 is None else var2, True),
        "cov1": both(var1, var1, not k.diagonal_batch),
        "cov2": None if var2 is None else both(var2, var2, not k.diagonal_batch),
    }


def set_batch_diagonal(nngp: jax.Array, cov1: jax.Array, diagonal_batch: bool) -> jax.Array:
    """Write ``cov1`` (the per-sample covariances) onto the batch diagonal of ``nngp``.

    Used when x2 is x1, so that ``nngp[i, i] == cov1[i]`` holds exactly.
    """
    n = nngp.shape[0]
    if not diagonal_batch:
        cov1 = jnp.moveaxis(jnp.diagonal(cov1, axis1=0, axis2=1), -1, 0)
    # A select against an iota mask fuses with the producer of ``nngp`` (a scatter does not).
    on_diagonal = (jnp.arange(n)[:, None] == jnp.arange(n)[None, :]).reshape((n, n) + (1,) * (nngp.ndim - 2))
    return jnp.where(on_diagonal, cov1[:, None].astype(nngp.dtype), nngp)
