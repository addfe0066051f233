"""Min-max games (GAN training): extragradient and optimistic gradient descent.

Simultaneous gradient descent-ascent (GDA), z_{t+1} = z_t − η F(z_t), need not
converge: on the bilinear game ℓ(θ, φ) = θφ it spirals outwards. Extragradient
(Korpelevich) evaluates the field twice per step,

    z_{t+1/2} = z_t − η F(z_t),    z_{t+1} = z_t − η F(z_{t+1/2}),

where z = (θ, φ) and F(z) = (∇_θ ℓ, −∇_φ ℓ) is the game's vector field (descent
in θ, ascent in φ). The seeds write the second step of each player at a mixed
point (θ_{t+1/2}, φ_t); taken literally that is GDA again on a bilinear game,
so the standard joint extrapolation above is used. Written here because optax
has no two-evaluation step; its one-evaluation relative, optimistic gradient
descent, is re-exported (feed it F(z) in place of the gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax

from jaxdl.optim._checks import check_positive

optimistic_gradient_descent = optax.optimistic_gradient_descent


def minmax_vector_field(loss_fn: Callable) -> Callable:
    """F(z) = (∇_θ ℓ, −∇_φ ℓ) for ``loss_fn(theta, phi)`` minimised in θ, maximised in φ.

    The returned field takes and returns the pair ``(theta, phi)``.
    """
    if not callable(loss_fn):
        raise TypeError(f"minmax_vector_field: expected a callable loss_fn(theta, phi), got {loss_fn!r}")
    grad_fn = jax.grad(loss_fn, argnums=(0, 1))

    def vector_field(params):
        theta, phi = params
        grad_theta, grad_phi = grad_fn(theta, phi)
        return grad_theta, jax.tree.map(lambda g: -g, grad_phi)

    return vector_field


def extragradient(vector_field: Callable, params, learning_rate: float):
    """One extragradient step z ← z − η F(z − η F(z)) on any params pytree."""
    if not callable(vector_field):
        raise TypeError(f"extragradient: expected a callable vector_field, got {vector_field!r}")
    check_positive("extragradient", "learning_rate", learning_rate)

    def step(z, direction):
        return jax.tree.map(lambda p, d: p - learning_rate * d, z, direction)

    half_step = step(params, vector_field(params))
    return step(params, vector_field(half_step))
