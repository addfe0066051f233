"""Graph layers (jaxdl.stax.gnn): formulas against NumPy references, dense == sparse,
permutation equivariance, jraph as a peer, isolated nodes, padding masks, bad input, kernels."""

import math

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from jaxdl import graphs, stax

B, N, F = 2, 7, 3


def _random_graph_batch(seed=0, p=0.35):
    """Undirected graphs (node 0 of sample 0 isolated), as a dense adjacency and a padded edge list."""
    rng = np.random.default_rng(seed)
    A = np.triu(rng.random((B, N, N)) < p, 1).astype(np.float32)
    A = A + np.swapaxes(A, 1, 2)
    A[0, 0, :] = A[0, :, 0] = 0
    edges = [np.argwhere(a > 0) for a in A]
    pattern = np.full((B, max(map(len, edges)) + 2, 2), -1, np.int32)  # padding pairs at the end
    for b, e in enumerate(edges):
        pattern[b, : len(e)] = e
    x = rng.normal(size=(B, N, F)).astype(np.float32)
    return x, A, pattern


def _permute(perm, x, A, pattern):
    inverse = np.argsort(perm)
    new_pattern = np.where(pattern >= 0, inverse[np.maximum(pattern, 0)], -1)
    return x[:, perm], A[:, perm][:, :, perm], new_pattern


def _layers(implementation):
    return {
        "GCNConv": stax.GCNConv(4, 1.3, 0.2, implementation=implementation),
        "GATConv_concat": stax.GATConv(2, num_heads=3, b_std=0.1, implementation=implementation),
        "GATConv_mean": stax.GATConv(2, num_heads=2, concat_heads=False, implementation=implementation),
        "ChebConv": stax.ChebConv(4, K=3, b_std=0.1, implementation=implementation),
        "MessagePassing_sum": stax.MessagePassing(
            stax.serial(stax.Dense(5), stax.Relu()), "sum", stax.Dense(4), implementation=implementation),
        "MessagePassing_mean_pairs": stax.MessagePassing(
            stax.Dense(4), "mean", None, "sender_receiver", implementation=implementation),
        "MessagePassing_max": stax.MessagePassing(
            stax.Dense(4), "max", stax.serial(stax.Dense(4), stax.Tanh()), implementation=implementation),
    }  # fmt: skip


NAMES = list(_layers("DENSE"))
# The per-layer property tests run every variant under -m slow; the default run keeps one of each layer.
_SLOW_VARIANTS = {"GATConv_mean", "MessagePassing_sum"}
CASES = [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_VARIANTS else n for n in NAMES]


def _run(name, implementation, x, A, pattern, params=None, **kwargs):
    layer = _layers(implementation)[name]
    if params is None:
        _, params = layer.init(jax.random.key(1), (-1, N, F))
    graph = A if implementation == "DENSE" else pattern
    return np.asarray(layer.apply(params, jnp.asarray(x), pattern=jnp.asarray(graph), **kwargs)), params


@pytest.mark.parametrize("name", CASES)
def test_dense_equals_sparse(name):
    x, A, pattern = _random_graph_batch()
    dense, params = _run(name, "DENSE", x, A, pattern)
    sparse, _ = _run(name, "SPARSE", x, A, pattern, params)
    np.testing.assert_allclose(dense, sparse, rtol=1e-5, atol=1e-5)
    assert np.isfinite(dense).all()


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
@pytest.mark.parametrize("name", CASES)
def test_node_outputs_are_permutation_equivariant(name, implementation):
    x, A, pattern = _random_graph_batch(1)
    out, params = _run(name, implementation, x, A, pattern)
    perm = np.random.default_rng(5).permutation(N)
    permuted, _ = _run(name, implementation, *_permute(perm, x, A, pattern), params)
    np.testing.assert_allclose(permuted, out[:, perm], rtol=1e-5, atol=1e-5)


