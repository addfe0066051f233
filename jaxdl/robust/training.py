"""Robust training objectives for :func:`jaxdl.train.fit` (its ``train_objective`` hook).

The seeds' robust training (seed 002 "Robust training", seed 000 §11.1 "Adversarial
training"): replace the loss of a training point by its worst case in the
threat model, ``min_θ E_{x,y} [max_{‖δ‖_p ≤ ε} L(f(x + δ), y; θ)]``, the inner
maximum found by projected gradient ascent. Each function returns
``train_objective(params, x, y, key) -> scalar`` for
``fit(..., train_objective=...)``; evaluation then uses ``fit``'s clean ``loss_fn``.

* :func:`adversarial_objective`: Madry et al.: the cross-entropy at PGD's adversarial
  inputs (found with the current params, not differentiated through);
* :func:`trades_objective`: TRADES (Zhang et al. 2019), the trade-off
  ``CE(f(x), y) + β KL(p(x) ‖ p(x'))`` with ``x'`` maximising the KL term by PGD;
* :func:`ibp_objective`: IBP certified training (Gowal et al. 2018),
  ``κ CE(f(x), y) + (1 - κ) CE(z_worst, y)`` with the interval bounds' worst-case logits.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxdl.robust.attacks import check_eps, check_norm, cross_entropy, pgd
from jaxdl.robust.ibp import ibp_bounds, worst_case_logits


def _check_fraction(name: str, what: str, value) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected {what} in [0, 1], got {value!r}")
    return float(value)


def adversarial_objective(apply_fn: Callable, *, eps, norm="linf", steps: int = 7, step_size=None,
                          domain=None, clean_weight: float = 0.0) -> Callable:
    """Madry-style adversarial training: mean cross-entropy at ``pgd`` adversarial inputs
    (random start, ``steps`` steps), mixed with ``clean_weight`` of the clean loss."""
    name = "adversarial_objective"
    eps, norm = check_eps(name, eps), check_norm(name, norm)
    clean_weight = _check_fraction(name, "clean_weight", clean_weight)

    def objective(params, x, y, key):
        x_adv = jax.lax.stop_gradient(pgd(apply_fn, jax.lax.stop_gradient(params), x, y, key, eps=eps, norm=norm,
                                          steps=steps, step_size=step_size, domain=domain))  # fmt: skip
        robust = jnp.mean(cross_entropy(apply_fn(params, x_adv), y))
        if clean_weight == 0.0:
            return robust
        return clean_weight * jnp.mean(cross_entropy(apply_fn(params, x), y)) + (1 - clean_weight) * robust

    return objective


def _kl(logits, clean_log_probs):
    """Per-example ``KL(p ‖ softmax(logits))`` for ``log p`` = ``clean_log_probs`` (an attack
    loss ``(logits, y)``); written with log-probabilities so that no ``0 · log 0`` appears."""
    log_q = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(jnp.exp(clean_log_probs) * (clean_log_probs - log_q), axis=-1)


def trades_objective(apply_fn: Callable, *, eps, beta: float = 6.0, norm="linf", steps: int = 7, step_size=None,
                     domain=None) -> Callable:
    """TRADES: ``CE(f(x), y) + β KL(softmax f(x) ‖ softmax f(x'))``, ``x'`` from PGD on the KL."""
    name = "trades_objective"
    eps, norm = check_eps(name, eps), check_norm(name, norm)
    beta = float(check_eps(name, beta, "beta"))

    def objective(params, x, y, key):
        logits = apply_fn(params, x)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        frozen = jax.lax.stop_gradient(params)
        x_adv = jax.lax.stop_gradient(pgd(apply_fn, frozen, x, jax.lax.stop_gradient(log_probs), key, eps=eps,
                                          norm=norm, steps=steps, step_size=step_size, domain=domain, loss=_kl))  # fmt: skip
        kl = _kl(apply_fn(params, x_adv), log_probs)
        return jnp.mean(cross_entropy(logits, y)) + beta * jnp.mean(kl)

    return objective


def ibp_objective(model, *, eps, kappa: float = 0.5, domain=None) -> Callable:
    """IBP certified training: ``κ`` clean cross-entropy plus ``1 - κ`` cross-entropy of the
    worst-case logits in the L∞ ball of radius ``eps`` (``model`` a stax layer)."""
    name = "ibp_objective"
    eps = check_eps(name, eps)
    kappa = _check_fraction(name, "kappa", kappa)

    def objective(params, x, y, key):
        clean = jnp.mean(cross_entropy(model.apply(params, x), y))
        lower, upper = ibp_bounds(model, params, x, eps, domain=domain)
        robust = jnp.mean(cross_entropy(worst_case_logits(lower, upper, y), y))
        return kappa * clean + (1 - kappa) * robust

    return objective
