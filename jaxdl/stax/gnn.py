"""Graph neural network layers: ``GCNConv``, ``GATConv``, ``ChebConv`` and ``MessagePassing``.

The seeds' geometric chapter, formula by formula:

* message passing ``phi(x_m, ⊕_{x in X_m} psi(x))``, ``⊕`` permutation invariant
  (:func:`MessagePassing`: ``psi`` = ``message_fn``, ``⊕`` = ``aggregate``,
  ``phi`` = ``update_fn``);
* GCN: normalised adjacency ``A_bar = D^-1/2 (A + I) D^-1/2``, ``d_m = 1 +
  sum_n a_nm``, layer ``X+ = A_bar X W`` (+ bias; the nonlinearity ``sigma`` is
  the next layer) (:func:`GCNConv`);
* attention GNN: ``e_ij = LeakyReLU(a^T [W x_i || W x_j])``, ``alpha_ij =
  softmax_j(e_ij)`` over the neighbours ``j`` of ``i`` including ``i`` itself
  (``sum_j A_ij q_ij = 1``), ``x'_i = sum_j alpha_ij W x_j`` (:func:`GATConv`,
  several heads, concatenated or averaged);
* ChebNet: ``g_theta(L) x ≈ sum_{k=0}^K T_k(L^) x W_k`` with ``L^ = 2 L~ /
  lambda_max - I`` the scaled normalised Laplacian (``L~ = D^-1/2 (D - A)
  D^-1/2``, see :mod:`jaxdl.graphs.spectral`) and ``T_0 = I, T_1 = L^, T_k = 2 L^
  T_{k-1} - T_{k-2}``: ``K`` sparse products, no eigendecomposition (:func:`ChebConv`).

Call convention (that of ``stax.Aggregate``): node features ``x: f[batch, N,
F]`` and the graph at call time, ``apply_fn(params, x, pattern=..., mask=...)``:

* ``implementation='DENSE'``: ``pattern`` is the adjacency ``f[batch, N, N]``,
  ``pattern[b, v, w]`` the weight of the edge ``v -> w`` (symmetric for an
  undirected graph); ``O(N^2)``;
* ``implementation='SPARSE'``: ``pattern`` is an edge list ``i[batch, E, 2]``
  of ``(sender, receiver)`` pairs; a pair with a negative index is padding;
  messages are gathered and summed with ``jax.ops.segment_sum``, ``O(N + E)``;
  a repeated edge counts like an adjacency entry of 2, so both implementations
  agree on every graph;
* ``pattern=None``: a graph without edges (each node sees only itself);
* ``mask``: optional ``bool[batch, N]`` (or broadcastable to ``x``), ``True``
  for padding nodes (jaxdl's mask convention): their features never reach a
  real node and their outputs are zero.

:mod:`jaxdl.graphs` builds these inputs (``to_dense``, ``to_edge_lists``,
``as_single_graph``). Degrees are in-degrees (column sums of the adjacency,
the seeds' ``d_m = sum_n a_nm``), equal to the usual degrees for undirected
graphs. Isolated nodes and empty graphs give finite outputs (a zero degree
gets ``d^-1/2 := 0``). Parameters use the NTK parameterisation of ``Dense``
(standard normal weights, outputs scaled by ``W_std / sqrt(fan_in)``).
``GCNConv`` has an infinite-width kernel (:mod:`jaxdl.kernels.gnn_rules`);
the other layers' ``kernel_fn`` raises ``NotImplementedError``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.stax.layer import (
    Layer,
    LayerSpec,
    check_array,
    check_choice,
    check_key,
    check_positive_int,
    check_shape,
    make_layer,
)
from jaxdl.stax.linear import check_std

GRAPH_IMPLEMENTATIONS = ("DENSE", "SPARSE")
AGGREGATIONS = ("sum", "mean", "max")


# --- the graph given at call time -------------------------------------------------------


class Topology(NamedTuple):
    """A batch of graphs ready for the layers: ``keep: bool[B, N]`` (real nodes) and
    either ``adjacency: f[B, N, N]`` (DENSE, padding rows/columns zeroed) or
    ``senders``/``receivers: i[B, E]`` with ``weights: f[B, E]`` (SPARSE, 0 for padding
    edges, whose receiver is ``N``: out of range, dropped by the segment sums)."""

    keep: jax.Array
    adjacency: jax.Array | None = None
    senders: jax.Array | None = None
    receivers: jax.Array | None = None
    weights: jax.Array | None = None


def _concrete(value):
    """``value`` as a NumPy array, or None for a traced value (inside ``jit``)."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def node_features(name: str, x) -> jax.Array:
    """Check ``x: f[batch, N, F]``; integer inputs become floats."""
    x = check_array(name, x, ndim=3)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def padding_keep(name: str, x, mask) -> jax.Array:
    """``bool[B, N]``: ``True`` for real nodes, from ``mask`` (``True`` = padding)."""
    batch, nodes = x.shape[0], x.shape[1]
    if mask is None:
        return jnp.ones((batch, nodes), bool)
    mask = jnp.asarray(mask)
    if mask.shape == (batch, nodes):
        return ~mask.astype(bool)
    try:
        full = jnp.broadcast_to(mask, x.shape)
    except ValueError:
        raise ValueError(
            f"{name}: expected mask of shape {(batch, nodes)} (True for padding) or broadcastable to "
            f"{tuple(x.shape)}, got {tuple(mask.shape)}"
        ) from None
    return ~jnp.all(full.astype(bool), axis=-1)


