"""Masked inputs: neural-tangents' ``mask_constant`` argument and ``MaskedArray`` outputs.

Variable-length inputs (sentences of different lengths, images with missing
pixels) are padded to one shape with a sentinel value. Calling a model as
``apply_fn(params, x, mask_constant=c)`` (or ``kernel_fn(x1, x2,
mask_constant=c)``) treats every entry of ``x`` equal to ``c`` (``nan`` allowed)
as *masked*: absent. The semantics follow neural-tangents 0.6.5:

* every layer that supports masking zeroes its masked inputs before computing,
  and reports which of its outputs are masked with a per-layer ``mask_fn``
  (a position of a ``Dense``/``Conv`` output is masked when every input it reads
  is masked, a ``GlobalAvgPool`` averages over unmasked positions only, attention
  never attends to masked keys, ``FanInSum`` keeps a position unless every
  branch masks it, ...);
* ``apply_fn`` then returns a :class:`MaskedArray` ``(masked_value, mask)``;
  :func:`unmask_fn` turns it into a plain array with masked entries zeroed,
  which is what Monte Carlo and empirical kernels consume;
* the infinite-width kernel carries the masks (``Kernel.mask1``/``mask2``) and
  sets covariances that involve a masked position to zero
  (:mod:`jaxdl.kernels.masking_rules`).

No seed formula is involved: masking only restricts which activations enter the
affine and pooling sums. Written by hand because it has to mirror NT's rules
layer by layer; the mask arithmetic uses ``lax.reduce_window``/``dot_general``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.stax.layer import Layer


@dataclasses.dataclass(frozen=True)
class MaskedArray:
    """An array (or list of arrays) with a boolean ``mask``: ``True`` marks a masked
    entry. ``mask`` broadcasts against ``masked_value`` (e.g. size 1 on the channel
    axis when whole positions are masked)."""

    masked_value: object
    mask: object

    @property
    def shape(self):
        return self.masked_value.shape


jax.tree_util.register_pytree_node(
    MaskedArray,
    lambda m: ((m.masked_value, m.mask), None),
    lambda _, children: MaskedArray(*children),
)


def mask_of(x, mask_constant) -> jax.Array | None:
    """``x == mask_constant`` (``isnan(x)`` for a ``nan`` constant), or None."""
    if mask_constant is None:
        return None
    x = jnp.asarray(x)
    if isinstance(mask_constant, float) and math.isnan(mask_constant):
        return jnp.isnan(x)
    return x == jnp.asarray(mask_constant, x.dtype)


def zero_masked(x, mask):
    """``x`` with the masked entries set to zero."""
    if mask is None:
        return x
    return jnp.where(mask, jnp.zeros((), x.dtype), x)


def get_masked_array(x, mask_constant=None) -> MaskedArray:
    """``MaskedArray(x with masked entries zeroed, mask)``; a ``MaskedArray`` passes
    through (re-zeroed), lists are handled element by element."""
    if isinstance(x, (list, tuple)):
        parts = [get_masked_array(xi, mask_constant) for xi in x]
        return MaskedArray(type(x)(p.masked_value for p in parts), type(x)(p.mask for p in parts))
    if isinstance(x, MaskedArray):
        return MaskedArray(zero_masked(x.masked_value, x.mask), x.mask)
    mask = mask_of(x, mask_constant)
    return MaskedArray(x if mask is None else zero_masked(jnp.asarray(x), mask), mask)


def unmask(x):
    """A ``MaskedArray`` (or a pytree holding some) as plain arrays, masked entries zeroed."""
    return jax.tree.map(
        lambda a: zero_masked(a.masked_value, a.mask) if isinstance(a, MaskedArray) else a,
        x,
        is_leaf=lambda a: isinstance(a, MaskedArray),
    )


def unmask_fn(fn: Callable) -> Callable:
    """``fn`` returning plain arrays where it returned ``MaskedArray`` s (masked
    entries zeroed), e.g. ``unmask_fn(apply_fn)`` for ``monte_carlo_kernel_fn``."""

    @functools.wraps(fn)
    def fn_no_mask(*args, **kwargs):
        return unmask(fn(*args, **kwargs))

    return fn_no_mask


def has_mask(x) -> bool:
    """Whether ``x`` (an array or a list) holds a ``MaskedArray``."""
    if isinstance(x, MaskedArray):
        return True
    return isinstance(x, (list, tuple)) and any(has_mask(xi) for xi in x)


# --- how each layer maps its input mask to its output mask --------------------------


def _axis(axis: int, ndim: int) -> int:
    return axis % ndim


def _all_channels(mask, channel_axis: int):
    return jnp.all(mask, axis=_axis(channel_axis, mask.ndim), keepdims=True)


def _window_mask(mask, spatial_axes, window, strides, dilation, padding):
    """Masked output positions of a window op: those whose window holds no unmasked
    input (padding counts as masked). ``padding``: 'VALID', 'SAME', 'CIRCULAR',
    'CAUSAL' or explicit ``(lo, hi)`` pairs per spatial axis."""
    from jaxdl.stax.conv import circular_pad

    visible = (~mask).astype(jnp.float32)
    dims, steps, dil = [1] * mask.ndim, [1] * mask.ndim, [1] * mask.ndim
    for axis, w, st, d in zip(spatial_axes, window, strides, dilation):
        dims[axis], steps[axis], dil[axis] = w, st, d
    pads = [(0, 0)] * mask.ndim
    if padding == "CIRCULAR":
        extent = [(w - 1) * d + 1 for w, d in zip(window, dilation)]
        visible = circular_pad(visible, extent, strides, spatial_axes)
    elif padding == "SAME":
        extent = [(w - 1) * d + 1 for w, d in zip(window, dilation)]
        same = lax.padtype_to_pads([mask.shape[a] for a in spatial_axes], extent, strides, "SAME")
        for axis, pad in zip(spatial_axes, same):
            pads[axis] = tuple(pad)
    elif padding == "CAUSAL":
        for axis, w, d in zip(spatial_axes, window, dilation):
            pads[axis] = ((w - 1) * d, 0)
    counts = lax.reduce_window(visible, 0.0, lax.add, dims, steps, pads, window_dilation=dil)
    return counts == 0


def _conv_mask(hyper, mask, input_shape):
    from jaxdl.kernels.requirements import conv_dimension_numbers

    filter_shape = tuple(hyper["filter_shape"])
    n = len(filter_shape)
    lhs_spec, rhs_spec, out_spec = conv_dimension_numbers(hyper, n)
    mask = jnp.broadcast_to(mask, tuple(input_shape)) if mask.ndim == len(input_shape) else mask
    mask = _all_channels(mask, lhs_spec.index("C"))
    conv_spec = [c for c in rhs_spec if c not in "IO"]
    spatial_axes = [lhs_spec.index(c) for c in conv_spec]
    strides = tuple(hyper.get("strides") or (1,) * n)
    dilation = tuple(hyper.get("rhs_dilation") or (1,) * n)
    out = _window_mask(mask, spatial_axes, filter_shape, strides, dilation, hyper.get("padding", "VALID"))
    return jnp.transpose(out, [lhs_spec.index(c) for c in out_spec])


def _pool_mask(hyper, mask, input_shape):
    window = tuple(hyper["window_shape"])
    ndim = len(input_shape)
    batch, channel = _axis(hyper.get("batch_axis", 0), ndim), _axis(hyper.get("channel_axis", -1), ndim)
    mask = _all_channels(mask, channel)
    spatial_axes = [i for i in range(ndim) if i not in (batch, channel)]
    strides = tuple(hyper.get("strides") or (1,) * len(window))
    return _window_mask(mask, spatial_axes, window, strides, (1,) * len(window), hyper.get("padding", "VALID"))


def _global_pool_mask(hyper, mask, input_shape):
    ndim = len(input_shape)
    batch, channel = _axis(hyper.get("batch_axis", 0), ndim), _axis(hyper.get("channel_axis", -1), ndim)
    return jnp.all(mask, axis=tuple(i for i in range(ndim) if i not in (batch, channel)))


def _flatten_mask(hyper, mask, input_shape):
    batch = _axis(hyper.get("batch_axis", 0), len(input_shape))
    mask = jnp.moveaxis(jnp.broadcast_to(mask, tuple(input_shape)), batch, 0)
    mask = mask.reshape(mask.shape[0], -1)
    return mask if hyper.get("batch_axis_out", 0) in (0, -2) else mask.T


def _fan_in_concat_mask(hyper, masks, input_shapes):
    masks = [jnp.broadcast_to(m, tuple(s)) for m, s in zip(masks, input_shapes)]
    return jnp.concatenate(masks, axis=hyper.get("axis", -1))


def _dot_general_mask(hyper, mask, input_shape):
    from jaxdl.stax.dot_general import dot_with_constant

    mask = jnp.broadcast_to(mask, tuple(input_shape))
    visible = dot_with_constant(hyper, (~mask).astype(jnp.float32), nonzero_pattern=True)
    return visible == 0


def _image_resize_mask(hyper, mask, input_shape):
    from jaxdl.stax.resize import resize

    mask = jnp.broadcast_to(mask, tuple(input_shape))
    return resize(hyper, (~mask).astype(jnp.float32)) == 0


def _index_mask(hyper, mask, input_shape):
    return jnp.broadcast_to(mask, tuple(input_shape))[hyper["idx"]]


def _same(hyper, mask, input_shape):
    return mask


def _reduce_channels(channel_key: str = "channel_axis"):
    def fn(hyper, mask, input_shape):
        return _all_channels(mask, hyper.get(channel_key, -1))

    return fn


def _combine(op):
    def fn(hyper, masks, input_shapes):
        return functools.reduce(op, [jnp.broadcast_to(m, jnp.broadcast_shapes(*[mm.shape for mm in masks]))
                                     for m in masks])

    return fn


def _elementwise_kinds() -> frozenset:
    from jaxdl.kernels.elementwise_rules import ELEMENTWISE_KINDS

    return frozenset(ELEMENTWISE_KINDS)


_MASK_FNS: dict[str, Callable] = {
    "Identity": _same,
    "Dropout": _same,
    "Aggregate": _same,
    "Dense": _reduce_channels(),
    "GlobalSelfAttention": _reduce_channels(),
    "Conv": _conv_mask,
    "ConvLocal": _conv_mask,
    "AvgPool": _pool_mask,
    "SumPool": _pool_mask,
    "GlobalAvgPool": _global_pool_mask,
    "GlobalSumPool": _global_pool_mask,
    "Flatten": _flatten_mask,
    "FanInSum": _combine(jnp.logical_and),
    "FanInProd": _combine(jnp.logical_or),
    "FanInConcat": _fan_in_concat_mask,
    "DotGeneral": _dot_general_mask,
    "ImageResize": _image_resize_mask,
    "Index": _index_mask,
}


def supports(kind: str) -> bool:
    """Whether a layer kind propagates masks (combinators recurse into their children)."""
    return kind in _MASK_FNS or kind in ("FanOut", "serial", "parallel", "repeat", "Custom") or (
        kind in _elementwise_kinds() and kind not in ("Softmax", "Maxout")
    )


def output_mask(spec, mask, input_shape):
    """The mask of the outputs of the layer ``spec`` (not a combinator) given its
    input mask(s) and input shape(s)."""
    kind = spec.kind
    if kind == "Custom":
        if spec.hyper.get("mask_fn") is None:
            raise NotImplementedError(
                f"{spec.hyper['name']}: masked inputs (mask_constant) need @stax.supports_masking on the layer"
            )
        return spec.hyper["mask_fn"](mask, input_shape)
    if not supports(kind):
        raise NotImplementedError(f"{kind}: masked inputs (mask_constant) are not supported by this layer")
    if kind == "FanOut":
        return [mask] * int(spec.hyper["num"])
    return _MASK_FNS.get(kind, _same)(spec.hyper, mask, input_shape)


# --- the masked forward pass --------------------------------------------------------


def _global_avg_pool_masked(hyper, x, mask):
    """Mean over the unmasked positions only (zero where every position is masked)."""
    ndim = x.ndim
    batch, channel = _axis(hyper.get("batch_axis", 0), ndim), _axis(hyper.get("channel_axis", -1), ndim)
    axes = tuple(i for i in range(ndim) if i not in (batch, channel))
    visible = jnp.sum(~jnp.broadcast_to(mask, x.shape), axis=axes)
    return jnp.sum(x, axis=axes) / jnp.maximum(visible, 1).astype(x.dtype)


_NEEDS_MASK = ("GlobalSelfAttention",)  # apply_fn takes the input mask as ``mask=``


def masked_apply(layer: Layer, params, x, mask_constant=None, **kwargs):
    """``layer.apply`` on masked inputs: zero them, run the layer, return a ``MaskedArray``."""
    spec = layer.spec
    kind = spec.kind if spec is not None else "Layer"
    if spec is None or not supports(kind):
        raise NotImplementedError(f"{kind}: masked inputs (mask_constant) are not supported by this layer")
    masked = get_masked_array(x, mask_constant)
    values, mask = masked.masked_value, masked.mask
    if kind == "GlobalAvgPool" and mask is not None:
        layer.apply(params, values, **kwargs)  # the layer's own input checks
        out = _global_avg_pool_masked(spec.hyper, jnp.asarray(values), mask)
    elif kind in _NEEDS_MASK or kind == "Custom":
        out = layer.apply(params, values, mask=mask, **kwargs)
    else:
        out = layer.apply(params, values, **kwargs)
    shapes = [tuple(v.shape) for v in values] if isinstance(values, (list, tuple)) else tuple(values.shape)
    if mask is None or (isinstance(mask, (list, tuple)) and all(m is None for m in mask)):
        return out
    out_mask = output_mask(spec, mask, shapes)
    if isinstance(out, (list, tuple)):
        return type(out)(MaskedArray(o, m) for o, m in zip(out, out_mask))
    return MaskedArray(out, out_mask)


def with_masking(layer: Layer) -> Layer:
    """``layer`` whose ``apply_fn`` also accepts ``mask_constant=`` and ``MaskedArray``
    inputs; without either it is the original ``apply_fn``, unchanged."""
    if getattr(layer.apply, "_supports_masking", False):
        return layer
    plain = layer

    def apply_fn(params, x, *, mask_constant=None, **kwargs):
        if mask_constant is None and not has_mask(x):
            return plain.apply(params, x, **kwargs)
        return masked_apply(plain, params, x, mask_constant, **kwargs)

    apply_fn.__name__ = getattr(layer.apply, "__name__", "apply_fn")
    apply_fn._supports_masking = True
    return dataclasses.replace(layer, apply=apply_fn)


def channel_mask(mask, channel_axis: int):
    """A kernel-side mask: masked positions are those where every channel is masked."""
    return None if mask is None else _all_channels(jnp.asarray(mask, bool), channel_axis)


__all__ = ["MaskedArray", "get_masked_array", "unmask_fn", "with_masking", "output_mask"]
