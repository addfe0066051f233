"""Capacity measures and generalisation bounds as numbers: VC dimension by brute force, the VC
inequality, empirical Rademacher complexity, and PAC-Bayes bounds (including a PAC-Bayes
objective for a Gaussian posterior over stax parameters, Dziugaite and Roy 2017 style).

Seed formulas (lecture notes, "Statistical learning theory"):

* ``F(S) = {(f(x_1), ..., f(x_n)) : f in F}``; ``F`` shatters ``S`` if ``|F(S)| = 2^n``;
  ``VC(F) = max{n : some S with |S| = n is shattered}``;
* VC inequality ``P(sup_f |l_hat(f) - l(f)| > eps) <= 8 |F(n)| exp(-n eps^2 / 32)``; setting the
  right side to ``delta`` gives ``eps = sqrt(32/n (log 8|F(n)| + log 1/delta))``, and
  Sauer-Shelah ``|F(n)| <= sum_{i<=d} binom(n, i)`` for ``d = VC(F)``;
* Rademacher complexity ``R_n(F) = E_sigma[sup_f 1/n sum_i sigma_i f(x_i)]`` and the bound
  ``R(f) <= R_hat(f) + 2 R_n(F) + sqrt(ln(1/delta) / (2n))``;
* the seeds' PAC-Bayes lemma ``E_q[l] - E_q[l_hat] <= sqrt(2/n (KL(q||p) + log(2 sqrt(n)/eps)))``
  and the PAC-Bayes loss ``l_PAC(q) = E_q[l_hat] + sqrt(2/n (KL + log(2 sqrt(n)/eps)))``.

Standard forms added (not in the seeds): McAllester's bound as sharpened by Maurer (2004),
``R_hat + sqrt((KL + log(2 sqrt n / delta)) / (2n))`` (the seeds' square root is twice as large,
so the seeds' bound is valid but looser); the Seeger/Maurer kl bound
``kl(R_hat || R) <= (KL + log(2 sqrt n / delta)) / n``, inverted by :func:`kl_inverse`;
Catoni's bound ``R <= (1 - exp(-C R_hat - (KL + log 1/delta)/n)) / (1 - exp(-C))`` for a fixed
``C > 0``; Langford and Caruana's (2001) sample-convergence bound for a Monte Carlo estimate of
``E_q[R_hat]`` from ``m`` sampled networks, ``kl^{-1}(R_hat_m, log(2/delta') / m)``; the closed
form ``B sqrt(sum_i ||x_i||^2) / n`` for the Rademacher complexity of ``{x -> w.x : ||w||_2 <= B}``
(Jensen; exact when the ``x_i`` are orthogonal, and at least ``1/sqrt 2`` of the true value by
Khintchine's inequality with Szarek's constant).

Brute force is host-side numpy (the half-plane family solves one LP per labelling through
:func:`jaxdl.theory.capacity.is_linearly_separable`); the bounds and the PAC-Bayes objective
are JAX functions.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.prob.gaussian import kl_diag_gaussians
from jaxdl.theory.capacity import is_linearly_separable

__all__ = [
    "ClassifierFamily", "THRESHOLDS", "INTERVALS", "HALF_PLANES", "RECTANGLES",
    "labelings", "growth", "shatters", "VCEstimate", "vc_dimension", "sauer_shelah",
    "vc_inequality_probability", "vc_generalization_bound",
    "empirical_rademacher", "rademacher_exact", "linear_class_sup", "finite_class_sup",
    "rademacher_linear_closed_form", "massart_bound", "rademacher_generalization_bound",
    "binary_kl", "kl_inverse", "pac_bayes_seed_bound", "mcallester_bound", "seeger_bound",
    "catoni_bound", "sample_convergence_bound",
    "GaussianPosterior", "init_posterior", "sample_params", "posterior_kl", "pac_bayes_objective",
    "evaluate_pac_bayes_bound",
]  # fmt: skip


# --- VC dimension by brute force ---------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierFamily:
    """A family of binary classifiers on ``R^input_dim``, given by which labellings it realises.

    ``realizes(points, labels)``: ``points`` f[n, input_dim], ``labels`` bool[n]; whether some
    member labels ``points`` exactly so.
    """

    name: str
    input_dim: int
    realizes: Callable[[np.ndarray, np.ndarray], bool]


def _thresholds(points, labels):  # f(x) = 1[x >= t]
    x = points[:, 0]
    return not (labels.any() and (~labels).any()) or x[~labels].max() < x[labels].min()


def _intervals(points, labels):  # f(x) = 1[a <= x <= b]
    x = points[:, 0]
    if not labels.any():
        return True
    lo, hi = x[labels].min(), x[labels].max()
    return not np.any((x[~labels] >= lo) & (x[~labels] <= hi))


def _half_planes(points, labels):  # f(x) = 1[w.x + b > 0]
    return is_linearly_separable(points, np.where(labels, 1.0, -1.0), bias=True)


def _rectangles(points, labels):  # f(x) = 1[x in [a1, b1] x [a2, b2]]
    if not labels.any():
        return True
    lo, hi = points[labels].min(axis=0), points[labels].max(axis=0)
    inside = np.all((points >= lo) & (points <= hi), axis=1)
    return not np.any(inside & ~labels)


THRESHOLDS = ClassifierFamily("thresholds 1[x >= t] on R", 1, _thresholds)
INTERVALS = ClassifierFamily("intervals 1[a <= x <= b] on R", 1, _intervals)
HALF_PLANES = ClassifierFamily("half-planes 1[w.x + b > 0] on R^2", 2, _half_planes)
RECTANGLES = ClassifierFamily("axis-aligned rectangles on R^2", 2, _rectangles)


def _points(fn, family, points):
    if not isinstance(family, ClassifierFamily):
        raise TypeError(f"{fn}: expected a ClassifierFamily, got {type(family).__name__}")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 1 and family.input_dim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[1] != family.input_dim:
        raise ValueError(f"{fn}: expected points of shape (n, {family.input_dim}) for {family.name}, "
                         f"got {points.shape}")
    if points.shape[0] > 16:
        raise ValueError(f"{fn}: brute force over 2^n labellings; expected n <= 16, got {points.shape[0]}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{fn}: expected finite points")
    return points


def labelings(family: ClassifierFamily, points) -> set[tuple[int, ...]]:
    """``F(S)``: every labelling of ``points`` (tuples of 0/1) that ``family`` realises."""
    points = _points("labelings", family, points)
    n = points.shape[0]
    return {bits for bits in itertools.product((0, 1), repeat=n)
            if family.realizes(points, np.array(bits, dtype=bool))}


def growth(family: ClassifierFamily, points) -> int:
    """``|F(S)|``, the number of labellings of ``points`` the family realises."""
    return len(labelings(family, points))


def shatters(family: ClassifierFamily, points) -> bool:
    """Whether ``family`` realises all ``2^n`` labellings of ``points`` (stops at the first miss)."""
    points = _points("shatters", family, points)
    return all(family.realizes(points, np.array(bits, dtype=bool))
               for bits in itertools.product((0, 1), repeat=points.shape[0]))


class VCEstimate(NamedTuple):
    """``dimension``: the largest ``n`` for which a shattered set was found (a proven lower bound);
    ``witness``: that set; ``sets_tried``: candidate sets of size ``dimension + 1``, none shattered
    (evidence for, not a proof of, the upper bound)."""

    dimension: int
    witness: np.ndarray
    sets_tried: int


def _candidates(dim, n, rng, num_random):
    if dim == 1:  # every set of n distinct reals is order-isomorphic to 0, 1, ..., n-1
        yield np.arange(n, dtype=np.float64)[:, None]
    else:
        angles = 2 * np.pi * np.arange(n) / n
        yield np.stack([np.cos(angles), np.sin(angles)], 1)  # convex position (a diamond for n = 4)
        for _ in range(num_random):
            yield rng.normal(size=(n, dim))


def vc_dimension(family: ClassifierFamily, *, max_n: int = 7, num_random_sets: int = 30, seed: int = 0):
    """Brute-force VC dimension: for ``n = 1, 2, ...`` search candidate sets (convex position and
    random) for a shattered one; the first ``n`` with none gives ``VC = n - 1``."""
    fn = "vc_dimension"
    if not isinstance(family, ClassifierFamily):
        raise TypeError(f"{fn}: expected a ClassifierFamily, got {type(family).__name__}")
    rng = np.random.default_rng(seed)
    best = np.zeros((0, family.input_dim))
    for n in range(1, max_n + 1):
        tried = 0
        for points in _candidates(family.input_dim, n, rng, num_random_sets):
            tried += 1
            if shatters(family, points):
                best = points
                break
        else:
            return VCEstimate(n - 1, best, tried)
    raise ValueError(f"{fn}: {family.name} shatters a set of size max_n={max_n}; raise max_n")


def sauer_shelah(n: int, d: int) -> int:
    """``sum_{i=0}^{d} binom(n, i)``: the most labellings of ``n`` points a VC-``d`` family realises."""
    if min(n, d) < 0:
        raise ValueError(f"sauer_shelah: expected n, d >= 0, got n={n}, d={d}")
    return sum(math.comb(n, i) for i in range(min(n, d) + 1))


def vc_inequality_probability(n: int, eps: float, growth_n: int) -> float:
    """The seeds' ``8 |F(n)| exp(-n eps^2 / 32)``, capped at 1."""
    if n < 1 or eps <= 0 or growth_n < 1:
        raise ValueError(f"vc_inequality_probability: expected n >= 1, eps > 0, growth >= 1, "
                         f"got {n}, {eps}, {growth_n}")
    return float(min(1.0, math.exp(math.log(8) + math.log(growth_n) - n * eps**2 / 32)))