def topology(name: str, implementation: str, x, pattern, mask) -> Topology:
    """Validate the graph passed to ``apply_fn`` and put it in :class:`Topology` form."""
    batch, nodes = x.shape[0], x.shape[1]
    keep = padding_keep(name, x, mask)
    if implementation == "DENSE":
        if pattern is None:
            return Topology(keep, adjacency=jnp.zeros((batch, nodes, nodes), x.dtype))
        adjacency = jnp.asarray(pattern)
        if adjacency.ndim != 3 or adjacency.shape[1] != adjacency.shape[2]:
            raise ValueError(f"{name}: expected a square adjacency of shape (batch, N, N), got {tuple(adjacency.shape)}")
        if adjacency.shape != (batch, nodes, nodes):
            raise ValueError(
                f"{name}: expected an adjacency of shape {(batch, nodes, nodes)} for node features of shape "
                f"{tuple(x.shape)}, got {tuple(adjacency.shape)}"
            )
        adjacency = adjacency.astype(x.dtype) * (keep[:, :, None] & keep[:, None, :]).astype(x.dtype)
        return Topology(keep, adjacency=adjacency)
    if pattern is None:
        empty = jnp.zeros((batch, 0), jnp.int32)
        return Topology(keep, senders=empty, receivers=empty, weights=jnp.zeros((batch, 0), x.dtype))
    edges = jnp.asarray(pattern)
    if not jnp.issubdtype(edges.dtype, jnp.integer):
        raise TypeError(f"{name}: expected an integer edge list as the SPARSE pattern, got dtype {edges.dtype}")
    if edges.ndim != 3 or edges.shape[-1] != 2 or edges.shape[0] != batch:
        raise ValueError(
            f"{name}: expected an edge list of shape ({batch}, n_edges, 2) of (sender, receiver) pairs, "
            f"got {tuple(edges.shape)}"
        )
    values = _concrete(edges)
    if values is not None and values.size and values.max() >= nodes:
        raise ValueError(f"{name}: expected edge indices < {nodes} (the number of nodes), got {values.max()}")
    senders, receivers = edges[..., 0], edges[..., 1]
    inside = (senders >= 0) & (receivers >= 0) & (senders < nodes) & (receivers < nodes)  # traced: drop the rest
    senders, receivers = jnp.clip(senders, 0, max(nodes - 1, 0)), jnp.clip(receivers, 0, max(nodes - 1, 0))
    if nodes == 0:
        valid = jnp.zeros(senders.shape, bool)
    elif mask is None:  # every node is real
        valid = inside
    else:
        valid = inside & _gather(keep, senders) & _gather(keep, receivers)
    # an invalid edge's receiver becomes N, out of range: segment sums drop it (no per-edge product needed)
    receivers = jnp.where(valid, receivers, nodes)
    return Topology(keep, senders=senders, receivers=receivers, weights=valid.astype(x.dtype))


def _gather(values, index):
    """``values[b, index[b]]`` for every batch entry (one graph: a plain gather)."""
    if values.shape[0] == 1:
        return values[0][index[0]][None]
    return jax.vmap(lambda v, i: v[i])(values, index)


