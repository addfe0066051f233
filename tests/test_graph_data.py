"""jaxdl.graphs.datasets: real graphs against their published sizes, SBM densities by
Monte Carlo, WL pairs against networkx isomorphism, point clouds on their surfaces."""

import networkx as nx
import numpy as np
import pytest

from jaxdl.graphs import datasets, to_networkx, wl_test


def _undirected_edges(g):
    pairs = {tuple(sorted(p)) for p in zip(np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist())}
    return pairs


def test_karate_club_sizes_and_factions():
    data = datasets.karate_club()
    g = data.graph
    assert int(g.n_node[0]) == 34 and g.nodes.shape == (34, 34)
    assert int(g.n_edge[0]) == 156 and len(_undirected_edges(g)) == 78  # Zachary (1977): 78 ties
    assert np.bincount(data.labels).tolist() == [17, 17]
    assert data.labels[0] == 0 and data.labels[33] == 1  # instructor and president lead the two factions
    assert data.label_names[data.labels[0]] == "Mr. Hi"
    degrees = np.bincount(np.asarray(g.receivers), minlength=34)
    assert degrees[33] == 17 and degrees[0] == 16  # the two hubs


@pytest.mark.parametrize("name,nodes,edges", [
    ("davis_southern_women", 32, 89), ("florentine_families", 15, 20), ("les_miserables", 77, 254)])
def test_real_graphs_sizes(name, nodes, edges):
    data = datasets.real_graph(name)
    assert int(data.graph.n_node[0]) == nodes and len(data.node_names) == nodes
    assert len(_undirected_edges(data.graph)) == edges
    if name == "davis_southern_women":
        assert np.bincount(data.labels).tolist() == [18, 14]
        # bipartite: every edge joins a woman and an event
        assert (data.labels[np.asarray(data.graph.senders)] != data.labels[np.asarray(data.graph.receivers)]).all()
    if name == "les_miserables":
        weights = np.asarray(data.graph.edges)
        assert weights.shape == (2 * edges,) and weights.min() >= 1 and weights.sum() / 2 == 820
    with pytest.raises(ValueError, match="^real_graph: expected one of"):
        datasets.real_graph("cora")


def test_cycles_and_paths_against_networkx():
    for n in (3, 7):
        assert nx.is_isomorphic(nx.Graph(to_networkx(datasets.cycle(n))), nx.cycle_graph(n))
        assert nx.is_isomorphic(nx.Graph(to_networkx(datasets.path(n))), nx.path_graph(n))
    assert int(datasets.path(1).n_edge[0]) == 0
    with pytest.raises(ValueError, match="^cycle: expected n"):
        datasets.cycle(2)


def test_sbm_densities_match_probabilities():
    sizes, probs = [60, 40], [[0.3, 0.05], [0.05, 0.5]]
    data = datasets.stochastic_block_model(sizes, probs, seed=1)
    pairs = np.array(sorted(_undirected_edges(data.graph)))
    blocks = data.labels[pairs]
    possible = {(0, 0): 60 * 59 / 2, (0, 1): 60 * 40, (1, 1): 40 * 39 / 2}
    sorted_blocks = np.sort(blocks, axis=1)
    for (a, b), count in possible.items():
        observed = np.sum((sorted_blocks[:, 0] == a) & (sorted_blocks[:, 1] == b)) / count
        p = probs[a][b]
        assert abs(observed - p) < 4 * np.sqrt(p * (1 - p) / count), (a, b, observed, p)
    again = datasets.stochastic_block_model(sizes, probs, seed=1)
    assert np.array_equal(np.asarray(again.graph.senders), np.asarray(data.graph.senders))
    with pytest.raises(ValueError, match="^stochastic_block_model: expected symmetric"):
        datasets.stochastic_block_model([2, 2], [[0.5, 0.1], [0.2, 0.5]])


def test_wl_pairs_are_indistinguishable_but_not_isomorphic():
    for name, (g1, g2) in datasets.wl_indistinguishable_pairs().items():
        a, b = nx.Graph(to_networkx(g1)), nx.Graph(to_networkx(g2))
        assert not nx.is_isomorphic(a, b), name
        assert sorted(d for _, d in a.degree()) == sorted(d for _, d in b.degree()), name
        assert not wl_test(g1, g2), name


def test_point_clouds_lie_on_their_surfaces():
    x, y = datasets.point_cloud_shapes(4, 50, seed=3)
    assert x.shape == (20, 50, 3) and x.dtype == np.float32 and np.bincount(y).tolist() == [4] * 5
    for label, shape in enumerate(datasets.SHAPES):
        clouds = x[y == label]
        assert datasets.surface_distance(shape, clouds).max() < 1e-5, shape
        for other in datasets.SHAPES:  # and not on the other surfaces
            if other != shape:
                assert datasets.surface_distance(other, clouds).max() > 0.05, (shape, other)
        assert (np.diff(clouds[..., 2], axis=1) >= 0).all()  # sorted by height
    assert np.abs(x).max() <= 1.0 + 1e-6
    noisy, noisy_labels = datasets.point_cloud_shapes(4, 50, seed=3, noise=0.05)
    sphere = noisy[noisy_labels == 0]
    assert 0.01 < datasets.surface_distance("sphere", sphere).mean() < 0.1


def test_point_clouds_uniform_by_area_and_deterministic():
    x, y = datasets.point_cloud_shapes(1, 40000, seed=0, shapes=("cone", "torus"))
    cone, torus = x[y == 0][0], x[y == 1][0]
    # cone: the area above height z is proportional to ((1 - z) / 2)^2, so P(z > 0) = 1/4
    assert abs(np.mean(cone[:, 2] > 0) - 0.25) < 0.01
    # torus: the outer half (x^2 + y^2 > R^2) holds (pi R + 2 r) / (2 pi R) of the area
    R, r = datasets.TORUS_RADII
    assert abs(np.mean(np.hypot(torus[:, 0], torus[:, 1]) > R) - (np.pi * R + 2 * r) / (2 * np.pi * R)) < 0.01
    a = datasets.point_cloud_shapes(3, 10, seed=5, noise=0.1)
    b = datasets.point_cloud_shapes(3, 10, seed=5, noise=0.1)
    c = datasets.point_cloud_shapes(3, 10, seed=6, noise=0.1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    with pytest.raises(ValueError, match="^point_cloud_shapes: expected shapes"):
        datasets.point_cloud_shapes(1, 5, shapes=("pyramid",))