def _gcn_reference(x, A, W, b, W_std, b_std):
    """The seeds' A_bar = D^-1/2 (A + I) D^-1/2, d_m = 1 + sum_n a_nm, out = A_bar X W + b."""
    out = []
    for xb, ab in zip(x.astype(np.float64), A.astype(np.float64)):
        d = 1 + ab.sum(axis=0)
        a_bar = np.diag(d**-0.5) @ (ab + np.eye(len(ab))) @ np.diag(d**-0.5)
        out.append(a_bar.T @ xb @ W * W_std / math.sqrt(W.shape[0]) + b_std * b)
    return np.stack(out)


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_gcn_equals_the_normalised_adjacency_formula(implementation):
    x, A, pattern = _random_graph_batch(2)
    out, params = _run("GCNConv", implementation, x, A, pattern)
    expected = _gcn_reference(x, A, np.asarray(params["W"]), np.asarray(params["b"]), 1.3, 0.2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_gcn_matches_jraph_graph_convolution():
    jraph = pytest.importorskip("jraph")
    g = graphs.batch([graphs.from_networkx(nx.karate_club_graph(), node_features=np.eye(34, dtype=np.float32)[:, :5]),
                      graphs.from_networkx(nx.path_graph(4), node_features=np.ones((4, 5), np.float32))])
    layer = stax.GCNConv(3, implementation="SPARSE")
    _, params = layer.init(jax.random.key(0), (-1, 38, 5))
    x, edges = graphs.as_single_graph(g)
    ours = layer.apply(params, x, pattern=edges)[0]
    W = params["W"] / math.sqrt(5)
    theirs = jraph.GraphConvolution(lambda nodes: nodes @ W, add_self_edges=True)(graphs.to_jraph(g)).nodes
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_gat_equals_the_attention_formula_node_by_node():
    x, A, pattern = _random_graph_batch(3)
    out, params = _run("GATConv_concat", "DENSE", x, A, pattern)
    W, a_src, a_dst, b = (np.asarray(params[k], np.float64) for k in ("W", "a_src", "a_dst", "b"))
    heads, width = a_src.shape
    expected = np.zeros_like(out, dtype=np.float64)
    for n in range(B):
        h = (x[n] @ W / math.sqrt(F)).reshape(N, heads, width)
        for w in range(N):
            neighbours = [v for v in range(N) if A[n, v, w] > 0] + [w]
            for k in range(heads):
                e = np.array([a_dst[k] @ h[w, k] + a_src[k] @ h[v, k] for v in neighbours]) / math.sqrt(width)
                e = np.where(e >= 0, e, 0.2 * e)  # LeakyReLU
                alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
                expected[n, w, k * width : (k + 1) * width] = sum(a * h[v, k] for a, v in zip(alpha, neighbours))
    np.testing.assert_allclose(out, expected + 0.1 * b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_chebconv_equals_the_spectral_filter_from_an_eigendecomposition(implementation):
    x, A, pattern = _random_graph_batch(4)
    out, params = _run("ChebConv", implementation, x, A, pattern)
    W, b = np.asarray(params["W"], np.float64), np.asarray(params["b"], np.float64)
    expected = []
    for xb, ab in zip(x.astype(np.float64), A.astype(np.float64)):
        lap = np.asarray(graphs.normalized_laplacian(ab), np.float64)
        eigenvalues, U = np.linalg.eigh(lap)
        scaled = 2 * eigenvalues / 2.0 - 1
        total = 0
        for k in range(W.shape[0]):
            T_k = np.polynomial.chebyshev.chebval(scaled, np.eye(W.shape[0])[k])  # T_k on the eigenvalues
            total = total + U @ np.diag(T_k) @ U.T @ xb @ W[k]
        expected.append(total / math.sqrt(F) + 0.1 * b)
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-4, atol=1e-5)


def test_message_passing_equals_explicit_neighbourhood_loops():
    x, A, pattern = _random_graph_batch(5)
    for aggregate, reduce in (("sum", np.sum), ("mean", np.mean), ("max", np.max)):
        layer = stax.MessagePassing(stax.Dense(4), aggregate, stax.Dense(2))
        _, params = layer.init(jax.random.key(2), (-1, N, F))
        out = layer.apply(params, jnp.asarray(x), pattern=jnp.asarray(A))
        psi = lambda z: z @ np.asarray(params["message"]["W"]) / math.sqrt(F)  # noqa: E731
        expected = np.zeros((B, N, 2))
        for n in range(B):
            for w in range(N):
                neighbours = [v for v in range(N) if A[n, v, w] > 0]
                agg = reduce(np.stack([psi(x[n, v]) for v in neighbours]), axis=0) if neighbours else np.zeros(4)
                update_in = np.concatenate([x[n, w], agg])
                expected[n, w] = update_in @ np.asarray(params["update"]["W"]) / math.sqrt(F + 4)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=aggregate)


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
@pytest.mark.parametrize("name", [n if n == "GCNConv" else pytest.param(n, marks=pytest.mark.slow) for n in NAMES])
def test_isolated_nodes_and_empty_graphs_are_finite_with_finite_gradients(name, implementation):
    layer = _layers(implementation)[name]
    _, params = layer.init(jax.random.key(0), (-1, N, F))
    x = jax.random.normal(jax.random.key(1), (B, N, F))
    empty = jnp.zeros((B, N, N)) if implementation == "DENSE" else jnp.full((B, 3, 2), -1, jnp.int32)
    for graph in (None, empty):
        out = layer.apply(params, x, pattern=graph)
        assert np.isfinite(np.asarray(out)).all()
        grads = jax.grad(lambda p, z: jnp.sum(jnp.tanh(layer.apply(p, z, pattern=graph))), (0, 1))(params, x)
        assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(grads))
    zero_nodes = layer.apply(params, jnp.zeros((B, 0, F)), pattern=None)
    assert zero_nodes.shape[:2] == (B, 0)


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
@pytest.mark.parametrize("name", CASES)
def test_padding_nodes_never_change_real_outputs(name, implementation):
    x, A, pattern = _random_graph_batch(6)
    small, params = _run(name, implementation, x, A, pattern)
    # two padding nodes with garbage features, wired to real nodes in both directions
    pad = 2
    x_big = np.concatenate([x, np.full((B, pad, F), 50.0, np.float32)], axis=1)
    A_big = np.zeros((B, N + pad, N + pad), np.float32)
    A_big[:, :N, :N] = A
    A_big[:, N:, :3] = A_big[:, :3, N:] = 1
    extra = np.array([[N, 0], [0, N], [N + 1, 2], [2, N + 1]], np.int32)
    pattern_big = np.concatenate([pattern, np.broadcast_to(extra, (B, 4, 2))], axis=1)
    mask = np.zeros((B, N + pad), bool)
    mask[:, N:] = True
    layer = _layers(implementation)[name]
    graph = A_big if implementation == "DENSE" else pattern_big
    big = np.asarray(layer.apply(params, jnp.asarray(x_big), pattern=jnp.asarray(graph), mask=jnp.asarray(mask)))
    np.testing.assert_allclose(big[:, :N], small, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(big[:, N:], 0.0)


@pytest.mark.parametrize("name", CASES)
def test_bad_graphs_raise_naming_the_layer(name):
    layer_name = name.split("_")[0]
    x, A, pattern = _random_graph_batch()
    dense, sparse = _layers("DENSE")[name], _layers("SPARSE")[name]
    _, params = dense.init(jax.random.key(0), (-1, N, F))
    x = jnp.asarray(x)
    bad = pattern.copy()
    bad[0, 0, 1] = N  # an edge index out of range
    with pytest.raises(ValueError, match=f"^{layer_name}: expected edge indices < {N}"):
        sparse.apply(params, x, pattern=jnp.asarray(bad))
    with pytest.raises(TypeError, match=f"^{layer_name}: expected an integer edge list"):
        sparse.apply(params, x, pattern=jnp.asarray(pattern, jnp.float32))
    with pytest.raises(ValueError, match=f"^{layer_name}: expected an edge list of shape"):
        sparse.apply(params, x, pattern=jnp.asarray(pattern[..., :1]))
    with pytest.raises(ValueError, match=f"^{layer_name}: expected a square adjacency"):
        dense.apply(params, x, pattern=jnp.asarray(A[:, :, :-1]))
    with pytest.raises(ValueError, match=f"^{layer_name}: expected an adjacency of shape"):
        dense.apply(params, x[:, :-1], pattern=jnp.asarray(A))
    with pytest.raises(ValueError, match=f"^{layer_name}: expected mask of shape"):
        dense.apply(params, x, pattern=jnp.asarray(A), mask=jnp.zeros((B, N + 1), bool))
    with pytest.raises(ValueError, match=f"^{layer_name}: expected an input of rank 3"):
        dense.apply(params, x[0], pattern=jnp.asarray(A))
    with pytest.raises(ValueError, match=f"^({layer_name}|Dense): expected"):
        dense.apply(params, jnp.concatenate([x, x], -1), pattern=jnp.asarray(A))


def test_bad_construction_raises_naming_the_layer():
    with pytest.raises(ValueError, match="^GCNConv: expected implementation"):
        stax.GCNConv(3, implementation="CSR")
    with pytest.raises(ValueError, match="^ChebConv: expected K"):
        stax.ChebConv(3, K=-1)
    with pytest.raises(ValueError, match="^GATConv: expected num_heads"):
        stax.GATConv(3, num_heads=0)
    with pytest.raises(ValueError, match="^MessagePassing: expected aggregate"):
        stax.MessagePassing(stax.Dense(2), aggregate="median")
    with pytest.raises(TypeError, match="^MessagePassing: expected message_fn to be a stax layer"):
        stax.MessagePassing(lambda x: x)
    with pytest.raises(ValueError, match="^MessagePassing: expected a stateless update_fn"):
        stax.MessagePassing(stax.Dense(2), update_fn=stax.BatchNorm())


@pytest.mark.slow
def test_layers_compose_with_serial_and_jit_and_batch_through_graph_helpers():
    parts = [graphs.from_networkx(nx.cycle_graph(5), node_features=np.ones((5, 2), np.float32)),
             graphs.from_networkx(nx.star_graph(3), node_features=np.ones((4, 2), np.float32))]
    g = graphs.batch(parts)
    model = stax.serial(stax.GCNConv(8, b_std=0.1), stax.Relu(), stax.GATConv(4, 2), stax.Relu(), stax.ChebConv(3, 2))
    sparse = stax.serial(stax.GCNConv(8, b_std=0.1, implementation="SPARSE"), stax.Relu(),
                         stax.GATConv(4, 2, implementation="SPARSE"), stax.Relu(),
                         stax.ChebConv(3, 2, implementation="SPARSE"))
    _, params = model.init(jax.random.key(0), (-1, 5, 2))
    dense = graphs.to_dense(g)
    per_graph = jax.jit(lambda p, x, a, m: model.apply(p, x, pattern=a, mask=m))(
        params, dense.nodes, dense.adjacency, dense.mask)
    x, edges = graphs.as_single_graph(g)
    whole = sparse.apply(params, x, pattern=edges)[0]
    np.testing.assert_allclose(per_graph[0, :5], whole[:5], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(per_graph[1, :4], whole[5:], rtol=1e-5, atol=1e-5)
    nodes, pattern, mask = graphs.to_edge_lists(g)
    rows = sparse.apply(params, nodes, pattern=pattern, mask=mask)
    np.testing.assert_allclose(rows, per_graph, rtol=1e-5, atol=1e-5)


# --- infinite-width kernels -------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_gcn_kernel_equals_the_closed_form(implementation):
    x, A, pattern = _random_graph_batch(7)
    layer = stax.GCNConv(4, 1.3, 0.2, implementation=implementation)
    graph = A if implementation == "DENSE" else pattern
    with jax.enable_x64(True):
        k = layer.kernel(jnp.asarray(x, jnp.float64), None, ("nngp", "ntk"), pattern=jnp.asarray(graph))
    # nngp[i, j, v, w] = sum_{a, c} A_bar_i[a, v] (1.3^2 x_i[a] . x_j[c] / F) A_bar_j[c, w] + 0.2^2
    bars = []
    for ab in A.astype(np.float64):
        d = 1 + ab.sum(axis=0)
        bars.append(np.diag(d**-0.5) @ (ab + np.eye(N)) @ np.diag(d**-0.5))
    gram = np.einsum("iaf,jcf->ijac", x.astype(np.float64), x.astype(np.float64)) / F
    nngp = 1.3**2 * np.einsum("iav,ijac,jcw->ijvw", np.stack(bars), gram, np.stack(bars)) + 0.2**2
    ntk = nngp + 1.3**2 * np.einsum("iav,ijac,jcw->ijvw", np.stack(bars), 0 * gram, np.stack(bars))
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-10)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-10)  # an input has no NTK: ntk = nngp