def vc_generalization_bound(n: int, vc_dim: int, delta: float) -> float:
    """``eps`` with ``sup_f |R_hat - R| <= eps`` with probability ``>= 1 - delta``, from the VC
    inequality with Sauer-Shelah: ``sqrt(32/n (log 8 + log sum_{i<=d} binom(n, i) + log 1/delta))``.
    A bound on the error gap of every classifier in the family; vacuous when ``> 1``."""
    if n < 1 or vc_dim < 0 or not 0 < delta < 1:
        raise ValueError(f"vc_generalization_bound: expected n >= 1, vc_dim >= 0, 0 < delta < 1, "
                         f"got {n}, {vc_dim}, {delta}")
    log_growth = math.log(sauer_shelah(n, vc_dim))  # exact big integer, then its log
    return math.sqrt(32.0 / n * (math.log(8.0) + log_growth + math.log(1.0 / delta)))


# --- Rademacher complexity ---------------------------------------------------------------------


def empirical_rademacher(sup_fn: Callable, n: int, key, num_samples: int = 2000):
    """Monte Carlo ``E_sigma[sup_fn(sigma)]`` over ``num_samples`` Rademacher vectors of length ``n``.
    ``sup_fn(sigma) = sup_f 1/n sum_i sigma_i f(x_i)`` (vmappable). Returns ``(mean, stderr)``."""
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"empirical_rademacher: expected num_samples to be an int >= 2, got {num_samples!r}")
    sigma = jax.random.rademacher(key, (num_samples, n)).astype(jnp.result_type(float))
    values = jax.vmap(sup_fn)(sigma)
    return jnp.mean(values), jnp.std(values) / math.sqrt(num_samples)


