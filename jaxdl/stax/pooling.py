"""Pooling layers: windowed ``AvgPool``, ``SumPool``, ``MaxPool`` and the global
``GlobalAvgPool``/``GlobalSumPool`` that remove every spatial axis.

The seeds' CNN chapter: pooling aggregates a window of activations into one,
giving invariance to small shifts. Spatial axes are all axes other than
``batch_axis`` and ``channel_axis``. ``'CIRCULAR'`` padding wraps the input
around (periodic boundary). ``MaxPool`` has no infinite-width kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.stax.conv import PADDINGS, check_window, circular_pad
from jaxdl.stax.layer import LayerSpec, check_array, check_choice, check_shape, make_layer
from jaxdl.stax.masking import with_masking


def _non_spatial(layer: str, ndim: int, batch_axis: int, channel_axis: int) -> tuple[int, int]:
    if not (-ndim <= batch_axis < ndim and -ndim <= channel_axis < ndim):
        raise ValueError(
            f"{layer}: batch_axis={batch_axis} and channel_axis={channel_axis} do not fit rank {ndim}"
        )
    batch, channel = batch_axis % ndim, channel_axis % ndim
    if batch == channel:
        raise ValueError(f"{layer}: batch_axis and channel_axis must differ, both are axis {batch}")
    return batch, channel


def _pool(
    name: str,
    window_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str,
    normalize_edges: bool,
    batch_axis: int,
    channel_axis: int,
):
    window_shape = check_window(name, "window_shape", window_shape)
    num_spatial = len(window_shape)
    strides = check_window(name, "strides", strides, num_spatial) if strides else (1,) * num_spatial
    padding = check_choice(name, "padding", padding, PADDINGS)
    reducer, init_value = (lax.max, -jnp.inf) if name == "MaxPool" else (lax.add, 0.0)

    def spatial_axes(ndim: int) -> tuple[int, ...]:
        if ndim != num_spatial + 2:
            raise ValueError(
                f"{name}: expected an input of rank {num_spatial + 2} for a {num_spatial}-D window, "
                f"got rank {ndim}"
            )
        skip = _non_spatial(name, ndim, batch_axis, channel_axis)
        return tuple(i for i in range(ndim) if i not in skip)

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        axes = spatial_axes(x.ndim)
        dims, steps = [1] * x.ndim, [1] * x.ndim
        for axis, w, st in zip(axes, window_shape, strides):
            dims[axis], steps[axis] = w, st
        if padding == "CIRCULAR":
            x = circular_pad(x, window_shape, strides, axes)
        run_padding = "VALID" if padding == "CIRCULAR" else padding
        out = lax.reduce_window(x, np.asarray(init_value, x.dtype), reducer, dims, steps, run_padding)
        if name != "AvgPool":
            return out
        if normalize_edges and padding == "SAME":
            counts = lax.reduce_window(jnp.ones_like(x), np.asarray(0.0, x.dtype), lax.add, dims, steps, "SAME")
            return out / counts
        return out / math.prod(window_shape)

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        batch = _non_spatial(name, len(input_shape), batch_axis, channel_axis)[0]
        dummy = jax.ShapeDtypeStruct(tuple(max(d, 1) for d in input_shape), jnp.float32)
        out = list(jax.eval_shape(lambda x: apply_fn({}, x), dummy).shape)
        out[batch] = input_shape[batch]
        return tuple(out), {}

    hyper = dict(window_shape=window_shape, strides=strides, padding=padding,
                 batch_axis=batch_axis, channel_axis=channel_axis)  # fmt: skip
    if name == "AvgPool":
        hyper["normalize_edges"] = normalize_edges
    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, hyper)))


def AvgPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    normalize_edges: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Average over windows. With ``'SAME'`` padding, ``normalize_edges=True``
    divides by the number of real (unpadded) entries instead of the window size."""
    return _pool("AvgPool", window_shape, strides, padding, normalize_edges, batch_axis, channel_axis)


def SumPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Sum over windows."""
    return _pool("SumPool", window_shape, strides, padding, False, batch_axis, channel_axis)


def MaxPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Maximum over windows (finite width only: no infinite-width kernel)."""
    return _pool("MaxPool", window_shape, strides, padding, False, batch_axis, channel_axis)


def _global_pool(name: str, batch_axis: int, channel_axis: int):
    reduce = jnp.mean if name == "GlobalAvgPool" else jnp.sum

    def keep_axes(ndim: int) -> tuple[int, int]:
        if ndim < 2:
            raise ValueError(f"{name}: expected an input of rank >= 2, got rank {ndim}")
        return _non_spatial(name, ndim, batch_axis, channel_axis)

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        keep = keep_axes(len(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i in keep), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        keep = keep_axes(x.ndim)
        spatial = tuple(i for i in range(x.ndim) if i not in keep)
        if name == "GlobalAvgPool" and any(x.shape[i] == 0 for i in spatial):  # a mean of nothing is NaN
            raise ValueError(f"{name}: expected non-empty spatial axes, got shape {tuple(x.shape)}")
        return reduce(x, axis=spatial)

    spec = LayerSpec(name, dict(batch_axis=batch_axis, channel_axis=channel_axis))
    return with_masking(make_layer(name, init_fn, apply_fn, spec))


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1):
    """Average over (and remove) every spatial axis."""
    return _global_pool("GlobalAvgPool", batch_axis, channel_axis)


def GlobalSumPool(batch_axis: int = 0, channel_axis: int = -1):
    """Sum over (and remove) every spatial axis."""
    return _global_pool("GlobalSumPool", batch_axis, channel_axis)
