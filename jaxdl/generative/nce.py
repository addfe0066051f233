"""Noise-contrastive estimation (Gutmann & Hyvärinen 2010): density estimation by classification.

Seed formulas implemented (lecture notes, "Density Estimation", NCE): mix data (y = 1) with samples of
a known "contrastive" noise density p_n (y = 0) and classify with the classifier induced by the
unnormalised model p̄_θ,

    q_θ(x) = α p̄_θ(x) / (α p̄_θ(x) + ν p_n(x)),    ν = (#noise samples)/(#data samples),

fitting θ and α > 0 by the logistic loss. The classifier is Bayes-optimal iff α p̄_θ = p, so the
learned log α estimates minus the log-normaliser, log α = -log ∫ p̄_θ (consistent; the notes'
ν = 1 case is the default sample split).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def nce_logits(log_unnormalised: Callable, theta, log_alpha, x, noise_log_prob: Callable, noise_ratio: float):
    """G(x) = log α + log p̄_θ(x) - log p_n(x) - log ν, the log-odds of "data" under q_θ."""
    log_model = jnp.asarray(log_unnormalised(theta, x))
    log_noise = jnp.asarray(noise_log_prob(x))
    if log_model.shape != x.shape[:1] or log_noise.shape != x.shape[:1]:
        raise ValueError(f"nce_logits: expected log densities of shape {x.shape[:1]}, got "
                         f"{log_model.shape} (model) and {log_noise.shape} (noise)")
    return log_alpha + log_model - log_noise - jnp.log(noise_ratio)


def nce_loss(log_unnormalised: Callable, theta, log_alpha, x_data, x_noise, noise_log_prob: Callable):
    """-(1/n_d)[Σ_data log q_θ(x) + Σ_noise log(1 - q_θ(x))], differentiable in ``theta`` and ``log_alpha``.

    ``log_unnormalised(theta, x) -> (batch,)`` is log p̄_θ; ``noise_log_prob(x) -> (batch,)`` is the
    normalised log density of the noise that produced ``x_noise``.
    """
    if not callable(log_unnormalised) or not callable(noise_log_prob):
        raise TypeError("nce_loss: expected callable log_unnormalised(theta, x) and noise_log_prob(x)")
    x_data, x_noise = jnp.asarray(x_data), jnp.asarray(x_noise)
    if x_data.ndim < 1 or x_noise.ndim != x_data.ndim or x_noise.shape[1:] != x_data.shape[1:]:
        raise ValueError(f"nce_loss: expected x_data and x_noise as batches of one event shape, "
                         f"got {x_data.shape} and {x_noise.shape}")
    if x_data.shape[0] == 0 or x_noise.shape[0] == 0:
        raise ValueError("nce_loss: expected non-empty x_data and x_noise")
    ratio = x_noise.shape[0] / x_data.shape[0]
    g_data = nce_logits(log_unnormalised, theta, log_alpha, x_data, noise_log_prob, ratio)
    g_noise = nce_logits(log_unnormalised, theta, log_alpha, x_noise, noise_log_prob, ratio)
    return -(jnp.sum(jax.nn.log_sigmoid(g_data)) + jnp.sum(jax.nn.log_sigmoid(-g_noise))) / x_data.shape[0]
