"""Threshold units: the McCulloch-Pitts neuron and Rosenblatt's perceptron.

Seed formulas implemented here:

* McCulloch-Pitts unit ``f[sigma, theta](x) = 1{sigma^T x >= theta}`` with
  ``x in {0, 1}^n`` and synapses ``sigma in {-1, +1}^n``;
* perceptron ``f[w, b](x) = sgn(w^T x + b)`` and its mistake-driven rule: on a
  misclassified ``(x, y)``, ``w <- w + y x`` and ``b <- b + y``;
* geometric margin ``gamma[w, b](x, y) = y (w^T x + b) / ||w||``, the margin of a
  set ``gamma[w, b](S) = min_{(x, y) in S} gamma[w, b](x, y)`` and the version
  space ``V(S) = {(w, b) | gamma[w, b](S) > 0}``.

A point with ``y (w^T x + b) <= 0`` counts as a mistake, so the all-zero start
``w = 0, b = 0`` is updated on the first example. No library ships a perceptron
for JAX; this one is a ``lax.scan`` over the examples inside a
``lax.while_loop`` over epochs, so it jit-compiles and vmaps over data sets.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxdl.classic._checks import (
    as_float_array,
    check_finite,
    check_positive_int,
    check_rows,
    check_signs,
)

__all__ = [
    "mcculloch_pitts",
    "perceptron_predict",
    "perceptron_fit",
    "geometric_margin",
    "in_version_space",
]


def mcculloch_pitts(x, sigma, theta):
    """The McCulloch-Pitts unit ``1{sigma^T x >= theta}``.

    Args:
      x: f32[..., n] binary inputs (0 or 1).
      sigma: f32[n] synapse signs (+1 excitatory, -1 inhibitory).
      theta: scalar threshold.

    Returns:
      i32[...] output in {0, 1}.
    """
    fn = "mcculloch_pitts"
    x = as_float_array(fn, "x", x, (1, 2))
    sigma = as_float_array(fn, "sigma", sigma, 1)
    if x.shape[-1] != sigma.shape[0]:
        raise ValueError(f"{fn}: expected x with last axis {sigma.shape[0]} (len(sigma)), got shape {x.shape}")
    check_signs(fn, "sigma", sigma)
    try:
        binary = bool(jnp.all((x == 0) | (x == 1)))
    except jax.errors.ConcretizationTypeError:
        binary = True
    if not binary:
        raise ValueError(f"{fn}: expected x to have entries in {{0, 1}}, got other values")
    return (x @ sigma >= theta).astype(jnp.int32)


def perceptron_predict(w, b, X):
    """``sgn(X w + b)`` with ``sgn(0) = +1``: f32[s] labels in {-1, +1} for X: f32[s, n]."""
    return jnp.where(X @ w + b >= 0, 1.0, -1.0).astype(X.dtype)


def _epoch(carry, X, y, fit_bias):
    """One pass over the data in order, updating on every mistake."""

    def visit(state, example):
        w, b, mistakes = state
        x, label = example
        wrong = label * (x @ w + b) <= 0
        step = jnp.where(wrong, label, 0.0)
        b = b + step if fit_bias else b
        return (w + step * x, b, mistakes + wrong.astype(jnp.int32)), None

    (w, b, mistakes), _ = jax.lax.scan(visit, carry, (X, y))
    return w, b, mistakes


def perceptron_fit(X, y, max_epochs: int, *, fit_bias: bool = True):
    """Rosenblatt's perceptron from ``w = 0, b = 0``, cycling through the data.

    Stops after the first epoch without a mistake (then ``(w, b)`` is in the
    version space) or after ``max_epochs`` epochs. On separable data Novikoff's
    theorem bounds ``num_mistakes`` by ``R^2 / gamma^2``
    (:func:`jaxdl.theory.capacity.perceptron_mistake_bound`).

    Args:
      X: f32[s, n] inputs.
      y: f32[s] labels in {-1, +1}.
      max_epochs: the most passes over the data.
      fit_bias: learn ``b`` (``b <- b + y``); ``False`` keeps ``b = 0``, the
        homogeneous perceptron of Cover's theorem.

    Returns:
      ``(w, b, num_mistakes)``: f32[n], f32[] and i32[] (total updates made).
    """
    fn = "perceptron_fit"
    X = as_float_array(fn, "X", X, 2)
    y = as_float_array(fn, "y", y, 1).astype(X.dtype)
    check_rows(fn, X, y)
    check_finite(fn, "X", X)
    check_signs(fn, "y", y)
    max_epochs = check_positive_int(fn, "max_epochs", max_epochs)
    return _fit(X, y, max_epochs, bool(fit_bias))


@partial(jax.jit, static_argnums=(2, 3))
def _fit(X, y, max_epochs: int, fit_bias: bool):
    def not_done(state):
        epoch, _, _, _, mistakes_last_epoch = state
        return (epoch < max_epochs) & (mistakes_last_epoch > 0)

    def run_epoch(state):
        epoch, w, b, total, _ = state
        w, b, mistakes = _epoch((w, b, jnp.zeros((), jnp.int32)), X, y, fit_bias)
        return epoch + 1, w, b, total + mistakes, mistakes

    zero = jnp.zeros((), X.dtype)
    start = (0, jnp.zeros(X.shape[1], X.dtype), zero, jnp.zeros((), jnp.int32), jnp.ones((), jnp.int32))
    _, w, b, num_mistakes, _ = jax.lax.while_loop(not_done, run_epoch, start)
    return w, b, num_mistakes


def geometric_margin(w, b, X, y):
    """``gamma[w, b](S) = min_i y_i (w^T x_i + b) / ||w||``, the margin of the set.

    Args:
      w: f32[n]; b: scalar; X: f32[s, n]; y: f32[s] in {-1, +1}.

    Returns:
      f32[]: positive iff ``(w, b)`` separates the set. ``w = 0`` defines no
      hyperplane and raises a ``ValueError`` on concrete inputs.
    """
    fn = "geometric_margin"
    w = as_float_array(fn, "w", w, 1)
    X = as_float_array(fn, "X", X, 2)
    y = as_float_array(fn, "y", y, 1)
    check_rows(fn, X, y)
    if X.shape[1] != w.shape[0]:
        raise ValueError(f"{fn}: expected X with {w.shape[0]} columns (len(w)), got shape {X.shape}")
    norm = jnp.linalg.norm(w)
    try:
        degenerate = bool(norm == 0)
    except jax.errors.ConcretizationTypeError:
        degenerate = False
    if degenerate:
        raise ValueError(f"{fn}: expected a nonzero w (w = 0 defines no hyperplane), got all zeros")
    return jnp.min(y * (X @ w + b)) / norm


def in_version_space(w, b, X, y):
    """Whether ``(w, b)`` is in the version space ``V(S)``: every point strictly on its side."""
    return jnp.all(y * (X @ w + b) > 0)
