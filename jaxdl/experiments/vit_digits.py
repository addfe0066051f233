"""A vision transformer against the CNN of issue 9 on the bundled 8×8 digits, with attention maps.

The seeds' vision-transformer construction: cut the image into ``p × p`` patches,
embed each linearly (a strided convolution), prepend a learned class token, add
learned position embeddings, run transformer blocks and classify from the class
token. Here :func:`jaxdl.models.vit` with patch size 2 (16 patches of 2×2 pixels,
17 tokens) against LeNet-5 (SAME convolutions, :func:`jaxdl.models.lenet5`, the
model of :mod:`jaxdl.experiments.cnn_digits`), on :func:`jaxdl.data.load_digits`
(1347 training and 450 test images, pixels scaled to [0, 1]).

Both models are trained with AdamW and a cosine learning-rate decay on minibatches
of 64, with random shifts by up to one pixel (:func:`jaxdl.data.augment.random_shift`)
as augmentation; learning rate, weight decay and epochs are per model (``settings``:
the tanh LeNet-5 wants a larger step, the ViT more epochs and more decay). The
reported accuracy is the one after the last epoch (no selection on the test set).

Attention maps (the figure), for test images, of the class token over the 16 patches:

* **last layer**: row 0 (the class token) of the last block's attention weights,
  averaged over heads, restricted to the patch tokens;
* **attention rollout** (Abnar & Zuidema, 2020): with ``Ā_l = ½ (mean_heads A_l + I)``
  renormalised by rows (the residual connection as an identity share), the product
  ``R = Ā_L ⋯ Ā_1`` and its row 0 over the patches: how the class token's final
  state mixes the input patches through all layers.

Each model is a unit of work (:mod:`jaxdl.experiments.units`), so an interrupted run resumes.
"""

from __future__ import annotations

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
from jaxdl.train.losses import make_cross_entropy_loss

NAME = "vit-digits"
DESCRIPTION = "vision transformer (2x2 patches) vs LeNet-5 on 8x8 digits: test accuracy and class-token attention maps"
FAST_MODE = "8 epochs for the ViT and 4 for LeNet-5 (full: 40 and 30), a 2-layer ViT (full: 3 layers)"

MODELS = ("vit", "lenet5")
BATCH_SIZE = 64
NUM_EXAMPLES = 5


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    return {
        "fast": fast,
        "seed": seed,
        "epochs": {"vit": 8, "lenet5": 4} if fast else {"vit": 40, "lenet5": 30},
        "learning_rate": {"vit": 2e-3, "lenet5": 1e-2},
        "weight_decay": {"vit": 0.05, "lenet5": 1e-4},
        "batch_size": BATCH_SIZE,
        "max_shift": 1,
        "vit": {"patch_size": 2, "d_model": 64, "num_heads": 4, "num_layers": 2 if fast else 3, "mlp_ratio": 2},
    }


def build(name: str, settings: dict):
    """The stax triple of model ``name`` on ``(B, 8, 8, 1)`` images → 10 logits."""
    if name == "vit":
        return models.vit(10, **settings["vit"])
    if name == "lenet5":
        return models.lenet5(10, padding="SAME", parameterization="standard", b_std=0.0)
    raise ValueError(f"{NAME}: unknown model {name!r}")


def images(dataset):
    """Digits as ``f32[n, 8, 8, 1]`` in [0, 1] (the raw pixels are 0..16)."""
    return [(x / 16.0).reshape(-1, 8, 8, 1).astype(np.float32) for x in (dataset.x_train, dataset.x_test)]


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def class_token_attention(weights) -> tuple[np.ndarray, np.ndarray]:
    """From per-layer attention ``[(B, heads, N+1, N+1)]`` (token 0 the class token): the last layer's
    class-token row over the patches, and the attention rollout's, each ``(B, N)``."""
    layers = [np.asarray(w, np.float64).mean(axis=1) for w in weights]  # (B, N+1, N+1) each
    last = layers[-1][:, 0, 1:]
    eye = np.eye(layers[0].shape[-1])
    rollout = np.broadcast_to(eye, layers[0].shape).copy()
    for a in layers:
        a = 0.5 * (a + eye)
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a @ rollout
    return last, rollout[:, 0, 1:]


