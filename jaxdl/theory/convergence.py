"""Convergence theory you can measure: smoothness, Polyak-Łojasiewicz, rates, sharpness.

Seed formulas (h: the loss, h*: its minimum, η = 1/L):

* L-smoothness: ‖∇h(θ₁) − ∇h(θ₂)‖ ≤ L‖θ₁ − θ₂‖, i.e. λ_max(∇²h) ≤ L. At a point,
  :func:`hessian_top_eigenvalue` measures ‖∇²h(θ)‖₂ by power iteration on
  Hessian-vector products; :func:`hessian_eigenvalues` gives the top (or
  bottom) k by Lanczos; along a run it is the sharpness (:func:`sharpness_along_run`).
* Polyak-Łojasiewicz: ½‖∇h(θ)‖² ≥ μ(h(θ) − h*); :func:`pl_ratio` is the left side
  over h(θ) − h*, the largest μ the point allows.
* Rates: with PL, h(θ_t) − h* ≤ (1 − μ/L)^t (h(θ_0) − h*) (:func:`gd_convergence_bound`);
  without, an ε-critical point within T = 2L(h(θ_0) − h*)/ε² steps
  (:func:`steps_to_eps_critical`).
* Condition number: κ = |λ_max|/|λ_min| of the Hessian (:func:`condition_number`).
* SGD gradient variance: V = (1/s) Σ_i ‖∇h(S) − ∇h(x_i, y_i)‖² (:func:`sgd_gradient_variance`).

Every function takes a ``loss_fn`` of a params pytree (any structure) and works
on the flattened vector (``jax.flatten_util.ravel_pytree``); Hessians are
never formed, only Hessian-vector products (forward-over-reverse). Written
here because no well-kept JAX library provides these measurements (optax and
flax have none; Lanczos is a few lines around ``jnp.linalg.eigvalsh``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxdl.stax.layer import check_key


def _flat_hvp(loss_fn: Callable, params):
    """(θ as a vector f[n], v ↦ ∇²h(θ) v on vectors f[n])."""
    flat, unravel = ravel_pytree(params)
    grad_fn = jax.grad(lambda v: loss_fn(unravel(v)))

    def hvp(vector):
        return jax.jvp(grad_fn, (flat,), (vector,))[1]

    return flat, hvp


def _check_loss_fn(fn: str, loss_fn) -> None:
    if not callable(loss_fn):
        raise TypeError(f"{fn}: expected a callable loss_fn(params) -> scalar, got {loss_fn!r}")


def _check_count(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: expected {name} to be a positive int, got {value!r}")
    return value


def _unit_vector(key, size: int, dtype) -> jax.Array:
    v = jax.random.normal(key, (size,), dtype)
    return v / jnp.linalg.norm(v)


def _power_iteration(hvp, vector, num_iterations: int):
    """Returns (Rayleigh quotient vᵀHv, v) after ``num_iterations`` steps v ← Hv/‖Hv‖."""

    def body(_, v):
        w = hvp(v)
        norm = jnp.linalg.norm(w)
        return jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1.0), v)

    vector = jax.lax.fori_loop(0, num_iterations, body, vector)
    return vector @ hvp(vector), vector


def hessian_top_eigenvalue(
    loss_fn: Callable, params, *, key, num_iterations: int = 100
) -> jax.Array:
    """The Hessian eigenvalue of largest magnitude at ``params``: L of L-smoothness there.

    Power iteration on Hessian-vector products from a random start; returns the
    Rayleigh quotient (signed; its absolute value is ‖∇²h(θ)‖₂). Converges at
    rate |λ₂/λ₁| per iteration, so raise ``num_iterations`` for a small gap.
    """
    _check_loss_fn("hessian_top_eigenvalue", loss_fn)
    key = check_key("hessian_top_eigenvalue", key)
    _check_count("hessian_top_eigenvalue", "num_iterations", num_iterations)
    flat, hvp = _flat_hvp(loss_fn, params)
    eigenvalue, _ = _power_iteration(hvp, _unit_vector(key, flat.size, flat.dtype), num_iterations)
    return eigenvalue


def _orthogonalize(vector, basis):
    """Project out the rows of ``basis`` (zero rows are harmless), twice for stability."""
    for _ in range(2):
        vector = vector - basis.T @ (basis @ vector)
    return vector


def _lanczos_ritz_values(hvp, key, size: int, dtype, num_iterations: int) -> jax.Array:
    """Eigenvalues (ascending) of the Lanczos tridiagonal after ``num_iterations`` steps.

    Full reorthogonalisation; on breakdown (an invariant subspace found) it
    restarts from a fresh random vector orthogonal to the basis, which leaves
    the tridiagonal block-diagonal and every Ritz value exact.
    """
    start_key, restart_key = jax.random.split(key)
    basis = jnp.zeros((num_iterations + 1, size), dtype)
    basis = basis.at[0].set(_unit_vector(start_key, size, dtype))
    tolerance = 1e3 * jnp.finfo(dtype).eps

    def body(i, carry):
        basis, alphas, betas = carry
        v = basis[i]
        w = hvp(v)
        alpha = v @ w
        scale = jnp.linalg.norm(w)
        w = _orthogonalize(w, basis)
        beta = jnp.linalg.norm(w)
        broke_down = beta <= tolerance * scale
        fresh = _orthogonalize(jax.random.normal(jax.random.fold_in(restart_key, i), (size,), dtype), basis)
        fresh = fresh / jnp.maximum(jnp.linalg.norm(fresh), jnp.finfo(dtype).tiny)
        next_v = jnp.where(broke_down, fresh, w / jnp.where(broke_down, 1.0, beta))
        basis = basis.at[i + 1].set(next_v)
        return basis, alphas.at[i].set(alpha), betas.at[i].set(jnp.where(broke_down, 0.0, beta))

    zeros = jnp.zeros(num_iterations, dtype)
    _, alphas, betas = jax.lax.fori_loop(0, num_iterations, body, (basis, zeros, zeros))
    off_diagonal = betas[:-1]
    tridiagonal = jnp.diag(alphas) + jnp.diag(off_diagonal, 1) + jnp.diag(off_diagonal, -1)
    return jnp.linalg.eigvalsh(tridiagonal)


def hessian_eigenvalues(
    loss_fn: Callable,
    params,
    k: int,
    *,
    key,
    num_iterations: int | None = None,
    which: str = "largest",
) -> jax.Array:
    """The k largest (descending) or smallest (ascending) Hessian eigenvalues, by Lanczos.

    ``num_iterations`` (default min(n, max(4k, 40)) for n params) Lanczos steps;
    the extreme eigenvalues converge first, and with ``num_iterations = n`` all
    of them are exact up to rounding.
    """
    fn = "hessian_eigenvalues"
    _check_loss_fn(fn, loss_fn)
    key = check_key(fn, key)
    _check_count(fn, "k", k)
    if which not in ("largest", "smallest"):
        raise ValueError(f"{fn}: expected which='largest' or 'smallest', got {which!r}")
    flat, hvp = _flat_hvp(loss_fn, params)
    if num_iterations is None:
        num_iterations = min(flat.size, max(4 * k, 40))
    _check_count(fn, "num_iterations", num_iterations)
    if not k <= num_iterations <= flat.size:
        raise ValueError(
            f"{fn}: expected k <= num_iterations <= number of params ({flat.size}), "
            f"got k={k}, num_iterations={num_iterations}"
        )
    ritz = _lanczos_ritz_values(hvp, key, flat.size, flat.dtype, num_iterations)
    return ritz[::-1][:k] if which == "largest" else ritz[:k]


def condition_number(
    loss_fn: Callable, params, *, key, num_iterations: int | None = None
) -> jax.Array:
    """κ = |λ_max|/|λ_min| of the Hessian at ``params`` (seeds), from one Lanczos run.

    The smallest eigenvalue converges last: ``num_iterations`` defaults to the
    number of params (exact) up to 200. κ is +inf where λ_min is zero.
    """
    _check_loss_fn("condition_number", loss_fn)
    key = check_key("condition_number", key)
    flat, hvp = _flat_hvp(loss_fn, params)
    if num_iterations is None:
        num_iterations = min(flat.size, 200)
    _check_count("condition_number", "num_iterations", num_iterations)
    ritz = _lanczos_ritz_values(hvp, key, flat.size, flat.dtype, min(num_iterations, flat.size))
    magnitudes = jnp.abs(ritz)
    smallest = jnp.min(magnitudes)
    return jnp.where(smallest > 0, jnp.max(magnitudes) / jnp.where(smallest > 0, smallest, 1.0), jnp.inf)


def _is_concrete(value) -> bool:
    try:
        float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return False
    return True


def pl_ratio(loss_fn: Callable, params, min_loss) -> jax.Array:
    """½‖∇h(θ)‖² / (h(θ) − h*): the largest μ for which the PL inequality holds at θ.

    ``min_loss`` is h* (a lower bound such as 0 for cross-entropy gives a
    conservative ratio). +inf where h(θ) = h*; a ``min_loss`` above h(θ) is an
    error (raised when not traced).
    """
    _check_loss_fn("pl_ratio", loss_fn)
    loss, gradient = jax.value_and_grad(loss_fn)(params)
    squared_norm = sum(jnp.sum(g**2) for g in jax.tree.leaves(gradient))
    gap = loss - min_loss
    if _is_concrete(gap) and float(gap) < 0:
        raise ValueError(
            f"pl_ratio: expected min_loss <= loss at params, got min_loss={float(min_loss)!r} "
            f"above loss={float(loss)!r}"
        )
    positive = gap > 0
    return jnp.where(positive, 0.5 * squared_norm / jnp.where(positive, gap, 1.0), jnp.inf)


def _check_nonnegative(fn: str, name: str, value) -> float:
    is_number = isinstance(value, (int, float)) or hasattr(value, "dtype")
    if isinstance(value, bool) or not is_number:
        raise TypeError(f"{fn}: expected {name} to be a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{fn}: expected a finite {name} >= 0, got {value!r}")
    return value


def gd_convergence_bound(L, mu, gap0, steps) -> jax.Array:
    """(1 − μ/L)^t · gap0 for each t in ``steps``: GD with η = 1/L on an L-smooth μ-PL loss."""
    fn = "gd_convergence_bound"
    L, mu = _check_nonnegative(fn, "L", L), _check_nonnegative(fn, "mu", mu)
    gap0 = _check_nonnegative(fn, "gap0", gap0)
    if not 0 < mu <= L:
        raise ValueError(f"{fn}: expected 0 < mu <= L, got mu={mu!r}, L={L!r}")
    steps = jnp.asarray(steps)
    if jnp.any(steps < 0):
        raise ValueError(f"{fn}: expected non-negative step counts, got {steps!r}")
    return gap0 * (1.0 - mu / L) ** steps


def steps_to_eps_critical(L, gap0, eps) -> float:
    """T = 2L·gap0/ε²: GD with η = 1/L finds ‖∇h‖ ≤ ε within T steps on an L-smooth loss."""
    fn = "steps_to_eps_critical"
    L, gap0 = _check_nonnegative(fn, "L", L), _check_nonnegative(fn, "gap0", gap0)
    eps = _check_nonnegative(fn, "eps", eps)
    if L <= 0 or eps <= 0:
        raise ValueError(f"{fn}: expected L > 0 and eps > 0, got L={L!r}, eps={eps!r}")
    return 2.0 * L * gap0 / eps**2


class SharpnessTrace(NamedTuple):
    """``step``: i32[m] steps measured; ``sharpness``: f[m] top Hessian eigenvalue there; ``loss``: f[m]."""

    step: jax.Array
    sharpness: jax.Array
    loss: jax.Array


def sharpness_along_run(
    loss_fn: Callable,
    params,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    *,
    key,
    every: int = 1,
    num_iterations: int = 20,
) -> SharpnessTrace:
    """Run ``optimizer`` on ``loss_fn`` for ``num_steps`` full-batch steps, measuring the
    sharpness λ_max(∇²h) every ``every`` steps (step 0 included).

    Power iteration is warm-started from the previous top eigenvector, so a few
    iterations per measurement suffice while the Hessian changes slowly.
    """
    fn = "sharpness_along_run"
    _check_loss_fn(fn, loss_fn)
    key = check_key(fn, key)
    for name, value in (("num_steps", num_steps), ("every", every), ("num_iterations", num_iterations)):
        _check_count(fn, name, value)
    flat, unravel = ravel_pytree(params)
    flat_loss = lambda v: loss_fn(unravel(v))

    @jax.jit
    def measure(flat, vector):
        grad_fn = jax.grad(flat_loss)
        hvp = lambda u: jax.jvp(grad_fn, (flat,), (u,))[1]
        eigenvalue, vector = _power_iteration(hvp, vector, num_iterations)
        return eigenvalue, vector, flat_loss(flat)

    @jax.jit
    def run_chunk(flat, state):
        def body(carry, _):
            flat, state = carry
            updates, state = optimizer.update(jax.grad(flat_loss)(flat), state, flat)
            return (optax.apply_updates(flat, updates), state), None

        return jax.lax.scan(body, (flat, state), length=every)[0]

    state = optimizer.init(flat)
    vector = _unit_vector(key, flat.size, flat.dtype)
    steps, sharpness, losses = [], [], []
    for step in range(0, num_steps + 1, every):
        eigenvalue, vector, loss = measure(flat, vector)
        steps.append(step)
        sharpness.append(eigenvalue)
        losses.append(loss)
        if step + every <= num_steps:
            flat, state = run_chunk(flat, state)
    return SharpnessTrace(jnp.asarray(steps), jnp.stack(sharpness), jnp.stack(losses))


def sgd_gradient_variance(
    loss_fn: Callable, params, x: jax.Array, y: jax.Array, *, chunk_size: int = 64
) -> jax.Array:
    """V = (1/s) Σ_i ‖∇h(S) − ∇h(x_i, y_i)‖², the spread of single-example SGD gradients.

    ``loss_fn(params, x, y)`` is the mean loss over a batch (``x: f[s, ...]``,
    ``y: [s, ...]``); ∇h(S) is its gradient on the whole set S. Per-example
    gradients are formed ``chunk_size`` at a time, so memory stays at
    ``chunk_size`` gradients.
    """
    _check_loss_fn("sgd_gradient_variance", loss_fn)
    _check_count("sgd_gradient_variance", "chunk_size", chunk_size)
    if jnp.ndim(x) == 0 or jnp.shape(x)[:1] != jnp.shape(y)[:1]:
        raise ValueError(
            "sgd_gradient_variance: expected x and y with the same leading (example) axis, "
            f"got shapes {jnp.shape(x)} and {jnp.shape(y)}"
        )
    full, _ = ravel_pytree(jax.grad(loss_fn)(params, x, y))

    def squared_deviation(example):
        xi, yi = example
        gradient, _ = ravel_pytree(jax.grad(loss_fn)(params, xi[None], yi[None]))
        return jnp.sum((gradient - full) ** 2)

    return jnp.mean(jax.lax.map(squared_deviation, (x, y), batch_size=chunk_size))