def rademacher_exact(sup_fn: Callable, n: int):
    """``E_sigma[sup_fn(sigma)]`` exactly, averaging over all ``2^n`` sign vectors (``n <= 20``)."""
    if not 1 <= n <= 20:
        raise ValueError(f"rademacher_exact: expected 1 <= n <= 20, got {n}")
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
    return jnp.mean(jax.vmap(sup_fn)(jnp.asarray(signs, dtype=jnp.result_type(float))))


def linear_class_sup(x, bound: float = 1.0, norm: float = 2):
    """``sigma -> sup_{||w||_norm <= bound} 1/n sum_i sigma_i w.x_i = bound/n ||X^T sigma||_dual``."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"linear_class_sup: expected x of shape (n, d), got {x.shape}")
    dual = {2: 2, 1: jnp.inf, jnp.inf: 1}.get(norm)
    if dual is None:
        raise ValueError(f"linear_class_sup: expected norm 1, 2 or inf, got {norm!r}")
    n = x.shape[0]
    return lambda sigma: bound / n * jnp.linalg.norm(x.T @ sigma, ord=dual)


def finite_class_sup(outputs):
    """``sigma -> max_f 1/n sigma . f`` for a finite class given as ``outputs`` f[m, n]."""
    outputs = jnp.asarray(outputs)
    if outputs.ndim != 2:
        raise ValueError(f"finite_class_sup: expected outputs of shape (m, n), got {outputs.shape}")
    return lambda sigma: jnp.max(outputs @ sigma) / outputs.shape[1]


def rademacher_linear_closed_form(x, bound: float = 1.0):
    """``bound * sqrt(sum_i ||x_i||^2) / n`` for ``{x -> w.x : ||w||_2 <= bound}``."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"rademacher_linear_closed_form: expected x of shape (n, d), got {x.shape}")
    return bound * jnp.sqrt(jnp.sum(x**2)) / x.shape[0]


