"""Kernel rules of convolutions (shared, transposed, locally connected) and pooling.

A convolution with i.i.d. filter weights mixes covariances only between
positions at the *same* filter offset (seed CNN chapter + NNGP recursion):
``K'[x, x'] = W_std^2 / |F| * sum_t K[s x + t, s x' + t] + b_std^2`` for
shared weights (Novak et al. 2019, "Bayesian deep CNNs with many channels"),
and only its diagonal ``x = x'`` survives for unshared (locally connected)
filters. Pooling sums over all window pairs:
``K'[x, x'] = 1/|W|^2 * sum_{t, t'} K[s x + t, s x' + t']``.

Arrays keep the spatial axes in natural order (see :mod:`jaxdl.kernels.kernel`);
each spatial axis is processed separately (the operations factor over axes).
The padding of each axis follows ``jax.lax``'s ``SAME``/``VALID`` rules;
``CIRCULAR`` wraps the kernel around, as the inputs are wrapped; ``CAUSAL``
pads only before the input. A dilated filter (``rhs_dilation`` ``d``) reads
offsets ``d t``: ``K'[x, x'] = W_std^2 / |F| * sum_t K[s x + d t, s x' + d t]
+ b_std^2``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.kernels.layout import diagonal_pairs, zip_axes
from jaxdl.kernels.requirements import conv_dimension_numbers


def _pads(size: int, window: int, stride: int, padding: str, dilation: int = 1) -> tuple[int, int]:
    extent = dilation * (window - 1) + 1
    if padding == "VALID":
        return (0, 0)
    if padding == "CAUSAL":
        return (extent - 1, 0)
    return tuple(lax.padtype_to_pads((size,), (extent,), (stride,), "SAME")[0])


def _pad_axes(mat, axes, pads, circular: bool):
    widths = [(0, 0)] * mat.ndim
    for axis in axes:
        widths[axis] = pads
    return jnp.pad(mat, widths, mode="wrap" if circular else "constant")


def _window_sum(mat, axes, window: int, stride: int, paired_offsets: bool, dilation: int = 1):
    """Sum ``mat`` over windows along ``axes``.

    ``paired_offsets``: the same offset ``t`` on every axis of ``axes`` (a
    convolution's diagonal filter); otherwise all offset combinations (pooling).
    ``dilation``: the window reads offsets ``0, d, 2d, ...``.
    """
    out_size = (mat.shape[axes[0]] - dilation * (window - 1) - 1) // stride + 1
    if out_size <= 0:  # the window does not fit: an empty output, as in jax.lax
        shape = list(mat.shape)
        for axis in axes:
            shape[axis] = 0
        return jnp.zeros(shape, mat.dtype)

    # Each output reads ``window`` (or ``window**2``) input entries: without the
    # barrier XLA fuses the producer of ``mat`` (e.g. an arc-cosine rule) into
    # every read and recomputes it, and stacked layers multiply that cost.
    mat = lax.optimization_barrier(mat)

    def take(x, axis, offset):
        return lax.slice_in_dim(x, offset, offset + stride * (out_size - 1) + 1, stride, axis)

    if paired_offsets:
        total = None
        for t in range(window):
            part = mat
            for axis in axes:
                part = take(part, axis, dilation * t)
            total = part if total is None else total + part
        return total
    for axis in axes:
        total = None
        for t in range(window):
            part = take(mat, axis, t)
            total = part if total is None else total + part
        mat = total
    return mat


def _spatial_groups(mat, batch_ndim: int, diagonal_spatial: bool):
    """The array axes of each spatial dimension: ``(a,)`` or ``(a, a')``."""
    group = 1 if diagonal_spatial else 2
    n = (mat.ndim - batch_ndim) // group
    return [tuple(batch_ndim + group * i + j for j in range(group)) for i in range(n)]


def conv_covariance(mat, batch_ndim, diagonal_spatial, filter_shape, strides, padding, dilation=None):
    """``1/|F| sum_t K[s x + d t, s x' + d t]`` (natural spatial order), unscaled by W_std."""
    if mat is None or mat.ndim == 0:
        return mat
    dilation = tuple(dilation or (1,) * len(filter_shape))
    for axes, window, stride, d in zip(
        _spatial_groups(mat, batch_ndim, diagonal_spatial), filter_shape, strides, dilation
    ):
        pads = _pads(mat.shape[axes[0]], window, stride, padding, d)
        mat = _pad_axes(mat, axes, pads, padding == "CIRCULAR")
        mat = _window_sum(mat, axes, window, stride, paired_offsets=True, dilation=d) / window
    return mat


def conv_local_covariance(mat, batch_ndim, diagonal_spatial, filter_shape, strides, padding):
    """Unshared filters: the shared rule on the spatial diagonal, zero elsewhere."""
    if mat is None or mat.ndim == 0:
        return mat
    if diagonal_spatial:
        return conv_covariance(mat, batch_ndim, True, filter_shape, strides, padding)
    diag = diagonal_pairs(mat, batch_ndim)
    diag = conv_covariance(diag, batch_ndim, True, filter_shape, strides, padding)
    full = diag  # f[batch..., X, Y, ...]; append X', Y', ... as identity copies
    for i in range(diag.ndim - batch_ndim):
        axis, size = batch_ndim + i, diag.shape[batch_ndim + i]
        shape = [1] * (full.ndim + 1)
        shape[axis] = shape[-1] = size
        full = full[..., None] * jnp.eye(size, dtype=diag.dtype).reshape(shape)
    return zip_axes(full, batch_ndim)


def _transpose_axis(mat, axes, window: int, stride: int, padding: str, paired: bool):
    """Transposed-convolution covariance along one spatial dimension via ``lax.conv_transpose``."""
    n = len(axes)
    moved = jnp.moveaxis(mat, axes, tuple(range(-n, 0)))
    preshape = moved.shape[:-n]
    flat = moved.reshape((-1, 1) + moved.shape[-n:])
    if paired:
        rhs = jnp.diag(jnp.full((window,), 1.0 / window, mat.dtype)).reshape((1, 1, window, window))
        dn = ("NCHW", "OIHW", "NCHW")
    else:
        rhs = jnp.full((1, 1, window), 1.0 / window, mat.dtype)
        dn = ("NCH", "OIH", "NCH")
    run_padding = "VALID" if padding == "CIRCULAR" else padding
    out = lax.conv_transpose(flat, rhs, (stride,) * n, run_padding, dimension_numbers=dn)
    if padding == "CIRCULAR":
        same = jax.eval_shape(
            lambda x: lax.conv_transpose(x, rhs, (stride,) * n, "SAME", dimension_numbers=dn), flat
        ).shape
        for i in range(n):
            out = _circular_fold(out, 2 + i, same[2 + i])
    out = out.reshape(preshape + out.shape[2:])
    return jnp.moveaxis(out, tuple(range(-n, 0)), axes)


def _circular_fold(x, axis: int, target: int):
    """Crop ``axis`` to ``target`` around its centre, adding overhangs where they wrap."""
    length = x.shape[axis]
    wrapped = (jnp.arange(length) - (length - target) // 2) % target
    one_hot = (wrapped[:, None] == jnp.arange(target)[None, :]).astype(x.dtype)
    return jnp.moveaxis(jnp.tensordot(jnp.moveaxis(x, axis, -1), one_hot, axes=1), -1, axis)


def conv_transpose_covariance(mat, batch_ndim, diagonal_spatial, filter_shape, strides, padding):
    if mat is None or mat.ndim == 0:
        return mat
    for axes, window, stride in zip(
        _spatial_groups(mat, batch_ndim, diagonal_spatial), filter_shape, strides
    ):
        mat = _transpose_axis(mat, axes, window, stride, padding, paired=not diagonal_spatial)
    return mat


def pool_covariance(mat, batch_ndim, diagonal_spatial, window_shape, strides, padding, average, normalize_edges):
    """Sum (or average) pooling of a covariance array over all window pairs."""
    if mat is None or mat.ndim == 0:
        return mat
    groups = _spatial_groups(mat, batch_ndim, diagonal_spatial)
    counts = jnp.ones(mat.shape, mat.dtype) if (average and normalize_edges and padding == "SAME") else None
    for axes, window, stride in zip(groups, window_shape, strides):
        pads = _pads(mat.shape[axes[0]], window, stride, padding)
        mat = _pad_axes(mat, axes, pads, padding == "CIRCULAR")
        mat = _window_sum(mat, axes, window, stride, paired_offsets=False)
        if counts is not None:
            counts = _window_sum(_pad_axes(counts, axes, pads, False), axes, window, stride, False)
    if not average:
        return mat
    if counts is not None:
        mat = mat / counts
        # An off-diagonal-free (diagonal) kernel is averaged over both window copies.
        return mat / counts if diagonal_spatial else mat
    size = math.prod(window_shape)
    return mat / (size**2)


def pool_output_shape(shape, window_shape, strides, padding, batch_axis, channel_axis):
    ndim = len(shape)
    non_spatial = (batch_axis % ndim, channel_axis % ndim)
    spatial = [i for i in range(ndim) if i not in non_spatial]
    dims, steps = [1] * ndim, [1] * ndim
    for axis, w, st in zip(spatial, window_shape, strides):
        dims[axis], steps[axis] = w, st
    run = "SAME" if padding == "CIRCULAR" else padding
    out = jax.eval_shape(
        lambda x: lax.reduce_window(x, 0.0, lax.add, dims, steps, run),
        jax.ShapeDtypeStruct(tuple(shape), jnp.float32),
    )
    return tuple(out.shape)


def conv_output_shape(kind, hyper, shape):
    filter_shape = tuple(hyper["filter_shape"])
    lhs_spec, rhs_spec, out_spec = conv_dimension_numbers(hyper, len(filter_shape))
    strides = tuple(hyper.get("strides") or (1,) * len(filter_shape))
    padding = "SAME" if hyper.get("padding", "VALID") == "CIRCULAR" else hyper.get("padding", "VALID")
    spatial_specs = [c for c in rhs_spec if c not in "IO"]
    in_chan = shape[lhs_spec.index("C")]
    rhs = [1 if c == "O" else in_chan if c == "I" else filter_shape[spatial_specs.index(c)] for c in rhs_spec]
    dn = (lhs_spec, rhs_spec, out_spec)
    if kind == "ConvTranspose":
        op = lambda a, b: lax.conv_transpose(a, b, strides, padding, dimension_numbers=dn)
    else:
        dilation = tuple(hyper.get("rhs_dilation") or (1,) * len(filter_shape))
        if padding == "CAUSAL":
            padding = [(d * (k - 1), 0) for k, d in zip(filter_shape, dilation)]
        op = lambda a, b: lax.conv_general_dilated(a, b, strides, padding, rhs_dilation=dilation, dimension_numbers=dn)
    out = jax.eval_shape(
        op,
        jax.ShapeDtypeStruct(tuple(shape), jnp.float32),
        jax.ShapeDtypeStruct(tuple(rhs), jnp.float32),
    ).shape
    standard = hyper.get("parameterization", "ntk") == "standard"
    # neural-tangents' ConvLocal keeps ``out_chan`` channels even under "standard" with s[1] > 1.
    width = hyper["out_chan"] * (hyper.get("s", (1, 1))[1] if standard and kind != "ConvLocal" else 1)
    return tuple(width if i == out_spec.index("C") else d for i, d in enumerate(out))
