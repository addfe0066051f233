"""Adversarial robustness on the bundled 8×8 digits: attacks, robust training, certificates.

The seeds' robustness chapter (threat models, FGSM, PGD, DeepFool, robust training
as a min-max problem, certified robustness by interval bound propagation and
randomized smoothing; :mod:`jaxdl.robust`) on :func:`jaxdl.data.load_digits`
(1347 training and 450 test images, pixels scaled to [0, 1], the attack domain):

1. an MLP trained five ways (one unit of work each): ``standard`` (cross-entropy),
   ``adversarial`` (Madry: PGD inside every training step, L∞ ε_train),
   ``trades`` (TRADES, β = 6; full run only), ``ibp`` (IBP certified training: a clean
   warm-up, then ε ramped up to ε_train and κ down to 1/2 over four phases) and ``noise`` (Gaussian data augmentation,
   σ, the base classifier of randomized smoothing);
2. for each: clean accuracy, and over a range of L∞ ε the accuracy under FGSM and
   PGD-20 (random start, restarts) and the IBP-certified accuracy; the median L2
   norm of DeepFool's minimal perturbations; for ``standard`` and ``noise`` the
   certified accuracy of the smoothed classifier (Cohen et al.'s CERTIFY) vs L2 radius;
3. the infinite-width network: PGD (margin loss) against the closed-form NTK predictor
   (``predict.gradient_descent_mse_ensemble`` at t = ∞) of a one-hidden-layer ReLU
   network, next to finite networks of growing width trained by full-batch gradient
   descent on the same MSE loss, on a training subset; the finite nets are centred
   (``f_t - f_0``, whose infinite-width limit is exactly the predictor's mean, Lee et al.
   2019), and the predictor is also attacked at the training time ``t = steps × lr``.

Every training run is AdamW with a cosine decay on minibatches of 64 (full-batch
GD for the NTK comparison); accuracies are after the last epoch.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import models, predict, robust, stax, train
from jaxdl.data import load_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units

NAME = "robust-digits"
DESCRIPTION = ("Adversarial robustness of MLPs on 8x8 digits: FGSM/PGD/DeepFool vs standard, adversarial, TRADES, "
               "IBP and noise training; IBP and smoothing certificates; PGD on the NTK predictor vs finite widths")  # fmt: skip
FAST_MODE = ("MLP 64-64 (full: 128-128), 10 epochs and IBP 20 (full: 30, 50), PGD-20 with 1 restart (full: 3), eps grid "
             "of 4 (full: 6), no TRADES, smoothing with n = 500 on 100 test images (full: 10000 on 450), NTK on 300 "
             "training images, 500 GD steps, widths 64-1024 (full: 1000 images, 2000 steps, widths 64-4096)")  # fmt: skip

METHODS = ("standard", "adversarial", "trades", "ibp", "noise")
DOMAIN = (0.0, 1.0)
BATCH_SIZE = 64


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    return {
        "fast": fast,
        "seed": seed,
        "methods": [m for m in METHODS if not (fast and m == "trades")],
        "hidden": [128, 128] if not fast else [64, 64],
        "epochs": 10 if fast else 30,
        "learning_rate": 3e-3,
        "weight_decay": 1e-4,
        "batch_size": BATCH_SIZE,
        "train_eps": 0.1,
        "train_pgd_steps": 5 if fast else 7,
        "trades_beta": 6.0,
        "ibp_phases": 4,
        "ibp_epochs": 20 if fast else 50,
        "ibp_kappa": 0.5,
        "noise_sigma": 0.25,
        "eps": [0.0, 0.05, 0.1, 0.2] if fast else [0.0, 0.025, 0.05, 0.1, 0.15, 0.2],
        "pgd_steps": 20,
        "pgd_restarts": 1 if fast else 3,
        "smoothing_n0": 32 if fast else 100,
        "smoothing_n": 500 if fast else 10_000,
        "smoothing_alpha": 0.001,
        "smoothing_examples": 100 if fast else 450,
        "radii": [0.0, 0.25, 0.5, 0.75, 1.0],
        "ntk_train": 300 if fast else 1000,
        "ntk_widths": [64, 256, 1024] if fast else [64, 256, 1024, 4096],
        "ntk_steps": 500 if fast else 2000,
        "ntk_learning_rate": 20.0,
        "ntk_eps": [0.0, 0.05, 0.1] if fast else [0.0, 0.025, 0.05, 0.1],
        "ntk_test": 150 if fast else 450,
    }


def unit_keys(settings: dict) -> list[str]:
    """The units of work: one per training method, then the NTK predictor and the finite widths."""
    time_ = settings["ntk_steps"] * settings["ntk_learning_rate"]
    return ([f"train|{m}" for m in settings["methods"]] + ["ntk|infinite", f"ntk|t={time_:g}"]
            + [f"ntk|width={w}" for w in settings["ntk_widths"]])  # fmt: skip


def data(seed: int):
    """The digits as ``f32[n, 64]`` in [0, 1] and their labels."""
    dataset = load_digits(test_fraction=0.25, seed=seed, standardize=False)
    scale = lambda x: (np.asarray(x) / 16.0).reshape(len(x), -1).astype(np.float32)
    return dataset, scale(dataset.x_train), np.asarray(dataset.y_train), scale(dataset.x_test), np.asarray(dataset.y_test)


def build(settings: dict):
    """The MLP of every training method (standard parameterisation, He-scaled weights)."""
    return models.mlp(tuple(settings["hidden"]), 10, W_std=2**0.5, parameterization="standard", b_std=0.0)


def _accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def _ce(logits, labels):
    return jnp.mean(robust.cross_entropy(logits, labels))


def train_method(method: str, settings: dict, x, y, key):
    """Params of the MLP trained by ``method``; ``(params, seconds)``."""
    model = build(settings)
    init_key, fit_key = jax.random.split(key)
    _, params = model.init(init_key, (-1, x.shape[1]))
    eps, steps = settings["train_eps"], settings["train_pgd_steps"]
    phases = [(settings["epochs"], None, None)]
    if method == "adversarial":
        phases = [(settings["epochs"], robust.adversarial_objective(model.apply, eps=eps, steps=steps, domain=DOMAIN), None)]
    elif method == "trades":
        phases = [(settings["epochs"], robust.trades_objective(model.apply, eps=eps, beta=settings["trades_beta"],
                                                               steps=steps, domain=DOMAIN), None)]  # fmt: skip
    elif method == "ibp":  # clean warm-up, then ε ramped up and κ down from 1 in equal phases
        count, kappa = settings["ibp_phases"], settings["ibp_kappa"]
        per_phase = settings["ibp_epochs"] // (count + 1)
        phases = [(per_phase, None, None)] + [
            (per_phase, robust.ibp_objective(model, eps=eps * (k + 1) / count, kappa=1 - (1 - kappa) * (k + 1) / count,
                                             domain=DOMAIN), None) for k in range(count)]  # fmt: skip
    elif method == "noise":
        sigma = settings["noise_sigma"]
        phases = [(settings["epochs"], None,
                   lambda k, xb, yb: (xb + sigma * jax.random.normal(k, xb.shape, xb.dtype), yb))]  # fmt: skip
    start = time.perf_counter()
    for index, (epochs, objective, transform) in enumerate(phases):
        total_steps = epochs * (x.shape[0] // settings["batch_size"])
        last = index + 1 == len(phases)  # the cosine decay in the last phase, a third of the rate before
        rate = optax.cosine_decay_schedule(settings["learning_rate"], total_steps) if last else settings["learning_rate"] / 3
        optimizer = optax.adamw(rate, weight_decay=settings["weight_decay"])
        result = train.fit(model.apply, params, optimizer, (x, y), loss_fn=_ce, key=jax.random.fold_in(fit_key, index),
                           num_epochs=epochs, batch_size=settings["batch_size"], train_objective=objective,
                           batch_transform=transform, progress=False)  # fmt: skip
        params = result.state.params
    return model, params, time.perf_counter() - start


def evaluate_method(model, params, settings: dict, x, y, key, with_smoothing: bool) -> dict:
    """Clean, FGSM, PGD and IBP-certified accuracy per ε; DeepFool's median L2; smoothing."""
    apply = jax.jit(model.apply)
    out = {"clean_accuracy": float(_accuracy(apply(params, x), y)), "fgsm": [], "pgd": [], "ibp_certified": []}
    attack = jax.jit(lambda p, xs, ys, k, eps: robust.pgd(model.apply, p, xs, ys, k, eps=eps, steps=settings["pgd_steps"],
                                                          restarts=settings["pgd_restarts"], domain=DOMAIN))  # fmt: skip
    one_step = jax.jit(lambda p, xs, ys, eps: robust.fgsm(model.apply, p, xs, ys, eps=eps, domain=DOMAIN))
    for i, eps in enumerate(settings["eps"]):
        out["fgsm"].append(float(_accuracy(apply(params, one_step(params, x, y, eps)), y)))
        x_adv = attack(params, x, y, jax.random.fold_in(key, i), eps)
        out["pgd"].append(float(_accuracy(apply(params, x_adv), y)))
        out["ibp_certified"].append(float(robust.ibp_certified_accuracy(model, params, x, y, eps, domain=DOMAIN)))
    x_fool = jax.jit(lambda p, xs, ys: robust.deepfool(model.apply, p, xs, ys, domain=DOMAIN))(params, x, y)
    correct = np.asarray(jnp.argmax(apply(params, x), -1) == y)
    fooled = np.asarray(jnp.argmax(apply(params, x_fool), -1) != y) & correct
    norms = np.linalg.norm(np.asarray(x_fool - x), axis=-1)
    out["deepfool_median_l2"] = float(np.median(norms[fooled])) if fooled.any() else None
    out["deepfool_success"] = float(fooled.sum() / max(correct.sum(), 1))
    if with_smoothing:
        count = settings["smoothing_examples"]
        classes, radii, _ = robust.certify(model.apply, params, x[:count], jax.random.fold_in(key, 999),
                                           sigma=settings["noise_sigma"], n0=settings["smoothing_n0"],
                                           n=settings["smoothing_n"], alpha=settings["smoothing_alpha"])  # fmt: skip
        out["smoothing_certified"] = [float(robust.certified_accuracy(classes, radii, y[:count], r)) for r in settings["radii"]]
        out["smoothing_abstain"] = float(jnp.mean(classes == robust.ABSTAIN))
    return out


