"""Graphs as data: the edge-list ``Graph`` (jraph's layout) and the dense batch ``DenseGraph``.

Two representations of a batch of graphs, both understood by the stax graph
layers of :mod:`jaxdl.stax.gnn`:

* :class:`Graph` (a NamedTuple with jraph's field names): the nodes of all
  graphs concatenated, ``nodes: f[total_nodes, F]``; directed edges as index
  arrays ``senders``/``receivers: i[total_edges]`` into that concatenation (so a
  batch is one big disconnected graph); ``n_node``/``n_edge: i[n_graphs]`` say
  which rows belong to which graph. An undirected edge is listed in both
  directions. ``O(V + E)`` memory: the representation for large sparse graphs.
* :class:`DenseGraph`: one row per graph, padded to ``N`` nodes,
  ``nodes: f[batch, N, F]``, ``adjacency: f[batch, N, N]`` and
  ``mask: bool[batch, N]`` (``True`` for padding nodes: jaxdl's mask
  convention, that of the layers' ``mask=`` and of ``MaskedArray``). ``O(N^2)``
  memory.

Conventions shared with ``stax.Aggregate``: ``adjacency[b, v, w]`` is the
weight of the edge ``v -> w`` (sender ``v``, receiver ``w``), so the seeds'
``a_nm = 1 if {v_n, v_m} in E`` is symmetric for undirected graphs. The stax
layers take node features ``x: f[batch, N, F]`` and ``pattern=`` either the
dense ``adjacency`` or an edge list ``i[batch, E, 2]`` of ``(sender,
receiver)`` pairs (``-1`` marks a padding edge); :func:`to_dense`,
:func:`to_edge_lists` and :func:`as_single_graph` produce those inputs.

Padding (fixed shapes for ``jit``) follows jraph: :func:`pad_graph` appends one
extra graph that owns the padding nodes and edges; :func:`node_padding`,
:func:`edge_padding` and :func:`graph_padding` then mark the padding (``True``)
as every mask in jaxdl does (jraph's ``get_*_padding_mask`` are their negation).

Conversion to and from ``jraph.GraphsTuple`` (:func:`to_jraph`,
:func:`from_jraph`) imports jraph only inside ``to_jraph``; jraph is not a
dependency of jaxdl. No seed formula lives here (the seeds' ``X`` and ``A =
(a_nm)`` are ``nodes`` and ``adjacency``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import jax.numpy as jnp


class Graph(NamedTuple):
    """A batch of graphs as concatenated edge lists (jraph's ``GraphsTuple`` layout).

    Fields: ``nodes`` ``f[total_nodes, ...]`` (or None), ``edges``
    ``f[total_edges, ...]`` (or None), ``senders``/``receivers``
    ``i[total_edges]``, ``n_node``/``n_edge`` ``i[n_graphs]``, ``globals``
    ``f[n_graphs, ...]`` (or None).
    """

    nodes: Any
    edges: Any
    senders: Any
    receivers: Any
    n_node: Any
    n_edge: Any
    globals: Any = None


class DenseGraph(NamedTuple):
    """A batch of graphs padded to ``N`` nodes: ``nodes`` ``f[batch, N, F]``,
    ``adjacency`` ``f[batch, N, N]`` (``[b, v, w]``: edge ``v -> w``) and ``mask``
    ``bool[batch, N]`` (``True`` for padding nodes)."""

    nodes: Any
    adjacency: Any
    mask: Any


def _int_array(name: str, field: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected {field} to be a 1-d integer array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name}: expected {field} to be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def check_graph(g: Graph, name: str = "Graph") -> Graph:
    """Validate ``g`` (concrete arrays): sizes agree and every edge stays inside its graph.

    Raises ``ValueError``/``TypeError`` starting with ``name``; returns ``g``.
    """
    if not isinstance(g, Graph):
        raise TypeError(f"{name}: expected a jaxdl.graphs.Graph, got {type(g).__name__}")
    senders = _int_array(name, "senders", g.senders)
    receivers = _int_array(name, "receivers", g.receivers)
    n_node = _int_array(name, "n_node", g.n_node)
    n_edge = _int_array(name, "n_edge", g.n_edge)
    if senders.shape != receivers.shape:
        raise ValueError(f"{name}: expected senders and receivers of one length, got {senders.shape} and {receivers.shape}")
    if n_node.shape != n_edge.shape:
        raise ValueError(f"{name}: expected n_node and n_edge of one length (graphs), got {n_node.shape} and {n_edge.shape}")
    if (n_node < 0).any() or (n_edge < 0).any():
        raise ValueError(f"{name}: expected non-negative n_node and n_edge, got {n_node} and {n_edge}")
    total_nodes, total_edges = int(n_node.sum()), int(n_edge.sum())
    if total_edges != senders.size:
        raise ValueError(f"{name}: n_edge sums to {total_edges} but there are {senders.size} edges")
    if g.nodes is not None and np.shape(g.nodes)[0] != total_nodes:
        raise ValueError(f"{name}: n_node sums to {total_nodes} but nodes has {np.shape(g.nodes)[0]} rows")
    if g.edges is not None and np.shape(g.edges)[0] != total_edges:
        raise ValueError(f"{name}: n_edge sums to {total_edges} but edges has {np.shape(g.edges)[0]} rows")
    graph_of_node = np.repeat(np.arange(n_node.size), n_node)
    graph_of_edge = np.repeat(np.arange(n_edge.size), n_edge)
    for field, index in (("senders", senders), ("receivers", receivers)):
        if index.size and (index.min() < 0 or index.max() >= total_nodes):
            raise ValueError(
                f"{name}: expected {field} in [0, {total_nodes}), got values in [{index.min()}, {index.max()}]"
            )
        if index.size and (graph_of_node[index] != graph_of_edge).any():
            raise ValueError(f"{name}: an edge's {field} index points into another graph of the batch")
    return g


def graph(nodes, senders, receivers, edges=None, globals=None, n_node: int | None = None) -> Graph:
    """One graph: ``nodes`` ``f[N, F]`` (or None with ``n_node=N``) and the
    directed edges ``senders[e] -> receivers[e]``."""
    senders, receivers = np.asarray(senders, np.int32).reshape(-1), np.asarray(receivers, np.int32).reshape(-1)
    if n_node is None:
        if nodes is None:
            raise ValueError("graph: expected nodes or n_node")
        n_node = np.shape(nodes)[0]
    glob = None if globals is None else jnp.asarray(globals)[None]
    g = Graph(
        None if nodes is None else jnp.asarray(nodes), None if edges is None else jnp.asarray(edges),
        senders, receivers, np.array([n_node], np.int32), np.array([senders.size], np.int32), glob,
    )  # fmt: skip
    return check_graph(g, "graph")


def batch(graphs) -> Graph:
    """Concatenate graphs (each itself possibly a batch) into one ``Graph``,
    shifting every edge index by the number of nodes before its graph."""
    graphs = list(graphs)
    if not graphs:
        raise ValueError("batch: expected at least one graph")
    for g in graphs:
        check_graph(g, "batch")
    offsets = np.cumsum([0] + [int(np.sum(g.n_node)) for g in graphs[:-1]])

    def cat(field):
        values = [getattr(g, field) for g in graphs]
        if all(v is None for v in values):
            return None
        if any(v is None for v in values):
            raise ValueError(f"batch: {field} is None in some graphs but not in others")
        return jnp.concatenate([jnp.asarray(v) for v in values])

    senders = np.concatenate([np.asarray(g.senders, np.int64) + o for g, o in zip(graphs, offsets)]).astype(np.int32)
    receivers = np.concatenate([np.asarray(g.receivers, np.int64) + o for g, o in zip(graphs, offsets)]).astype(np.int32)
    n_node = np.concatenate([np.asarray(g.n_node, np.int32) for g in graphs])
    n_edge = np.concatenate([np.asarray(g.n_edge, np.int32) for g in graphs])
    return Graph(cat("nodes"), cat("edges"), senders, receivers, n_node, n_edge, cat("globals"))


def unbatch(g: Graph) -> list[Graph]:
    """The graphs of a batch, each with its own node numbering (inverse of :func:`batch`)."""
    check_graph(g, "unbatch")
    n_node, n_edge = np.asarray(g.n_node, np.int64), np.asarray(g.n_edge, np.int64)
    node_start = np.concatenate([[0], np.cumsum(n_node)])
    edge_start = np.concatenate([[0], np.cumsum(n_edge)])
    out = []
    for i in range(n_node.size):
        nodes_slice, edges_slice = slice(node_start[i], node_start[i + 1]), slice(edge_start[i], edge_start[i + 1])
        out.append(Graph(
            None if g.nodes is None else g.nodes[nodes_slice],
            None if g.edges is None else g.edges[edges_slice],
            (np.asarray(g.senders)[edges_slice] - node_start[i]).astype(np.int32),
            (np.asarray(g.receivers)[edges_slice] - node_start[i]).astype(np.int32),
            np.array([n_node[i]], np.int32), np.array([n_edge[i]], np.int32),
            None if g.globals is None else g.globals[i : i + 1],
        ))  # fmt: skip
    return out


def pad_graph(g: Graph, n_node: int, n_edge: int, n_graph: int | None = None) -> Graph:
    """``g`` padded to exactly ``n_node`` nodes, ``n_edge`` edges and ``n_graph``
    graphs (default: one more than ``g`` has), as jraph pads: one padding graph
    holds all padding nodes (zero features) and its padding edges connect its
    first node to itself; further padding graphs are empty. Needs
    ``n_node > total nodes`` (the padding graph's node) and ``n_graph >= graphs + 1``."""
    check_graph(g, "pad_graph")
    have_nodes, have_edges, have_graphs = int(np.sum(g.n_node)), int(np.sum(g.n_edge)), int(np.size(g.n_node))
    n_graph = have_graphs + 1 if n_graph is None else n_graph
    if n_node <= have_nodes or n_edge < have_edges or n_graph <= have_graphs:
        raise ValueError(
            f"pad_graph: expected n_node > {have_nodes}, n_edge >= {have_edges} and n_graph > {have_graphs}, "
            f"got {n_node}, {n_edge} and {n_graph}"
        )
    pad_nodes, pad_edges, pad_graphs = n_node - have_nodes, n_edge - have_edges, n_graph - have_graphs

    def pad_rows(values, rows):
        if values is None:
            return None
        values = jnp.asarray(values)
        return jnp.concatenate([values, jnp.zeros((rows,) + values.shape[1:], values.dtype)])

    fill = np.full(pad_edges, have_nodes, np.int32)
    return Graph(
        pad_rows(g.nodes, pad_nodes), pad_rows(g.edges, pad_edges),
        np.concatenate([np.asarray(g.senders, np.int32), fill]),
        np.concatenate([np.asarray(g.receivers, np.int32), fill]),
        np.concatenate([np.asarray(g.n_node, np.int32), [pad_nodes], np.zeros(pad_graphs - 1, np.int32)]).astype(np.int32),
        np.concatenate([np.asarray(g.n_edge, np.int32), [pad_edges], np.zeros(pad_graphs - 1, np.int32)]).astype(np.int32),
        pad_rows(g.globals, pad_graphs),
    )  # fmt: skip


def graph_padding(g: Graph, n_real_graphs: int) -> np.ndarray:
    """``bool[n_graphs]``: ``True`` for the padding graphs, those after the first
    ``n_real_graphs`` (the ones :func:`pad_graph` added)."""
    return np.arange(np.size(g.n_node)) >= n_real_graphs


def node_padding(g: Graph, n_real_graphs: int) -> np.ndarray:
    """``bool[total_nodes]``: ``True`` for the nodes of the padding graphs."""
    return np.repeat(graph_padding(g, n_real_graphs), np.asarray(g.n_node))


def edge_padding(g: Graph, n_real_graphs: int) -> np.ndarray:
    """``bool[total_edges]``: ``True`` for the edges of the padding graphs."""
    return np.repeat(graph_padding(g, n_real_graphs), np.asarray(g.n_edge))


def _local_indices(g: Graph):
    """Per edge: its graph, and sender/receiver indices local to that graph."""
    n_node, n_edge = np.asarray(g.n_node, np.int64), np.asarray(g.n_edge, np.int64)
    node_start = np.concatenate([[0], np.cumsum(n_node)])[:-1]
    graph_of_edge = np.repeat(np.arange(n_edge.size), n_edge)
    start = node_start[graph_of_edge]
    return graph_of_edge, np.asarray(g.senders, np.int64) - start, np.asarray(g.receivers, np.int64) - start


def _padded_nodes(g: Graph, max_nodes: int):
    """``nodes`` regrouped as ``f[n_graphs, max_nodes, F]`` and the padding mask."""
    n_node = np.asarray(g.n_node, np.int64)
    graph_of_node = np.repeat(np.arange(n_node.size), n_node)
    local = np.arange(graph_of_node.size) - np.concatenate([[0], np.cumsum(n_node)])[:-1][graph_of_node]
    mask = np.zeros((n_node.size, max_nodes), bool)
    mask[graph_of_node, local] = True
    nodes = None
    if g.nodes is not None:
        values = jnp.asarray(g.nodes)
        nodes = jnp.zeros((n_node.size, max_nodes) + values.shape[1:], values.dtype).at[graph_of_node, local].set(values)
    return nodes, jnp.asarray(~mask)


def _max_nodes(name: str, g: Graph, max_nodes: int | None) -> int:
    largest = int(np.max(g.n_node, initial=0))
    if max_nodes is None:
        return largest
    if max_nodes < largest:
        raise ValueError(f"{name}: max_nodes={max_nodes} is smaller than the largest graph ({largest} nodes)")
    return max_nodes


def to_dense(g: Graph, max_nodes: int | None = None, weights=None) -> DenseGraph:
    """The dense batch of ``g``: one row per graph, padded to ``max_nodes``
    (default: the largest graph). ``adjacency[b, v, w]`` sums the ``weights``
    (default 1) of the edges ``v -> w`` of graph ``b``."""
    check_graph(g, "to_dense")
    max_nodes = _max_nodes("to_dense", g, max_nodes)
    graph_of_edge, senders, receivers = _local_indices(g)
    values = jnp.ones(graph_of_edge.size) if weights is None else jnp.asarray(weights)
    if values.shape != (graph_of_edge.size,):
        raise ValueError(f"to_dense: expected weights of shape ({graph_of_edge.size},), got {values.shape}")
    dtype = values.dtype if weights is not None else (jnp.asarray(g.nodes).dtype if g.nodes is not None else jnp.float32)
    adjacency = jnp.zeros((np.size(g.n_node), max_nodes, max_nodes), dtype).at[graph_of_edge, senders, receivers].add(
        values.astype(dtype))
    nodes, mask = _padded_nodes(g, max_nodes)
    return DenseGraph(nodes, adjacency, mask)


def from_dense(d: DenseGraph) -> Graph:
    """The edge-list ``Graph`` of a dense batch (concrete arrays): the real nodes
    of each row, one edge per nonzero adjacency entry, its weight in ``edges``
    (``f[total_edges]``)."""
    adjacency, mask = np.asarray(d.adjacency), ~np.asarray(d.mask, bool)  # mask: real nodes
    if adjacency.ndim != 3 or adjacency.shape[1] != adjacency.shape[2]:
        raise ValueError(f"from_dense: expected adjacency of shape (batch, N, N), got {adjacency.shape}")
    if mask.shape != adjacency.shape[:2]:
        raise ValueError(f"from_dense: expected mask of shape {adjacency.shape[:2]}, got {mask.shape}")
    if (adjacency[~mask].any()) or (np.swapaxes(adjacency, 1, 2)[~mask].any()):
        raise ValueError("from_dense: a padding node (mask True) has edges")
    parts = []
    for b in range(adjacency.shape[0]):
        real = np.flatnonzero(mask[b])
        if (real != np.arange(real.size)).any():
            raise ValueError("from_dense: expected the real nodes of each graph first (mask False, then True)")
        sub = adjacency[b][np.ix_(real, real)]
        senders, receivers = np.nonzero(sub)
        nodes = None if d.nodes is None else jnp.asarray(d.nodes)[b, : real.size]
        parts.append(graph(nodes, senders, receivers, edges=jnp.asarray(sub[senders, receivers]), n_node=real.size))
    return batch(parts)


def to_edge_lists(g: Graph, max_nodes: int | None = None, max_edges: int | None = None):
    """Layer inputs for ``implementation='SPARSE'`` with one row per graph:
    ``(nodes f[n_graphs, N, F], pattern i[n_graphs, E, 2], mask bool[n_graphs, N])``,
    local ``(sender, receiver)`` pairs padded with ``-1``, ``mask`` ``True`` for padding nodes."""
    check_graph(g, "to_edge_lists")
    max_nodes = _max_nodes("to_edge_lists", g, max_nodes)
    largest = int(np.max(g.n_edge, initial=0))
    max_edges = largest if max_edges is None else max_edges
    if max_edges < largest:
        raise ValueError(f"to_edge_lists: max_edges={max_edges} is smaller than the largest graph ({largest} edges)")
    graph_of_edge, senders, receivers = _local_indices(g)
    n_edge = np.asarray(g.n_edge, np.int64)
    slot = np.arange(graph_of_edge.size) - np.concatenate([[0], np.cumsum(n_edge)])[:-1][graph_of_edge]
    pattern = np.full((n_edge.size, max_edges, 2), -1, np.int32)
    pattern[graph_of_edge, slot, 0], pattern[graph_of_edge, slot, 1] = senders, receivers
    nodes, mask = _padded_nodes(g, max_nodes)
    return nodes, jnp.asarray(pattern), mask


def as_single_graph(g: Graph):
    """Layer inputs for ``implementation='SPARSE'`` treating the whole batch as one
    disconnected graph: ``(nodes[None] f[1, total_nodes, F], pattern i[1, total_edges, 2])``.
    No padding, ``O(V + E)``: the form for large graphs."""
    if g.nodes is None:
        raise ValueError("as_single_graph: expected node features, got nodes=None")
    pattern = jnp.stack([jnp.asarray(g.senders, jnp.int32), jnp.asarray(g.receivers, jnp.int32)], axis=-1)
    return jnp.asarray(g.nodes)[None], pattern[None]


def to_jraph(g: Graph):
    """``g`` as a ``jraph.GraphsTuple`` (imports jraph, an optional dependency)."""
    try:
        import jraph
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("to_jraph: needs jraph (pip install jraph)") from error
    return jraph.GraphsTuple(
        nodes=g.nodes, edges=g.edges, senders=jnp.asarray(g.senders), receivers=jnp.asarray(g.receivers),
        n_node=jnp.asarray(g.n_node), n_edge=jnp.asarray(g.n_edge), globals=g.globals,
    )  # fmt: skip


def from_jraph(graphs_tuple) -> Graph:
    """A ``Graph`` from a ``jraph.GraphsTuple`` (or anything with its seven fields;
    jraph itself is not imported)."""
    fields = Graph._fields
    missing = [f for f in fields if not hasattr(graphs_tuple, f)]
    if missing:
        raise TypeError(f"from_jraph: expected a jraph.GraphsTuple, got {type(graphs_tuple).__name__} without {missing}")
    return Graph(*(getattr(graphs_tuple, f) for f in fields))


def from_networkx(nx_graph, node_features=None, feature_key: str | None = None) -> Graph:
    """One ``Graph`` from a networkx graph, nodes numbered in ``nx_graph.nodes``
    order; an undirected edge becomes two directed ones, a self-loop one.

    Node features: ``node_features`` ``f[N, F]``, else the node attribute
    ``feature_key``, else None (``n_node`` still set).
    """
    index = {node: i for i, node in enumerate(nx_graph.nodes)}
    senders, receivers = [], []
    for u, v in nx_graph.edges():
        senders.append(index[u])
        receivers.append(index[v])
        if not nx_graph.is_directed() and u != v:
            senders.append(index[v])
            receivers.append(index[u])
    if node_features is None and feature_key is not None:
        node_features = np.asarray([nx_graph.nodes[n][feature_key] for n in nx_graph.nodes], np.float32)
        if node_features.ndim == 1:
            node_features = node_features[:, None]
    return graph(node_features, senders, receivers, n_node=len(index))


def to_networkx(g: Graph):
    """A ``networkx.DiGraph`` of a single-graph ``Graph`` (nodes ``0..N-1``,
    node attribute ``"x"`` with the features when present)."""
    import networkx as nx

    check_graph(g, "to_networkx")
    if np.size(g.n_node) != 1:
        raise ValueError(f"to_networkx: expected a single graph, got a batch of {np.size(g.n_node)}")
    out = nx.DiGraph()
    n = int(np.asarray(g.n_node)[0])
    for i in range(n):
        out.add_node(i, **({} if g.nodes is None else {"x": np.asarray(g.nodes[i])}))
    out.add_edges_from(zip(np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist()))
    return out
