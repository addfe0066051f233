"""Offline graph and point-cloud data: the small real graphs networkx ships, synthetic
graph families and point clouds sampled from primitive shapes.

Everything here is built in code (no download), deterministically from a seed:

* :func:`karate_club`: Zachary's karate club (34 members, 78 friendships), labelled
  by the faction each member joined after the split (networkx's ``'club'``
  attribute: ``'Mr. Hi'`` = 0, the instructor's, node 0; ``'Officer'`` = 1, the
  president's, node 33); 17 members each;
* :func:`real_graph`: that and the other small real graphs networkx ships
  (``davis_southern_women`` with its two bipartite sides as labels,
  ``florentine_families``, ``les_miserables`` with its co-appearance weights);
* synthetic families: :func:`cycle`, :func:`path`, :func:`stochastic_block_model`
  (blocks of given sizes, edge ``{u, v}`` present with probability
  ``probs[block(u), block(v)]``) and :func:`wl_indistinguishable_pairs`
  (non-isomorphic pairs that 1-WL colour refinement, hence every message-passing
  GNN of the seeds' geometric chapter, cannot tell apart);
* :func:`point_cloud_shapes`: sets of points sampled uniformly (by area) from the
  surfaces of a sphere, a cube, a cylinder, a cone and a torus, for the seeds'
  Deep Sets / PointNet classification of point clouds.

Graphs are :class:`jaxdl.graphs.Graph` (undirected edges listed in both
directions), with node features (one-hot node identities by default, the
featureless set-up of Kipf & Welling's karate experiment). No seed formula lives
here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxdl.graphs.structures import Graph, from_networkx, graph

SHAPES = ("sphere", "cube", "cylinder", "cone", "torus")
TORUS_RADII = (0.7, 0.3)  # (R: centre to tube centre, r: tube radius)
REAL_GRAPHS = ("karate_club", "davis_southern_women", "florentine_families", "les_miserables")


class GraphData(NamedTuple):
    """A graph with node labels: ``graph`` (:class:`Graph`), ``labels`` ``i[N]`` (or
    None when the data set has none), ``label_names`` (the class of each label
    value), ``node_names`` (the original node keys) and ``name``."""

    graph: Graph
    labels: np.ndarray | None
    label_names: tuple
    node_names: tuple
    name: str


def _features(name: str, n: int, features) -> np.ndarray:
    if isinstance(features, str):
        if features == "identity":
            return np.eye(n, dtype=np.float32)
        if features == "constant":
            return np.ones((n, 1), np.float32)
        raise ValueError(f"{name}: expected features 'identity', 'constant' or an array, got {features!r}")
    values = np.asarray(features, np.float32)
    if values.ndim != 2 or values.shape[0] != n:
        raise ValueError(f"{name}: expected features of shape ({n}, F), got {values.shape}")
    return values


def _from_nx(name: str, nx_graph, features, weight: str | None = None) -> Graph:
    g = from_networkx(nx_graph, node_features=_features(name, nx_graph.number_of_nodes(), features))
    if weight is None:
        return g
    index = {node: i for i, node in enumerate(nx_graph.nodes)}
    lookup = {}
    for u, v, w in nx_graph.edges(data=weight, default=1.0):
        lookup[(index[u], index[v])] = lookup[(index[v], index[u])] = float(w)
    weights = np.array([lookup[(s, r)] for s, r in zip(np.asarray(g.senders), np.asarray(g.receivers))], np.float32)
    return g._replace(edges=weights)


def karate_club(features="identity") -> GraphData:
    """Zachary's karate club: 34 nodes, 78 undirected edges (156 directed), labels
    0 (``'Mr. Hi'``, the instructor's faction) and 1 (``'Officer'``), 17 each.
    ``features``: ``'identity'`` (one-hot, ``f[34, 34]``), ``'constant'`` or ``f[34, F]``."""
    import networkx as nx

    g = nx.karate_club_graph()
    label_names = ("Mr. Hi", "Officer")
    labels = np.array([label_names.index(g.nodes[n]["club"]) for n in g.nodes], np.int32)
    return GraphData(_from_nx("karate_club", g, features), labels, label_names, tuple(g.nodes), "karate_club")


def real_graph(name: str, features="identity") -> GraphData:
    """One of the small real graphs networkx ships (:data:`REAL_GRAPHS`):

    * ``karate_club``: see :func:`karate_club`;
    * ``davis_southern_women``: 18 women x 14 social events (bipartite, 89 edges);
      labels 0 = woman, 1 = event;
    * ``florentine_families``: 15 Renaissance families, 20 marriage ties; no labels;
    * ``les_miserables``: 77 characters, 254 co-appearance edges whose counts are
      the edge weights (``graph.edges``, ``f[E]``); no labels.
    """
    import networkx as nx

    if name == "karate_club":
        return karate_club(features)
    if name == "davis_southern_women":
        g = nx.davis_southern_women_graph()
        labels = np.array([g.nodes[n]["bipartite"] for n in g.nodes], np.int32)
        return GraphData(_from_nx(name, g, features), labels, ("woman", "event"), tuple(g.nodes), name)
    if name == "florentine_families":
        g = nx.florentine_families_graph()
        return GraphData(_from_nx(name, g, features), None, (), tuple(g.nodes), name)
    if name == "les_miserables":
        g = nx.les_miserables_graph()
        return GraphData(_from_nx(name, g, features, weight="weight"), None, (), tuple(g.nodes), name)
    raise ValueError(f"real_graph: expected one of {REAL_GRAPHS}, got {name!r}")


def _undirected(name: str, n: int, pairs, features) -> Graph:
    """A ``Graph`` on ``n`` nodes from undirected pairs ``(u, v)``, both directions listed."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    senders = np.concatenate([pairs[:, 0], pairs[:, 1]])
    receivers = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return graph(_features(name, n, features), senders, receivers)


def _check_size(name: str, label: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected {label} to be an int >= {minimum}, got {value!r}")
    return int(value)


def cycle(n: int, features="constant") -> Graph:
    """The cycle ``C_n`` (``n >= 3``): edges ``{i, i+1 mod n}``."""
    n = _check_size("cycle", "n", n, 3)
    return _undirected("cycle", n, [(i, (i + 1) % n) for i in range(n)], features)


def path(n: int, features="constant") -> Graph:
    """The path ``P_n`` (``n >= 1`` nodes, ``n - 1`` edges ``{i, i+1}``)."""
    n = _check_size("path", "n", n, 1)
    return _undirected("path", n, [(i, i + 1) for i in range(n - 1)], features)


def stochastic_block_model(sizes, probs, seed: int = 0, features="identity") -> GraphData:
    """A stochastic block model: blocks of ``sizes`` nodes (numbered block after
    block), each pair ``{u, v}``, ``u != v``, an edge independently with probability
    ``probs[block(u)][block(v)]`` (``probs`` symmetric, entries in ``[0, 1]``).
    ``labels`` are the blocks."""
    name = "stochastic_block_model"
    sizes = [_check_size(name, "every block size", s, 1) for s in np.atleast_1d(sizes).tolist()]
    probs = np.asarray(probs, np.float64)
    k = len(sizes)
    if probs.shape != (k, k):
        raise ValueError(f"{name}: expected probs of shape ({k}, {k}) for {k} blocks, got {probs.shape}")
    if not np.allclose(probs, probs.T) or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"{name}: expected symmetric probs with entries in [0, 1], got {probs.tolist()}")
    labels = np.repeat(np.arange(k), sizes).astype(np.int32)
    n = labels.size
    u, v = np.triu_indices(n, k=1)
    present = np.random.default_rng(seed).random(u.size) < probs[labels[u], labels[v]]
    g = _undirected(name, n, np.stack([u[present], v[present]], axis=1), features)
    return GraphData(g, labels, tuple(f"block {b}" for b in range(k)), tuple(range(n)), f"sbm{tuple(sizes)}")


def wl_indistinguishable_pairs(features="constant") -> dict:
    """Pairs of non-isomorphic graphs with the same 1-WL colour histograms at every
    iteration (so no GCN/GAT/message-passing network separates them), keyed by name:

    * ``'C6 vs 2xC3'``: a 6-cycle and two disjoint triangles (2-regular, 6 nodes);
    * ``'K33 vs prism'``: the complete bipartite ``K_{3,3}`` and the triangular prism
      (3-regular, 6 nodes; one is bipartite, the other has triangles);
    * ``'decalin vs bicyclopentyl'``: two hexagons sharing an edge and two pentagons
      joined by an edge (10 nodes, 11 edges, the classic chemistry example).
    """
    c6 = [(i, (i + 1) % 6) for i in range(6)]
    triangles = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]
    k33 = [(i, j) for i in range(3) for j in range(3, 6)]
    prism = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3), (1, 4), (2, 5)]
    decalin = [(i, i + 1) for i in range(9)] + [(9, 0), (0, 5)]  # a 10-ring with the chord {0, 5}
    bicyclopentyl = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (5, 6), (6, 7), (7, 8), (8, 9), (9, 5), (0, 5)]
    build = lambda n, pairs: _undirected("wl_indistinguishable_pairs", n, pairs, features)  # noqa: E731
    return {
        "C6 vs 2xC3": (build(6, c6), build(6, triangles)),
        "K33 vs prism": (build(6, k33), build(6, prism)),
        "decalin vs bicyclopentyl": (build(10, decalin), build(10, bicyclopentyl)),
    }


