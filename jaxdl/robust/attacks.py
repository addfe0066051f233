"""Adversarial attacks: FGSM, PGD and DeepFool on any ``logits_fn(params, x)``.

The seeds' robustness chapter (seed 000 §11.1, seed 001 §20.1, seed 002
"Adversarial attacks"), as pure functions that ``jax.jit`` and ``jax.vmap``
accept:

* threat model: ``x' = x + δ`` with ``‖δ‖_p ≤ ε`` for ``p ∈ {∞, 2}``, untargeted
  (``ŷ(x') ≠ y``) or targeted (``ŷ(x') = t``), found by maximising the loss;
* FGSM: ``δ = ε · sign(∇_x L(f(x), y))`` (and its L2 analogue ``ε ∇/‖∇‖₂``);
  on a binary linear score ``wᵀx + b`` this is the seeds' ``δ = -ε sign(y w)``;
* PGD: ``η_{t+1} = Π_ε[η_t + α ∇_x L(f(x + η_t), y)]`` (the sign of the gradient
  for L∞), ``Π_ε`` the projection onto the ε-ball, from a random start in the ball,
  with a step-size schedule and restarts of which the strongest is kept;
* DeepFool: the seeds' minimal L2 perturbation of an affine classifier,
  ``η* = (f_1(x) - f_2(x)) / ‖w_2 - w_1‖² (w_2 - w_1)`` (binary scores:
  ``δ* = -(wᵀx + b) / ‖w‖² w``), iterated on the linearised model; multi-class
  moves towards the nearest linearised boundary ``|f'_k| / ‖w'_k‖``.

Conventions: ``logits_fn(params, x) -> f[batch, classes]`` (or ``f[batch]`` for a
binary score whose sign is the class, labels in {0, 1}); ``x`` has a leading batch
axis and every example gets its own ε-ball (norms over all other axes); the model
must treat examples independently (no batch statistics), so that the gradient of
the summed per-example loss is each example's own gradient. ``domain=(lo, hi)``
clips every adversarial input to the input range (``[0, 1]`` pixels, or the
standardised range of the data; scalars or arrays broadcasting against one
example); ``None`` leaves it unbounded. Every function returns the adversarial
inputs ``x_adv`` of ``x``'s shape.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.stax.layer import check_key

NORMS = ("linf", "l2")
_TINY = 1e-12


# --- checks --------------------------------------------------------------------------


def check_norm(name: str, norm) -> str:
    """``'linf'`` (also ``'inf'``, ``np.inf``) or ``'l2'`` (also ``2``)."""
    aliases = {"linf": "linf", "inf": "linf", "l2": "l2", "2": "l2"}
    key = "inf" if isinstance(norm, float) and np.isinf(norm) else str(norm).lower()
    if isinstance(norm, bool) or key not in aliases:
        raise ValueError(f"{name}: expected norm to be one of {list(NORMS)} (or np.inf, 2), got {norm!r}")
    return aliases[key]


def check_eps(name: str, eps, what: str = "eps"):
    """A non-negative finite budget; traced values (under ``jit``) pass unchecked."""
    if isinstance(eps, jax.core.Tracer):
        return eps
    value = np.asarray(eps)
    if not np.issubdtype(value.dtype, np.number) or value.ndim != 0:
        raise TypeError(f"{name}: expected {what} to be a real number, got {eps!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected {what} >= 0 and finite, got {eps!r}")
    return eps


def _check_inputs(name: str, logits_fn, x, y):
    if not callable(logits_fn):
        raise TypeError(f"{name}: expected logits_fn(params, x) -> logits to be callable, got {logits_fn!r}")
    x = jnp.asarray(x)
    if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name}: expected x to be a float array with a leading batch axis, got {x.dtype}{x.shape}")
    if y is not None and jax.tree.leaves(y) and jax.tree.leaves(y)[0].shape[:1] != x.shape[:1]:
        raise ValueError(f"{name}: expected labels for the {x.shape[0]} examples of x, got shape {jnp.shape(jax.tree.leaves(y)[0])}")
    return x


def _check_domain(name: str, domain):
    if domain is None:
        return None
    if not isinstance(domain, (tuple, list)) or len(domain) != 2:
        raise TypeError(f"{name}: expected domain to be None or a pair (lo, hi), got {domain!r}")
    lo, hi = domain
    if not isinstance(lo, jax.core.Tracer) and not isinstance(hi, jax.core.Tracer):
        if np.any(np.asarray(lo) > np.asarray(hi)):
            raise ValueError(f"{name}: expected domain lo <= hi, got {domain!r}")
    return lo, hi


# --- losses ----------------------------------------------------------------------------


def cross_entropy(logits, y):
    """Per-example cross-entropy of integer labels ``y`` (binary logistic loss for
    scores ``f[batch]`` with labels in {0, 1})."""
    if logits.ndim == 1:
        return jax.nn.softplus(-(2.0 * y - 1.0) * logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_p, y[:, None].astype(jnp.int32), axis=-1)[:, 0]


def margin_loss(logits, y):
    """Per-example ``max_{j≠y} f_j - f_y`` (Carlini–Wagner's margin; positive = misclassified)."""
    if logits.ndim == 1:
        return -(2.0 * y - 1.0) * logits
    true = jnp.take_along_axis(logits, y[:, None].astype(jnp.int32), axis=-1)[:, 0]
    others = jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return jnp.max(others, axis=-1) - true


LOSSES = {"ce": cross_entropy, "margin": margin_loss}


def _loss(name: str, loss) -> Callable:
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"{name}: expected loss to be one of {sorted(LOSSES)} or a callable (logits, y) -> f[batch], got {loss!r}")
    return LOSSES[loss]


