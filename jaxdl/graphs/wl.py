"""The Weisfeiler-Lehman test (1-WL colour refinement) and the WL subtree kernel.

Seeds (geometric chapter): "Weisfeiler-Lehman test: graph isomorphism test:
iteratively aggregate node labels from neighbourhoods"; message-passing GNNs
(GCN, GAT) cannot distinguish graphs that this test cannot distinguish.

Colour refinement: every node starts with its label (all equal by default);
one iteration replaces a node's colour by an injective code of the pair (own
colour, multiset of its neighbours' colours). Two graphs are *distinguished*
when, at some iteration, their colour histograms differ (the codes are shared
between the graphs). Once the number of colours stops growing the partition is
stable and further iterations cannot distinguish anything.

The WL subtree kernel (Shervashidze et al. 2011) is the inner product of the
colour-count vectors of iterations ``0..h``: ``k(G, G') = sum_{i<=h} sum_c
#_c(G, i) #_c(G', i)``, i.e. the number of pairs of nodes whose depth-``i``
unfolding trees coincide.

Combinatorial, so plain Python/NumPy. A graph is a networkx graph, a
single-graph :class:`~jaxdl.graphs.Graph` or a square adjacency array; the
neighbours of ``w`` are the ``v`` with an edge ``v -> w`` (both directions for
an undirected graph).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from jaxdl.graphs.structures import Graph, check_graph


def _neighbour_lists(name: str, g) -> list[list[int]]:
    """In-neighbours of every node, nodes numbered ``0..N-1``."""
    if isinstance(g, Graph):
        check_graph(g, name)
        if np.size(g.n_node) != 1:
            raise ValueError(f"{name}: expected single graphs, got a batch of {np.size(g.n_node)}")
        n = int(np.asarray(g.n_node)[0])
        out = [[] for _ in range(n)]
        for s, r in zip(np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist()):
            out[r].append(s)
        return out
    if hasattr(g, "nodes") and hasattr(g, "edges") and hasattr(g, "is_directed"):  # networkx
        index = {node: i for i, node in enumerate(g.nodes)}
        out = [[] for _ in index]
        for u, v in g.edges():
            out[index[v]].append(index[u])
            if not g.is_directed() and u != v:
                out[index[u]].append(index[v])
        return out
    a = np.asarray(g)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name}: expected a networkx graph, a Graph or a square adjacency, got shape {a.shape}")
    return [np.flatnonzero(a[:, w]).tolist() for w in range(a.shape[0])]


def wl_colorings(graphs, iterations: int, labels=None) -> list[list[list[int]]]:
    """Colours of every node of every graph after ``0..iterations`` refinements,
    ``colors[i][g][v]``, with codes shared by all graphs (and distinct across
    iterations). ``labels``: optional initial labels, one sequence per graph."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"wl_colorings: expected iterations to be an int >= 0, got {iterations!r}")
    neighbours = [_neighbour_lists("wl_colorings", g) for g in graphs]
    if labels is None:
        labels = [[0] * len(nb) for nb in neighbours]
    if len(labels) != len(neighbours) or any(len(l) != len(nb) for l, nb in zip(labels, neighbours)):
        raise ValueError("wl_colorings: expected one label per node of every graph")
    codes: dict = {}

    def code(key):
        return codes.setdefault(key, len(codes))

    colors = [[[code((0, label)) for label in graph_labels] for graph_labels in labels]]
    for i in range(1, iterations + 1):
        previous = colors[-1]
        colors.append([
            [code((i, c[v], tuple(sorted(c[u] for u in nb[v])))) for v in range(len(nb))]
            for c, nb in zip(previous, neighbours)
        ])  # fmt: skip
    return colors


def wl_test(g1, g2, iterations: int | None = None, labels=None) -> bool:
    """1-WL colour refinement: ``True`` when the two graphs are *distinguished*
    (not isomorphic for sure), ``False`` when the test cannot tell them apart.

    ``iterations``: number of refinements (default: until the colouring is
    stable, at most ``N1 + N2``); ``labels``: optional initial node labels
    ``(labels1, labels2)``.
    """
    n_total = len(_neighbour_lists("wl_test", g1)) + len(_neighbour_lists("wl_test", g2))
    limit = n_total if iterations is None else iterations
    colors = wl_colorings([g1, g2], limit, labels)
    previous_count = -1
    for level in colors:
        if Counter(level[0]) != Counter(level[1]):
            return True
        count = len(set(level[0]) | set(level[1]))
        if iterations is None and count == previous_count:  # stable partition: nothing more to find
            return False
        previous_count = count
    return False


def wl_subtree_kernel(graphs, iterations: int, labels=None, normalize: bool = False) -> np.ndarray:
    """The WL subtree kernel matrix ``K[a, b] = sum_{i=0}^{h} sum_c #_c(G_a, i) #_c(G_b, i)``
    (``f64[n_graphs, n_graphs]``); ``normalize=True`` returns ``K[a,b] / sqrt(K[a,a] K[b,b])``."""
    graphs = list(graphs)
    colors = wl_colorings(graphs, iterations, labels)
    n_codes = 1 + max((c for level in colors for g in level for c in g), default=-1)
    features = np.zeros((len(graphs), n_codes))
    for level in colors:
        for a, graph_colors in enumerate(level):
            np.add.at(features[a], graph_colors, 1.0)
    kernel = features @ features.T
    if normalize:
        norm = np.sqrt(np.clip(np.diag(kernel), 1e-300, None))
        kernel = kernel / norm[:, None] / norm[None, :]
    return kernel
