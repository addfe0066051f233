"""Double descent on the digits: test error against the number of parameters p and of samples n.

Inputs: the digits' pixels / 16, centred (:func:`center_pixels`). The seeds: "test error
decreases, rises (at the interpolation threshold), and then decreases
again as width grows"; and the bias-variance trade-off ``E[(f(x) − y)²] = Bias² + Var + σ²``.

* Random features: least squares on ``p`` features ``relu(W x / √d)`` (fixed random ``W``),
  the minimum-norm solution (:func:`jaxdl.theory.generalization.min_norm_regression`),
  one-hot targets; test MSE against ``p`` for fixed ``n`` (peak at ``p = n``) and against
  ``n`` for fixed ``p`` (peak at ``n = p``).
* NTK features: the same regression on ``p`` of the gradient features ``∂f(x)/∂θ`` of a
  one-hidden-layer net of width 32 at initialisation (its empirical NTK), a random subset of
  ``p`` parameters (the linearised net in which only those move).
* Bias-variance: the random-features fit repeated over training sets drawn from the
  training pool; ``Bias²`` and ``Var`` against ``p`` (the variance makes the peak).
* Small MLPs: one hidden layer, trained with full-batch Adam on the squared loss to (near)
  interpolation, test MSE against the parameter count (for ``K = 10`` outputs the
  threshold is at about ``n K`` parameters, Belkin et al. 2019).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.ticker import NullFormatter

from jaxdl import train
from jaxdl.data import load_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.models import mlp
from jaxdl.stax import Dense, Relu, serial
from jaxdl.theory.generalization import (
    bias_variance_decomposition,
    min_norm_regression,
    ntk_features,
    random_features,
)

NAME = "double-descent"
DESCRIPTION = ("random-features, NTK-features and MLP regression on digits: the test-error peak at the "
               "interpolation threshold p = n, sample-wise double descent, bias-variance over training sets")
FAST_MODE = "n = 100 training images (full: 200), 2 feature seeds (5), 5 training-set draws (10), 4 MLP widths (7)"


def settings_for(fast: bool, seed: int) -> dict:
    n = 100 if fast else 200
    ratios = [0.1, 0.25, 0.5, 0.7, 0.85, 0.95, 1.0, 1.05, 1.15, 1.3, 1.6, 2.0, 3.0, 5.0, 10.0]
    return {
        "fast": fast,
        "seed": seed,
        "num_train": n,
        "num_features": sorted({max(1, round(r * n)) for r in ratios}),
        "feature_seeds": 2 if fast else 5,
        "samplewise_features": n,
        "samplewise_num_train": sorted({round(r * n) for r in [0.2, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 2, 4]}),
        "ntk_width": 32,
        "bias_variance_draws": 5 if fast else 10,
        "bias_variance_features": sorted({round(r * n) for r in [0.25, 0.5, 0.85, 1.0, 1.15, 2.0, 5.0]}),
        "mlp_widths": [2, 8, 32, 256] if fast else [2, 4, 8, 16, 32, 64, 256],
        "mlp_num_train": 50 if fast else 100,
        "mlp_steps": 2000 if fast else 5000,
    }


def center_pixels(x_train, x_test):
    """Pixels / 16 minus the training mean: centred, but not divided by each pixel's standard
    deviation (which would turn the rare pixels of the test images into outliers)."""
    mean = jnp.mean(jnp.asarray(x_train), axis=0)
    return (jnp.asarray(x_train) - mean) / 16.0, (jnp.asarray(x_test) - mean) / 16.0


def one_hot(labels, num_classes: int = 10) -> jax.Array:
    return jax.nn.one_hot(labels, num_classes)


def test_mse(predictions, labels) -> float:
    """Squared error to the one-hot labels, summed over the 10 outputs, mean over examples."""
    return float(jnp.mean(jnp.sum((predictions - one_hot(labels)) ** 2, axis=-1)))


def test_error(predictions, labels) -> float:
    return float(jnp.mean(jnp.argmax(predictions, axis=-1) != labels))


def rf_fit_predict(key, x_train, y_train, x_test, num_features: int):
    """Min-norm least squares on ``num_features`` random ReLU features; predictions on ``x_test``."""
    features = random_features(key, x_train.shape[1], num_features)
    beta = min_norm_regression(features(x_train), one_hot(y_train))
    return features(x_test) @ beta, float(jnp.linalg.norm(beta))


def random_features_curve(key, x_train, y_train, x_test, y_test, num_features, num_seeds: int) -> dict:
    """Test MSE, test error and ‖β‖ against p, each averaged over ``num_seeds`` feature draws."""
    rows = {"test_mse": [], "test_error": [], "coef_norm": []}
    for p in num_features:
        runs = [rf_fit_predict(jax.random.fold_in(key, s), x_train, y_train, x_test, p) for s in range(num_seeds)]
        rows["test_mse"].append(float(np.mean([test_mse(pred, y_test) for pred, _ in runs])))
        rows["test_error"].append(float(np.mean([test_error(pred, y_test) for pred, _ in runs])))
        rows["coef_norm"].append(float(np.mean([norm for _, norm in runs])))
    return {"num_features": list(num_features), **rows}


def peak_of(xs, ys):
    """The x of the largest y (the interpolation peak)."""
    return xs[int(np.argmax(ys))]


def ntk_curve(key, x_train, y_train, x_test, y_test, num_features, width: int) -> dict:
    """Min-norm regression on ``p`` of the NTK features ``∂f(x)/∂θ`` of a one-hidden-layer net of
    ``width`` at initialisation: the linearised net in which only ``p`` random parameters move."""
    init_fn, apply_fn, _ = serial(Dense(width), Relu(), Dense(1))
    init_key, pick_key = jax.random.split(key)
    _, params = init_fn(init_key, (-1, x_train.shape[1]))
    phi_train, phi_test = ntk_features(apply_fn, params, x_train), ntk_features(apply_fn, params, x_test)
    # gradients w.r.t. the weights of pixels blank in every training image (or of units dead on all
    # of them) are identically zero there: they are not features, so p counts only the others
    alive = np.flatnonzero(np.asarray(jnp.linalg.norm(phi_train, axis=0)) > 0)
    total = int(alive.size)
    order = jnp.asarray(alive)[jax.random.permutation(pick_key, total)]
    rows = {"test_mse": [], "test_error": []}
    for p in num_features:
        columns = order[: min(p, total)]
        beta = min_norm_regression(phi_train[:, columns], one_hot(y_train))
        predictions = phi_test[:, columns] @ beta
        rows["test_mse"].append(test_mse(predictions, y_test))
        rows["test_error"].append(test_error(predictions, y_test))
    return {"width": width, "total_params": int(phi_train.shape[1]), "nonzero_features": total, "num_params": [min(p, total) for p in num_features], **rows}


def bias_variance_curve(key, x_pool, y_pool, x_test, y_test, n: int, num_features, draws: int) -> dict:
    """Bias² and Var of the random-features fit over ``draws`` training sets of size ``n`` from the pool
    (features fixed); the test labels' one-hot vectors stand for f* (noise counted in Bias²)."""
    rows = {"bias_squared": [], "variance": [], "expected_mse": []}
    subsets = [jax.random.choice(jax.random.fold_in(key, s), x_pool.shape[0], (n,), replace=False)
               for s in range(draws)]
    for p in num_features:
        predictions = jnp.stack([rf_fit_predict(jax.random.fold_in(key, 10_000), x_pool[idx], y_pool[idx],
                                                x_test, p)[0] for idx in subsets])
        result = bias_variance_decomposition(predictions, one_hot(y_test))
        k = one_hot(y_test).shape[-1]  # per-output means -> sums over the 10 outputs, as test_mse
        rows["bias_squared"].append(float(result.bias_squared) * k)
        rows["variance"].append(float(result.variance) * k)
        rows["expected_mse"].append(float(result.expected_mse) * k)
    return {"num_features": list(num_features), **rows}