def predict(logits):
    """Predicted classes of ``logits`` (the sign of a binary score)."""
    return (logits > 0).astype(jnp.int32) if logits.ndim == 1 else jnp.argmax(logits, axis=-1)


def accuracy(logits_fn: Callable, params, x, y) -> jax.Array:
    """Share of ``x`` classified as ``y``."""
    return jnp.mean(predict(logits_fn(params, x)) == y)


# --- geometry --------------------------------------------------------------------------


def _per_example(v, fn):
    """``fn`` reduced over all axes but the first, shaped to broadcast against ``v``."""
    axes = tuple(range(1, v.ndim))
    return fn(v, axis=axes, keepdims=True)


def l2_norm(v):
    """Per-example L2 norm, broadcastable against ``v``."""
    return jnp.sqrt(_per_example(v * v, jnp.sum))


def _unit_l2(v):
    """``v / ‖v‖₂`` per example; 0 where ``v`` is 0 (no NaN)."""
    norm = l2_norm(v)
    return jnp.where(norm > _TINY, v / jnp.maximum(norm, _TINY), 0.0)


def project(delta, eps, norm: str):
    """``Π_ε``: the nearest point of the ε-ball (per example) to ``delta``."""
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    norm_ = l2_norm(delta)
    return delta * jnp.minimum(1.0, eps / jnp.maximum(norm_, _TINY))


def _clip_domain(x, delta, domain):
    """The perturbation that keeps ``x + delta`` in the domain. It shrinks every
    coordinate of ``delta`` towards 0, so it stays in the L∞ and the L2 ball."""
    if domain is None:
        return delta
    return jnp.clip(x + delta, domain[0], domain[1]) - x


def _ascent_direction(grad, norm: str):
    return jnp.sign(grad) if norm == "linf" else _unit_l2(grad)


def random_in_ball(key, shape, eps, norm: str, dtype=jnp.float32):
    """Uniform samples of the per-example ε-ball (L∞: a cube; L2: direction × ε U^{1/d})."""
    if norm == "linf":
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * eps
    direction_key, radius_key = jax.random.split(key)
    direction = _unit_l2(jax.random.normal(direction_key, shape, dtype))
    dim = int(np.prod(shape[1:]))
    radius = jax.random.uniform(radius_key, (shape[0],) + (1,) * (len(shape) - 1), dtype) ** (1.0 / dim)
    return direction * radius * eps


def _input_grad(logits_fn, params, loss_fn, sign):
    """``(x, y) -> (per-example loss, ∇_x of sign · summed loss)``."""

    def total(x, y):
        losses = loss_fn(logits_fn(params, x), y)
        return jnp.sum(sign * losses), losses

    def value_and_grad(x, y):
        (_, losses), grad = jax.value_and_grad(total, has_aux=True)(x, y)
        return losses, grad

    return value_and_grad


# --- FGSM ------------------------------------------------------------------------------


def fgsm(logits_fn: Callable, params, x, y, key=None, *, eps, norm="linf", domain=None, targeted: bool = False,
         loss="ce"):
    """Fast gradient (sign) method: one step of size ε along the ascent direction.

    ``δ = ε sign(∇_x L)`` (L∞) or ``ε ∇_x L / ‖∇_x L‖₂`` (L2), of the loss of the
    true labels ``y`` (untargeted) or minus the loss of the targets ``y``
    (``targeted``); ``key`` is unused (the signature is the attacks' common one).
    """
    name = "fgsm"
    norm, eps = check_norm(name, norm), check_eps(name, eps)
    x, domain = _check_inputs(name, logits_fn, x, y), _check_domain(name, domain)
    sign = -1.0 if targeted else 1.0
    _, grad = _input_grad(logits_fn, params, _loss(name, loss), sign)(x, y)
    delta = _clip_domain(x, eps * _ascent_direction(grad, norm), domain)
    return x + delta