def _scatter_sum(values, receivers, nodes: int):
    """``out[b, w] = sum_{e: receivers[b, e] == w} values[b, e]`` (one graph: a plain segment sum)."""
    if values.shape[0] == 1:
        return jax.ops.segment_sum(values[0], receivers[0], num_segments=nodes)[None]
    return jax.vmap(lambda v, r: jax.ops.segment_sum(v, r, num_segments=nodes))(values, receivers)


def propagate(top: Topology, h) -> jax.Array:
    """``out[b, w] = sum_v A[b, v, w] h[b, v]``: every node sums its in-neighbours."""
    if top.adjacency is not None:
        return jnp.einsum("bvw,bv...->bw...", top.adjacency.astype(h.dtype), h)
    return _scatter_sum(_gather(h, top.senders), top.receivers, h.shape[1])  # invalid edges: receiver N, dropped


def in_degree(top: Topology, dtype) -> jax.Array:
    """``d[b, w] = sum_v A[b, v, w]`` (the seeds' ``d_m = sum_n a_nm``)."""
    if top.adjacency is not None:
        return jnp.sum(top.adjacency, axis=1).astype(dtype)
    return _scatter_sum(top.weights.astype(dtype), top.receivers, top.keep.shape[1])


def inv_sqrt(d):
    """``d^-1/2``, ``0`` where ``d <= 0`` (isolated nodes): no NaN, in value or gradient."""
    positive = d > 0
    return jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, d, jnp.ones((), d.dtype))), jnp.zeros((), d.dtype))


def zero_padding(out, keep):
    """Zero the outputs of padding nodes."""
    return jnp.where(keep.reshape(keep.shape + (1,) * (out.ndim - 2)), out, jnp.zeros((), out.dtype))


def gcn_propagate(top: Topology, h) -> jax.Array:
    """``A_bar^T h`` with ``A_bar = D^-1/2 (A + I) D^-1/2``, ``d = 1 + in-degree``."""
    scale = inv_sqrt(1.0 + in_degree(top, h.dtype))[..., None]
    return scale * propagate(top, scale * h) + scale**2 * h


def _check_std(name, label, value):
    return check_std(name, label, value, allow_none=label == "b_std")


def _input_shape(name: str, input_shape):
    shape = check_shape(name, input_shape)
    if len(shape) != 3:
        raise ValueError(f"{name}: expected input_shape (batch, nodes, features), got {shape!r}")
    if shape[-1] == -1:
        raise ValueError(f"{name}: the feature axis of input_shape must be known, got -1")
    return shape


def _check_features(name: str, x, fan_in: int):
    if x.shape[-1] != fan_in:
        raise ValueError(f"{name}: expected {fan_in} features on the last axis, got input of shape {tuple(x.shape)}")


def _bias(params, b_std, out):
    return out if b_std is None else out + b_std * params["b"].astype(out.dtype)


# --- GCNConv ------------------------------------------------------------------------------


def GCNConv(out_dim: int, W_std: float = 1.0, b_std: float | None = None, implementation: str = "DENSE"):
    """Kipf & Welling's graph convolution, the seeds' ``X+ = A_bar X W (+ b)`` with
    ``A_bar = D^-1/2 (A + I) D^-1/2``, ``d_m = 1 + sum_n a_nm``.

    Params: ``{"W": f[F, out_dim], "b": f[out_dim]}`` (no ``"b"`` when ``b_std`` is None);
    the output is ``A_bar^T (W_std / sqrt(F)) x W + b_std b``. ``A_bar^T`` because
    ``pattern[b, v, w]`` is the edge ``v -> w`` (the two agree on undirected graphs).
    """
    name = "GCNConv"
    out_dim = check_positive_int(name, "out_dim", out_dim)
    W_std, b_std = _check_std(name, "W_std", W_std), _check_std(name, "b_std", b_std)
    implementation = check_choice(name, "implementation", implementation, GRAPH_IMPLEMENTATIONS)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _input_shape(name, input_shape)
        key_W, key_b = jax.random.split(key)
        params = {"W": jax.random.normal(key_W, (shape[-1], out_dim))}
        if b_std is not None:
            params["b"] = jax.random.normal(key_b, (out_dim,))
        return shape[:-1] + (out_dim,), params

    def apply_fn(params, x, *, pattern=None, mask=None, **kwargs):
        x = node_features(name, x)
        W = params["W"]
        _check_features(name, x, W.shape[0])
        top = topology(name, implementation, x, pattern, mask)
        h = (W_std / math.sqrt(W.shape[0])) * (x @ W.astype(x.dtype))
        return zero_padding(_bias(params, b_std, gcn_propagate(top, h)), top.keep)

    spec = LayerSpec(name, dict(out_dim=out_dim, W_std=W_std, b_std=b_std, implementation=implementation))
    return make_layer(name, init_fn, apply_fn, spec)


