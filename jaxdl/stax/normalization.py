"""Normalisation layers (the seeds' tricks chapter):

* ``LayerNorm`` standardises each example over ``axis``: ``(x - mean) / sqrt(var + eps)``
  (without the learned gain and bias, as in neural-tangents);
* ``BatchNorm`` standardises each channel over the batch (and spatial) axes,
  ``y = γ (x - μ_B) / sqrt(σ²_B + eps) + β``, and keeps running averages
  ``μ ← m μ + (1 - m) μ_B`` (same for ``σ²``) for evaluation. It is the one
  stateful layer: ``apply_fn(params, x, *, state, train=True) -> (y, new_state)``
  (the convention is in :mod:`jaxdl.stax.layer`);
* ``WeightNorm(layer)`` reparameterises a Dense/Conv weight as ``w = g v / ‖v‖``
  (Salimans & Kingma), one ``g`` per output unit, ``‖·‖`` over the fan-in.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxdl.stax.conv import default_dimension_numbers
from jaxdl.stax.layer import (
    Layer,
    LayerSpec,
    check_array,
    check_shape,
    check_state,
    make_layer,
)
from jaxdl.stax.masking import with_masking


def LayerNorm(axis=-1, eps: float = 1e-12, batch_axis: int = 0, channel_axis: int = -1):
    """Normalise over ``axis`` (an int or a tuple of ints) to zero mean and unit variance."""
    name = "LayerNorm"
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes or not all(isinstance(a, int) for a in axes):
        raise TypeError(f"{name}: expected axis to be an int or a tuple of ints, got {axis!r}")
    if not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"{name}: expected eps >= 0, got {eps!r}")

    def init_fn(key, input_shape):
        return check_shape(name, input_shape), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        if not all(-x.ndim <= a < x.ndim for a in axes):
            raise ValueError(f"{name}: expected an input with axes {axis}, got shape {tuple(x.shape)}")
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        return (x - mean) / (var + eps) ** 0.5

    spec = LayerSpec(name, dict(axis=axis, eps=eps, batch_axis=batch_axis, channel_axis=channel_axis))
    return with_masking(make_layer(name, init_fn, apply_fn, spec))  # masked inputs: a clear NotImplementedError


def BatchNorm(axis: int = -1, momentum: float = 0.99, eps: float = 1e-5):
    """Batch normalisation of the channels on ``axis``, statistics over every other axis.

    Params ``{"scale": f[C], "offset": f[C]}`` (γ = 1, β = 0 at init); state
    ``{"mean": f[C], "var": f[C]}`` (0 and 1 at init). ``train=True`` normalises
    with the batch's mean and biased variance and moves the running averages by
    ``1 - momentum`` (flax's convention); ``train=False`` uses the running averages
    and returns the state unchanged, so evaluation is deterministic and per-example.
    Under ``jit`` with a batch sharded over devices the batch statistics are those
    of the global batch (XLA inserts the all-reduce), as on one device.
    """
    name = "BatchNorm"
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{name}: expected axis to be an int, got {axis!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"{name}: expected momentum in [0, 1), got {momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"{name}: expected eps > 0, got {eps!r}")

    def channels(shape) -> int:
        if len(shape) < 2 or not -len(shape) <= axis < len(shape):
            raise ValueError(f"{name}: expected an input of rank >= 2 with a channel axis {axis}, got shape {tuple(shape)}")
        if axis % len(shape) == 0:
            raise ValueError(f"{name}: the channel axis {axis} cannot be the batch axis 0 of shape {tuple(shape)}")
        return shape[axis]

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        num = channels(input_shape)
        return input_shape, {"scale": jnp.ones((num,)), "offset": jnp.zeros((num,))}

    def state_init(input_shape):
        num = channels(check_shape(name, input_shape))
        return {"mean": jnp.zeros((num,)), "var": jnp.ones((num,))}

    def apply_fn(params, x, *, state=None, train: bool = True, **kwargs):
        x = check_array(name, x, min_ndim=2)
        num = channels(x.shape)
        state = check_state(name, state)
        if not (isinstance(state, dict) and {"mean", "var"} <= set(state)):
            raise ValueError(f"{name}: expected state {{'mean', 'var'}} from init_state, got {state!r:.80}")
        if params["scale"].shape != (num,) or state["mean"].shape != (num,):
            raise ValueError(
                f"{name}: expected {params['scale'].shape[0]} channels on axis {axis}, got shape {tuple(x.shape)}"
            )
        reduce_axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        broadcast = [1] * x.ndim
        broadcast[axis] = num
        batch_mean = x.mean(axis=reduce_axes)
        batch_var = jnp.square(x - batch_mean.reshape(broadcast)).mean(axis=reduce_axes)
        train = jnp.asarray(train, bool)  # a traced flag works too: no static argument under jit
        mean = jnp.where(train, batch_mean, state["mean"])
        var = jnp.where(train, batch_var, state["var"])
        new_state = {
            stat: jnp.where(train, momentum * state[stat] + (1 - momentum) * batch, state[stat]).astype(state[stat].dtype)
            for stat, batch in (("mean", batch_mean), ("var", batch_var))
        }
        inverse_std = jnp.reshape(params["scale"] / jnp.sqrt(var + eps), broadcast)
        y = (x - mean.reshape(broadcast).astype(x.dtype)) * inverse_std.astype(x.dtype)
        return y + params["offset"].reshape(broadcast).astype(x.dtype), new_state

    spec = LayerSpec(name, dict(axis=axis, momentum=momentum, eps=eps))
    return with_masking(make_layer(name, init_fn, apply_fn, spec, state_init))


_WEIGHT_NORMED_KINDS = ("Dense", "Conv", "ConvTranspose")


def _output_axis(spec: LayerSpec, W_ndim: int) -> int:
    if spec.kind == "Dense":
        return W_ndim - 1
    numbers = spec.hyper.get("dimension_numbers") or default_dimension_numbers(W_ndim - 2)
    return numbers[1].index("O")


def WeightNorm(layer, eps: float = 1e-12):
    """``layer`` (a Dense, Conv or ConvTranspose) with its weight written ``W = g v / ‖v‖``.

    Params: the layer's own with ``"W"`` replaced by ``"v"`` (same shape) and ``"g"``
    (one gain per output unit, initialised to ``‖v‖`` so that the initial function
    is the wrapped layer's). ``‖v‖`` is taken over all axes but the output axis;
    ``eps`` keeps a zero ``v`` from dividing by zero.
    """
    name = "WeightNorm"
    if not isinstance(layer, Layer) or layer.spec is None or layer.spec.kind not in _WEIGHT_NORMED_KINDS:
        got = layer.spec.kind if isinstance(layer, Layer) and layer.spec is not None else repr(layer)
        raise TypeError(f"{name}: expected a Dense, Conv or ConvTranspose layer, got {got}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"{name}: expected eps >= 0, got {eps!r}")

    def norm(v):
        out = _output_axis(layer.spec, v.ndim)
        axes = tuple(i for i in range(v.ndim) if i != out)
        return jnp.sqrt(jnp.sum(jnp.square(v), axis=axes) + eps), out

    def init_fn(key, input_shape):
        out_shape, params = layer.init(key, input_shape)
        params = dict(params)
        v = params.pop("W")
        return out_shape, {**params, "v": v, "g": norm(v)[0]}

    def apply_fn(params, x, **kwargs):
        if not isinstance(params, dict) or not {"v", "g"} <= set(params):
            raise ValueError(f"{name}: expected params with 'v' and 'g', got {params!r:.80}")
        v, g = params["v"], params["g"]
        v_norm, out = norm(v)
        shape = [1] * v.ndim
        shape[out] = v.shape[out]
        W = v * jnp.reshape(g / v_norm, shape)
        inner = {k: value for k, value in params.items() if k not in ("v", "g")}
        return layer.apply({**inner, "W": W}, x, **kwargs)

    spec = LayerSpec(name, dict(eps=eps), (layer.spec,))
    return with_masking(make_layer(name, init_fn, apply_fn, spec))
