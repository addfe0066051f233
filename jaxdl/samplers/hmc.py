"""Hamiltonian Monte Carlo: leapfrog trajectories with a Metropolis correction.

Seed formulas: energy ``E(theta) = -log p(theta | S)`` (up to a constant),
Hamiltonian ``H(theta, v) = E(theta) + v^T M^{-1} v / 2``, Hamiltonian dynamics
discretised by leapfrog (:mod:`jaxdl.samplers.integrators`), and the Metropolis
acceptance ``min(1, exp(H(start) - H(end)))``, which makes the chain satisfy
detailed balance because leapfrog is reversible and volume preserving.

Each transition draws a fresh momentum ``v ~ N(0, M)``, integrates
``num_integration_steps`` leapfrog steps (one gradient each; the gradient at the
end of the trajectory is stored in the state and reused by the next transition)
and accepts or rejects the end point. A fixed step size and path length can
resonate with the target (a trajectory that returns to where it started); the
optional ``jitter`` draws the step size of each transition uniformly from
``step_size * [1 - jitter, 1 + jitter]``, which also jitters the path length and
keeps detailed balance (a mixture of reversible kernels).
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
    check_positive_int,
    check_scalar_logdensity,
    metropolis_accept,
    tree_where,
)
from jaxdl.samplers.integrators import IntegratorState, trajectory, velocity_verlet
from jaxdl.samplers.metrics import gaussian_euclidean


class HMCState(NamedTuple):
    """``position``: the sample; ``logdensity`` and ``logdensity_grad`` at it."""

    position: PyTree
    logdensity: jax.Array
    logdensity_grad: PyTree


class HMCInfo(NamedTuple):
    """Diagnostics of one transition.

    ``acceptance_rate``: ``min(1, exp(-delta H))``; ``is_accepted``; ``is_divergent``:
    the energy error exceeded ``divergence_threshold`` (or was NaN); ``energy``:
    the Hamiltonian of the state kept; ``step_size``: the (jittered) step size used.
    """

    acceptance_rate: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    step_size: jax.Array


def init(position: PyTree, logdensity_fn: Callable[[PyTree], jax.Array]) -> HMCState:
    """The HMC state at ``position`` (one gradient evaluation)."""
    logdensity, logdensity_grad = jax.value_and_grad(logdensity_fn)(position)
    check_scalar_logdensity("hmc", logdensity)
    check_finite_start("hmc", position, logdensity, logdensity_grad)
    return HMCState(position, logdensity, logdensity_grad)


def hmc(
    logdensity_fn: Callable[[PyTree], jax.Array],
    step_size: float,
    num_integration_steps: int,
    inverse_mass_matrix=None,
    jitter: float = 0.0,
    divergence_threshold: float = 1000.0,
) -> SamplingAlgorithm:
    """Hamiltonian Monte Carlo for the (unnormalised) density ``exp(logdensity_fn)``.

    Args:
      logdensity_fn: ``position -> scalar`` log-density, differentiable.
      step_size: leapfrog step ``eps > 0``.
      num_integration_steps: leapfrog steps per transition (one gradient each).
      inverse_mass_matrix: ``None`` (identity), the diagonal ``f[d]`` or a dense
        ``f[d, d]`` inverse mass matrix over the flattened position.
      jitter: in ``[0, 1)``; each transition uses step size
        ``eps * U(1 - jitter, 1 + jitter)``. ``0`` keeps it fixed.
      divergence_threshold: an energy error ``H(end) - H(start)`` above this marks
        the transition divergent (it is then rejected with probability ~1).

    Returns:
      ``SamplingAlgorithm(init, step)`` with ``HMCState`` states and ``HMCInfo`` infos.
    """
    check_callable("hmc", "logdensity_fn", logdensity_fn)
    check_positive("hmc", "step_size", step_size)
    num_integration_steps = check_positive_int("hmc", "num_integration_steps", num_integration_steps)
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"hmc: expected 0 <= jitter < 1, got {jitter!r}")
    check_positive("hmc", "divergence_threshold", divergence_threshold)

    metric = gaussian_euclidean(inverse_mass_matrix, caller="hmc")
    leapfrog = velocity_verlet(logdensity_fn, metric.velocity)

    def step(key: jax.Array, state: HMCState) -> tuple[HMCState, HMCInfo]:
        if jitter > 0.0:
            key_momentum, key_accept, key_jitter = jax.random.split(key, 3)
            scale = jax.random.uniform(key_jitter, minval=1.0 - jitter, maxval=1.0 + jitter)
            eps = step_size * scale
        else:
            key_momentum, key_accept = jax.random.split(key)
            eps = jnp.asarray(step_size)

        momentum = metric.sample_momentum(key_momentum, state.position)
        start = IntegratorState(state.position, momentum, state.logdensity, state.logdensity_grad)
        end = trajectory(leapfrog, start, eps, num_integration_steps)

        start_energy = -state.logdensity + metric.kinetic_energy(momentum)
        end_energy = -end.logdensity + metric.kinetic_energy(end.momentum)
        log_ratio = start_energy - end_energy
        is_divergent = ~(-log_ratio <= divergence_threshold)  # NaN counts as divergent
        is_accepted, acceptance_rate = metropolis_accept(key_accept, log_ratio)

        proposal = HMCState(end.position, end.logdensity, end.logdensity_grad)
        new_state = tree_where(is_accepted, proposal, state)
        energy = jnp.where(is_accepted, end_energy, start_energy)
        info = HMCInfo(acceptance_rate, is_accepted, is_divergent, energy, eps)
        return new_state, info

    return SamplingAlgorithm(lambda position: init(position, logdensity_fn), step)
