"""Sequence data for recurrent models: the digits read pixel by pixel, and two
synthetic long-range tasks.

Every array is ``(batch, time, features)``, the layout of the recurrent stax
layers.

* :func:`sequential_digits`: scikit-learn's bundled 8x8 digits (the split of
  :func:`jaxdl.data.load_digits`) read as a sequence of 64 pixels in row-major
  order, one pixel per step, scaled from 0..16 to [0, 1]: ``(n, 64, 1)``.
* :func:`copy_first_token`: the class to recall is the first token; T
  distractor tokens follow. A pure memory test: the label is in step 0 only, so
  a recurrent model must carry it across T steps. This is the seeds'
  vanishing-gradient setting: the gradient that would teach the model to keep
  the first token is the product of T step Jacobians
  ``prod_j Phi_j U`` (seeds, "Gated memory"), which decays exponentially when
  ``||Phi_j U|| < 1``.
* :func:`adding_problem`: Hochreiter & Schmidhuber's (1997) task: channel 0 holds
  values drawn from U[0, 1], channel 1 marks two of the steps (one in each half
  of the sequence) with a 1; the target is the sum of the two marked values.
  Predicting the constant 1 gives the mean squared error
  Var(u_1 + u_2) = 2/12 = 1/6 (:data:`ADDING_BASELINE_MSE`), the bar a model must
  beat.

The synthetic tasks are drawn from a JAX PRNG key (the same key gives the same
data) and returned as numpy arrays, like :func:`jaxdl.data.load_digits`.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxdl.data import Dataset, load_digits

#: Mean squared error of the constant prediction 1.0 on the adding problem: Var(u_1 + u_2) = 1/6.
ADDING_BASELINE_MSE = 1.0 / 6.0


def sequential_digits(test_fraction: float = 0.25, seed: int = 0, num_train: int | None = None) -> Dataset:
    """The bundled digits as sequences of 64 pixels, ``x: f32[n, 64, 1]`` in [0, 1].

    The split is :func:`jaxdl.data.load_digits`'s (class-stratified, fixed by
    ``seed``; default 1347 training and 450 test images); pixel ``(row, col)`` of
    the 8x8 image is step ``8 * row + col``.

    Args:
      test_fraction: share of the 1797 images held out for testing, in (0, 1).
      seed: seed of the split.
      num_train: keep only the first ``num_train`` training sequences.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"sequential_digits: expected 0 < test_fraction < 1, got {test_fraction!r}")
    if num_train is not None and num_train <= 0:
        raise ValueError(f"sequential_digits: expected num_train > 0, got {num_train!r}")
    data = load_digits(test_fraction=test_fraction, seed=seed, standardize=False, num_train=num_train)

    def as_sequences(x):
        return (x / 16.0).reshape(-1, 64, 1).astype(np.float32)

    return Dataset("sklearn-digits-sequential", as_sequences(data.x_train), data.y_train,
                   as_sequences(data.x_test), data.y_test, data.num_classes)  # fmt: skip


def _check_sizes(name: str, **sizes):
    for label, (value, least) in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}: expected an integer {label}, got {value!r}")
        if value < least:
            raise ValueError(f"{name}: expected {label} >= {least}, got {value!r}")


def copy_first_token(n: int, T: int, vocab: int, key, *, num_distractors: int = 1, one_hot: bool = True):
    """``n`` sequences of ``T + 1`` tokens whose label is the first token.

    Step 0 holds the token to recall, a class in ``0 .. vocab - 1`` (uniform);
    steps ``1 .. T`` hold distractors drawn uniformly and independently of the
    label from ``num_distractors`` symbols with their own ids
    ``vocab .. vocab + num_distractors - 1`` (one symbol, the default, is the
    classic blank-filled memory task; more symbols make the distractors noisy).
    So the label is recoverable from step 0 and from no other step.

    Args:
      n: number of sequences.
      T: number of distractor steps after the first token (the memory span).
      vocab: number of classes (tokens that can come first), at least 2.
      key: a JAX PRNG key; the same key gives the same data.
      num_distractors: number of distractor symbols, at least 1.
      one_hot: return ``x`` as ``f32[n, T + 1, vocab + num_distractors]`` one-hot
        vectors; ``False`` returns the token ids ``int32[n, T + 1]``.

    Returns:
      ``(x, y)`` with ``y: int32[n]`` the class of the first token.
    """
    _check_sizes("copy_first_token", n=(n, 1), T=(T, 1), vocab=(vocab, 2), num_distractors=(num_distractors, 1))
    low = np.full(T + 1, vocab, np.int32)  # step 0 draws from [0, vocab), the others from the distractors
    low[0] = 0
    high = np.full(T + 1, vocab + num_distractors, np.int32)
    high[0] = vocab
    ids = np.asarray(jax.random.randint(key, (n, T + 1), low, high), np.int32)
    first = ids[:, 0].copy()
    if not one_hot:
        return ids, first
    return (ids[..., None] == np.arange(vocab + num_distractors)).astype(np.float32), first


def adding_problem(n: int, T: int, key):
    """``n`` sequences of the adding problem of length ``T``.

    ``x[:, :, 0]`` is uniform on [0, 1); ``x[:, :, 1]`` is 1 at two steps, one
    uniform in the first half ``[0, T // 2)`` and one in the second half
    ``[T // 2, T)``, and 0 elsewhere.

    Returns:
      ``(x, y)``: ``x: f32[n, T, 2]`` and the targets ``y: f32[n]``, the sum of
      the two marked values (in [0, 2)).
    """
    _check_sizes("adding_problem", n=(n, 1), T=(T, 2))
    value_key, first_key, second_key = jax.random.split(key, 3)
    values = np.asarray(jax.random.uniform(value_key, (n, T)), np.float32)
    half = T // 2
    first = np.asarray(jax.random.randint(first_key, (n,), 0, half))
    second = np.asarray(jax.random.randint(second_key, (n,), half, T))
    marks = np.zeros((n, T), np.float32)
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, marks], axis=-1), y.astype(np.float32)
