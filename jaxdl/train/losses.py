"""Classification losses from the seeds' tricks-of-the-trade chapter: label
smoothing, the tempered cross-entropy and distillation.

Seed formulas implemented here:

* **Label smoothing** (replace labels by noisy distributions):
  ``y_smooth = (1 - alpha) y + alpha / K``, optax's ``smooth_labels``
  (:func:`smooth_labels`, :func:`cross_entropy` with ``label_smoothing``).
* **Tempered cross-entropy** of a student ``G`` against a teacher ``F`` at
  temperature ``T``: the seeds' ``l(x) = sum_y softmax(F/T)_y [G_y/T - ln sum_nu
  exp(G_nu/T)]`` is the expected tempered log-likelihood; the loss is its
  negative, ``-sum_y softmax(F/T)_y log softmax(G/T)_y``
  (:func:`tempered_cross_entropy`). Its gradient is the seeds' distillation
  gradient ``d loss / d G_y = (softmax(G/T)_y - softmax(F/T)_y) / T``.
* **Distillation** with a mix weight ``q`` (:func:`distillation_loss`):
  ``q * tempered_cross_entropy(G, F, T) + (1 - q) * cross_entropy(G, labels)``, so
  ``d/dG = q/T (softmax(G/T) - softmax(F/T)) + (1 - q)(softmax(G) - y)``. One seed
  prints ``q`` inside the exponent and on the student term of the gradient,
  which is garbled; we follow Hinton, Vinyals & Dean (2015): ``q`` weights the
  soft-target term against the hard labels. With ``q = 1`` (no labels needed)
  the gradient is exactly the seeds' formula. Hinton et al. also multiply the
  soft term by ``T**2`` to keep its gradient scale independent of ``T``
  (``scale_by_T_squared=True``); the default follows the seeds.

The per-example functions return ``f[batch]`` (optax's convention); the
``make_*`` factories return ``loss_fn(outputs, y) -> scalar`` means for
:func:`jaxdl.train.fit`. Labels are integer classes ``i[batch]`` or
distributions ``f[batch, K]`` (one-hot or smoothed). Log-probabilities come
from ``jax.nn.log_softmax``, so large logits and small ``T`` stay finite.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "cross_entropy",
    "distillation_loss",
    "distillation_targets",
    "make_cross_entropy_loss",
    "make_distillation_loss",
    "smooth_labels",
    "tempered_cross_entropy",
    "tempered_softmax",
]


def _check_logits(name: str, logits, what: str = "logits") -> jax.Array:
    logits = jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[-1] < 2:
        raise ValueError(f"{name}: expected {what} f[..., classes] with >= 2 classes, got shape {tuple(logits.shape)}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating {what}, got dtype {logits.dtype}")
    return logits


def _check_temperature(name: str, T) -> float:
    if isinstance(T, bool) or not isinstance(T, (int, float, np.integer, np.floating)) or not np.isfinite(T) or T <= 0:
        raise ValueError(f"{name}: expected a finite temperature T > 0, got {T!r}")
    return float(T)


def _check_fraction(name: str, what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected {what} in [0, 1], got {value!r}")
    return float(value)


def _as_distribution(name: str, labels, num_classes: int, dtype) -> jax.Array:
    """Integer labels -> one-hot; distributions pass through (shape-checked)."""
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return jax.nn.one_hot(labels, num_classes, dtype=dtype)
    if labels.shape[-1:] != (num_classes,):
        raise ValueError(
            f"{name}: expected integer labels or label distributions f[..., {num_classes}], "
            f"got shape {tuple(labels.shape)} and dtype {labels.dtype}"
        )
    return labels.astype(dtype)


def smooth_labels(labels, alpha: float, num_classes: int | None = None) -> jax.Array:
    """``(1 - alpha) y + alpha / K`` (``optax.smooth_labels``) for integer labels
    (then ``num_classes`` is required) or one-hot/distribution labels ``f[..., K]``."""
    name = "smooth_labels"
    alpha = _check_fraction(name, "alpha", alpha)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if num_classes is None or num_classes < 2:
            raise ValueError(f"{name}: integer labels need num_classes >= 2, got {num_classes!r}")
        labels = jax.nn.one_hot(labels, num_classes)
    elif labels.ndim < 1 or labels.shape[-1] < 2:
        raise ValueError(f"{name}: expected labels f[..., classes], got shape {tuple(labels.shape)}")
    return optax.smooth_labels(labels, alpha)


def cross_entropy(logits, labels, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy ``-sum_y t_y log softmax(z)_y`` against the
    (optionally smoothed) targets ``t``; ``f[batch]``."""
    name = "cross_entropy"
    logits = _check_logits(name, logits)
    targets = _as_distribution(name, labels, logits.shape[-1], logits.dtype)
    if targets.shape != logits.shape:
        raise ValueError(f"{name}: labels of shape {tuple(targets.shape)} do not match logits {tuple(logits.shape)}")
    if label_smoothing:
        targets = optax.smooth_labels(targets, _check_fraction(name, "label_smoothing", label_smoothing))
    return optax.softmax_cross_entropy(logits, targets)


