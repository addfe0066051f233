"""A non-vacuous PAC-Bayes bound for a small stochastic MLP on a binary digits task, next to its
test error and the (vacuous) VC bound of the same network.

Seed formulas (lecture notes, "Statistical learning theory"): the PAC-Bayes loss
``l_PAC(q) = E_q[l_hat] + sqrt(c (KL(q||p) + log(2 sqrt n / eps)))`` and the PAC-Bayes bound it
comes from; the VC inequality ``P(sup_f |l_hat - l| > eps) <= 8 |F(n)| exp(-n eps^2/32)``.
Implemented in :mod:`jaxdl.theory.bounds`; this module runs them, Dziugaite and Roy (2017) style:

1. *task*: scikit-learn digits, label ``1[digit >= 5]``; ``n = 1347`` training images.
2. *network*: ``Dense(32) - Relu - Dense(1)`` with biases (NTK parameterisation, 2113 parameters), drawn
   at random: ``w0``. The prior is ``p = N(w0, lambda I)``: centred at the initialisation, which
   does not depend on the data.
3. *pretraining*: Adam on the logistic loss from ``w0`` gives the posterior's starting mean.
4. *PAC-Bayes optimisation*: ``q = N(mu, diag sigma^2)`` and ``lambda`` minimise McAllester's form
   of ``l_PAC`` with the logistic loss / log 2 (an upper bound of the 0-1 error) as surrogate,
   one reparameterised draw per step (Adam, in chunks that each restart the optimiser).
5. *bound*: ``lambda`` is rounded to the nearest of ``J = 48`` grid values
   ``10 exp(-j/6)`` (a union bound: ``delta / J``); ``E_q[R_hat]`` is estimated from
   ``num_samples`` networks drawn from ``q`` and bounded by Langford-Caruana
   (``delta' = 0.01``); that enters the kl (Seeger/Maurer), McAllester, Catoni and seeds' bounds
   (``delta = 0.025``); all hold together with probability ``>= 0.965``.
6. *VC*: the network contains every affine half-space of ``R^64`` (one hidden unit and its
   ReLU threshold), so its VC dimension is at least 65; the VC inequality with ``d = 65``
   already gives an error gap above 1. With ``d`` = the number of parameters (the order of
   the known upper bounds ``O(W L log W)``) it is larger still.

Units of work (Ctrl-C safe, ``--resume``): pretraining, each optimisation chunk, the bound, the
test errors.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxdl import stax
from jaxdl.data import load_digits
from jaxdl.experiments.report import legend_outside, new_figure, progress, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.theory import bounds

NAME = "pac-bayes"
DESCRIPTION = ("PAC-Bayes bound of a stochastic MLP on binary digits (Dziugaite-Roy): non-vacuous, "
               "next to its test error and the vacuous VC bound")
FAST_MODE = "2 optimisation chunks of 750 steps (full: 4 of 2000), 300 Monte Carlo networks for the bound (1000)"

WIDTH = 32
DELTA, DELTA_SAMPLE = 0.025, 0.01
PRIOR_GRID = 10.0 * np.exp(-np.arange(48) / 6.0)  # prior standard deviations, a union bound over 48


def settings(fast: bool) -> dict:
    """The sizes of a run."""
    return {"width": WIDTH, "pretrain_steps": 300, "pretrain_learning_rate": 1e-2,
            "chunks": 2 if fast else 4, "steps_per_chunk": 750 if fast else 2000, "learning_rate": 5e-3,
            "initial_posterior_std": 0.05, "initial_prior_std": 0.1,
            "num_samples": 300 if fast else 1000, "num_test_samples": 100 if fast else 300}


def load_task(seed: int):
    """Digits with the binary label ``digit >= 5``."""
    data = load_digits(test_fraction=0.25, seed=seed)
    to_binary = lambda y: (np.asarray(y) >= 5).astype(np.float32)  # noqa: E731
    return data.name, jnp.asarray(data.x_train), to_binary(data.y_train), jnp.asarray(data.x_test), \
        to_binary(data.y_test)


def surrogate(outputs, y):
    """Logistic loss divided by log 2: at least the 0-1 error of the sign of the logit."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(outputs[:, 0], y)) / math.log(2.0)


