"""Running a chain: ``sample`` scans a kernel and stacks what it visited.

The loop is a ``jax.lax.scan`` compiled once; ``thin`` inner steps run in a
``fori_loop``-like inner scan between two stored draws. Several chains are a
``jax.vmap`` of ``sample`` over keys and starting points. The optional progress
bar is a tqdm bar fed from inside the compiled loop by ``jax.debug.callback``
(about 100 updates per run); it only reports, it never changes the draws.

A chain whose position leaves the finite numbers (a too large step size, NaN
produced by the model) is not silent: ``sample`` warns with the first draw whose
position is non-finite, and with ``thin > 1`` an info's ``is_divergent`` reports
whether any of the ``thin`` transitions behind a draw diverged.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdl.samplers.base import PyTree, SamplingAlgorithm, check_finite_tree, check_positive_int


def _is_state(value) -> bool:
    """Sampler states are NamedTuples with a ``position`` field."""
    return isinstance(value, tuple) and "position" in getattr(value, "_fields", ())


def _scan(algorithm, key, state, num_samples, thin, report):
    def one_step(state, key):
        return algorithm.step(key, state)

    def one_draw(state, draw):
        index, key = draw
        if thin == 1:
            state, info = one_step(state, key)
        else:
            state, infos = jax.lax.scan(one_step, state, jax.random.split(key, thin))
            info = jax.tree.map(lambda leaf: leaf[-1], infos)
            if "is_divergent" in getattr(info, "_fields", ()):  # any of the thin transitions
                info = info._replace(is_divergent=jnp.any(infos.is_divergent))
        if report is not None:
            report(index)
        return state, (state, info)

    keys = jax.random.split(key, num_samples)
    _, (states, infos) = jax.lax.scan(one_draw, state, (jnp.arange(num_samples), keys))
    return states, infos


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _scan_jit(algorithm, key, state, num_samples, thin):
    return _scan(algorithm, key, state, num_samples, thin, None)


def _progress_reporter(num_samples: int):
    bar = tqdm(total=num_samples, desc="sampling", leave=False)
    every = max(1, num_samples // 100)

    def update(index):
        done = int(index) + 1
        if done > bar.n:  # under vmap every chain reports; keep the furthest
            bar.update(done - bar.n)
        if done == num_samples:
            bar.close()

    def report(index):
        is_due = ((index + 1) % every == 0) | (index + 1 == num_samples)
        jax.lax.cond(is_due, lambda: jax.debug.callback(update, index), lambda: None)

    return report


def _warn_if_non_finite(positions: PyTree, infos) -> None:
    """Warn when concrete stored positions hold NaN/inf (skipped under jit/vmap)."""
    leaves = jax.tree.leaves(positions)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        return
    bad = np.zeros(len(leaves[0]) if leaves else 0, dtype=bool)
    for leaf in leaves:
        array = np.asarray(leaf)
        if np.issubdtype(array.dtype, np.inexact):
            bad |= ~np.isfinite(array).all(axis=tuple(range(1, array.ndim)))
    if not bad.any():
        return
    message = (
        f"sample: the chain's position is non-finite from draw {int(np.argmax(bad))} on "
        f"({int(bad.sum())} of {bad.size} draws)"
    )
    divergent = getattr(infos, "is_divergent", None)
    if divergent is not None and np.asarray(divergent).any():
        message += f"; the first divergent transition is at draw {int(np.argmax(np.asarray(divergent)))}"
    warnings.warn(
        message + ": lower the step size, or check the model and data for NaN/inf",
        RuntimeWarning,
        stacklevel=3,
    )


def sample(
    algorithm: SamplingAlgorithm,
    key: jax.Array,
    position_or_state: PyTree,
    num_samples: int,
    *,
    thin: int = 1,
    progress: bool = False,
):
    """Run ``num_samples * thin`` transitions and keep every ``thin``-th.

    Args:
      algorithm: a ``SamplingAlgorithm`` (``hmc(...)``, ``sgld(...)``, ...).
      key: a ``jax.random.key`` or legacy ``PRNGKey``.
      position_or_state: a starting position (any pytree; ``algorithm.init`` is
        applied) or a state returned by a previous run (a NamedTuple with a
        ``position`` field), to continue a chain.
      num_samples: number of stored draws.
      thin: transitions per stored draw.
      progress: show a progress bar (host callback).

    Returns:
      ``(states, infos)``: the state after each stored draw and the info of the
      transition that produced it, stacked along a new leading axis of length
      ``num_samples``; ``states.position`` are the samples. Warns
      (``RuntimeWarning``) when a stored position is non-finite.
    """
    if not isinstance(algorithm, SamplingAlgorithm):
        raise TypeError(
            f"sample: expected a SamplingAlgorithm (e.g. samplers.hmc(...)), "
            f"got {type(algorithm).__name__}"
        )
    num_samples = check_positive_int("sample", "num_samples", num_samples)
    thin = check_positive_int("sample", "thin", thin)
    if _is_state(position_or_state):
        state = position_or_state
        check_finite_tree("sample", "the position of the state to continue from", state.position)
    else:
        state = algorithm.init(position_or_state)
    if progress:
        states, infos = _scan(algorithm, key, state, num_samples, thin, _progress_reporter(num_samples))
    else:
        states, infos = _scan_jit(algorithm, key, state, num_samples, thin)
    _warn_if_non_finite(states.position, infos)
    return states, infos