def tempered_softmax(logits, T: float) -> jax.Array:
    """``softmax(logits / T)``: ``T > 1`` softens, ``T < 1`` sharpens."""
    name = "tempered_softmax"
    return jax.nn.softmax(_check_logits(name, logits) / _check_temperature(name, T), axis=-1)


def tempered_cross_entropy(student_logits, teacher_logits, T: float) -> jax.Array:
    """The seeds' tempered cross-entropy, negated to a loss:
    ``-sum_y softmax(F/T)_y log softmax(G/T)_y`` per example (``G``: student, ``F``: teacher).
    Gradient in ``G``: ``(softmax(G/T) - softmax(F/T)) / T``."""
    name = "tempered_cross_entropy"
    T = _check_temperature(name, T)
    G = _check_logits(name, student_logits, "student_logits")
    F = _check_logits(name, teacher_logits, "teacher_logits")
    if F.shape != G.shape:
        raise ValueError(f"{name}: teacher logits {tuple(F.shape)} and student logits {tuple(G.shape)} differ in shape")
    soft_targets = jax.lax.stop_gradient(jax.nn.softmax(F / T, axis=-1))
    return -jnp.sum(soft_targets * jax.nn.log_softmax(G / T, axis=-1), axis=-1)


def distillation_loss(
    student_logits,
    teacher_logits,
    T: float,
    q: float = 1.0,
    labels=None,
    *,
    scale_by_T_squared: bool = False,
) -> jax.Array:
    """Distillation loss per example:
    ``q * c * tempered_cross_entropy(G, F, T) + (1 - q) * cross_entropy(G, labels)``,
    ``c = T**2`` if ``scale_by_T_squared`` else 1.

    Args:
      student_logits: ``G``, ``f[batch, K]``.
      teacher_logits: ``F``, ``f[batch, K]`` (no gradient flows into them).
      T: temperature ``> 0``.
      q: weight of the soft (teacher) targets in ``[0, 1]``; ``q = 1`` is the seeds'
        pure tempered cross-entropy, whose gradient is ``(softmax(G/T) - softmax(F/T))/T``.
      labels: hard labels (integers ``i[batch]`` or distributions ``f[batch, K]``,
        e.g. smoothed); required when ``q < 1``.
      scale_by_T_squared: Hinton et al.'s ``T**2`` factor on the soft term.

    Returns:
      ``f[batch]``.
    """
    name = "distillation_loss"
    q = _check_fraction(name, "q", q)
    soft = tempered_cross_entropy(student_logits, teacher_logits, T)
    if scale_by_T_squared:
        soft = soft * _check_temperature(name, T) ** 2
    if q == 1.0:
        return soft
    if labels is None:
        raise ValueError(f"{name}: q={q} < 1 mixes in the hard-label loss, so labels are required")
    return q * soft + (1.0 - q) * cross_entropy(student_logits, labels)


def distillation_targets(teacher_logits, labels=None, num_classes: int | None = None) -> jax.Array:
    """Pack teacher logits (and hard labels) into the single target array that
    :func:`make_distillation_loss`'s ``loss_fn`` (and ``train.fit``'s ``y``) takes:
    ``f[batch, K]`` without labels, ``f[batch, 2, K]`` = (teacher logits, label
    distribution) with them."""
    name = "distillation_targets"
    F = _check_logits(name, teacher_logits, "teacher_logits")
    if labels is None:
        return F
    K = F.shape[-1] if num_classes is None else num_classes
    Y = _as_distribution(name, labels, K, F.dtype)
    if Y.shape != F.shape:
        raise ValueError(f"{name}: labels {tuple(Y.shape)} do not match teacher logits {tuple(F.shape)}")
    return jnp.stack([F, Y], axis=-2)


def make_cross_entropy_loss(label_smoothing: float = 0.0) -> Callable:
    """``loss_fn(logits, labels) -> mean cross-entropy`` with optax label smoothing,
    for ``train.fit``."""
    label_smoothing = _check_fraction("make_cross_entropy_loss", "label_smoothing", label_smoothing)

    def loss_fn(logits, labels):
        return jnp.mean(cross_entropy(logits, labels, label_smoothing))

    return loss_fn


def make_distillation_loss(T: float, q: float = 1.0, *, scale_by_T_squared: bool = False) -> Callable:
    """``loss_fn(student_logits, targets) -> mean distillation loss`` for ``train.fit``,
    ``targets`` from :func:`distillation_targets` (teacher logits, plus labels when ``q < 1``)."""
    name = "make_distillation_loss"
    T = _check_temperature(name, T)
    q = _check_fraction(name, "q", q)

    def loss_fn(student_logits, targets):
        targets = jnp.asarray(targets)
        if targets.ndim == jnp.ndim(student_logits) + 1 and targets.shape[-2] == 2:
            teacher, labels = targets[..., 0, :], targets[..., 1, :]
        elif q < 1.0:
            raise ValueError(
                f"{name}: q={q} < 1 needs targets (batch, 2, K) from distillation_targets(teacher, labels), "
                f"got shape {tuple(targets.shape)}"
            )
        else:
            teacher, labels = targets, None
        return jnp.mean(distillation_loss(student_logits, teacher, T, q, labels, scale_by_T_squared=scale_by_T_squared))

    return loss_fn
