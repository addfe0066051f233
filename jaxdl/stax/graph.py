"""Graph aggregation, ``Aggregate`` (neural-tangents' layer, same arguments and defaults).

A graph neural network layer replaces every vertex by the (weighted) sum of its
direct predecessors (seed chapter on graph networks; "Graph Neural Tangent
Kernel", Du et al. 2019). Vertices are the positions along ``aggregate_axis``
(by default every axis but the batch and channel axes); the graph of each
sample comes with the call, ``apply_fn(params, x, pattern=...)``:

* ``implementation='DENSE'``: ``to_dense(pattern)`` is a weighted adjacency
  ``f[batch, V..., V...]``; ``out[n, w] = sum_v x[n, v] A[n, v, w]``.
* ``implementation='SPARSE'``: ``pattern`` is an integer edge list
  ``i[batch, n_edges, K, 2]`` (or ``i[batch, n_edges, 2]`` when ``K == 1``) of
  (tail, head) vertex coordinates; repeated edges add up and an edge whose head
  has a negative coordinate is padding. Messages are summed with
  ``jax.ops.segment_sum``, ``O(V + E)`` instead of ``O(V^2)``.

``pattern=None`` is the identity graph. The layer has no parameters; its
infinite-width kernel lives in :mod:`jaxdl.kernels.attention_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.stax.layer import LayerSpec, check_array, check_choice, check_shape, make_layer
from jaxdl.stax.masking import with_masking

AGGREGATE_IMPLEMENTATIONS = ("DENSE", "SPARSE")


def aggregate_axes(layer: str, ndim: int, aggregate_axis, batch_axis: int, channel_axis: int):
    """``(aggregate axes, batch axis, channel axis)``, all non-negative, for rank ``ndim``."""
    if not (-ndim <= batch_axis < ndim and -ndim <= channel_axis < ndim):
        raise ValueError(
            f"{layer}: batch_axis={batch_axis} and channel_axis={channel_axis} do not fit an input of rank {ndim}"
        )
    batch, channel = batch_axis % ndim, channel_axis % ndim
    if aggregate_axis is None:
        return tuple(i for i in range(ndim) if i not in (batch, channel)), batch, channel
    axes = (aggregate_axis,) if isinstance(aggregate_axis, int) else tuple(aggregate_axis)
    if not all(isinstance(a, int) and -ndim <= a < ndim for a in axes):
        raise ValueError(f"{layer}: expected aggregate_axis to be axes of a rank-{ndim} input, got {aggregate_axis!r}")
    axes = tuple(a % ndim for a in axes)
    if batch in axes or channel in axes:
        raise ValueError(
            f"{layer}: expected aggregate_axis to avoid the batch ({batch}) and channel ({channel}) axes, "
            f"got {aggregate_axis!r}"
        )
    return axes, batch, channel


def edge_indices(layer: str, pattern, batch_size: int, vertex_shape: tuple[int, ...]):
    """Tails and heads of a sparse ``pattern`` as flat vertex indices ``i[batch, n_edges]``.

    A vertex with a negative coordinate becomes ``-1``: as a head it drops the
    edge (``segment_sum`` ignores it), as a tail it reads the last vertex
    (negative indexing), as in neural-tangents.
    """
    pattern = jnp.asarray(pattern)
    if not jnp.issubdtype(pattern.dtype, jnp.integer):
        raise TypeError(f"{layer}: expected an integer edge list as the SPARSE pattern, got dtype {pattern.dtype}")
    if pattern.ndim == 3 and len(vertex_shape) == 1:
        pattern = pattern[:, :, None, :]
    if pattern.ndim != 4 or pattern.shape[-1] != 2 or pattern.shape[2] != len(vertex_shape):
        raise ValueError(
            f"{layer}: expected a SPARSE pattern of shape (batch, n_edges, {len(vertex_shape)}, 2), "
            f"got {tuple(pattern.shape)}"
        )
    if pattern.shape[0] != batch_size:
        raise ValueError(f"{layer}: expected a pattern for {batch_size} samples, got {pattern.shape[0]}")

    def flat(coords):  # i[batch, n_edges, K]
        index = jnp.zeros(coords.shape[:2], coords.dtype)
        for k, size in enumerate(vertex_shape):
            index = index * size + coords[..., k] % size
        return jnp.where(jnp.all(coords >= 0, axis=-1), index, -1)

    return flat(pattern[..., 0]), flat(pattern[..., 1])


def Aggregate(
    aggregate_axis=None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    to_dense: Callable | None = lambda p: p,
    implementation: str = "DENSE",
):
    """Sum every vertex's predecessors in the graph ``pattern`` given to ``apply_fn``.

    Args:
      aggregate_axis: the vertex axes (an int or a tuple); ``None`` for every
        axis other than the batch and channel axes.
      batch_axis, channel_axis: axes of the batch and of the channels.
      to_dense: maps the ``pattern`` passed at call time to the dense adjacency
        ``f[batch, V..., V...]`` (``'DENSE'`` only; identity by default).
      implementation: ``'DENSE'`` (matrix products) or ``'SPARSE'`` (edge lists).
    """
    name = "Aggregate"
    implementation = check_choice(name, "implementation", implementation, AGGREGATE_IMPLEMENTATIONS)
    if to_dense is None:
        to_dense = lambda p: p  # noqa: E731
    if not callable(to_dense):
        raise TypeError(f"{name}: expected to_dense to be callable, got {to_dense!r}")

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        aggregate_axes(name, len(input_shape), aggregate_axis, batch_axis, channel_axis)
        return input_shape, {}

    def apply_fn(params, x, *, pattern=None, **kwargs):
        x = check_array(name, x, min_ndim=2)
        if pattern is None:
            return x
        axes, batch, channel = aggregate_axes(name, x.ndim, aggregate_axis, batch_axis, channel_axis)
        rest = tuple(i for i in range(x.ndim) if i not in (batch, *axes))
        # f[n, V..., rest...]: vertices right after the batch.
        h = jnp.transpose(x, (batch, *axes, *rest))
        vertex_shape = h.shape[1 : 1 + len(axes)]
        if implementation == "DENSE":
            adjacency = jnp.asarray(to_dense(pattern))
            expected = (x.shape[batch],) + vertex_shape * 2
            if tuple(adjacency.shape) != expected:
                raise ValueError(f"{name}: expected a dense pattern of shape {expected}, got {tuple(adjacency.shape)}")
            size = math.prod(vertex_shape)
            flat = h.reshape((h.shape[0], size, math.prod(h.shape[1 + len(axes) :])))  # no -1: batch may be 0
            out = jnp.einsum("nvr,nvw->nwr", flat, adjacency.reshape(h.shape[0], size, size).astype(x.dtype))
        else:
            tails, heads = edge_indices(name, pattern, x.shape[batch], vertex_shape)
            size = math.prod(vertex_shape)
            flat = h.reshape((h.shape[0], size, math.prod(h.shape[1 + len(axes) :])))
            send = lambda values, s, r: jax.ops.segment_sum(values[s], r, num_segments=size)  # noqa: E731
            out = jax.vmap(send)(flat, tails, heads)
        out = out.reshape(h.shape)
        return jnp.transpose(out, tuple(int(i) for i in np.argsort((batch, *axes, *rest))))

    spec = LayerSpec(
        name,
        dict(aggregate_axis=aggregate_axis, batch_axis=batch_axis, channel_axis=channel_axis,
             to_dense=to_dense, implementation=implementation),
    )  # fmt: skip
    return with_masking(make_layer(name, init_fn, apply_fn, spec))