def ntk_architecture(width: int):
    """One hidden ReLU layer in the NTK parameterisation (its ``kernel_fn`` is width-free)."""
    return stax.serial(stax.Dense(width, W_std=2**0.5, b_std=0.1), stax.Relu(), stax.Dense(10, W_std=1.0, b_std=0.1))


def ntk_unit(unit: str, settings: dict, x, y, x_test, y_test, key) -> dict:
    """Clean and PGD accuracy of the NTK predictor (mean at t = ∞ or at the training time
    t = steps × learning rate) or of a finite net trained by that many GD steps on the MSE."""
    n = settings["ntk_train"]
    x_train, targets = x[:n], jax.nn.one_hot(y[:n], 10) - 0.1
    x_eval, y_eval = x_test[: settings["ntk_test"]], y_test[: settings["ntk_test"]]
    start = time.perf_counter()
    train_loss = None
    if not unit.startswith("ntk|width="):
        kernel_fn = ntk_architecture(1).kernel
        predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, targets,
                                                           learning_rate=settings["ntk_learning_rate"])  # fmt: skip
        t = None if unit == "ntk|infinite" else float(unit.split("=")[1])
        logits_fn, params = robust.predictor_logits(predict_fn, "ntk", t=t), None
    else:
        width = int(unit.split("=")[1])
        model = ntk_architecture(width)
        _, params = model.init(jax.random.fold_in(key, width), (-1, x.shape[1]))
        mse = lambda out, t: 0.5 * jnp.mean((out - t) ** 2)  # the normalisation of gradient_descent_mse_ensemble
        initial = params
        logits_fn = lambda p, z: model.apply(p, z) - model.apply(initial, z)  # centred: f_t - f_0
        result = train.fit(logits_fn, params, optax.sgd(settings["ntk_learning_rate"]), (x_train, targets),
                           loss_fn=mse, key=key, num_epochs=settings["ntk_steps"], progress=False)  # fmt: skip
        params, train_loss = result.state.params, result.history["train_loss"][-1]
    attack = jax.jit(lambda p, xs, ys, k, eps: robust.pgd(logits_fn, p, xs, ys, k, eps=eps, steps=settings["pgd_steps"],
                                                          restarts=settings["pgd_restarts"], domain=DOMAIN,
                                                          loss="margin"))  # fmt: skip
    clean = float(_accuracy(logits_fn(params, x_eval), y_eval))
    pgd_acc = []
    for i, eps in enumerate(settings["ntk_eps"]):
        x_adv = attack(params, x_eval, y_eval, jax.random.fold_in(key, i), eps)
        pgd_acc.append(float(_accuracy(logits_fn(params, x_adv), y_eval)))
    return {"clean_accuracy": clean, "pgd": pgd_acc, "final_train_loss": train_loss, "seconds": time.perf_counter() - start}


