"""jaxdl.graphs: data structures, conversions (jraph, networkx, dense), spectral tools, WL."""

import itertools

import jax
import networkx as nx
import numpy as np
import pytest

from jaxdl import graphs


def _nx_adjacency(g):
    return nx.to_numpy_array(g, nodelist=list(g.nodes))


def _random_graphs():
    yield nx.karate_club_graph()
    yield nx.disjoint_union_all([nx.cycle_graph(4), nx.path_graph(3), nx.empty_graph(2)])
    yield nx.gnp_random_graph(12, 0.15, seed=3)
    yield nx.empty_graph(5)


# --- structures -------------------------------------------------------------------------


def test_from_networkx_lists_undirected_edges_both_ways_and_to_dense_matches_networkx():
    g = nx.karate_club_graph()
    graph = graphs.from_networkx(g, node_features=np.eye(34, dtype=np.float32))
    assert graph.senders.size == 2 * g.number_of_edges()
    dense = graphs.to_dense(graph)
    np.testing.assert_array_equal(dense.adjacency[0], (_nx_adjacency(g) > 0).astype(np.float32))
    assert not dense.mask.any()


def test_batch_unbatch_round_trip_and_offsets():
    parts = [graphs.from_networkx(nx.path_graph(n), node_features=np.full((n, 2), n, np.float32)) for n in (3, 1, 4)]
    both = graphs.batch(parts)
    assert both.n_node.tolist() == [3, 1, 4] and int(both.senders.max()) == 7
    for original, back in zip(parts, graphs.unbatch(both)):
        np.testing.assert_array_equal(original.senders, back.senders)
        np.testing.assert_array_equal(original.receivers, back.receivers)
        np.testing.assert_array_equal(original.nodes, back.nodes)


def test_to_dense_pads_and_from_dense_inverts():
    parts = [graphs.from_networkx(nx.cycle_graph(4), node_features=np.ones((4, 1))),
             graphs.from_networkx(nx.star_graph(2), node_features=2 * np.ones((3, 1)))]
    dense = graphs.to_dense(graphs.batch(parts), max_nodes=5)
    assert dense.adjacency.shape == (2, 5, 5)
    np.testing.assert_array_equal(dense.mask, [[0, 0, 0, 0, 1], [0, 0, 0, 1, 1]])
    back = graphs.from_dense(dense)
    np.testing.assert_array_equal(graphs.to_dense(back, 5).adjacency, dense.adjacency)
    np.testing.assert_array_equal(back.n_node, [4, 3])


def test_to_edge_lists_matches_to_dense():
    batch = graphs.batch([graphs.from_networkx(nx.path_graph(3), node_features=np.ones((3, 1))),
                          graphs.from_networkx(nx.cycle_graph(5), node_features=np.ones((5, 1)))])
    nodes, pattern, mask = graphs.to_edge_lists(batch, max_edges=12)
    dense = graphs.to_dense(batch)
    rebuilt = np.zeros(dense.adjacency.shape)
    for b, e in itertools.product(range(2), range(12)):
        s, r = pattern[b, e]
        if s >= 0:
            rebuilt[b, s, r] += 1
    np.testing.assert_array_equal(rebuilt, dense.adjacency)
    np.testing.assert_array_equal(mask, dense.mask)
    np.testing.assert_array_equal(nodes, dense.nodes)


def test_pad_graph_follows_jraph_and_masks_mark_padding():
    jraph = pytest.importorskip("jraph")
    g = graphs.batch([graphs.from_networkx(nx.path_graph(3), node_features=np.ones((3, 2))),
                      graphs.from_networkx(nx.path_graph(2), node_features=np.ones((2, 2)))])
    padded = graphs.pad_graph(g, n_node=8, n_edge=10, n_graph=4)
    reference = jraph.pad_with_graphs(graphs.to_jraph(g), 8, 10, 4)
    for field in ("senders", "receivers", "n_node", "n_edge"):
        np.testing.assert_array_equal(getattr(padded, field), getattr(reference, field))
    np.testing.assert_array_equal(graphs.node_padding(padded, 2), ~np.asarray(jraph.get_node_padding_mask(reference)))
    np.testing.assert_array_equal(graphs.edge_padding(padded, 2), ~np.asarray(jraph.get_edge_padding_mask(reference)))
    np.testing.assert_array_equal(graphs.graph_padding(padded, 2), ~np.asarray(jraph.get_graph_padding_mask(reference)))


