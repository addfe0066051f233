"""Masked inputs in the infinite-width kernel (``kernel_fn(..., mask_constant=c)``).

The finite network (:mod:`jaxdl.stax.masking`) zeroes the masked entries of
every layer's input and the caller zeroes masked outputs (``unmask_fn``). The
kernel mirrors this exactly:

* the input kernel is computed from the inputs with masked entries zeroed, and
  carries the position masks ``Kernel.mask1``/``mask2`` (activation layout,
  channel axis of size 1: a position is masked when all its channels are);
* before every layer, covariances involving a masked position are set to zero
  (:func:`remask`) -- the covariance of a zeroed activation -- and after it the
  masks are mapped by the layer's ``mask_fn`` (:func:`propagate`);
* the few layers whose computation depends on the mask get masked rules here:
  ``GlobalAvgPool`` averages over unmasked positions only,
  ``K[i, j] = sum_{p, q} K[i, j, p, q] / (n_i n_j)`` with ``n_i`` the number of
  unmasked positions of example ``i``; ``GlobalSelfAttention`` excludes masked
  keys from the softmax (``jaxdl.kernels.attention_rules``);
* the kernel_fn's result is remasked once more (the zeroed outputs).

Written by hand: the bookkeeping mirrors neural-tangents' ``Kernel.mask``.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxdl.kernels.kernel import Kernel
from jaxdl.kernels.layout import pairwise
from jaxdl.stax import masking

_COMBINATORS = ("serial", "parallel", "repeat")


def has_masks(k) -> bool:
    if isinstance(k, Kernel):
        return k.mask1 is not None or k.mask2 is not None
    return isinstance(k, (list, tuple)) and any(has_masks(ki) for ki in k)


def input_mask(x, mask_constant, batch_axis: int, channel_axis):
    """The position mask of an input (``None`` without ``mask_constant``) and the
    input with masked entries zeroed."""
    mask = masking.mask_of(x, mask_constant)
    if mask is None:
        return None, x
    x = masking.zero_masked(x, mask)
    if channel_axis is None:  # inputs flattened to (batch, features)
        mask = jnp.moveaxis(mask, batch_axis, 0).reshape(mask.shape[batch_axis], -1)
        channel_axis = 1
    return masking.channel_mask(mask, channel_axis), x


def position_mask(mask, k: Kernel, shape) -> jnp.ndarray:
    """``bool[n, S...]``: which (example, position) of a kernel side is masked."""
    ndim = len(shape)
    mask = jnp.broadcast_to(mask, tuple(1 if a == k.channel_axis else d for a, d in enumerate(shape)))
    return jnp.squeeze(jnp.moveaxis(mask, (k.batch_axis, k.channel_axis), (0, ndim - 1)), -1)


def visible_pairs(k: Kernel):
    """Masks (``True``: keep) broadcasting against ``nngp``, ``cov1`` and ``cov2``."""
    m1 = position_mask(k.mask1, k, k.shape1) if k.mask1 is not None else None
    m2 = position_mask(k.mask2, k, k.shape2) if k.mask2 is not None else m1
    if m1 is None:
        m1 = jnp.zeros((k.shape1[k.batch_axis],) + tuple(m2.shape[1:]), bool)
    pair_spatial = not k.diagonal_spatial
    keep = lambda a, b, pair_batch: ~pairwise(a, b, pair_batch, pair_spatial, jnp.logical_or)  # noqa: E731
    return {
        "nngp": keep(m1, m2, True),
        "cov1": keep(m1, m1, not k.diagonal_batch),
        "cov2": None if k.cov2 is None else keep(m2, m2, not k.diagonal_batch),
    }


def remask(k):
    """Zero the covariances that involve a masked position (lists: each kernel)."""
    if isinstance(k, (list, tuple)):
        return type(k)(remask(ki) for ki in k)
    if not has_masks(k):
        return k
    keep = visible_pairs(k)
    cut = lambda mat, m: mat if mat is None or jnp.ndim(mat) == 0 else jnp.where(m, mat, jnp.zeros((), mat.dtype))  # noqa: E731
    return k.replace(
        nngp=cut(k.nngp, keep["nngp"]), ntk=cut(k.ntk, keep["nngp"]),
        cov1=cut(k.cov1, keep["cov1"]), cov2=cut(k.cov2, keep["cov2"]),
    )  # fmt: skip


def propagate(spec, k_in, k_out):
    """Attach to ``k_out`` the masks of the layer's outputs (``spec`` is not a combinator)."""
    if spec.kind in _COMBINATORS or spec.kind == "FanOut":
        return k_out
    if isinstance(k_in, (list, tuple)):
        masks1 = [ki.mask1 for ki in k_in]
        masks2 = [ki.mask2 if ki.mask2 is not None else ki.mask1 for ki in k_in]
        shapes1, shapes2 = [ki.shape1 for ki in k_in], [ki.shape2 for ki in k_in]
        if any(m is None for m in masks1):
            return k_out
    else:
        masks1, masks2 = k_in.mask1, k_in.mask2 if k_in.mask2 is not None else k_in.mask1
        shapes1, shapes2 = k_in.shape1, k_in.shape2
    mask1 = masking.output_mask(spec, masks1, shapes1)
    mask2 = masking.output_mask(spec, masks2, shapes2)

    def attach(k, m1, m2):
        return k.replace(mask1=masking.channel_mask(m1, k.channel_axis), mask2=masking.channel_mask(m2, k.channel_axis))

    if isinstance(k_out, (list, tuple)):
        return type(k_out)(attach(k, a, b) for k, a, b in zip(k_out, mask1, mask2))
    return attach(k_out, mask1, mask2)