# --- point clouds -------------------------------------------------------------------------


def _sphere(rng, n):
    x = rng.standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cube(rng, n):
    """Surface of ``[-1, 1]^3``: a face uniformly (all have the same area), a point uniformly on it."""
    x = rng.uniform(-1.0, 1.0, (n, 3))
    axis = rng.integers(0, 3, n)
    x[np.arange(n), axis] = rng.choice([-1.0, 1.0], n)
    return x


def _cylinder(rng, n):
    """Lateral surface of radius 1, ``z`` in ``[-1, 1]`` (uniform angle and height is uniform by area)."""
    theta, z = rng.uniform(0.0, 2 * np.pi, n), rng.uniform(-1.0, 1.0, n)
    return np.stack([np.cos(theta), np.sin(theta), z], axis=1)


def _cone(rng, n):
    """Lateral surface, apex ``(0, 0, 1)``, base radius 1 at ``z = -1``: radius ``(1 - z) / 2``.
    The area at distance ``t`` from the apex grows like ``t``, so ``t = sqrt(u)``."""
    t, theta = np.sqrt(rng.uniform(0.0, 1.0, n)), rng.uniform(0.0, 2 * np.pi, n)
    return np.stack([t * np.cos(theta), t * np.sin(theta), 1.0 - 2.0 * t], axis=1)


