"""GCN, GAT and ChebNet on Zachary's karate club, and the oversmoothing of deep GCNs.

The seeds' geometric chapter on :func:`jaxdl.graphs.datasets.karate_club` (34
members, 78 friendships, two factions of 17), the semi-supervised set-up of Kipf
& Welling: node features are one-hot identities, only the instructor (node 0,
faction "Mr. Hi") and the president (node 33, "Officer") are labelled, and the
test accuracy is measured on the 32 other members.

1. Node classification with three graph layers of :mod:`jaxdl.stax.gnn`, each as
   ``conv(hidden) -> tanh -> conv(2) -> tanh -> Dense(2)``: ``GCNConv`` (``A_bar =
   D^-1/2 (A + I) D^-1/2``), ``GATConv`` (attention over the neighbours, several
   heads) and ``ChebConv(K)`` (Chebyshev polynomials of the scaled normalised
   Laplacian). The 2-unit layer is the learned 2-D embedding drawn in the figure.
   Adam on the cross-entropy of the two labelled nodes; several seeds, mean ± std.
2. Oversmoothing: ``L`` GCN layers (``L = 1 … 32``, ReLU between them, or none)
   at initialisation, and trained GCNs of those depths; the spread of the node
   embeddings is the mean pairwise Euclidean distance between their normalised
   rows ``h_v / |h_v|`` (0 when every node points the same way). Repeated
   propagation by ``A_bar`` drives every row towards the dominant eigenvector
   ``sqrt(d_v)`` times one common vector, so the spread falls with depth.

Every training run is a unit of work (:mod:`jaxdl.experiments.units`).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import stax
from jaxdl.experiments.report import colors, legend_outside, new_figure, progress, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.graphs import to_dense
from jaxdl.graphs.datasets import karate_club

NAME = "gnn-karate"
DESCRIPTION = ("GCN vs GAT vs ChebNet node classification on Zachary's karate club from 2 labelled nodes; "
               "2-D embeddings; oversmoothing (embedding spread) against GCN depth 1..32")  # fmt: skip
FAST_MODE = "2 seeds (full: 10), 100 training steps (full: 300), trained-depth sweep only to depth 8 (full: 32)"

MODELS = ("gcn", "gat", "cheb")
LABELLED = (0, 33)
DEPTHS = (1, 2, 4, 8, 16, 32)


def settings_for(fast: bool, seed: int) -> dict:
    return {
        "fast": fast,
        "seed": seed,
        "models": list(MODELS),
        "seeds": 2 if fast else 10,
        "steps": 100 if fast else 300,
        "learning_rate": 0.02,
        "hidden": 16,
        "gat_heads": 4,
        "cheb_K": 2,
        "labelled_nodes": list(LABELLED),
        "depths": list(DEPTHS),
        "trained_depths": [1, 2, 4, 8] if fast else list(DEPTHS),
        "oversmoothing_width": 16,
        "oversmoothing_seeds": 5,
    }


def conv(model: str, width: int, settings: dict):
    if model == "gcn":
        return stax.GCNConv(width, b_std=0.1)
    if model == "gat":
        heads = settings["gat_heads"]
        return stax.GATConv(max(width // heads, 1), num_heads=heads, concat_heads=True, b_std=0.1) if width > 2 else \
            stax.GATConv(width, num_heads=heads, concat_heads=False, b_std=0.1)
    if model == "cheb":
        return stax.ChebConv(width, K=settings["cheb_K"], b_std=0.1)
    raise ValueError(f"{NAME}: unknown model {model!r}")


def build(model: str, settings: dict, depth: int = 2):
    """``(embedding, head)``: ``depth`` graph layers with tanh (the last of width 2: the
    embedding) and a Dense classifier on it."""
    layers = []
    for i in range(depth):
        layers += [conv(model, settings["hidden"] if i < depth - 1 else 2, settings), stax.Tanh()]
    return stax.serial(*layers), stax.Dense(2, b_std=0.1)


def spread(h) -> float:
    """Mean pairwise distance between the rows of ``h`` scaled to unit length (0: all alike)."""
    h = np.asarray(h, np.float64)
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    unit = h / np.where(norms > 0, norms, 1.0)
    distances = np.linalg.norm(unit[:, None, :] - unit[None, :, :], axis=-1)
    n = h.shape[0]
    return float(distances.sum() / (n * (n - 1)))


def train_model(model: str, settings: dict, x, adjacency, labels, key, depth: int = 2):
    """Adam on the labelled nodes' cross-entropy; returns the embedding, logits, loss history."""
    embed, head = build(model, settings, depth)
    k_embed, k_head = jax.random.split(key)
    shape, p_embed = embed.init(k_embed, x.shape)
    _, p_head = head.init(k_head, shape)
    params = {"embed": p_embed, "head": p_head}
    labelled = jnp.asarray(settings["labelled_nodes"])
    optimizer = optax.adam(settings["learning_rate"])

    def forward(params):
        h = embed.apply(params["embed"], x, pattern=adjacency)
        return h, head.apply(params["head"], h)

    def loss_fn(params):
        logits = forward(params)[1][0, labelled]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels[labelled]).mean()

    def step(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def train(params):
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), None, length=settings["steps"])
        return params, losses

    params, losses = train(params)
    h, logits = forward(params)
    return np.asarray(h[0]), np.asarray(logits[0]), np.asarray(losses)


