"""Stochastic-gradient MCMC: SGLD and SGHMC with minibatch gradients.

The log-posterior of ``N`` data points is estimated from a minibatch ``B`` drawn
(without replacement) from the kernel's own key:

    log p^(theta) = log p(theta) + N / |B| * sum_{i in B} log p(datum_i | theta),

an unbiased estimate whose gradient drives the dynamics.

* SGLD (Welling & Teh 2011) is the Langevin step with that gradient:
  ``theta' = theta + eps * grad log p^(theta) + sqrt(2 eps) * xi``.
* SGHMC is the seeds' underdamped Langevin dynamics with friction ``gamma`` and a
  persistent momentum (discretised with step ``eta``):

      theta' = theta + eta * v
      v'     = (1 - eta * gamma) * v + eta * grad log p^(theta) + sqrt(2 gamma eta) * xi.

  Its stationary law is the posterior as ``eta -> 0``; the step needs
  ``eta * gamma < 1`` and, for a curvature ``L`` of ``-log p``, ``eta * L < gamma``.

Step sizes may be constants or optax schedules (``count -> step size``); the state
counts steps.

No silent NaN: non-finite data are refused when the sampler is built (naming the
array and the first bad index), ``init`` refuses a non-finite starting position,
log-density estimate or gradient, and a step whose estimate, gradient or new
position is not finite sets ``info.is_divergent``.

None of this exists in optax (which optimises rather than samples), so the
updates are written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.samplers.base import (
    PyTree,
    SamplingAlgorithm,
    check_callable,
    check_finite_start,
    check_finite_tree,
    check_positive,
    check_positive_int,
    tree_all_finite,
    tree_axpy,
    tree_normal_like,
)


class SGLDState(NamedTuple):
    """``position``: the sample; ``count``: steps taken (drives a step-size schedule)."""

    position: PyTree
    count: jax.Array


class SGHMCState(NamedTuple):
    """``position``: the sample; ``momentum``: ``v``; ``count``: steps taken."""

    position: PyTree
    momentum: PyTree
    count: jax.Array


class SGMCMCInfo(NamedTuple):
    """``step_size`` used; ``logdensity_estimate``: the minibatch estimate of
    ``log p(theta | S)`` at the step's starting position; ``is_divergent``: that
    estimate, its gradient or the new position is not finite (the step size is
    too large, or the chain already left the finite numbers)."""

    step_size: jax.Array
    logdensity_estimate: jax.Array
    is_divergent: jax.Array


def _check_data(name: str, data, batch_size: int) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError(f"{name}: expected data to be a non-empty pytree of arrays, got {data!r}")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{name}: expected every array in data to share a leading data axis, "
            f"got shapes {[np.shape(leaf) for leaf in leaves]}"
        )
    (num_data,) = sizes
    check_finite_tree(name, "data", data, "data")
    if batch_size > num_data:
        raise ValueError(
            f"{name}: expected batch_size <= number of data points {num_data}, got {batch_size}"
        )
    return num_data


def _init_check(name: str, value_and_grad, position: PyTree) -> None:
    """A concrete starting position must be finite with a finite estimate and gradient
    (evaluated on the minibatch of a fixed key; skipped under ``jit``/``vmap``)."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(position)):
        return
    check_finite_tree(f"{name}.init", "the starting position", position)
    logdensity, grad = value_and_grad(jax.random.key(0), position)
    check_finite_start(name, position, logdensity, grad, "logprior_fn + loglik_fn")


def _step_size_fn(name: str, step_size) -> Callable[[jax.Array], jax.Array]:
    if callable(step_size):
        return step_size
    check_positive(name, "step_size", step_size)
    return lambda count: jnp.asarray(step_size)


def minibatch_logdensity_fn(
    logprior_fn: Callable[[PyTree], jax.Array],
    loglik_fn: Callable[[PyTree, PyTree], jax.Array],
    data: PyTree,
    batch_size: int,
    *,
    name: str = "minibatch_logdensity_fn",
) -> Callable[[jax.Array, PyTree], jax.Array]:
    """``(key, position) -> log p(theta) + N/|B| sum_{i in B} loglik_fn(theta, datum_i)``.

    ``data`` is a pytree of arrays with a leading axis of length ``N``; ``B`` is a
    uniformly random subset of size ``batch_size`` (the full data when
    ``batch_size == N``, and then ``key`` is unused).
    """
    check_callable(name, "logprior_fn", logprior_fn)
    check_callable(name, "loglik_fn", loglik_fn)
    batch_size = check_positive_int(name, "batch_size", batch_size)
    num_data = _check_data(name, data, batch_size)
    data = jax.tree.map(jnp.asarray, data)
    batched_loglik = jax.vmap(loglik_fn, in_axes=(None, 0))

    def logdensity(key: jax.Array, position: PyTree) -> jax.Array:
        if batch_size == num_data:
            batch = data
        else:
            index = jax.random.choice(key, num_data, (batch_size,), replace=False)
            batch = jax.tree.map(lambda leaf: leaf[index], data)
        loglik = batched_loglik(position, batch)
        if loglik.shape != (batch_size,):
            raise ValueError(
                f"{name}: expected loglik_fn(position, datum) to return a scalar, "
                f"got shape {loglik.shape[1:]}"
            )
        return logprior_fn(position) + (num_data / batch_size) * jnp.sum(loglik)

    return logdensity


