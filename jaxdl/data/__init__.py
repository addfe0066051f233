"""Embedded datasets: small real datasets that ship with scikit-learn, so that
every experiment runs offline.

``load_digits`` is the 8x8 handwritten-digit set (1797 images, 10 classes) that
scikit-learn bundles; it is split with a fixed seed and standardised with the
training statistics only. :mod:`jaxdl.data.sequences` reads it as sequences of 64
pixels and draws the synthetic long-range tasks (copy-first-token, the adding problem).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """A train/test split. ``x_*``: float32 ``(n, features)``; ``y_*``: int32 labels ``(n,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def load_digits(
    test_fraction: float = 0.25,
    seed: int = 0,
    standardize: bool = True,
    num_train: int | None = None,
) -> Dataset:
    """scikit-learn's bundled digits, split into train and test.

    Args:
      test_fraction: share of the 1797 images held out for testing, in (0, 1).
      seed: seed of the (class-stratified) split.
      standardize: centre and scale each pixel with the training mean and std.
      num_train: keep only the first ``num_train`` training images (after the
        shuffle), for quick runs.
    """
    from sklearn.datasets import load_digits as _sklearn_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"load_digits: expected 0 < test_fraction < 1, got {test_fraction!r}"
        )
    bunch = _sklearn_digits()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    if num_train is not None:
        if num_train <= 0:
            raise ValueError(f"load_digits: expected num_train > 0, got {num_train!r}")
        x_train, y_train = x_train[:num_train], y_train[:num_train]
    if standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # pixels constant in training (image corners) stay unscaled
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    return Dataset("sklearn-digits", x_train, y_train, x_test, y_test, 10)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Float32 one-hot encoding of integer ``labels``."""
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(num_classes)).astype(np.float32)


# Sequence data (after Dataset and load_digits, which it builds on).
from jaxdl.data.sequences import ADDING_BASELINE_MSE, adding_problem, copy_first_token, sequential_digits  # noqa: E402
