"""``jaxdl.stax.GCNConv`` against ``jraph.GraphConvolution``, and dense vs sparse GCN.

(a) GCN forward + backward: one jitted ``value_and_grad`` of ``sum(out**2)`` with
    respect to the weights, on random undirected graphs of 1k, 10k and 100k nodes
    with average degree ~10 (``E ~ 10 N`` directed edges), ``F`` features in and out.
    jaxdl: ``GCNConv(F, implementation='SPARSE')`` on ``as_single_graph`` inputs;
    jraph: ``GraphConvolution(update_node_fn=x @ W, add_self_edges=True,
    symmetric_normalization=True)`` on the same ``GraphsTuple`` with the same
    weights (jaxdl's NTK scaling ``W / sqrt(F)`` folded into jraph's ``W``). Both
    compute ``D^-1/2 (A + I) D^-1/2 X W`` (jraph's ``max(degree, 1)`` never binds:
    every degree counts the self-loop). The outputs are checked to agree (relative
    error <= 1e-5) before timing. Warm-up (compile), then rounds alternating the two;
    the median time, the ratio jaxdl / jraph (goal <= 1.0) and edges per second.
(b) Dense vs sparse: the same GCN forward + backward with the dense adjacency
    ``f[1, N, N]`` (``implementation='DENSE'``, an ``O(N^2 F)`` matmul) and with the
    edge list (``'SPARSE'``, gather + ``segment_sum``, ``O(E F)``) at increasing ``N``
    and fixed average degree: where sparse starts to win.

    python benchmarks/gnn_vs_jraph.py            # 1k, 10k, 100k nodes; dense up to N = 4096
    python benchmarks/gnn_vs_jraph.py --quick    # 1k, 10k nodes; dense up to N = 1024; fewer rounds
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from _timing import median_times  # benchmarks/_timing.py (this script's folder is on sys.path)
from jaxdl import graphs, stax


def random_graph(n: int, degree: float, features: int, seed: int = 0) -> graphs.Graph:
    """``n`` nodes, ``~ n * degree / 2`` random undirected edges (no self-loops), both directions listed."""
    rng = np.random.default_rng(seed)
    m = int(n * degree / 2)
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = u != v
    u, v = u[keep], v[keep]
    x = rng.standard_normal((n, features)).astype(np.float32)
    return graphs.graph(x, np.concatenate([u, v]), np.concatenate([v, u]))


def jaxdl_gcn(features: int, implementation: str):
    layer = stax.GCNConv(features, implementation=implementation)
    return layer, jax.jit(jax.value_and_grad(lambda p, x, pattern: jnp.sum(layer.apply(p, x, pattern=pattern) ** 2)))


def jraph_gcn():
    def loss(W, g):
        conv = jraph.GraphConvolution(update_node_fn=lambda n: n @ W, add_self_edges=True,
                                      symmetric_normalization=True)  # fmt: skip
        return jnp.sum(conv(g).nodes ** 2)

    return jax.jit(jax.value_and_grad(loss))


def versus_jraph(sizes, degree: float, features: int, rounds: int) -> list[dict]:
    rows = []
    for n in sizes:
        g = random_graph(n, degree, features)
        layer, jaxdl_fn = jaxdl_gcn(features, "SPARSE")
        _, params = layer.init(jax.random.key(1), (1, n, features))
        x, pattern = graphs.as_single_graph(g)
        W_jraph = params["W"] / math.sqrt(features)  # jaxdl's NTK scaling (W_std = 1)
        gt = graphs.to_jraph(g)
        jraph_fn = jraph_gcn()
        ours = layer.apply(params, x, pattern=pattern)[0]
        theirs = jraph.GraphConvolution(update_node_fn=lambda nodes: nodes @ W_jraph, add_self_edges=True,
                                        symmetric_normalization=True)(gt).nodes  # fmt: skip
        error = float(jnp.max(jnp.abs(ours - theirs)) / jnp.max(jnp.abs(theirs)))
        (loss_a, grad_a), (loss_b, grad_b) = jaxdl_fn(params, x, pattern), jraph_fn(W_jraph, gt)
        # d/dW = d/dW_jraph / sqrt(F), since W_jraph = W / sqrt(F)
        grad_error = float(jnp.max(jnp.abs(grad_a["W"] * math.sqrt(features) - grad_b)) / jnp.max(jnp.abs(grad_b)))
        print(f"N={n:>7}: outputs agree to {error:.1e} (relative), loss {float(loss_a):.6g} vs {float(loss_b):.6g}, "
              f"weight gradients to {grad_error:.1e}", flush=True)  # fmt: skip
        if error > 1e-5 or grad_error > 1e-5:
            raise AssertionError(f"jaxdl and jraph disagree at N={n}: {error:.2e}, {grad_error:.2e}")
        times = median_times({"jaxdl": jaxdl_fn, "jraph": jraph_fn}, {"jaxdl": (params, x, pattern), "jraph": (W_jraph, gt)},
                             rounds * max(1, 10_000 // n))  # more rounds for the short calls  # fmt: skip
        edges = int(g.n_edge[0])
        rows.append({"N": n, "E": edges, "jaxdl_ms": 1e3 * times["jaxdl"], "jraph_ms": 1e3 * times["jraph"],
                     "ratio": times["jaxdl"] / times["jraph"], "error": error})  # fmt: skip
        r = rows[-1]
        print(f"N={n:>7} E={edges:>8}: jaxdl {r['jaxdl_ms']:9.2f} ms  jraph {r['jraph_ms']:9.2f} ms  "
              f"ratio {r['ratio']:.2f}  jaxdl {edges / times['jaxdl']:.2e} edges/s", flush=True)  # fmt: skip
    if len(rows) >= 2:
        slope = np.polyfit(np.log([r["E"] for r in rows]), np.log([r["jaxdl_ms"] for r in rows]), 1)[0]
        slope_jraph = np.polyfit(np.log([r["E"] for r in rows]), np.log([r["jraph_ms"] for r in rows]), 1)[0]
        print(f"time ~ E^p: jaxdl p = {slope:.2f}, jraph p = {slope_jraph:.2f}")
    return rows


def dense_vs_sparse(sizes, degree: float, features: int, rounds: int) -> list[dict]:
    rows = []
    for n in sizes:
        g = random_graph(n, degree, features, seed=2)
        dense_layer, dense_fn = jaxdl_gcn(features, "DENSE")
        _, sparse_fn = jaxdl_gcn(features, "SPARSE")
        _, params = dense_layer.init(jax.random.key(1), (1, n, features))
        x, pattern = graphs.as_single_graph(g)
        adjacency = graphs.to_dense(g).adjacency
        times = median_times({"dense": dense_fn, "sparse": sparse_fn},
                             {"dense": (params, x, adjacency), "sparse": (params, x, pattern)},
                             rounds * max(1, 1024 // n))  # more rounds for the short calls  # fmt: skip
        rows.append({"N": n, "E": int(g.n_edge[0]), "dense_ms": 1e3 * times["dense"], "sparse_ms": 1e3 * times["sparse"]})
        r = rows[-1]
        print(f"N={n:>6} E={r['E']:>7}: dense {r['dense_ms']:9.2f} ms  sparse {r['sparse_ms']:9.2f} ms  "
              f"dense/sparse {r['dense_ms'] / r['sparse_ms']:.2f}", flush=True)  # fmt: skip
    crossover = next((r["N"] for i, r in enumerate(rows) if all(q["sparse_ms"] < q["dense_ms"] for q in rows[i:])), None)
    print(f"sparse faster at every N >= {crossover}" if crossover else "sparse not faster at the largest N measured")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller graphs and fewer rounds")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--degree", type=float, default=10.0)
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    print(f"jax {jax.__version__}, jraph {jraph.__version__}, devices {jax.devices()}, features {args.features}, "
          f"average degree {args.degree}")  # fmt: skip
    print("(a) GCN forward + backward, jaxdl GCNConv(SPARSE) vs jraph.GraphConvolution")
    versus_jraph([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000], args.degree, args.features, rounds)
    print("(b) dense adjacency vs edge list (jaxdl GCNConv), forward + backward")
    dense_vs_sparse([16, 32, 64, 128, 256, 512, 1024] if args.quick else [16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
                    args.degree, args.features, rounds)


if __name__ == "__main__":
    main()
