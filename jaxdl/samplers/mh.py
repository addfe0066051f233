"""Metropolis-Hastings: propose, then accept with the Hastings ratio.

Seed formulas: a proposal kernel ``q(theta' | theta)`` is corrected into
``Pi(theta' | theta) = q(theta' | theta) alpha(theta' | theta)`` with

    alpha(theta' | theta) = min(1, p(theta') q(theta | theta') / (p(theta) q(theta' | theta))),

which satisfies detailed balance ``p(theta) Pi(theta' | theta) = p(theta') Pi(theta | theta')``.
A symmetric proposal (the Gaussian random walk) only needs the density ratio.
Positions may be any pytree, including integer ones for discrete state spaces
(with a user ``Proposal``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

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
    tree_where,
)


class Proposal(NamedTuple):
    """A proposal kernel ``q``.

    ``sample(key, position) -> proposed position``;
    ``log_prob(to, from_) -> log q(to | from_)`` up to a constant, or ``None`` for a
    symmetric kernel (``q(a | b) = q(b | a)``), whose correction cancels.
    """

    sample: Callable[[jax.Array, PyTree], PyTree]
    log_prob: Callable[[PyTree, PyTree], jax.Array] | None = None


class MHState(NamedTuple):
    """``position``: the sample; ``logdensity`` at it."""

    position: PyTree
    logdensity: jax.Array


class MHInfo(NamedTuple):
    """``acceptance_rate``: the Hastings ``alpha`` of the proposal; ``is_accepted``."""

    acceptance_rate: jax.Array
    is_accepted: jax.Array


def random_walk(scale) -> Proposal:
    """The Gaussian random walk ``theta' = theta + scale * xi``, ``xi ~ N(0, I)`` (symmetric)."""
    return Proposal(lambda key, position: tree_axpy(scale, tree_normal_like(key, position), position))


def mh(
    logdensity_fn: Callable[[PyTree], jax.Array],
    scale: float | None = None,
    *,
    proposal: Proposal | None = None,
) -> SamplingAlgorithm:
    """Metropolis-Hastings for the (unnormalised) density ``exp(logdensity_fn)``.

    Give exactly one of:
      scale: standard deviation of the Gaussian random-walk proposal.
      proposal: a general :class:`Proposal`; its ``log_prob`` enters the Hastings
        correction.

    Returns:
      ``SamplingAlgorithm(init, step)`` with ``MHState`` states and ``MHInfo`` infos.
    """
    check_callable("mh", "logdensity_fn", logdensity_fn)
    if (scale is None) == (proposal is None):
        raise ValueError(
            f"mh: expected exactly one of scale or proposal, got scale={scale!r}, "
            f"proposal={proposal!r}"
        )
    if scale is not None:
        check_positive("mh", "scale", scale)
        proposal = random_walk(scale)
    elif not isinstance(proposal, Proposal):
        raise TypeError(f"mh: expected proposal to be a Proposal, got {type(proposal).__name__}")
    else:
        check_callable("mh", "proposal.sample", proposal.sample)

    def init(position: PyTree) -> MHState:
        logdensity = logdensity_fn(position)
        check_scalar_logdensity("mh", logdensity)
        check_finite_start("mh", position, logdensity)
        return MHState(position, logdensity)

    def step(key: jax.Array, state: MHState) -> tuple[MHState, MHInfo]:
        key_proposal, key_accept = jax.random.split(key)
        proposed = proposal.sample(key_proposal, state.position)
        proposed_logdensity = logdensity_fn(proposed)
        log_ratio = proposed_logdensity - state.logdensity
        if proposal.log_prob is not None:
            log_ratio += proposal.log_prob(state.position, proposed)
            log_ratio -= proposal.log_prob(proposed, state.position)
        is_accepted, acceptance_rate = metropolis_accept(key_accept, log_ratio)
        new_state = tree_where(is_accepted, MHState(proposed, proposed_logdensity), state)
        return new_state, MHInfo(acceptance_rate, is_accepted)

    return SamplingAlgorithm(init, step)
