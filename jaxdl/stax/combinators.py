"""Combinators that build models from layers: ``serial`` (composition),
``parallel`` (one layer per input of a list) and ``repeat`` (the same layer
shape ``n`` times, compiled as one ``lax.scan``).

Parameters of a combinator are a dict keyed ``"<LayerName>_<position>"``, e.g.
``{"Dense_0": {"W", "b"}, "Relu_1": {}, "Dense_2": {...}}``; ``repeat`` stacks
its layer's parameters along a new leading axis of size ``n``. Params may also
be given by position, as neural-tangents' tuples (``(p0, p1, p2)``) or as the
dict of another model with the same structure (``"Erf_1"`` where this model
says ``"Relu_1"``): the ``_<position>`` suffix decides.

A combinator is stateful exactly when one of its layers is (see
:mod:`jaxdl.stax.layer`): its state is a dict keyed like its params holding
only the stateful layers' states, and its ``apply_fn`` then takes ``state=``
and returns ``(y, new_state)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.stax.layer import (
    Layer,
    LayerSpec,
    check_key,
    check_shape,
    check_state,
    make_layer,
    output_shape,
)


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


def _position(name: str) -> int | None:
    suffix = name.rpartition("_")[2] if isinstance(name, str) else ""
    return int(suffix) if suffix.isdigit() else None


def child_params(where: str, params, names: list[str]) -> list:
    """The params of each child, by name or else by position (see the module docstring)."""
    if isinstance(params, (tuple, list)) and len(params) == len(names):
        return list(params)
    if isinstance(params, dict):
        if all(name in params for name in names):
            return [params[name] for name in names]
        by_position = {_position(k): v for k, v in params.items()}
        if len(params) == len(names) and set(by_position) == set(range(len(names))):
            return [by_position[i] for i in range(len(names))]
        missing = [name for name in names if name not in params]
        raise ValueError(
            f"{where}: expected params with entries {names}, got keys {sorted(params)} "
            f"(missing {missing}); params of a model with the same layers in the same order can be "
            f"passed by position, e.g. as a tuple of the per-layer params"
        )
    got = f"a {type(params).__name__} of {len(params)}" if isinstance(params, (tuple, list)) else type(params).__name__
    raise TypeError(f"{where}: expected params as a dict keyed {names} or a tuple of {len(names)}, got {got}")


def _stateful_apply(where: str, layers, names, params, xs, key, state, kwargs, chain: bool):
    """Apply ``layers`` in sequence (``chain``) or one per input, threading state."""
    stateful = any(layer.stateful for layer in layers)
    if stateful:
        check_state(where, state)
        missing = [n for n, layer in zip(names, layers) if layer.stateful and n not in state]
        if not isinstance(state, dict) or missing:
            raise ValueError(f"{where}: expected state with entries {missing or names}, got {state!r:.120}")
    new_state, outputs = {}, []
    x = xs
    for i, (layer_name, layer, layer_params, layer_key) in enumerate(
        zip(names, layers, child_params(where, params, names), _split(key, len(layers)))
    ):
        x_in = x if chain else xs[i]
        if layer.stateful:
            y, new_state[layer_name] = _apply(layer, layer_params, x_in, layer_key, dict(kwargs, state=state[layer_name]))
        else:
            y = _apply(layer, layer_params, x_in, layer_key, kwargs)
        if chain:
            x = y
        else:
            outputs.append(y)
    out = x if chain else outputs
    return (out, new_state) if stateful else out


def _state_init(layers, names, input_shapes, chain: bool):
    if not any(layer.stateful for layer in layers):
        return None
    state = {}
    shape = input_shapes
    for i, (layer_name, layer) in enumerate(zip(names, layers)):
        shape_in = shape if chain else input_shapes[i]
        if layer.stateful:
            state[layer_name] = layer.init_state(shape_in)
        if chain and i + 1 < len(layers):
            shape = output_shape(layer, shape_in)
    return state


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

    def apply_fn(params, x, *, key=None, rng=None, state=None, **kwargs):
        return _stateful_apply(name, layers, names, params, x, key if key is not None else rng, state, kwargs, True)

    state_init = None
    if any(layer.stateful for layer in layers):
        state_init = lambda input_shape: _state_init(layers, names, input_shape, True)
    spec = LayerSpec(name, {}, tuple(layer.spec for layer in layers))
    return make_layer(name, init_fn, apply_fn, spec, state_init)


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

    def apply_fn(params, xs, *, key=None, rng=None, state=None, **kwargs):
        check_list(xs, "inputs")
        return _stateful_apply(name, layers, names, params, xs, key if key is not None else rng, state, kwargs, False)

    state_init = None
    if any(layer.stateful for layer in layers):
        state_init = lambda input_shapes: _state_init(layers, names, check_list(input_shapes, "input shapes"), False)
    spec = LayerSpec(name, {}, tuple(layer.spec for layer in layers))
    return make_layer(name, init_fn, apply_fn, spec, state_init)


def repeat(layer, n: int):
    """``layer`` composed ``n`` times with independent parameters, as one ``lax.scan``
    (fast to compile for deep nets). ``layer`` must keep its input shape;
    ``repeat(layer, 0)`` is the identity (as in neural-tangents). A stateful
    layer's states are stacked along a leading axis of size ``n``, like its params."""
    name = "repeat"
    layer = as_layer(layer, name)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name}: expected n to be an int >= 0, got {n!r}")

    def init_fn(key, input_shape):
        key = check_key(name, key)
        input_shape = check_shape(name, input_shape)
        if n == 0:
            return input_shape, {}
        out_shape, _ = layer.init(key, input_shape)
        if tuple(out_shape) != input_shape:
            raise ValueError(
                f"{name}: the repeated layer must keep its input shape {input_shape}, "
                f"got {tuple(out_shape)}; use serial(*[layer] * n) instead"
            )
        params = jax.vmap(lambda k: layer.init(k, input_shape)[1])(jax.random.split(key, n))
        return input_shape, params

    def apply_fn(params, x, *, key=None, rng=None, state=None, **kwargs):
        key = key if key is not None else rng
        stateful = layer.stateful and n > 0
        if stateful:
            check_state(name, state)
        if n == 0:
            return x
        keys = None if key is None else jax.random.split(key, n)

        def body(x, per_layer):
            layer_params, layer_state, layer_key = per_layer
            if not stateful:
                return _apply(layer, layer_params, x, layer_key, kwargs), None
            return _apply(layer, layer_params, x, layer_key, dict(kwargs, state=layer_state))

        x, new_state = lax.scan(body, x, (params, state if stateful else None, keys), length=n)
        return (x, new_state) if stateful else x

    def state_init(input_shape):
        one = layer.init_state(input_shape)
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *jnp.shape(a))), one)

    spec = LayerSpec(name, dict(n=n), (layer.spec,))
    return make_layer(name, init_fn, apply_fn, spec, state_init if layer.stateful and n > 0 else None)
