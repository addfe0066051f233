"""Universal approximation in one dimension with one hidden ReLU layer.

Seed formulas implemented here: a piecewise-linear function with ``m`` pieces
on ``[lo, hi]`` is a one-hidden-layer ReLU network

    g(x) = b + sum_{i=0}^{m-1} c_i (x - x_i)_+,

with knots ``x_i`` at the left ends of the pieces (the seed's ``a x`` term is
the unit at ``x_0 = lo``), and such functions approximate any continuous
function uniformly on a compact interval (universal approximation).
:func:`relu_interpolant` builds the network that interpolates a target at
``m + 1`` equally spaced nodes; for a ``C^2`` target its sup error is at most
``h^2 max|f''| / 8`` with ``h = (hi - lo)/m``, so it falls like ``1/m^2``.
:func:`universal_approximation` reports that sup error as the width grows.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import stax

__all__ = ["one_hidden_layer_apply", "relu_interpolant", "universal_approximation"]


# ``relu(x W1 + b1) W2 + b2`` as a stax model: with the 'standard' parameterization
# and s = (1, 1) a Dense layer is exactly ``x W + b``, and its apply_fn works for any width.
_, one_hidden_layer_apply, _ = stax.serial(
    stax.Dense(1, b_std=1.0, parameterization="standard"),
    stax.Relu(),
    stax.Dense(1, b_std=1.0, parameterization="standard"),
)
one_hidden_layer_apply.__doc__ = """``relu(x W1 + b1) W2 + b2`` for x: f[batch, d]; params
``{"Dense_0": {"W", "b"}, "Relu_1": {}, "Dense_2": {"W", "b"}}`` (a stax apply_fn)."""


def _check_interval(fn: str, interval) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{fn}: expected interval = (lo, hi), got {interval!r}") from error
    if not lo < hi:
        raise ValueError(f"{fn}: expected lo < hi, got {interval!r}")
    return lo, hi


def relu_interpolant(target_fn: Callable, width: int, interval) -> dict:
    """Parameters of the width-``width`` ReLU network interpolating ``target_fn`` at equally spaced nodes.

    Args:
      target_fn: vectorised ``f[k] -> f[k]``.
      width: number of hidden units ``m >= 1`` (= linear pieces).
      interval: ``(lo, hi)``.

    Returns:
      params for :func:`one_hidden_layer_apply`: hidden (``Dense_0``) ``W = 1``,
      ``b = -x_i``; output (``Dense_2``) ``W = c``, ``b = f(lo)``.
    """
    fn = "relu_interpolant"
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"{fn}: expected width to be a positive int, got {width!r}")
    lo, hi = _check_interval(fn, interval)
    dtype = jnp.result_type(float)
    nodes = np.linspace(lo, hi, width + 1)
    values = np.asarray(target_fn(jnp.asarray(nodes, dtype)), np.float64)
    if values.shape != nodes.shape:
        raise ValueError(f"{fn}: expected target_fn to map f[{width + 1}] to f[{width + 1}], got shape {values.shape}")
    slopes = np.diff(values) / np.diff(nodes)
    output_weights = np.concatenate([slopes[:1], np.diff(slopes)])  # slope changes at the knots
    return {
        "Dense_0": {"W": jnp.ones((1, width), dtype), "b": jnp.asarray(-nodes[:-1], dtype)[None, :]},
        "Relu_1": {},
        "Dense_2": {"W": jnp.asarray(output_weights[:, None], dtype), "b": jnp.asarray(values[:1], dtype)[None, :]},
    }


def universal_approximation(target_fn: Callable, widths, interval, *, num_eval: int = 10_001) -> dict:
    """Sup error of :func:`relu_interpolant` on ``interval`` for each width.

    The sup is taken over ``num_eval`` equally spaced points.

    Returns:
      ``{"widths": [...], "sup_errors": [...]}``.
    """
    fn = "universal_approximation"
    lo, hi = _check_interval(fn, interval)
    x = jnp.linspace(lo, hi, num_eval)
    target = jnp.asarray(target_fn(x))
    sup_error = jax.jit(lambda params: jnp.max(jnp.abs(one_hidden_layer_apply(params, x[:, None])[:, 0] - target)))
    sup_errors = [float(sup_error(relu_interpolant(target_fn, width, (lo, hi)))) for width in widths]
    return {"widths": [int(w) for w in widths], "sup_errors": sup_errors}
