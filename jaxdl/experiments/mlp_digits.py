"""A stax MLP trained with optax (through ``jaxdl.train.fit``) on the digits dataset.

Two hidden ReLU layers (NTK parameterisation), Adam on minibatches, the test
set evaluated every epoch; reports test accuracy and learning curves.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax

from jaxdl import optim, stax, train
from jaxdl.data import load_digits
from jaxdl.experiments.report import save_figure, write_json

NAME = "mlp-digits"
DESCRIPTION = "stax MLP on the digits dataset, trained with train.fit and optax Adam: test accuracy and learning curves"


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def run(out_dir: Path, *, fast: bool = False, seed: int = 0) -> dict:
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
    result = train.fit(
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
    )
    seconds = time.perf_counter() - start
    history = result.history
    final_params = result.state.params
    results = {
        "dataset": dataset.name,
        "num_train": int(dataset.x_train.shape[0]),
        "num_test": int(dataset.x_test.shape[0]),
        "model": f"stax.serial(Dense({width}), Relu(), Dense({width}), Relu(), Dense(10)), ntk parameterisation",
        "optimizer": f"adam(learning_rate={learning_rate})",
        "num_epochs": num_epochs,
        "batch_size": batch_size,
        "fast": fast,
        "seed": seed,
        "test_accuracy": float(accuracy(apply_fn(final_params, dataset.x_test), dataset.y_test)),
        "train_accuracy": float(accuracy(apply_fn(final_params, dataset.x_train), dataset.y_train)),
        "epoch": history["epoch"],
        "train_loss": history["train_loss"],
        "test_loss": history["eval_loss"],
        "test_accuracy_history": history["eval_accuracy"],
        "train_seconds": seconds,
    }

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.semilogy(history["epoch"], history["train_loss"], label="train (mean over the epoch)")
    loss_ax.semilogy(history["eval_epoch"], history["eval_loss"], label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="MLP on digits: loss")
    loss_ax.legend()
    acc_ax.plot(history["eval_epoch"], history["eval_accuracy"], color="C1")
    acc_ax.set(xlabel="epoch", ylabel="test accuracy", title=f"final test accuracy {results['test_accuracy']:.3f}")
    save_figure(fig, out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results
