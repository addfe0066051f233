"""Randomized smoothing: certified L2 robustness of any classifier (Cohen, Rosenfeld & Kolter 2019).

The seeds name certified robustness by randomized smoothing (seed 000 §11.1,
"Certified robustness"). The smoothed classifier ``g(x) = argmax_c P(f(x + ε) = c)``,
``ε ~ N(0, σ² I)``, is robust around ``x``: if the top class has probability at
least ``p_A > 1/2`` then ``g`` is constant on the L2 ball of radius ``σ Φ⁻¹(p_A)``.
The probabilities are estimated by Monte Carlo:

* :func:`certify` (Cohen et al.'s CERTIFY): ``n0`` samples select the top class
  ``ĉ_A``, ``n`` fresh samples count its votes ``n_A``; ``p_A`` is bounded below by the
  one-sided Clopper–Pearson bound ``p_A ≥ B(α; n_A, n - n_A + 1)`` (the α-quantile
  of a Beta distribution), and the radius is ``σ Φ⁻¹(p_A)``; it abstains (class -1,
  radius 0) when the bound is ``<= 1/2``. With probability ``>= 1 - α`` a non-abstaining
  answer is correct.
* :func:`smooth_predict` (PREDICT): returns the top class of ``n`` samples when the
  two-sided binomial test of ``n_A`` against ``n_A + n_B`` votes at 1/2 has p-value
  ``<= α``, else abstains.

The Beta quantile is found by bisection on the regularised incomplete beta function
(``jax.scipy.special.betainc``), so everything runs inside ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc
from jax.scipy.stats import norm

from jaxdl.robust.attacks import check_eps, predict

ABSTAIN = -1


def _check_count(name: str, what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected {what} to be a positive int, got {value!r}")
    return int(value)


def _check_alpha(name: str, alpha) -> float:
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"{name}: expected alpha in (0, 1), got {alpha!r}")
    return float(alpha)


@jax.jit
def clopper_pearson_lower(successes, trials, alpha: float):
    """The one-sided ``1 - α`` Clopper–Pearson lower confidence bound of a binomial
    proportion: the ``p`` with ``P(Bin(trials, p) >= successes) = α``, i.e. the α-quantile
    of ``Beta(successes, trials - successes + 1)``; 0 when ``successes = 0``."""
    k = jnp.asarray(successes, jnp.result_type(float))
    n = jnp.asarray(trials, k.dtype)
    a, b = jnp.maximum(k, 1.0), jnp.maximum(n - k + 1.0, 1.0)

    def bisect(_, interval):
        lo, hi = interval
        mid = (lo + hi) / 2
        below = betainc(a, b, mid) < alpha  # I_p(k, n-k+1) = P(Bin(n, p) >= k), increasing in p
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, bisect, (jnp.zeros_like(k), jnp.ones_like(k)))
    return jnp.where(k > 0, (lo + hi) / 2, 0.0)


@jax.jit
def binomial_two_sided_p_value(successes, trials):
    """The two-sided p-value of ``successes`` out of ``trials`` under ``p = 1/2``:
    ``min(1, 2 P(Bin(trials, 1/2) >= max(k, trials - k)))``."""
    n = jnp.asarray(trials, jnp.result_type(float))
    k = jnp.maximum(jnp.asarray(successes, n.dtype), n - successes)
    tail = jnp.where(k > 0, betainc(jnp.maximum(k, 1.0), jnp.maximum(n - k + 1.0, 1.0), 0.5), 1.0)
    return jnp.minimum(1.0, 2.0 * tail)


@partial(jax.jit, static_argnames=("logits_fn", "num", "batch_size", "num_classes"))
def _counts(logits_fn, params, x, key, sigma, num: int, batch_size: int, num_classes: int):
    num_batches = -(-num // batch_size)

    def body(counts, index):
        noise = sigma * jax.random.normal(jax.random.fold_in(key, index), (batch_size, *x.shape), x.dtype)
        noisy = (x[None] + noise).reshape(batch_size * x.shape[0], *x.shape[1:])
        votes = predict(logits_fn(params, noisy)).reshape(batch_size, x.shape[0])
        keep = (index * batch_size + jnp.arange(batch_size)) < num  # the last batch may be partial
        return counts + jnp.sum(jax.nn.one_hot(votes, num_classes, dtype=jnp.int32) * keep[:, None, None], 0), None

    counts, _ = jax.lax.scan(body, jnp.zeros((x.shape[0], num_classes), jnp.int32), jnp.arange(num_batches))
    return counts


def sample_counts(logits_fn: Callable, params, x, key, *, sigma, num: int, batch_size: int = 1000):
    """``int[batch, classes]``: the votes of ``num`` noisy copies ``x + N(0, σ² I)`` of each example."""
    name = "sample_counts"
    sigma = check_eps(name, sigma, "sigma")
    num, batch_size = _check_count(name, "num", num), _check_count(name, "batch_size", batch_size)
    x = jnp.asarray(x)
    logits = jax.eval_shape(lambda z: logits_fn(params, z), x[:1])
    num_classes = 2 if len(logits.shape) == 1 else logits.shape[-1]
    return _counts(logits_fn, params, x, key, sigma, num, min(batch_size, num), num_classes)


def certify(logits_fn: Callable, params, x, key, *, sigma, n0: int = 100, n: int = 10_000, alpha: float = 0.001,
            batch_size: int = 1000):
    """Cohen et al.'s CERTIFY for each example of the batch ``x``.

    Returns ``(classes, radii, p_lower)``: the smoothed prediction (``-1`` = abstain),
    the certified L2 radius ``σ Φ⁻¹(p_A_lower)`` (0 when abstaining) and the Clopper–Pearson
    lower bound ``p_A_lower`` of the top class's probability.
    """
    name = "certify"
    if float(check_eps(name, sigma, "sigma")) <= 0:
        raise ValueError(f"{name}: expected sigma > 0, got {sigma!r}")
    n0, n = _check_count(name, "n0", n0), _check_count(name, "n", n)
    alpha = _check_alpha(name, alpha)
    select_key, estimate_key = jax.random.split(key)
    top = jnp.argmax(sample_counts(logits_fn, params, x, select_key, sigma=sigma, num=n0, batch_size=batch_size), -1)
    counts = sample_counts(logits_fn, params, x, estimate_key, sigma=sigma, num=n, batch_size=batch_size)
    n_top = jnp.take_along_axis(counts, top[:, None], axis=-1)[:, 0]
    p_lower = clopper_pearson_lower(n_top, n, alpha)
    certified = p_lower > 0.5
    radius = jnp.where(certified, sigma * norm.ppf(jnp.where(certified, p_lower, 0.75)), 0.0)
    return jnp.where(certified, top, ABSTAIN), radius, p_lower


def smooth_predict(logits_fn: Callable, params, x, key, *, sigma, n: int = 1000, alpha: float = 0.001,
                   batch_size: int = 1000):
    """Cohen et al.'s PREDICT: the smoothed classifier's class per example, or ``-1``
    (abstain) when the top two classes are not separated at level ``alpha``."""
    name = "smooth_predict"
    if float(check_eps(name, sigma, "sigma")) <= 0:
        raise ValueError(f"{name}: expected sigma > 0, got {sigma!r}")
    alpha = _check_alpha(name, alpha)
    counts = sample_counts(logits_fn, params, x, key, sigma=sigma, num=n, batch_size=batch_size)
    top_two = jax.lax.top_k(counts, 2)
    n_a, n_b = top_two[0][:, 0], top_two[0][:, 1]
    p_value = binomial_two_sided_p_value(n_a, n_a + n_b)
    return jnp.where(p_value <= alpha, top_two[1][:, 0], ABSTAIN)


def certified_accuracy(classes, radii, y, radius) -> jax.Array:
    """Share of examples certified correct at L2 radius ``radius``: class ``y`` and radius ``>= radius``."""
    return jnp.mean((classes == y) & (radii >= radius))