# --- GATConv ------------------------------------------------------------------------------


def _masked_softmax_dense(scores, weights):
    """Softmax over senders ``v`` (axis 1 of ``f[B, v, w, H]``) with multiplicities
    ``weights`` ``f[B, v, w]`` (0: not a neighbour); no neighbour -> all zero."""
    present = (weights > 0)[..., None]
    logits = jnp.where(present, scores, jnp.asarray(-jnp.inf, scores.dtype))
    top = jnp.max(logits, axis=1, keepdims=True, initial=-jnp.inf)
    top = jnp.where(jnp.isfinite(top), top, jnp.zeros((), scores.dtype))
    numerator = jnp.where(present, jnp.exp(scores - top), 0.0) * weights[..., None]
    total = jnp.sum(numerator, axis=1, keepdims=True)
    return numerator / jnp.where(total > 0, total, jnp.ones((), total.dtype))


def _masked_softmax_sparse(scores, weights, receivers, nodes: int):
    """Softmax of per-edge ``scores`` ``f[B, E, H]`` over the edges into each receiver."""
    present = (weights > 0)[..., None]
    logits = jnp.where(present, scores, jnp.asarray(-jnp.inf, scores.dtype))
    top = jax.vmap(lambda s, r: jax.ops.segment_max(s, r, num_segments=nodes))(logits, receivers)
    top = jnp.where(jnp.isfinite(top), top, jnp.zeros((), scores.dtype))
    numerator = jnp.where(present, jnp.exp(scores - _gather(top, receivers)), 0.0) * weights[..., None]
    total = _scatter_sum(numerator, receivers, nodes)
    return numerator / _gather(jnp.where(total > 0, total, jnp.ones((), total.dtype)), receivers)


