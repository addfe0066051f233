"""Gaussian kinetic energies for HMC: the momentum law ``p ~ N(0, M)`` and
``K(p) = p^T M^{-1} p / 2`` for an identity, diagonal or dense mass matrix.

Seed formula: ``H(theta, v) = E(theta) + v^T M^{-1} v / 2``. The mass matrix is
given through its inverse (the posterior covariance is the ideal choice), as in
blackjax. A diagonal or dense matrix acts on the flattened position
(``jax.flatten_util.ravel_pytree``), so positions may be any pytree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxdl.samplers.base import PyTree, tree_normal_like, tree_sq_norm


class Metric(NamedTuple):
    """``sample_momentum(key, position) -> p ~ N(0, M)``; ``kinetic_energy(p)``;
    ``velocity(p) = M^{-1} p`` (the time derivative of the position)."""

    sample_momentum: Callable[[jax.Array, PyTree], PyTree]
    kinetic_energy: Callable[[PyTree], jax.Array]
    velocity: Callable[[PyTree], PyTree]


def gaussian_euclidean(inverse_mass_matrix=None, *, caller: str = "gaussian_euclidean") -> Metric:
    """The Euclidean metric of a constant mass matrix ``M``.

    Args:
      inverse_mass_matrix: ``None`` (identity), ``f[d]`` (diagonal of ``M^{-1}``) or
        ``f[d, d]`` (dense, symmetric positive definite), with ``d`` the number of
        scalars in the position.
    """
    if inverse_mass_matrix is None:
        return Metric(
            sample_momentum=tree_normal_like,
            kinetic_energy=lambda momentum: 0.5 * tree_sq_norm(momentum),
            velocity=lambda momentum: momentum,
        )
    inverse_mass_matrix = jnp.asarray(inverse_mass_matrix)
    ndim = inverse_mass_matrix.ndim
    if ndim not in (1, 2) or (ndim == 2 and inverse_mass_matrix.shape[0] != inverse_mass_matrix.shape[1]):
        raise ValueError(
            f"{caller}: expected inverse_mass_matrix of shape (d,) or (d, d), "
            f"got {inverse_mass_matrix.shape}"
        )
    size = inverse_mass_matrix.shape[0]

    def flat(tree):
        vector, unravel = ravel_pytree(tree)
        if vector.shape[0] != size:
            raise ValueError(
                f"{caller}: inverse_mass_matrix has size {size} but the position has "
                f"{vector.shape[0]} scalars"
            )
        return vector, unravel

    if ndim == 1:
        if not isinstance(inverse_mass_matrix, jax.core.Tracer) and not np.all(
            np.asarray(inverse_mass_matrix) > 0
        ):
            raise ValueError(f"{caller}: expected a positive diagonal inverse_mass_matrix")
        mass_sqrt = 1.0 / jnp.sqrt(inverse_mass_matrix)

        def sample_momentum(key, position):
            vector, unravel = flat(position)
            noise = jax.random.normal(key, vector.shape, vector.dtype)
            return unravel(mass_sqrt.astype(vector.dtype) * noise)

        def kinetic_energy(momentum):
            vector, _ = flat(momentum)
            return 0.5 * jnp.sum(inverse_mass_matrix * vector**2)

        def velocity(momentum):
            vector, unravel = flat(momentum)
            return unravel((inverse_mass_matrix * vector).astype(vector.dtype))

        return Metric(sample_momentum, kinetic_energy, velocity)

    cholesky = jnp.linalg.cholesky(inverse_mass_matrix)  # M^{-1} = L L^T
    if not isinstance(cholesky, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(cholesky))):
        raise ValueError(
            f"{caller}: expected a symmetric positive definite inverse_mass_matrix"
        )

    def sample_momentum(key, position):
        vector, unravel = flat(position)
        noise = jax.random.normal(key, vector.shape, vector.dtype)
        # p = L^{-T} xi has covariance L^{-T} L^{-1} = M.
        momentum = jax.scipy.linalg.solve_triangular(cholesky.T, noise, lower=False)
        return unravel(momentum.astype(vector.dtype))

    def kinetic_energy(momentum):
        vector, _ = flat(momentum)
        return 0.5 * vector @ (inverse_mass_matrix @ vector)

    def velocity(momentum):
        vector, unravel = flat(momentum)
        return unravel((inverse_mass_matrix @ vector).astype(vector.dtype))

    return Metric(sample_momentum, kinetic_energy, velocity)
