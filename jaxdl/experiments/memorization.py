"""Memorisation of random labels (Zhang et al. 2017, "Understanding deep learning requires
rethinking generalization"), on the digits.

The seeds' randomisation observations: "DNNs can perfectly fit the training data; when randomly
replacing training labels, the models can still perfectly fit the data (memorisation); the
training time does not increase much when labels are randomised" - "unexplainable by" the
capacity bounds. Here one MLP (one hidden ReLU layer, Adam, ``jaxdl.train.fit``) is trained on
the digits with 0 %, 20 %, 50 % and 100 % of the training labels replaced by uniformly random
ones (the test labels stay clean): per fraction, the epoch at which the training accuracy on
the (partly random) labels first reaches 100 %, the final train and test accuracy. Training
stops ``patience`` epochs after the training accuracy stopped improving (it cannot improve
past 100 %) or at the epoch limit; the accuracies reported are those of the parameters at the
first epoch with the best training accuracy (``fit``'s ``best_params``).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import train
from jaxdl.data import load_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.models import mlp

NAME = "memorization"
DESCRIPTION = "an MLP fits digits with 0/20/50/100 % random labels: train accuracy 100 %, test falls to chance"
FAST_MODE = "300 training images (full: all 1347), width 512 (1024), at most 150 epochs (400)"
RANDOM_FRACTIONS = (0.0, 0.2, 0.5, 1.0)


def settings_for(fast: bool, seed: int) -> dict:
    return {"fast": fast, "seed": seed, "num_train": 300 if fast else None, "width": 512 if fast else 1024,
            "batch_size": 50 if fast else 64, "learning_rate": 3e-3 if fast else 2e-3,
            "max_epochs": 150 if fast else 400, "patience": 10, "random_fractions": list(RANDOM_FRACTIONS)}


def randomize_labels(key, labels, fraction: float, num_classes: int = 10):
    """Replace ``round(fraction · n)`` labels, at random positions, by uniform random classes.

    A replaced label may equal the true one by chance (probability 1/num_classes), as in
    Zhang et al.; returns ``(new_labels, replaced_positions_mask)``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"randomize_labels: expected fraction in [0, 1], got {fraction!r}")
    labels = jnp.asarray(labels)
    n = labels.shape[0]
    pick_key, class_key = jax.random.split(key)
    replaced = jnp.zeros(n, bool).at[jax.random.permutation(pick_key, n)[: round(fraction * n)]].set(True)
    random = jax.random.randint(class_key, (n,), 0, num_classes, labels.dtype)
    return jnp.where(replaced, random, labels), replaced


def epochs_to_fit(train_accuracy_history) -> int | None:
    """The first epoch (1-based) at which the training accuracy is 100 %, ``None`` if never."""
    return next((i + 1 for i, a in enumerate(train_accuracy_history) if a >= 1.0), None)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def train_one(key, x_train, y_train, x_test, y_test, settings: dict, fraction: float) -> dict:
    label_key, init_key, fit_key = jax.random.split(key, 3)
    noisy, replaced = randomize_labels(label_key, y_train, fraction)
    init_fn, apply_fn, _ = mlp((settings["width"],), 10, parameterization="standard")
    _, params = init_fn(init_key, (-1, x_train.shape[1]))
    result = train.fit(apply_fn, params, optax.adam(settings["learning_rate"]), (x_train, noisy),
                       loss_fn=cross_entropy, key=fit_key, num_epochs=settings["max_epochs"],
                       batch_size=settings["batch_size"], eval_data=(x_train, noisy),
                       metrics={"accuracy": accuracy}, patience=settings["patience"], monitor="accuracy",
                       mode="max", progress=False)
    final = result.best_params  # the first epoch with the best training accuracy (100 % once fitted)
    history = result.history["eval_accuracy"]
    return {
        "random_fraction": fraction,
        "labels_changed": float(jnp.mean(noisy != y_train)),
        "epochs_to_fit": epochs_to_fit(history),
        "epochs_run": len(history),
        "train_accuracy": float(accuracy(apply_fn(final, x_train), noisy)),
        "test_accuracy": float(accuracy(apply_fn(final, x_test), y_test)),
        "train_accuracy_history": history,
        "train_loss_history": result.history["train_loss"],
    }


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset = load_digits(test_fraction=0.25, seed=seed, num_train=settings["num_train"])
    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    x_test, y_test = jnp.asarray(dataset.x_test), jnp.asarray(dataset.y_test)
    key = jax.random.key(seed)
    start = time.perf_counter()
    keys = [f"random={f:g}" for f in RANDOM_FRACTIONS]
    done = run_units(NAME, keys, lambda unit: train_one(
        jax.random.fold_in(key, keys.index(unit)), x_train, y_train, x_test, y_test, settings,
        float(unit.split("=")[1])), out_dir=out_dir, settings=settings, resume=resume)
    runs = [done[k] for k in keys]
    results = {
        "experiment": NAME,
        "interrupted": False,
        "dataset": dataset.name,
        "num_train": int(x_train.shape[0]),
        "num_test": int(x_test.shape[0]),
        "model": f"mlp(({settings['width']},), 10), standard parameterisation, ReLU",
        "optimizer": f"adam({settings['learning_rate']}), batch {settings['batch_size']}",
        "settings": settings,
        "fast": fast,
        "seed": seed,
        "table": [{k: r[k] for k in ("random_fraction", "labels_changed", "epochs_to_fit", "train_accuracy",
                                     "test_accuracy")} for r in runs],
        "runs": runs,
        "chance_accuracy": 0.1,
        "seconds": time.perf_counter() - start,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    def fmt(row):
        fit = row["epochs_to_fit"]
        return (f"train {row['train_accuracy']:.3f}, test {row['test_accuracy']:.3f}, "
                f"fit at epoch {fit if fit is not None else 'never'}")

    return {f"{row['random_fraction']:.0%} random labels": fmt(row) for row in results["table"]}


def figure(results: dict):
    fig, (train_ax, bar_ax) = new_figure(
        f"Memorisation on {results['dataset']} ({results['num_train']} training images): {results['model']}",
        results["fast"], 1, 2, figsize=(12, 4.8))
    palette = colors(len(results["runs"]))
    for colour, run in zip(palette, results["runs"]):
        epochs = np.arange(1, len(run["train_accuracy_history"]) + 1)
        train_ax.plot(epochs, run["train_accuracy_history"], color=colour,
                      label=f"{run['random_fraction']:.0%} random (fit at {run['epochs_to_fit']})")
    train_ax.set(xlabel="epoch", ylabel="training accuracy (on the labels trained on)",
                 title="epochs to fit grow with the random fraction")
    legend_outside(train_ax, ncol=2)
    fractions = [row["random_fraction"] for row in results["table"]]
    positions = np.arange(len(fractions))
    train_ax_values = [row["train_accuracy"] for row in results["table"]]
    test_values = [row["test_accuracy"] for row in results["table"]]
    bar_ax.bar(positions - 0.2, train_ax_values, 0.4, color=palette[0], label="train accuracy")
    bar_ax.bar(positions + 0.2, test_values, 0.4, color=palette[1], label="test accuracy (clean labels)")
    bar_ax.axhline(results["chance_accuracy"], color="grey", ls=":", lw=1)
    bar_ax.set_xticks(positions, [f"{f:.0%}" for f in fractions])
    bar_ax.set(xlabel="share of random training labels", ylabel="accuracy", ylim=(0, 1.05),
               title="final accuracies (dotted: chance)")
    legend_outside(bar_ax, ncol=2)
    return fig
