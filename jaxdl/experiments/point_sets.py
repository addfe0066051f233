"""Deep Sets vs PointNet vs an MLP on point clouds of primitive shapes, and their invariance.

The seeds' geometric chapter: a function of a set must not depend on the order of
its elements, ``f(PX) = f(X)``. Data: :func:`jaxdl.graphs.datasets.point_cloud_shapes`,
clouds of points sampled uniformly from the surfaces of a sphere, a cube, a
cylinder, a cone and a torus (5 classes), with a little Gaussian noise, each
cloud's points listed by increasing height ``z`` (a fixed ordering).

Three classifiers, trained with Adam on the cross-entropy:

* Deep Sets ``rho(sum_m phi(x_m))`` (:func:`jaxdl.models.deep_sets`, sum pooling);
* PointNet (:func:`jaxdl.models.pointnet`: input T-net, shared per-point MLP, max
  pooling, MLP head);
* an MLP on the concatenated coordinates of the ordered points (:func:`jaxdl.models.mlp`),
  which may use the ordering.

Each is evaluated on the test clouds as given and under random re-orderings of
every test cloud's points. The invariant models' accuracy must not change (the
largest change of accuracy and of the logits is recorded); the MLP's drops,
since the ordering it learned from is gone. Every training run is a unit of
work (:mod:`jaxdl.experiments.units`).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import models
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.graphs.datasets import SHAPES, point_cloud_shapes

NAME = "point-sets"
DESCRIPTION = ("Deep Sets vs PointNet vs an MLP on point clouds of 5 primitive shapes: test accuracy, and under "
               "random re-orderings of the test points (unchanged for the invariant models)")  # fmt: skip
FAST_MODE = ("40 training clouds per class of 32 points (full: 200 of 128), 300 steps (full: 1000), "
             "narrower networks, 3 re-orderings (full: 10)")  # fmt: skip

MODELS = ("deep_sets", "pointnet", "mlp")
INVARIANT = ("deep_sets", "pointnet")


def settings_for(fast: bool, seed: int) -> dict:
    return {
        "fast": fast,
        "seed": seed,
        "train_per_class": 40 if fast else 200,
        "test_per_class": 20 if fast else 100,
        "n_points": 32 if fast else 128,
        "noise": 0.02,
        "steps": 300 if fast else 1000,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "width": 32 if fast else 64,
        "permutations": 3 if fast else 10,
    }


def build(model: str, settings: dict):
    w = settings["width"]
    if model == "deep_sets":
        return models.deep_sets(len(SHAPES), phi_widths=(w, w), rho_widths=(w,), pooling="sum")
    if model == "pointnet":
        return models.pointnet(len(SHAPES), widths=(w, w, 2 * w), head=(w,))
    if model == "mlp":
        return models.mlp((4 * w, 4 * w), len(SHAPES))
    raise ValueError(f"{NAME}: unknown model {model!r}")


def train_model(model, settings: dict, x, y, key):
    """Adam on minibatch cross-entropy (``jit``'ed ``lax.scan``); the trained params and losses."""
    k_init, k_batches = jax.random.split(key)
    _, params = model.init(k_init, (-1,) + x.shape[1:])
    optimizer = optax.adam(settings["learning_rate"])
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(params, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, xb), yb).mean()

    def step(carry, batch_key):
        params, opt_state = carry
        index = jax.random.choice(batch_key, x.shape[0], (min(settings["batch_size"], x.shape[0]),), replace=False)
        loss, grads = jax.value_and_grad(loss_fn)(params, x[index], y[index])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def train(params):
        keys = jax.random.split(k_batches, settings["steps"])
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), keys)
        return params, losses

    return train(params)


