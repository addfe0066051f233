"""Hopfield networks: an associative memory of +-1 patterns.

Seed formulas implemented here:

* energy ``E(x) = -1/2 sum_{i != j} w_ij x_i x_j + sum_i b_i x_i`` for
  ``x in {-1, +1}^n``, with ``w_ij = w_ji`` and ``w_ii = 0``;
* asynchronous dynamics: one neuron at a time,
  ``x_i <- +1 if E(.., x_i = +1, ..) <= E(.., x_i = -1, ..) else -1``, that is
  ``x_i <- sgn(h_i)`` with local field ``h_i = sum_{j != i} w_ij x_j - b_i`` and
  ``sgn(0) = +1``; each update leaves the energy equal or lower;
* Hebbian learning ``W = 1/n sum_t x^t (x^t)^T`` with the diagonal set to zero
  (one seed writes ``1/n (sum_t x^t x^t^T - I)``, which zeroes the diagonal only
  for a single pattern; the zero diagonal is the model's requirement);
* cross-talk ``C_ti = 1/n sum_j sum_{r != t} x_ri x_rj x_tj``: pattern ``t`` is
  a fixed point of ``sgn(W_full x)`` (the Hebbian matrix with its diagonal kept)
  when ``|C_ti| < 1`` for all ``i``, because ``W_full x^t = x^t + C_t``. With
  the zero diagonal the field is ``h^t = (1 - s/n) x^t + C_t``.

Nothing in the JAX ecosystem implements these; the recall loop is a
``lax.scan`` over neurons inside a ``lax.scan`` over sweeps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.classic._checks import as_float_array, check_positive_int, check_signs

__all__ = ["hopfield_store", "hopfield_energy", "hopfield_recall", "hopfield_crosstalk"]


def _check_patterns(fn: str, patterns):
    patterns = as_float_array(fn, "patterns", patterns, 2)
    if patterns.shape[0] == 0 or patterns.shape[1] == 0:
        raise ValueError(f"{fn}: expected patterns of shape [s, n] with s, n >= 1, got {patterns.shape}")
    check_signs(fn, "patterns", patterns)
    return patterns


def _check_weights(fn: str, W, bias):
    W = as_float_array(fn, "W", W, 2)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"{fn}: expected a square W, got shape {W.shape}")
    try:
        symmetric = np.allclose(np.asarray(W), np.asarray(W).T)
    except Exception:  # traced: symmetry is the caller's promise
        symmetric = True
    if not symmetric:
        raise ValueError(f"{fn}: expected a symmetric W (w_ij = w_ji), got an asymmetric matrix")
    n = W.shape[0]
    if bias is None:
        return W, jnp.zeros(n, W.dtype)
    bias = as_float_array(fn, "bias", bias, 1)
    if bias.shape != (n,):
        raise ValueError(f"{fn}: expected bias of shape ({n},), got {bias.shape}")
    return W, bias.astype(W.dtype)


def _check_state(fn: str, x, n: int):
    x = as_float_array(fn, "x", x, (1, 2))
    if x.shape[-1] != n:
        raise ValueError(f"{fn}: expected x with last axis {n} (size of W), got shape {x.shape}")
    check_signs(fn, "x", x)
    return x


def hopfield_store(patterns):
    """Hebbian weights ``W = 1/n sum_t x^t (x^t)^T`` with zero diagonal.

    Args:
      patterns: f32[s, n] patterns with entries in {-1, +1}.

    Returns:
      f32[n, n] symmetric weights with ``w_ii = 0``.
    """
    return _hebbian(_check_patterns("hopfield_store", patterns))


@jax.jit
def _hebbian(patterns):
    n = patterns.shape[1]
    W = patterns.T @ patterns / n
    return W * (1 - jnp.eye(n, dtype=W.dtype))


def hopfield_energy(W, x, bias=None):
    """``E(x) = -1/2 sum_{i != j} w_ij x_i x_j + sum_i b_i x_i``.

    Args:
      W: f32[n, n] symmetric weights (a diagonal, if any, is ignored).
      x: f32[n] or f32[batch, n] states in {-1, +1}.
      bias: optional f32[n] thresholds ``b`` (default zero).

    Returns:
      f32[] or f32[batch].
    """
    fn = "hopfield_energy"
    W, bias = _check_weights(fn, W, bias)
    x = _check_state(fn, x, W.shape[0])
    off_diagonal = W * (1 - jnp.eye(W.shape[0], dtype=W.dtype))
    return -0.5 * jnp.einsum("...i,ij,...j->...", x, off_diagonal, x) + x @ bias


def _sweep(W, bias, x, order):
    """Update the neurons one at a time in ``order``."""

    def update(state, i):
        field = W[i] @ state - W[i, i] * state[i] - bias[i]
        return state.at[i].set(jnp.where(field >= 0, 1.0, -1.0).astype(state.dtype)), None

    x, _ = jax.lax.scan(update, x, order)
    return x


def hopfield_recall(W, x, steps: int, *, bias=None, key=None):
    """Run ``steps`` sweeps of asynchronous updates from state ``x``.

    A sweep updates each of the ``n`` neurons once: in index order, or in a
    fresh random order per sweep when ``key`` is given.

    Args:
      W: f32[n, n] symmetric weights (e.g. from :func:`hopfield_store`).
      x: f32[n] or f32[batch, n] start states in {-1, +1}.
      steps: number of sweeps.
      bias: optional f32[n] thresholds.
      key: optional PRNG key for random update orders.

    Returns:
      f32 array shaped like ``x``: the state after the sweeps.
    """
    fn = "hopfield_recall"
    W, bias = _check_weights(fn, W, bias)
    x = _check_state(fn, x, W.shape[0]).astype(W.dtype)
    steps = check_positive_int(fn, "steps", steps)
    n = W.shape[0]
    if key is None:
        orders = jnp.broadcast_to(jnp.arange(n), (steps, n))
    else:
        orders = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, steps))
    return _recall(W, bias, x, orders)


@jax.jit
def _recall(W, bias, x, orders):
    """Apply the sweeps ``orders``: i32[steps, n] to x: f32[n] or f32[batch, n]."""

    def recall_one(state):
        final, _ = jax.lax.scan(lambda s, order: (_sweep(W, bias, s, order), None), state, orders)
        return final

    return jax.vmap(recall_one)(x) if x.ndim == 2 else recall_one(x)


def hopfield_crosstalk(patterns):
    """Cross-talk ``C_ti = 1/n sum_j sum_{r != t} x_ri x_rj x_tj`` of each stored pattern.

    Args:
      patterns: f32[s, n] patterns in {-1, +1}.

    Returns:
      f32[s, n]; ``|C_ti| < 1`` for all ``i`` makes pattern ``t`` a fixed point
      of ``sgn(W_full x)``.
    """
    patterns = _check_patterns("hopfield_crosstalk", patterns)
    s, n = patterns.shape
    overlaps = patterns @ patterns.T  # overlaps[t, r] = sum_j x_tj x_rj, n on the diagonal
    return (overlaps - n * jnp.eye(s, dtype=patterns.dtype)) @ patterns / n