def zero_one(outputs, y):
    """Per-example 0-1 error of the classifier ``1[logit > 0]``."""
    return (outputs[:, 0] > 0) != (y > 0.5)


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train, bound and evaluate; see the module docstring. Writes ``pac-bayes.json`` / ``.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = settings(fast)
    start = time.perf_counter()
    dataset, x, y, x_test, y_test = load_task(seed)
    n = int(x.shape[0])
    init_fn, apply_fn, _ = stax.serial(stax.Dense(config["width"], b_std=0.1), stax.Relu(), stax.Dense(1, b_std=0.1))
    keys = dict(zip(("init", "optimise", "bound", "test"), jax.random.split(jax.random.key(seed), 4)))
    _, prior_mean = init_fn(keys["init"], (-1, x.shape[1]))
    flat0, unravel = ravel_pytree(prior_mean)
    num_params = int(flat0.size)
    delta_grid = DELTA / len(PRIOR_GRID)
    log_grid = np.log(PRIOR_GRID)
    objective = bounds.pac_bayes_objective(apply_fn, surrogate, prior_mean, n, delta_grid)

    def posterior_of(unit):
        return bounds.GaussianPosterior(unravel(jnp.asarray(unit["mean"], jnp.float32)),
                                        unravel(jnp.asarray(unit["log_std"], jnp.float32)))

    def pretrain():
        optimizer = optax.adam(config["pretrain_learning_rate"])

        @jax.jit
        def step(params, state):
            grad = jax.grad(lambda p: surrogate(apply_fn(p, x), y))(params)
            updates, state = optimizer.update(grad, state)
            return optax.apply_updates(params, updates), state

        params, state = prior_mean, optimizer.init(prior_mean)
        for _ in range(config["pretrain_steps"]):
            params, state = step(params, state)
        errors = zero_one(apply_fn(params, x), y)
        return {"mean": ravel_pytree(params)[0], "train_error": float(jnp.mean(errors))}

    def optimise(chunk, previous):
        posterior = bounds.GaussianPosterior(unravel(jnp.asarray(previous["mean"], jnp.float32)),
                                             unravel(jnp.asarray(previous["log_std"], jnp.float32)))
        state = (posterior, jnp.float32(previous["prior_log_std"]))
        optimizer = optax.adam(config["learning_rate"])

        @jax.jit
        def step(state, opt_state, key):
            (value, (risk, kl)), grad = jax.value_and_grad(
                lambda s: objective(s[0], s[1], key, x, y), has_aux=True)(state)
            updates, opt_state = optimizer.update(grad, opt_state)
            posterior, prior_log_std = optax.apply_updates(state, updates)
            prior_log_std = jnp.clip(prior_log_std, log_grid.min(), log_grid.max())
            return (posterior, prior_log_std), opt_state, value, risk, kl

        opt_state, history = optimizer.init(state), {"objective": [], "surrogate": [], "kl": []}
        chunk_key = jax.random.fold_in(keys["optimise"], chunk)
        for i in progress(range(config["steps_per_chunk"]), desc=f"{NAME}: chunk {chunk + 1}"):
            state, opt_state, value, risk, kl = step(state, opt_state, jax.random.fold_in(chunk_key, i))
            if not bool(jnp.isfinite(value)):
                raise FloatingPointError(f"{NAME}: the PAC-Bayes objective became {float(value)} at step {i}")
            if i % 25 == 0:
                for field, v in (("objective", value), ("surrogate", risk), ("kl", kl)):
                    history[field].append(float(v))
        posterior, prior_log_std = state
        return {"mean": ravel_pytree(posterior.mean)[0], "log_std": ravel_pytree(posterior.log_std)[0],
                "prior_log_std": float(prior_log_std), "history": history}

    chunk_names = [f"optimise-{c + 1}" for c in range(config["chunks"])]

    def work(key, done):
        if key == "pretrain":
            return pretrain()
        if key in chunk_names:
            c = chunk_names.index(key)
            previous = done[chunk_names[c - 1]] if c else {
                "mean": done["pretrain"]["mean"],
                "log_std": np.full(num_params, math.log(config["initial_posterior_std"])),
                "prior_log_std": math.log(config["initial_prior_std"])}
            return optimise(c, previous)
        final = done[chunk_names[-1]]
        posterior = posterior_of(final)
        if key == "bound":
            j = int(np.argmin(np.abs(log_grid - final["prior_log_std"])))
            result = bounds.evaluate_pac_bayes_bound(
                apply_fn, zero_one, posterior, prior_mean, float(log_grid[j]), x, y, keys["bound"],
                delta=delta_grid, delta_sample=DELTA_SAMPLE, num_samples=config["num_samples"])
            return {**result, "prior_std": float(PRIOR_GRID[j]), "prior_grid_index": j}
        # "test": the stochastic classifier's test error, and the mean network's errors
        test_errors = jax.lax.map(
            lambda k: jnp.mean(zero_one(apply_fn(bounds.sample_params(posterior, k), x_test), y_test)),
            jax.random.split(keys["test"], config["num_test_samples"]), batch_size=50)
        return {"stochastic_test_error": float(jnp.mean(test_errors)),
                "stochastic_test_error_stderr": float(jnp.std(test_errors) / math.sqrt(test_errors.size)),
                "mean_network_test_error": float(jnp.mean(zero_one(apply_fn(posterior.mean, x_test), y_test))),
                "mean_network_train_error": float(jnp.mean(zero_one(apply_fn(posterior.mean, x), y)))}

    units = run_units(NAME, ["pretrain", *chunk_names, "bound", "test"], work, out_dir=out_dir,
                      settings={**config, "fast": fast, "seed": seed}, resume=resume, pass_done=True)
    bound, test = units["bound"], units["test"]
    vc_lower, vc_params = int(x.shape[1]) + 1, num_params  # affine half-spaces of R^64: VC = 65
    history = {field: sum((units[c]["history"][field] for c in chunk_names), [])
               for field in ("objective", "surrogate", "kl")}
    results = {
        "dataset": dataset, "task": "digit >= 5 (binary)", "fast": fast, "seed": seed,
        "num_train": n, "num_test": int(x_test.shape[0]),
        "model": f"stax.serial(Dense({config['width']}, b_std=0.1), Relu(), Dense(1, b_std=0.1)), ntk parameterisation",
        "num_params": num_params, "settings": config,
        "pretrained_train_error": units["pretrain"]["train_error"],
        **bound, **test,
        "vc_dimension_lower": vc_lower, "vc_dimension_params": vc_params,
        "vc_gap_lower": bounds.vc_generalization_bound(n, vc_lower, DELTA),
        "vc_gap_params": bounds.vc_generalization_bound(n, vc_params, DELTA),
        "history_step": [25 * i for i in range(len(history["objective"]))],
        "history": history,
        "seconds": time.perf_counter() - start,
    }
    results["vc_bound_lower"] = test["mean_network_train_error"] + results["vc_gap_lower"]
    results["vc_bound_params"] = test["mean_network_train_error"] + results["vc_gap_params"]
    results["non_vacuous"] = results["seeger_bound"] < 1.0
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures of a run."""
    return {
        "PAC-Bayes bound (kl, 96.5 %)": f"{results['seeger_bound']:.3f}",
        "stochastic test error": f"{results['stochastic_test_error']:.3f}",
        "MC train error / KL": f"{results['mc_empirical_risk']:.3f} / {results['kl']:.1f}",
        "VC bound (d >= 65)": f"{results['vc_bound_lower']:.2f} (vacuous)" if results["vc_bound_lower"] >= 1
        else f"{results['vc_bound_lower']:.2f}",
        "seconds": f"{results['seconds']:.0f}",
    }


def figure(results: dict):
    """Left: errors and bounds side by side (1 = vacuous). Right: the PAC-Bayes optimisation."""
    fig, (bars, curve, kl_axis) = new_figure(
        f"PAC-Bayes vs VC on {results['dataset']} ({results['task']}, n = {results['num_train']}): "
        f"stochastic MLP with {results['num_params']} parameters", results["fast"], 1, 3, figsize=(16, 5))
    names = ["test error\n(stochastic)", "train error\n(MC)", "kl bound", "Catoni", "McAllester", "seeds'\nbound",
             "VC, d = 65", f"VC, d = {results['vc_dimension_params']}"]
    values = [results["stochastic_test_error"], results["mc_empirical_risk"], results["seeger_bound"],
              results["catoni_bound"], results["mcallester_bound"], results["seed_bound"],
              results["vc_bound_lower"], results["vc_bound_params"]]
    bars.bar(range(len(values)), values, color=["C0", "C0"] + ["C2"] * 4 + ["C3"] * 2)
    for i, v in enumerate(values):
        bars.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize="small")
    bars.axhline(1.0, color="k", ls="--", lw=1)
    bars.set_yscale("log")
    bars.set_xticks(range(len(values)), names, fontsize="x-small", rotation=35)
    bars.set(xlabel="quantity (bounds hold with probability 96.5 %)", ylabel="error or bound on it (log scale)",
             title="errors, PAC-Bayes bounds (green), VC bounds (red);\ndashed: 1, above it a bound says nothing")
    steps, h = results["history_step"], results["history"]
    curve.plot(steps, h["objective"], color="C0", label="PAC-Bayes objective")
    curve.plot(steps, h["surrogate"], color="C1", label="E_q[logistic / log 2]")
    curve.set(xlabel="optimisation step", ylabel="objective, surrogate risk", title="training the posterior")
    legend_outside(curve, ncol=2)
    kl_axis.semilogy(steps, h["kl"], color="C2")
    kl_axis.set(xlabel="optimisation step", ylabel="KL(q || p) (nats)", title="KL to the prior")
    return fig
