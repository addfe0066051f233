"""Hopfield networks against explicit sums, a plain-Python asynchronous loop and the energy argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.classic import hopfield_crosstalk, hopfield_energy, hopfield_recall, hopfield_store


def random_patterns(seed, s, n):
    return np.where(np.random.default_rng(seed).random((s, n)) < 0.5, -1.0, 1.0).astype(np.float32)


def test_hebbian_weights_match_the_sum_over_patterns():
    patterns = random_patterns(0, 4, 12)
    W = np.asarray(hopfield_store(patterns))
    s, n = patterns.shape
    expected = sum(np.outer(p, p) for p in patterns.astype(np.float64)) / n
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(W, expected, atol=1e-6)
    np.testing.assert_array_equal(W, W.T)


def brute_force_energy(W, x, bias):
    n = len(x)
    return -0.5 * sum(W[i, j] * x[i] * x[j] for i in range(n) for j in range(n) if i != j) + bias @ x


def test_energy_matches_the_double_sum():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(7, 7))
    W = A + A.T  # a nonzero diagonal is ignored by the energy
    bias = rng.normal(size=7)
    states = random_patterns(2, 5, 7)
    energies = hopfield_energy(W, states, bias)
    for x, energy in zip(states, energies):
        np.testing.assert_allclose(energy, brute_force_energy(W, x.astype(np.float64), bias), rtol=1e-5)
    np.testing.assert_allclose(hopfield_energy(W, states[0], bias), energies[0], rtol=1e-6)


def python_asynchronous_recall(W, x, bias, orders):
    """Reference dynamics; asserts the energy never increases after any single update."""
    x = x.astype(np.float64).copy()
    energy = brute_force_energy(W, x, bias)
    for order in orders:
        for i in order:
            field = sum(W[i, j] * x[j] for j in range(len(x)) if j != i) - bias[i]
            x[i] = 1.0 if field >= 0 else -1.0
            new_energy = brute_force_energy(W, x, bias)
            assert new_energy <= energy + 1e-9
            energy = new_energy
    return x


@pytest.mark.parametrize("seed", range(3))
def test_recall_matches_reference_loop_and_energy_never_increases(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(10, 10))
    W = (A + A.T) / 2
    np.fill_diagonal(W, 0.0)
    bias = rng.normal(size=10) * 0.3
    x = random_patterns(seed + 10, 1, 10)[0]
    result = hopfield_recall(W, x, 3, bias=bias)
    expected = python_asynchronous_recall(W, x, bias, [range(10)] * 3)
    np.testing.assert_array_equal(result, expected)

    key = jax.random.key(seed)
    orders = jax.vmap(lambda k: jax.random.permutation(k, 10))(jax.random.split(key, 3))
    result = hopfield_recall(W, x, 3, bias=bias, key=key)
    np.testing.assert_array_equal(result, python_asynchronous_recall(W, x, bias, np.asarray(orders)))


def test_energy_decreases_over_sweeps_to_a_fixed_point():
    patterns = random_patterns(4, 30, 100)  # load 0.3: far past capacity, long descents
    W = hopfield_store(patterns)
    x = random_patterns(5, 8, 100)
    energies = [hopfield_energy(W, x)]
    for _ in range(10):
        x = hopfield_recall(W, x, 1, key=jax.random.PRNGKey(len(energies)))
        energies.append(hopfield_energy(W, x))
    assert np.all(np.diff(np.stack(energies), axis=0) <= 1e-5)
    np.testing.assert_array_equal(hopfield_recall(W, x, 1), x)  # converged: a fixed point


def test_few_patterns_are_stored_and_recalled_from_noise():
    n = 200
    patterns = random_patterns(6, 5, n)
    W = hopfield_store(patterns)
    np.testing.assert_array_equal(hopfield_recall(W, patterns, 1), patterns)
    flips = np.random.default_rng(7).random(patterns.shape) < 0.15
    noisy = np.where(flips, -patterns, patterns)
    np.testing.assert_array_equal(hopfield_recall(W, noisy, 5), patterns)


def test_crosstalk_explains_the_local_fields():
    patterns = random_patterns(8, 6, 40)
    s, n = patterns.shape
    crosstalk = np.asarray(hopfield_crosstalk(patterns))
    explicit = np.array(
        [
            [sum(patterns[r, i] * patterns[r] @ patterns[t] for r in range(s) if r != t) / n for i in range(n)]
            for t in range(s)
        ]
    )
    np.testing.assert_allclose(crosstalk, explicit, atol=1e-5)
    full = patterns.T @ patterns / n  # Hebbian matrix with its diagonal kept
    np.testing.assert_allclose(patterns @ full, patterns + crosstalk, atol=1e-5)
    zero_diagonal = np.asarray(hopfield_store(patterns))
    np.testing.assert_allclose(patterns @ zero_diagonal, (1 - s / n) * patterns + crosstalk, atol=1e-5)
    # |C_ti| < 1 for every i makes pattern t a fixed point of sgn(W_full x)
    for pattern, c in zip(patterns, crosstalk):
        if np.all(np.abs(c) < 1):
            np.testing.assert_array_equal(np.where(full @ pattern >= 0, 1.0, -1.0), pattern)


def test_hopfield_jit_and_float64():
    patterns = random_patterns(9, 3, 30)
    W = hopfield_store(patterns)
    np.testing.assert_array_equal(jax.jit(hopfield_recall, static_argnums=2)(W, patterns, 2), patterns)
    with jax.enable_x64(True):
        W64 = hopfield_store(patterns.astype(np.float64))
        assert W64.dtype == jnp.float64
        assert hopfield_recall(W64, patterns.astype(np.float64), 1).dtype == jnp.float64


def test_hopfield_rejects_bad_input():
    patterns = random_patterns(0, 3, 8)
    W = hopfield_store(patterns)
    with pytest.raises(ValueError, match="hopfield_store.*-1, \\+1"):
        hopfield_store(patterns * 0.5)
    with pytest.raises(ValueError, match="hopfield_recall.*last axis 8"):
        hopfield_recall(W, patterns[:, :4], 1)
    with pytest.raises(ValueError, match="hopfield_energy.*symmetric"):
        hopfield_energy(np.triu(np.ones((8, 8))), patterns[0])
    with pytest.raises(ValueError, match="hopfield_recall.*steps"):
        hopfield_recall(W, patterns, 0)
    with pytest.raises(ValueError, match="hopfield_energy.*bias of shape"):
        hopfield_energy(W, patterns[0], np.zeros(3))
