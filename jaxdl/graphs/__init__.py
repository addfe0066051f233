"""``jaxdl.graphs``: graph data structures, spectral tools and the Weisfeiler-Lehman test.

* :mod:`~jaxdl.graphs.structures`: the edge-list ``Graph`` (jraph's layout,
  batches by concatenation, padding) and the dense batch ``DenseGraph``, with
  conversions between them, to the stax graph layers' inputs, to/from
  ``jraph.GraphsTuple`` and networkx;
* :mod:`~jaxdl.graphs.spectral`: Laplacians, the graph Fourier basis and
  transform, spectral filters (seeds: spectral graph theory);
* :mod:`~jaxdl.graphs.wl`: 1-WL colour refinement and the WL subtree kernel.

The layers that consume these live in :mod:`jaxdl.stax.gnn`::

    from jaxdl import graphs, stax
    import networkx as nx
    g = graphs.from_networkx(nx.cycle_graph(5), node_features=jnp.eye(5))
    x, edges = graphs.as_single_graph(g)
    init_fn, apply_fn, _ = stax.GCNConv(8, implementation="SPARSE")
    _, params = init_fn(jax.random.key(0), x.shape)
    h = apply_fn(params, x, pattern=edges)
"""

from jaxdl.graphs.spectral import (
    degrees,
    graph_convolution,
    graph_fourier_basis,
    graph_fourier_transform,
    inverse_graph_fourier_transform,
    laplacian,
    normalized_laplacian,
    scaled_laplacian,
    spectral_filter,
)
from jaxdl.graphs.structures import (
    DenseGraph,
    Graph,
    as_single_graph,
    batch,
    check_graph,
    edge_padding,
    from_dense,
    from_jraph,
    from_networkx,
    graph,
    graph_padding,
    node_padding,
    pad_graph,
    to_dense,
    to_edge_lists,
    to_jraph,
    to_networkx,
    unbatch,
)
from jaxdl.graphs.wl import wl_colorings, wl_subtree_kernel, wl_test

__all__ = [
    "DenseGraph", "Graph", "as_single_graph", "batch", "check_graph", "degrees", "edge_padding", "from_dense",
    "from_jraph", "from_networkx", "graph", "graph_convolution", "graph_fourier_basis", "graph_fourier_transform",
    "graph_padding", "inverse_graph_fourier_transform", "laplacian", "node_padding", "normalized_laplacian", "pad_graph",
    "scaled_laplacian", "spectral_filter", "to_dense", "to_edge_lists", "to_jraph", "to_networkx", "unbatch",
    "wl_colorings", "wl_subtree_kernel", "wl_test",
]  # fmt: skip
