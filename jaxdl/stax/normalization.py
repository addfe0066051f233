"""Normalisation layers. ``LayerNorm`` standardises each example over ``axis``:
``(x - mean) / sqrt(var + eps)`` (the seeds' layer normalisation, without the
learned gain and bias, as in neural-tangents)."""

from __future__ import annotations

from jaxdl.stax.layer import LayerSpec, check_array, check_shape, make_layer


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
    return make_layer(name, init_fn, apply_fn, spec)
