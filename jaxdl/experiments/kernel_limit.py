"""The kernel limit: finite networks approach their NTK/NNGP predictions as width grows.

Seed formulas (lecture notes, "Infinite width (NTK)" and "GPs & infinite width"):

* the empirical NTK ``k(x, xi) = grad f(x) . grad f(xi)`` of an MLP in NTK
  parameterisation stays nearly constant under gradient flow,
  ``||k(theta_0) - k(theta_t)||_F^2 in O(1/m)``;
* with a constant kernel, gradient flow on the MSE solves in closed form, and
  an infinitely wide network trained this way predicts the NTK mean
  ``k(x) K^{-1} (I - e^{-K t / |Y|}) Y``
  (:func:`jaxdl.predict.gradient_descent_mse_ensemble`, ``get='ntk'``);
* the NNGP posterior mean ``K_*X K^{-1} Y`` is the prediction of an infinitely
  wide Bayesian network (``get='nngp'``, ``t = inf``).

On scikit-learn's digits, MLPs of growing width ``m`` are trained by full-batch
gradient descent (``jaxdl.train.fit`` with ``optax.sgd``) on
``L = ||f(X) - Y||^2 / (2 |Y|)``, the loss that ``jaxdl.predict`` integrates, so
``num_steps`` steps of rate ``eta`` are compared with the closed form at time
``t = eta * num_steps``. For each width the experiment measures

* ``ntk_drift``: ``||K_T - K_0||_F / ||K_0||_F`` of the empirical NTK
  (:func:`jaxdl.kernels.empirical.empirical_ntk_fn`, averaged over the logits)
  on the training set, and its slope in log-log against ``m``. The seeds'
  bound ``O(1/m)`` on the square only says the slope is at most ``-1/2``;
* ``ntk_drift_smooth`` and ``ntk_drift_flips``: the drift split in two with
  the ReLU gates ``1[z > 0]`` frozen at initialisation (:func:`frozen_gates`).
  The *smooth* part ``K(theta_T, gates_0) - K_0`` is what the weights' motion
  does with every unit's on/off pattern fixed; for smooth activations it would
  fall as ``1/m`` (Dyer & Gur-Ari 2020). The *flip* part ``K_T - K(theta_T, gates_0)``
  comes from units whose pre-activation changes sign: a fraction ``~ m^-1/2`` of
  them flips, each changing the kernel by ``O(1/m)``, and flips on and off partly
  cancel, which suggests ``~ m^-3/4``. Both are norms of the two matrices that sum
  to ``K_T - K_0``, so they do not add up to the drift (only drift <= smooth + flip).
  The full run measures slopes -0.91 (smooth) and -0.70 (flip), so the drift's
  slope (-0.81) lies between them;
* ``ntk_init_deviation``: ``||K_0 - K_inf||_F / ||K_inf||_F``, the distance of
  the empirical NTK at initialisation from the analytic one, a sum of ``m``
  independent terms, hence of slope ``-1/2``;
* ``prediction_gap``: the RMS difference between the trained network's test
  outputs and the analytic NTK mean at the same time.

Each slope comes with a bootstrap interval over the seeds (``*_slope_interval``;
``None`` for a single seed).

The networks are *centred*, ``f(theta, x) = net(theta, x) - net(theta_0, x)``:
the NTK mean is an average over initialisations, and an uncentred network
carries its own random ``f_0`` (a draw from the NNGP, which does not shrink
with width) into its predictions. Centring removes exactly that term and
leaves the Jacobian, hence the NTK, unchanged.

Inputs are centred with the training mean and scaled onto the sphere of radius
``sqrt(64)`` (the setting of the NTK theory: every input has the same norm);
targets are one-hot minus 1/10.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import optim, predict, stax, train
from jaxdl.data import load_digits, one_hot
from jaxdl.experiments.report import legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.kernels.empirical import empirical_ntk_fn

NAME = "kernel-limit"
DESCRIPTION = (
    "finite MLPs on digits approach the NTK: kernel drift ~ width^slope, "
    "prediction gap to the analytic NTK mean, NNGP/NTK vs finite-net accuracy"
)
FAST_MODE = "4 widths 32-256 (full: 7 widths 64-4096), 2 seeds (3), 48 training images (256), 40 GD steps (100)"


class Config(NamedTuple):
    """Sizes of one run: data, widths, seeds per width, depth and the training schedule.

    ``learning_rate_fraction`` is the step as a fraction of the largest stable step
    of the analytic NTK (:func:`jaxdl.predict.max_learning_rate`).
    """

    num_train: int
    num_test: int
    widths: tuple[int, ...]
    num_seeds: int
    depth: int
    num_steps: int
    learning_rate_fraction: float = 0.5
    W_std: float = 2.0**0.5
    b_std: float = 0.1


FULL = Config(num_train=256, num_test=450, widths=(64, 128, 256, 512, 1024, 2048, 4096),
              num_seeds=3, depth=2, num_steps=100)
FAST = Config(num_train=48, num_test=200, widths=(32, 64, 128, 256), num_seeds=2, depth=2, num_steps=40)


class Problem(NamedTuple):
    """Regression targets for classification: ``y_train = one_hot(labels) - 1/num_classes``.

    ``x_train: f32[n, d]``, ``y_train: f32[n, c]``, ``labels_train: i32[n]``,
    ``x_test: f32[n_test, d]``, ``labels_test: i32[n_test]``.
    """

    name: str
    x_train: jax.Array
    y_train: jax.Array
    labels_train: np.ndarray
    x_test: jax.Array
    labels_test: np.ndarray
    num_classes: int


def load_problem(num_train: int, num_test: int, seed: int = 0) -> Problem:
    """The first ``num_train``/``num_test`` images of the digits split ``seed``, on the sphere.

    Pixels are centred with the training mean; each image is then scaled to norm
    ``sqrt(d)``, so that every input has the same NNGP/NTK diagonal.
    """
    dataset = load_digits(test_fraction=0.25, seed=seed, standardize=False)
    for label, count, available in (("num_train", num_train, len(dataset.x_train)),
                                     ("num_test", num_test, len(dataset.x_test))):
        if not 1 <= count <= available:
            raise ValueError(f"load_problem: expected 1 <= {label} <= {available}, got {count!r}")
    mean = dataset.x_train[:num_train].mean(axis=0)

    def on_sphere(x):
        x = x - mean
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("load_problem: an image equals the training mean and cannot be put on "
                             f"the sphere; use more than num_train={num_train} training images")
        return jnp.asarray(x * np.sqrt(x.shape[1]) / norms)

    labels_train = dataset.y_train[:num_train]
    targets = one_hot(labels_train, dataset.num_classes) - 1.0 / dataset.num_classes
    return Problem(dataset.name, on_sphere(dataset.x_train[:num_train]), jnp.asarray(targets),
                   labels_train, on_sphere(dataset.x_test[:num_test]), dataset.y_test[:num_test],
                   dataset.num_classes)


def mlp_layers(width: int, depth: int, num_classes: int, W_std: float = 2.0**0.5, b_std: float = 0.1) -> list:
    """``depth`` x ``[Dense(width), Relu()]`` and a ``Dense(num_classes)`` read-out, NTK parameterisation."""
    hidden = [layer for _ in range(depth) for layer in (stax.Dense(width, W_std, b_std), stax.Relu())]
    return [*hidden, stax.Dense(num_classes, W_std, b_std)]


def mlp(width: int, depth: int, num_classes: int, W_std: float = 2.0**0.5, b_std: float = 0.1):
    """The ``(init_fn, apply_fn, kernel_fn)`` of :func:`mlp_layers` in ``stax.serial``."""
    return stax.serial(*mlp_layers(width, depth, num_classes, W_std, b_std))


def frozen_gates(layers):
    """``apply(params, x, gate_params)``: the ReLU network ``stax.serial(*layers)`` with every
    unit's gate ``1[z > 0]`` taken from its pre-activation under ``gate_params``.

    ``relu(z) = z * 1[z > 0]``; here ``z`` comes from ``params`` and the gate from
    ``gate_params``, so ``gate_params = params`` gives the network itself, and the
    NTK in ``params`` at ``(theta_T, gate_params=theta_0)`` is ``K(theta_T, gates_0)``,
    the kernel the trained weights would have if no unit had changed sign.
    """
    names = [f"{layer.name}_{i}" for i, layer in enumerate(layers)]  # stax.serial's parameter names
    kinds = {layer.name for layer in layers}
    if not kinds <= {"Dense", "Relu"}:
        raise ValueError(f"frozen_gates: expected Dense and Relu layers, got {sorted(kinds)}")

    def apply(params, x, gate_params):
        if set(params) != set(names) or set(gate_params) != set(names):
            raise ValueError(f"frozen_gates: expected parameters named {names}, got {sorted(params)}")
        h, h_gate = x, x
        for name, layer in zip(names, layers):
            if layer.name == "Relu":
                gate = (h_gate > 0).astype(h.dtype)
                h, h_gate = h * gate, h_gate * gate
            else:
                h, h_gate = layer.apply(params[name], h), layer.apply(gate_params[name], h_gate)
        return h

    return apply


def centred(apply_fn, params_0):
    """``f(params, x) = apply_fn(params, x) - apply_fn(params_0, x)``: zero at initialisation, same NTK."""

    def apply_centred(params, x):
        return apply_fn(params, x) - apply_fn(params_0, x)

    return apply_centred


def mse(outputs, targets):
    """``||f - y||^2 / (2 |Y|)``: the loss whose gradient flow ``jaxdl.predict`` solves."""
    return 0.5 * jnp.mean((outputs - targets) ** 2)


def accuracy(outputs, labels) -> float:
    """Share of rows whose largest output is at the label."""
    return float(np.mean(np.argmax(np.asarray(outputs), axis=-1) == np.asarray(labels)))


def rms(a, b) -> float:
    """Root-mean-square difference of two arrays of the same shape."""
    return float(jnp.sqrt(jnp.mean((a - b) ** 2)))


def relative_change(k_0, k_t) -> float:
    """``||k_t - k_0||_F / ||k_0||_F``."""
    return float(jnp.linalg.norm(k_t - k_0) / jnp.linalg.norm(k_0))


def loglog_slope(widths, values) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``log(values)`` against ``log(widths)``."""
    slope, intercept = np.polyfit(np.log(np.asarray(widths, float)), np.log(np.asarray(values, float)), 1)
    return float(slope), float(intercept)