def GATConv(
    out_dim: int,
    num_heads: int = 1,
    concat_heads: bool = True,
    negative_slope: float = 0.2,
    W_std: float = 1.0,
    a_std: float = 1.0,
    b_std: float | None = None,
    implementation: str = "DENSE",
):
    """Graph attention (the seeds' attention coupling): per head, ``h = W x``,
    ``e_vw = LeakyReLU(a_dst . h_w + a_src . h_v)`` (``= a^T [W x_w || W x_v]``),
    ``alpha_vw = softmax`` over the in-neighbours ``v`` of ``w`` and ``w`` itself
    (an edge of adjacency weight ``c`` counts ``c`` times), ``out_w = sum_v alpha_vw h_v``.

    Heads are concatenated (``num_heads * out_dim`` outputs) or averaged
    (``concat_heads=False``). Params: ``W f[F, H*out]``, ``a_src``/``a_dst``
    ``f[H, out]`` (scores scaled by ``a_std / sqrt(out_dim)``), optional ``b``.
    """
    name = "GATConv"
    out_dim = check_positive_int(name, "out_dim", out_dim)
    num_heads = check_positive_int(name, "num_heads", num_heads)
    W_std, a_std, b_std = (_check_std(name, n, v) for n, v in (("W_std", W_std), ("a_std", a_std), ("b_std", b_std)))
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)) or not math.isfinite(negative_slope):
        raise ValueError(f"{name}: expected negative_slope to be a finite float, got {negative_slope!r}")
    implementation = check_choice(name, "implementation", implementation, GRAPH_IMPLEMENTATIONS)
    width = num_heads * out_dim if concat_heads else out_dim

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _input_shape(name, input_shape)
        k_W, k_src, k_dst, k_b = jax.random.split(key, 4)
        params = {
            "W": jax.random.normal(k_W, (shape[-1], num_heads * out_dim)),
            "a_src": jax.random.normal(k_src, (num_heads, out_dim)),
            "a_dst": jax.random.normal(k_dst, (num_heads, out_dim)),
        }
        if b_std is not None:
            params["b"] = jax.random.normal(k_b, (width,))
        return shape[:-1] + (width,), params

    def apply_fn(params, x, *, pattern=None, mask=None, **kwargs):
        x = node_features(name, x)
        W = params["W"]
        _check_features(name, x, W.shape[0])
        top = topology(name, implementation, x, pattern, mask)
        batch, nodes = x.shape[:2]
        h = ((W_std / math.sqrt(W.shape[0])) * (x @ W.astype(x.dtype))).reshape(batch, nodes, num_heads, out_dim)
        scale = a_std / math.sqrt(out_dim)
        src = scale * jnp.einsum("bnhf,hf->bnh", h, params["a_src"].astype(x.dtype))
        dst = scale * jnp.einsum("bnhf,hf->bnh", h, params["a_dst"].astype(x.dtype))
        leaky = lambda s: jnp.where(s >= 0, s, negative_slope * s)  # noqa: E731
        if top.adjacency is not None:
            weights = top.adjacency + jnp.eye(nodes, dtype=x.dtype) * top.keep[:, :, None].astype(x.dtype)
            alpha = _masked_softmax_dense(leaky(src[:, :, None, :] + dst[:, None, :, :]), weights)  # f[B, v, w, H]
            out = jnp.einsum("bvwh,bvhf->bwhf", alpha, h)
        else:
            loops = jnp.broadcast_to(jnp.arange(nodes, dtype=top.senders.dtype), (batch, nodes))
            senders = jnp.concatenate([top.senders, loops], axis=1)
            receivers = jnp.concatenate([top.receivers, loops], axis=1)
            weights = jnp.concatenate([top.weights, top.keep.astype(x.dtype)], axis=1)
            scores = leaky(_gather(src, senders) + _gather(dst, receivers))  # f[B, E, H]
            alpha = _masked_softmax_sparse(scores, weights, receivers, nodes)
            out = _scatter_sum(alpha[..., None] * _gather(h, senders), receivers, nodes)
        out = out.reshape(batch, nodes, num_heads * out_dim) if concat_heads else jnp.mean(out, axis=2)
        return zero_padding(_bias(params, b_std, out), top.keep)

    spec = LayerSpec(name, dict(out_dim=out_dim, num_heads=num_heads, concat_heads=concat_heads,
                                negative_slope=negative_slope, W_std=W_std, a_std=a_std, b_std=b_std,
                                implementation=implementation))  # fmt: skip
    return make_layer(name, init_fn, apply_fn, spec)


# --- ChebConv -----------------------------------------------------------------------------


