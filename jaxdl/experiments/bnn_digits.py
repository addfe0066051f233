"""A small Bayesian MLP on the digits: SGLD and SGHMC against MAP and a deep ensemble.

The model is a one-hidden-layer ReLU MLP (stax, NTK parameterisation) with a
Gaussian prior ``N(0, I)`` on its parameters (weight decay) and a categorical
likelihood. Compared on the test set by accuracy, negative log-likelihood and
expected calibration error (15 equal-width confidence bins), with a reliability
diagram:

* MAP: Adam on the negative log-posterior (full batch);
* deep ensemble: MAP fits from independent initialisations, probabilities averaged;
* Bayesian ensembling: the same members weighted by the seeds' ``exp(-E(theta_j))``;
* SGLD and SGHMC: minibatch chains started at the MAP, after a burn-in, thinned;
  the predictive averages the softmax over the kept samples.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import samplers, stax
from jaxdl.data import load_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units

NAME = "bnn-digits"
DESCRIPTION = "Bayesian MLP on digits via SGLD/SGHMC vs MAP and a deep ensemble: accuracy, NLL, calibration (ECE), reliability diagram"

FAST_MODE = ("hidden width 32 (full: 100), 300 MAP steps (2000), 3 ensemble members (5), "
             "burn-in 500 (5000), 30 samples (200) 20 steps apart (50)")

NUM_BINS = 15


def calibration(probs: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> dict:
    """Expected calibration error and the reliability curve of ``probs: f[n, classes]``."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, num_bins - 1)
    counts = np.bincount(which, minlength=num_bins)
    accuracy = np.bincount(which, weights=correct, minlength=num_bins) / np.maximum(counts, 1)
    mean_confidence = np.bincount(which, weights=confidence, minlength=num_bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts / len(labels) * np.abs(accuracy - mean_confidence)))
    return {
        "ece": ece,
        "bin_count": counts,
        "bin_accuracy": accuracy,
        "bin_confidence": mean_confidence,
    }


def evaluate(probs, labels) -> dict:
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    nll = -np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)))
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "nll": float(nll),
        **calibration(probs, labels),
    }