def _examples(model, params, x, y, eps, key, count: int = 4) -> dict:
    """A few test images, their PGD adversarial versions at ``eps`` and both predictions."""
    x_adv = robust.pgd(model.apply, params, x[:count], y[:count], key, eps=eps, steps=20, domain=DOMAIN)
    return {"eps": eps, "x": np.asarray(x[:count]).tolist(), "x_adv": np.asarray(x_adv).tolist(), "y": y[:count].tolist(),
            "pred": np.asarray(jnp.argmax(model.apply(params, x[:count]), -1)).tolist(),
            "pred_adv": np.asarray(jnp.argmax(model.apply(params, x_adv), -1)).tolist()}  # fmt: skip


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train and attack every method, certify, attack the NTK predictor; writes
    ``robust-digits.json`` and ``robust-digits.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset, x_train, y_train, x_test, y_test = data(seed)

    def work(unit: str) -> dict:
        kind, what = unit.split("|")
        key = jax.random.fold_in(jax.random.key(seed), unit_keys(settings).index(unit))
        if kind == "ntk":
            return ntk_unit(unit, settings, x_train, y_train, x_test, y_test, key)
        model, params, seconds = train_method(what, settings, x_train, y_train, jax.random.key(seed))
        start = time.perf_counter()
        value = evaluate_method(model, params, settings, x_test, y_test, key, with_smoothing=what in ("standard", "noise"))
        value.update(train_seconds=seconds, eval_seconds=time.perf_counter() - start)
        if what in ("standard", "adversarial"):
            value["examples"] = _examples(model, params, x_test, y_test, settings["train_eps"], key)
        return value

    units = run_units(NAME, unit_keys(settings), work, out_dir=out_dir, settings=settings, resume=resume)
    methods = {key.split("|")[1]: value for key, value in units.items() if key.startswith("train|")}
    ntk = {key.split("|")[1]: value for key, value in units.items() if key.startswith("ntk|")}
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": dataset.name,
        "num_train": int(len(y_train)),
        "num_test": int(len(y_test)),
        "domain": list(DOMAIN),
        "methods": methods,
        "ntk": ntk,
        "total_seconds": sum(v.get("train_seconds", 0) + v.get("eval_seconds", 0) + v.get("seconds", 0)
                             for v in units.values()),  # fmt: skip
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def _eps_index(results: dict, eps: float) -> int:
    grid = results["settings"]["eps"]
    return int(np.argmin(np.abs(np.asarray(grid) - eps)))