def ChebConv(
    out_dim: int,
    K: int = 2,
    lambda_max: float = 2.0,
    W_std: float = 1.0,
    b_std: float | None = None,
    implementation: str = "DENSE",
):
    """ChebNet's polynomial spectral filter ``out = sum_{k=0}^{K} T_k(L^) x W_k (+ b)``.

    ``L^ = 2 L~ / lambda_max - I`` with ``L~ = D^-1/2 (D - A) D^-1/2`` (the
    normalised Laplacian; ``lambda_max = 2`` bounds its spectrum) and the
    Chebyshev recursion ``T_0 x = x``, ``T_1 x = L^ x``, ``T_k x = 2 L^ T_{k-1} x -
    T_{k-2} x``: ``K`` graph propagations, no eigendecomposition; the filter is
    ``K``-localised. ``K`` is the polynomial order (``K = 0``: a per-node Dense).

    Params: ``{"W": f[K+1, F, out_dim], "b": f[out_dim]}``; each term scaled by
    ``W_std / sqrt(F)``.
    """
    name = "ChebConv"
    out_dim = check_positive_int(name, "out_dim", out_dim)
    if isinstance(K, bool) or not isinstance(K, int) or K < 0:
        raise ValueError(f"{name}: expected K (the polynomial order) to be an int >= 0, got {K!r}")
    if isinstance(lambda_max, bool) or not isinstance(lambda_max, (int, float)) or not 0 < lambda_max < math.inf:
        raise ValueError(f"{name}: expected lambda_max to be a finite float > 0, got {lambda_max!r}")
    W_std, b_std = _check_std(name, "W_std", W_std), _check_std(name, "b_std", b_std)
    implementation = check_choice(name, "implementation", implementation, GRAPH_IMPLEMENTATIONS)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _input_shape(name, input_shape)
        key_W, key_b = jax.random.split(key)
        params = {"W": jax.random.normal(key_W, (K + 1, shape[-1], out_dim))}
        if b_std is not None:
            params["b"] = jax.random.normal(key_b, (out_dim,))
        return shape[:-1] + (out_dim,), params

    def apply_fn(params, x, *, pattern=None, mask=None, **kwargs):
        x = node_features(name, x)
        W = params["W"]
        _check_features(name, x, W.shape[1])
        top = topology(name, implementation, x, pattern, mask)
        degree = in_degree(top, x.dtype)
        scale, connected = inv_sqrt(degree)[..., None], (degree > 0)[..., None].astype(x.dtype)

        def scaled_laplacian(t):  # L^ t = (2 / lambda_max) (t - D^-1/2 A^T D^-1/2 t) - t, isolated rows of L~ zero
            normalized = connected * t - scale * propagate(top, scale * t)
            return (2.0 / lambda_max) * normalized - t

        terms = [x]
        if K >= 1:
            terms.append(scaled_laplacian(x))
        for _ in range(2, K + 1):
            terms.append(2.0 * scaled_laplacian(terms[-1]) - terms[-2])
        out = sum(t @ W[k].astype(x.dtype) for k, t in enumerate(terms)) * (W_std / math.sqrt(W.shape[1]))
        return zero_padding(_bias(params, b_std, out), top.keep)

    spec = LayerSpec(name, dict(out_dim=out_dim, K=K, lambda_max=lambda_max, W_std=W_std, b_std=b_std,
                                implementation=implementation))  # fmt: skip
    return make_layer(name, init_fn, apply_fn, spec)


# --- MessagePassing -----------------------------------------------------------------------


def _check_child(name: str, label: str, layer, allow_none: bool):
    if layer is None and allow_none:
        return None
    if not isinstance(layer, Layer):
        raise TypeError(f"{name}: expected {label} to be a stax layer, got {type(layer).__name__}")
    if layer.stateful:
        raise ValueError(f"{name}: expected a stateless {label} (no BatchNorm), got {layer.name}")
    return layer


