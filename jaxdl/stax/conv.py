"""Convolutions: ``Conv`` (shared weights), ``ConvTranspose`` and ``ConvLocal``
(locally connected: a separate filter at every output position).

The seeds' CNN chapter: a filter ``w`` slides over the input, ``(w * x)[u] =
sum_t w[t] x[u + t]`` (cross-correlation, as in every deep-learning library),
with stride and padding fixing the output size. Padding is ``'VALID'``,
``'SAME'`` or ``'CIRCULAR'`` (periodic boundary: the input is wrapped around,
so the output has the ``'SAME'`` size).

Parameterizations mirror ``Dense`` with fan-in ``n = in_channels * prod(filter_shape)``:
``'ntk'`` draws ``W, b ~ N(0, 1)`` and scales ``W_std / sqrt(n)``; ``'standard'``
draws ``W ~ N(0, W_std**2 s0 / n)``. Layouts follow ``jax.lax`` dimension
numbers; the default is channels-last (``NHWC`` inputs, ``HWIO`` filters) for
any number of spatial dimensions.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.stax.layer import (
    LayerSpec,
    check_array,
    check_choice,
    check_key,
    check_positive_int,
    check_shape,
    make_layer,
)
from jaxdl.stax.masking import with_masking
from jaxdl.stax.linear import (
    check_parameterization,
    check_std,
    check_width_scaling,
    draw_affine_params,
    scale_affine_output,
)

PADDINGS = ("VALID", "SAME", "CIRCULAR")
# ``Conv`` also takes ``'CAUSAL'``: pad only before the input (by the dilated
# filter's extent minus one), so output ``t`` reads inputs ``<= t`` only.
CONV_PADDINGS = PADDINGS + ("CAUSAL",)


def conv_pads(
    padding: str,
    in_sizes: Sequence[int],
    filter_shape: Sequence[int],
    strides: Sequence[int],
    rhs_dilation: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """Explicit ``(before, after)`` zero-padding per spatial axis of a convolution.

    ``rhs_dilation`` ``d`` spreads a filter of size ``k`` over ``d (k - 1) + 1``
    input positions (the seeds' output size ``floor((x + 2p - d(k-1) - 1)/s) + 1``).
    ``'VALID'``: none; ``'SAME'`` and ``'CIRCULAR'``: ``jax.lax``'s SAME split
    (``CIRCULAR`` fills it by wrapping instead of zeros); ``'CAUSAL'``: all of
    ``d (k - 1)`` before the input, none after.
    """
    dilation = tuple(rhs_dilation or (1,) * len(filter_shape))
    extent = [d * (k - 1) + 1 for k, d in zip(filter_shape, dilation)]
    if padding == "VALID":
        return [(0, 0)] * len(extent)
    if padding == "CAUSAL":
        return [(e - 1, 0) for e in extent]
    return [tuple(p) for p in lax.padtype_to_pads(tuple(in_sizes), extent, tuple(strides), "SAME")]


def default_dimension_numbers(num_spatial: int) -> tuple[str, str, str]:
    """Channels-last specs, e.g. ``('NABC', 'ABIO', 'NABC')`` for 2-D."""
    spatial = "".join(c for c in string.ascii_uppercase if c not in "NCIO")[:num_spatial]
    lhs = "N" + spatial + "C"
    return lhs, spatial + "IO", lhs


def check_window(layer: str, name: str, window, num: int | None = None) -> tuple[int, ...]:
    if not isinstance(window, Sequence) or not window:
        raise ValueError(f"{layer}: expected {name} to be a non-empty tuple of positive ints, got {window!r}")
    window = tuple(check_positive_int(layer, name, w) for w in window)
    if num is not None and len(window) != num:
        raise ValueError(f"{layer}: expected {name} of length {num}, got {window!r}")
    return window


def circular_pad(x: jax.Array, window: Sequence[int], strides: Sequence[int], axes: Sequence[int]) -> jax.Array:
    """Wrap ``x`` around ``axes`` so that a VALID window op gives the SAME output size."""
    pads = lax.padtype_to_pads([x.shape[a] for a in axes], window, strides, "SAME")
    widths = [(0, 0)] * x.ndim
    for axis, pad in zip(axes, pads):
        widths[axis] = tuple(pad)
    return jnp.pad(x, widths, mode="wrap")


def circular_fold(x: jax.Array, axes: Sequence[int], out_shape: Sequence[int]) -> jax.Array:
    """Transpose of :func:`circular_pad` for a transposed convolution: crop ``x``
    to ``out_shape`` around its centre, adding each overhanging entry to the
    position it wraps onto."""
    for axis in axes:
        length, target = x.shape[axis], out_shape[axis]
        wrapped = (jnp.arange(length) - (length - target) // 2) % target
        moved = jnp.moveaxis(x, axis, 0)
        moved = jax.ops.segment_sum(moved, wrapped, num_segments=target)
        x = jnp.moveaxis(moved, 0, axis)
    return x


def _conv(
    name: str,
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str,
    W_std: float,
    b_std: float | None,
    dimension_numbers: tuple[str, str, str] | None,
    parameterization: str,
    s: tuple[int, int],
    W_init,
    rhs_dilation: Sequence[int] | None = None,
):
    out_chan = check_positive_int(name, "out_chan", out_chan)
    if isinstance(filter_shape, Sequence) and len(filter_shape) == 0:
        filter_shape = ()  # no spatial axes: a Dense on the channel axis, as neural-tangents allows
    else:
        filter_shape = check_window(name, "filter_shape", filter_shape)
    num_spatial = len(filter_shape)
    strides = check_window(name, "strides", strides, num_spatial) if strides else (1,) * num_spatial
    padding = check_choice(name, "padding", padding, CONV_PADDINGS if name == "Conv" else PADDINGS)
    if rhs_dilation is not None and name != "Conv":
        raise ValueError(f"{name}: rhs_dilation is only supported by Conv, got {rhs_dilation!r}")
    rhs_dilation = check_window(name, "rhs_dilation", rhs_dilation, num_spatial) if rhs_dilation else (1,) * num_spatial
    extent = tuple(d * (k - 1) + 1 for k, d in zip(filter_shape, rhs_dilation))  # dilated filter size
    W_std = check_std(name, "W_std", W_std)
    b_std = check_std(name, "b_std", b_std, allow_none=True)
    s = check_width_scaling(name, s)
    parameterization = check_parameterization(name, parameterization, W_init)
    if W_init is not None and name == "ConvLocal":
        raise ValueError(f"{name}: W_init is not supported for locally connected filters")
    dimension_numbers = tuple(dimension_numbers or default_dimension_numbers(num_spatial))
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    if not (len(lhs_spec) == len(rhs_spec) == len(out_spec) == num_spatial + 2):
        raise ValueError(
            f"{name}: dimension_numbers {dimension_numbers} do not match "
            f"{num_spatial}-D filter_shape {filter_shape}"
        )
    spatial_specs = [c for c in rhs_spec if c not in "IO"]
    # neural-tangents widens standard Conv/ConvTranspose by s[1] but not ConvLocal
    widened = parameterization == "standard" and name != "ConvLocal"
    width = out_chan * (s[1] if widened else 1)
    lhs_spatial_axes = tuple(lhs_spec.index(c) for c in spatial_specs)
    out_spatial_axes = tuple(out_spec.index(c) for c in spatial_specs)
    shape_padding = "SAME" if padding == "CIRCULAR" else padding
    run_padding = "VALID" if padding == "CIRCULAR" else padding

    def filter_layout(in_chan):
        return [width if c == "O" else in_chan if c == "I" else filter_shape[spatial_specs.index(c)] for c in rhs_spec]

    def lax_padding(spatial_sizes, pad: str):
        """A padding name ``jax.lax`` understands, or explicit pairs for ``'CAUSAL'``."""
        return conv_pads(pad, spatial_sizes, filter_shape, strides, rhs_dilation) if pad == "CAUSAL" else pad

    def raw_op(x, W, op_padding):
        dtype = jnp.result_type(x, W)  # lax convolutions need one dtype (bf16 or int inputs, f32 params)
        x, W = x.astype(dtype), W.astype(dtype)
        if name == "ConvTranspose":
            return lax.conv_transpose(x, W, strides, op_padding, dimension_numbers=dimension_numbers)
        if name == "ConvLocal":
            return lax.conv_general_dilated_local(
                x, W, strides, op_padding, filter_shape, dimension_numbers=dimension_numbers
            )
        op_padding = lax_padding([x.shape[a] for a in lhs_spatial_axes], op_padding)
        return lax.conv_general_dilated(
            x, W, strides, op_padding, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers
        )

    def shared_output_shape(input_shape):
        in_chan = input_shape[lhs_spec.index("C")]
        lhs = jax.ShapeDtypeStruct(tuple(max(d, 1) for d in input_shape), jnp.float32)
        rhs = jax.ShapeDtypeStruct(tuple(filter_layout(in_chan)), jnp.float32)
        if name == "ConvTranspose":
            op = lambda a, b: lax.conv_transpose(a, b, strides, shape_padding, dimension_numbers=dimension_numbers)
        else:
            op = lambda a, b: lax.conv_general_dilated(
                a, b, strides, lax_padding([a.shape[i] for i in lhs_spatial_axes], shape_padding),
                rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            )  # fmt: skip
        out = jax.eval_shape(op, lhs, rhs).shape
        batch = lhs_spec.index("N")
        return tuple(input_shape[batch] if i == out_spec.index("N") else d for i, d in enumerate(out))

    def fan_in(in_chan):
        return in_chan * math.prod(filter_shape)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        input_shape = check_shape(name, input_shape)
        if len(input_shape) != num_spatial + 2:
            raise ValueError(
                f"{name}: expected an input_shape of rank {num_spatial + 2} ({lhs_spec}), got {input_shape}"
            )
        in_chan = input_shape[lhs_spec.index("C")]
        output_shape = shared_output_shape(input_shape)
        if name == "ConvLocal":
            W_shape = [
                width if c == "O" else fan_in(in_chan) if c == "I" else output_shape[out_spec.index(c)]
                for c in rhs_spec
            ]
            b_shape = [1 if c == "N" else output_shape[i] for i, c in enumerate(out_spec)]
        else:
            W_shape = filter_layout(in_chan)
            b_shape = [width if c == "C" else 1 for c in out_spec]
        params = draw_affine_params(key, W_shape, b_shape, fan_in(in_chan), W_std, b_std, parameterization, s)
        if W_init is not None:  # drawn in the (*spatial, in, out) layout its fans assume
            canonical = [W_shape[rhs_spec.index(c)] for c in spatial_specs] + [in_chan, width]
            order = [(spatial_specs + ["I", "O"]).index(c) for c in rhs_spec]
            params["W"] = jnp.transpose(W_init(jax.random.split(key)[0], tuple(canonical)), order)
        return output_shape, params

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, ndim=num_spatial + 2)
        W = params["W"]
        in_chan = x.shape[lhs_spec.index("C")]
        expected = W.shape[rhs_spec.index("I")]
        if name == "ConvLocal":
            expected //= math.prod(filter_shape)
        if in_chan != expected:
            raise ValueError(
                f"{name}: expected {expected} input channels (axis {lhs_spec.index('C')} of {lhs_spec}), "
                f"got input of shape {tuple(x.shape)}"
            )
        if padding == "CIRCULAR" and name != "ConvTranspose":
            x = circular_pad(x, extent, strides, lhs_spatial_axes)
        out = raw_op(x, W, run_padding)
        if padding == "CIRCULAR" and name == "ConvTranspose":
            out = circular_fold(out, out_spatial_axes, shared_output_shape(x.shape))
        return scale_affine_output(out, params, fan_in(in_chan), W_std, b_std, parameterization, s)

    spec = LayerSpec(
        name,
        dict(
            out_chan=out_chan,
            filter_shape=filter_shape,
            strides=strides,
            padding=padding,
            W_std=W_std,
            b_std=b_std,
            dimension_numbers=dimension_numbers,
            parameterization=parameterization,
            s=s,
            W_init=W_init,
            rhs_dilation=rhs_dilation,
        ),
    )
    return with_masking(make_layer(name, init_fn, apply_fn, spec))


def Conv(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
    *,
    W_init=None,
    rhs_dilation: Sequence[int] | None = None,
):
    """Convolution with shared weights over ``len(filter_shape)`` spatial axes.

    ``padding``: ``'VALID'``, ``'SAME'``, ``'CIRCULAR'`` or ``'CAUSAL'`` (the
    seeds' WaveNet convolution: zeros only before the input, so the output at
    ``t`` depends on inputs ``<= t`` alone and, with unit strides, has the
    input's length; applied on every spatial axis). ``rhs_dilation``: the
    seeds' dilated filters, ``y[t] = sum_k w[k] x[t + d k]`` (gaps of ``d - 1``
    between taps); stacking ``d = 1, 2, 4, ...`` grows the receptive field
    exponentially.

    Params: ``{"W": filters in the rhs layout, "b": f[1, ..., 1, out_chan]}``.
    """
    return _conv("Conv", out_chan, filter_shape, strides, padding, W_std, b_std,
                 dimension_numbers, parameterization, s, W_init, rhs_dilation)  # fmt: skip


def ConvTranspose(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
    *,
    W_init=None,
):
    """Transposed convolution (``jax.lax.conv_transpose``): upsamples by ``strides``."""
    return _conv("ConvTranspose", out_chan, filter_shape, strides, padding, W_std, b_std,
                 dimension_numbers, parameterization, s, W_init)  # fmt: skip


def ConvLocal(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
):
    """Locally connected layer: like ``Conv`` but with unshared weights (and biases)
    at every output position (``jax.lax.conv_general_dilated_local``)."""
    return _conv("ConvLocal", out_chan, filter_shape, strides, padding, W_std, b_std,
                 dimension_numbers, parameterization, s, None)  # fmt: skip
