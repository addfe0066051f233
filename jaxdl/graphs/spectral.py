"""Spectral graph theory: Laplacians, the graph Fourier basis and transform, spectral filters.

The seeds' formulas (geometric chapter, "Spectral graph theory"):

* graph Laplacian ``L = D - A``, ``(L x)_n = sum_m a_nm (x_n - x_m)``, with
  ``D = diag(d)``, ``d_n = sum_m a_nm``;
* normalised Laplacian ``L~ = D^-1/2 (D - A) D^-1/2 = I - D^-1/2 A D^-1/2``
  (the two forms agree when every degree is positive; an isolated node, degree
  0, gets ``d^-1/2 := 0`` and hence a zero row, so that the multiplicity of the
  eigenvalue 0 is the number of connected components for both Laplacians);
* graph Fourier transform: diagonalise ``L = U Lambda U^T`` (``L`` symmetric
  PSD for an undirected graph); ``U^T x`` is the transform, ``U x^`` its inverse,
  convolution ``x * y = U((U^T x) ⊙ (U^T y))`` and filtering
  ``G_theta(L) x = U G_theta(Lambda) U^T x``;
* polynomial filters ``sum_k alpha_k L^k`` need no eigendecomposition; ChebNet
  uses Chebyshev polynomials ``T_k`` of the scaled Laplacian
  ``2 L / lambda_max - I`` (:func:`scaled_laplacian`, used by ``stax.ChebConv``).

Eigenvalues are returned in ascending order (low frequencies first; the seeds
list them descending, which is only a relabelling). Every function takes a
dense adjacency ``f[..., N, N]`` (batched over leading axes) or a single-graph
:class:`~jaxdl.graphs.Graph`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxdl.graphs.structures import Graph, to_dense


def _adjacency(name: str, a):
    if isinstance(a, Graph):
        if np.size(a.n_node) != 1:
            raise ValueError(f"{name}: expected a single graph, got a batch of {np.size(a.n_node)}")
        return to_dense(a).adjacency[0]
    a = jnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name}: expected a square adjacency of shape (..., N, N), got {tuple(a.shape)}")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.float32)
    return a


def degrees(a) -> jnp.ndarray:
    """``d_n = sum_m a_nm`` (row sums), ``f[..., N]``."""
    return jnp.sum(_adjacency("degrees", a), axis=-1)


def _inv_sqrt(d):
    """``d^-1/2`` with ``0`` for ``d == 0`` (isolated nodes), no NaN in value or gradient."""
    positive = d > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, d, 1.0)), 0.0)


def laplacian(a) -> jnp.ndarray:
    """The graph Laplacian ``L = D - A`` (seeds: ``(L x)_n = sum_m a_nm (x_n - x_m)``)."""
    a = _adjacency("laplacian", a)
    return jnp.eye(a.shape[-1], dtype=a.dtype) * jnp.sum(a, axis=-1)[..., None] - a


def normalized_laplacian(a) -> jnp.ndarray:
    """``L~ = D^-1/2 (D - A) D^-1/2`` (``= I - D^-1/2 A D^-1/2`` without isolated
    nodes; an isolated node's row and column are zero). Spectrum in ``[0, 2]``."""
    a = _adjacency("normalized_laplacian", a)
    s = _inv_sqrt(jnp.sum(a, axis=-1))
    return s[..., :, None] * laplacian(a) * s[..., None, :]


def scaled_laplacian(lap, lambda_max: float = 2.0) -> jnp.ndarray:
    """ChebNet's ``2 L / lambda_max - I``: maps the spectrum ``[0, lambda_max]`` of
    ``lap`` (a Laplacian, e.g. the normalised one with ``lambda_max = 2``) to ``[-1, 1]``."""
    lap = jnp.asarray(lap)
    if lap.ndim < 2 or lap.shape[-1] != lap.shape[-2]:
        raise ValueError(f"scaled_laplacian: expected a square Laplacian (..., N, N), got {tuple(lap.shape)}")
    if not lambda_max > 0:
        raise ValueError(f"scaled_laplacian: expected lambda_max > 0, got {lambda_max}")
    return 2.0 * lap / lambda_max - jnp.eye(lap.shape[-1], dtype=lap.dtype)


def graph_fourier_basis(lap):
    """``(eigenvalues f[..., N] ascending, U f[..., N, N])`` with ``lap = U diag(eigenvalues) U^T``.

    ``lap`` must be symmetric (an undirected graph's Laplacian); checked when concrete.
    """
    lap = jnp.asarray(lap)
    if lap.ndim < 2 or lap.shape[-1] != lap.shape[-2]:
        raise ValueError(f"graph_fourier_basis: expected a square Laplacian (..., N, N), got {tuple(lap.shape)}")
    try:
        concrete = np.asarray(lap)
    except Exception:  # noqa: BLE001 - a tracer: the symmetry check needs values
        concrete = None
    if concrete is not None and not np.allclose(concrete, np.swapaxes(concrete, -1, -2), atol=1e-6):
        raise ValueError("graph_fourier_basis: expected a symmetric Laplacian (an undirected graph)")
    return jnp.linalg.eigh(lap)


def graph_fourier_transform(x, basis) -> jnp.ndarray:
    """``x^ = U^T x`` for node signals ``x`` ``f[..., N]`` or ``f[..., N, F]`` (give ``F`` when
    ``x`` has more axes than ``U``'s batch); ``basis`` is ``U`` or ``graph_fourier_basis``'s pair."""
    U = basis[1] if isinstance(basis, tuple) else jnp.asarray(basis)
    x = jnp.asarray(x)
    if x.shape[U.ndim - 2] != U.shape[-1]:
        raise ValueError(f"graph_fourier_transform: expected {U.shape[-1]} nodes, got a signal of shape {x.shape}")
    if x.ndim == U.ndim - 1:
        return jnp.einsum("...nk,...n->...k", U, x)
    return jnp.einsum("...nk,...nf->...kf", U, x)


def inverse_graph_fourier_transform(x_hat, basis) -> jnp.ndarray:
    """``x = U x^`` (inverse of :func:`graph_fourier_transform`)."""
    U = basis[1] if isinstance(basis, tuple) else jnp.asarray(basis)
    x_hat = jnp.asarray(x_hat)
    if x_hat.ndim == U.ndim - 1:
        return jnp.einsum("...nk,...k->...n", U, x_hat)
    return jnp.einsum("...nk,...kf->...nf", U, x_hat)


def graph_convolution(x, y, basis) -> jnp.ndarray:
    """The seeds' spectral convolution ``x * y = U((U^T x) ⊙ (U^T y))``."""
    return inverse_graph_fourier_transform(
        graph_fourier_transform(x, basis) * graph_fourier_transform(y, basis), basis)


def spectral_filter(x, lap, response) -> jnp.ndarray:
    """``G(L) x = U G(Lambda) U^T x`` for a frequency response ``response(eigenvalues)``
    (by eigendecomposition, ``O(N^3)``; reference for the polynomial filters)."""
    eigenvalues, U = graph_fourier_basis(lap)
    x_hat = graph_fourier_transform(x, U)
    gain = response(eigenvalues)
    return inverse_graph_fourier_transform(gain[..., None] * x_hat if x_hat.ndim > gain.ndim else gain * x_hat, U)
