"""The loss landscape as measurements: paths between minima, barriers, sharpness, pruning.

Seed statements implemented here (section "Loss Landscape"):

* Sharpness ``λ_max(H)``; "flat minima → better generalisation". :func:`sharpness` is
  the top Hessian eigenvalue (power iteration, :func:`jaxdl.theory.convergence.hessian_top_eigenvalue`);
  :func:`perturbed_loss_increase` is the mean loss increase under random parameter
  perturbations of norm ``r`` (for a quadratic ``½ θᵀAθ`` at its minimum it is
  ``r² tr(A) / (2P)``).
* Mode connectivity: "local minima connected by paths of low loss". Paths are functions
  ``t ∈ [0, 1] ↦ θ(t)``: the straight line :func:`interpolate` ``(1 − t)θ_a + tθ_b`` and the
  quadratic Bézier curve :func:`bezier_curve` ``(1 − t)²θ_a + 2t(1 − t)θ_c + t²θ_b``
  whose control point ``θ_c`` is trained (:func:`fit_bezier`) to minimise
  ``E_{t~U[0,1]} L(θ(t))`` (Garipov et al. 2018, "Loss surfaces, mode connectivity, and
  fast ensembling of DNNs"). :func:`loss_barrier` is
  ``max_t [L(θ(t)) − ((1 − t)L(θ_a) + tL(θ_b))]`` (Frankle et al. 2020).
* Lottery ticket hypothesis: "sparse subnetworks can match full network performance if
  initialised correctly". :func:`magnitude_prune` keeps the largest-magnitude weights;
  :func:`iterative_magnitude_pruning` trains, prunes a fraction of the surviving weights
  and rewinds the survivors to their early values (Frankle & Carbin 2019; rewinding:
  Frankle et al. 2020, "Linear mode connectivity and the lottery ticket hypothesis").

Parameters are any pytree; masks are pytrees of the same structure with 0/1 arrays
(leaves that are not pruned get an all-ones mask).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxdl.stax.layer import check_key
from jaxdl.theory.convergence import hessian_top_eigenvalue


def _check_same_structure(fn: str, a, b, names=("params_a", "params_b")) -> None:
    sa, sb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if sa != sb:
        raise ValueError(f"{fn}: expected {names[0]} and {names[1]} with the same structure, got {sa} and {sb}")
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if jnp.shape(x) != jnp.shape(y):
            raise ValueError(f"{fn}: expected {names[0]} and {names[1]} with the same leaf shapes, "
                             f"got {jnp.shape(x)} and {jnp.shape(y)}")


def _check_callable(fn: str, name: str, value) -> None:
    if not callable(value):
        raise TypeError(f"{fn}: expected a callable {name}, got {value!r}")


def _check_fraction(fn: str, name: str, value, *, closed_right: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not (0.0 <= value < 1.0 or (closed_right and value == 1.0)):
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{fn}: expected {name} in {interval}, got {value!r}")
    return float(value)


def interpolate(params_a, params_b, t):
    """The straight line ``(1 − t)θ_a + tθ_b`` (``t = 0``: θ_a, ``t = 1``: θ_b)."""
    _check_same_structure("interpolate", params_a, params_b)
    return jax.tree_util.tree_map(lambda a, b: (1 - t) * a + t * b, params_a, params_b)


def bezier_curve(params_a, control, params_b, t):
    """The quadratic Bézier curve ``(1 − t)²θ_a + 2t(1 − t)θ_c + t²θ_b`` with control point θ_c."""
    _check_same_structure("bezier_curve", params_a, params_b)
    _check_same_structure("bezier_curve", params_a, control, ("params_a", "control"))
    return jax.tree_util.tree_map(
        lambda a, c, b: (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t**2 * b, params_a, control, params_b)


def loss_along_path(loss_fn: Callable, path: Callable, ts) -> jax.Array:
    """``[loss_fn(path(t)) for t in ts]`` as f[len(ts)] (``path(t)`` returns params)."""
    _check_callable("loss_along_path", "loss_fn", loss_fn)
    _check_callable("loss_along_path", "path", path)
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"loss_along_path: expected a non-empty 1-d array of t values, got shape {ts.shape}")
    return jax.lax.map(lambda t: loss_fn(path(t)), ts)


def loss_barrier(ts, losses) -> float:
    """The barrier ``max_t [L(t) − ((1 − t)L(0) + tL(1))]`` of losses measured along a path.

    ``ts`` must be increasing from 0 to 1; the value is the largest excess of the loss
    over the chord between the end points (0 for a convex-along-the-path loss; >0 when
    the path climbs over a hill).
    """
    fn = "loss_barrier"
    ts, losses = np.asarray(ts, np.float64), np.asarray(losses, np.float64)
    if ts.ndim != 1 or ts.shape != losses.shape or ts.size < 2:
        raise ValueError(f"{fn}: expected 1-d ts and losses of the same length >= 2, got shapes "
                         f"{ts.shape} and {losses.shape}")
    if ts[0] != 0.0 or ts[-1] != 1.0 or np.any(np.diff(ts) <= 0):
        raise ValueError(f"{fn}: expected ts increasing from 0 to 1, got {ts[0]} ... {ts[-1]}")
    if not np.all(np.isfinite(losses)):
        raise ValueError(f"{fn}: expected finite losses, got {losses}")
    chord = (1 - ts) * losses[0] + ts * losses[-1]
    return float(np.max(losses - chord))


class BezierFit(NamedTuple):
    control: object  # the trained control point θ_c (a params pytree)
    loss_history: list  # mean over the sampled t of the loss, per step


def fit_bezier(loss_fn: Callable, params_a, params_b, *, key, num_steps: int = 200,
               learning_rate: float = 1e-2, num_t: int = 4, optimizer=None) -> BezierFit:
    """Train the control point θ_c of the Bézier curve between two minima (Garipov et al.).

    Minimises ``E_{t~U[0,1]} L(bezier_curve(θ_a, θ_c, θ_b, t))`` over θ_c by ``optimizer``
    (default Adam with ``learning_rate``), each step averaging the loss over ``num_t``
    uniform draws of t, starting from the midpoint ``(θ_a + θ_b)/2`` (the straight line).
    The end points stay fixed.
    """
    fn = "fit_bezier"
    _check_callable(fn, "loss_fn", loss_fn)
    _check_same_structure(fn, params_a, params_b)
    key = check_key(fn, key)
    for name, value in (("num_steps", num_steps), ("num_t", num_t)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: expected {name} to be a positive int, got {value!r}")
    optimizer = optax.adam(learning_rate) if optimizer is None else optimizer
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"{fn}: expected an optax.GradientTransformation, got {type(optimizer).__name__}")
    control = interpolate(params_a, params_b, 0.5)

    def objective(c, t_key):
        ts = jax.random.uniform(t_key, (num_t,))
        return jnp.mean(jax.vmap(lambda t: loss_fn(bezier_curve(params_a, c, params_b, t)))(ts))

    @jax.jit
    def step(carry, t_key):
        c, opt_state = carry
        loss, grads = jax.value_and_grad(objective)(c, t_key)
        updates, opt_state = optimizer.update(grads, opt_state, c)
        return (optax.apply_updates(c, updates), opt_state), loss

    (control, _), losses = jax.lax.scan(step, (control, optimizer.init(control)),
                                        jax.random.split(key, num_steps))
    losses = np.asarray(losses)
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(f"{fn}: the loss along the curve became non-finite; lower the learning rate")
    return BezierFit(control, losses.tolist())


def sharpness(loss_fn: Callable, params, *, key, num_iterations: int = 50) -> float:
    """The seeds' sharpness ``λ_max(H)`` of ``loss_fn`` at ``params`` (signed Rayleigh quotient
    after power iteration on Hessian-vector products)."""
    return float(hessian_top_eigenvalue(loss_fn, params, key=key, num_iterations=num_iterations))


def perturbed_loss_increase(loss_fn: Callable, params, radius: float, *, key, num_samples: int = 32) -> float:
    """Mean of ``L(θ + r u) − L(θ)`` over ``num_samples`` directions ``u`` uniform on the unit sphere.

    A derivative-free flatness measure: at a minimum with Hessian ``H`` and small ``r`` it
    is ``r² tr(H) / (2P)`` (P parameters) to second order.
    """
    fn = "perturbed_loss_increase"
    _check_callable(fn, "loss_fn", loss_fn)
    key = check_key(fn, key)
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"{fn}: expected radius > 0, got {radius!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"{fn}: expected num_samples to be a positive int, got {num_samples!r}")
    flat, unravel = ravel_pytree(params)
    base = loss_fn(params)
    directions = jax.random.normal(key, (num_samples, flat.size), flat.dtype)
    directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
    losses = jax.lax.map(lambda u: loss_fn(unravel(flat + radius * u)), directions)
    return float(jnp.mean(losses) - base)


def _prunable_default(leaf) -> bool:
    return jnp.ndim(leaf) >= 2  # weight matrices and kernels; biases and scales are kept


def apply_mask(params, masks):
    """``params * masks`` leaf by leaf (pruned weights become exactly 0)."""
    _check_same_structure("apply_mask", params, masks, ("params", "masks"))
    return jax.tree_util.tree_map(lambda p, m: p * m.astype(p.dtype), params, masks)


def ones_mask(params):
    """A mask that keeps every weight."""
    return jax.tree_util.tree_map(lambda p: jnp.ones(jnp.shape(p), jnp.float32), params)


def magnitude_prune(params, fraction: float, masks=None, *, prunable: Callable = _prunable_default,
                    scope: str = "layer"):
    """Prune ``fraction`` of the weights that ``masks`` still keeps, smallest ``|w|`` first.

    Args:
      params: the trained weights whose magnitudes decide.
      fraction: share of the surviving prunable weights to remove, in [0, 1).
      masks: the current masks (default: keep all).
      prunable: ``prunable(leaf) -> bool``; default: leaves with 2 or more dimensions.
      scope: ``"layer"`` removes ``round(fraction · alive)`` weights in every prunable
        leaf; ``"global"`` ranks the surviving weights of all prunable leaves together.

    Returns new masks (0/1 float32 arrays); ties are broken by position, so exactly the
    stated number of weights goes.
    """
    fn = "magnitude_prune"
    fraction = _check_fraction(fn, "fraction", fraction)
    if scope not in ("layer", "global"):
        raise ValueError(f"{fn}: expected scope 'layer' or 'global', got {scope!r}")
    _check_callable(fn, "prunable", prunable)
    masks = ones_mask(params) if masks is None else masks
    _check_same_structure(fn, params, masks, ("params", "masks"))
    leaves, treedef = jax.tree_util.tree_flatten(params)
    mask_leaves = [np.asarray(m, np.float32) for m in jax.tree_util.tree_leaves(masks)]
    chosen = [i for i, leaf in enumerate(leaves) if prunable(leaf)]
    new_masks = [m.copy() for m in mask_leaves]

    def prune(scores, alive):
        """Indices (into ``scores``) of the round(fraction · alive count) smallest alive scores."""
        alive_index = np.flatnonzero(alive)
        count = int(round(fraction * alive_index.size))
        order = np.argsort(scores[alive_index], kind="stable")
        return alive_index[order[:count]]

    if scope == "layer":
        for i in chosen:
            scores = np.abs(np.asarray(leaves[i], np.float64)).ravel()
            flat_mask = new_masks[i].ravel()
            flat_mask[prune(scores, flat_mask > 0)] = 0.0
            new_masks[i] = flat_mask.reshape(mask_leaves[i].shape)
    elif chosen:
        scores = np.concatenate([np.abs(np.asarray(leaves[i], np.float64)).ravel() for i in chosen])
        alive = np.concatenate([new_masks[i].ravel() > 0 for i in chosen])
        flat = np.concatenate([new_masks[i].ravel() for i in chosen])
        flat[prune(scores, alive)] = 0.0
        offsets = np.cumsum([0] + [new_masks[i].size for i in chosen])
        for k, i in enumerate(chosen):
            new_masks[i] = flat[offsets[k]:offsets[k + 1]].reshape(mask_leaves[i].shape)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(m) for m in new_masks])


def sparsity(masks, *, prunable: Callable = _prunable_default, params=None) -> float:
    """Share of pruned entries among the prunable leaves (judged on ``params`` if given, else on ``masks``)."""
    leaves = jax.tree_util.tree_leaves(masks)
    judged = leaves if params is None else jax.tree_util.tree_leaves(params)
    total = sum(np.size(m) for m, p in zip(leaves, judged) if prunable(p))
    if total == 0:
        raise ValueError("sparsity: no prunable leaves")
    zeros = sum(np.size(m) - np.count_nonzero(np.asarray(m)) for m, p in zip(leaves, judged) if prunable(p))
    return zeros / total


class PruningRound(NamedTuple):
    sparsity: float  # share of prunable weights removed when this round trained
    masks: object
    params: object  # the trained, masked params of this round
    metrics: dict  # what train_fn reported


def iterative_magnitude_pruning(train_fn: Callable, rewind_params, *, num_rounds: int,
                                fraction: float = 0.2, scope: str = "layer",
                                prunable: Callable = _prunable_default) -> list[PruningRound]:
    """Lottery tickets: train, prune ``fraction`` of the survivors by magnitude, rewind, repeat.

    Round ``r`` (``r = 0 … num_rounds − 1``) trains ``apply_mask(rewind_params, masks_r)``
    with ``train_fn(params, masks) -> (trained_params, metrics)`` (which must keep the masked
    weights at zero, e.g. by applying the mask inside the forward pass), records it, and
    sets ``masks_{r+1} = magnitude_prune(trained, fraction, masks_r)``; so round ``r``
    trains at sparsity ``1 − (1 − fraction)^r``. ``rewind_params`` are the weights at
    initialisation (Frankle & Carbin) or after a few steps of training (rewinding).
    """
    fn = "iterative_magnitude_pruning"
    _check_callable(fn, "train_fn", train_fn)
    if isinstance(num_rounds, bool) or not isinstance(num_rounds, int) or num_rounds < 1:
        raise ValueError(f"{fn}: expected num_rounds to be a positive int, got {num_rounds!r}")
    fraction = _check_fraction(fn, "fraction", fraction)
    masks = ones_mask(rewind_params)
    rounds = []
    for _ in range(num_rounds):
        trained, metrics = train_fn(apply_mask(rewind_params, masks), masks)
        trained = apply_mask(trained, masks)
        rounds.append(PruningRound(sparsity(masks, prunable=prunable, params=rewind_params), masks, trained,
                                   dict(metrics)))
        masks = magnitude_prune(trained, fraction, masks, prunable=prunable, scope=scope)
    return rounds


def sparsity_schedule(fraction: float, num_rounds: int) -> Sequence[float]:
    """The sparsities ``1 − (1 − fraction)^r`` that :func:`iterative_magnitude_pruning` trains at."""
    fraction = _check_fraction("sparsity_schedule", "fraction", fraction)
    return [1 - (1 - fraction) ** r for r in range(num_rounds)]
