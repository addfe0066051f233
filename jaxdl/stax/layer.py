"""The one model representation: a layer is a triple ``(init_fn, apply_fn, kernel_fn)``.

``Layer`` is a small frozen object that unpacks as that tuple (the
neural-tangents stax convention) and also exposes ``.init``, ``.apply`` and
``.kernel``. Besides the three functions it carries

* ``name``: used to name its parameters inside combinators (``"Dense_0"``);
* ``spec``: a plain-data description of the layer (constructor name,
  hyperparameters, child layers). The infinite-width kernel of a model is
  computed by interpreting the spec tree in :mod:`jaxdl.kernels`, so layers
  stay forward-only code and every kernel rule lives in one place.

State (the one convention, equinox-style explicit state). A few layers carry
state that is not trained by gradients: ``BatchNorm``'s running mean and
variance. Such a layer has ``state_init``, and

* ``layer.init_state(input_shape) -> state``: a pytree keyed like the params
  (``{"BatchNorm_1": {"mean", "var"}}`` inside a ``serial``); ``{}`` for a
  stateless layer;
* ``apply_fn(params, x, *, state, train=True, key=None) -> (y, new_state)``:
  a stateful layer always takes ``state`` and returns the updated one;
  ``train=False`` uses the stored statistics and returns ``state`` unchanged.

A stateless layer's ``init_fn``/``apply_fn`` are untouched; combinators are
stateful exactly when a child is, and route each child its own part of the
state. Why not flax's ``mutable`` collections: the stax triple keeps params a
plain pytree that optax updates whole, so state cannot hide inside it without
masking every optimiser; an explicit ``state`` argument keeps ``apply_fn`` pure
and makes it visible to ``jit``, ``vmap`` and ``train.fit`` alike.

This module also holds the input checks shared by all layers, so that bad
input raises a ``ValueError``/``TypeError`` naming the layer instead of an XLA
shape error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """What a layer is, as data: ``kind`` is the constructor's name (``"Dense"``),
    ``hyper`` its arguments, ``children`` the specs of wrapped layers."""

    kind: str
    hyper: dict[str, Any] = dataclasses.field(default_factory=dict)
    children: tuple[LayerSpec | None, ...] = ()


@dataclasses.dataclass(frozen=True)
class Layer:
    """A stax layer: unpacks as ``init_fn, apply_fn, kernel_fn``."""

    init: Callable
    apply: Callable
    kernel: Callable
    name: str
    spec: LayerSpec | None = None
    state_init: Callable | None = None

    @property
    def stateful(self) -> bool:
        """Whether ``apply_fn`` takes and returns a ``state`` (see the module docstring)."""
        return self.state_init is not None

    def init_state(self, input_shape):
        """The initial state for inputs of ``input_shape``; ``{}`` for a stateless layer."""
        return {} if self.state_init is None else self.state_init(input_shape)

    def __iter__(self):
        return iter((self.init, self.apply, self.kernel))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index):
        return (self.init, self.apply, self.kernel)[index]

    def __repr__(self) -> str:
        return f"Layer({self.name})"


def analytic_kernel_fn(spec: LayerSpec) -> Callable:
    """The public ``kernel_fn(x1, x2=None, get=None, **kwargs)`` of a layer.

    It hands the spec to :func:`jaxdl.kernels.analytic.kernel_fn_from_spec`,
    imported at call time because ``jaxdl.kernels`` builds on ``jaxdl.stax``.
    """

    def kernel_fn(x1_or_kernel, x2=None, get=None, **kwargs):
        from jaxdl.kernels.analytic import kernel_fn_from_spec

        return kernel_fn_from_spec(spec)(x1_or_kernel, x2, get, **kwargs)

    kernel_fn.__name__ = f"{spec.kind}_kernel_fn"
    return kernel_fn


def make_layer(
    name: str,
    init_fn: Callable,
    apply_fn: Callable,
    spec: LayerSpec,
    state_init: Callable | None = None,
) -> Layer:
    """Wrap the two finite-width functions and the spec into a ``Layer``
    (``state_init(input_shape) -> state`` for a stateful layer)."""
    init_fn.__name__ = f"{name}_init_fn"
    apply_fn.__name__ = f"{name}_apply_fn"
    return Layer(init_fn, apply_fn, analytic_kernel_fn(spec), name, spec, state_init)


def output_shape(layer: Layer, input_shape):
    """The output shape ``layer.init`` reports for ``input_shape``, found by tracing
    ``init`` abstractly (no parameters are drawn)."""
    shapes = []

    def params_only(key):
        out_shape, params = layer.init(key, input_shape)
        shapes.append(out_shape)
        return params

    jax.eval_shape(params_only, jax.random.key(0))
    return shapes[0]


def check_state(layer: str, state):
    """A stateful layer's ``apply_fn`` needs ``state=``; say how to get it."""
    if state is None:
        raise ValueError(
            f"{layer}: a stateful layer needs state=; create it with "
            f"model.init_state(input_shape) and pass apply_fn(params, x, state=state)"
        )
    return state


# --- checks shared by the layers -------------------------------------------------


def check_key(layer: str, key) -> jax.Array:
    """Accept a typed ``jax.random.key`` or a legacy ``uint32[2]`` ``PRNGKey``."""
    if key is None:
        raise TypeError(f"{layer}: expected a PRNG key (jax.random.key or PRNGKey), got None")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return key
    raise TypeError(
        f"{layer}: expected a PRNG key (jax.random.key or PRNGKey), "
        f"got an array of dtype {key.dtype} and shape {key.shape}"
    )


def check_shape(layer: str, input_shape) -> Shape:
    """Validate an ``input_shape`` given to ``init_fn``: a tuple of ints, ``-1`` allowed
    for the batch size."""
    if isinstance(input_shape, (int,)) or not isinstance(input_shape, Sequence):
        raise TypeError(f"{layer}: expected input_shape to be a tuple of ints, got {input_shape!r}")
    shape = tuple(input_shape)
    if not all(isinstance(d, int) and (d > 0 or d == -1) for d in shape):
        raise ValueError(
            f"{layer}: expected input_shape of positive ints (or -1 for the batch), "
            f"got {input_shape!r}"
        )
    return shape


def check_array(layer: str, x, min_ndim: int = 1, ndim: int | None = None) -> jax.Array:
    """Validate an input to ``apply_fn``: a float array of the expected rank."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        if isinstance(x, (list, tuple)):
            raise TypeError(f"{layer}: expected an array, got a {type(x).__name__} of inputs")
        x = jnp.asarray(x)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{layer}: expected an input of rank {ndim}, got shape {tuple(x.shape)}")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{layer}: expected an input of rank >= {min_ndim}, got shape {tuple(x.shape)}"
        )
    return x


def check_positive_int(layer: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{layer}: expected {name} to be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{layer}: expected {name} to be a positive int, got {value!r}")
    return value


def check_choice(layer: str, name: str, value, choices: Sequence[str]) -> str:
    """Match ``value`` case-insensitively against ``choices``; return the canonical choice."""
    canonical = {c.lower(): c for c in choices}
    key = getattr(value, "value", value)  # enum members (e.g. nt.stax.Padding.SAME)
    if not isinstance(key, str) or key.lower() not in canonical:
        raise ValueError(f"{layer}: expected {name} to be one of {list(choices)}, got {value!r}")
    return canonical[key.lower()]