def _accuracy(logits, labels, nodes):
    return float(np.mean(np.argmax(logits[nodes], axis=-1) == labels[nodes]))


def oversmoothing_at_init(settings: dict, x, adjacency) -> dict:
    """Spread of the outputs of ``L`` stacked GCNConv layers at initialisation, per depth,
    with ReLU between the layers and without (linear), averaged over seeds. The layers
    after the first (all ``width -> width``) run as one ``lax.scan``."""
    width, depths = settings["oversmoothing_width"], settings["depths"]
    out = {}
    for activation in ("linear", "relu"):
        layer = stax.GCNConv(width, W_std=2**0.5 if activation == "relu" else 1.0)
        act = jax.nn.relu if activation == "relu" else (lambda h: h)

        @jax.jit
        def embeddings(key):
            """``f[max(depths), N, width]``: the node embeddings after every layer."""
            k_first, k_rest = jax.random.split(key)
            shape, first = layer.init(k_first, x.shape)  # noqa: B023
            rest = jax.vmap(lambda k: layer.init(k, shape)[1])(jax.random.split(k_rest, max(depths) - 1))  # noqa: B023
            h = act(layer.apply(first, x, pattern=adjacency))  # noqa: B023

            def step(h, params):
                h = act(layer.apply(params, h, pattern=adjacency))  # noqa: B023
                return h, h[0]

            _, later = jax.lax.scan(step, h, rest)
            return jnp.concatenate([h[0][None], later])

        values = np.zeros((settings["oversmoothing_seeds"], len(depths)))
        for s in range(settings["oversmoothing_seeds"]):
            hs = np.asarray(embeddings(jax.random.fold_in(jax.random.key(settings["seed"] + 1000), s)))
            values[s] = [spread(hs[d - 1]) for d in depths]
        out[activation] = {"mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist()}
    return out


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train GCN/GAT/ChebNet over the seeds and GCNs of several depths; measure oversmoothing;
    writes ``gnn-karate.json`` and ``gnn-karate.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    data = karate_club()
    dense = to_dense(data.graph)
    x, adjacency = dense.nodes, dense.adjacency
    labels = jnp.asarray(data.labels)
    test_nodes = np.setdiff1d(np.arange(x.shape[1]), settings["labelled_nodes"])

    def work(unit: str) -> dict:
        model, seed_text, depth_text = unit.split("|")
        s, depth = int(seed_text.removeprefix("seed=")), int(depth_text.removeprefix("depth="))
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), MODELS.index(model)), s)
        start = time.perf_counter()
        h, logits, losses = train_model(model, settings, x, adjacency, labels, key, depth)
        value = {"test_accuracy": _accuracy(logits, data.labels, test_nodes),
                 "train_accuracy": _accuracy(logits, data.labels, np.asarray(settings["labelled_nodes"])),
                 "final_loss": float(losses[-1]), "spread": spread(h), "seconds": time.perf_counter() - start}  # fmt: skip
        if s == 0 and depth == 2:
            value["embedding"] = h.tolist()
            value["loss_history"] = losses.tolist()
        return value

    keys = [f"{m}|seed={s}|depth=2" for m, s in itertools.product(settings["models"], range(settings["seeds"]))]
    keys += [f"gcn|seed={s}|depth={d}" for d in settings["trained_depths"] for s in range(min(3, settings["seeds"]))
             if d != 2]  # fmt: skip
    units = run_units(NAME, keys, work, out_dir=out_dir, settings=settings, resume=resume)
    with progress(None, desc=f"{NAME}: oversmoothing at init", total=1) as bar:
        at_init = oversmoothing_at_init(settings, x, adjacency)
        bar.update()

    accuracy = {}
    for model in settings["models"]:
        values = [units[f"{model}|seed={s}|depth=2"]["test_accuracy"] for s in range(settings["seeds"])]
        accuracy[model] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values}
    trained = {"depths": settings["trained_depths"], "test_accuracy": [], "spread": []}
    for d in settings["trained_depths"]:
        runs = [units[k] for k in keys if k.startswith("gcn|") and k.endswith(f"|depth={d}")][: min(3, settings["seeds"])]
        trained["test_accuracy"].append(float(np.mean([r["test_accuracy"] for r in runs])))
        trained["spread"].append(float(np.mean([r["spread"] for r in runs])))
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": "Zachary's karate club (networkx.karate_club_graph; 34 nodes, 78 edges, factions 17/17)",
        "num_nodes": int(x.shape[1]),
        "num_edges": int(np.asarray(data.graph.n_edge)[0]) // 2,
        "labels": data.labels.tolist(),
        "label_names": list(data.label_names),
        "labelled_nodes": settings["labelled_nodes"],
        "num_test_nodes": int(test_nodes.size),
        "test_accuracy": accuracy,
        "embeddings": {m: units[f"{m}|seed=0|depth=2"]["embedding"] for m in settings["models"]},
        "loss_history": {m: units[f"{m}|seed=0|depth=2"]["loss_history"] for m in settings["models"]},
        "oversmoothing_at_init": {"depths": settings["depths"], **at_init},
        "oversmoothing_trained": trained,
        "edges": np.stack([np.asarray(data.graph.senders), np.asarray(data.graph.receivers)], axis=1).tolist(),
        "runs": {k: {kk: vv for kk, vv in v.items() if kk not in ("embedding", "loss_history")} for k, v in units.items()},
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    acc = results["test_accuracy"]
    lines = {f"{m} test accuracy ({results['num_test_nodes']} unlabelled nodes, {len(acc[m]['per_seed'])} seeds)":
             f"{acc[m]['mean']:.4f} ± {acc[m]['std']:.4f}" for m in acc}  # fmt: skip
    smooth = results["oversmoothing_at_init"]
    lines["spread at init, depth " + " / ".join(map(str, smooth["depths"])) + " (relu)"] = " / ".join(
        f"{v:.3f}" for v in smooth["relu"]["mean"])
    return lines


