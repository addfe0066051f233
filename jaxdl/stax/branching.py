"""Branching layers: ``FanOut`` copies one input into a list; ``FanInSum``,
``FanInProd`` and ``FanInConcat`` merge a list back into one array (residual
connections, the seeds' ResNet and Inception blocks)."""

from __future__ import annotations

import functools
import operator

import jax.numpy as jnp

from jaxdl.stax.layer import LayerSpec, check_array, check_positive_int, check_shape, make_layer
from jaxdl.stax.masking import with_masking


def FanOut(num: int):
    """``x -> [x] * num``."""
    name = "FanOut"
    num = check_positive_int(name, "num", num)

    def init_fn(key, input_shape):
        return [check_shape(name, input_shape)] * num, {}

    def apply_fn(params, x, **kwargs):
        return [check_array(name, x, min_ndim=0)] * num

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(num=num))))


def _check_list(layer: str, items, what: str) -> list:
    if not isinstance(items, (list, tuple)) or not items:
        raise TypeError(f"{layer}: expected a non-empty list of {what}, got {type(items).__name__}")
    return list(items)


def _fan_in_elementwise(name: str, combine):
    def init_fn(key, input_shapes):
        shapes = [check_shape(name, s) for s in _check_list(name, input_shapes, "input shapes")]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{name}: expected inputs of equal shapes, got {shapes}")
        return shapes[0], {}

    def apply_fn(params, xs, **kwargs):
        xs = [check_array(name, x, min_ndim=0) for x in _check_list(name, xs, "arrays")]
        if any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"{name}: expected inputs of equal shapes, got {[tuple(x.shape) for x in xs]}")
        return functools.reduce(combine, xs)

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name)))


def FanInSum():
    """``[x_1, ..., x_k] -> x_1 + ... + x_k``."""
    return _fan_in_elementwise("FanInSum", operator.add)


def FanInProd():
    """``[x_1, ..., x_k] -> x_1 * ... * x_k`` (elementwise)."""
    return _fan_in_elementwise("FanInProd", operator.mul)


def FanInConcat(axis: int = -1):
    """Concatenate the inputs along ``axis``."""
    name = "FanInConcat"

    def out_shape(shapes):
        ndim = len(shapes[0])
        if not -ndim <= axis < ndim or any(len(s) != ndim for s in shapes):
            raise ValueError(f"{name}: expected inputs of equal rank with axis={axis} in range, got {shapes}")
        ax = axis % ndim
        rest = [s[:ax] + s[ax + 1 :] for s in shapes]
        if any(r != rest[0] for r in rest):
            raise ValueError(f"{name}: expected shapes equal except on axis {axis}, got {shapes}")
        sizes = [s[ax] for s in shapes]
        total = -1 if -1 in sizes else sum(sizes)  # an unknown (-1) size keeps the sum unknown
        return shapes[0][:ax] + (total,) + shapes[0][ax + 1 :]

    def init_fn(key, input_shapes):
        shapes = [check_shape(name, s) for s in _check_list(name, input_shapes, "input shapes")]
        return out_shape(shapes), {}

    def apply_fn(params, xs, **kwargs):
        xs = [check_array(name, x) for x in _check_list(name, xs, "arrays")]
        out_shape([tuple(x.shape) for x in xs])
        return jnp.concatenate(xs, axis=axis)

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(axis=axis))))
