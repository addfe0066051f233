"""Combinators that build models from layers: ``serial`` (composition),
``parallel`` (one layer per input of a list) and ``repeat`` (the same layer
shape ``n`` times, compiled as one ``lax.scan``).

Parameters of a combinator are a dict keyed ``"<LayerName>_<position>"``, e.g.
``{"Dense_0": {"W", "b"}, "Relu_1": {}, "Dense_2": {...}}``; ``repeat`` stacks
its layer's parameters along a new leading axis of size ``n``.
"""

from __future__ import annotations

import jax
from jax import lax

from jaxdl.stax.layer import Layer, LayerSpec, check_key, check_positive_int, check_shape, make_layer


def as_layer(layer, where: str) -> Layer:
    """A ``Layer``, or any ``(init_fn, apply_fn, kernel_fn)`` triple wrapped as one."""
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, tuple) and len(layer) == 3 and all(callable(f) for f in layer):
        return Layer(*layer, name="Layer")
    raise TypeError(f"{where}: expected stax layers (init_fn, apply_fn, kernel_fn), got {layer!r}")


def _names(layers) -> list[str]:
    return [f"{layer.name}_{i}" for i, layer in enumerate(layers)]


def _split(key, num: int):
    return [None] * num if key is None else list(jax.random.split(key, num))


def _apply(layer: Layer, params, x, key, kwargs):
    return layer.apply(params, x, **kwargs) if key is None else layer.apply(params, x, key=key, **kwargs)


def serial(*layers):
    """Compose ``layers`` left to right: ``serial(f, g)(x) = g(f(x))``."""
    name = "serial"
    if not layers:
        raise ValueError(f"{name}: expected at least one layer, got none")
    layers = [as_layer(layer, name) for layer in layers]
    names = _names(layers)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        params = {}
        for layer_name, layer, layer_key in zip(names, layers, jax.random.split(key, len(layers))):
            input_shape, params[layer_name] = layer.init(layer_key, input_shape)
        return input_shape, params

    def apply_fn(params, x, *, key=None, rng=None, **kwargs):
        keys = _split(key if key is not None else rng, len(layers))
        for layer_name, layer, layer_key in zip(names, layers, keys):
            x = _apply(layer, params[layer_name], x, layer_key, kwargs)
        return x

    spec = LayerSpec(name, {}, tuple(layer.spec for layer in layers))
    return make_layer(name, init_fn, apply_fn, spec)


def parallel(*layers):
    """Apply ``layers[i]`` to the ``i``-th input of a list: ``[x_1, ..., x_k] -> [f_1(x_1), ..., f_k(x_k)]``."""
    name = "parallel"
    if not layers:
        raise ValueError(f"{name}: expected at least one layer, got none")
    layers = [as_layer(layer, name) for layer in layers]
    names = _names(layers)

    def check_list(items, what):
        if not isinstance(items, (list, tuple)) or len(items) != len(layers):
            got = len(items) if isinstance(items, (list, tuple)) else type(items).__name__
            raise ValueError(f"{name}: expected a list of {len(layers)} {what}, got {got}")
        return items

    def init_fn(key, input_shapes):
        key = check_key(name, key)
        check_list(input_shapes, "input shapes")
        shapes, params = [], {}
        for layer_name, layer, shape, layer_key in zip(
            names, layers, input_shapes, jax.random.split(key, len(layers))
        ):
            out_shape, params[layer_name] = layer.init(layer_key, shape)
            shapes.append(out_shape)
        return shapes, params

    def apply_fn(params, xs, *, key=None, rng=None, **kwargs):
        check_list(xs, "inputs")
        keys = _split(key if key is not None else rng, len(layers))
        return [
            _apply(layer, params[layer_name], x, layer_key, kwargs)
            for layer_name, layer, x, layer_key in zip(names, layers, xs, keys)
        ]

    spec = LayerSpec(name, {}, tuple(layer.spec for layer in layers))
    return make_layer(name, init_fn, apply_fn, spec)


def repeat(layer, n: int):
    """``layer`` composed ``n`` times with independent parameters, as one ``lax.scan``
    (fast to compile for deep nets). ``layer`` must keep its input shape."""
    name = "repeat"
    layer = as_layer(layer, name)
    n = check_positive_int(name, "n", n)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        input_shape = check_shape(name, input_shape)
        out_shape, _ = layer.init(key, input_shape)
        if tuple(out_shape) != input_shape:
            raise ValueError(
                f"{name}: the repeated layer must keep its input shape {input_shape}, "
                f"got {tuple(out_shape)}; use serial(*[layer] * n) instead"
            )
        params = jax.vmap(lambda k: layer.init(k, input_shape)[1])(jax.random.split(key, n))
        return input_shape, params

    def apply_fn(params, x, *, key=None, rng=None, **kwargs):
        key = key if key is not None else rng

        def body(x, params_and_key):
            layer_params, layer_key = params_and_key
            return _apply(layer, layer_params, x, layer_key, kwargs), None

        keys = None if key is None else jax.random.split(key, n)
        x, _ = lax.scan(body, x, (params, keys))
        return x

    spec = LayerSpec(name, dict(n=n), (layer.spec,))
    return make_layer(name, init_fn, apply_fn, spec)