def sgld(
    logprior_fn: Callable[[PyTree], jax.Array],
    loglik_fn: Callable[[PyTree, PyTree], jax.Array],
    data: PyTree,
    batch_size: int,
    step_size: float | Callable[[jax.Array], jax.Array],
) -> SamplingAlgorithm:
    """Stochastic-gradient Langevin dynamics.

    Args:
      logprior_fn: ``position -> scalar`` log prior.
      loglik_fn: ``(position, datum) -> scalar`` log-likelihood of one datum (a
        slice of ``data`` along its leading axis).
      data: pytree of arrays ``[N, ...]``.
      batch_size: minibatch size ``|B| <= N``.
      step_size: ``eps > 0`` or an optax schedule ``count -> eps``.

    Returns:
      ``SamplingAlgorithm(init, step)`` with ``SGLDState`` states and ``SGMCMCInfo`` infos.
    """
    estimate = minibatch_logdensity_fn(logprior_fn, loglik_fn, data, batch_size, name="sgld")
    value_and_grad = jax.value_and_grad(estimate, argnums=1)
    schedule = _step_size_fn("sgld", step_size)

    def init(position: PyTree) -> SGLDState:
        _init_check("sgld", value_and_grad, position)
        return SGLDState(position, jnp.zeros((), jnp.int32))

    def step(key: jax.Array, state: SGLDState) -> tuple[SGLDState, SGMCMCInfo]:
        key_batch, key_noise = jax.random.split(key)
        eps = schedule(state.count)
        logdensity, grad = value_and_grad(key_batch, state.position)
        noise = tree_normal_like(key_noise, state.position)
        position = tree_axpy(eps, grad, state.position)
        position = tree_axpy(jnp.sqrt(2.0 * eps), noise, position)
        is_divergent = ~(jnp.isfinite(logdensity) & tree_all_finite((grad, position)))
        info = SGMCMCInfo(eps, logdensity, is_divergent)
        return SGLDState(position, state.count + 1), info

    return SamplingAlgorithm(init, step)


def sghmc(
    logprior_fn: Callable[[PyTree], jax.Array],
    loglik_fn: Callable[[PyTree, PyTree], jax.Array],
    data: PyTree,
    batch_size: int,
    step_size: float | Callable[[jax.Array], jax.Array],
    friction: float,
) -> SamplingAlgorithm:
    """Stochastic-gradient Hamiltonian Monte Carlo (underdamped Langevin with friction).

    Args as :func:`sgld`, plus ``friction``: ``gamma > 0`` with ``step_size * gamma < 1``.
    The chain starts at rest (``v = 0``).

    Returns:
      ``SamplingAlgorithm(init, step)`` with ``SGHMCState`` states and ``SGMCMCInfo`` infos.
    """
    estimate = minibatch_logdensity_fn(logprior_fn, loglik_fn, data, batch_size, name="sghmc")
    value_and_grad = jax.value_and_grad(estimate, argnums=1)
    schedule = _step_size_fn("sghmc", step_size)
    check_positive("sghmc", "friction", friction)
    if not callable(step_size) and not step_size * friction < 1.0:
        raise ValueError(
            f"sghmc: expected step_size * friction < 1, got {step_size} * {friction}"
        )

    def init(position: PyTree) -> SGHMCState:
        _init_check("sghmc", value_and_grad, position)
        momentum = jax.tree.map(jnp.zeros_like, position)
        return SGHMCState(position, momentum, jnp.zeros((), jnp.int32))

    def step(key: jax.Array, state: SGHMCState) -> tuple[SGHMCState, SGMCMCInfo]:
        key_batch, key_noise = jax.random.split(key)
        eta = schedule(state.count)
        logdensity, grad = value_and_grad(key_batch, state.position)
        noise = tree_normal_like(key_noise, state.momentum)
        position = tree_axpy(eta, state.momentum, state.position)
        momentum = jax.tree.map(
            lambda v: jnp.asarray(1.0 - eta * friction, v.dtype) * v, state.momentum
        )
        momentum = tree_axpy(eta, grad, momentum)
        momentum = tree_axpy(jnp.sqrt(2.0 * friction * eta), noise, momentum)
        is_divergent = ~(jnp.isfinite(logdensity) & tree_all_finite((grad, position, momentum)))
        info = SGMCMCInfo(eta, logdensity, is_divergent)
        return SGHMCState(position, momentum, state.count + 1), info

    return SamplingAlgorithm(init, step)