def permute_points(x, key):
    """Every cloud's points in its own random order."""
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda k, cloud: cloud[jax.random.permutation(k, cloud.shape[0])])(keys, jnp.asarray(x))


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train the three models and evaluate them on the ordered and re-ordered test clouds;
    writes ``point-sets.json`` and ``point-sets.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    common = dict(n_points=settings["n_points"], noise=settings["noise"])
    x_train, y_train = point_cloud_shapes(settings["train_per_class"], seed=2 * seed, **common)
    x_test, y_test = point_cloud_shapes(settings["test_per_class"], seed=2 * seed + 1, **common)

    def work(name: str) -> dict:
        model = build(name, settings)
        start = time.perf_counter()
        params, losses = train_model(model, settings, x_train, y_train, jax.random.fold_in(jax.random.key(seed),
                                                                                          MODELS.index(name)))
        seconds = time.perf_counter() - start
        predict = jax.jit(model.apply)
        logits = np.asarray(predict(params, jnp.asarray(x_test)))
        accuracy = float(np.mean(np.argmax(logits, -1) == y_test))
        permuted_accuracy, logit_change = [], []
        for p in range(settings["permutations"]):
            shuffled = permute_points(x_test, jax.random.fold_in(jax.random.key(seed + 7), p))
            permuted = np.asarray(predict(params, shuffled))
            permuted_accuracy.append(float(np.mean(np.argmax(permuted, -1) == y_test)))
            logit_change.append(float(np.max(np.abs(permuted - logits))))
        train_logits = np.asarray(predict(params, jnp.asarray(x_train)))
        return {
            "test_accuracy": accuracy,
            "train_accuracy": float(np.mean(np.argmax(train_logits, -1) == y_train)),
            "permuted_test_accuracy": permuted_accuracy,
            "max_accuracy_change": float(np.max(np.abs(np.asarray(permuted_accuracy) - accuracy))),
            "max_logit_change": float(np.max(logit_change)),
            "max_abs_logit": float(np.max(np.abs(logits))),
            "loss_history": np.asarray(losses).tolist(),
            "train_seconds": seconds,
            "num_params": int(sum(np.size(leaf) for leaf in jax.tree.leaves(params))),
        }

    runs = run_units(NAME, list(MODELS), work, out_dir=out_dir, settings=settings, resume=resume)
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": (f"point clouds on primitive surfaces ({', '.join(SHAPES)}), jaxdl.graphs.datasets."
                    f"point_cloud_shapes, {settings['n_points']} points sorted by z, noise {settings['noise']}"),
        "classes": list(SHAPES),
        "num_train": int(y_train.size),
        "num_test": int(y_test.size),
        "test_accuracy": {m: runs[m]["test_accuracy"] for m in MODELS},
        "permuted_test_accuracy_mean": {m: float(np.mean(runs[m]["permuted_test_accuracy"])) for m in MODELS},
        "max_accuracy_change_invariant": max(runs[m]["max_accuracy_change"] for m in INVARIANT),
        "max_logit_change_invariant": max(runs[m]["max_logit_change"] for m in INVARIANT),
        "mlp_accuracy_drop": runs["mlp"]["test_accuracy"] - float(np.mean(runs["mlp"]["permuted_test_accuracy"])),
        "runs": runs,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    acc, perm = results["test_accuracy"], results["permuted_test_accuracy_mean"]
    lines = {f"{m} test accuracy (ordered / re-ordered points)": f"{acc[m]:.4f} / {perm[m]:.4f}" for m in MODELS}
    lines["invariant models: largest change under re-ordering"] = (
        f"accuracy {results['max_accuracy_change_invariant']:.2g}, logits {results['max_logit_change_invariant']:.2g}")
    return lines


def figure(results: dict):
    """Training losses, and test accuracy on ordered vs re-ordered points per model."""
    fig, (loss_ax, acc_ax) = new_figure(
        f"Point-cloud shapes ({results['num_train']} train / {results['num_test']} test clouds): "
        "permutation invariance", results["fast"], 1, 2, figsize=(12, 5))
    palette = colors(len(MODELS))
    for color, m in zip(palette, MODELS):
        losses = np.asarray(results["runs"][m]["loss_history"])
        loss_ax.plot(np.arange(1, losses.size + 1), losses, color=color, lw=1, label=m)
    loss_ax.set_yscale("log")
    loss_ax.set(xlabel="training step", ylabel="minibatch cross-entropy", title="training loss")
    legend_outside(loss_ax, ncol=3)
    positions = np.arange(len(MODELS))
    ordered = [results["test_accuracy"][m] for m in MODELS]
    shuffled = [results["permuted_test_accuracy_mean"][m] for m in MODELS]
    acc_ax.bar(positions - 0.2, ordered, width=0.4, color=palette[0], label="test points in the training order (by z)")
    acc_ax.bar(positions + 0.2, shuffled, width=0.4, color=palette[1],
               label=f"randomly re-ordered (mean of {results['settings']['permutations']})")
    for pos, a, b in zip(positions, ordered, shuffled):
        acc_ax.text(pos - 0.2, a + 0.01, f"{a:.3f}", ha="center", fontsize="small")
        acc_ax.text(pos + 0.2, b + 0.01, f"{b:.3f}", ha="center", fontsize="small")
    acc_ax.axhline(1 / len(results["classes"]), color="0.5", ls=":", lw=1)
    acc_ax.set_xticks(positions, MODELS)
    acc_ax.set_ylim(0, 1.1)
    acc_ax.set(xlabel="model", ylabel="test accuracy",
               title=f"accuracy under re-ordering (dotted: chance; invariant models change by "
                     f"{results['max_accuracy_change_invariant']:.2g})")  # fmt: skip
    legend_outside(acc_ax, ncol=1)
    return fig