def key_masks(k: Kernel):
    """``bool[n, T]`` per side: masked positions, spatial axes flattened (x2 is x1: the same)."""
    m1 = position_mask(k.mask1, k, k.shape1)
    m2 = position_mask(k.mask2, k, k.shape2) if k.mask2 is not None else m1
    return m1.reshape(m1.shape[0], -1), m2.reshape(m2.shape[0], -1)


def _global_avg_pool(hyper, k: Kernel, ctx) -> Kernel:
    """Average over unmasked positions: the global sum divided by ``n_i n_j``."""
    from jaxdl.kernels.analytic import _RULES

    summed = _RULES["GlobalSumPool"](hyper, k, ctx)
    m1 = position_mask(k.mask1, k, k.shape1)
    m2 = position_mask(k.mask2, k, k.shape2) if k.mask2 is not None else m1
    count = lambda m: jnp.maximum(jnp.sum(~m, axis=tuple(range(1, m.ndim))), 1).astype(k.nngp.dtype)  # noqa: E731
    n1, n2 = count(m1), count(m2)
    scale = lambda mat, a, b: None if mat is None or jnp.ndim(mat) == 0 else mat / (a * b)  # noqa: E731
    cov = lambda mat, n: scale(mat, n, n) if k.diagonal_batch else scale(mat, n[:, None], n[None, :])  # noqa: E731
    return summed.replace(
        nngp=scale(summed.nngp, n1[:, None], n2[None, :]),
        ntk=scale(summed.ntk, n1[:, None], n2[None, :]),
        cov1=cov(summed.cov1, n1),
        cov2=None if summed.cov2 is None else cov(summed.cov2, n2),
    )


def _unsupported(kind: str):
    def rule(hyper, k, ctx):
        raise NotImplementedError(f"{kind}: masked inputs (mask_constant) are not supported by this layer's kernel")

    return rule


MASKED_RULES = {
    "GlobalAvgPool": _global_avg_pool,
    "LayerNorm": _unsupported("LayerNorm"),
    "ConvTranspose": _unsupported("ConvTranspose"),
}
