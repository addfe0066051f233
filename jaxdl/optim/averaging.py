"""Polyak(-Ruppert) averaging: keep the uniform average of the iterates.

Seed formula: θ̄_t = (1/t) Σ_{i=1}^t θ_i, the mean of the params visited after
each of the first t steps (θ̄_0 = θ_0 before any step). Written here because
optax lacks it: ``optax.ema`` averages the *updates* (a momentum), not the
iterates. The running form θ̄_t = θ̄_{t−1} + (θ_t − θ̄_{t−1})/t is used.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class PolyakAveragingState(NamedTuple):
    """``inner``: the wrapped optimiser's state; ``average``: θ̄_t; ``count``: t."""

    inner: optax.OptState
    average: optax.Params
    count: jax.Array


def polyak_averaging(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wrap ``optimizer`` so that its state also keeps the average of the iterates.

    The updates are the inner optimiser's, unchanged; read θ̄ with
    :func:`averaged_params`. Needs ``params`` in ``update``.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"polyak_averaging: expected an optax.GradientTransformation, got {type(optimizer).__name__}"
        )

    def init_fn(params):
        return PolyakAveragingState(
            inner=optimizer.init(params),
            average=jax.tree.map(jnp.asarray, params),
            count=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "polyak_averaging: update needs params (to average the iterates), got None"
            )
        updates, inner = optimizer.update(updates, state.inner, params)
        count = optax.safe_increment(state.count)
        new_params = optax.apply_updates(params, updates)
        average = jax.tree.map(
            lambda avg, p: (avg + (p - avg) / count.astype(avg.dtype)).astype(avg.dtype),
            state.average,
            new_params,
        )
        return updates, PolyakAveragingState(inner=inner, average=average, count=count)

    return optax.GradientTransformation(init_fn, update_fn)


def averaged_params(state: PolyakAveragingState) -> optax.Params:
    """θ̄_t, the uniform average of the iterates, from a :func:`polyak_averaging` state."""
    if not isinstance(state, PolyakAveragingState):
        raise TypeError(
            f"averaged_params: expected a PolyakAveragingState, got {type(state).__name__}"
        )
    return state.average
