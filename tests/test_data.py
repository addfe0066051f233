"""The embedded datasets against scikit-learn's raw data."""

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_digits

from jaxdl.data import load_digits, one_hot


def test_digits_split_is_stratified_and_complete():
    data = load_digits(test_fraction=0.25, seed=0, standardize=False)
    raw = sklearn_digits()
    assert len(data.x_train) + len(data.x_test) == len(raw.data) == 1797
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    train_counts = np.bincount(data.y_train, minlength=10) / len(data.y_train)
    all_counts = np.bincount(raw.target, minlength=10) / len(raw.target)
    np.testing.assert_allclose(train_counts, all_counts, atol=0.01)
    # every test image is a real digit image from the raw set
    raw_rows = {row.tobytes() for row in raw.data.astype(np.float32)}
    assert all(row.tobytes() in raw_rows for row in data.x_test)


def test_standardisation_uses_training_statistics_and_keeps_constant_pixels_finite():
    raw = load_digits(seed=3, standardize=False)
    data = load_digits(seed=3)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    varying = raw.x_train.std(axis=0) > 0
    np.testing.assert_allclose(data.x_train.std(axis=0)[varying], 1.0, rtol=1e-4)
    # a pixel constant in training but not in the test set must not blow up
    assert np.abs(data.x_test).max() < 100
    np.testing.assert_allclose(data.x_test[:, ~varying], raw.x_test[:, ~varying] - raw.x_train[0, ~varying])


def test_num_train_and_bad_arguments():
    assert len(load_digits(num_train=100).x_train) == 100
    with pytest.raises(ValueError, match="load_digits: expected 0 < test_fraction < 1"):
        load_digits(test_fraction=1.5)
    with pytest.raises(ValueError, match="load_digits: expected num_train > 0"):
        load_digits(num_train=0)


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
