"""Infinite-width kernel rules of the layers that mix positions: ``GlobalSelfAttention``
and ``Aggregate`` (graph aggregation).

Attention ("Infinite attention", Hron et al. 2020), in the limit of infinitely
many heads and key/value channels, with ``linear_scaling=True`` (tied
queries/keys scaled by ``1/n_chan_key``) the attention weights converge to the
deterministic ``G[i] = mechanism(QK_std^2 cov[i])`` (softmax over the attended
positions), hence for positions ``x, x'``::

    nngp[i, j, x, x'] = OV_std^2 sum_{y, y'} G1[i, x, y] nngp[i, j, y, y'] G2[j, x', y'] + b_std^2
    ntk = (the same map applied to ntk) + 2 (nngp - b_std^2)

With ``1/sqrt(n_chan_key)`` scaling only the ``IDENTITY`` mechanism has a closed
form (the products of Gaussian quadratic forms below). Positional embeddings
enter as a weighted sum of the input covariance and their own covariance ``R``.

Graph aggregation is linear: ``nngp[i, j] = A1[i]^T nngp[i, j] A2[j]`` over the
vertex axes, with dense adjacencies (``einsum``) or sparse edge lists
(gather + ``segment_sum``). Both follow neural-tangents 0.6.5 exactly, including
where it applies its formulas to the spatial axes as it presents them (reversed
after an odd number of convolutions). Written by hand: no library computes
these kernels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.kernels import masking_rules
from jaxdl.kernels.kernel import Kernel, reverse_spatial
from jaxdl.kernels.layout import set_batch_diagonal, zip_axes
from jaxdl.stax.attention import positional_covariance
from jaxdl.stax.graph import aggregate_axes, edge_indices

_MECHANISMS = {
    "SOFTMAX": None,  # applied jointly over the attended positions, see `_attention_weights`
    "IDENTITY": lambda g: g,
    "ABS": jnp.abs,
    "RELU": jax.nn.relu,
}


# --- attention --------------------------------------------------------------------------


def _affine(mat, W_std: float, b_std):
    if mat is None:
        return None
    mat = W_std**2 * mat
    return mat if b_std is None else mat + b_std**2


def _weighted_sum(mat, pos, mat_weight: float, pos_weight: float):
    """``mat_weight * mat + pos_weight * pos``, or ``mat`` unchanged without embeddings."""
    if mat is None or pos is None:
        return mat
    return mat_weight * mat + pos_weight * pos


def _unzip(mat, batch_ndim: int):
    """``f[b..., X, X', Y, Y'] -> f[b..., T, T']`` with ``T`` the flattened positions."""
    n = (mat.ndim - batch_ndim) // 2
    order = list(range(batch_ndim)) + [batch_ndim + 2 * s for s in range(n)] + [batch_ndim + 2 * s + 1 for s in range(n)]
    mat = jnp.transpose(mat, order)
    size = math.prod(mat.shape[batch_ndim : batch_ndim + n])
    return mat.reshape(mat.shape[:batch_ndim] + (size, size))


def _rezip(flat, like_shape, batch_ndim: int):
    """Inverse of :func:`_unzip` for an array of the zipped shape ``like_shape``."""
    spatial = like_shape[batch_ndim::2]
    return zip_axes(flat.reshape(flat.shape[:batch_ndim] + tuple(spatial) * 2), batch_ndim)


def _attention_weights(cov, diagonal_batch: bool, mechanism: str, QK_std: float, key_mask=None):
    """``G[i, x, y] = mechanism(QK_std * cov[i, x, y])``: f[n, T, T] from a ``cov1``/``cov2``.
    ``key_mask``: bool[n, T], masked keys get no weight (-inf logits for the softmax)."""
    if cov is None:
        return None
    if not diagonal_batch:
        cov = jnp.moveaxis(jnp.diagonal(cov, axis1=0, axis2=1), -1, 0)
    logits = QK_std * _unzip(cov, 1)
    if key_mask is not None:
        fill = jnp.finfo(logits.dtype).min if mechanism == "SOFTMAX" else 0.0
        logits = jnp.where(key_mask[:, None, :], jnp.asarray(fill, logits.dtype), logits)
    if mechanism == "SOFTMAX":
        return jax.nn.softmax(logits, axis=-1)
    return _MECHANISMS[mechanism](logits)


def _weigh(mat, G1, G2, batch_ndim: int):
    """``G1[i] mat[i, j] G2[j]^T`` over the flattened positions (``mat`` zipped)."""
    if mat is None or jnp.ndim(mat) == 0:
        return mat
    flat = _unzip(mat, batch_ndim)
    batch = (G1.shape[0],) if batch_ndim == 1 else (G1.shape[0], G2.shape[0])
    flat = jnp.broadcast_to(flat, batch + flat.shape[batch_ndim:])  # embeddings-only NTK: f[1, 1, T, T]
    if batch_ndim == 1:
        out = jnp.einsum("ixa,iab,iyb->ixy", G1, flat, G2)
    else:
        out = jnp.einsum("ixa,ijab,jyb->ijxy", G1, flat, G2)
    return _rezip(out, out.shape[:batch_ndim] + mat.shape[batch_ndim:], batch_ndim)


def _sum_over_positions(lhs, rhs, batch_ndim: int):
    """``sum_{x, x'} lhs * rhs`` per batch entry (``rhs=None``: ``lhs**2``), keeping dims."""
    if lhs is None:
        return None
    axes = tuple(range(batch_ndim, lhs.ndim))
    prod = lhs**2 if rhs is None else lhs * jnp.broadcast_to(rhs, lhs.shape)
    return jnp.sum(prod, axis=axes, keepdims=True)


def _positional_terms(h, k: Kernel):
    """Covariances of the positional embeddings for ``cov1``, ``nngp`` and ``cov2``."""
    if h["pos_emb_type"] == "NONE":
        return None, None, None
    ndim = len(k.shape1)
    spatial_shape = tuple(d for i, d in enumerate(k.shape1) if i not in (k.batch_axis, k.channel_axis % ndim))
    R = positional_covariance(spatial_shape, h["pos_emb_p_norm"], h["pos_emb_decay_fn"])
    R = R.astype(k.nngp.dtype)
    cov_batch = 1 if k.diagonal_batch else 2
    R11 = R.reshape((1,) * cov_batch + R.shape)
    R12 = R.reshape((1, 1) + R.shape)
    return R11, R12, None if k.cov2 is None else R11


def global_self_attention(h, k: Kernel, ctx) -> Kernel:
    mechanism, linear_scaling = h["attention_mechanism"], h["linear_scaling"]
    if not linear_scaling and mechanism != "IDENTITY":
        raise NotImplementedError(
            f"GlobalSelfAttention: no known closed form for linear_scaling=False (1/sqrt(n_chan_key) "
            f"scaling) with attention_mechanism={mechanism!r}; use linear_scaling=True or 'IDENTITY'"
        )
    if k.diagonal_spatial:
        raise ValueError("GlobalSelfAttention: requires full spatial covariances, got diagonal_spatial=True")
    QK_std, OV_std, b_std, val_pos_emb = h["QK_std"], h["OV_std"], h["b_std"], h["val_pos_emb"]
    R1, R12, R2 = _positional_terms(h, k)
    key_mask1 = key_mask2 = None
    if masking_rules.has_masks(k):  # masked positions: no embeddings, never attended to
        keep = masking_rules.visible_pairs(k)
        R1, R12 = [None if R is None else jnp.where(keep[n], R, 0.0) for R, n in ((R1, "cov1"), (R12, "nngp"))]
        R2 = None if R2 is None else jnp.where(keep["cov2"], R2, 0.0)
        key_mask1, key_mask2 = masking_rules.key_masks(k)

    input_weight, pos_weight = 1.0, h["W_pos_emb_std"] ** 2
    if h["pos_emb_type"] == "CONCAT":  # the embedding channels' share of the key inputs
        n_input = k.shape1[k.channel_axis]
        n_emb = n_input if h["n_chan_pos_emb"] is None else h["n_chan_pos_emb"]
        input_weight *= n_input / (n_input + n_emb)
        pos_weight *= n_emb / (n_input + n_emb)

    cov1_interp = _weighted_sum(k.cov1, R1, input_weight, pos_weight)
    cov2_interp = _weighted_sum(k.cov2, R2, input_weight, pos_weight)
    nngp_interp = _weighted_sum(k.nngp, R12, input_weight, pos_weight)
    ntk_interp = _weighted_sum(k.ntk, R12, input_weight, pos_weight)
    cov_batch = 1 if k.diagonal_batch else 2

    if linear_scaling:
        G1 = _attention_weights(cov1_interp, k.diagonal_batch, mechanism, QK_std, key_mask1)
        G2 = G1 if cov2_interp is None else _attention_weights(
            cov2_interp, k.diagonal_batch, mechanism, QK_std, key_mask2)
        values = lambda mat, interp: interp if val_pos_emb else mat  # noqa: E731
        cov1 = _affine(_weigh(values(k.cov1, cov1_interp), G1, G1, cov_batch), OV_std, b_std)
        cov2 = None if k.cov2 is None else _affine(_weigh(values(k.cov2, cov2_interp), G2, G2, cov_batch), OV_std, b_std)
        nngp = _affine(_weigh(values(k.nngp, nngp_interp), G1, G2, 2), OV_std, b_std)
        ntk = None
        if k.ntk is not None:
            ntk = _affine(_weigh(values(k.ntk, ntk_interp), G1, G2, 2), OV_std, b_std)
            ntk = ntk + 2 * (nngp if b_std is None else nngp - b_std**2)
        if k.cov2 is None and k.diagonal_batch:  # x2 is x1: keep nngp[i, i] == cov1[i] exactly
            nngp = set_batch_diagonal(nngp, cov1, True)
    else:  # IDENTITY with 1/sqrt(n_chan_key) scaling: queries and keys independent
        dot11 = _sum_over_positions(cov1_interp, None if val_pos_emb else k.cov1, cov_batch)
        dot12 = _sum_over_positions(nngp_interp, None if val_pos_emb else k.nngp, 2)
        dot22 = _sum_over_positions(cov2_interp, None if val_pos_emb else k.cov2, cov_batch)
        std = QK_std * OV_std
        nngp = _affine(dot12 * nngp_interp, std, b_std)
        cov1 = _affine(dot11 * cov1_interp, std, b_std)
        cov2 = None if dot22 is None else _affine(dot22 * cov2_interp, std, b_std)
        ntk = None
        if k.ntk is not None:
            if val_pos_emb or h["pos_emb_type"] == "NONE":
                ntk = 2 * _sum_over_positions(nngp_interp, ntk_interp, 2)
            else:
                ntk = _sum_over_positions(nngp_interp, k.ntk, 2) + _sum_over_positions(k.nngp, ntk_interp, 2)
            ntk = _affine(ntk * nngp_interp + dot12 * (ntk_interp + 4 * nngp_interp), std, b_std)

    shape = lambda s: s[: k.channel_axis] + (h["n_chan_out"],) + s[k.channel_axis + 1 :]  # noqa: E731
    return k.replace(
        nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=True, is_input=False,
        shape1=shape(k.shape1), shape2=shape(k.shape2),
    )  # fmt: skip


# --- graph aggregation ------------------------------------------------------------------


def _to_vertex_layout(mat, batch_ndim: int, vertex_idx: tuple[int, ...]):
    """``f[b..., S0, S0', S1, S1', ...] -> f[b..., V, V', rest...]`` (V: flattened vertex axes).

    Returns the array and the function mapping such an array back.
    """
    n = (mat.ndim - batch_ndim) // 2
    first = [batch_ndim + 2 * s for s in range(n)]
    second = [batch_ndim + 2 * s + 1 for s in range(n)]
    other = [s for s in range(n) if s not in vertex_idx]
    order = (
        list(range(batch_ndim)) + [first[s] for s in vertex_idx] + [second[s] for s in vertex_idx]
        + [first[s] for s in other] + [second[s] for s in other]
    )  # fmt: skip
    moved = jnp.transpose(mat, order)
    size = math.prod(mat.shape[first[s]] for s in vertex_idx)
    rest = moved.shape[batch_ndim + 2 * len(vertex_idx) :]
    flat = moved.reshape(moved.shape[:batch_ndim] + (size, size) + rest)

    def back(out):
        return jnp.transpose(out.reshape(moved.shape), np.argsort(order))

    return flat, back


def _dense_aggregate(flat, A1, A2, batch_ndim: int):
    """``A1[i]^T flat[i, j] A2[j]`` on the leading vertex pair (``A: f[n, V, V]``)."""
    if batch_ndim == 1:
        return jnp.einsum("iav,iab...,ibw->ivw...", A1, flat, A2)
    return jnp.einsum("iav,ijab...,jbw->ijvw...", A1, flat, A2)


def _sparse_aggregate(flat, edges1, edges2, batch_ndim: int):
    """The same as :func:`_dense_aggregate` from edge lists: gather the tails'
    covariances, sum them into the heads (``edges: (tails, heads)``, ``i[n, E]``)."""
    size = flat.shape[batch_ndim]

    def one_pair(mat, tails1, heads1, tails2, heads2):  # mat: f[V, V, rest...]
        gathered = mat[tails1[:, None], tails2[None, :]]  # f[E1, E2, rest...]
        inner = jax.vmap(lambda row: jax.ops.segment_sum(row, heads2, num_segments=size))(gathered)
        return jax.ops.segment_sum(inner, heads1, num_segments=size)

    (t1, h1), (t2, h2) = edges1, edges2
    if batch_ndim == 1:
        return jax.vmap(one_pair)(flat, t1, h1, t2, h2)
    over_j = jax.vmap(one_pair, (0, None, None, 0, 0))
    return jax.vmap(over_j, (0, 0, 0, None, None))(flat, t1, h1, t2, h2)


def aggregate(h, k: Kernel, ctx) -> Kernel:
    pattern1, pattern2 = ctx.get("pattern", (None, None))
    if pattern1 is None and pattern2 is None:
        return k
    if pattern1 is None or pattern2 is None:
        raise NotImplementedError(
            "Aggregate: got a pattern for only one of x1 and x2; pass pattern=(pattern1, pattern2) "
            "(None for both means the identity graph)"
        )
    if k.diagonal_spatial:
        raise ValueError("Aggregate: requires full spatial covariances, got diagonal_spatial=True")
    ndim = len(k.shape1)
    axes, batch, channel = aggregate_axes("Aggregate", ndim, h["aggregate_axis"], h["batch_axis"], h["channel_axis"])
    vertex_idx = tuple(a - int(batch < a) - int(channel < a) for a in axes)
    vertex_shape = tuple(k.shape1[a] for a in axes)
    size = math.prod(vertex_shape)

    if h["implementation"] == "DENSE":
        def adjacency(pattern, n):
            A = jnp.asarray(h["to_dense"](pattern))
            if A.shape != (n,) + vertex_shape * 2:
                raise ValueError(
                    f"Aggregate: expected a dense pattern of shape {(n,) + vertex_shape * 2}, got {tuple(A.shape)}"
                )
            return A.reshape(n, size, size).astype(k.nngp.dtype)

        graph1, graph2 = adjacency(pattern1, k.shape1[batch]), adjacency(pattern2, k.shape2[batch])
        combine = _dense_aggregate
    else:
        graph1 = edge_indices("Aggregate", pattern1, k.shape1[batch], vertex_shape)
        graph2 = edge_indices("Aggregate", pattern2, k.shape2[batch], vertex_shape)
        combine = _sparse_aggregate

    def agg(mat, g1, g2, batch_ndim):
        if mat is None or jnp.ndim(mat) == 0:
            return mat
        # neural-tangents applies the vertex axes to the covariance as it presents it.
        presented = reverse_spatial(mat, batch_ndim, False) if k.is_reversed else mat
        flat, back = _to_vertex_layout(presented, batch_ndim, vertex_idx)
        out = back(combine(flat, g1, g2, batch_ndim))
        return reverse_spatial(out, batch_ndim, False) if k.is_reversed else out

    cov_batch = 1 if k.diagonal_batch else 2
    nngp, cov1 = agg(k.nngp, graph1, graph2, 2), agg(k.cov1, graph1, graph1, cov_batch)
    if k.cov2 is None and k.diagonal_batch:  # x2 is x1: keep nngp[i, i] == cov1[i] exactly
        nngp = set_batch_diagonal(nngp, cov1, True)
    return k.replace(nngp=nngp, ntk=agg(k.ntk, graph1, graph2, 2), cov1=cov1, cov2=agg(k.cov2, graph2, graph2, cov_batch))


RULES = {
    "GlobalSelfAttention": global_self_attention,
    "Aggregate": aggregate,
}