def MessagePassing(
    message_fn, aggregate: str = "sum", update_fn=None, message_inputs: str = "sender", implementation: str = "DENSE"
):
    """The seeds' message passing ``x+_m = phi(x_m, ⊕_{n -> m} psi(x_n))``.

    Args:
      message_fn: a stax layer ``psi`` applied to every edge's input: the
        sender's features (``message_inputs='sender'``, the seeds' form) or the
        concatenation ``[x_sender, x_receiver]`` (``'sender_receiver'``).
      aggregate: the permutation-invariant ``⊕`` over the in-neighbours:
        ``'sum'`` (weighted by the adjacency), ``'mean'`` (that sum divided by
        the weighted in-degree) or ``'max'`` (over the neighbours with a
        positive weight); a node without in-neighbours gets zeros.
      update_fn: a stax layer ``phi`` applied to ``[x_m, aggregated]``
        (concatenated on the feature axis); ``None`` returns the aggregate.
      implementation: ``'DENSE'`` or ``'SPARSE'`` (see the module docstring).

    Params: ``{"message": ..., "update": ...}``. Both layers must act per node
    or per edge on the last axis (``Dense``, elementwise layers, ``serial`` of them).
    """
    name = "MessagePassing"
    message_fn = _check_child(name, "message_fn", message_fn, allow_none=False)
    update_fn = _check_child(name, "update_fn", update_fn, allow_none=True)
    aggregate = check_choice(name, "aggregate", aggregate, AGGREGATIONS)
    message_inputs = check_choice(name, "message_inputs", message_inputs, ("sender", "sender_receiver"))
    implementation = check_choice(name, "implementation", implementation, GRAPH_IMPLEMENTATIONS)
    both = message_inputs == "sender_receiver"

    def child_init(label, layer, key, shape):
        try:
            out_shape, params = layer.init(key, shape)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: {label} rejects input of shape {shape}: {error}") from None
        if len(out_shape) != len(shape) or tuple(out_shape[:-1]) != tuple(shape[:-1]):
            raise ValueError(f"{name}: expected {label} to act on the last axis of {shape}, got output {out_shape}")
        return out_shape, params

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _input_shape(name, input_shape)
        key_message, key_update = jax.random.split(key)
        message_in = shape[:-1] + (2 * shape[-1] if both else shape[-1],)
        message_shape, message_params = child_init("message_fn", message_fn, key_message, message_in)
        params, out_shape = {"message": message_params}, message_shape
        if update_fn is not None:
            update_in = shape[:-1] + (shape[-1] + message_shape[-1],)
            out_shape, params["update"] = child_init("update_fn", update_fn, key_update, update_in)
        return out_shape, params

    def messages(params, x, top):
        """``psi`` per edge: ``f[B, N, M]`` (sender-only: one message per node) or
        ``f[B, v, w, M]`` (DENSE pairs) or ``f[B, E, M]`` (SPARSE edges)."""
        if not both:
            return message_fn.apply(params["message"], x)
        if top.adjacency is not None:
            nodes = x.shape[1]
            pairs = jnp.concatenate([
                jnp.broadcast_to(x[:, :, None, :], (x.shape[0], nodes, nodes, x.shape[-1])),
                jnp.broadcast_to(x[:, None, :, :], (x.shape[0], nodes, nodes, x.shape[-1]))], axis=-1)  # fmt: skip
            flat = message_fn.apply(params["message"], pairs.reshape(x.shape[0], nodes * nodes, 2 * x.shape[-1]))
            return flat.reshape(x.shape[0], nodes, nodes, flat.shape[-1])
        pairs = jnp.concatenate([_gather(x, top.senders), _gather(x, top.receivers)], axis=-1)
        return message_fn.apply(params["message"], pairs)

    def combine(m, top, nodes):
        """``⊕`` of the messages into every receiver: ``f[B, N, M]``."""
        dtype = m.dtype
        if top.adjacency is not None:
            weights = top.adjacency.astype(dtype)
            edge_m = m if both else m[:, :, None, :]  # f[B, v, w or 1, M]
            if aggregate == "max":
                present = (weights > 0)[..., None]
                best = jnp.max(jnp.where(present, edge_m, -jnp.inf), axis=1, initial=-jnp.inf)
                return jnp.where(jnp.any(present, axis=1), best, jnp.zeros((), dtype))
            summed = jnp.einsum("bvw,bvwm->bwm", weights, jnp.broadcast_to(edge_m, weights.shape + m.shape[-1:]))
        else:
            edge_m = m if both else _gather(m, top.senders)  # f[B, E, M]
            weights = top.weights.astype(dtype)
            if aggregate == "max":
                present = (weights > 0)[..., None]
                best = jax.vmap(lambda v, r: jax.ops.segment_max(v, r, num_segments=nodes))(
                    jnp.where(present, edge_m, -jnp.inf), top.receivers)
                return jnp.where(jnp.isfinite(best), best, jnp.zeros((), dtype))
            summed = _scatter_sum(edge_m * weights[..., None], top.receivers, nodes)
        if aggregate == "sum":
            return summed
        degree = in_degree(top, dtype)[..., None]
        return jnp.where(degree > 0, summed / jnp.where(degree > 0, degree, jnp.ones((), dtype)), jnp.zeros((), dtype))

    def apply_fn(params, x, *, pattern=None, mask=None, **kwargs):
        x = node_features(name, x)
        if not isinstance(params, dict) or "message" not in params:
            raise ValueError(f"{name}: expected params with a 'message' entry, got {type(params).__name__}")
        top = topology(name, implementation, x, pattern, mask)
        aggregated = combine(messages(params, x, top), top, x.shape[1])
        if update_fn is None:
            return zero_padding(aggregated, top.keep)
        out = update_fn.apply(params["update"], jnp.concatenate([x, aggregated.astype(x.dtype)], axis=-1))
        return zero_padding(out, top.keep)

    spec = LayerSpec(
        name,
        dict(aggregate=aggregate, message_inputs=message_inputs, implementation=implementation),
        (message_fn.spec, None if update_fn is None else update_fn.spec),
    )
    return make_layer(name, init_fn, apply_fn, spec)
