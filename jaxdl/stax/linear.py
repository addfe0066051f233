"""Fully-connected and shape layers: ``Dense``, ``Identity``, ``Flatten``, ``Dropout``.

``Dense`` implements both parameterizations of neural-tangents (the seeds' NTK
chapter uses the first):

* ``'ntk'``: ``W_ij ~ N(0, 1)``, ``b_i ~ N(0, 1)`` and
  ``z = W_std / sqrt(n) * x W + b_std * b`` with ``n`` the fan-in;
* ``'standard'``: ``W_ij ~ N(0, W_std**2 s0 / n)``, ``b_i ~ N(0, b_std**2)`` and
  ``z = x W / sqrt(s0) + b``, with ``s = (s0, s1)`` the width multipliers of the
  input and output (``W`` has ``s1 * out_dim`` columns).

Both give the same function distribution at initialisation; they differ in
the gradient scale, hence in the NTK.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

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

PARAMETERIZATIONS = ("ntk", "standard")


def check_std(layer: str, name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{layer}: expected {name} to be a finite float >= 0, got {value!r}")
    return float(value)


def check_width_scaling(layer: str, s) -> tuple[int, int]:
    if not (isinstance(s, (tuple, list)) and len(s) == 2):
        raise ValueError(f"{layer}: expected s to be a pair of positive ints, got {s!r}")
    return (check_positive_int(layer, "s[0]", s[0]), check_positive_int(layer, "s[1]", s[1]))


def check_parameterization(layer: str, parameterization, W_init) -> str:
    parameterization = check_choice(layer, "parameterization", parameterization, PARAMETERIZATIONS)
    if W_init is not None and parameterization != "standard":
        raise ValueError(
            f"{layer}: W_init sets the weight distribution directly, so it needs "
            f"parameterization='standard', got {parameterization!r}"
        )
    return parameterization


def draw_affine_params(key, W_shape, b_shape, fan_in, W_std, b_std, parameterization, s) -> dict:
    """``W`` and (when ``b_std`` is not None) ``b`` for ``Dense``/``Conv``: standard
    normal under 'ntk'; scaled to ``N(0, W_std**2 s0 / fan_in)`` and ``N(0, b_std**2)``
    under 'standard'."""
    key_W, key_b = jax.random.split(key)
    W = jax.random.normal(key_W, tuple(W_shape))
    params = {"W": W if parameterization == "ntk" else W_std * math.sqrt(s[0] / fan_in) * W}
    if b_std is not None:
        b = jax.random.normal(key_b, tuple(b_shape))
        params["b"] = b if parameterization == "ntk" else b_std * b
    return params


def scale_affine_output(out, params, fan_in, W_std, b_std, parameterization, s):
    """Turn the raw product ``x W`` (or ``W * x``) into the layer output of either
    parameterization, adding the bias."""
    if parameterization == "ntk":
        out = W_std / math.sqrt(fan_in) * out
        return out + b_std * params["b"] if "b" in params else out
    out = out / math.sqrt(s[0])
    return out + params["b"] if "b" in params else out


def Dense(
    out_dim: int,
    W_std: float = 1.0,
    b_std: float | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
    *,
    W_init=None,
):
    """Fully-connected layer acting on ``channel_axis``.

    Args:
      out_dim: number of output features (``s[1] * out_dim`` under 'standard').
      W_std: weight standard deviation (before the ``1/sqrt(fan_in)`` scaling).
      b_std: bias standard deviation; ``None`` for no bias.
      batch_axis, channel_axis: axes of the batch and of the features.
      parameterization: ``'ntk'`` or ``'standard'`` (see the module docstring).
      s: width multipliers ``(s_in, s_out)`` of the 'standard' parameterization.
      W_init: optional initialiser ``(key, (fan_in, fan_out)) -> W`` from
        :mod:`jaxdl.stax.initializers`; 'standard' parameterization only.

    Params: ``{"W": f[fan_in, fan_out], "b": f[..., fan_out, ...]}`` (no ``"b"``
    when ``b_std`` is None).
    """
    name = "Dense"
    out_dim = check_positive_int(name, "out_dim", out_dim)
    W_std = check_std(name, "W_std", W_std)
    b_std = check_std(name, "b_std", b_std, allow_none=True)
    s = check_width_scaling(name, s)
    parameterization = check_parameterization(name, parameterization, W_init)
    width = out_dim * (s[1] if parameterization == "standard" else 1)

    def axes(ndim: int) -> tuple[int, int]:
        if not (-ndim <= channel_axis < ndim and -ndim <= batch_axis < ndim):
            raise ValueError(
                f"{name}: channel_axis={channel_axis} and batch_axis={batch_axis} do not "
                f"fit an input of rank {ndim}"
            )
        return batch_axis % ndim, channel_axis % ndim

    def init_fn(key, input_shape):
        key = check_key(name, key)
        input_shape = check_shape(name, input_shape)
        _, channel = axes(len(input_shape))
        fan_in = input_shape[channel]
        if fan_in == -1:
            raise ValueError(f"{name}: the channel axis of input_shape must be known, got -1")
        output_shape = input_shape[:channel] + (width,) + input_shape[channel + 1 :]
        bias_shape = [1] * len(input_shape)
        bias_shape[channel] = width
        params = draw_affine_params(key, (fan_in, width), bias_shape, fan_in, W_std, b_std, parameterization, s)
        if W_init is not None:
            params["W"] = W_init(jax.random.split(key)[0], (fan_in, width))
        return output_shape, params

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        _, channel = axes(x.ndim)
        W = params["W"]
        if x.shape[channel] != W.shape[0]:
            raise ValueError(
                f"{name}: expected {W.shape[0]} features on axis {channel_axis}, "
                f"got input of shape {tuple(x.shape)}"
            )
        out = jnp.moveaxis(jnp.tensordot(x, W, axes=(channel, 0)), -1, channel)
        return scale_affine_output(out, params, W.shape[0], W_std, b_std, parameterization, s)

    spec = LayerSpec(
        name,
        dict(
            out_dim=out_dim,
            W_std=W_std,
            b_std=b_std,
            batch_axis=batch_axis,
            channel_axis=channel_axis,
            parameterization=parameterization,
            s=s,
            W_init=W_init,
        ),
    )
    return with_masking(make_layer(name, init_fn, apply_fn, spec))


def Identity():
    """The identity layer (no parameters)."""

    def init_fn(key, input_shape):
        return check_shape("Identity", input_shape), {}

    def apply_fn(params, x, **kwargs):
        return x

    return with_masking(make_layer("Identity", init_fn, apply_fn, LayerSpec("Identity")))


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0):
    """Flatten every non-batch axis into one feature axis.

    The output is ``(batch, features)`` when ``batch_axis_out`` is 0 (or -2) and
    ``(features, batch)`` when it is 1 (or -1).
    """
    name = "Flatten"
    if batch_axis_out not in (0, 1, -1, -2):
        raise ValueError(f"{name}: expected batch_axis_out in (0, 1, -1, -2), got {batch_axis_out!r}")
    batch_first = batch_axis_out in (0, -2)

    def output_shape(input_shape):
        if not -len(input_shape) <= batch_axis < len(input_shape):
            raise ValueError(
                f"{name}: batch_axis={batch_axis} does not fit an input of rank {len(input_shape)}"
            )
        batch = input_shape[batch_axis]
        others = [d for i, d in enumerate(input_shape) if i != batch_axis % len(input_shape)]
        features = -1 if -1 in others else math.prod(others)  # -1: an unknown size stays unknown
        return (batch, features) if batch_first else (features, batch)

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        return output_shape(input_shape), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        shape = output_shape(x.shape)  # also validates batch_axis against the rank
        # Explicit sizes, not -1: reshape cannot infer -1 for a batch of 0.
        features = shape[1] if batch_first else shape[0]
        out = jnp.moveaxis(x, batch_axis, 0).reshape(x.shape[batch_axis], features)
        return out if batch_first else out.T

    spec = LayerSpec(name, dict(batch_axis=batch_axis, batch_axis_out=batch_axis_out))
    return with_masking(make_layer(name, init_fn, apply_fn, spec))


def Dropout(rate: float, mode: str = "train"):
    """Inverted dropout. ``rate`` is the KEEP probability (neural-tangents' convention).

    In ``'train'`` mode each entry is kept with probability ``rate`` and scaled
    by ``1/rate``, so the mean is unchanged; ``apply_fn`` then needs ``key=``.
    In ``'test'`` mode it is the identity, and so is ``apply_fn(..., train=False)``
    (the flag that stateful models and ``train.fit`` pass at evaluation).
    At inference this equals the seeds' rule of scaling the weights by the keep
    probability in a net trained without the ``1/rate`` factor.
    """
    name = "Dropout"
    mode = check_choice(name, "mode", mode, ("train", "test"))
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
        raise ValueError(f"{name}: expected a keep rate in (0, 1], got {rate!r}")

    def init_fn(key, input_shape):
        return check_shape(name, input_shape), {}

    def apply_fn(params, x, *, key=None, rng=None, train=None, **kwargs):
        x = check_array(name, x, min_ndim=0)
        if mode == "test" or train is False:
            return x
        key = key if key is not None else rng  # `rng` is neural-tangents' spelling
        if key is None:
            raise ValueError(f"{name}: mode='train' needs a PRNG key: apply_fn(params, x, key=key)")
        keep = jax.random.bernoulli(check_key(name, key), rate, x.shape)
        if train is not None and not isinstance(train, bool):  # a traced flag
            keep = keep | ~jnp.asarray(train, bool)
            return jnp.where(keep, x / jnp.where(train, rate, 1.0).astype(x.dtype), jnp.zeros_like(x))
        return jnp.where(keep, x / rate, jnp.zeros_like(x))

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(rate=rate, mode=mode))))