# --- PGD -------------------------------------------------------------------------------


def _success(logits, y, targeted):
    """Per example: the attack reached its goal; all False for targets that are not labels
    (e.g. TRADES's probabilities), where restarts are ranked by the loss alone."""
    if not hasattr(y, "shape") or y.shape != logits.shape[:1]:
        return jnp.zeros(logits.shape[:1], bool)
    hit = predict(logits) == y
    return hit if targeted else ~hit


def pgd(logits_fn: Callable, params, x, y, key, *, eps, norm="linf", steps: int = 20, step_size=None,
        random_start: bool = True, restarts: int = 1, targeted: bool = False, domain=None, loss="ce"):
    """Projected gradient ascent on the loss inside the ε-ball (Madry et al.; the seeds' PGD).

    Args:
      logits_fn, params, x, y, key: the model, its inputs, their labels (the targets
        when ``targeted``) and a PRNG key for the random starts.
      eps, norm: the threat model ``‖δ‖_norm ≤ eps``, ``norm`` ``'linf'`` or ``'l2'``.
      steps: gradient steps per restart.
      step_size: ``α``, a number or a schedule ``α(t)`` of the step index ``t`` (an
        optax schedule works); default ``2.5 ε / steps`` (Madry et al.).
      random_start: start uniformly in the ball (else at ``x``).
      restarts: independent runs; per example the strongest one is kept
        (successful before unsuccessful, then the larger loss).
      targeted: minimise the loss of the target classes ``y`` instead.
      domain: ``(lo, hi)`` input range every iterate is clipped to.
      loss: ``'ce'``, ``'margin'`` or ``loss(logits, y) -> f[batch]``.
    """
    name = "pgd"
    norm, eps = check_norm(name, norm), check_eps(name, eps)
    x, domain = _check_inputs(name, logits_fn, x, y), _check_domain(name, domain)
    for what, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if what == "steps" else 1):
            raise ValueError(f"{name}: expected {what} to be an int >= {0 if what == 'steps' else 1}, got {value!r}")
    if step_size is None:
        step_size = 2.5 * eps / max(steps, 1)
    schedule = step_size if callable(step_size) else (lambda t: step_size)
    if not callable(step_size):
        check_eps(name, step_size, "step_size")
    loss_fn = _loss(name, loss)
    sign = -1.0 if targeted else 1.0
    value_and_grad = _input_grad(logits_fn, params, loss_fn, sign)

    def one_run(run_key):
        delta = random_in_ball(run_key, x.shape, eps, norm, x.dtype) if random_start else jnp.zeros_like(x)
        delta = _clip_domain(x, delta, domain)

        def step(t, delta):
            _, grad = value_and_grad(x + delta, y)
            delta = project(delta + schedule(t) * _ascent_direction(grad, norm), eps, norm)
            return _clip_domain(x, delta, domain)

        delta = jax.lax.fori_loop(0, steps, step, delta)
        logits = logits_fn(params, x + delta)
        return delta, sign * loss_fn(logits, y), _success(logits, y, targeted)

    key = jax.random.key(0) if key is None and not random_start else check_key(name, key)
    best, best_loss, best_success = one_run(jax.random.fold_in(key, 0))
    for restart in range(1, restarts):
        delta, run_loss, success = one_run(jax.random.fold_in(key, restart))
        better = (success & ~best_success) | ((success == best_success) & (run_loss > best_loss))
        best = jnp.where(better.reshape((-1,) + (1,) * (x.ndim - 1)), delta, best)
        best_loss, best_success = jnp.where(better, run_loss, best_loss), best_success | success
    return x + best


# --- DeepFool --------------------------------------------------------------------------


