"""Linear regions of ReLU networks: bounds and counts on a 2-D grid.

Seed formulas implemented here:

* Zaslavsky: ``m`` hyperplanes in general position cut ``R^n`` into
  ``R(m) = sum_{i=0}^{min(n, m)} binom(m, i)`` regions, the most a layer of
  ``m`` ReLUs on ``n`` inputs can create;
* Montufar et al. 2014 (Theorem 4): a ReLU network with ``n`` inputs and ``L``
  hidden layers of width ``m >= n`` can have at least
  ``R(m) * floor(m / n)^{n (L - 1)}`` linear regions. One seed gives exactly
  this form, another its asymptotics ``Omega((m/n)^{n(L-1)} m^n)`` and a third
  drops the exponent ``n``; :func:`montufar_bound` is the exact theorem.
* :func:`montufar_network` builds the proof's network on ``[0, 1]^2``: each of
  the first ``L - 1`` layers folds both coordinates ``floor(m/2)`` times with a
  zig-zag of ReLUs, and the last hidden layer lays ``m`` lines in general
  position, with all crossings inside the square, over every fold, so the
  network attains ``R(m) floor(m/2)^{2(L-1)}`` regions exactly.
* A layer's ``m`` hyperplanes cut each region of the layers below into at
  most ``R(m)`` pieces, so ``R(m)^L`` bounds the count from above
  (:func:`layerwise_region_bound`; Montufar et al. 2014, Raghu et al. 2017).

:func:`count_linear_regions` counts the pieces on which a function ``R^2 -> R^k``
is affine: it evaluates the local affine map ``x -> J(x) x + c(x)`` (Jacobian by
``jax.jacfwd``, offset ``c = f(x) - J(x) x``) at every point of a grid,
vectorised with ``jax.lax.map``, joins 8-neighbouring grid points whose maps
agree to a relative tolerance, and counts connected components with
``scipy.sparse.csgraph`` (scipy.ndimage.label only labels binary images, not
"equal map" adjacency). It works for any ``apply_fn(params, x)``; adjacent
activation regions with the same affine map count once. The count is exact
for pieces wider than the grid spacing; a piece thinner than that can be
missed, or split where the grid samples it in disconnected spots.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from jaxdl import stax

__all__ = [
    "zaslavsky_bound",
    "montufar_bound",
    "layerwise_region_bound",
    "line_arrangement_regions",
    "montufar_network",
    "linear_region_labels",
    "count_linear_regions",
]


def _check_int(fn: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{fn}: expected {name} to be an int >= {minimum}, got {value!r}")
    return int(value)


def zaslavsky_bound(m: int, n: int) -> int:
    """``sum_{i=0}^{min(n, m)} binom(m, i)``: regions of ``m`` hyperplanes in general position in ``R^n``."""
    m = _check_int("zaslavsky_bound", "m", m, 0)
    n = _check_int("zaslavsky_bound", "n", n, 1)
    return sum(math.comb(m, i) for i in range(min(n, m) + 1))


def montufar_bound(m: int, n: int, L: int) -> int:
    """Montufar et al.'s lower bound ``R(m) floor(m/n)^{n (L-1)}`` on the maximal
    number of linear regions of ``L`` hidden ReLU layers of width ``m >= n`` on ``n`` inputs."""
    fn = "montufar_bound"
    n = _check_int(fn, "n", n, 1)
    m = _check_int(fn, "m", m, n)
    L = _check_int(fn, "L", L, 1)
    return zaslavsky_bound(m, n) * (m // n) ** (n * (L - 1))


def layerwise_region_bound(m: int, n: int, L: int) -> int:
    """The upper bound ``R(m)^L`` on the linear regions of ``L`` ReLU layers of width ``m`` on ``n`` inputs."""
    fn = "layerwise_region_bound"
    L = _check_int(fn, "L", L, 1)
    return zaslavsky_bound(m, n) ** L


def line_arrangement_regions(normals, offsets, bounds) -> int:
    """Exact number of pieces the lines ``a_k^T x + c_k = 0`` cut the open square ``bounds^2`` into.

    For lines in general position (no two parallel, no three through one
    point) each line that crosses the square adds one piece plus one per
    earlier line it crosses inside: ``1 + #lines crossing + #crossings inside``.
    This is the exact region count of a one-hidden-layer ReLU network on the
    square when every hidden unit reaches the output.

    Args:
      normals: f[m, 2] the ``a_k``; offsets: f[m] the ``c_k``; bounds: ``(lo, hi)``.
    """
    fn = "line_arrangement_regions"
    normals = np.asarray(normals, np.float64)
    offsets = np.asarray(offsets, np.float64)
    if normals.ndim != 2 or normals.shape[1] != 2 or offsets.shape != (normals.shape[0],):
        raise ValueError(f"{fn}: expected normals [m, 2] and offsets [m], got {normals.shape} and {offsets.shape}")
    lo, hi = _check_bounds(fn, bounds)
    corners = np.array([[lo, lo], [lo, hi], [hi, lo], [hi, hi]])
    values = corners @ normals.T + offsets  # [4, m]
    crossing = (values.min(axis=0) < 0) & (values.max(axis=0) > 0)
    count = 1 + int(crossing.sum())
    for k in range(len(offsets)):
        for j in range(k):
            system = normals[[k, j]]
            if abs(np.linalg.det(system)) < 1e-12:
                raise ValueError(f"{fn}: expected lines in general position, got parallel lines {j} and {k}")
            point = np.linalg.solve(system, -offsets[[k, j]])
            count += int(np.all((point > lo) & (point < hi)))
    return count


def montufar_network(m: int, L: int):
    """A ReLU network on ``[0, 1]^2`` with exactly ``montufar_bound(m, 2, L)`` linear regions.

    Layers ``1..L-1`` split their ``m`` units into two groups of
    ``p = floor(m/2)`` (a spare unit stays at zero); group ``k`` computes
    ``u_j = relu(p t_k - j)``, ``j < p``, whose combination
    ``g(t) = u_0 - 2 u_1 + 2 u_2 - ...`` is a zig-zag mapping each of ``p``
    intervals onto ``[0, 1]``, where ``t`` is the previous layer's folded
    coordinate. Layer ``L`` puts ``m`` lines tangent to a small circle at the
    centre, at angles ``2 pi i / m' + 0.3`` (``m' = m`` for odd ``m``, else ``m + 1``):
    no two are parallel, no three meet, all crossings lie inside the square,
    and the only region where every unit is off (where the network is
    constant) is the bounded cell around the circle. Each of the
    ``p^{2(L-1)}`` folded tiles then holds ``R(m)`` pieces whose affine maps
    differ from their mirror images across the fold lines.

    Args:
      m: width ``>= 3``; L: hidden layers ``>= 1``.

    Returns:
      ``(apply_fn, params)`` of a ``jaxdl.stax`` network (standard parameterisation).
    """
    fn = "montufar_network"
    m = _check_int(fn, "m", m, 3)
    L = _check_int(fn, "L", L, 1)
    p = m // 2
    zigzag = np.array([1.0] + [2.0 * (-1) ** j for j in range(1, p)])  # g(t) = zigzag @ u
    folded = np.zeros((m, 2))  # the layer's folded coordinates (g(t_0), g(t_1)) = units @ folded
    folded[:p, 0] = folded[p : 2 * p, 1] = zigzag

    weights = []
    coordinates = np.eye(2)  # the layer input @ coordinates = the coordinates (t_0, t_1) it folds
    for _ in range(L - 1):
        W = np.zeros((coordinates.shape[0], m))
        W[:, :p] = p * coordinates[:, :1]
        W[:, p : 2 * p] = p * coordinates[:, 1:]
        b = np.zeros(m)
        b[:p] = b[p : 2 * p] = -np.arange(p)
        weights.append((W, b))
        coordinates = folded

    sides = m if m % 2 else m + 1
    angles = 2 * np.pi * np.arange(m) / sides + 0.3  # no normal along an axis: every piece depends on both folds
    normals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    radius = 0.4 * np.sin(np.pi / (2 * sides))  # the farthest crossing lies 0.4 from the centre
    offsets = -(normals @ np.array([0.5, 0.5]) + radius)  # unit i is on beyond its tangent line
    weights.append((coordinates @ normals.T, offsets))
    weights.append(((1.0 + 0.1 * np.arange(m))[:, None], np.zeros(1)))

    layers = []
    for _ in range(L):
        layers += [stax.Dense(m, b_std=1.0, parameterization="standard"), stax.Relu()]
    init_fn, apply_fn, _ = stax.serial(*layers, stax.Dense(1, b_std=1.0, parameterization="standard"))
    _, params = init_fn(jax.random.key(0), (-1, 2))
    for index, (W, b) in enumerate(weights):
        name = f"Dense_{2 * index}"
        params[name] = {"W": jnp.asarray(W, jnp.float32), "b": jnp.asarray(b, jnp.float32).reshape(1, -1)}
    return apply_fn, params


def _check_bounds(fn: str, bounds) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in bounds)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{fn}: expected bounds = (lo, hi), got {bounds!r}") from error
    if not lo < hi:
        raise ValueError(f"{fn}: expected bounds lo < hi, got {bounds!r}")
    return lo, hi


# Grid points sit at this fraction of their cells (the golden ratio's), so that kinks at
# rational coordinates, where the derivative is ambiguous (stax's ReLU gives 1/2), never
# pass through one.
_GRID_SHIFT = (math.sqrt(5.0) - 1.0) / 2.0


def _neighbour_offsets(radius: int) -> list[tuple[int, int]]:
    """Half of the offsets ``(di, dj) != 0`` with ``max(|di|, |dj|) <= radius`` (the other half mirrors them)."""
    return [(di, dj) for di in range(radius + 1) for dj in range(-radius, radius + 1) if di > 0 or dj > 0]


def _shifted(array, di: int, dj: int):
    """``(array[i, j], array[i + di, j + dj])`` over all ``(i, j)`` where both exist (``di >= 0``)."""
    rows, cols = array.shape[:2]
    first = array[: rows - di, max(0, -dj) : cols - max(0, dj)]
    second = array[di:, max(0, dj) : cols - max(0, -dj)]
    return first, second


@partial(jax.jit, static_argnums=(0, 3))
def _local_affine_maps(apply_fn, params, points, batch_size):
    """Flattened ``(J(x), c(x))`` at each point: f[N, 3k] for a network with k outputs."""

    def affine_map(x):
        f = lambda z: apply_fn(params, z[None])[0].reshape(-1)  # noqa: E731
        jacobian = jax.jacfwd(f)(x)
        return jnp.concatenate([jacobian.ravel(), f(x) - jacobian @ x])

    return jax.lax.map(affine_map, points, batch_size=batch_size)


def linear_region_labels(
    apply_fn, params, bounds, resolution: int, *, rtol: float = 1e-4, join_radius: int = 2, batch_size: int = 4096
):
    """Label each point of a ``resolution x resolution`` grid on ``bounds^2`` by its linear region.

    Args:
      apply_fn: ``apply_fn(params, x)`` with ``x: f[batch, 2]`` -> f[batch, ...].
      params: the network's parameters.
      bounds: ``(lo, hi)``, the square ``[lo, hi]^2``.
      resolution: grid points per axis.
      rtol: neighbouring points share a region when their Jacobians agree to
        ``rtol * max|J|`` and their offsets to ``rtol * (max|c| + max|J| max|x|)``.
      join_radius: grid points with equal maps at most this many cells apart
        (in both axes) are joined, so that a piece thinner than the grid
        spacing, which the grid samples in separate spots, stays one piece;
        1 is plain 8-connectivity.
      batch_size: grid points per vectorised chunk (memory control).

    Returns:
      i32[resolution, resolution] labels ``0..R-1``; index ``[i, j]`` is the
      point ``(axis[i], axis[j])`` with ``axis = lo + (arange(resolution) + 0.618...) h``
      and ``h = (hi - lo) / resolution``: one point per cell, off rational
      coordinates so that no grid point lies on a kink of a hand-built network.
    """
    fn = "linear_region_labels"
    lo, hi = _check_bounds(fn, bounds)
    resolution = _check_int(fn, "resolution", resolution, 2)
    join_radius = _check_int(fn, "join_radius", join_radius, 1)
    batch_size = _check_int(fn, "batch_size", batch_size, 1)
    if not (isinstance(rtol, (int, float)) and rtol > 0):
        raise ValueError(f"{fn}: expected rtol > 0, got {rtol!r}")
    axis = jnp.asarray(lo + (np.arange(resolution) + _GRID_SHIFT) * (hi - lo) / resolution, jnp.result_type(float))
    points = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    try:
        maps = _local_affine_maps(apply_fn, params, points, batch_size)
    except TypeError as error:
        raise TypeError(f"{fn}: apply_fn(params, x) failed on x of shape (1, 2): {error}") from error
    maps = np.asarray(maps, np.float64)
    if not np.all(np.isfinite(maps)):
        raise ValueError(f"{fn}: apply_fn produced NaN or inf on the grid")
    num_jacobian = 2 * maps.shape[1] // 3
    jacobian_scale = np.abs(maps[:, :num_jacobian]).max()
    offset_scale = np.abs(maps[:, num_jacobian:]).max() + jacobian_scale * max(abs(lo), abs(hi))
    scale = np.where(np.arange(maps.shape[1]) < num_jacobian, jacobian_scale, offset_scale)
    scaled = (maps / np.maximum(scale, np.finfo(np.float64).tiny)).reshape(resolution, resolution, -1)

    index = np.arange(resolution * resolution).reshape(resolution, resolution)
    rows, cols = [], []
    for di, dj in _neighbour_offsets(join_radius):
        first, second = _shifted(scaled, di, dj)
        same = np.all(np.abs(first - second) <= rtol, axis=-1)
        first_index, second_index = _shifted(index, di, dj)
        rows.append(first_index[same])
        cols.append(second_index[same])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(index.size, index.size))
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    return labels.reshape(resolution, resolution).astype(np.int32)


def count_linear_regions(
    apply_fn, params, bounds, resolution: int, *, rtol: float = 1e-4, join_radius: int = 2, batch_size: int = 4096
) -> int:
    """Number of linear regions of ``apply_fn(params, .)`` seen on a grid over ``bounds^2``.

    See :func:`linear_region_labels` for the arguments. The count is exact for
    regions wider than the grid spacing; thinner ones can be missed or split.
    """
    labels = linear_region_labels(
        apply_fn, params, bounds, resolution, rtol=rtol, join_radius=join_radius, batch_size=batch_size
    )
    return int(labels.max()) + 1
