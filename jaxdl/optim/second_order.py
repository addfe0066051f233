"""Newton's method for small problems: θ_{t+1} = θ_t − ∇²h(θ_t)^{-1} ∇h(θ_t) (seeds).

The Hessian of the flattened params is formed explicitly (``jax.hessian``) and
solved densely, so this is for problems with at most a few thousand params.
Written here because optax has no Newton step. ``damping`` adds λI to the
Hessian (Levenberg-Marquardt), which makes the step defined where ∇²h is
singular or indefinite.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxdl.optim._checks import check_positive


def newton_step(loss_fn: Callable, params, *, damping: float = 0.0):
    """One (damped) Newton step on ``loss_fn(params) -> scalar``; returns the new params."""
    if not callable(loss_fn):
        raise TypeError(f"newton_step: expected a callable loss_fn(params), got {loss_fn!r}")
    check_positive("newton_step", "damping", damping, allow_zero=True)
    flat, unravel = ravel_pytree(params)

    def flat_loss(v):
        return loss_fn(unravel(v))

    gradient = jax.grad(flat_loss)(flat)
    hessian = jax.hessian(flat_loss)(flat) + damping * jnp.eye(flat.size, dtype=flat.dtype)
    direction = jnp.linalg.solve(hessian, gradient)
    try:
        finite = bool(jnp.all(jnp.isfinite(direction)))
    except jax.errors.ConcretizationTypeError:  # under jit: cannot raise, caller checks
        finite = True
    if not finite:
        raise ValueError(
            "newton_step: the Hessian is singular at these params (the Newton direction is not "
            "finite); pass damping > 0"
        )
    return unravel(flat - direction)
