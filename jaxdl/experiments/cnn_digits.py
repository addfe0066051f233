"""CNNs and the tricks of the trade on the bundled 8×8 digits.

The seeds' CNN chapter (LeNet-5, ResNet) and tricks chapter (data augmentation,
label smoothing, distillation) on :func:`jaxdl.data.load_digits` (default split:
1347 training and 450 test images), read as 8×8×1 images with pixels in [0, 1]:

1. an MLP, LeNet-5 (SAME convolutions, so that 8×8 inputs survive two 2×2
   poolings) and a small pre-activation ResNet with BatchNorm
   (:mod:`jaxdl.models`), each trained four ways: plain, with augmentation
   (random shifts by up to one pixel, :func:`jaxdl.data.augment.random_shift`,
   passed to ``train.fit`` as ``batch_transform``), with label smoothing
   ``(1 - α) y + α/K`` (optax's, α = 0.1) and with both;
2. distillation of the ResNet trained with augmentation (no label smoothing:
   smoothed teachers transfer less, Müller et al. 2019) into a small LeNet
   student, minimising the seeds' tempered cross-entropy
   ``-Σ_y softmax(F/T)_y log softmax(G/T)_y`` against the teacher's logits ``F`` at
   T = 1 and T = 4 (:func:`jaxdl.train.losses.make_distillation_loss`, q = 1),
   against the same student trained on the labels.

Every run is AdamW with a cosine learning-rate decay on minibatches of 64; the
reported accuracy is the one after the last epoch (no selection on the test
set). Each training run is a unit of work (:mod:`jaxdl.experiments.units`), so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import models, train
from jaxdl.data import augment, load_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.train.losses import make_cross_entropy_loss, make_distillation_loss

NAME = "cnn-digits"
DESCRIPTION = ("MLP vs LeNet-5 vs ResNet+BatchNorm on 8x8 digits, with/without augmentation and label smoothing; "
               "distillation of the ResNet at T = 1, 4")  # fmt: skip
FAST_MODE = ("3 epochs for the MLP, 5 for the others (full: 30, the ResNet 20), ResNet widths (8, 16) (full: 16, 32, 64), only the plain "
             "and augment+smooth variants (full: also augment, smooth), students only on labels and at T = 4 (also T = 1)")

MODELS = ("mlp", "lenet5", "resnet")
VARIANTS = ("plain", "augment", "smooth", "augment+smooth")
TEACHER = "resnet|augment"
STUDENT_RUNS = ("labels", "distill T=1", "distill T=4")
VARIANTS_FAST = ("plain", "augment+smooth")
STUDENT_RUNS_FAST = ("labels", "distill T=4")
TEACHER_FAST = "resnet|augment+smooth"
LABEL_SMOOTHING = 0.1
MAX_SHIFT = 1
BATCH_SIZE = 64


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    epochs = {"mlp": 30, "lenet5": 30, "resnet": 20, "student": 30}
    if fast:
        epochs = {"mlp": 3, "lenet5": 5, "resnet": 5, "student": 5}
    return {
        "fast": fast,
        "seed": seed,
        "epochs": epochs,
        "learning_rate": {"mlp": 3e-3, "lenet5": 3e-3, "resnet": 3e-3, "student": 3e-3},
        "weight_decay": 1e-4,
        "batch_size": BATCH_SIZE,
        "mlp_widths": [256, 256],
        "resnet_widths": [8, 16] if fast else [16, 32, 64],
        "resnet_blocks_per_stage": 1,
        "student_channels": [4, 8],
        "student_hidden": [32],
        "label_smoothing": LABEL_SMOOTHING,
        "max_shift": MAX_SHIFT,
        "variants": list(VARIANTS_FAST if fast else VARIANTS),
        "student_runs": list(STUDENT_RUNS_FAST if fast else STUDENT_RUNS),
    }


def unit_keys(settings: dict) -> list[str]:
    """The training runs, ``"<model>|<variant>"`` then ``"student|<kind>"``, in the order they run."""
    keys = [f"{name}|{variant}" for name in MODELS for variant in settings["variants"]]
    return keys + [f"student|{kind}" for kind in settings["student_runs"]]


def build(name: str, settings: dict):
    """The stax model ``name`` (standard parameterisation, He-scaled weights)."""
    common = dict(parameterization="standard", b_std=0.0)
    if name == "mlp":
        return models.mlp(tuple(settings["mlp_widths"]), 10, W_std=2**0.5, **common)
    if name == "lenet5":
        return models.lenet5(10, padding="SAME", **common)
    if name == "resnet":
        return models.resnet(10, widths=tuple(settings["resnet_widths"]),
                             blocks_per_stage=settings["resnet_blocks_per_stage"], **common)  # fmt: skip
    if name == "student":
        return models.lenet5(10, channels=tuple(settings["student_channels"]), hidden=tuple(settings["student_hidden"]),
                             padding="SAME", **common)  # fmt: skip
    raise ValueError(f"{NAME}: unknown model {name!r}")


def images(dataset):
    """Digits as ``f32[n, 8, 8, 1]`` in [0, 1] (the raw pixels are 0..16)."""
    return [(x / 16.0).reshape(-1, 8, 8, 1).astype(np.float32) for x in (dataset.x_train, dataset.x_test)]


def accuracy(logits, labels):
    """Share of integer ``labels`` predicted (``fit`` evaluates on the labelled test set)."""
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def _fit(model, settings, name, data, eval_data, loss_fn, key, batch_transform=None):
    """Train ``model`` with AdamW and a cosine decay; ``(FitResult, (wall seconds, CPU seconds))``."""
    x_train = data[0]
    epochs = settings["epochs"][name]
    steps = epochs * (x_train.shape[0] // settings["batch_size"])
    optimizer = optax.adamw(optax.cosine_decay_schedule(settings["learning_rate"][name], steps),
                            weight_decay=settings["weight_decay"])  # fmt: skip
    init_key, fit_key = jax.random.split(key)
    _, params = model.init(init_key, (-1, *x_train.shape[1:]))
    state = model.init_state((-1, *x_train.shape[1:])) if model.stateful else None
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train.fit(model.apply, params, optimizer, data, loss_fn=loss_fn, key=fit_key, num_epochs=epochs,
                       batch_size=settings["batch_size"], eval_data=eval_data, metrics={"accuracy": accuracy},
                       state=state, batch_transform=batch_transform, progress=False)  # fmt: skip
    return result, (time.perf_counter() - start, time.process_time() - cpu_start)


def _logits(model, result, x):
    if model.stateful:
        return model.apply(result.state.params, x, state=result.state.model_state, train=False)[0]
    return model.apply(result.state.params, x)


def _first_layer_filters(params) -> list:
    """The first convolution's filters as ``[k][row][col]`` (one input channel)."""
    W = np.asarray(params["Conv_0"]["W"])  # (height, width, 1, k)
    return np.moveaxis(W[:, :, 0, :], -1, 0).tolist()


