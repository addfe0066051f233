"""McCulloch-Pitts unit and perceptron, against truth tables, LP separability and Novikoff's bound."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.svm import SVC

from jaxdl.classic import geometric_margin, in_version_space, mcculloch_pitts, perceptron_fit, perceptron_predict
from jaxdl.theory.capacity import is_linearly_separable, perceptron_mistake_bound

BINARY_INPUTS = np.array(list(itertools.product([0, 1], repeat=2)), dtype=np.float32)


def test_mcculloch_pitts_truth_tables():
    x0, x1 = BINARY_INPUTS.T
    np.testing.assert_array_equal(mcculloch_pitts(BINARY_INPUTS, [1, 1], 2), np.logical_and(x0, x1))
    np.testing.assert_array_equal(mcculloch_pitts(BINARY_INPUTS, [1, 1], 1), np.logical_or(x0, x1))
    np.testing.assert_array_equal(mcculloch_pitts(BINARY_INPUTS[:, :1], [-1], 0), np.logical_not(x0))


def test_mcculloch_pitts_rejects_bad_input():
    with pytest.raises(ValueError, match="mcculloch_pitts.*0, 1"):
        mcculloch_pitts(np.array([[0.5, 1.0]]), [1, 1], 1)
    with pytest.raises(ValueError, match="mcculloch_pitts.*-1, \\+1"):
        mcculloch_pitts(BINARY_INPUTS, [2, 1], 1)
    with pytest.raises(ValueError, match="mcculloch_pitts.*last axis"):
        mcculloch_pitts(BINARY_INPUTS, [1, 1, 1], 1)


def separable_data(seed, s=60, n=3, margin=0.2):
    """Points at distance >= margin from a random affine hyperplane, labelled by its side."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n)
    w /= np.linalg.norm(w)
    b = 0.3
    X = rng.normal(size=(4 * s, n))
    distance = X @ w + b
    X = X[np.abs(distance) >= margin][:s]
    return X.astype(np.float32), np.sign(X @ w + b).astype(np.float32), w, b


@pytest.mark.parametrize("seed", range(4))
def test_perceptron_separates_and_respects_novikoff_bound(seed):
    X, y, w_true, b_true = separable_data(seed)
    w, b, mistakes = perceptron_fit(X, y, max_epochs=1000)
    assert bool(in_version_space(w, b, X, y))
    np.testing.assert_array_equal(perceptron_predict(w, b, X), y)
    # Novikoff with the planted hyperplane and with the max-margin one (sklearn's hard-margin SVM).
    assert mistakes <= perceptron_mistake_bound(X, y, w_true, b_true)
    svm = SVC(kernel="linear", C=1e8).fit(X.astype(np.float64), y)
    svm_bound = perceptron_mistake_bound(X, y, svm.coef_[0], svm.intercept_[0])
    assert mistakes <= svm_bound
    assert svm_bound <= perceptron_mistake_bound(X, y, w_true, b_true) * (1 + 1e-4)


def test_homogeneous_perceptron_keeps_zero_bias_and_weights_in_span():
    X, y, _, _ = separable_data(7, s=5, n=8)
    y = np.sign(X @ np.ones(8)).astype(np.float32)
    w, b, _ = perceptron_fit(X, y, 500, fit_bias=False)
    assert float(b) == 0.0
    assert bool(in_version_space(w, 0.0, X, y))
    # every iterate is a combination of the inputs: w lies in their span (s = 5 < n = 8)
    coefficients, *_ = np.linalg.lstsq(X.T, np.asarray(w), rcond=None)
    np.testing.assert_allclose(X.T @ coefficients, w, atol=1e-4)


def test_perceptron_matches_a_plain_python_loop():
    X, y, _, _ = separable_data(3, s=30)
    w, b = np.zeros(3), 0.0
    mistakes = 0
    for _ in range(1000):
        epoch_mistakes = 0
        for x, label in zip(X.astype(np.float64), y):
            if label * (x @ w + b) <= 0:
                w, b, epoch_mistakes = w + label * x, b + label, epoch_mistakes + 1
        mistakes += epoch_mistakes
        if epoch_mistakes == 0:
            break
    w_jax, b_jax, mistakes_jax = perceptron_fit(X, y, 1000)
    assert int(mistakes_jax) == mistakes
    np.testing.assert_allclose(w_jax, w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b_jax, b)


def test_perceptron_cannot_learn_xor():
    X = BINARY_INPUTS
    y = np.where(X[:, 0] != X[:, 1], 1.0, -1.0)
    assert not is_linearly_separable(X, y, bias=True)
    w, b, mistakes = perceptron_fit(X, y, max_epochs=50)
    assert not bool(in_version_space(w, b, X, y))
    assert int(mistakes) >= 50  # at least one mistake in every epoch


def test_perceptron_vmaps_jits_and_float64():
    X, y, _, _ = separable_data(0, s=40)
    labels = np.stack([y, -y])
    batched = jax.vmap(lambda labels: perceptron_fit(X, labels, 100))(labels)
    for k in range(2):
        single = perceptron_fit(X, labels[k], 100)
        np.testing.assert_allclose(batched[0][k], single[0], rtol=1e-6)
        assert int(batched[2][k]) == int(single[2])
    with jax.enable_x64(True):
        w, b, _ = jax.jit(perceptron_fit, static_argnums=2)(X.astype(np.float64), y.astype(np.float64), 100)
        assert w.dtype == jnp.float64
        assert bool(in_version_space(w, b, X, y))


def test_geometric_margin_against_direct_formula():
    X, y, w, b = separable_data(1, s=20)
    direct = min(label * (x @ w + b) / np.linalg.norm(w) for x, label in zip(X.astype(np.float64), y))
    np.testing.assert_allclose(geometric_margin(w, b, X, y), direct, rtol=1e-5)
    # scale invariance: (cw, cb) is the same hyperplane
    np.testing.assert_allclose(geometric_margin(3 * w, 3 * b, X, y), direct, rtol=1e-5)
    assert float(geometric_margin(-w, -b, X, y)) < 0
    assert not bool(in_version_space(-w, -b, X, y))


def test_perceptron_rejects_bad_input():
    X, y, _, _ = separable_data(0, s=10)
    with pytest.raises(ValueError, match="perceptron_fit.*-1, \\+1"):
        perceptron_fit(X, (y + 1) / 2, 10)
    with pytest.raises(ValueError, match="perceptron_fit.*same number of rows"):
        perceptron_fit(X, y[:-1], 10)
    with pytest.raises(ValueError, match="perceptron_fit.*max_epochs"):
        perceptron_fit(X, y, 0)
    with pytest.raises(ValueError, match="perceptron_fit.*finite"):
        perceptron_fit(np.where(X > 1, np.nan, X), y, 10)
    with pytest.raises(ValueError, match="geometric_margin.*nonzero"):
        geometric_margin(np.zeros(3), 0.0, X, y)
    with pytest.raises(ValueError, match="perceptron_mistake_bound.*separate"):
        perceptron_mistake_bound(X, -y, np.ones(3))