def mlp_point(key, x_train, y_train, x_test, y_test, width: int, steps: int) -> dict:
    """One hidden layer of ``width``, full-batch Adam on the squared loss to one-hot labels.

    Thousands of full-batch steps run as one ``lax.scan`` (``train.fit`` would spend a Python
    iteration, and a host sync, on each one-batch epoch)."""
    init_fn, apply_fn, _ = mlp((width,), 10, parameterization="standard")
    _, params = init_fn(key, (-1, x_train.shape[1]))
    targets = one_hot(y_train)
    optimizer = optax.adam(1e-3)

    def loss(p):
        return jnp.mean(jnp.sum((apply_fn(p, x_train) - targets) ** 2, axis=-1))

    @jax.jit
    def train_all(p):
        def step(carry, _):
            p, state = carry
            grads = jax.grad(loss)(p)
            updates, state = optimizer.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        return jax.lax.scan(step, (p, optimizer.init(p)), None, length=steps)[0][0]

    final = train_all(params)
    num_params = sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(final))
    return {"width": width, "num_params": num_params,
            "train_mse": test_mse(apply_fn(final, x_train), y_train),
            "test_mse": test_mse(apply_fn(final, x_test), y_test),
            "test_error": test_error(apply_fn(final, x_test), y_test)}


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset = load_digits(test_fraction=0.25, seed=seed, standardize=False)
    x_pool, x_test = center_pixels(dataset.x_train, dataset.x_test)
    y_pool, y_test = jnp.asarray(dataset.y_train), jnp.asarray(dataset.y_test)
    n = settings["num_train"]
    x_train, y_train = x_pool[:n], y_pool[:n]
    key = jax.random.key(seed)
    start = time.perf_counter()

    def work(unit: str):
        if unit == "random-features":
            return random_features_curve(jax.random.fold_in(key, 1), x_train, y_train, x_test, y_test,
                                         settings["num_features"], settings["feature_seeds"])
        if unit == "sample-wise":
            p = settings["samplewise_features"]
            rows = {"num_train": [], "test_mse": [], "test_error": []}
            for m in settings["samplewise_num_train"]:
                mses, errors = [], []
                for s in range(settings["feature_seeds"]):
                    pred, _ = rf_fit_predict(jax.random.fold_in(key, 100 + s), x_pool[:m], y_pool[:m], x_test, p)
                    mses.append(test_mse(pred, y_test))
                    errors.append(test_error(pred, y_test))
                rows["num_train"].append(m)
                rows["test_mse"].append(float(np.mean(mses)))
                rows["test_error"].append(float(np.mean(errors)))
            return {"num_features": p, **rows}
        if unit == "ntk-features":
            # uncentred pixels / 16 here: centred, the gradients w.r.t. rarely inked pixels are
            # tiny but nonzero columns, which makes the design ill-conditioned well below p = n
            raw_train, raw_test = jnp.asarray(dataset.x_train[:n]) / 16.0, jnp.asarray(dataset.x_test) / 16.0
            return ntk_curve(jax.random.fold_in(key, 2), raw_train, y_train, raw_test, y_test,
                             settings["num_features"], settings["ntk_width"])
        if unit == "bias-variance":
            return bias_variance_curve(jax.random.fold_in(key, 3), x_pool, y_pool, x_test, y_test, n,
                                       settings["bias_variance_features"], settings["bias_variance_draws"])
        width = int(unit.split("=")[1])
        m = settings["mlp_num_train"]
        return mlp_point(jax.random.fold_in(key, 4), x_pool[:m], y_pool[:m], x_test, y_test, width,
                         settings["mlp_steps"])

    keys = ["random-features", "sample-wise", "ntk-features", "bias-variance"]
    keys += [f"mlp|width={w}" for w in settings["mlp_widths"]]
    done = run_units(NAME, keys, work, out_dir=out_dir, settings=settings, resume=resume)
    rf, samples, ntk, bv = (done[k] for k in keys[:4])
    mlps = [done[k] for k in keys[4:]]
    results = {
        "experiment": NAME,
        "interrupted": False,
        "dataset": dataset.name,
        "inputs": ("(pixels - training mean) / 16 (not divided by the pixel std: rare pixels would become "
                   "outliers); NTK features: pixels / 16 uncentred"),
        "num_test": int(x_test.shape[0]),
        "settings": settings,
        "fast": fast,
        "seed": seed,
        "num_train": n,
        "random_features": rf,
        "random_features_peak": peak_of(rf["num_features"], rf["test_mse"]),
        "sample_wise": samples,
        "sample_wise_peak": peak_of(samples["num_train"], samples["test_mse"]),
        "ntk_features": ntk,
        "ntk_features_peak": peak_of(ntk["num_params"], ntk["test_mse"]),
        "bias_variance": bv,
        "bias_variance_peak": peak_of(bv["num_features"], bv["variance"]),
        "mlp": {"num_train": settings["mlp_num_train"], "widths": [r["width"] for r in mlps],
                "num_params": [r["num_params"] for r in mlps], "train_mse": [r["train_mse"] for r in mlps],
                "test_mse": [r["test_mse"] for r in mlps], "test_error": [r["test_error"] for r in mlps]},
        "seconds": time.perf_counter() - start,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    n = results["num_train"]
    return {
        "random-features peak p (n)": f"{results['random_features_peak']} ({n})",
        "sample-wise peak n (p)": f"{results['sample_wise_peak']} ({results['sample_wise']['num_features']})",
        "NTK-features peak P (n)": f"{results['ntk_features_peak']} ({n})",
        "variance peak p": f"{results['bias_variance_peak']}",
        "seconds": f"{results['seconds']:.1f}",
    }


def figure(results: dict):
    n = results["num_train"]
    fig, axes = new_figure(f"Double descent on {results['dataset']}: min-norm least squares and small MLPs "
                           f"(n = {n} training images)", results["fast"], 2, 2, figsize=(12, 8.5))
    (rf_ax, sw_ax), (bv_ax, mlp_ax) = axes
    rf, ntk = results["random_features"], results["ntk_features"]
    c = colors(4)
    rf_ax.loglog(np.asarray(rf["num_features"]) / n, rf["test_mse"], "o-", ms=3, color=c[0], label="random ReLU features")
    rf_ax.loglog(np.asarray(ntk["num_params"]) / n, ntk["test_mse"], "s-", ms=3, color=c[1], label="NTK features")
    rf_ax.axvline(1.0, color="grey", ls=":", lw=1)
    rf_ax.set(xlabel="parameters / training samples (p / n)", ylabel="test MSE (one-hot targets)",
              title=f"peak at p = {results['random_features_peak']} (RF), P = {results['ntk_features_peak']} (NTK)")
    legend_outside(rf_ax, ncol=2)
    sw = results["sample_wise"]
    sw_ax.semilogy(sw["num_train"], sw["test_mse"], "o-", ms=3, color=c[0], label=f"p = {sw['num_features']} features")
    sw_ax.axvline(sw["num_features"], color="grey", ls=":", lw=1)
    sw_ax.set(xlabel="training samples n", ylabel="test MSE", title=f"sample-wise: peak at n = {results['sample_wise_peak']}")
    legend_outside(sw_ax)
    bv = results["bias_variance"]
    bv_ax.loglog(bv["num_features"], bv["bias_squared"], "o-", ms=3, color=c[0], label="bias²")
    bv_ax.loglog(bv["num_features"], bv["variance"], "s-", ms=3, color=c[1], label="variance")
    bv_ax.loglog(bv["num_features"], bv["expected_mse"], "^-", ms=3, color=c[2], label="bias² + variance")
    bv_ax.axvline(n, color="grey", ls=":", lw=1)
    bv_ax.xaxis.set_minor_formatter(NullFormatter())  # minor tick labels would overlap
    bv_ax.set(xlabel="random features p", ylabel="squared error",
              title=f"over {results['settings']['bias_variance_draws']} training-set draws")
    legend_outside(bv_ax, ncol=3)
    m = results["mlp"]
    mlp_ax.semilogx(m["num_params"], m["test_mse"], "o-", ms=3, color=c[0], label="test MSE")
    mlp_ax.semilogx(m["num_params"], m["train_mse"], "s-", ms=3, color=c[3], label="train MSE")
    mlp_ax.axvline(10 * m["num_train"], color="grey", ls=":", lw=1)
    mlp_ax.set(xlabel="MLP parameters", ylabel="MSE (one-hot targets)",
               title=f"one hidden layer, n = {m['num_train']} (dotted: n·K)")
    legend_outside(mlp_ax, ncol=2)
    return fig
