"""Capacity of threshold units and Hopfield memories.

Seed formulas implemented here:

* Cover's function counting theorem: the number of dichotomies of ``s``
  points in general position in ``R^n`` realised by a hyperplane through the
  origin (``exists w: y_i w^T x_i > 0``) obeys
  ``C(s + 1, n) = C(s, n) + C(s, n - 1)``, so
  ``C(s, n) = 2 sum_{i=0}^{n-1} binom(s - 1, i)``; ``C(s, n) = 2^s`` for
  ``s <= n`` and ``C(2n, n) = 2^{2n - 1}``: the phase transition at ``s = 2n``.
  (One seed prints ``2 sum_{i=0}^n binom(n, i)``, a garbled copy; the
  recurrence and Cover 1965 decide.) An affine hyperplane in ``R^n`` is a
  hyperplane through the origin in ``R^{n+1}``, so with a bias the count is
  ``C(s, n + 1)``.
* Novikoff's theorem: if ``||w*|| = 1`` separates the data with margin
  ``gamma`` and ``R = max ||x||``, the perceptron makes at most
  ``R^2 / gamma^2`` mistakes.
* Hopfield capacity: with Hebbian weights the local field of stored pattern
  ``t`` is ``h^t = (1 - s/n) x^t + C_t`` (cross-talk ``C``, see
  :mod:`jaxdl.classic.hopfield`). ``x_ti h_ti`` has mean ``(n - 1)/n`` and
  variance ``(s - 1)(n - 1)/n^2``; the Gaussian (central-limit) approximation
  gives the bit-error probability ``Phi(-sqrt((n - 1)/(s - 1)))``, about
  ``1/2 erfc(1 / sqrt(2 alpha))`` at load ``alpha = s/n``. Retrieval breaks
  down at ``alpha_c ~ 0.138`` (Amit, Gutfreund and Sompolinsky 1985; not in
  the seeds, the standard literature value).

Deciding separability is a linear program; JAX has no LP solver, so
:func:`is_linearly_separable` calls scipy's HiGHS on host arrays.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.stats

from jaxdl.classic.perceptron import geometric_margin

__all__ = [
    "cover_count",
    "cover_fraction",
    "is_linearly_separable",
    "geometric_margin",
    "perceptron_mistake_bound",
    "HOPFIELD_CRITICAL_RATIO",
    "hopfield_capacity",
    "hopfield_bit_error_probability",
    "hopfield_patterns_for_error",
]

HOPFIELD_CRITICAL_RATIO = 0.138
"""Patterns per neuron at which Hebbian Hopfield retrieval breaks down (Amit et al. 1985)."""


def _check_int(fn: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{fn}: expected {name} to be an int >= {minimum}, got {value!r}")
    return int(value)


def cover_count(s: int, n: int) -> int:
    """``C(s, n)``: dichotomies of ``s`` points in general position in ``R^n`` that
    a hyperplane through the origin realises, by the recurrence
    ``C(s + 1, n) = C(s, n) + C(s, n - 1)`` with ``C(0, n) = 1`` and
    ``C(s, 0) = 0`` for ``s >= 1``.

    Args:
      s: number of points ``>= 0``; n: dimension ``>= 1``.

    Returns:
      The exact count as a Python int.
    """
    fn = "cover_count"
    s = _check_int(fn, "s", s, 0)
    n = _check_int(fn, "n", n, 1)
    row = [1] * (n + 1)  # row[d] = C(0, d)
    for _ in range(s):
        row = [0] + [row[d] + row[d - 1] for d in range(1, n + 1)]
    return row[n]


def cover_fraction(s: int, n: int) -> float:
    """``C(s, n) / 2^s``: the probability that a uniformly random dichotomy of
    ``s`` points in general position in ``R^n`` is separable through the origin."""
    return cover_count(s, n) / 2**s


def is_linearly_separable(X, y, *, bias: bool = False) -> bool:
    """Whether some hyperplane puts every ``x_i`` strictly on side ``y_i``.

    Solves the bounded LP ``max t`` subject to ``y_i (w^T x_i + b) >= t`` and
    ``|w_j|, |b| <= 1`` with scipy's HiGHS; it is always feasible (``w = 0``,
    ``t = 0``) and the data are separable iff ``t* > 0``, decided with a margin
    of ``1e-6 max_ij |x_ij|`` above HiGHS's ``1e-7`` feasibility tolerance.
    Host-side: not traceable by ``jit``.

    Args:
      X: f32[s, n] points; y: f32[s] labels in {-1, +1}.
      bias: allow an affine hyperplane (``b``); the default is a hyperplane
        through the origin, the setting of Cover's theorem.
    """
    fn = "is_linearly_separable"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{fn}: expected X: [s, n] and y: [s], got shapes {X.shape} and {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{fn}: expected finite X, got NaN or inf entries")
    if not np.all(np.abs(y) == 1):
        raise ValueError(f"{fn}: expected y to have entries in {{-1, +1}}, got other values")
    if X.shape[0] == 0:
        return True
    signed = y[:, None] * (np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X)
    num_weights = signed.shape[1]
    result = scipy.optimize.linprog(
        c=np.append(np.zeros(num_weights), -1.0),  # maximise t
        A_ub=np.hstack([-signed, np.ones((signed.shape[0], 1))]),  # t - y_i (w^T x_i + b) <= 0
        b_ub=np.zeros(signed.shape[0]),
        bounds=[(-1.0, 1.0)] * num_weights + [(None, None)],
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"{fn}: the LP solver failed ({result.message})")
    return bool(-result.fun > 1e-6 * max(1.0, np.abs(X).max()))


def perceptron_mistake_bound(X, y, w_star, b_star=None):
    """Novikoff's bound ``R^2 / gamma^2`` on the perceptron's number of mistakes.

    ``gamma`` is the geometric margin of the separating ``w_star`` and ``R`` the
    largest input norm. For the perceptron with a bias (``b <- b + y``) pass
    ``b_star``: the bound then holds for the augmented inputs ``(x, 1)`` and
    weights ``(w_star, b_star)``, which is how it is computed.

    Args:
      X: f32[s, n]; y: f32[s] in {-1, +1}; w_star: f32[n]; b_star: optional scalar.

    Returns:
      f32[]; a ``ValueError`` on concrete inputs if ``w_star`` does not separate.
    """
    fn = "perceptron_mistake_bound"
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{fn}: expected X of shape [s, n], got {X.shape}")
    w_star = jnp.asarray(w_star, X.dtype)
    if b_star is not None:
        X = jnp.hstack([X, jnp.ones((X.shape[0], 1), X.dtype)])
        w_star = jnp.append(w_star, jnp.asarray(b_star, X.dtype))
    margin = geometric_margin(w_star, 0.0, X, y)
    try:
        separates = bool(margin > 0)
    except jax.errors.ConcretizationTypeError:
        separates = True
    if not separates:
        raise ValueError(f"{fn}: expected w_star to separate the data (margin > 0), got margin {float(margin):.3g}")
    radius_squared = jnp.max(jnp.sum(X**2, axis=1))
    return radius_squared / margin**2


def hopfield_capacity(n: int) -> float:
    """``alpha_c n``: about how many random patterns ``n`` neurons retrieve (``alpha_c = 0.138``)."""
    return HOPFIELD_CRITICAL_RATIO * _check_int("hopfield_capacity", "n", n, 1)


def hopfield_bit_error_probability(s: int, n: int) -> float:
    """Probability that one bit of a stored pattern is unstable, ``Phi(-sqrt((n-1)/(s-1)))``.

    Gaussian approximation of the cross-talk for ``s`` random patterns stored
    in ``n`` neurons by the Hebbian rule (zero diagonal); ``0`` for ``s = 1``.
    """
    fn = "hopfield_bit_error_probability"
    s = _check_int(fn, "s", s, 1)
    n = _check_int(fn, "n", n, 2)
    if s == 1:
        return 0.0
    return float(scipy.stats.norm.cdf(-math.sqrt((n - 1) / (s - 1))))


def hopfield_patterns_for_error(n: int, max_bit_error: float) -> int:
    """The most patterns ``s`` whose bit-error probability stays ``<= max_bit_error``.

    Inverts :func:`hopfield_bit_error_probability`:
    ``s = 1 + floor((n - 1) / z^2)`` with ``z = Phi^{-1}(1 - max_bit_error)``.
    """
    fn = "hopfield_patterns_for_error"
    n = _check_int(fn, "n", n, 2)
    if not 0 < max_bit_error < 0.5:
        raise ValueError(f"{fn}: expected 0 < max_bit_error < 0.5, got {max_bit_error!r}")
    z = scipy.stats.norm.ppf(1 - max_bit_error)
    return 1 + math.floor((n - 1) / z**2)