def deepfool(logits_fn: Callable, params, x, y=None, key=None, *, max_iter: int = 50, overshoot: float = 0.02,
             domain=None):
    """DeepFool (Moosavi-Dezfooli et al.): the smallest L2 step to the linearised decision boundary, iterated.

    Binary scores ``f[batch]`` (class = sign): ``δ ← δ - f / ‖∇f‖² ∇f``, the seeds'
    ``δ* = -(wᵀx + b)/‖w‖² w`` for a linear score. Logits ``f[batch, K]``: with
    ``f'_k = f_k - f_y`` and ``w'_k = ∇f'_k``, step to the nearest linearised boundary
    ``l = argmin_{k≠y} |f'_l| / ‖w'_l‖`` by ``|f'_l| / ‖w'_l‖² w'_l`` (for K = 2 the
    seeds' ``η*``). Iterates until the label changes (at most ``max_iter`` times);
    the total perturbation is scaled by ``1 + overshoot`` to cross the boundary.
    ``y``: the labels to move away from (default: the predictions at ``x``); examples
    already misclassified get no perturbation. ``key`` is unused.
    """
    name = "deepfool"
    x, domain = _check_inputs(name, logits_fn, x, y), _check_domain(name, domain)
    check_eps(name, overshoot, "overshoot")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"{name}: expected max_iter to be a positive int, got {max_iter!r}")
    logits0 = logits_fn(params, x)
    binary = logits0.ndim == 1
    label = predict(logits0) if y is None else jnp.asarray(y).astype(jnp.int32)
    expand = (-1,) + (1,) * (x.ndim - 1)

    def binary_step(x_cur):
        score, vjp = jax.vjp(lambda z: logits_fn(params, z), x_cur)
        (grad,) = vjp(jnp.ones_like(score))
        sq = _per_example(grad * grad, jnp.sum)
        return -score.reshape(expand) / jnp.maximum(sq, _TINY) * grad

    def multiclass_step(x_cur):
        jac = jax.jacrev(lambda z: jnp.sum(logits_fn(params, z), axis=0))(x_cur)  # [K, batch, ...]
        logits = logits_fn(params, x_cur)
        num_classes = logits.shape[-1]
        f_diff = logits - jnp.take_along_axis(logits, label[:, None], axis=-1)  # [batch, K]
        jac = jnp.moveaxis(jac, 0, 1)  # [batch, K, ...]
        w_diff = jac - jnp.take_along_axis(jac, label.reshape((-1, 1) + (1,) * (x.ndim - 1)), axis=1)
        w_norm = jnp.sqrt(jnp.sum(w_diff.reshape(x.shape[0], num_classes, -1) ** 2, axis=-1))  # [batch, K]
        distance = jnp.abs(f_diff) / jnp.maximum(w_norm, _TINY)
        distance = jnp.where(jax.nn.one_hot(label, num_classes, dtype=bool), jnp.inf, distance)
        nearest = jnp.argmin(distance, axis=-1)
        f_l = jnp.take_along_axis(f_diff, nearest[:, None], axis=-1)[:, 0]
        n_l = jnp.take_along_axis(w_norm, nearest[:, None], axis=-1)[:, 0]
        w_l = jnp.take_along_axis(w_diff, nearest.reshape((-1, 1) + (1,) * (x.ndim - 1)), axis=1)[:, 0]
        return (jnp.abs(f_l) / jnp.maximum(n_l**2, _TINY)).reshape(expand) * w_l

    step_fn = binary_step if binary else multiclass_step

    def body(_, carry):
        delta = carry
        x_cur = x + _clip_domain(x, (1.0 + overshoot) * delta, domain)
        active = predict(logits_fn(params, x_cur)) == label
        step = step_fn(x_cur)
        return jnp.where(active.reshape(expand), delta + step, delta)

    delta = jax.lax.fori_loop(0, max_iter, body, jnp.zeros_like(x))
    return x + _clip_domain(x, (1.0 + overshoot) * delta, domain)


# --- infinite-width predictors ---------------------------------------------------------


def predictor_logits(predict_fn: Callable, get: str = "ntk", t=None) -> Callable:
    """``logits_fn(params, x)`` of the closed-form predictor ``predict_fn`` returned by
    :func:`jaxdl.predict.gradient_descent_mse_ensemble`: the mean output of the
    infinite ensemble at time ``t`` (``None``: infinite training time), for
    ``get`` ``'ntk'`` or ``'nngp'``. ``params`` is ignored (pass ``None``); the mean
    is a differentiable function of the test input, so every attack applies."""
    if not callable(predict_fn):
        raise TypeError(f"predictor_logits: expected the predict_fn of gradient_descent_mse_ensemble, got {predict_fn!r}")
    if get not in ("ntk", "nngp"):
        raise ValueError(f"predictor_logits: expected get to be 'ntk' or 'nngp', got {get!r}")

    def logits_fn(params, x):
        return predict_fn(t, x, get)

    return logits_fn
