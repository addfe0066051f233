"""Pieces shared by the model constructors: activations by name, argument checks,
and the affine-layer options (``W_std``, ``b_std``, ``parameterization``) that every
``Dense``/``Conv`` of a model receives."""

from __future__ import annotations

from collections.abc import Sequence

from jaxdl import stax
from jaxdl.stax.layer import check_choice, check_positive_int
from jaxdl.stax.linear import PARAMETERIZATIONS, check_std

ACTIVATIONS = {
    "relu": stax.Relu,
    "tanh": stax.Tanh,
    "sigmoid": stax.Sigmoid,
    "erf": stax.Erf,
    "gelu": stax.Gelu,
}
POOLS = ("max", "avg")


def make_activation(model: str, name: str):
    """A fresh activation layer named ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[check_choice(model, "activation", name, tuple(ACTIVATIONS))]()


def pool_layer(model: str, kind: str, window=(2, 2), strides=(2, 2), padding="VALID"):
    """``MaxPool`` or ``AvgPool`` (the latter has an infinite-width kernel)."""
    kind = check_choice(model, "pool", kind, POOLS)
    return (stax.MaxPool if kind == "max" else stax.AvgPool)(window, strides, padding)


def positive_ints(model: str, name: str, values, allow_empty: bool = False) -> tuple[int, ...]:
    """``values`` (a sequence of positive ints) as a tuple; ``TypeError``/``ValueError`` naming ``model``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{model}: expected {name} to be a sequence of positive ints, got {values!r}")
    if not values and not allow_empty:
        raise ValueError(f"{model}: expected {name} to be a non-empty sequence of positive ints, got {values!r}")
    return tuple(check_positive_int(model, name, v) for v in values)


def per_stage(model: str, name: str, value, num_stages: int) -> tuple[int, ...]:
    """An int repeated ``num_stages`` times, or a sequence of ``num_stages`` positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (check_positive_int(model, name, value),) * num_stages
    values = positive_ints(model, name, value)
    if len(values) != num_stages:
        raise ValueError(f"{model}: expected {name} to have {num_stages} entries (one per stage), got {value!r}")
    return values


def affine_options(model: str, W_std, b_std, parameterization) -> dict:
    """Validated keyword arguments for every ``Dense``/``Conv`` of a model."""
    return dict(
        W_std=check_std(model, "W_std", W_std),
        b_std=check_std(model, "b_std", b_std, allow_none=True),
        parameterization=check_choice(model, "parameterization", parameterization, PARAMETERIZATIONS),
    )
