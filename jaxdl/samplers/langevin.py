"""Overdamped Langevin samplers: the unadjusted (ULA) and Metropolis-adjusted (MALA) ones.

Seed idea: inject noise into gradient ascent on ``log p`` so that the iterates
explore the posterior instead of collapsing to its mode. The Euler-Maruyama step
of ``d theta = grad log p(theta) dt + sqrt(2) dW`` is

    theta' = theta + eps * grad log p(theta) + sqrt(2 eps) * xi,   xi ~ N(0, I).

ULA uses it as is: cheap, but its stationary law is biased by O(eps) (for a
Gaussian ``N(m, S)`` with precision ``A = S^{-1}`` it is ``N(m, (A - eps A^2 / 2)^{-1})``).
MALA uses it as a Metropolis-Hastings proposal with
``log q(theta' | theta) = -|theta' - theta - eps grad log p(theta)|^2 / (4 eps)``,
which removes the bias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdl.samplers.base import (
    PyTree,
    SamplingAlgorithm,
    check_callable,
    check_finite_start,
    check_positive,
    check_scalar_logdensity,
    metropolis_accept,
    tree_axpy,
    tree_normal_like,
    tree_sq_norm,
    tree_where,
)


class LangevinState(NamedTuple):
    """``position``: the sample; ``logdensity`` and ``logdensity_grad`` at it."""

    position: PyTree
    logdensity: jax.Array
    logdensity_grad: PyTree


class ULAInfo(NamedTuple):
    """``is_divergent``: the new position's log-density is not finite (step too large)."""

    is_divergent: jax.Array


class MALAInfo(NamedTuple):
    """``acceptance_rate``: the Hastings ``alpha`` of the proposal; ``is_accepted``."""

    acceptance_rate: jax.Array
    is_accepted: jax.Array


def _init(name: str, logdensity_fn):
    value_and_grad = jax.value_and_grad(logdensity_fn)

    def init(position: PyTree) -> LangevinState:
        logdensity, logdensity_grad = value_and_grad(position)
        check_scalar_logdensity(name, logdensity)
        check_finite_start(name, position, logdensity, logdensity_grad)
        return LangevinState(position, logdensity, logdensity_grad)

    return init


def _langevin_move(key, state: LangevinState, step_size) -> PyTree:
    """``theta + eps * grad log p(theta) + sqrt(2 eps) * xi``."""
    noise = tree_normal_like(key, state.position)
    drifted = tree_axpy(step_size, state.logdensity_grad, state.position)
    return tree_axpy(jnp.sqrt(2.0 * step_size), noise, drifted)


def ula(logdensity_fn: Callable[[PyTree], jax.Array], step_size: float) -> SamplingAlgorithm:
    """The unadjusted Langevin algorithm (one gradient per step, no rejection).

    Args:
      logdensity_fn: ``position -> scalar`` log-density, differentiable.
      step_size: ``eps > 0``; stable for ``eps < 2 / L`` with ``L`` the largest
        curvature of ``-log p``.
    """
    check_callable("ula", "logdensity_fn", logdensity_fn)
    check_positive("ula", "step_size", step_size)
    value_and_grad = jax.value_and_grad(logdensity_fn)

    def step(key: jax.Array, state: LangevinState) -> tuple[LangevinState, ULAInfo]:
        position = _langevin_move(key, state, step_size)
        logdensity, logdensity_grad = value_and_grad(position)
        info = ULAInfo(is_divergent=~jnp.isfinite(logdensity))
        return LangevinState(position, logdensity, logdensity_grad), info

    return SamplingAlgorithm(_init("ula", logdensity_fn), step)


def mala(logdensity_fn: Callable[[PyTree], jax.Array], step_size: float) -> SamplingAlgorithm:
    """The Metropolis-adjusted Langevin algorithm (one gradient per step).

    Args:
      logdensity_fn: ``position -> scalar`` log-density, differentiable.
      step_size: ``eps > 0`` of the Langevin proposal.
    """
    check_callable("mala", "logdensity_fn", logdensity_fn)
    check_positive("mala", "step_size", step_size)
    value_and_grad = jax.value_and_grad(logdensity_fn)

    def log_proposal(to: LangevinState, from_: LangevinState) -> jax.Array:
        """``log q(to | from_)`` up to a constant."""
        mean = tree_axpy(step_size, from_.logdensity_grad, from_.position)
        residual = jax.tree.map(jnp.subtract, to.position, mean)
        return -tree_sq_norm(residual) / (4.0 * step_size)

    def step(key: jax.Array, state: LangevinState) -> tuple[LangevinState, MALAInfo]:
        key_move, key_accept = jax.random.split(key)
        position = _langevin_move(key_move, state, step_size)
        logdensity, logdensity_grad = value_and_grad(position)
        proposal = LangevinState(position, logdensity, logdensity_grad)
        log_ratio = (
            logdensity
            - state.logdensity
            + log_proposal(state, proposal)
            - log_proposal(proposal, state)
        )
        is_accepted, acceptance_rate = metropolis_accept(key_accept, log_ratio)
        new_state = tree_where(is_accepted, proposal, state)
        return new_state, MALAInfo(acceptance_rate, is_accepted)

    return SamplingAlgorithm(_init("mala", logdensity_fn), step)
