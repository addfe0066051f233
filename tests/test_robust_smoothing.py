"""Randomized smoothing: the Clopper–Pearson bound and the binomial test against scipy,
CERTIFY's radius against Cohen et al.'s formula (recomputed from the same Monte Carlo
counts) and against the exact radius of a smoothed linear classifier, abstention, and
bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxdl import robust


def linear(params, x):
    """Two logits of a binary linear classifier: class 1 iff wᵀx + b > 0."""
    w, b = params
    score = x @ w + b
    return jnp.stack([jnp.zeros_like(score), score], axis=-1)


PARAMS = (jnp.array([0.6, 0.8]), -0.1)  # ‖w‖ = 1: the distance to the boundary is |wᵀx + b|


def test_clopper_pearson_lower_bound_matches_scipy_beta_ppf():
    ks = np.array([0, 1, 5, 37, 50, 99, 100, 480, 9_900, 10_000])
    ns = np.array([10, 10, 10, 100, 100, 100, 100, 500, 10_000, 10_000])
    for alpha in (0.001, 0.05):
        ours = np.asarray(robust.clopper_pearson_lower(ks[ks <= ns], ns[ks <= ns], alpha))
        expected = np.where(ks == 0, 0.0, scipy.stats.beta.ppf(alpha, np.maximum(ks, 1), ns - ks + 1))
        np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_binomial_p_value_matches_scipy_binomtest():
    for k, n in [(60, 100), (50, 100), (0, 7), (7, 7), (480, 500), (3, 20)]:
        expected = scipy.stats.binomtest(k, n, 0.5).pvalue
        np.testing.assert_allclose(float(robust.binomial_two_sided_p_value(k, n)), expected, rtol=1e-4, atol=1e-7)


def test_certify_radius_is_cohens_formula_of_its_own_counts():
    x = jnp.array([[0.5, 0.3], [-0.2, -0.1], [0.06, 0.05], [1.0, 1.0]])
    key, sigma, n, alpha = jax.random.key(0), 0.5, 2000, 0.01
    classes, radii, p_lower = robust.certify(linear, PARAMS, x, key, sigma=sigma, n0=50, n=n, alpha=alpha, batch_size=300)
    select_key, estimate_key = jax.random.split(key)  # certify's two independent sample sets
    top = np.asarray(jnp.argmax(robust.sample_counts(linear, PARAMS, x, select_key, sigma=sigma, num=50), -1))
    counts = np.asarray(robust.sample_counts(linear, PARAMS, x, estimate_key, sigma=sigma, num=n, batch_size=300))
    assert counts.sum(1).tolist() == [n] * 4
    n_a = counts[np.arange(4), top]
    expected_p = scipy.stats.beta.ppf(alpha, n_a, n - n_a + 1)
    np.testing.assert_allclose(np.asarray(p_lower), expected_p, atol=2e-5)
    certified = expected_p > 0.5
    np.testing.assert_array_equal(np.asarray(classes), np.where(certified, top, -1))
    expected_r = np.where(certified, sigma * scipy.stats.norm.ppf(np.clip(expected_p, 0.5, 1)), 0.0)
    np.testing.assert_allclose(np.asarray(radii), expected_r, atol=1e-4)


def test_certified_radius_of_a_smoothed_linear_classifier_approaches_the_distance_to_the_boundary():
    # g = f for a linear f, and P(f(x + ε) = c_A) = Φ(d / σ): the exact radius is d
    x = jnp.array([[0.5, 0.3], [-0.4, -0.2]])
    distance = np.abs(np.asarray(x @ PARAMS[0] + PARAMS[1]))
    classes, radii, _ = robust.certify(linear, PARAMS, x, jax.random.key(1), sigma=0.5, n0=100, n=20_000, alpha=0.001)
    assert np.asarray(classes).tolist() == [1, 0]
    assert np.all(np.asarray(radii) <= distance) and np.all(np.asarray(radii) >= distance - 0.05)


def test_points_on_the_boundary_abstain_and_clear_points_are_predicted():
    x = jnp.array([[0.1 * 0.6, 0.1 * 0.8], [2.0, 2.0]])  # wᵀx + b = 0, and far on the positive side
    classes, radii, p_lower = robust.certify(linear, PARAMS, x, jax.random.key(2), sigma=0.25, n0=50, n=1000)
    assert int(classes[0]) == robust.ABSTAIN and float(radii[0]) == 0.0 and float(p_lower[0]) <= 0.5
    assert int(classes[1]) == 1 and float(radii[1]) > 0.5
    predicted = robust.smooth_predict(linear, PARAMS, x, jax.random.key(3), sigma=0.25, n=1000)
    assert np.asarray(predicted).tolist() == [robust.ABSTAIN, 1]
    y = jnp.array([0, 1])
    assert float(robust.certified_accuracy(classes, radii, y, 0.0)) == 0.5
    assert float(robust.certified_accuracy(classes, radii, y, 100.0)) == 0.0


def test_bad_input_raises_clearly():
    x = jnp.ones((1, 2))
    with pytest.raises(ValueError, match="^certify: expected sigma > 0"):
        robust.certify(linear, PARAMS, x, jax.random.key(0), sigma=0.0)
    with pytest.raises(ValueError, match="^certify: expected alpha in"):
        robust.certify(linear, PARAMS, x, jax.random.key(0), sigma=0.5, alpha=1.5)
    with pytest.raises(ValueError, match="^smooth_predict: expected sigma"):
        robust.smooth_predict(linear, PARAMS, x, jax.random.key(0), sigma=-1.0)
    with pytest.raises(ValueError, match="^sample_counts: expected num to be a positive int"):
        robust.sample_counts(linear, PARAMS, x, jax.random.key(0), sigma=0.5, num=0)
