"""Convergence diagnostics for several chains: effective sample size and R-hat.

Both take draws ``x: f[chains, draws, ...]`` and return one number per trailing
coordinate (shape ``x.shape[2:]``); both are pure and compiled with ``jax.jit`` (once per input shape).

* ``effective_sample_size``: the multi-chain ESS of Stan/BDA3 for the mean,
  ``chains * draws / tau`` with the integrated autocorrelation time
  ``tau = -1 + 2 sum_k (rho_2k + rho_2k+1)`` summed over Geyer's initial positive
  and monotone sequence of paired autocorrelations. Autocorrelations come from
  FFT autocovariances combined across chains as in BDA3:
  ``rho_t = 1 - (W - mean_chains acov_t) / var_plus``.
* ``rhat``: the rank-normalised split R-hat of Vehtari et al. (2021): chains are
  split in half, the pooled draws are replaced by normal scores of their ranks,
  and the classic ``sqrt(var_plus / W)`` is taken both for these (bulk) and for
  the folded draws ``|x - median|`` (tails); the larger one is returned.

A chain of constant draws has no variance: the result is NaN there, as in Stan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri


def _as_chains(name: str, x) -> tuple[jax.Array, tuple[int, ...]]:
    """``x: f[chains, draws, ...] -> f[chains, draws, k]`` and the trailing shape."""
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected x of shape (chains, draws, ...), got shape {x.shape}")
    if x.shape[1] < 4:
        raise ValueError(f"{name}: expected at least 4 draws per chain, got {x.shape[1]}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    trailing = x.shape[2:]
    return x.reshape(x.shape[0], x.shape[1], -1), trailing


def _autocovariance(x: jax.Array) -> jax.Array:
    """Biased autocovariance along axis 1 of ``x: f[chains, draws, k]`` (FFT, zero padded)."""
    num_draws = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 2 * num_draws
    spectrum = jnp.fft.rfft(centred, n=size, axis=1)
    acov = jnp.fft.irfft(spectrum * jnp.conj(spectrum), n=size, axis=1)[:, :num_draws]
    return acov / num_draws


def _split_chains(x: jax.Array) -> jax.Array:
    """``f[chains, draws, k] -> f[2 chains, draws // 2, k]`` (the middle draw of an odd count is dropped)."""
    half = x.shape[1] // 2
    return jnp.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


@jax.jit
def effective_sample_size(x) -> jax.Array:
    """Effective sample size of the mean, for ``x: f[chains, draws, ...]``.

    Returns ``f[...]``: the number of independent draws that would estimate the
    mean as precisely as the correlated ones.
    """
    x, trailing = _as_chains("effective_sample_size", x)
    num_chains, num_draws, _ = x.shape
    acov = _autocovariance(x)
    chain_mean = x.mean(axis=1)
    within = jnp.mean(acov[:, 0] * num_draws / (num_draws - 1), axis=0)
    var_plus = within * (num_draws - 1) / num_draws
    if num_chains > 1:
        var_plus = var_plus + jnp.var(chain_mean, axis=0, ddof=1)
    rho = 1.0 - (within - acov.mean(axis=0)) / var_plus  # f[draws, k]; rho[0] = 1

    num_pairs = num_draws // 2
    pairs = rho[0 : 2 * num_pairs : 2] + rho[1 : 2 * num_pairs : 2]  # f[pairs, k]
    initial_positive = jnp.cumprod(pairs > 0, axis=0).astype(bool)
    monotone = jax.lax.cummin(jnp.where(initial_positive, pairs, jnp.inf), axis=0)
    tau = -1.0 + 2.0 * jnp.sum(jnp.where(initial_positive, monotone, 0.0), axis=0)
    total = num_chains * num_draws
    tau = jnp.maximum(tau, 1.0 / np.log10(total))  # Stan's cap for antithetic chains
    return (total / tau).reshape(trailing)


def _rank_normal_scores(x: jax.Array) -> jax.Array:
    """Normal scores ``Phi^{-1}((r - 3/8) / (S + 1/4))`` of the pooled average ranks ``r``."""
    num_chains, num_draws, k = x.shape
    pooled = x.reshape(-1, k)
    ordered = jnp.sort(pooled, axis=0)
    below = jax.vmap(jnp.searchsorted, in_axes=(1, 1), out_axes=1)(ordered, pooled)
    not_above = jax.vmap(
        lambda a, v: jnp.searchsorted(a, v, side="right"), in_axes=(1, 1), out_axes=1
    )(ordered, pooled)
    rank = 0.5 * (below + not_above + 1)  # ties share their average rank
    total = pooled.shape[0]
    scores = ndtri((rank - 0.375) / (total + 0.25))
    return scores.reshape(num_chains, num_draws, k)


def _basic_rhat(x: jax.Array) -> jax.Array:
    """``sqrt(var_plus / W)`` for ``x: f[chains, draws, k]``."""
    num_draws = x.shape[1]
    within = jnp.mean(jnp.var(x, axis=1, ddof=1), axis=0)
    between_over_n = jnp.var(x.mean(axis=1), axis=0, ddof=1)
    var_plus = within * (num_draws - 1) / num_draws + between_over_n
    return jnp.sqrt(var_plus / within)


@jax.jit
def rhat(x) -> jax.Array:
    """Rank-normalised split R-hat for ``x: f[chains, draws, ...]``; returns ``f[...]``.

    About 1 for chains that sample the same distribution; above 1.01 (strictly,
    or 1.1 loosely) means the chains have not mixed.
    """
    x, trailing = _as_chains("rhat", x)
    split = _split_chains(x)
    bulk = _basic_rhat(_rank_normal_scores(split))
    median = jnp.median(split.reshape(-1, split.shape[-1]), axis=0)
    tail = _basic_rhat(_rank_normal_scores(jnp.abs(split - median)))
    return jnp.maximum(bulk, tail).reshape(trailing)