def _curves(result, seconds) -> dict:
    history = result.history
    return {
        "test_accuracy": history["eval_accuracy"][-1],
        "test_accuracy_history": history["eval_accuracy"],
        "test_loss_history": history["eval_loss"],
        "train_loss_history": history["train_loss"],
        "epoch": history["eval_epoch"],
        "train_seconds": seconds[0],
        "train_cpu_seconds": seconds[1],
    }


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train the 12 model/trick combinations and the 3 students (one unit of work each);
    writes ``cnn-digits.json`` and ``cnn-digits.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset = load_digits(test_fraction=0.25, seed=seed, standardize=False)
    x_train, x_test = images(dataset)
    y_train, y_test = dataset.y_train, dataset.y_test
    shift = augment.as_batch_transform(augment.random_shift(settings["max_shift"]))
    teacher_key = TEACHER_FAST if fast else TEACHER

    def trick_run(unit: str) -> dict:
        name, variant = unit.split("|")
        model = build(name, settings)
        smoothing = settings["label_smoothing"] if "smooth" in variant else 0.0
        key = jax.random.fold_in(jax.random.key(seed), MODELS.index(name))  # same init for all four variants
        result, seconds = _fit(model, settings, name, (x_train, y_train), (x_test, y_test),
                               make_cross_entropy_loss(smoothing), key, shift if "augment" in variant else None)  # fmt: skip
        value = {"model": name, "variant": variant, **_curves(result, seconds)}
        if name != "mlp":
            value["first_layer_filters"] = _first_layer_filters(result.state.params)
        if unit == teacher_key:
            value["teacher_train_logits"] = np.asarray(_logits(model, result, x_train)).tolist()
        return value

    def student_run(unit: str) -> dict:
        kind = unit.split("|")[1]
        model = build("student", settings)
        key = jax.random.fold_in(jax.random.key(seed), len(MODELS))  # the same student init for all three
        if kind == "labels":
            data, loss_fn = (x_train, y_train), make_cross_entropy_loss(0.0)
        else:
            saved = json.loads((out_dir / f"{NAME}.json").read_text())["completed_units"][teacher_key]
            teacher = np.asarray(saved["teacher_train_logits"], np.float32)
            T = float(kind.removeprefix("distill T="))
            data, loss_fn = (x_train, teacher), make_distillation_loss(T, q=1.0)
        eval_loss = make_cross_entropy_loss(0.0)
        result, seconds = _fit(model, settings, "student", data, (x_test, y_test),
                               loss_fn if kind == "labels" else _eval_safe(loss_fn, eval_loss), key)  # fmt: skip
        return {"student": kind, **_curves(result, seconds)}

    def work(unit: str) -> dict:
        return student_run(unit) if unit.startswith("student|") else trick_run(unit)

    keys = unit_keys(settings)
    units = run_units(NAME, keys, work, out_dir=out_dir, settings=settings, resume=resume)

    runs = {key: {k: v for k, v in value.items() if k != "teacher_train_logits"} for key, value in units.items()}
    accuracies = {key: value["test_accuracy"] for key, value in runs.items()}
    cnn_keys = [k for k in keys if k.split("|")[0] in ("lenet5", "resnet")]
    best_cnn = max(cnn_keys, key=lambda k: accuracies[k])
    num_test = int(y_test.shape[0])
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": dataset.name,
        "num_train": int(y_train.shape[0]),
        "num_test": num_test,
        "image_shape": [8, 8, 1],
        "num_params": {name: _num_params(build(name, settings)) for name in (*MODELS, "student")},
        "teacher": teacher_key,
        "test_accuracy": accuracies,
        "best_cnn": best_cnn,
        "best_cnn_test_accuracy": accuracies[best_cnn],
        "best_cnn_test_errors": int(round((1 - accuracies[best_cnn]) * num_test)),
        "total_train_seconds": sum(run["train_seconds"] for run in runs.values()),
        "total_train_cpu_seconds": sum(run["train_cpu_seconds"] for run in runs.values()),
        "runs": runs,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def _eval_safe(distill_loss, label_loss):
    """The distillation loss for teacher-logit targets ``f[n, 10]``, and the plain
    cross-entropy for the integer test labels ``fit`` evaluates with."""

    def loss_fn(logits, targets):
        if targets.ndim == 1:
            return label_loss(logits, targets)
        return distill_loss(logits, targets)

    return loss_fn


