"""The loss landscape of small MLPs on the digits: sharpness, mode connectivity, lottery tickets.

The seeds' "Loss Landscape" statements, measured (library: :mod:`jaxdl.theory.landscape`):

* Sharpness ``λ_max(H)``, "flat minima → better generalisation", "found by small-batch SGD":
  the same MLP trained by SGD with a small or large batch and a small or large learning rate
  for the same number of steps; at the end the top Hessian eigenvalue of the training loss
  (power iteration on Hessian-vector products) against the test accuracy (Keskar et al. 2017).
* Mode connectivity, "local minima connected by paths of low loss": two nets trained from
  independent initialisations; the training loss along the straight line between them and
  along a quadratic Bézier curve whose control point is trained (Garipov et al. 2018);
  barrier = the largest excess of the loss over the chord between the end points.
* Lottery tickets, "sparse subnetworks can match full network performance if initialised
  correctly": iterative magnitude pruning with rewinding to the weights after one epoch
  (Frankle & Carbin 2019; Frankle et al. 2020); test accuracy against sparsity for the
  winning tickets and for the same masks with a random re-initialisation.
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
from jaxdl.theory.landscape import (
    apply_mask,
    bezier_curve,
    fit_bezier,
    interpolate,
    iterative_magnitude_pruning,
    loss_along_path,
    loss_barrier,
    perturbed_loss_increase,
    sharpness,
)

NAME = "landscape"
DESCRIPTION = ("sharpness vs test accuracy for small/large batch and learning rate, mode connectivity "
               "(straight line vs trained Bezier curve), lottery tickets by iterative magnitude pruning")
FAST_MODE = ("500 training images (full: 1347), width 64 (128), 600 SGD steps (2000), 20 epochs (40), "
             "5 pruning rounds of 50 % (8 of 40 %)")


def settings_for(fast: bool, seed: int) -> dict:
    return {
        "fast": fast,
        "seed": seed,
        "num_train": 500 if fast else None,
        "width": 64 if fast else 128,
        "epochs": 20 if fast else 40,
        "sgd_runs": [[16, 0.1], [16, 0.01], [250 if fast else 512, 0.1], [250 if fast else 512, 0.01]],
        "sgd_steps": 600 if fast else 2000,
        "bezier_steps": 300 if fast else 1000,
        "path_points": 21,
        "prune_fraction": 0.5 if fast else 0.4,
        "prune_rounds": 5 if fast else 8,
        "rewind_epochs": 1,
    }


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def make_model(width: int):
    return mlp((width,), 10, parameterization="standard")


def train_net(key, apply_fn, params, x, y, *, optimizer, epochs: int, batch_size: int):
    result = train.fit(apply_fn, params, optimizer, (x, y), loss_fn=cross_entropy, key=key, num_epochs=epochs,
                       batch_size=min(batch_size, x.shape[0]), progress=False)
    return result.state.params


def sharpness_run(key, data, width: int, steps: int, batch_size: int, learning_rate: float) -> dict:
    """SGD with ``batch_size`` and ``learning_rate`` for about ``steps`` steps (whole epochs); the
    minimum's λ_max, flatness (mean loss increase at radius 1) and accuracies."""
    x, y, x_test, y_test = data
    init_fn, apply_fn, _ = make_model(width)
    init_key, fit_key, power_key, noise_key = jax.random.split(key, 4)
    _, params = init_fn(init_key, (-1, x.shape[1]))
    batch_size = min(batch_size, x.shape[0])
    epochs = max(1, round(steps / (x.shape[0] // batch_size)))
    params = train_net(fit_key, apply_fn, params, x, y, optimizer=optax.sgd(learning_rate), epochs=epochs,
                       batch_size=batch_size)
    train_loss = lambda p: cross_entropy(apply_fn(p, x), y)
    return {
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "epochs": epochs,
        "steps": epochs * (x.shape[0] // batch_size),
        "sharpness": sharpness(train_loss, params, key=power_key, num_iterations=50),
        "perturbed_loss_increase": perturbed_loss_increase(train_loss, params, 1.0, key=noise_key, num_samples=16),
        "train_loss": float(train_loss(params)),
        "train_accuracy": float(accuracy(apply_fn(params, x), y)),
        "test_accuracy": float(accuracy(apply_fn(params, x_test), y_test)),
    }


def mode_connectivity(key, data, *, width: int, epochs: int, bezier_steps: int, path_points: int = 21) -> dict:
    """Two nets from independent initialisations (Adam); loss and test accuracy along the straight
    line and along the trained Bézier curve between them, and both barriers (training loss)."""
    x, y, x_test, y_test = data
    init_fn, apply_fn, _ = make_model(width)
    ends = []
    for k in jax.random.split(key, 2):
        init_key, fit_key = jax.random.split(k)
        _, params = init_fn(init_key, (-1, x.shape[1]))
        ends.append(train_net(fit_key, apply_fn, params, x, y, optimizer=optax.adam(3e-3), epochs=epochs,
                              batch_size=32))
    a, b = ends
    train_loss = lambda p: cross_entropy(apply_fn(p, x), y)
    test_acc = lambda p: accuracy(apply_fn(p, x_test), y_test)
    fit = fit_bezier(train_loss, a, b, key=jax.random.fold_in(key, 7), num_steps=bezier_steps,
                     learning_rate=3e-3, num_t=4)
    ts = np.linspace(0.0, 1.0, path_points)
    line = lambda t: interpolate(a, b, t)
    curve = lambda t: bezier_curve(a, fit.control, b, t)
    line_loss, curve_loss = loss_along_path(train_loss, line, ts), loss_along_path(train_loss, curve, ts)
    return {
        "t": ts.tolist(),
        "line_train_loss": np.asarray(line_loss).tolist(),
        "curve_train_loss": np.asarray(curve_loss).tolist(),
        "line_test_accuracy": np.asarray(loss_along_path(test_acc, line, ts)).tolist(),
        "curve_test_accuracy": np.asarray(loss_along_path(test_acc, curve, ts)).tolist(),
        "line_barrier": loss_barrier(ts, line_loss),
        "curve_barrier": loss_barrier(ts, curve_loss),
        "bezier_loss_history": fit.loss_history[:: max(1, bezier_steps // 100)],
    }


def lottery(key, data, *, width: int, epochs: int, fraction: float, rounds: int, rewind_epochs: int) -> dict:
    """Iterative magnitude pruning with rewinding; the same masks with a random re-initialisation."""
    x, y, x_test, y_test = data
    init_fn, apply_fn, _ = make_model(width)
    init_key, rewind_key, fit_key, random_key = jax.random.split(key, 4)
    _, init_params = init_fn(init_key, (-1, x.shape[1]))
    optimizer = optax.adam(2e-3)
    rewind = train_net(rewind_key, apply_fn, init_params, x, y, optimizer=optimizer, epochs=rewind_epochs,
                       batch_size=32)

    def train_masked(params, masks):
        masked = lambda p, inputs: apply_fn(apply_mask(p, masks), inputs)
        trained = apply_mask(train_net(fit_key, masked, params, x, y, optimizer=optimizer, epochs=epochs,
                                       batch_size=32), masks)
        return trained, {"test_accuracy": float(accuracy(apply_fn(trained, x_test), y_test)),
                         "train_accuracy": float(accuracy(apply_fn(trained, x), y))}

    tickets = iterative_magnitude_pruning(train_masked, rewind, num_rounds=rounds, fraction=fraction)
    random_accuracy = []
    for r, ticket in enumerate(tickets):
        if r == 0:  # the dense net: a random re-initialisation is just another dense run
            random_accuracy.append(ticket.metrics["test_accuracy"])
            continue
        _, fresh = init_fn(jax.random.fold_in(random_key, r), (-1, x.shape[1]))
        random_accuracy.append(train_masked(apply_mask(fresh, ticket.masks), ticket.masks)[1]["test_accuracy"])
    return {
        "sparsity": [t.sparsity for t in tickets],
        "ticket_test_accuracy": [t.metrics["test_accuracy"] for t in tickets],
        "ticket_train_accuracy": [t.metrics["train_accuracy"] for t in tickets],
        "random_reinit_test_accuracy": random_accuracy,
    }


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset = load_digits(test_fraction=0.25, seed=seed, num_train=settings["num_train"])
    data = tuple(jnp.asarray(a) for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))
    key = jax.random.key(seed)
    start = time.perf_counter()
    sgd_keys = [f"sgd|batch={b},lr={lr:g}" for b, lr in settings["sgd_runs"]]

    def work(unit: str):
        if unit == "mode-connectivity":
            return mode_connectivity(jax.random.fold_in(key, 1), data, width=settings["width"],
                                     epochs=settings["epochs"], bezier_steps=settings["bezier_steps"],
                                     path_points=settings["path_points"])
        if unit == "lottery":
            return lottery(jax.random.fold_in(key, 2), data, width=settings["width"], epochs=settings["epochs"],
                           fraction=settings["prune_fraction"], rounds=settings["prune_rounds"],
                           rewind_epochs=settings["rewind_epochs"])
        batch, lr = settings["sgd_runs"][sgd_keys.index(unit)]
        return sharpness_run(jax.random.fold_in(key, 3), data, settings["width"], settings["sgd_steps"], batch, lr)

    keys = sgd_keys + ["mode-connectivity", "lottery"]
    done = run_units(NAME, keys, work, out_dir=out_dir, settings=settings, resume=resume)
    results = {
        "experiment": NAME,
        "interrupted": False,
        "dataset": dataset.name,
        "num_train": int(data[0].shape[0]),
        "num_test": int(data[2].shape[0]),
        "model": f"mlp(({settings['width']},), 10), standard parameterisation, ReLU",
        "settings": settings,
        "fast": fast,
        "seed": seed,
        "sharpness": [done[k] for k in sgd_keys],
        "mode_connectivity": done["mode-connectivity"],
        "lottery": done["lottery"],
        "seconds": time.perf_counter() - start,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    mc, lt = results["mode_connectivity"], results["lottery"]
    rows = {f"batch {r['batch_size']}, lr {r['learning_rate']:g}":
            f"lambda_max {r['sharpness']:.3g}, test accuracy {r['test_accuracy']:.3f}" for r in results["sharpness"]}
    rows["loss barrier line / Bezier"] = f"{mc['line_barrier']:.3g} / {mc['curve_barrier']:.3g}"
    rows["ticket vs random re-init at sparsity"] = (
        f"{lt['sparsity'][-1]:.3f}: {lt['ticket_test_accuracy'][-1]:.3f} vs {lt['random_reinit_test_accuracy'][-1]:.3f}")
    return rows


def figure(results: dict):
    fig, (sharp_ax, path_ax, ticket_ax) = new_figure(
        f"Loss landscape on {results['dataset']}: {results['model']}", results["fast"], 1, 3, figsize=(15, 5))
    runs = results["sharpness"]
    palette = colors(max(len(runs), 4))
    for colour, r in zip(palette, runs):
        sharp_ax.plot([r["sharpness"]], [r["test_accuracy"]], "o", ms=8, color=colour,
                      label=f"batch {r['batch_size']}, lr {r['learning_rate']:g}")
    sharp_ax.set(xlabel="sharpness: top Hessian eigenvalue of the training loss", ylabel="test accuracy",
                 title="SGD minima: sharpness vs test accuracy")
    legend_outside(sharp_ax, ncol=2)
    mc = results["mode_connectivity"]
    path_ax.plot(mc["t"], mc["line_train_loss"], "o-", ms=3, color=palette[0],
                 label=f"straight line (barrier {mc['line_barrier']:.3g})")
    path_ax.plot(mc["t"], mc["curve_train_loss"], "s-", ms=3, color=palette[1],
                 label=f"trained Bezier curve (barrier {mc['curve_barrier']:.3g})")
    path_ax.set(xlabel="position t along the path", ylabel="training cross-entropy",
                title="mode connectivity of two independent nets")
    legend_outside(path_ax)
    lt = results["lottery"]
    remaining = 1.0 - np.asarray(lt["sparsity"])
    ticket_ax.semilogx(remaining, lt["ticket_test_accuracy"], "o-", ms=4, color=palette[0],
                       label="winning ticket (rewound weights)")
    ticket_ax.semilogx(remaining, lt["random_reinit_test_accuracy"], "s--", ms=4, color=palette[1],
                       label="same mask, random re-initialisation")
    ticket_ax.invert_xaxis()
    ticket_ax.set(xlabel="fraction of weights remaining", ylabel="test accuracy",
                  title="lottery tickets: iterative magnitude pruning")
    legend_outside(ticket_ax)
    return fig
