"""Capacity theory against brute-force enumeration, closed forms, geometry and Monte Carlo."""

import itertools
import math

import numpy as np
import pytest

from jaxdl.classic import hopfield_store
from jaxdl.theory.capacity import (
    HOPFIELD_CRITICAL_RATIO,
    cover_count,
    cover_fraction,
    hopfield_bit_error_probability,
    hopfield_capacity,
    hopfield_patterns_for_error,
    is_linearly_separable,
)


def test_cover_count_matches_the_closed_form():
    for s in range(0, 30):
        for n in range(1, 12):
            closed_form = 1 if s == 0 else 2 * sum(math.comb(s - 1, i) for i in range(n))
            assert cover_count(s, n) == closed_form
    assert cover_count(5, 7) == 2**5  # s <= n: every dichotomy
    assert cover_count(200, 100) == 2**199  # exact big integers: C(2n, n) = 2^(2n-1)
    assert cover_fraction(40, 20) == 0.5


def enumerate_separable_dichotomies(X, bias=False):
    labellings = itertools.product([-1.0, 1.0], repeat=len(X))
    return sum(is_linearly_separable(X, np.array(labels), bias=bias) for labels in labellings)


@pytest.mark.parametrize("s, n", [(4, 2), (6, 2), (5, 3), (7, 3), (8, 3)])
def test_cover_count_matches_brute_force_enumeration(s, n):
    X = np.random.default_rng(s * 10 + n).normal(size=(s, n))  # general position with probability 1
    assert enumerate_separable_dichotomies(X) == cover_count(s, n)
    # an affine hyperplane in R^n is a hyperplane through the origin in R^(n+1)
    assert enumerate_separable_dichotomies(X, bias=True) == cover_count(s, n + 1)


def separable_by_angular_gap(X, y):
    """In R^2 the points y_i x_i lie in an open half-plane iff some angular gap exceeds pi."""
    angles = np.sort(np.arctan2(*(y[:, None] * X).T[::-1]))
    gaps = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    return gaps.max() > np.pi


def test_lp_separability_matches_planar_geometry():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = int(rng.integers(2, 9))
        X = rng.normal(size=(s, 2))
        y = rng.choice([-1.0, 1.0], size=s)
        assert is_linearly_separable(X, y) == separable_by_angular_gap(X, y)


def test_separability_rejects_bad_input():
    with pytest.raises(ValueError, match="is_linearly_separable.*-1, \\+1"):
        is_linearly_separable(np.eye(2), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="is_linearly_separable.*shapes"):
        is_linearly_separable(np.eye(2), np.ones(3))
    with pytest.raises(ValueError, match="cover_count.*n to be an int >= 1"):
        cover_count(3, 0)
    with pytest.raises(ValueError, match="cover_count.*s to be an int >= 0"):
        cover_count(-1, 2)


def unstable_bit_fraction(s, n, trials, seed):
    rng = np.random.default_rng(seed)
    unstable = 0
    for _ in range(trials):
        patterns = np.where(rng.random((s, n)) < 0.5, -1.0, 1.0)
        fields = patterns @ np.asarray(hopfield_store(patterns), np.float64)
        unstable += np.sum(patterns * fields < 0)
    return unstable / (trials * s * n)


@pytest.mark.parametrize("s, n", [(40, 200), (60, 200)])
def test_hopfield_bit_error_matches_monte_carlo(s, n):
    predicted = hopfield_bit_error_probability(s, n)
    measured = unstable_bit_fraction(s, n, trials=30, seed=s)
    standard_error = math.sqrt(predicted / (30 * s * n))
    assert abs(measured - predicted) < 4 * standard_error + 0.1 * predicted


def test_hopfield_capacity_helpers_are_consistent():
    assert hopfield_bit_error_probability(1, 100) == 0.0
    assert hopfield_capacity(1000) == pytest.approx(138.0)
    for n, error in [(100, 0.01), (1000, 0.001), (500, 0.05)]:
        s = hopfield_patterns_for_error(n, error)
        assert hopfield_bit_error_probability(s, n) <= error < hopfield_bit_error_probability(s + 1, n)
    # the standard approximation 1/2 erfc(1/sqrt(2 alpha)) for large n
    alpha = HOPFIELD_CRITICAL_RATIO
    n = 100_000
    standard = 0.5 * math.erfc(1 / math.sqrt(2 * alpha))
    assert hopfield_bit_error_probability(int(alpha * n), n) == pytest.approx(standard, rel=1e-3)
    with pytest.raises(ValueError, match="hopfield_patterns_for_error.*max_bit_error"):
        hopfield_patterns_for_error(100, 0.7)