def _num_params(model) -> int:
    shapes = jax.eval_shape(lambda key: model.init(key, (-1, 8, 8, 1))[1], jax.random.key(0))
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(shapes)))


def _present(results: dict):
    """The variants and student runs a (fast or full) run has."""
    runs = results["runs"]
    variants = [v for v in VARIANTS if f"{MODELS[0]}|{v}" in runs]
    students = [k for k in STUDENT_RUNS if f"student|{k}" in runs]
    return variants, students


def summary(results: dict) -> dict:
    """The headline figures, for the ``jaxdl`` command."""
    acc = results["test_accuracy"]
    variants, students = _present(results)
    lines = {f"{name} test accuracy ({' / '.join(variants)})":
             " / ".join(f"{acc[f'{name}|{v}']:.4f}" for v in variants) for name in MODELS}  # fmt: skip
    lines[f"student ({' / '.join(students)})"] = " / ".join(f"{acc[f'student|{k}']:.4f}" for k in students)
    lines["best CNN"] = (f"{results['best_cnn']}: {results['best_cnn_test_accuracy']:.4f} "
                         f"({results['best_cnn_test_errors']} of {results['num_test']} test images wrong)")  # fmt: skip
    return lines


def _filter_mosaic(filters, columns: int):
    """Tile filters ``[k][h][w]`` into one image, each normalised to [-1, 1], with NaN gaps."""
    filters = np.asarray(filters, np.float64)
    k, h, w = filters.shape
    rows = -(-k // columns)
    mosaic = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for i, f in enumerate(filters):
        r, c = divmod(i, columns)
        scale = np.max(np.abs(f)) or 1.0
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = f / scale
    return mosaic


def figure(results: dict):
    """Test accuracy per epoch for every run, the distilled students, and the first-layer filters."""
    runs = results["runs"]
    variants, students = _present(results)
    fig, axes = new_figure(
        f"CNNs on 8x8 digits ({results['num_train']} train / {results['num_test']} test images): "
        f"best CNN {results['best_cnn']} at {results['best_cnn_test_accuracy']:.4f}",
        results["fast"], 2, 2, figsize=(13, 10))
    trick_ax, student_ax, lenet_ax, resnet_ax = axes.ravel()
    trick_keys = [f"{name}|{variant}" for name in MODELS for variant in variants]
    for color, key in zip(colors(len(trick_keys)), trick_keys):
        run = runs[key]
        trick_ax.plot(run["epoch"], run["test_accuracy_history"], color=color, lw=1.2,
                      label=f"{key.replace('|', ': ')} ({run['test_accuracy']:.3f})")  # fmt: skip
    student_keys = [f"student|{kind}" for kind in students]
    for color, key in zip(colors(len(student_keys) + 1), student_keys):
        run = runs[key]
        student_ax.plot(run["epoch"], run["test_accuracy_history"], color=color, lw=1.2,
                        label=f"student, {key.split('|')[1]} ({run['test_accuracy']:.3f})")  # fmt: skip
    teacher_accuracy = runs[results["teacher"]]["test_accuracy"]
    student_ax.axhline(teacher_accuracy, color=colors(len(student_keys) + 1)[-1], ls="--", lw=1,
                       label=f"teacher {results['teacher'].replace('|', ': ')} ({teacher_accuracy:.3f})")  # fmt: skip
    lowest = min(min(runs[k]["test_accuracy_history"]) for k in trick_keys + student_keys)
    for ax in (trick_ax, student_ax):
        ax.set_ylim(min(0.8, lowest - 0.02), 1.0)  # zoom on the top, unless a curve lies below
        ax.set(xlabel="epoch", ylabel="test accuracy")
    trick_ax.set_title("models x tricks (final test accuracy)")
    student_ax.set_title(f"distillation into a {results['num_params']['student']}-parameter LeNet "
                         f"(teacher: {results['num_params']['resnet']})")  # fmt: skip
    legend_outside(trick_ax, ncol=2, fontsize="x-small")
    legend_outside(student_ax, ncol=2, fontsize="x-small")
    for ax, key in ((lenet_ax, "lenet5|plain"), (resnet_ax, "resnet|plain")):
        filters = runs[key]["first_layer_filters"]
        count, height, width = np.shape(filters)
        columns = count // 2 if count % 2 == 0 and count <= 16 else int(np.ceil(np.sqrt(count)))  # two rows
        image = ax.imshow(_filter_mosaic(filters, columns), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(xlabel=f"filters of {width} columns", ylabel=f"filters of {height} rows",
               title=f"{key.split('|')[0]}: {count} first-layer filters (plain run)")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8, label="weight / max |weight| of its filter")
    return fig
