"""Input checks shared by the classic models: clear errors naming the function."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def as_float_array(fn: str, name: str, value, ndim: int | tuple[int, ...]):
    """``value`` as a floating JAX array of rank ``ndim``, else ``ValueError``/``TypeError``."""
    try:
        array = jnp.asarray(value)
    except TypeError as error:
        raise TypeError(f"{fn}: expected {name} to be an array, got {type(value).__name__}") from error
    if not (jnp.issubdtype(array.dtype, jnp.number) or array.dtype == bool):
        raise TypeError(f"{fn}: expected {name} to be numeric, got dtype {array.dtype}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in allowed:
        ranks = " or ".join(map(str, allowed))
        raise ValueError(f"{fn}: expected {name} to have rank {ranks}, got shape {array.shape}")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.result_type(float))
    return array


def check_rows(fn: str, X, y, x_name: str = "X", y_name: str = "y") -> None:
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"{fn}: expected {x_name} and {y_name} to have the same number of rows, "
            f"got {X.shape[0]} and {y.shape[0]}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{fn}: expected at least one example, got {x_name} with shape {X.shape}")


def check_finite(fn: str, name: str, array) -> None:
    """Raise on NaN/inf; skipped under tracing, where the values are unknown."""
    try:
        values = np.asarray(array)
    except Exception:  # a tracer: the check runs on concrete inputs only
        return
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{fn}: expected finite {name}, got NaN or inf entries")


def check_signs(fn: str, name: str, array) -> None:
    """Raise unless every entry is +1 or -1 (skipped under tracing)."""
    try:
        values = np.asarray(array)
    except Exception:
        return
    if not np.all(np.abs(values) == 1):
        raise ValueError(f"{fn}: expected {name} to have entries in {{-1, +1}}, got other values")


def check_positive_int(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: expected {name} to be a positive int, got {value!r}")
    return int(value)


def check_nonnegative(fn: str, name: str, value, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: expected {name} to be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0 or (strict and value == 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{fn}: expected {name} {bound}, got {value!r}")
    return float(value)
