"""A stax MLP trained with optax (through ``jaxdl.train.fit``) on the digits dataset.

Two hidden ReLU layers (NTK parameterisation), Adam on minibatches, the test
set evaluated every epoch; reports test accuracy and learning curves.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from jaxdl import optim, stax, train
from jaxdl.data import load_digits
from jaxdl.experiments.report import legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_fit

NAME = "mlp-digits"
DESCRIPTION = "stax MLP on the digits dataset, trained with train.fit and optax Adam: test accuracy and learning curves"
FAST_MODE = "width 64 (full: 256), 6 epochs (30), learning rate 2e-2 (1e-2)"


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train and evaluate; every epoch is checkpointed, so Ctrl-C keeps the finished epochs and
    ``resume=True`` continues from them (see :func:`jaxdl.experiments.units.run_fit`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width, num_epochs, batch_size, learning_rate = (64, 6, 64, 2e-2) if fast else (256, 30, 64, 1e-2)
    dataset = load_digits(test_fraction=0.25, seed=seed)
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(width), stax.Relu(), stax.Dense(width), stax.Relu(), stax.Dense(dataset.num_classes)
    )
    init_key, fit_key = jax.random.split(jax.random.key(seed))
    _, params = init_fn(init_key, (-1, dataset.x_train.shape[1]))
    start = time.perf_counter()
    result = run_fit(
        NAME,
        lambda checkpoint_path, resume: train.fit(
            apply_fn,
            params,
            optim.adam(learning_rate),
            (dataset.x_train, dataset.y_train),
            loss_fn=cross_entropy,
            key=fit_key,
            num_epochs=num_epochs,
            batch_size=batch_size,
            eval_data=(dataset.x_test, dataset.y_test),
            metrics={"accuracy": accuracy},
            checkpoint_path=checkpoint_path,
            resume=resume,
        ),
        num_epochs=num_epochs,
        out_dir=out_dir,
        settings={"fast": fast, "seed": seed},
        resume=resume,
    )
    seconds = time.perf_counter() - start
    history = result.history
    final_params = result.state.params
    results = {
        "dataset": dataset.name,
        "num_train": int(dataset.x_train.shape[0]),
        "num_test": int(dataset.x_test.shape[0]),
        "model": f"stax.serial(Dense({width}), Relu(), Dense({width}), Relu(), Dense(10)), ntk parameterisation",
        "width": width,
        "optimizer": f"adam(learning_rate={learning_rate})",
        "num_epochs": num_epochs,
        "batch_size": batch_size,
        "fast": fast,
        "seed": seed,
        "test_accuracy": float(accuracy(apply_fn(final_params, dataset.x_test), dataset.y_test)),
        "train_accuracy": float(accuracy(apply_fn(final_params, dataset.x_train), dataset.y_train)),
        "epoch": history["epoch"],
        "train_loss": history["train_loss"],
        "test_epoch": history["eval_epoch"],
        "test_loss": history["eval_loss"],
        "test_accuracy_history": history["eval_accuracy"],
        "train_seconds": seconds,
    }

    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    return {
        "test accuracy": f"{results['test_accuracy']:.4f}",
        "train accuracy": f"{results['train_accuracy']:.4f}",
        "epochs / training seconds": f"{results['num_epochs']} / {results['train_seconds']:.1f}",
    }


def figure(results: dict):
    """Learning curves: train and test cross-entropy, and test accuracy, per epoch."""
    fig, (loss_ax, acc_ax) = new_figure(
        f"MLP on {results['dataset']}: 2 hidden ReLU layers of width {results['width']}, "
        f"{results['optimizer']}, minibatches of {results['batch_size']}", results["fast"], 1, 2, figsize=(11, 4.8))
    loss_ax.semilogy(results["epoch"], results["train_loss"], color="C0", label="train (mean over the epoch)")
    loss_ax.semilogy(results["test_epoch"], results["test_loss"], color="C1", label="test (after the epoch)")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    legend_outside(loss_ax, ncol=2)
    acc_ax.plot(results["test_epoch"], results["test_accuracy_history"], "o-", ms=3, color="C1", label="test")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy", title=f"final test accuracy {results['test_accuracy']:.3f}")
    legend_outside(acc_ax)
    return fig