def summary(results: dict) -> dict:
    """The headline figures: per method clean / PGD / IBP-certified accuracy at the training ε."""
    eps = results["settings"]["train_eps"]
    i = _eps_index(results, eps)
    lines = {f"{name}: clean / PGD-20 / IBP-certified at eps={eps}":
             f"{m['clean_accuracy']:.3f} / {m['pgd'][i]:.3f} / {m['ibp_certified'][i]:.3f}"
             for name, m in results["methods"].items()}  # fmt: skip
    ntk_eps = results["settings"]["ntk_eps"]
    lines[f"NTK predictor vs widths: PGD accuracy at eps={ntk_eps[-1]}"] = ", ".join(
        f"{name}: {v['pgd'][-1]:.3f}" for name, v in results["ntk"].items())
    return lines


def figure(results: dict):
    """Robust accuracy vs ε per method, smoothing certificates vs radius, NTK vs widths, adversarial examples."""
    settings, methods = results["settings"], results["methods"]
    fig, axes = new_figure(f"Adversarial robustness on 8x8 digits ({results['num_train']} train / "
                           f"{results['num_test']} test images, pixels in [0, 1])", results["fast"], 2, 2,
                           figsize=(13, 10))  # fmt: skip
    eps_ax, smooth_ax, ntk_ax, example_ax = axes.ravel()
    palette = colors(len(methods))
    for color, (name, m) in zip(palette, methods.items()):
        eps_ax.plot(settings["eps"], m["pgd"], color=color, marker="o", label=f"{name}: PGD-{settings['pgd_steps']}")
        eps_ax.plot(settings["eps"], m["ibp_certified"], color=color, ls="--", marker="x", label=f"_{name} IBP")
    eps_ax.plot([], [], color="gray", ls="--", marker="x", label="(dashed) IBP-certified")
    eps_ax.set(xlabel="L-inf radius eps", ylabel="test accuracy", title="robust (PGD) and certified (IBP) accuracy",
               ylim=(-0.02, 1.02))  # fmt: skip
    legend_outside(eps_ax, ncol=3, fontsize="x-small")
    smooth = [(name, m) for name, m in methods.items() if "smoothing_certified" in m]
    for color, (name, m) in zip(colors(len(smooth)), smooth):
        smooth_ax.plot(settings["radii"], m["smoothing_certified"], color=color, marker="o",
                       label=f"{name} (abstains {m['smoothing_abstain']:.2f})")  # fmt: skip
    smooth_ax.set(xlabel="L2 radius", ylabel="certified test accuracy", ylim=(-0.02, 1.02),
                  title=f"randomized smoothing, sigma = {settings['noise_sigma']}, n = {settings['smoothing_n']}")  # fmt: skip
    legend_outside(smooth_ax, ncol=2, fontsize="x-small")
    ntk = results["ntk"]
    for color, (name, v) in zip(colors(len(ntk)), ntk.items()):
        ntk_ax.plot(settings["ntk_eps"], v["pgd"], color=color, marker="o", lw=2.5 if not name.startswith("width") else 1.2,
                    label=f"NTK predictor, {name}" if not name.startswith("width") else f"finite {name}")  # fmt: skip
    ntk_ax.set(xlabel="L-inf radius eps", ylabel="test accuracy under PGD (margin loss)", ylim=(-0.02, 1.02),
               title=f"infinite vs finite width, GD on MSE, {settings['ntk_train']} training images")  # fmt: skip
    legend_outside(ntk_ax, ncol=3, fontsize="x-small")
    rows = [(name, methods[name]["examples"]) for name in ("standard", "adversarial") if "examples" in methods.get(name, {})]
    if rows:
        columns = len(rows[0][1]["x"])
        mosaic = np.full((2 * len(rows) * 9 - 1, columns * 9 - 1), np.nan)
        for r, (name, ex) in enumerate(rows):
            for c in range(columns):
                for k, key in enumerate(("x", "x_adv")):
                    top = (2 * r + k) * 9
                    mosaic[top : top + 8, c * 9 : c * 9 + 8] = np.asarray(ex[key][c]).reshape(8, 8)
        example_ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1)
        labels = [f"{name} {kind}" for name, _ in rows for kind in ("clean", "PGD")]
        example_ax.set_yticks([k * 9 + 3.5 for k in range(len(labels))], labels, fontsize="x-small")
        example_ax.set_xticks([c * 9 + 3.5 for c in range(columns)],
                              [" / ".join(f"{ex['pred'][c]}->{ex['pred_adv'][c]}" for _, ex in rows) for c in range(columns)],
                              fontsize="x-small")  # fmt: skip
        example_ax.set(xlabel="test image (prediction clean->adversarial, per model)", ylabel="model and input",
                       title=f"PGD examples at eps = {rows[0][1]['eps']}")  # fmt: skip
    return fig
