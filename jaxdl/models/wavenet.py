"""WaveNet (van den Oord et al., 2016), the seeds' generative model of audio:
a stack of *causal* convolutions (the output at ``t`` sees only inputs
``<= t``) whose *dilations* double from layer to layer, so ``L`` layers with
filters of size 2 see the ``2^L`` most recent samples; each layer is a gated
unit ``z = tanh(W_f * x) ⊙ σ(W_g * x)`` with a residual connection
``x ← x + R z`` and a parameterised skip connection ``s ← s + S z``; the skips
are summed and read out by ``φ → Conv1×1 → φ → Conv1×1``.

Routing both ``x`` and the skip sum ``s`` through ``serial``/``parallel``, which
pass one array or a list, is done by carrying ``concat(x, s)`` along the
channels: ``PadChannels`` starts ``s = 0``, each layer reads its input ``x``
with ``SliceChannels`` and adds ``concat(R z, S z)`` (one 1×1 convolution with
``r + s`` outputs, the same parameters as separate ``R`` and ``S``). These two
channel-routing layers have no infinite-width kernel rule, so WaveNet has no
analytic kernel.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxdl import stax
from jaxdl.models._common import affine_options
from jaxdl.stax.layer import LayerSpec, check_array, check_positive_int, check_shape, make_layer


def _slice_channels(start: int, stop: int):
    """``SliceChannels``: channels ``start, ..., stop - 1`` of the last axis."""
    name = "SliceChannels"

    def check(shape):
        if shape[-1] < stop:
            raise ValueError(f"{name}: expected at least {stop} channels on the last axis, got shape {tuple(shape)}")

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        check(input_shape)
        return input_shape[:-1] + (stop - start,), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, min_ndim=2)
        check(x.shape)
        return x[..., start:stop]

    return make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(start=start, stop=stop)))


def _pad_channels(total: int):
    """``PadChannels``: zero channels appended to the last axis up to ``total``."""
    name = "PadChannels"

    def check(shape):
        if shape[-1] > total:
            raise ValueError(f"{name}: expected at most {total} channels on the last axis, got shape {tuple(shape)}")

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        check(input_shape)
        return input_shape[:-1] + (total,), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, min_ndim=2)
        check(x.shape)
        return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, total - x.shape[-1])])

    return make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(total=total)))


def wavenet(
    out_channels: int = 256,
    *,
    num_layers: int = 10,
    num_stacks: int = 1,
    residual_channels: int = 32,
    dilation_channels: int = 32,
    skip_channels: int = 256,
    filter_size: int = 2,
    W_std: float = 1.0,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """WaveNet: Conv1×1(r) → ``num_stacks`` × [gated layer with dilation 2^l: z = tanh(CausalConv_d(x)) ⊙ σ(CausalConv_d(x)); x += Conv1×1(z); s += Conv1×1(z)] for l < ``num_layers`` → ReLU(s) → Conv1×1 → ReLU → Conv1×1(``out_channels``).

    Inputs ``(batch, time, channels)``; outputs ``(batch, time, out_channels)``
    logits, the output at ``t`` depending on the inputs at ``t - R + 1, ..., t``
    only, with receptive field ``R = num_stacks (filter_size - 1)(2^L - 1) + 1``
    (``2^L`` for one stack of size-2 filters).
    """
    name = "wavenet"
    out_channels = check_positive_int(name, "out_channels", out_channels)
    num_layers = check_positive_int(name, "num_layers", num_layers)
    num_stacks = check_positive_int(name, "num_stacks", num_stacks)
    r = check_positive_int(name, "residual_channels", residual_channels)
    g = check_positive_int(name, "dilation_channels", dilation_channels)
    s = check_positive_int(name, "skip_channels", skip_channels)
    filter_size = check_positive_int(name, "filter_size", filter_size)
    affine = affine_options(name, W_std, b_std, parameterization)

    def causal(dilation):
        return stax.Conv(g, (filter_size,), padding="CAUSAL", rhs_dilation=(dilation,), **affine)

    def gated_layer(dilation):
        gate = stax.serial(
            _slice_channels(0, r),
            stax.FanOut(2),
            stax.parallel(stax.serial(causal(dilation), stax.Tanh()), stax.serial(causal(dilation), stax.Sigmoid())),
            stax.FanInProd(),
            stax.Conv(r + s, (1,), **affine),  # concat(R z, S z)
        )
        return stax.serial(stax.FanOut(2), stax.parallel(gate, stax.Identity()), stax.FanInSum())

    layers = [stax.Conv(r, (1,), **affine), _pad_channels(r + s)]
    for _ in range(num_stacks):
        layers += [gated_layer(2**l) for l in range(num_layers)]
    layers += [
        _slice_channels(r, r + s),
        stax.Relu(),
        stax.Conv(s, (1,), **affine),
        stax.Relu(),
        stax.Conv(out_channels, (1,), **affine),
    ]
    return stax.serial(*layers)