def figure(results: dict):
    """The three 2-D embeddings coloured by faction, and the spread against depth."""
    fig, axes = new_figure(
        "GNNs on Zachary's karate club from 2 labelled nodes (instructor, president): "
        + ", ".join(f"{m} {a['mean']:.3f}" for m, a in results["test_accuracy"].items()),
        results["fast"], 2, 2, figsize=(12, 10))
    labels = np.asarray(results["labels"])
    edges = np.asarray(results["edges"])
    faction_colors = colors(2)
    for ax in axes.ravel()[len(results["embeddings"]) : 3]:
        ax.set_visible(False)
    for ax, model in zip(axes.ravel()[:3], results["embeddings"]):
        h = np.asarray(results["embeddings"][model])
        for s, r in edges[edges[:, 0] < edges[:, 1]]:
            ax.plot(h[[s, r], 0], h[[s, r], 1], color="0.85", lw=0.5, zorder=0)
        for value, name in enumerate(results["label_names"]):
            chosen = labels == value
            ax.scatter(h[chosen, 0], h[chosen, 1], color=faction_colors[value], s=30, label=f"faction {name}")
        for node in results["labelled_nodes"]:
            ax.scatter(h[node, 0], h[node, 1], s=160, facecolors="none", edgecolors="k", lw=1.5)
        ax.set(xlabel="embedding unit 1", ylabel="embedding unit 2",
               title=f"{model}: 2-D embedding, seed 0 (circled: the labelled nodes)")  # fmt: skip
        legend_outside(ax, ncol=2)
    ax = axes.ravel()[3]
    smooth, trained = results["oversmoothing_at_init"], results["oversmoothing_trained"]
    palette = colors(3)
    for color, activation in zip(palette, ("linear", "relu")):
        mean, std = np.asarray(smooth[activation]["mean"]), np.asarray(smooth[activation]["std"])
        ax.errorbar(smooth["depths"], mean, yerr=std, color=color, marker="o", capsize=3,
                    label=f"GCN at init, {activation} (width {results['settings']['oversmoothing_width']})")
    accuracies = ", ".join(f"{a:.2f}" for a in trained["test_accuracy"])
    ax.plot(trained["depths"], trained["spread"], color=palette[2], marker="s",
            label=f"trained GCN, its 2-D tanh embedding (test accuracy by depth: {accuracies})")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="GCN depth (layers)", ylabel="spread: mean distance of normalised embeddings",
           title="oversmoothing: node embeddings collapse with depth")  # fmt: skip
    legend_outside(ax, ncol=1)
    return fig
