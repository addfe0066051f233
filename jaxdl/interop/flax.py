"""Flax bridge: jaxdl stax models as flax modules, flax modules as stax pairs.

* :func:`to_linen` — a stax model ``(init_fn, apply_fn[, kernel_fn])`` as a
  ``flax.linen`` module; its parameters are the stax parameter tree under
  ``variables["params"]["stax"]``, and a stateful model's state (BatchNorm
  statistics) is flax's ``"batch_stats"`` collection, updated the flax way:
  ``module.apply(variables, x, train=True, mutable=["batch_stats"])``;
* :func:`to_nnx` — the same as a ``flax.nnx`` module (parameters in one
  ``nnx.Param`` holding the stax tree);
* :func:`from_linen` — a linen module as a stax pair ``(init_fn, apply_fn)``
  with ``init_fn(key, input_shape) -> (output_shape, params)`` and
  ``apply_fn(params, x, **kwargs)``, so every jaxdl consumer (empirical NTK,
  optimisers, training loops) takes it;
* :func:`from_nnx` — an nnx module as ``(apply_fn, params)`` with
  ``params`` its ``nnx.Param`` state (a pytree) and ``apply_fn(params, x)``
  a pure function.

Keys: ``init_fn`` takes ``jax.random.key`` or a legacy ``PRNGKey``. Written by
hand: flax offers module conversion (``nnx.bridge``) between its own APIs only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen, nnx

from jaxdl.stax.layer import check_key

__all__ = ["from_linen", "from_nnx", "to_linen", "to_nnx"]


def _stax_pair(name: str, model) -> tuple[Callable, Callable]:
    try:
        init_fn, apply_fn = tuple(model)[:2]
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a stax model (init_fn, apply_fn[, kernel_fn]), "
                        f"got {type(model).__name__}") from None
    if not (callable(init_fn) and callable(apply_fn)):
        raise TypeError(f"{name}: expected callables init_fn and apply_fn, got {model!r}")
    return init_fn, apply_fn


class StaxLinen(linen.Module):
    """A stax model as a linen module (build with :func:`to_linen`)."""

    init_fn: Callable
    apply_fn: Callable
    state_init: Callable | None = None

    @linen.compact
    def __call__(self, x, train: bool = False, **kwargs):
        params = self.param("stax", lambda key: self.init_fn(key, tuple(x.shape))[1])
        if self.state_init is None:
            return self.apply_fn(params, x, **kwargs)
        state = self.variable("batch_stats", "stax", lambda: self.state_init(tuple(x.shape)))
        y, new_state = self.apply_fn(params, x, state=state.value, train=train, **kwargs)
        if train and not self.is_initializing() and self.is_mutable_collection("batch_stats"):
            state.value = new_state
        return y


def to_linen(model) -> StaxLinen:
    """``model`` (a stax triple or ``Layer``) as a linen module: ``module.init(key, x)``,
    ``module.apply(variables, x)``; for a stateful model ``module.apply(variables, x,
    train=True, mutable=["batch_stats"]) -> (y, {"batch_stats": ...})`` (the default
    ``train=False`` evaluates with the running statistics)."""
    init_fn, apply_fn = _stax_pair("to_linen", model)
    return StaxLinen(init_fn, apply_fn, getattr(model, "state_init", None))


class StaxNNX(nnx.Module):
    """A stax model as an nnx module (build with :func:`to_nnx`)."""

    def __init__(self, init_fn: Callable, apply_fn: Callable, input_shape: Sequence[int], *, rngs: nnx.Rngs):
        _, params = init_fn(rngs.params(), tuple(input_shape))
        self.stax = nnx.Param(params)
        self.apply_fn = apply_fn

    def __call__(self, x, **kwargs):
        return self.apply_fn(self.stax.get_value(), x, **kwargs)


def to_nnx(model, input_shape: Sequence[int], *, rngs: nnx.Rngs) -> StaxNNX:
    """``model`` as an nnx module with parameters initialised for ``input_shape``."""
    init_fn, apply_fn = _stax_pair("to_nnx", model)
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"to_nnx: expected rngs to be an nnx.Rngs, got {type(rngs).__name__}")
    return StaxNNX(init_fn, apply_fn, input_shape, rngs=rngs)


def from_linen(module: linen.Module) -> tuple[Callable, Callable]:
    """A linen module as ``(init_fn, apply_fn)`` on its ``"params"`` collection.

    Modules with other collections (batch statistics) are refused: a stax pair
    has no place for their state (wrap such a module by hand following the state
    convention of :mod:`jaxdl.stax.layer`).
    """
    if not isinstance(module, linen.Module):
        raise TypeError(f"from_linen: expected a flax.linen.Module, got {type(module).__name__}")

    def init_fn(key, input_shape):
        shape = tuple(1 if d == -1 else d for d in input_shape)
        x = jnp.zeros(shape, jnp.float32)
        variables = module.init(check_key("from_linen", key), x)
        extra = set(variables) - {"params"}
        if extra:
            raise ValueError(f"from_linen: the module has state collections {sorted(extra)}; "
                             "only stateless modules (params only) convert to a stax pair")
        out = jax.eval_shape(lambda v: module.apply(v, x), variables)
        out_shape = tuple(input_shape[0] if i == 0 and input_shape[0] == -1 else d
                          for i, d in enumerate(out.shape))  # fmt: skip
        return out_shape, variables["params"]

    def apply_fn(params, x, **kwargs):
        return module.apply({"params": params}, x, **kwargs)

    return init_fn, apply_fn


def from_nnx(module: nnx.Module) -> tuple[Callable, object]:
    """An nnx module as ``(apply_fn, params)``: ``apply_fn(params, x) == module(x)``,
    pure in ``params`` (the module's ``nnx.Param`` state) and free of side effects."""
    if not isinstance(module, nnx.Module):
        raise TypeError(f"from_nnx: expected a flax.nnx.Module, got {type(module).__name__}")
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply_fn(p, x, **kwargs):
        return nnx.merge(graphdef, p, rest)(x, **kwargs)

    return apply_fn, params