def massart_bound(outputs):
    """Massart's lemma: ``R <= max_f ||f||_2 sqrt(2 log m) / n`` for ``m`` functions f[m, n]."""
    outputs = jnp.asarray(outputs)
    m, n = outputs.shape
    return jnp.max(jnp.linalg.norm(outputs, axis=1)) * math.sqrt(2 * math.log(m)) / n


def rademacher_generalization_bound(empirical_risk, rademacher, n: int, delta: float):
    """The seeds' ``R_hat + 2 R_n(F) + sqrt(ln(1/delta) / (2n))``."""
    _check_common("rademacher_generalization_bound", empirical_risk, 0.0, n, delta)
    return empirical_risk + 2 * rademacher + math.sqrt(math.log(1 / delta) / (2 * n))


# --- PAC-Bayes bounds --------------------------------------------------------------------------


def _check_common(fn, risk, kl, n, delta):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{fn}: expected n to be an int >= 1, got {n!r}")
    if not 0 < delta < 1:
        raise ValueError(f"{fn}: expected 0 < delta < 1, got {delta!r}")
    for name, value, lo, hi in (("empirical risk", risk, 0.0, 1.0), ("KL", kl, 0.0, math.inf)):
        if not isinstance(value, jax.core.Tracer):
            v = np.asarray(value)
            if not np.all(np.isfinite(v) | (v == hi)) or np.any(v < lo - 1e-12) or np.any(v > hi + 1e-12):
                raise ValueError(f"{fn}: expected the {name} in [{lo}, {hi}], got {value!r}")


def binary_kl(q, p):
    """``kl(q || p) = q log(q/p) + (1 - q) log((1 - q)/(1 - p))`` for Bernoulli means."""
    q, p = jnp.asarray(q), jnp.asarray(p)
    q, p = jnp.broadcast_arrays(*(jnp.asarray(v, jnp.result_type(q, p, float)) for v in (q, p)))
    # log(q/p) = log1p((q - p)/p): accurate when p is close to q, where kl is tiny
    first = jnp.where(q > 0, q * jnp.log1p((q - p) / jnp.where(q > 0, p, 1.0)), 0.0)
    second = jnp.where(q < 1, (1 - q) * jnp.log1p((p - q) / jnp.where(q < 1, 1 - p, 1.0)), 0.0)
    return first + second


def kl_inverse(q, c, num_iterations: int = 60):
    """``max{p in [q, 1] : kl(q || p) <= c}`` by safeguarded Newton iteration on the bracket
    ``[q, 1]`` (Newton inside the bracket, bisection when a step leaves it). jit-able."""
    if not isinstance(q, jax.core.Tracer) and not isinstance(c, jax.core.Tracer):
        qv, cv = np.asarray(q), np.asarray(c)
        if np.any(qv < 0) or np.any(qv > 1) or np.any(~np.isfinite(qv)):
            raise ValueError(f"kl_inverse: expected q in [0, 1], got {q!r}")
        if np.any(cv < 0) or np.any(np.isnan(cv)):
            raise ValueError(f"kl_inverse: expected c >= 0, got {c!r}")
    dtype = jnp.result_type(q, c, float)
    q, c = jnp.broadcast_arrays(jnp.asarray(q, dtype), jnp.asarray(c, dtype))
    return _kl_inverse(q, c, num_iterations)


