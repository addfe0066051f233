"""The sequence datasets: sequential digits against scikit-learn's raw images,
copy-first-token and the adding problem against brute-force recomputations and
their closed-form baselines."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_digits

from jaxdl.data import ADDING_BASELINE_MSE, adding_problem, copy_first_token, load_digits, sequential_digits


def test_sequential_digits_are_the_split_images_read_row_by_row_in_unit_range():
    data = sequential_digits(seed=0)
    images = load_digits(seed=0, standardize=False)
    assert data.name == "sklearn-digits-sequential" and data.num_classes == 10
    assert data.x_train.shape == (1347, 64, 1) and data.x_test.shape == (450, 64, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    np.testing.assert_array_equal(data.y_train, images.y_train)
    # step 8 * row + col is pixel (row, col), scaled from 0..16 to [0, 1]
    raw = sklearn_digits()
    index = next(i for i, row in enumerate(raw.data) if np.array_equal(row, images.x_test[5]))
    image = raw.images[index]
    for row, col in [(0, 3), (2, 5), (7, 7), (4, 0)]:
        assert data.x_test[5, 8 * row + col, 0] == pytest.approx(image[row, col] / 16.0)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    again = sequential_digits(seed=0)
    np.testing.assert_array_equal(again.x_train, data.x_train)
    other = sequential_digits(seed=1)
    assert not np.array_equal(other.y_train, data.y_train)
    assert sequential_digits(num_train=100).x_train.shape == (100, 64, 1)


def test_copy_first_token_shapes_ids_and_determinism():
    key = jax.random.key(3)
    x, y = copy_first_token(50, 7, 5, key, num_distractors=3)
    assert x.shape == (50, 8, 8) and x.dtype == np.float32 and y.shape == (50,) and y.dtype == np.int32
    np.testing.assert_array_equal(x.sum(-1), 1.0)  # one-hot at every step
    ids, labels = copy_first_token(50, 7, 5, key, num_distractors=3, one_hot=False)
    assert ids.shape == (50, 8) and ids.dtype == np.int32
    np.testing.assert_array_equal(x.argmax(-1), ids)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(ids[:, 0], y)
    assert set(np.unique(y)) <= set(range(5)) and set(np.unique(ids[:, 1:])) <= {5, 6, 7}
    x2, y2 = copy_first_token(50, 7, 5, key, num_distractors=3)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    x3, _ = copy_first_token(50, 7, 5, jax.random.key(4), num_distractors=3)
    assert not np.array_equal(x3, x)
    blank, _ = copy_first_token(10, 4, 3, key, one_hot=False)  # one distractor symbol: the blank
    np.testing.assert_array_equal(blank[:, 1:], 3)


def test_copy_first_token_label_is_recoverable_from_step_0_only():
    """The best lookup table from one step's token to the label, fitted on one sample and
    scored on another: perfect at step 0, chance (1/vocab) at every later step."""
    vocab, T = 4, 6
    train_ids, train_y = copy_first_token(4000, T, vocab, jax.random.key(0), num_distractors=3, one_hot=False)
    test_ids, test_y = copy_first_token(4000, T, vocab, jax.random.key(1), num_distractors=3, one_hot=False)
    for step in range(T + 1):
        counts = np.zeros((vocab + 3, vocab))
        np.add.at(counts, (train_ids[:, step], train_y), 1)
        table = counts.argmax(axis=1)
        accuracy = np.mean(table[test_ids[:, step]] == test_y)
        if step == 0:
            assert accuracy == 1.0
        else:  # chance 0.25; 4000 draws give a standard error of 0.007
            assert abs(accuracy - 1 / vocab) < 0.03, (step, accuracy)


def test_adding_problem_targets_match_a_brute_force_recomputation():
    x, y = adding_problem(200, 11, jax.random.key(5))
    assert x.shape == (200, 11, 2) and y.shape == (200,) and x.dtype == y.dtype == np.float32
    for values, marks, target in zip(x[..., 0], x[..., 1], y):
        marked = [t for t in range(11) if marks[t] == 1.0]
        assert len(marked) == 2 and marked[0] < 5 <= marked[1]  # one mark in each half
        assert set(np.unique(marks)) == {0.0, 1.0}
        assert target == pytest.approx(values[marked[0]] + values[marked[1]], abs=1e-6)
    assert 0.0 <= x[..., 0].min() and x[..., 0].max() < 1.0
    x2, y2 = adding_problem(200, 11, jax.random.key(5))
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_adding_problem_constant_one_baseline_has_mse_one_sixth():
    """Monte Carlo MSE of predicting 1.0 against the closed form Var(u1 + u2) = 1/6."""
    n = 200_000
    _, y = adding_problem(n, 8, jax.random.key(7))
    mse = np.mean((y - 1.0) ** 2)
    # the squared error (s - 1)^2 has variance E[(s-1)^4] - (1/6)^2 = 1/15 - 1/36
    standard_error = np.sqrt((1 / 15 - 1 / 36) / n)
    assert ADDING_BASELINE_MSE == pytest.approx(1 / 6)
    assert abs(mse - 1 / 6) < 4 * standard_error
    assert abs(np.mean(y) - 1.0) < 0.01  # and the constant 1 is the best constant (the mean)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: copy_first_token(0, 4, 3, jax.random.key(0)), ValueError, "copy_first_token: expected n >= 1"),
        (lambda: copy_first_token(5, 4, 1, jax.random.key(0)), ValueError, "copy_first_token: expected vocab >= 2"),
        (lambda: copy_first_token(5, 2.5, 3, jax.random.key(0)), TypeError, "copy_first_token: expected an integer T"),
        (lambda: copy_first_token(5, 4, 3, jax.random.key(0), num_distractors=0), ValueError,
         "copy_first_token: expected num_distractors >= 1"),
        (lambda: adding_problem(5, 1, jax.random.key(0)), ValueError, "adding_problem: expected T >= 2"),
        (lambda: sequential_digits(test_fraction=0.0), ValueError, "sequential_digits: expected 0 < test_fraction"),
        (lambda: sequential_digits(num_train=0), ValueError, "sequential_digits: expected num_train > 0"),
    ],
)
def test_bad_arguments_raise_naming_the_function(call, error, message):
    with pytest.raises(error, match=message):
        call()
