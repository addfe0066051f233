"""Layers on sets: permutation-invariant pooling ``SetPool`` and the equivariant ``PermEquivariant``.

A set of ``M`` elements with ``F`` features is ``x: f[batch, M, F]``; the
element order carries no information. The seeds' geometric chapter:

* order invariance ``f(PX) = f(X)``; the Deep Sets model ``f(X) = rho(sum_m
  phi(x_m))`` and its max-pooling variant ``rho(max_m phi(x_m))``:
  ``serial(phi, SetPool('sum' | 'max' | 'mean'), rho)`` with per-element
  ``phi`` (``Dense`` acts per element); ``jaxdl.models.deep_sets`` builds it and
  ``jaxdl.models.pointnet`` PointNet (shared MLP, max pooling, T-net);
* equivariance ``f(PX) = P f(X)``; the equivariant map ``y_m = rho(x_m,
  sum_k phi(x_k))`` whose linear form is ``Y = X Lambda + 1 1^T X Gamma / c + b``
  (elementwise, ``lambda I + gamma 1 1^T``; ``c = 1`` for sum pooling, ``M``
  for mean): ``PermEquivariant``.

Sets of different sizes share one batch by padding: ``apply_fn(params, x,
mask=m)`` with ``m: bool[batch, M]`` (or broadcastable to ``x``), ``True`` for
padding elements (jaxdl's mask convention, as ``MaskedArray``). Padding never
affects an output: sums skip it, means divide by the true count, maxima ignore
it, and an empty set pools to zeros (no NaN). ``PermEquivariant`` zeroes the
outputs of padding elements. ``SetPool('sum'/'mean')`` has the infinite-width
kernel of ``GlobalSumPool``/``GlobalAvgPool`` (:mod:`jaxdl.kernels.gnn_rules`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdl.stax.gnn import node_features, padding_keep
from jaxdl.stax.layer import LayerSpec, check_choice, check_key, check_positive_int, check_shape, make_layer
from jaxdl.stax.linear import check_std

POOLINGS = ("sum", "mean", "max")


def _set_shape(name: str, input_shape):
    shape = check_shape(name, input_shape)
    if len(shape) != 3:
        raise ValueError(f"{name}: expected input_shape (batch, set size, features), got {shape!r}")
    return shape


def pool_set(x, keep, pooling: str):
    """Pool ``x: f[B, M, F]`` over its real elements (``keep: bool[B, M]``) to ``f[B, F]``."""
    present = keep[..., None]
    if pooling == "max":
        best = jnp.max(jnp.where(present, x, -jnp.inf), axis=1, initial=-jnp.inf)
        return jnp.where(jnp.any(present, axis=1), best, jnp.zeros((), x.dtype))
    total = jnp.sum(jnp.where(present, x, jnp.zeros((), x.dtype)), axis=1)
    if pooling == "sum":
        return total
    count = jnp.sum(keep, axis=1, keepdims=True).astype(x.dtype)
    return total / jnp.maximum(count, jnp.ones((), x.dtype))


def SetPool(pooling: str = "sum"):
    """Pool a set ``f[batch, M, F]`` into ``f[batch, F]``: ``'sum'`` (the seeds' Deep
    Sets), ``'mean'`` or ``'max'`` (PointNet), over the elements not masked by
    ``mask=`` (``bool[batch, M]``, ``True`` for padding). An empty set gives zeros."""
    name = "SetPool"
    pooling = check_choice(name, "pooling", pooling, POOLINGS)

    def init_fn(key, input_shape):
        shape = _set_shape(name, input_shape)
        return (shape[0], shape[2]), {}

    def apply_fn(params, x, *, mask=None, **kwargs):
        x = node_features(name, x)
        return pool_set(x, padding_keep(name, x, mask), pooling)

    return make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(pooling=pooling)))


def PermEquivariant(out_dim: int, pooling: str = "mean", W_std: float = 1.0, b_std: float | None = None):
    """The permutation-equivariant linear layer ``y_m = x_m Lambda + pool_k(x_k) Gamma + b``.

    With one channel this is the seeds' ``(lambda I + gamma 1 1^T) x`` (``pool``
    = sum) or ``(lambda I + gamma/M 1 1^T) x`` (mean, the default: its scale does
    not grow with the set size). Padding elements (``mask=``) are excluded from
    the pool and get zero outputs. Params: ``Lambda``, ``Gamma`` ``f[F, out_dim]``
    (each scaled by ``W_std / sqrt(F)``), optional ``b``.
    """
    name = "PermEquivariant"
    out_dim = check_positive_int(name, "out_dim", out_dim)
    pooling = check_choice(name, "pooling", pooling, ("sum", "mean"))
    W_std, b_std = check_std(name, "W_std", W_std), check_std(name, "b_std", b_std, allow_none=True)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _set_shape(name, input_shape)
        if shape[-1] == -1:
            raise ValueError(f"{name}: the feature axis of input_shape must be known, got -1")
        k_lambda, k_gamma, k_b = jax.random.split(key, 3)
        params = {
            "Lambda": jax.random.normal(k_lambda, (shape[-1], out_dim)),
            "Gamma": jax.random.normal(k_gamma, (shape[-1], out_dim)),
        }
        if b_std is not None:
            params["b"] = jax.random.normal(k_b, (out_dim,))
        return shape[:-1] + (out_dim,), params

    def apply_fn(params, x, *, mask=None, **kwargs):
        x = node_features(name, x)
        Lam, Gam = params["Lambda"], params["Gamma"]
        if x.shape[-1] != Lam.shape[0]:
            raise ValueError(f"{name}: expected {Lam.shape[0]} features on the last axis, got shape {tuple(x.shape)}")
        keep = padding_keep(name, x, mask)
        scale = W_std / math.sqrt(Lam.shape[0])
        pooled = pool_set(x, keep, pooling)  # f[B, F]
        out = scale * (x @ Lam.astype(x.dtype) + (pooled @ Gam.astype(x.dtype))[:, None, :])
        if b_std is not None:
            out = out + b_std * params["b"].astype(x.dtype)
        return jnp.where(keep[..., None], out, jnp.zeros((), out.dtype))

    spec = LayerSpec(name, dict(out_dim=out_dim, pooling=pooling, W_std=W_std, b_std=b_std))
    return make_layer(name, init_fn, apply_fn, spec)
