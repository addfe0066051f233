"""Convolution as the seeds define it: a Toeplitz matrix, a Fourier product, a
receptive field, and a parameter count.

Seed formulas implemented here (CNN chapter):

* **Toeplitz matrix.** The discrete convolution ``(f * h)[u] = sum_t f[t] h[u - t]``
  of ``f in R^n`` with a filter ``h in R^m`` is the product ``H_n^h f`` with the
  banded ``(n + m - 1) x n`` Toeplitz matrix ``H[i, j] = h[i - j]``
  (:func:`toeplitz_matrix`). Deep-learning layers compute the
  cross-correlation ``(h * f)[u] = sum_t h[t] f[u + t]`` instead (the seeds'
  "kernel flipped over"); :func:`conv_matrix` builds the matrix of exactly the
  map ``stax.Conv``/``jax.lax.conv_general_dilated`` compute, with channels
  (``y[u, o] = sum_{t, i} w[t, i, o] x[s u + d t - p, i]``), padding
  (``VALID``/``SAME``/``CIRCULAR``/``CAUSAL``), strides ``s`` and dilation ``d``.
  In 1-D it is a (block) Toeplitz band matrix (:func:`conv1d_matrix`); in 2-D a
  doubly-block Toeplitz matrix: a Toeplitz arrangement of blocks that are
  themselves Toeplitz (:func:`conv2d_matrix`).
* **Fourier.** ``F(f * h) = F f . F h``: :func:`fft_conv` computes the same
  cross-correlation as ``stax.Conv`` with ``jnp.fft`` (pad, transform, multiply
  by the conjugate filter spectrum, sum over input channels, transform back,
  crop, subsample by the stride).
* **Receptive field.** ``T_l^i = {j : W_ij^l != 0}`` for the Toeplitz matrix
  ``W^l``, extended over layers. :func:`receptive_field` walks a stax model's
  spec tree and returns, per spatial axis, ``size`` (how many consecutive
  input positions the field of one output unit spans), ``jump`` (the distance
  in the input between neighbouring output units) and ``start`` (the first
  input index in the field of output 0; negative = padding). Output ``i`` sees
  inputs ``start + i jump, ..., start + i jump + size - 1``. Per layer with
  window ``k``, stride ``s``, dilation ``d`` and leading padding ``p``:
  ``size += d (k - 1) jump``, ``start -= p jump``, ``jump *= s`` (the seeds'
  output size ``floor((x + 2p - d(k - 1) - 1)/s) + 1`` tracks the lengths).
* **Parameter counts** (input ``m x n x c``, ``K`` filters ``p x q``, valid
  padding, stride 1, output ``(m-p+1) x (n-q+1) x K``), :func:`param_counts`:
  convolution ``K (pqc + 1)``; locally connected (same connections, unshared
  weights and biases) ``(pqc + 1)(m-p+1)(n-q+1) K``; fully connected with the
  same outputs ``(mnc + 1)(m-p+1)(n-q+1) K``. The seeds print the last two as
  ``pqc((m-p+1)(n-q+1) + 1) K`` and ``mnc((m-p+1)(n-q+1) + 1) K``, which
  misplace the bias term (one bias per output unit, not ``pqc`` or ``mnc`` per
  filter); the formulas here are the standard ones and equal the parameter
  counts of ``stax.ConvLocal`` and ``stax.Dense`` (tested).

Written by hand: no library offers the Toeplitz matrix of a multi-channel,
strided, padded convolution or a receptive-field walk over stax specs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.stax.conv import CONV_PADDINGS, conv_pads
from jaxdl.stax.layer import Layer, LayerSpec, check_choice

__all__ = [
    "ReceptiveField",
    "conv1d_matrix",
    "conv2d_matrix",
    "conv_matrix",
    "count_params",
    "fft_conv",
    "param_counts",
    "receptive_field",
    "toeplitz_matrix",
]


# --- Toeplitz matrices ------------------------------------------------------------


def toeplitz_matrix(h, n: int) -> jax.Array:
    """The seeds' ``H_n^h in R^{(n + m - 1) x n}`` with ``H[i, j] = h[i - j]``, so that
    ``H @ f`` is the full discrete convolution ``f * h`` (``jnp.convolve(f, h, 'full')``).
    """
    h = jnp.asarray(h)
    if h.ndim != 1 or h.shape[0] == 0:
        raise ValueError(f"toeplitz_matrix: expected a non-empty 1-D filter h, got shape {tuple(h.shape)}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"toeplitz_matrix: expected a positive int n, got {n!r}")
    m = h.shape[0]
    lag = np.arange(n + m - 1)[:, None] - np.arange(n)[None, :]  # i - j
    inside = (lag >= 0) & (lag < m)
    return jnp.where(inside, h[np.clip(lag, 0, m - 1)], jnp.zeros((), h.dtype))


def _check_geometry(name, kernel, spatial, strides, padding, rhs_dilation):
    num = len(spatial)
    if kernel.ndim != num + 2:
        raise ValueError(
            f"{name}: expected a kernel of shape (*filter_shape, in_chan, out_chan) with {num} "
            f"spatial axes, got shape {tuple(kernel.shape)}"
        )
    if not all(isinstance(d, (int, np.integer)) and d > 0 for d in spatial):
        raise ValueError(f"{name}: expected positive spatial sizes, got {tuple(spatial)}")
    strides = tuple(strides or (1,) * num)
    dilation = tuple(rhs_dilation or (1,) * num)
    for what, values in (("strides", strides), ("rhs_dilation", dilation)):
        if len(values) != num or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
            raise ValueError(f"{name}: expected {what} of {num} positive ints, got {values!r}")
    padding = check_choice(name, "padding", padding, CONV_PADDINGS)
    filter_shape = tuple(kernel.shape[:num])
    pads = conv_pads(padding, spatial, filter_shape, strides, dilation)
    extent = [d * (k - 1) + 1 for k, d in zip(filter_shape, dilation)]
    out = tuple((n + lo + hi - e) // s + 1 for n, (lo, hi), e, s in zip(spatial, pads, extent, strides))
    if min(out) <= 0:
        raise ValueError(
            f"{name}: the (dilated) filter of extent {tuple(extent)} does not fit the padded "
            f"input {tuple(spatial)} with padding {padding!r}"
        )
    return filter_shape, strides, dilation, padding, pads, out


def conv_matrix(kernel, input_shape: Sequence[int], strides=None, padding: str = "VALID", rhs_dilation=None):
    """The matrix ``M`` of a convolution layer's linear map: ``vec(y) = M vec(x)``.

    Args:
      kernel: filters ``f[*filter_shape, in_chan, out_chan]`` (the layout of
        ``stax.Conv``'s ``params["W"]`` with default dimension numbers).
      input_shape: one example's shape ``(*spatial, in_chan)`` (channels last).
      strides, padding, rhs_dilation: as in ``stax.Conv`` (padding ``'VALID'``,
        ``'SAME'``, ``'CIRCULAR'`` or ``'CAUSAL'``).

    Returns:
      ``f[prod(out_spatial) * out_chan, prod(spatial) * in_chan]`` acting on
      ``x.reshape(-1)`` and giving ``y.reshape(-1)`` (row-major, channels last),
      where ``y = lax.conv_general_dilated(x[None], kernel, ...)[0]``: the raw
      cross-correlation, before ``stax.Conv``'s ``W_std / sqrt(fan_in)`` scale and
      bias. Works under ``jit``/``grad`` in ``kernel``.
    """
    name = "conv_matrix"
    kernel = jnp.asarray(kernel)
    input_shape = tuple(input_shape)
    if len(input_shape) < 2:
        raise ValueError(f"{name}: expected input_shape (*spatial, in_chan), got {input_shape!r}")
    spatial, in_chan = input_shape[:-1], input_shape[-1]
    filter_shape, strides, dilation, padding, pads, out = _check_geometry(
        name, kernel, spatial, strides, padding, rhs_dilation
    )
    if kernel.shape[-2] != in_chan:
        raise ValueError(f"{name}: kernel has {kernel.shape[-2]} input channels, input_shape has {in_chan}")
    out_chan = kernel.shape[-1]
    # For every (output position, filter tap): the input position it reads.
    out_grid = np.stack(np.meshgrid(*[np.arange(o) for o in out], indexing="ij"), -1).reshape(-1, len(out))
    tap_grid = np.stack(np.meshgrid(*[np.arange(k) for k in filter_shape], indexing="ij"), -1).reshape(
        -1, len(out)
    )
    pos = (
        out_grid[:, None, :] * np.asarray(strides)
        + tap_grid[None, :, :] * np.asarray(dilation)
        - np.asarray([lo for lo, _ in pads])
    )  # [outputs, taps, axes]
    size = np.asarray(spatial)
    if padding == "CIRCULAR":
        pos, valid = pos % size, np.ones(pos.shape[:2], bool)
    else:
        valid = np.all((pos >= 0) & (pos < size), axis=-1)
    flat_in = np.ravel_multi_index(tuple(np.clip(pos, 0, size - 1).transpose(2, 0, 1)), spatial)
    o_idx, t_idx = np.nonzero(valid)
    taps = kernel.reshape(-1, in_chan, out_chan)
    M = jnp.zeros((out_grid.shape[0], math.prod(spatial), in_chan, out_chan), kernel.dtype)
    M = M.at[o_idx, flat_in[o_idx, t_idx]].add(taps[t_idx])  # CIRCULAR may wrap a tap twice
    return jnp.transpose(M, (0, 3, 1, 2)).reshape(out_grid.shape[0] * out_chan, -1)


def conv1d_matrix(kernel, length: int, stride: int = 1, padding: str = "VALID", dilation: int = 1):
    """Toeplitz (band) matrix of a 1-D convolution over a signal of ``length``.

    ``kernel``: ``f[k]`` (one channel) or ``f[k, in_chan, out_chan]``. With one
    channel, stride 1 and ``'VALID'`` padding, ``M[u, j] = kernel[j - u]``: every
    NW-SE diagonal is constant (the seeds' Toeplitz matrix of the cross-correlation).
    """
    kernel = jnp.asarray(kernel)
    if kernel.ndim == 1:
        kernel = kernel[:, None, None]
    in_chan = kernel.shape[-2] if kernel.ndim == 3 else 1
    return conv_matrix(kernel, (length, in_chan), (stride,), padding, (dilation,))


def conv2d_matrix(kernel, input_hw: Sequence[int], strides=(1, 1), padding: str = "VALID", rhs_dilation=(1, 1)):
    """Doubly-block Toeplitz matrix of a 2-D convolution over an ``H x W`` image.

    ``kernel``: ``f[p, q]`` (one channel) or ``f[p, q, in_chan, out_chan]``. With one
    channel, stride 1 and ``'VALID'`` padding the matrix is made of ``W_out x W``
    blocks, block ``(a, b)`` being the 1-D Toeplitz matrix of kernel row ``b - a``
    (zero outside ``0 <= b - a < p``): Toeplitz blocks in a Toeplitz pattern.
    """
    kernel = jnp.asarray(kernel)
    if kernel.ndim == 2:
        kernel = kernel[:, :, None, None]
    if len(tuple(input_hw)) != 2:
        raise ValueError(f"conv2d_matrix: expected input_hw (height, width), got {input_hw!r}")
    in_chan = kernel.shape[-2] if kernel.ndim == 4 else 1
    return conv_matrix(kernel, (*tuple(input_hw), in_chan), strides, padding, rhs_dilation)


# --- FFT convolution ----------------------------------------------------------------


def fft_conv(x, kernel, strides=None, padding: str = "VALID", rhs_dilation=None) -> jax.Array:
    """Cross-correlation by the Fourier product, equal to ``stax.Conv``'s raw
    ``lax.conv_general_dilated`` (channels last, before scale and bias).

    Args:
      x: inputs ``f[batch, *spatial, in_chan]``.
      kernel: ``f[*filter_shape, in_chan, out_chan]``.
      strides, padding, rhs_dilation: as in ``stax.Conv``.

    The padded input (zeros, or wrapped for ``'CIRCULAR'``) of length ``P`` and
    the dilated filter, zero-filled to ``P``, are transformed with ``jnp.fft.rfftn``;
    ``sum_t w[t] x[u + t] = IFFT(FFT(x) conj(FFT(w)))[u]`` holds without
    wrap-around for ``u <= P - extent``, the outputs kept before striding.
    """
    name = "fft_conv"
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    if x.ndim < 3:
        raise ValueError(f"{name}: expected inputs (batch, *spatial, in_chan), got shape {tuple(x.shape)}")
    spatial = x.shape[1:-1]
    filter_shape, strides, dilation, padding, pads, out = _check_geometry(
        name, kernel, spatial, strides, padding, rhs_dilation
    )
    if kernel.shape[-2] != x.shape[-1]:
        raise ValueError(f"{name}: kernel has {kernel.shape[-2]} input channels, x has {x.shape[-1]}")
    num = len(spatial)
    widths = [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)]
    x = jnp.pad(x, widths, mode="wrap" if padding == "CIRCULAR" else "constant")
    padded = x.shape[1:-1]
    # Dilate the filter (insert d - 1 zeros between taps), then zero-fill to the padded size.
    extent = [d * (k - 1) + 1 for k, d in zip(filter_shape, dilation)]
    dilated = jnp.zeros((*extent, *kernel.shape[-2:]), kernel.dtype)
    dilated = dilated.at[tuple(slice(None, None, d) for d in dilation)].set(kernel)
    dilated = jnp.pad(dilated, [(0, p - e) for p, e in zip(padded, extent)] + [(0, 0), (0, 0)])
    axes_x, axes_w = tuple(range(1, num + 1)), tuple(range(num))
    X = jnp.fft.rfftn(x, axes=axes_x)
    Wf = jnp.conj(jnp.fft.rfftn(dilated, axes=axes_w))
    Y = jnp.einsum("b...i,...io->b...o", X, Wf)
    y = jnp.fft.irfftn(Y, s=padded, axes=axes_x).astype(jnp.result_type(x.dtype, kernel.dtype))
    crop = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, strides))
    return y[(slice(None), *crop, slice(None))]


# --- receptive fields -----------------------------------------------------------------


class ReceptiveField(NamedTuple):
    """Receptive field along one spatial axis: output ``i`` sees the inputs
    ``start + i * jump, ..., start + i * jump + size - 1`` (indices outside
    ``[0, length)`` are padding, or wrapped positions for ``'CIRCULAR'``)."""

    size: int
    jump: int
    start: int

    def interval(self, i: int) -> tuple[int, int]:
        """First and last input index in the field of output ``i``."""
        first = self.start + i * self.jump
        return first, first + self.size - 1


# Layers that act on each spatial position separately (no spatial mixing).
_POINTWISE = frozenset({
    "ABRelu", "Relu", "LeakyRelu", "Abs", "Erf", "Gelu", "Sigmoid_like", "Sign", "Sin", "Cos", "Rbf",
    "Exp", "Gaussian", "Monomial", "RectifiedMonomial", "Polynomial", "Hermite", "Gabor", "Elementwise",
    "ElementwiseNumerical", "Tanh", "Sigmoid", "Softplus", "Elu", "Identity", "Dropout", "BatchNorm",
    "PadChannels", "SliceChannels",  # jaxdl.models.wavenet's channel routing (channel axis only)
})  # fmt: skip
_WINDOWED = frozenset({"Conv", "ConvLocal", "AvgPool", "SumPool", "MaxPool"})


class _Branch(NamedTuple):
    shape: tuple[int, ...]  # current array shape (batch included)
    fields: dict[int, ReceptiveField]  # spatial array axis -> field


def _fail(kind: str, why: str):
    raise ValueError(f"receptive_field: cannot analyse {kind}: {why}")


def _channel_axis_of(hyper, ndim):
    return hyper.get("channel_axis", -1) % ndim


def _windowed(spec: LayerSpec, branch: _Branch) -> _Branch:
    h, kind = spec.hyper, spec.kind
    ndim = len(branch.shape)
    if kind in ("Conv", "ConvLocal"):
        window = tuple(h["filter_shape"])
        lhs_spec, rhs_spec, _ = h.get("dimension_numbers") or (None, None, None)
        num = len(window)
        if lhs_spec is None:
            axes = tuple(range(1, num + 1))
        else:
            if lhs_spec != h["dimension_numbers"][2]:
                _fail(kind, f"input and output layouts differ ({h['dimension_numbers']})")
            axes = tuple(lhs_spec.index(c) for c in rhs_spec if c not in "IO")
        dilation = tuple(h.get("rhs_dilation") or (1,) * num)
    else:
        window = tuple(h["window_shape"])
        num = len(window)
        skip = (h.get("batch_axis", 0) % ndim, _channel_axis_of(h, ndim))
        axes = tuple(i for i in range(ndim) if i not in skip)
        dilation = (1,) * num
    if num == 0:  # Conv with filter_shape=(): a Dense on the channels
        return branch
    strides = tuple(h.get("strides") or (1,) * num)
    if set(axes) != set(branch.fields):
        _fail(kind, f"its spatial axes {axes} are not the input's spatial axes {tuple(sorted(branch.fields))}")
    sizes = [branch.shape[a] for a in axes]
    pads = conv_pads(h.get("padding", "VALID"), sizes, window, strides, dilation)
    shape, fields = list(branch.shape), dict(branch.fields)
    for axis, n, k, s, d, (lo, hi) in zip(axes, sizes, window, strides, dilation, pads):
        extent = d * (k - 1) + 1
        rf = fields[axis]
        fields[axis] = ReceptiveField(rf.size + (extent - 1) * rf.jump, rf.jump * s, rf.start - lo * rf.jump)
        shape[axis] = (n + lo + hi - extent) // s + 1
        if shape[axis] <= 0:
            _fail(kind, f"its window of extent {extent} does not fit axis {axis} of size {n}")
    return _Branch(tuple(shape), fields)


def _merge(kind: str, branches: list[_Branch], concat_axis=None) -> _Branch:
    first = branches[0]
    fields = {}
    for axis in first.fields:
        group = [b.fields[axis] for b in branches]
        if len({b.shape[axis] for b in branches}) != 1 or len({rf.jump for rf in group}) != 1:
            _fail(kind, f"its branches have different sizes or strides along axis {axis}")
        start = min(rf.start for rf in group)
        end = max(rf.start + rf.size for rf in group)
        fields[axis] = ReceptiveField(end - start, group[0].jump, start)
    shape = list(first.shape)
    if concat_axis is not None:
        shape[concat_axis] = sum(b.shape[concat_axis] for b in branches)
    return _Branch(tuple(shape), fields)


def _walk(spec: LayerSpec | None, branches: list[_Branch]) -> list[_Branch]:
    if spec is None:
        _fail("a layer without a spec", "it carries no LayerSpec")
    kind, h = spec.kind, spec.hyper
    if kind == "serial":
        for child in spec.children:
            branches = _walk(child, branches)
        return branches
    if kind == "repeat":
        for _ in range(int(h["n"])):
            branches = _walk(spec.children[0], branches)
        return branches
    if kind == "WeightNorm":
        return _walk(spec.children[0], branches)
    if kind == "parallel":
        if len(branches) != len(spec.children):
            _fail(kind, f"{len(spec.children)} layers in parallel but {len(branches)} inputs")
        return [_walk(child, [b])[0] for child, b in zip(spec.children, branches)]
    if kind == "FanOut":
        if len(branches) != 1:
            _fail(kind, "expected a single input")
        return branches * int(h["num"])
    if kind in ("FanInSum", "FanInProd", "FanInConcat"):
        concat_axis = None
        if kind == "FanInConcat":
            concat_axis = h.get("axis", -1) % len(branches[0].shape)
            if concat_axis in branches[0].fields:
                _fail(kind, "it concatenates along a spatial axis")
        return [_merge(kind, branches, concat_axis)]
    if len(branches) != 1:
        _fail(kind, f"it takes one input, got {len(branches)} branches (missing FanIn?)")
    (branch,) = branches
    ndim = len(branch.shape)
    channel = next(i for i in range(ndim) if i not in branch.fields and i != 0)
    if kind in _WINDOWED:
        return [_windowed(spec, branch)]
    if kind in _POINTWISE:
        return [branch]
    if kind in ("Dense", "Softmax", "Maxout", "LayerNorm"):
        axes = h.get("axis", h.get("channel_axis", -1))
        axes = {a % ndim for a in (axes if isinstance(axes, (tuple, list)) else (axes,))}
        if axes != {channel}:
            _fail(kind, f"it mixes axes {sorted(axes)}, not just the channel axis {channel}")
        shape = list(branch.shape)
        if kind == "Dense":
            shape[channel] = int(h["out_dim"])
        return [_Branch(tuple(shape), branch.fields)]
    _fail(kind, "only serial/repeat/parallel/FanOut/FanIn*, Conv/ConvLocal, pooling, channel-wise and "
          "pointwise layers are supported (Flatten, global pooling and attention mix all positions)")  # fmt: skip


def receptive_field(layer, input_shape: Sequence[int], channel_axis: int = -1) -> tuple[ReceptiveField, ...]:
    """Receptive field of a stax model's outputs on its input, per spatial axis.

    Args:
      layer: a stax ``Layer`` (or its ``LayerSpec``) built from ``serial``,
        ``repeat``, ``parallel``/``FanOut``/``FanIn*``, ``Conv``/``ConvLocal``
        (any padding, strides, ``rhs_dilation``), ``AvgPool``/``SumPool``/
        ``MaxPool``, pointwise activations and channel-wise ``Dense``. Branches
        are merged by taking the union of their fields (they must share the
        stride). ``BatchNorm``'s statistics are treated as constants (eval mode).
      input_shape: ``(batch, *spatial, channels)`` (or with ``channel_axis`` elsewhere;
        the batch is axis 0).

    Returns:
      One :class:`ReceptiveField` ``(size, jump, start)`` per spatial axis, in
      array order.

    Raises:
      ValueError: naming the first layer it cannot analyse (``Flatten``, global
        pooling, attention, ``ConvTranspose``, ...).
    """
    spec = layer.spec if isinstance(layer, Layer) else layer
    if not isinstance(spec, LayerSpec):
        raise TypeError(f"receptive_field: expected a stax Layer or LayerSpec, got {type(layer).__name__}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) < 3 or any(d <= 0 for d in shape[1:]):
        raise ValueError(
            f"receptive_field: expected input_shape (batch, *spatial, channels) with positive sizes, got {shape}"
        )
    channel = channel_axis % len(shape)
    if channel == 0:
        raise ValueError("receptive_field: the channel axis cannot be the batch axis 0")
    fields = {a: ReceptiveField(1, 1, 0) for a in range(1, len(shape)) if a != channel}
    branches = _walk(spec, [_Branch(shape, fields)])
    if len(branches) != 1:
        raise ValueError(f"receptive_field: the model ends in {len(branches)} branches; merge them with a FanIn layer")
    return tuple(branches[0].fields[a] for a in sorted(branches[0].fields))


# --- parameter counts -------------------------------------------------------------------


def param_counts(m: int, n: int, c: int, p: int, q: int, K: int) -> dict[str, int]:
    """Parameters of three layers mapping an ``m x n x c`` input to the
    ``(m-p+1) x (n-q+1) x K`` output of ``K`` valid, stride-1 ``p x q`` filters.

    Returns ``{"conv": K (pqc + 1), "locally_connected": (pqc + 1)(m-p+1)(n-q+1) K,
    "fully_connected": (mnc + 1)(m-p+1)(n-q+1) K}`` (weights plus one bias per
    filter, resp. per output unit; see the module docstring on the seeds' misprint).
    """
    values = dict(m=m, n=n, c=c, p=p, q=q, K=K)
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"param_counts: expected {key} to be a positive int, got {v!r}")
    if p > m or q > n:
        raise ValueError(f"param_counts: the {p}x{q} filter does not fit the {m}x{n} input")
    outputs = (m - p + 1) * (n - q + 1) * K
    return {
        "conv": K * (p * q * c + 1),
        "locally_connected": (p * q * c + 1) * outputs,
        "fully_connected": (m * n * c + 1) * outputs,
    }


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