@functools.partial(jax.jit, static_argnums=2)
def _kl_inverse(q, c, num_iterations):
    eps = jnp.finfo(q.dtype).eps
    start = jnp.clip(q + jnp.sqrt(c / 2), q, 1 - eps)  # Pinsker: kl >= 2 (p - q)^2, so p* <= start

    def body(_, state):
        lo, hi, p = state
        f = binary_kl(q, p) - c
        lo, hi = jnp.where(f <= 0, p, lo), jnp.where(f > 0, p, hi)
        slope = (p - q) / (p * (1 - p))
        newton = p - f / jnp.where(slope > 0, slope, 1.0)
        p = jnp.where((slope > 0) & (newton > lo) & (newton < hi), newton, 0.5 * (lo + hi))
        return lo, hi, p

    lo, hi, p = jax.lax.fori_loop(0, num_iterations, body, (q, jnp.ones_like(q), start))
    return jnp.where(q >= 1, 1.0, jnp.where(binary_kl(q, hi) <= c, hi, lo))


def _confidence(kl, n, delta):
    return kl + math.log(2 * math.sqrt(n) / delta)


def pac_bayes_seed_bound(empirical_risk, kl, n: int, delta: float):
    """The seeds': ``R_hat(q) + sqrt(2/n (KL + log(2 sqrt(n)/delta)))``."""
    _check_common("pac_bayes_seed_bound", empirical_risk, kl, n, delta)
    return empirical_risk + jnp.sqrt(2.0 / n * _confidence(kl, n, delta))


def mcallester_bound(empirical_risk, kl, n: int, delta: float):
    """McAllester's bound (Maurer's constants): ``R_hat(q) + sqrt((KL + log(2 sqrt n/delta)) / (2n))``."""
    _check_common("mcallester_bound", empirical_risk, kl, n, delta)
    return empirical_risk + jnp.sqrt(_confidence(kl, n, delta) / (2.0 * n))


def seeger_bound(empirical_risk, kl, n: int, delta: float):
    """Seeger/Maurer: ``kl^{-1}(R_hat(q), (KL + log(2 sqrt n/delta)) / n)``, the tightest of these."""
    _check_common("seeger_bound", empirical_risk, kl, n, delta)
    return kl_inverse(empirical_risk, _confidence(kl, n, delta) / n)


def catoni_bound(empirical_risk, kl, n: int, delta: float, c: float = 1.0):
    """Catoni: ``(1 - exp(-C R_hat - (KL + log 1/delta)/n)) / (1 - exp(-C))`` for a fixed ``C > 0``
    (a grid of ``C`` values needs a union bound: divide ``delta`` by the grid size)."""
    _check_common("catoni_bound", empirical_risk, kl, n, delta)
    if not c > 0:
        raise ValueError(f"catoni_bound: expected C > 0, got {c!r}")
    return -jnp.expm1(-c * empirical_risk - (kl + math.log(1 / delta)) / n) / -math.expm1(-c)


def sample_convergence_bound(mc_risk, num_samples: int, delta: float):
    """Langford-Caruana: with probability ``>= 1 - delta`` over ``num_samples`` networks drawn from
    ``q``, ``E_q[R_hat] <= kl^{-1}(mc_risk, log(2/delta) / num_samples)``."""
    _check_common("sample_convergence_bound", mc_risk, 0.0, num_samples, delta)
    return kl_inverse(mc_risk, math.log(2 / delta) / num_samples)


# --- PAC-Bayes over stax parameters ------------------------------------------------------------


class GaussianPosterior(NamedTuple):
    """``q = N(mean, diag(exp(log_std)^2))`` over a parameter pytree."""

    mean: object
    log_std: object


def init_posterior(params, std: float = 1e-2) -> GaussianPosterior:
    """A posterior centred on ``params`` with every standard deviation ``std``."""
    if not std > 0:
        raise ValueError(f"init_posterior: expected std > 0, got {std!r}")
    return GaussianPosterior(params, jax.tree_util.tree_map(lambda p: jnp.full_like(p, math.log(std)), params))


def sample_params(posterior: GaussianPosterior, key):
    """One draw ``mean + exp(log_std) * noise`` (reparameterised: differentiable in ``posterior``)."""
    leaves, tree = jax.tree_util.tree_flatten(posterior.mean)
    keys = jax.random.split(key, len(leaves))
    noise = [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)]
    return jax.tree_util.tree_map(lambda m, s, z: m + jnp.exp(s) * z, posterior.mean, posterior.log_std,
                                  tree.unflatten(noise))