def test_jraph_round_trip_and_jraph_batching_agrees():
    jraph = pytest.importorskip("jraph")
    parts = [graphs.from_networkx(nx.cycle_graph(3), node_features=np.arange(6.0).reshape(3, 2)),
             graphs.from_networkx(nx.star_graph(3), node_features=np.ones((4, 2)))]
    ours = graphs.batch(parts)
    theirs = jraph.batch([graphs.to_jraph(p) for p in parts])
    assert isinstance(graphs.to_jraph(ours), jraph.GraphsTuple)
    back = graphs.from_jraph(theirs)
    for field in ("nodes", "senders", "receivers", "n_node", "n_edge"):
        np.testing.assert_array_equal(getattr(back, field), getattr(ours, field))
    np.testing.assert_array_equal(graphs.from_jraph(graphs.to_jraph(ours)).nodes, ours.nodes)


def test_to_networkx_round_trip_is_isomorphic():
    g = nx.petersen_graph()
    back = graphs.to_networkx(graphs.from_networkx(g)).to_undirected()
    assert nx.is_isomorphic(g, back)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: graphs.graph(np.ones((3, 1)), [0, 5], [1, 2]), "graph: expected senders in \\[0, 3\\)"),
        (lambda: graphs.graph(np.ones((3, 1)), [0, 1], [1]), "graph: expected senders and receivers of one length"),
        (lambda: graphs.Graph(np.ones((3, 1)), None, np.array([0]), np.array([1]), np.array([2]), np.array([1])),
         None),
        (lambda: graphs.to_dense(graphs.graph(np.ones((3, 1)), [0], [1]), max_nodes=2), "to_dense: max_nodes=2"),
        (lambda: graphs.pad_graph(graphs.graph(np.ones((3, 1)), [0], [1]), 3, 1), "pad_graph: expected n_node > 3"),
        (lambda: graphs.laplacian(np.ones((3, 4))), "laplacian: expected a square adjacency"),
        (lambda: graphs.graph_fourier_basis(np.triu(np.ones((3, 3)))), "graph_fourier_basis: expected a symmetric"),
        (lambda: graphs.from_jraph(object()), "from_jraph: expected a jraph.GraphsTuple"),
        (lambda: graphs.wl_test(np.ones((2, 3)), np.ones((2, 2))), "wl_test: expected a networkx graph"),
    ],
)
def test_bad_input_raises_naming_the_function(make, message):
    if message is None:  # a hand-built Graph whose node count disagrees with its features
        with pytest.raises(ValueError, match="batch: n_node sums to 2 but nodes has 3 rows"):
            graphs.batch([make()])
        return
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_edges_pointing_into_another_graph_of_the_batch_are_rejected():
    bad = graphs.Graph(np.ones((4, 1)), None, np.array([0, 2]), np.array([1, 1]), np.array([2, 2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="to_dense: an edge's receivers index points into another graph"):
        graphs.to_dense(bad)


# --- spectral ---------------------------------------------------------------------------


@pytest.mark.parametrize("g", list(_random_graphs()), ids=["karate", "union", "gnp", "empty"])
def test_laplacians_are_psd_with_one_zero_eigenvalue_per_component(g):
    a = _nx_adjacency(g)
    components = nx.number_connected_components(g)
    with jax.enable_x64(True):
        for lap in (graphs.laplacian(a), graphs.normalized_laplacian(a)):
            eigenvalues = np.linalg.eigvalsh(np.asarray(lap))
            assert eigenvalues.min() > -1e-10
            assert int(np.sum(np.abs(eigenvalues) < 1e-8)) == components
        assert np.linalg.eigvalsh(np.asarray(graphs.normalized_laplacian(a))).max() <= 2 + 1e-10


def test_laplacians_match_networkx_and_the_seeds_formula():
    g = nx.gnp_random_graph(10, 0.3, seed=1)
    g.add_node(10)  # an isolated node
    a = _nx_adjacency(g)
    with jax.enable_x64(True):
        np.testing.assert_allclose(graphs.laplacian(a), nx.laplacian_matrix(g).toarray(), atol=1e-12)
        np.testing.assert_allclose(graphs.normalized_laplacian(a), nx.normalized_laplacian_matrix(g).toarray(),
                                   atol=1e-12)
        x = np.random.default_rng(0).normal(size=11)
        seeds = np.array([sum(a[n, m] * (x[n] - x[m]) for m in range(11)) for n in range(11)])  # (Lx)_n
        np.testing.assert_allclose(graphs.laplacian(a) @ x, seeds, atol=1e-12)


def test_graph_fourier_transform_diagonalises_and_inverts():
    a = _nx_adjacency(nx.cycle_graph(8))
    with jax.enable_x64(True):
        lap = graphs.laplacian(a)
        eigenvalues, U = graphs.graph_fourier_basis(lap)
        # the cycle's Laplacian eigenvalues are 2 - 2 cos(2 pi k / n)
        np.testing.assert_allclose(eigenvalues, np.sort(2 - 2 * np.cos(2 * np.pi * np.arange(8) / 8)), atol=1e-12)
        x = np.random.default_rng(1).normal(size=(8, 3))
        x_hat = graphs.graph_fourier_transform(x, U)
        np.testing.assert_allclose(graphs.inverse_graph_fourier_transform(x_hat, U), x, atol=1e-12)
        np.testing.assert_allclose(graphs.graph_fourier_transform(lap @ x, U), eigenvalues[:, None] * x_hat, atol=1e-10)
        # a polynomial filter is the same polynomial of the eigenvalues (seeds' polynomial kernels)
        poly = lambda lam: 0.5 - 0.3 * lam + 0.1 * lam**2  # noqa: E731
        direct = 0.5 * x - 0.3 * (lap @ x) + 0.1 * (lap @ (lap @ x))
        np.testing.assert_allclose(graphs.spectral_filter(x, lap, poly), direct, atol=1e-10)
        # the seeds' convolution x * y = U((U^T x) ⊙ (U^T y)): commutative, and y = U 1 is its unit
        y = np.random.default_rng(2).normal(size=8)
        np.testing.assert_allclose(graphs.graph_convolution(x[:, 0], y, U), graphs.graph_convolution(y, x[:, 0], U),
                                   atol=1e-12)
        unit = np.asarray(U) @ np.ones(8)
        np.testing.assert_allclose(graphs.graph_convolution(x[:, 0], unit, U), x[:, 0], atol=1e-12)


def test_scaled_laplacian_maps_the_spectrum_into_minus_one_one():
    a = _nx_adjacency(nx.karate_club_graph())
    scaled = np.asarray(graphs.scaled_laplacian(graphs.normalized_laplacian(a)))
    eigenvalues = np.linalg.eigvalsh(scaled)
    assert eigenvalues.min() >= -1 - 1e-5 and eigenvalues.max() <= 1 + 1e-5


# --- Weisfeiler-Lehman ------------------------------------------------------------------


@pytest.mark.parametrize(
    "g1,g2",
    [
        (nx.path_graph(4), nx.star_graph(3)),
        (nx.cycle_graph(5), nx.path_graph(5)),
        (nx.complete_graph(4), nx.cycle_graph(4)),
        (nx.path_graph(3), nx.path_graph(4)),
        (nx.petersen_graph(), nx.circulant_graph(10, [1, 2])),
    ],
    ids=["path-star", "cycle-path", "K4-C4", "sizes", "petersen-circulant"],
)
def test_wl_distinguishes_non_isomorphic_pairs(g1, g2):
    assert graphs.wl_test(g1, g2)
    assert not graphs.wl_test(g1, g1.copy())


def test_wl_cannot_tell_a_six_cycle_from_two_triangles():
    six_cycle = nx.cycle_graph(6)
    triangles = nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    assert not nx.is_isomorphic(six_cycle, triangles)
    assert not graphs.wl_test(six_cycle, triangles)
    assert not graphs.wl_test(six_cycle, triangles, iterations=20)
    # ... nor two 3-regular graphs (the prism and K_{3,3}), but labels can break the tie
    assert not graphs.wl_test(nx.circular_ladder_graph(3), nx.complete_bipartite_graph(3, 3))
    labels = ([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
    assert graphs.wl_test(six_cycle, triangles, labels=labels)


def test_wl_accepts_graphs_and_adjacencies_alike():
    g1, g2 = nx.path_graph(4), nx.star_graph(3)
    assert graphs.wl_test(graphs.from_networkx(g1), _nx_adjacency(g2))
    assert not graphs.wl_test(graphs.from_networkx(g1), _nx_adjacency(nx.path_graph(4)))


def _unfolding_trees(g, depth):
    """Brute force: the canonical string of every node's depth-``depth`` unfolding tree."""
    trees = {v: "()" for v in g.nodes}
    levels = [dict(trees)]
    for _ in range(depth):
        trees = {v: "(" + trees[v] + "".join(sorted(trees[u] for u in g.neighbors(v))) + ")" for v in g.nodes}
        levels.append(dict(trees))
    return levels


def test_wl_subtree_kernel_counts_pairs_of_equal_unfolding_trees():
    family = [nx.path_graph(4), nx.star_graph(3), nx.cycle_graph(5), nx.complete_graph(3),
              nx.disjoint_union(nx.path_graph(2), nx.cycle_graph(3)), nx.gnp_random_graph(7, 0.4, seed=2)]
    depth = 3
    kernel = graphs.wl_subtree_kernel(family, depth)
    trees = [_unfolding_trees(g, depth) for g in family]
    brute = np.zeros((len(family), len(family)))
    for a, b in itertools.product(range(len(family)), repeat=2):
        for level in range(depth + 1):
            brute[a, b] += sum(t1 == t2 for t1 in trees[a][level].values() for t2 in trees[b][level].values())
    np.testing.assert_array_equal(kernel, brute)
    normalized = graphs.wl_subtree_kernel(family, depth, normalize=True)
    np.testing.assert_allclose(np.diag(normalized), 1.0)
    assert np.linalg.eigvalsh(kernel).min() > -1e-9  # a Gram matrix
