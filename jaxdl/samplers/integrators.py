"""The leapfrog (velocity Verlet) integrator of Hamiltonian dynamics.

Seed formulas: ``d theta/dt = M^{-1} v``, ``dv/dt = -grad E(theta) = grad log p(theta)``,
discretised with step ``eps`` as half kick, drift, half kick::

    v_half    = v + eps/2 * grad log p(theta)
    theta'    = theta + eps * M^{-1} v_half
    v'        = v_half + eps/2 * grad log p(theta')

The integrator state carries ``log p`` and its gradient at the position, so each
step costs exactly one ``value_and_grad`` call and the gradient at the end of one
step (and of one trajectory) is reused by the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from jaxdl.samplers.base import PyTree, tree_axpy


class IntegratorState(NamedTuple):
    """A point of phase space with the log-density and its gradient at ``position``."""

    position: PyTree
    momentum: PyTree
    logdensity: jax.Array
    logdensity_grad: PyTree


def velocity_verlet(
    logdensity_fn: Callable[[PyTree], jax.Array],
    velocity_fn: Callable[[PyTree], PyTree],
) -> Callable[[IntegratorState, jax.Array], IntegratorState]:
    """One leapfrog step ``(state, step_size) -> state``; ``velocity_fn(p) = M^{-1} p``."""
    value_and_grad = jax.value_and_grad(logdensity_fn)

    def one_step(state: IntegratorState, step_size) -> IntegratorState:
        half_step = 0.5 * step_size
        momentum = tree_axpy(half_step, state.logdensity_grad, state.momentum)
        position = tree_axpy(step_size, velocity_fn(momentum), state.position)
        logdensity, logdensity_grad = value_and_grad(position)
        momentum = tree_axpy(half_step, logdensity_grad, momentum)
        return IntegratorState(position, momentum, logdensity, logdensity_grad)

    return one_step


def trajectory(
    one_step: Callable[[IntegratorState, jax.Array], IntegratorState],
    state: IntegratorState,
    step_size,
    num_steps: int,
) -> IntegratorState:
    """``num_steps`` leapfrog steps of size ``step_size`` from ``state`` (a ``fori_loop``)."""
    return jax.lax.fori_loop(0, num_steps, lambda _, s: one_step(s, step_size), state)
