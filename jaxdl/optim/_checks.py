"""Argument checks shared by the optimisers: bad hyperparameters raise a clear
``ValueError``/``TypeError`` naming the function instead of a NaN ten steps later."""

from __future__ import annotations

import math
from numbers import Real

import jax


def check_learning_rate(fn: str, learning_rate, name: str = "learning_rate"):
    """A positive finite number, or a schedule (a callable of the step count)."""
    if callable(learning_rate):
        return learning_rate
    check_positive(fn, name, learning_rate)
    return learning_rate


def check_positive(fn: str, name: str, value, allow_zero: bool = False):
    """A positive (or non-negative) finite number; a scalar array is accepted, and a traced
    one (e.g. a learning rate under ``jax.vmap``) is passed through unchecked."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if tuple(value.shape) != ():
            raise ValueError(f"{fn}: expected {name} to be a scalar, got an array of shape {tuple(value.shape)}")
        try:
            value = float(value)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{fn}: expected {name} to be a real number, got {value!r}")
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{fn}: expected a finite {name} {bound}, got {value!r}")
    return value


def check_momentum(fn: str, name: str, value) -> float:
    """A momentum / decay coefficient in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{fn}: expected {name} to be a real number in [0, 1), got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{fn}: expected {name} in [0, 1), got {value!r}")
    return float(value)