@pytest.mark.slow
@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_gcn_network_kernels_match_monte_carlo(implementation):
    from jaxdl.kernels.monte_carlo import monte_carlo_kernel_fn

    x, A, pattern = _random_graph_batch(8)
    graph = jnp.asarray(A if implementation == "DENSE" else pattern)
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.GCNConv(512, 1.5, 0.2, implementation=implementation), stax.Relu(),
        stax.GCNConv(512, 1.3, 0.1, implementation=implementation), stax.Relu(), stax.SetPool("mean"),
        stax.Dense(512))  # fmt: skip
    analytic = kernel_fn(jnp.asarray(x), None, ("nngp", "ntk"), pattern=graph)
    mc = monte_carlo_kernel_fn(init_fn, lambda p, z, **kw: apply_fn(p, z, pattern=graph), jax.random.key(3), 16,
                               device_count=0)(jnp.asarray(x), None, ("nngp", "ntk"))
    for exact, estimate in zip(analytic, mc):
        assert np.linalg.norm(exact - estimate) / np.linalg.norm(exact) < 0.08


def test_gat_cheb_message_passing_kernels_raise_not_implemented_naming_the_layer():
    x = jnp.ones((2, 3, 2))
    for name, layer in [("GATConv", stax.GATConv(2)), ("ChebConv", stax.ChebConv(2)),
                        ("MessagePassing", stax.MessagePassing(stax.Dense(2)))]:
        with pytest.raises(NotImplementedError, match=f"^{name}"):
            layer.kernel(x, None, "nngp")