def train_model(name: str, splits, settings: dict) -> dict:
    """Train model ``name`` with AdamW, cosine decay and random shifts; curves and (ViT) attention maps."""
    (x_train, y_train), (x_test, y_test) = splits
    init_fn, apply_fn, _ = build(name, settings)
    key = jax.random.fold_in(jax.random.key(settings["seed"]), MODELS.index(name))
    init_key, fit_key = jax.random.split(key)
    _, params = init_fn(init_key, (-1, 8, 8, 1))
    epochs = settings["epochs"][name]
    steps = epochs * (x_train.shape[0] // settings["batch_size"])
    optimizer = optax.adamw(optax.cosine_decay_schedule(settings["learning_rate"][name], steps),
                            weight_decay=settings["weight_decay"][name])  # fmt: skip
    shift = augment.as_batch_transform(augment.random_shift(settings["max_shift"]))
    start = time.perf_counter()
    result = train.fit(apply_fn, params, optimizer, (x_train, y_train), loss_fn=make_cross_entropy_loss(0.0),
                       key=fit_key, num_epochs=epochs, batch_size=settings["batch_size"], eval_data=(x_test, y_test),
                       metrics={"accuracy": accuracy}, batch_transform=shift, progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    params = result.state.params
    history = result.history
    value = {
        "model": name,
        "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
        "test_accuracy": history["eval_accuracy"][-1],
        "test_accuracy_history": history["eval_accuracy"],
        "train_loss_history": history["train_loss"],
        "epoch": history["eval_epoch"],
        "train_seconds": seconds,
    }
    if name == "vit":
        logits, weights = apply_fn(params, jnp.asarray(x_test), return_attention=True)
        last, rollout = class_token_attention(weights)
        side = 8 // settings["vit"]["patch_size"]
        picks = list(range(NUM_EXAMPLES))
        value.update({
            "attention_grid": [side, side],
            "examples": picks,
            "example_predictions": np.argmax(np.asarray(logits)[picks], axis=-1),
            "last_layer_attention": last[picks].reshape(-1, side, side),
            "rollout_attention": rollout[picks].reshape(-1, side, side),
            "mean_last_layer_attention": last.mean(axis=0).reshape(side, side),
            "mean_rollout_attention": rollout.mean(axis=0).reshape(side, side),
            "class_token_self_attention_last_layer": float(np.mean(np.asarray(weights[-1]).mean(axis=1)[:, 0, 0])),
        })  # fmt: skip
    return value


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train the ViT and LeNet-5 (one unit of work each); writes ``vit-digits.json`` and ``vit-digits.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset = load_digits(test_fraction=0.25, seed=seed, standardize=False)
    x_train, x_test = images(dataset)
    splits = ((x_train, dataset.y_train), (x_test, dataset.y_test))
    units = run_units(NAME, list(MODELS), lambda name: train_model(name, splits, settings), out_dir=out_dir,
                      settings=settings, resume=resume)  # fmt: skip
    picks = units["vit"]["examples"]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": dataset.name,
        "num_train": int(x_train.shape[0]),
        "num_test": int(x_test.shape[0]),
        "image_shape": [8, 8, 1],
        "test_accuracy": {name: units[name]["test_accuracy"] for name in MODELS},
        "num_params": {name: units[name]["num_params"] for name in MODELS},
        "attention_method": "class-token row of the last layer (mean over heads) and attention rollout "
                            "(Abnar & Zuidema 2020, 0.5 (A + I) per layer)",
        "example_images": x_test[picks, :, :, 0],
        "example_labels": dataset.y_test[picks],
        "runs": units,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures, for the ``jaxdl`` command."""
    lines = {f"{name} test accuracy ({results['num_params'][name]} params)": f"{acc:.4f}"
             for name, acc in results["test_accuracy"].items()}  # fmt: skip
    lines["training seconds (" + " / ".join(MODELS) + ")"] = " / ".join(
        f"{results['runs'][name]['train_seconds']:.0f}" for name in MODELS)
    return lines


def figure(results: dict):
    """Test accuracy per epoch, and the ViT's class-token attention over patches (last layer, rollout)."""
    vit = results["runs"]["vit"]
    count = len(results["example_images"])
    fig, axes = new_figure(
        f"ViT (2x2 patches) vs LeNet-5 on 8x8 digits: test accuracy "
        + ", ".join(f"{n} {a:.4f}" for n, a in results["test_accuracy"].items()),
        results["fast"], 3, count + 1, figsize=(3 * (count + 1), 9.5))  # fmt: skip
    curve_ax = axes[0, 0]
    for color, name in zip(colors(len(MODELS)), MODELS):
        run = results["runs"][name]
        curve_ax.plot(run["epoch"], run["test_accuracy_history"], color=color, lw=1.2,
                      label=f"{name} ({run['num_params']} params): {run['test_accuracy']:.4f}")  # fmt: skip
    curve_ax.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy", ylim=(0, 1.02))
    legend_outside(curve_ax, fontsize="x-small")
    side = vit["attention_grid"][0]
    for row, (key, what) in enumerate((("last_layer_attention", "last layer"), ("rollout_attention", "rollout")), 1):
        mean_ax = axes[row, 0]
        image = mean_ax.imshow(np.asarray(vit[f"mean_{key}"]), cmap="magma", vmin=0)
        mean_ax.set(title=f"{what}: mean over test images", xlabel="patch column", ylabel="patch row")
        fig.colorbar(image, ax=mean_ax, shrink=0.8, label="class-token attention")
        for col in range(count):
            ax = axes[row, col + 1]
            image = ax.imshow(np.asarray(vit[key][col]), cmap="magma", vmin=0)
            ax.set(title=f"{what}, image {col + 1}", xlabel="patch column", ylabel="patch row")
            fig.colorbar(image, ax=ax, shrink=0.8)
    for col in range(count):
        ax = axes[0, col + 1]
        ax.imshow(np.asarray(results["example_images"][col]), cmap="gray_r", vmin=0, vmax=1)
        ax.set(title=f"image {col + 1}: label {results['example_labels'][col]}, "
                     f"ViT says {vit['example_predictions'][col]}", xlabel="pixel column", ylabel="pixel row")  # fmt: skip
        ax.title.set_fontsize("small")
    for ax in axes[1:, :].ravel():
        ax.set_xticks(range(side))
        ax.set_yticks(range(side))
    return fig
