"""Shared pieces of the samplers: the ``SamplingAlgorithm`` pair, pytree arithmetic
on positions, the Metropolis accept/reject step and argument checks.

Positions are arbitrary pytrees of float arrays (a parameter dict of a stax model,
a single vector, ...). The helpers here do the few tree operations every kernel
needs (``x + a * y``, a per-leaf Gaussian draw, a squared norm) so that the
kernels read like their formulas. ``jax.tree`` does the traversal; nothing here
replaces an optax or chex utility (optax has no position-level Gaussian draw or
accept/reject step).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class SamplingAlgorithm(NamedTuple):
    """A sampler as a pair of pure functions.

    ``state = init(position)`` builds the chain state at ``position``;
    ``state, info = step(key, state)`` makes one transition. Both are jit-able
    and vmap-able; ``state.position`` is the current sample.
    """

    init: Callable[[PyTree], Any]
    step: Callable[[jax.Array, Any], tuple[Any, Any]]


def tree_axpy(scale, x: PyTree, y: PyTree) -> PyTree:
    """``scale * x + y`` leaf by leaf (``scale`` a scalar, cast to each leaf's dtype)."""
    return jax.tree.map(lambda a, b: jnp.asarray(scale, a.dtype) * a + b, x, y)


def tree_sq_norm(x: PyTree) -> jax.Array:
    """``sum_i x_i**2`` over every leaf."""
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(x))


def tree_normal_like(key: jax.Array, tree: PyTree) -> PyTree:
    """Independent standard normals shaped and typed like each leaf of ``tree``.

    Leaves of one dtype share a single draw (one random-bits kernel however many
    leaves there are, which keeps compilation fast for deep models).
    """
    leaves, treedef = jax.tree.flatten(tree)
    dtypes = {jnp.result_type(leaf) for leaf in leaves}
    if len(dtypes) == 1:
        sizes = [int(np.prod(jnp.shape(leaf))) for leaf in leaves]
        flat = jax.random.normal(key, (sum(sizes),), dtypes.pop())
        pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
        draws = [piece.reshape(jnp.shape(leaf)) for piece, leaf in zip(pieces, leaves)]
    else:
        keys = jax.random.split(key, len(leaves))
        draws = [
            jax.random.normal(k, jnp.shape(leaf), jnp.result_type(leaf))
            for k, leaf in zip(keys, leaves)
        ]
    return jax.tree.unflatten(treedef, draws)


def tree_where(condition: jax.Array, x: PyTree, y: PyTree) -> PyTree:
    """``x`` where ``condition`` holds, else ``y`` (a scalar condition, any pytrees)."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), x, y)


def metropolis_accept(key: jax.Array, log_ratio: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Accept with probability ``min(1, exp(log_ratio))``.

    A NaN ``log_ratio`` (an overflowed proposal) counts as ``-inf``: the proposal
    is rejected instead of poisoning the chain.

    Returns ``(is_accepted, acceptance_rate)``.
    """
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    acceptance_rate = jnp.exp(jnp.minimum(log_ratio, 0.0))
    log_u = jnp.log(jax.random.uniform(key, dtype=acceptance_rate.dtype))
    return log_u < log_ratio, acceptance_rate


def check_callable(function_name: str, argument: str, value) -> None:
    if not callable(value):
        raise TypeError(
            f"{function_name}: expected {argument} to be callable, got {type(value).__name__}"
        )


def check_positive(function_name: str, argument: str, value) -> None:
    """Raise if a concrete ``value`` is not a finite positive number (traced values pass)."""
    if isinstance(value, jax.core.Tracer):
        return
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{function_name}: expected {argument} to be a number, got {value!r}")
    if not np.all(np.isfinite(array)) or not np.all(array > 0):
        raise ValueError(f"{function_name}: expected {argument} > 0 and finite, got {value!r}")


def check_positive_int(function_name: str, argument: str, value) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        integer = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{function_name}: expected {argument} to be an int, got {value!r}"
        ) from None
    if integer <= 0:
        raise ValueError(f"{function_name}: expected {argument} > 0, got {value!r}")
    return integer


def _is_concrete(tree: PyTree) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def first_non_finite(tree: PyTree, name: str = "position") -> str | None:
    """The first NaN/inf of a concrete float pytree ``name``, as
    ``"nan in name['w'] at index (i, ...)"`` (``None`` when every value is finite;
    integer and boolean leaves count as finite)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.asarray(leaf)
        if not np.issubdtype(array.dtype, np.inexact):
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            return f"{array[index]} in {name}{jax.tree_util.keystr(path)} at index {index}"
    return None


def check_finite_tree(function_name: str, argument: str, tree: PyTree, name: str = "position") -> None:
    """Raise if a concrete pytree holds a NaN or an infinity, naming the first one
    (traced values pass: they are checked by the divergence flags instead)."""
    if not _is_concrete(tree):
        return
    where = first_non_finite(tree, name)
    if where is not None:
        raise ValueError(f"{function_name}: expected {argument} to be finite, got {where}")


def tree_all_finite(tree: PyTree) -> jax.Array:
    """A traced boolean: every value of every float leaf is finite."""
    flags = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def check_finite_start(
    function_name: str,
    position: PyTree,
    logdensity: jax.Array,
    logdensity_grad: PyTree = None,
    density: str = "logdensity_fn",
) -> None:
    """At ``init``: say what is non-finite at a concrete starting point.

    In that order: the position itself, the log-density at a finite position
    (which points at the data or constants ``logdensity_fn`` closes over, or at a
    start outside the support), and its gradient. ``density`` names the function
    in the message; the data hint is given only for ``logdensity_fn``, whose data
    the sampler cannot see (the minibatch samplers check theirs up front).
    """
    if not _is_concrete((position, logdensity, logdensity_grad)):
        return
    name = f"{function_name}.init"
    check_finite_tree(name, "the starting position", position)
    data_hint = (
        f"check the data and constants {density} closes over for NaN/inf, or "
        if density == "logdensity_fn"
        else ""
    )
    value = np.asarray(logdensity)
    if not np.isfinite(value).all():
        raise ValueError(
            f"{name}: expected a starting position with finite log-density, got {value} "
            f"at a finite position; {data_hint}start inside the support of the density"
        )
    where = first_non_finite(logdensity_grad, "gradient")
    if where is not None:
        raise ValueError(
            f"{name}: expected a finite gradient of {density} at the starting position, "
            f"got {where}; {data_hint}start where {density} is differentiable"
        )


def check_scalar_logdensity(function_name: str, value) -> None:
    if jnp.ndim(value) != 0:
        raise ValueError(
            f"{function_name}: expected logdensity_fn to return a scalar, "
            f"got shape {jnp.shape(value)}"
        )