def _config(fast: bool) -> dict:
    if fast:
        return dict(width=32, map_steps=300, ensemble_size=3, burn_in=500, num_samples=30,
                    thin=20, batch_size=128)
    return dict(width=100, map_steps=2000, ensemble_size=5, burn_in=5000, num_samples=200,
                thin=50, batch_size=128)


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """MAP and the ensemble, then the two chains, each a unit of work (see
    :mod:`jaxdl.experiments.units`: Ctrl-C keeps the finished ones, ``resume=True`` continues)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = _config(fast)
    prior_std, learning_rate = 3.0, 1e-2
    sgld_step, sghmc_step, friction = 5e-5, 1e-3, 10.0
    dataset = load_digits(test_fraction=0.25, seed=seed)
    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    x_test, y_test = jnp.asarray(dataset.x_test), dataset.y_test
    num_train = x_train.shape[0]
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(config["width"], b_std=1.0), stax.Relu(), stax.Dense(dataset.num_classes, b_std=1.0)
    )
    log_posterior = samplers.log_posterior_fn(apply_fn, x_train, y_train, prior_std=prior_std)
    log_prior = samplers.log_prior_fn(prior_std)
    log_lik = samplers.log_likelihood_fn(apply_fn)
    key_init, key_sgld, key_sghmc = jax.random.split(jax.random.key(seed), 3)
    _, params_like = init_fn(key_init, (-1, x_train.shape[1]))
    params_tree = jax.tree.structure(params_like)

    optimizer = optax.adam(learning_rate)

    def fit_map(key):
        _, params = init_fn(key, (-1, x_train.shape[1]))

        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(lambda p: -log_posterior(p) / num_train)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), length=config["map_steps"])
        return params

    def ensemble_members(saved) -> dict:
        """The members' parameters, as the MAP unit saved them (their leaves, as JSON lists)."""
        leaves = [jnp.asarray(leaf, jnp.float32) for leaf in saved["member_leaves"]]
        return jax.tree.unflatten(params_tree, leaves)

    def map_and_ensemble():
        start = time.perf_counter()
        members = jax.block_until_ready(jax.jit(jax.vmap(fit_map))(jax.random.split(key_init, config["ensemble_size"])))
        return {"member_leaves": jax.tree.leaves(members), "seconds": time.perf_counter() - start}

    def chain(name, algorithm, key, done):
        """``burn_in`` discarded steps from the MAP, then ``num_samples`` draws ``thin`` steps
        apart; the unit keeps their posterior predictive on the test set."""
        map_params = jax.tree.map(lambda leaf: leaf[0], ensemble_members(done["MAP and deep ensemble"]))
        num_burnt = config["burn_in"] // config["thin"]
        start = time.perf_counter()
        states, infos = samplers.sample(algorithm, key, map_params, num_burnt + config["num_samples"], thin=config["thin"])
        if bool(np.any(infos.is_divergent)):
            raise FloatingPointError(f"bnn-digits: the {name} chain diverged; lower its step size")
        positions = jax.tree.map(lambda leaf: leaf[num_burnt:], states.position)
        probs = samplers.posterior_predictive(apply_fn, positions, x_test)
        return {"test_probs": np.asarray(probs), "seconds": time.perf_counter() - start}

    algorithms = {
        "SGLD": (samplers.sgld(log_prior, log_lik, (x_train, y_train), config["batch_size"], sgld_step), key_sgld),
        "SGHMC": (samplers.sghmc(log_prior, log_lik, (x_train, y_train), config["batch_size"], sghmc_step, friction),
                  key_sghmc),
    }

    def work(unit, done):
        return map_and_ensemble() if unit == "MAP and deep ensemble" else chain(unit, *algorithms[unit], done)

    done = run_units(NAME, ["MAP and deep ensemble", "SGLD", "SGHMC"], work, out_dir=out_dir,
                     settings=_settings(fast, seed), resume=resume, pass_done=True)
    timings = {"map_and_ensemble_s": done["MAP and deep ensemble"]["seconds"],
               "sgld_s": done["SGLD"]["seconds"], "sghmc_s": done["SGHMC"]["seconds"]}
    members = ensemble_members(done["MAP and deep ensemble"])
    map_params = jax.tree.map(lambda leaf: leaf[0], members)
    energies = -jax.vmap(log_posterior)(members)
    predictive = {
        "MAP": jax.nn.softmax(apply_fn(map_params, x_test)),
        "deep ensemble": samplers.posterior_predictive(apply_fn, members, x_test),
        "ensemble exp(-E) weights": samplers.posterior_predictive(
            apply_fn, members, x_test, weights=samplers.ensemble_weights(energies)
        ),
        "SGLD": np.asarray(done["SGLD"]["test_probs"], np.float32),
        "SGHMC": np.asarray(done["SGHMC"]["test_probs"], np.float32),
    }
    metrics = {name: evaluate(probs, y_test) for name, probs in predictive.items()}

    results = {
        "dataset": dataset.name,
        "num_train": int(num_train),
        "num_test": int(len(y_test)),
        "model": f"stax.serial(Dense({config['width']}, b_std=1), Relu(), Dense(10, b_std=1)), ntk parameterisation",
        "prior_std": prior_std,
        "map": {"optimizer": f"adam({learning_rate})", "steps": config["map_steps"]},
        "ensemble_size": config["ensemble_size"],
        "ensemble_weights": np.asarray(samplers.ensemble_weights(energies)),
        "sgld": {"step_size": sgld_step},
        "sghmc": {"step_size": sghmc_step, "friction": friction},
        "sgmcmc": {k: config[k] for k in ("batch_size", "burn_in", "num_samples", "thin")},
        "fast": fast,
        "seed": seed,
        "timings": timings,
        "methods": metrics,
    }
    for name, row in metrics.items():
        slug = name.split(" exp")[0].replace(" ", "_").lower() + ("_bayes_weighted" if "exp" in name else "")
        for metric in ("accuracy", "nll", "ece"):
            results[f"{metric}_{slug}"] = row[metric]

    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def _settings(fast: bool, seed: int) -> dict:
    return {"fast": fast, "seed": seed, **_config(fast)}


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    return {f"{name}: accuracy / NLL / ECE": f"{row['accuracy']:.3f} / {row['nll']:.3f} / {row['ece']:.3f}"
            for name, row in results["methods"].items()}


def figure(results: dict):
    """Reliability diagram, the number of test images per confidence bin, test NLL and ECE."""
    metrics = results["methods"]
    names = list(metrics)
    fig, ((reliability_ax, counts_ax), (nll_ax, ece_ax)) = new_figure(
        f"Bayesian MLP on {results['dataset']} ({results['num_test']} test images, {NUM_BINS} confidence bins)",
        results["fast"], 2, 2, figsize=(13, 10))
    reliability_ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfect calibration")
    edges = np.linspace(0.0, 1.0, NUM_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for (name, row), color in zip(metrics.items(), colors(len(metrics))):
        counts = np.asarray(row["bin_count"])
        filled = counts > 0
        reliability_ax.plot(np.asarray(row["bin_confidence"], float)[filled], np.asarray(row["bin_accuracy"], float)[filled],
                            marker="o", color=color, label=f"{name} (ECE {row['ece']:.3f})")
        counts_ax.semilogy(centres[filled], counts[filled], "o-", color=color, label=name)
    reliability_ax.set(xlabel="mean confidence in the bin", ylabel="accuracy in the bin",
                       title="reliability diagram (test set)")
    counts_ax.set(xlabel="confidence bin (centre)", ylabel="test images in the bin",
                  title="bin counts of the reliability diagram", xlim=(0, 1))
    positions = np.arange(len(names))
    for ax, metric, label in ((nll_ax, "nll", "test negative log-likelihood (nats)"),
                              (ece_ax, "ece", "expected calibration error")):
        values = [metrics[n][metric] for n in names]
        ax.bar(positions, values, color=colors(len(names)))
        for x, value in zip(positions, values):
            ax.annotate(f"{value:.3f}", (x, value), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(positions, names, rotation=20, ha="right", fontsize=8)
        ax.set(xlabel="method", ylabel=label, title=f"test {metric.upper()} (lower is better)")
    for ax in (reliability_ax, counts_ax):
        legend_outside(ax, ncol=2)
    return fig
