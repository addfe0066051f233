"""Infinite-width kernel of ``Index`` (``x -> x[idx]``).

Indexing selects activations, so the covariances of the outputs are the
selected entries of the input covariances: the batch slice is applied to both
batch axes of ``nngp``/``ntk`` (and to ``cov1``/``cov2``), a spatial index to
both copies of its axis (once when ``diagonal_spatial``); an integer removes
the axis. The channel axis, infinitely wide, can only be kept whole, and the
batch axis can only be sliced (a kernel always has a batch axis), as in
neural-tangents. Written by hand: it is index bookkeeping on the zipped layout.
"""

from __future__ import annotations

from jaxdl.kernels.kernel import Kernel
from jaxdl.stax.indexing import canonical_index, sliced_shape


def index(hyper, k: Kernel, ctx) -> Kernel:
    ndim = len(k.shape1)
    idx = canonical_index("Index", hyper["idx"], ndim)
    batch, channel = k.batch_axis, k.channel_axis
    if idx[channel] != slice(None):
        raise NotImplementedError(
            f"Index: indexing the channel axis {channel} (infinitely wide) has no kernel, got {idx[channel]!r}"
        )
    if not isinstance(idx[batch], slice):
        raise NotImplementedError(
            f"Index: an integer index {idx[batch]} on the batch axis {batch} removes it; a kernel needs a "
            f"batch axis, use a slice such as {idx[batch]}:{idx[batch] + 1 if idx[batch] != -1 else ''}"
        )
    spatial = [a for a in range(ndim) if a not in (batch, channel)]

    def select(mat, batch_ndim):
        if mat is None or mat.ndim == 0:
            return mat
        key = [idx[batch]] * batch_ndim
        for a in spatial:
            key += [idx[a]] if k.diagonal_spatial else [idx[a], idx[a]]
        return mat[tuple(key)]

    removed = [a for a in range(ndim) if not isinstance(idx[a], slice)]
    cov_batch = 1 if k.diagonal_batch else 2
    return k.replace(
        nngp=select(k.nngp, 2),
        ntk=select(k.ntk, 2),
        cov1=select(k.cov1, cov_batch),
        cov2=select(k.cov2, cov_batch),
        batch_axis=batch - sum(a < batch for a in removed),
        channel_axis=channel - sum(a < channel for a in removed),
        shape1=sliced_shape("Index", k.shape1, idx),
        shape2=sliced_shape("Index", k.shape2, idx),
    )


RULES = {"Index": index}