def loglog_slope_interval(widths, values_per_seed, level: float = 0.95, num_resamples: int = 2000,
                          seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the :func:`loglog_slope` of the seed means.

    ``values_per_seed: f[num_widths, num_seeds]``. Each resample redraws, for every
    width on its own (the seeds of different widths are independent networks), as
    many seeds with replacement, and refits the slope of the means; the interval is
    the central ``level`` of those slopes.
    """
    values = np.asarray(values_per_seed, float)
    if values.ndim != 2 or values.shape[0] != len(widths) or values.shape[1] < 2:
        raise ValueError("loglog_slope_interval: expected values_per_seed of shape [num_widths, num_seeds >= 2], "
                         f"got {values.shape} for {len(widths)} widths")
    if not 0 < level < 1:
        raise ValueError(f"loglog_slope_interval: expected 0 < level < 1, got {level!r}")
    num_widths, num_seeds = values.shape
    picks = np.random.default_rng(seed).integers(0, num_seeds, (num_resamples, num_widths, num_seeds))
    means = np.take_along_axis(values[None], picks, axis=2).mean(axis=2)  # [num_resamples, num_widths]
    slopes = np.polyfit(np.log(np.asarray(widths, float)), np.log(means).T, 1)[0]
    low, high = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def train_gd(apply_fn, params, x, y, learning_rate: float, num_steps: int, key):
    """``num_steps`` steps of full-batch gradient descent on :func:`mse`; returns ``train.FitResult``."""
    return train.fit(apply_fn, params, optim.sgd(learning_rate), (x, y), loss_fn=mse, key=key,
                     num_epochs=num_steps, batch_size=None, progress=False)


class KernelPredictions(NamedTuple):
    """Infinite-width test predictions ``f[n_test, c]``: the NTK mean at the training time,
    the NTK mean after infinite training, and the NNGP posterior mean."""

    ntk: jax.Array
    ntk_inf: jax.Array
    nngp: jax.Array


def kernel_predictions(kernel_fn, problem: Problem, learning_rate: float, num_steps: int,
                       diag_reg: float = 1e-4) -> KernelPredictions:
    """Closed-form predictions of :func:`jaxdl.predict.gradient_descent_mse_ensemble`.

    The finite-time mean uses no regularisation (it is what gradient descent
    computes); the ``t = inf`` limits add ``diag_reg * trace(K)/n`` to the
    diagonal: they solve with the kernel itself, and the NNGP of 256 digits
    has a condition number near 3e4, which costs four of float32's seven digits.
    """
    at_time = predict.gradient_descent_mse_ensemble(kernel_fn, problem.x_train, problem.y_train,
                                                    learning_rate=learning_rate)
    converged = predict.gradient_descent_mse_ensemble(kernel_fn, problem.x_train, problem.y_train,
                                                      diag_reg=diag_reg)
    limits = converged(None, problem.x_test, ("nngp", "ntk"))
    return KernelPredictions(at_time(num_steps, problem.x_test, "ntk"), limits.ntk, limits.nngp)


MEASUREMENTS = ("ntk_drift", "ntk_drift_smooth", "ntk_drift_flips", "ntk_init_deviation", "prediction_gap",
                "test_accuracy", "train_loss")
"""What :func:`measure_seed` reports for one network: NTK drift (and its smooth and flip parts),
distance from the analytic NTK at initialisation, prediction gap, test accuracy, final training loss."""


class WidthFunctions(NamedTuple):
    """The jitted functions shared by every seed of one width."""

    init_fn: object
    apply_fn: object
    ntk_fn: object
    gated_ntk_fn: object


def width_functions(config: Config, width: int, num_classes: int) -> WidthFunctions:
    """``init_fn``, ``apply_fn`` and the jitted empirical NTKs (free and with frozen gates) of one width."""
    layers = mlp_layers(width, config.depth, num_classes, config.W_std, config.b_std)
    init_fn, apply_fn, _ = stax.serial(*layers)
    ntk_fn = jax.jit(empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0))
    gated_ntk_fn = jax.jit(empirical_ntk_fn(frozen_gates(layers), trace_axes=(-1,), vmap_axes=0))
    return WidthFunctions(init_fn, apply_fn, ntk_fn, gated_ntk_fn)


def measure_seed(config: Config, problem: Problem, functions: WidthFunctions, learning_rate: float,
                 ntk_train_train, ntk_mean, seed_key) -> dict[str, float]:
    """Train one centred MLP (initialised and shuffled from ``seed_key``) and measure it.

    ``ntk_train_train: f[n, n]`` is the analytic NTK of the training set,
    ``ntk_mean: f[n_test, c]`` the analytic NTK mean after ``config.num_steps`` steps.
    Returns one float for each of :data:`MEASUREMENTS`.
    """
    init_key, fit_key = jax.random.split(seed_key)
    _, params_0 = functions.init_fn(init_key, (-1, problem.x_train.shape[1]))
    model = centred(functions.apply_fn, params_0)
    fit = train_gd(model, params_0, problem.x_train, problem.y_train, learning_rate, config.num_steps, fit_key)
    params_t = fit.state.params
    test_outputs = model(params_t, problem.x_test)
    ntk_0 = functions.ntk_fn(problem.x_train, None, params_0)
    ntk_t = functions.ntk_fn(problem.x_train, None, params_t)
    ntk_t_gates_0 = functions.gated_ntk_fn(problem.x_train, None, params_t, gate_params=params_0)
    norm_0 = float(jnp.linalg.norm(ntk_0))
    return {
        "ntk_drift": relative_change(ntk_0, ntk_t),
        "ntk_drift_smooth": relative_change(ntk_0, ntk_t_gates_0),
        "ntk_drift_flips": float(jnp.linalg.norm(ntk_t - ntk_t_gates_0)) / norm_0,
        "ntk_init_deviation": relative_change(ntk_train_train, ntk_0),
        "prediction_gap": rms(test_outputs, ntk_mean),
        "test_accuracy": accuracy(test_outputs, problem.labels_test),
        "train_loss": float(mse(model(params_t, problem.x_train), problem.y_train)),
    }


def unit_key(width: int, seed_index: int) -> str:
    """The name of one unit of work: one network of one width."""
    return f"width={width},seed={seed_index}"


def study(config: Config, seed: int = 0, *, out_dir: str | Path | None = None, resume: bool = False) -> dict:
    """Run the whole study of ``config``; returns the results dict (see :func:`run`).

    Each network (one width, one seed) is a unit of work (:func:`jaxdl.experiments.units.run_units`):
    with ``out_dir`` the finished ones are saved as they come, so Ctrl-C keeps them and
    ``resume=True`` continues. Network ``j`` of width ``i`` draws its keys from
    ``split(split(key(seed), num_widths)[i], num_seeds)[j]`` whatever the order of the run.
    """
    start = time.perf_counter()
    problem = load_problem(config.num_train, config.num_test, seed)
    _, _, kernel_fn = mlp(1, config.depth, problem.num_classes, config.W_std, config.b_std)
    ntk_train_train = kernel_fn(problem.x_train, None, "ntk")
    learning_rate = config.learning_rate_fraction * float(
        predict.max_learning_rate(ntk_train_train, problem.y_train.size))
    kernels = kernel_predictions(kernel_fn, problem, learning_rate, config.num_steps)

    seed_keys = {}
    for width, width_key in zip(config.widths, jax.random.split(jax.random.key(seed), len(config.widths))):
        for index, seed_key in enumerate(jax.random.split(width_key, config.num_seeds)):
            seed_keys[unit_key(width, index)] = (width, seed_key)
    functions = {}

    def work(key):
        width, seed_key = seed_keys[key]
        if width not in functions:
            functions.clear()  # one width at a time: free the previous width's compiled NTKs
            functions[width] = width_functions(config, width, problem.num_classes)
        return measure_seed(config, problem, functions[width], learning_rate, ntk_train_train, kernels.ntk,
                            seed_key)

    measured = run_units(NAME, list(seed_keys), work, out_dir=out_dir, resume=resume,
                         settings={"config": config._asdict(), "seed": seed})

    def per_seed(field):
        return [[measured[unit_key(w, j)][field] for j in range(config.num_seeds)] for w in config.widths]

    def mean(field):
        return [float(np.mean(values)) for values in per_seed(field)]

    series = {}  # the measured quantity, per seed, and its log-log fit against width
    for field, fit_name in (("ntk_drift", "drift"), ("ntk_drift_smooth", "drift_smooth"),
                            ("ntk_drift_flips", "drift_flips"), ("ntk_init_deviation", "init_deviation"),
                            ("prediction_gap", "gap")):
        slope, intercept = loglog_slope(config.widths, mean(field))
        interval = loglog_slope_interval(config.widths, per_seed(field)) if config.num_seeds > 1 else None
        series |= {field: mean(field), f"{field}_per_seed": per_seed(field), f"{fit_name}_slope": slope,
                   f"{fit_name}_slope_interval": interval, f"{fit_name}_intercept": intercept}
    model = (f"{config.depth} x [Dense(m, W_std={config.W_std:.4g}, b_std={config.b_std}), Relu()], "
             f"Dense({problem.num_classes}); NTK parameterisation; centred at initialisation")
    return {
        "dataset": problem.name,
        "num_train": config.num_train,
        "num_test": config.num_test,
        "model": model,
        "depth": config.depth,
        "widths": list(config.widths),
        "num_seeds": config.num_seeds,
        "learning_rate": learning_rate,
        "num_steps": config.num_steps,
        "training_time": learning_rate * config.num_steps,
        **series,
        "gap_ratio_largest_to_smallest": series["prediction_gap"][-1] / series["prediction_gap"][0],
        "test_accuracy": mean("test_accuracy"),
        "test_accuracy_per_seed": per_seed("test_accuracy"),
        "train_loss": mean("train_loss"),
        "ntk_test_accuracy": accuracy(kernels.ntk, problem.labels_test),
        "ntk_inf_test_accuracy": accuracy(kernels.ntk_inf, problem.labels_test),
        "nngp_test_accuracy": accuracy(kernels.nngp, problem.labels_test),
        "seed": seed,
        "seconds": time.perf_counter() - start,
    }


def _loglog_series(ax, results: dict, name: str, slope_name: str, color, label: str):
    """Per-seed points, seed means and the least-squares line of ``results[name]`` against width;
    one legend entry, which gives the fitted slope and its bootstrap interval."""
    widths = np.asarray(results["widths"], float)
    values = np.asarray(results[f"{name}_per_seed"], float)
    slope, intercept = results[f"{slope_name}_slope"], results[f"{slope_name}_intercept"]
    label += f", slope {slope:.2f}"
    if results[f"{slope_name}_slope_interval"] is not None:
        label += " (95% [{:.2f}, {:.2f}])".format(*results[f"{slope_name}_slope_interval"])
    ax.loglog(np.repeat(widths, values.shape[1]), values.ravel(), ".", color=color, alpha=0.35)
    ax.loglog(widths, results[name], "o", color=color, label=label)
    ax.loglog(widths, np.exp(intercept) * widths**slope, "-", color=color)


def figure(results: dict):
    """Drift and initial deviation of the NTK, the drift's smooth and flip parts, prediction
    gap (log-log, fitted slopes) and test accuracy against width, as a ``Figure``."""
    widths = np.asarray(results["widths"], float)
    fig, (kernel_ax, parts_ax, gap_ax, acc_ax) = new_figure(
        f"Kernel limit on {results['dataset']}: {results['num_train']} training images, "
        f"{results['depth']} hidden ReLU layers, {results['num_steps']} full-batch GD steps, "
        f"{results['num_seeds']} seeds per width (small dots: single seeds)",
        results.get("fast", False), 1, 4, figsize=(22, 6))
    _loglog_series(kernel_ax, results, "ntk_drift", "drift", "C0",
                   r"drift in training $\|K_T - K_0\|_F / \|K_0\|_F$")
    _loglog_series(kernel_ax, results, "ntk_init_deviation", "init_deviation", "C2",
                   r"at init. $\|K_0 - K_\infty\|_F / \|K_\infty\|_F$")
    kernel_ax.loglog(widths, results["ntk_drift"][0] * (widths / widths[0]) ** -0.5, ":", color="k",
                     label=r"slope $-1/2$ (the notes' bound on the drift)")
    kernel_ax.set(xlabel="width m", ylabel="relative Frobenius distance",
                  title="empirical NTK: drift and distance from the limit")

    _loglog_series(parts_ax, results, "ntk_drift", "drift", "C0", r"total $\|K_T - K_0\|_F$")
    _loglog_series(parts_ax, results, "ntk_drift_smooth", "drift_smooth", "C1",
                   r"smooth part $\|K(\theta_T, \mathrm{gates}_0) - K_0\|_F$")
    _loglog_series(parts_ax, results, "ntk_drift_flips", "drift_flips", "C4",
                   r"flip part $\|K_T - K(\theta_T, \mathrm{gates}_0)\|_F$")
    parts_ax.set(xlabel="width m", ylabel=r"norm / $\|K_0\|_F$",
                 title="drift split by freezing the ReLU gates at init.\n"
                       f"total \u2264 smooth + flip (norms do not add); measured slopes "
                       f"{results['drift_smooth_slope']:.2f} and {results['drift_flips_slope']:.2f}")

    _loglog_series(gap_ax, results, "prediction_gap", "gap", "C3", "RMS(trained net - NTK mean)")
    gap_ax.loglog(widths, results["prediction_gap"][0] * (widths / widths[0]) ** -0.5, ":", color="k",
                  label=r"reference slope $-1/2$")
    gap_ax.set(xlabel="width m", ylabel="RMS difference of test outputs",
               title="trained nets vs the infinite-width prediction")

    acc_ax.semilogx(widths, results["test_accuracy"], "o-", color="C0", label="finite nets (mean over seeds)")
    for (name, style, label), color in zip((("ntk_test_accuracy", "--", "NTK mean at the same time"),
                                            ("ntk_inf_test_accuracy", ":", r"NTK, $t = \infty$"),
                                            ("nngp_test_accuracy", "-.", "NNGP posterior mean")), ("C1", "C2", "C3")):
        acc_ax.axhline(results[name], linestyle=style, color=color, label=f"{label}: {results[name]:.3f}")
    acc_ax.set(xlabel="width m", ylabel="test accuracy", title="test accuracy")
    for ax in (kernel_ax, parts_ax, gap_ax, acc_ax):
        legend_outside(ax)
    return fig


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    def slope(name):
        text = f"{results[f'{name}_slope']:.2f}"
        if results[f"{name}_slope_interval"] is not None:
            text += " (95% [{:.2f}, {:.2f}])".format(*results[f"{name}_slope_interval"])
        return text

    return {
        "NTK drift slope": slope("drift"),
        "  smooth part / flip part slopes": f"{results['drift_smooth_slope']:.2f} / {results['drift_flips_slope']:.2f}",
        "init. deviation slope": slope("init_deviation"),
        "prediction gap, largest / smallest width": f"{results['gap_ratio_largest_to_smallest']:.3f}",
        "test accuracy, widest net / NTK / NNGP": f"{results['test_accuracy'][-1]:.3f} / "
        f"{results['ntk_test_accuracy']:.3f} / {results['nngp_test_accuracy']:.3f}",
    }


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Run the study (``FAST`` or ``FULL``); writes ``kernel-limit.json`` and ``kernel-limit.png``.

    The JSON holds the finished networks while the study runs (see :func:`study`);
    ``resume=True`` continues an interrupted run in ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = FAST if fast else FULL
    results = study(config, seed, out_dir=out_dir, resume=resume)
    results["fast"] = fast
    results["interrupted"] = False
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results