def posterior_kl(posterior: GaussianPosterior, prior_mean, prior_log_std):
    """``KL(q || p)`` for ``p = N(prior_mean, exp(prior_log_std)^2 I)`` (a scalar prior scale)."""
    std_q = jax.tree_util.tree_map(jnp.exp, posterior.log_std)
    return kl_diag_gaussians(posterior.mean, std_q, prior_mean, jnp.exp(prior_log_std))


def pac_bayes_objective(apply_fn, surrogate_loss, prior_mean, n: int, delta: float, *,
                        form: str = "mcallester", num_samples: int = 1):
    """The PAC-Bayes training loss ``E_q[surrogate] + sqrt(c (KL + log(2 sqrt n/delta)))``.

    ``form='seed'`` uses the seeds' ``c = 2/n``; ``'mcallester'`` ``c = 1/(2n)`` (Dziugaite and
    Roy optimise this form). Returns ``objective(posterior, prior_log_std, key, x, y) ->
    (value, (mean surrogate, KL))``; ``E_q`` is estimated with ``num_samples`` reparameterised
    draws. ``surrogate_loss(outputs, y)`` should be a differentiable upper bound of the 0-1
    error in ``[0, 1]``-ish units (e.g. the logistic loss divided by ``log 2``).
    """
    fn = "pac_bayes_objective"
    _check_common(fn, 0.0, 0.0, n, delta)
    scale = {"seed": 2.0 / n, "mcallester": 1.0 / (2.0 * n)}.get(form)
    if scale is None:
        raise ValueError(f"{fn}: expected form 'seed' or 'mcallester', got {form!r}")

    def objective(posterior, prior_log_std, key, x, y):
        losses = [surrogate_loss(apply_fn(sample_params(posterior, k), x), y)
                  for k in jax.random.split(key, num_samples)]
        risk = jnp.mean(jnp.stack(losses))
        kl = posterior_kl(posterior, prior_mean, prior_log_std)
        return risk + jnp.sqrt(scale * _confidence(kl, n, delta)), (risk, kl)

    return objective


def evaluate_pac_bayes_bound(apply_fn, error_fn, posterior, prior_mean, prior_log_std, x, y, key, *,
                             delta: float = 0.025, delta_sample: float = 0.01, num_samples: int = 1000,
                             batch_size: int = 50) -> dict:
    """Evaluate the PAC-Bayes bounds of a Gaussian posterior over stax parameters.

    ``E_q[R_hat]`` is estimated by the mean 0-1 training error (``error_fn(outputs, y)`` per
    example) of ``num_samples`` networks drawn from ``q``, then bounded above by
    :func:`sample_convergence_bound` (confidence ``delta_sample``); that upper bound enters each
    PAC-Bayes bound (confidence ``delta``). All hold together with probability
    ``>= 1 - delta - delta_sample``. The prior must not depend on ``(x, y)``; if its scale was
    picked from a grid of ``J`` values, pass ``delta / J``.
    """
    fn = "evaluate_pac_bayes_bound"
    n = int(jnp.shape(x)[0])
    _check_common(fn, 0.0, 0.0, n, delta)
    if not 0 < delta_sample < 1:
        raise ValueError(f"{fn}: expected 0 < delta_sample < 1, got {delta_sample!r}")

    @jax.jit
    def errors_of(k):
        return jnp.mean(error_fn(apply_fn(sample_params(posterior, k), x), y).astype(jnp.float32))

    keys = jax.random.split(key, num_samples)
    errors = np.asarray(jax.lax.map(errors_of, keys, batch_size=batch_size), dtype=np.float64)
    mc_risk = float(errors.mean())
    risk_bound = float(sample_convergence_bound(mc_risk, num_samples, delta_sample))
    kl = float(posterior_kl(posterior, prior_mean, prior_log_std))
    return {
        "n": n, "delta": delta, "delta_sample": delta_sample, "num_samples": num_samples,
        "mc_empirical_risk": mc_risk, "empirical_risk_bound": risk_bound, "kl": kl,
        "seeger_bound": float(seeger_bound(risk_bound, kl, n, delta)),
        "mcallester_bound": float(mcallester_bound(risk_bound, kl, n, delta)),
        "seed_bound": float(pac_bayes_seed_bound(risk_bound, kl, n, delta)),
        "catoni_bound": float(catoni_bound(risk_bound, kl, n, delta, c=1.0)),
    }