def _torus(rng, n):
    """Torus with radii ``(R, r)``: the area element is ``r (R + r cos phi)``, so the tube
    angle ``phi`` is drawn by rejection against ``(R + r cos phi) / (R + r)``."""
    R, r = TORUS_RADII
    phi = np.empty(0)
    while phi.size < n:
        candidate = rng.uniform(0.0, 2 * np.pi, 2 * n)
        accept = rng.uniform(0.0, 1.0, 2 * n) < (R + r * np.cos(candidate)) / (R + r)
        phi = np.concatenate([phi, candidate[accept]])
    phi, theta = phi[:n], rng.uniform(0.0, 2 * np.pi, n)
    ring = R + r * np.cos(phi)
    return np.stack([ring * np.cos(theta), ring * np.sin(theta), r * np.sin(phi)], axis=1)


_SAMPLERS = {"sphere": _sphere, "cube": _cube, "cylinder": _cylinder, "cone": _cone, "torus": _torus}


def surface_distance(shape: str, x) -> np.ndarray:
    """The distance of each point ``x[..., 3]`` from the surface ``shape`` (for the
    cube, cylinder and cone: from the implicit surface the faces lie on, ``max|x_i| = 1``,
    ``x^2 + y^2 = 1``, ``sqrt(x^2 + y^2) = (1 - z) / 2``, up to scale)."""
    x = np.asarray(x, np.float64)
    radial = np.hypot(x[..., 0], x[..., 1])
    if shape == "sphere":
        return np.abs(np.linalg.norm(x, axis=-1) - 1.0)
    if shape == "cube":
        return np.abs(np.max(np.abs(x), axis=-1) - 1.0)
    if shape == "cylinder":
        return np.abs(radial - 1.0)
    if shape == "cone":
        return np.abs(radial - (1.0 - x[..., 2]) / 2.0) * 2.0 / np.sqrt(5.0)  # the cone's slant factor
    if shape == "torus":
        R, r = TORUS_RADII
        return np.abs(np.hypot(radial - R, x[..., 2]) - r)
    raise ValueError(f"surface_distance: expected a shape in {SHAPES}, got {shape!r}")


def point_cloud_shapes(n_per_class: int, n_points: int, seed: int = 0, noise: float = 0.0, *,
                       shapes=SHAPES, sort: bool = True):
    """Point clouds sampled from primitive surfaces: ``(x f32[n, n_points, 3], y i32[n])``
    with ``n = n_per_class * len(shapes)``, classes in ``shapes`` order, shuffled.

    Each cloud is ``n_points`` points drawn uniformly by area from the surface
    (:data:`SHAPES`; all fit in ``[-1, 1]^3``), plus isotropic Gaussian ``noise``
    (its standard deviation). ``sort=True`` lists each cloud's points by increasing ``z``:
    a fixed ordering that a model on the concatenated coordinates (an MLP) can use
    and a permutation-invariant model ignores. Deterministic given ``seed``.
    """
    name = "point_cloud_shapes"
    n_per_class = _check_size(name, "n_per_class", n_per_class, 1)
    n_points = _check_size(name, "n_points", n_points, 1)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"{name}: expected noise >= 0, got {noise!r}")
    shapes = tuple(shapes)
    unknown = [s for s in shapes if s not in _SAMPLERS]
    if unknown or not shapes:
        raise ValueError(f"{name}: expected shapes among {SHAPES}, got {shapes!r}")
    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for label, shape in enumerate(shapes):
        for _ in range(n_per_class):
            points = _SAMPLERS[shape](rng, n_points) + noise * rng.standard_normal((n_points, 3))
            if sort:
                points = points[np.argsort(points[:, 2], kind="stable")]
            clouds.append(points)
            labels.append(label)
    order = rng.permutation(len(labels))
    return np.asarray(clouds, np.float32)[order], np.asarray(labels, np.int32)[order]
