"""Truncated back-propagation through time (tBPTT) for long streams.

Full BPTT (the seeds' ``dL/dU = sum_t dL/dz_t dz_t/dU``, every term reaching
back to ``t = 1``) needs the activations of the whole sequence in memory and
lets gradients explode or vanish over long products of Jacobians. Truncated
BPTT cuts the stream ``x_1 .. x_T`` into chunks of ``k`` steps: the hidden state
flows forward across chunk boundaries, but the gradient does not (the carry
entering a chunk goes through ``jax.lax.stop_gradient``), so every gradient
term reaches back at most to the start of its chunk.

Two functions:

* :func:`truncated_bptt_loss` ``(chunk_loss, params, xs, ys, carry, chunk_length)
  -> (loss, final_carry)``: the loss over the whole stream, weighted by chunk
  length (with ``chunk_length = T`` it is the full-BPTT loss, and so is its
  gradient); ``jax.grad`` of it is the truncated gradient. The chunks run in one
  ``jax.lax.scan``.
* :func:`make_tbptt_step` ``(chunk_loss, optimizer, chunk_length) -> step``: a
  jitted optax update ``step(params, opt_state, carry, xs, ys) -> (params,
  opt_state, carry, loss)``. Feed it consecutive windows of a stream and pass
  the returned carry on; gradient clipping is an optax transform in the chain,
  e.g. ``optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))``.

``chunk_loss(params, carry, x_chunk, y_chunk) -> (loss, new_carry)`` is the
model on one chunk; with the recurrent layers of :mod:`jaxdl.stax.recurrent`
it calls ``apply_fn(..., initial_state=carry, return_state=True)``, and
``stax.zero_state(layer, batch)`` is the carry to start from. Streams are
arrays (or pytrees of arrays) with the batch on axis 0 and time on axis 1.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax


def _time_length(name: str, xs, ys) -> int:
    leaves = jax.tree.leaves((xs, ys))
    if not leaves:
        raise ValueError(f"{name}: expected arrays with a time axis (axis 1), got empty inputs")
    lengths = {leaf.shape[1] if getattr(leaf, "ndim", 0) >= 2 else None for leaf in leaves}
    if None in lengths:
        raise ValueError(f"{name}: expected every stream array to have shape (batch, time, ...)")
    if len(lengths) != 1:
        raise ValueError(f"{name}: expected one time length on axis 1, got {sorted(lengths)}")
    return lengths.pop()


def _check_chunk_length(name: str, chunk_length) -> int:
    if isinstance(chunk_length, bool) or not isinstance(chunk_length, int) or chunk_length <= 0:
        raise ValueError(f"{name}: expected chunk_length to be a positive int, got {chunk_length!r}")
    return chunk_length


def truncated_bptt_loss(chunk_loss: Callable, params, xs, ys, carry, chunk_length: int):
    """The stream's loss with the gradient truncated at chunk boundaries.

    Args:
      chunk_loss: ``(params, carry, x_chunk, y_chunk) -> (loss, new_carry)``; the
        loss is a mean over the chunk's time steps.
      params: the model's params (what ``jax.grad`` differentiates).
      xs, ys: inputs and targets, arrays or pytrees with time on axis 1 (length ``T``).
      carry: the state entering the stream (e.g. ``stax.zero_state(layer, batch)``).
      chunk_length: ``k``; ``T`` need not be a multiple (the last chunk is shorter).

    Returns:
      ``(loss, final_carry)``: ``sum_c len_c * loss_c / T``, the chunk losses
      weighted by chunk length (the mean over the stream when each chunk loss is a
      mean over its steps), and the carry after the last step.
    """
    name = "truncated_bptt_loss"
    k = _check_chunk_length(name, chunk_length)
    T = _time_length(name, xs, ys)
    if T == 0:
        raise ValueError(f"{name}: expected a stream of at least one time step, got 0")
    n, rest = divmod(T, k)

    def chunks(tree):  # (batch, n * k, ...) -> (n, batch, k, ...)
        def split(a):
            a = a[:, : n * k].reshape(a.shape[0], n, k, *a.shape[2:])
            return jnp.moveaxis(a, 1, 0)

        return jax.tree.map(split, tree)

    def body(carry, chunk):
        x, y = chunk
        loss, carry = chunk_loss(params, lax.stop_gradient(carry), x, y)
        return carry, loss

    total = 0.0
    if n:
        carry, losses = lax.scan(body, carry, (chunks(xs), chunks(ys)))
        total = k * jnp.sum(losses)
    if rest:
        tail = jax.tree.map(lambda a: a[:, n * k :], (xs, ys))
        carry, loss = body(carry, tail)
        total = total + rest * loss
    return total / T, carry


def make_tbptt_step(chunk_loss: Callable, optimizer: optax.GradientTransformation, chunk_length: int) -> Callable:
    """A jitted truncated-BPTT optimiser step.

    ``step(params, opt_state, carry, xs, ys) -> (params, opt_state, carry, loss)``:
    one update from the gradient of :func:`truncated_bptt_loss` on the window
    ``xs, ys``; the returned carry (gradient-free) goes into the next window.
    """
    _check_chunk_length("make_tbptt_step", chunk_length)
    if not hasattr(optimizer, "update") or not hasattr(optimizer, "init"):
        raise TypeError(f"make_tbptt_step: expected an optax GradientTransformation, got {optimizer!r}")
    value_and_grad = jax.value_and_grad(truncated_bptt_loss, argnums=1, has_aux=True)

    @jax.jit
    def step(params, opt_state, carry, xs, ys):
        (loss, carry), grads = value_and_grad(chunk_loss, params, xs, ys, carry, chunk_length)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, lax.stop_gradient(carry), loss

    return step


__all__ = ["make_tbptt_step", "truncated_bptt_loss"]
