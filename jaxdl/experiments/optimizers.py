"""Every optimiser of ``jaxdl.optim`` on an ill-conditioned quadratic, a bilinear game and
the digits MLP, with the convergence theory of ``jaxdl.theory.convergence`` measured.

1. Quadratic h(W) = ½ tr((W − W*)ᵀ A (W − W*)), A = diag(logspace(μ=1 .. L=100)),
   W: f[10, 4]. GD (η = 1/L) is drawn against the PL bound (1 − μ/L)^t·gap0;
   heavy ball and Nesterov use their textbook tuning for (L, μ); the adaptive
   methods take the best learning rate of a small grid; SGD uses noisy
   gradients with a Robbins-Monro schedule, with and without Polyak averaging.
2. The bilinear game min_θ max_φ θφ: simultaneous GDA against extragradient
   and optimistic GD.
3. The digits MLP trained with each optimiser through ``train.fit``; the
   Hessian top eigenvalue L, Lanczos spectrum, PL ratio (with h* = 0, a lower
   bound for cross-entropy, so the ratio is conservative) and SGD gradient
   variance at initialisation and after training, and the sharpness along a
   full-batch GD run.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import optim, stax, train
from jaxdl.data import load_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.theory import convergence

NAME = "optimizers"
DESCRIPTION = "every jaxdl.optim optimiser on an ill-conditioned quadratic (PL bound), a bilinear game and the digits MLP, with measured L and PL ratio"
FAST_MODE = ("60 steps on the quadratic and the game (full: 300, 200); digits MLP of width 16 (128) on 256 images "
             "(1347), 2 epochs (15), 3 optimisers (10), 10 GD steps of sharpness (300)")

MU, L = 1.0, 100.0
LEARNING_RATE_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


# --- 1. the ill-conditioned quadratic ----------------------------------------------


def quadratic_problem(key):
    curvature = jnp.logspace(0.0, 2.0, 10)  # eigenvalues of the Hessian, each 4 times
    target = jax.random.normal(key, (10, 4))

    def loss(w):
        return 0.5 * jnp.sum(curvature[:, None] * (w - target) ** 2)

    return loss, jnp.zeros((10, 4)), target


def optimize_quadratic(loss, w0, optimizer, steps, *, noise_key=None, noise=0.0):
    """Gaps h(W_t) − h* for t = 0..steps (and of the Polyak average when the state has one)."""

    def step(carry, step_key):
        w, state = carry
        gradient = jax.grad(loss)(w) + noise * jax.random.normal(step_key, w.shape)
        updates, state = optimizer.update(gradient, state, w)
        w = optax.apply_updates(w, updates)
        average = state.average if isinstance(state, optim.PolyakAveragingState) else w
        return (w, state), (loss(w), loss(average))

    keys = jax.random.split(noise_key if noise_key is not None else jax.random.key(0), steps)
    _, (gaps, averaged_gaps) = jax.lax.scan(step, (w0, optimizer.init(w0)), keys)
    first = jnp.array([loss(w0)])
    return jnp.concatenate([first, gaps]), jnp.concatenate([first, averaged_gaps])


def best_of_grid(all_gaps):
    """The index into ``LEARNING_RATE_GRID`` of the run (a row of ``all_gaps``) with the lowest
    finite final gap."""
    finals = np.where(np.all(np.isfinite(all_gaps), axis=1), all_gaps[:, -1], np.inf)
    return int(np.argmin(finals))


def quadratic_experiment(key, steps):
    """Every optimiser on the quadratic, all in one compiled function (a short run's time is
    compilation, and one module compiles much faster than a dozen)."""
    loss, w0, _ = quadratic_problem(key)
    gap0 = float(loss(w0))
    kappa = L / MU
    momentum = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    hb_rate = 4 / (np.sqrt(L) + np.sqrt(MU)) ** 2
    fixed = {
        "gd": (optim.sgd(1 / L), "sgd(1/L), exact gradients"),
        "heavy_ball": (optim.heavy_ball(hb_rate, momentum**2),
                       f"heavy_ball(4/(√L+√μ)² = {hb_rate:.4g}, β = ((√κ−1)/(√κ+1))² = {momentum**2:.4g})"),
        "nesterov": (optim.nesterov(1 / L, momentum),
                     f"nesterov(1/L, β = (√κ−1)/(√κ+1) = {momentum:.4g}) (gap at the look-ahead point)"),
        "gd_weight_decay": (optax.chain(optim.weight_decay(0.5), optim.sgd(1 / (L + 0.5))),
                            "weight_decay(0.5) + sgd(1/(L+0.5)): converges to (H+μI)⁻¹Hθ*, not θ*"),
        "ista_l1": (optax.chain(optim.sgd(1 / L), optim.l1_prox(0.5, 1 / L)),
                    "sgd(1/L) + l1_prox(0.5, 1/L): converges to the lasso solution, not θ*"),
    }
    searched = {"adagrad": optim.adagrad, "rmsprop": optim.rmsprop, "adam": optim.adam, "muon": optim.muon}
    noisy_sgd = optim.polyak_averaging(optim.sgd(optim.robbins_monro(1 / L, 0.6)))
    noise_key = jax.random.fold_in(key, 1)

    @jax.jit
    def run_all(w0):
        fixed_gaps = {name: optimize_quadratic(loss, w0, opt, steps)[0] for name, (opt, _) in fixed.items()}
        grid_gaps = {
            name: jax.vmap(lambda rate, build=build: optimize_quadratic(loss, w0, build(rate), steps)[0])(
                jnp.asarray(LEARNING_RATE_GRID)
            )
            for name, build in searched.items()
        }
        noisy = optimize_quadratic(loss, w0, noisy_sgd, steps, noise_key=noise_key, noise=1.0)

        def gd_step(w, _):
            return w - jax.grad(loss)(w) / L, convergence.pl_ratio(loss, w, 0.0)

        _, gd_path_ratio = jax.lax.scan(gd_step, w0, length=min(steps, 50))
        measured = {
            "L_power_iteration": convergence.hessian_top_eigenvalue(loss, w0, key=key, num_iterations=300),
            "condition_number_lanczos": convergence.condition_number(loss, w0, key=key),
            "min_pl_ratio_along_gd": jnp.min(gd_path_ratio),
        }
        return fixed_gaps, grid_gaps, noisy, loss(optim.newton_step(loss, w0)), measured

    fixed_gaps, grid_gaps, (last, averaged), newton_gap, measured = jax.device_get(run_all(w0))
    runs = dict(fixed_gaps)
    settings = {name: setting for name, (_, setting) in fixed.items()}
    for name, all_gaps in grid_gaps.items():
        best = best_of_grid(all_gaps)
        runs[name] = all_gaps[best]
        settings[name] = f"{name}({LEARNING_RATE_GRID[best]}) (best final gap over the grid {list(LEARNING_RATE_GRID)})"
    runs["sgd_robbins_monro"], runs["sgd_polyak_average"] = last, averaged
    settings["sgd_robbins_monro"] = "sgd(robbins_monro(c=1/L, alpha=0.6)), gradient noise N(0, 1)"
    settings["sgd_polyak_average"] = (
        "uniform average of the iterates of sgd_robbins_monro (it still carries the early, distant "
        "iterates; it pays off once the noise, not the start, dominates the gap)"
    )
    runs["newton"] = np.array([gap0, float(newton_gap)])
    settings["newton"] = "newton_step: one step solves a quadratic"

    pl_bound = np.asarray(convergence.gd_convergence_bound(L, MU, gap0, jnp.arange(steps + 1)))
    measured = {"L_true": L, "mu_true": MU, **{name: float(value) for name, value in measured.items()}}
    measured["gd_below_pl_bound"] = bool(np.all(runs["gd"] <= pl_bound * (1 + 1e-5) + 1e-7))
    measured["steps_to_eps_critical_eps_1e-2"] = convergence.steps_to_eps_critical(L, gap0, 1e-2)
    return runs, settings, pl_bound, gap0, measured


# --- 2. the bilinear game ------------------------------------------------------------


def game_experiment(steps, learning_rate=0.2):
    field = optim.minmax_vector_field(lambda theta, phi: theta * phi)
    norm = lambda z: float(jnp.hypot(*z))
    start = (jnp.float32(1.0), jnp.float32(1.0))
    paths = {"gda": [norm(start)], "extragradient": [norm(start)], "optimistic_gd": [norm(start)]}
    gda = extra = ogd = start
    ogd_optimizer = optim.optimistic_gradient_descent(learning_rate)
    ogd_state = ogd_optimizer.init(ogd)
    for _ in range(steps):
        gda = jax.tree.map(lambda p, d: p - learning_rate * d, gda, field(gda))
        extra = optim.extragradient(field, extra, learning_rate)
        updates, ogd_state = ogd_optimizer.update(field(ogd), ogd_state, ogd)
        ogd = optax.apply_updates(ogd, updates)
        for name, z in (("gda", gda), ("extragradient", extra), ("optimistic_gd", ogd)):
            paths[name].append(norm(z))
    return paths


# --- 3. the digits MLP --------------------------------------------------------------


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def theory_fn(loss, key, x, y, apply_fn, num_eigenvalues, num_iterations):
    """``params -> {L, top Lanczos eigenvalues, PL ratio (h* = 0), SGD gradient variance}``,
    jitted once and used at initialisation and after training."""
    power_key, lanczos_key = jax.random.split(key)
    per_batch = lambda p, xb, yb: cross_entropy(apply_fn(p, xb), yb)

    @jax.jit
    def measure(params):
        return {
            "loss": loss(params),
            "L_hessian_top_eigenvalue": convergence.hessian_top_eigenvalue(
                loss, params, key=power_key, num_iterations=num_iterations
            ),
            "top_hessian_eigenvalues_lanczos": convergence.hessian_eigenvalues(
                loss, params, num_eigenvalues, key=lanczos_key
            ),
            "pl_ratio_min_loss_0": convergence.pl_ratio(loss, params, 0.0),
            "sgd_gradient_variance": convergence.sgd_gradient_variance(per_batch, params, x, y),
        }

    return lambda params: {name: np.asarray(value).tolist() for name, value in measure(params).items()}


#: The optimisers trained on the digits MLP; fast mode trains the first three (each costs a compilation,
#: which dominates a small run).
MLP_OPTIMIZERS = ("sgd", "adam", "sgd_l1_prox", "heavy_ball", "nesterov", "adagrad", "rmsprop", "muon",
                  "sgd_polyak_average", "sgd_weight_decay")
FAST_MLP_OPTIMIZERS = MLP_OPTIMIZERS[:3]


class DigitsMLP:
    """The digits MLP problem: data, model, initial parameters and the theory measured at
    initialisation (whose ``L`` sets the GD step ``eta = 1/L``); each optimiser's run and the
    sharpness run are separate units of work (:meth:`train`, :meth:`sharpness`)."""

    def __init__(self, key, fast: bool):
        self.fast = fast
        self.width, self.num_epochs, num_train = (16, 2, 256) if fast else (128, 15, None)
        self.dataset = load_digits(test_fraction=0.25, seed=0, num_train=num_train)
        x, y = jnp.asarray(self.dataset.x_train), jnp.asarray(self.dataset.y_train)
        self.x, self.y = x, y
        init_fn, self.apply_fn, _ = stax.serial(stax.Dense(self.width), stax.Relu(), stax.Dense(self.width),
                                                stax.Relu(), stax.Dense(10))
        init_key, theory_key, self.fit_key, self.sharpness_key = jax.random.split(key, 4)
        _, self.params0 = init_fn(init_key, (-1, x.shape[1]))
        self.loss = lambda p: cross_entropy(self.apply_fn(p, x), y)
        self.measure = theory_fn(self.loss, theory_key, x, y, self.apply_fn, 3 if fast else 5, 50 if fast else 100)
        self.at_init = self.measure(self.params0)
        self.eta = 1.0 / self.at_init["L_hessian_top_eigenvalue"]  # the GD step size of L-smoothness

    def optimizer(self, name: str):
        """The optax transformation called ``name`` and a description of its setting."""
        eta = self.eta
        return {
            "sgd": (optim.sgd(eta), f"sgd(1/L0 = {eta:.3g})"),
            "heavy_ball": (optim.heavy_ball(0.1 * eta, 0.9), f"heavy_ball(0.1/L0 = {0.1 * eta:.3g}, 0.9)"),
            "nesterov": (optim.nesterov(0.1 * eta, 0.9), f"nesterov(0.1/L0 = {0.1 * eta:.3g}, 0.9)"),
            "adagrad": (optim.adagrad(0.1), "adagrad(0.1)"),
            "rmsprop": (optim.rmsprop(1e-2), "rmsprop(1e-2)"),
            "adam": (optim.adam(1e-2), "adam(1e-2)"),
            "muon": (optim.muon(0.1), "muon(0.1)"),
            "sgd_polyak_average": (optim.polyak_averaging(optim.sgd(eta)), f"polyak_averaging(sgd({eta:.3g}))"),
            "sgd_weight_decay": (optax.chain(optim.weight_decay(1e-4), optim.sgd(eta)),
                                 f"weight_decay(1e-4) + sgd({eta:.3g})"),
            "sgd_l1_prox": (optax.chain(optim.sgd(eta), optim.l1_prox(1e-4, eta)), f"sgd({eta:.3g}) + l1_prox(1e-4)"),
        }[name]

    def train(self, name: str) -> dict:
        """Minibatch training with optimiser ``name``; the Adam run also measures the theory after training."""
        optimizer, setting = self.optimizer(name)
        result = train.fit(
            self.apply_fn, self.params0, optimizer, (self.x, self.y), loss_fn=cross_entropy, key=self.fit_key,
            num_epochs=self.num_epochs, batch_size=64, progress=False,
        )
        params = result.state.params
        if name == "sgd_polyak_average":
            params = optim.averaged_params(result.state.opt_state)
        run = {
            "setting": setting,
            "train_loss": result.history["train_loss"],
            "test_accuracy": float(accuracy(self.apply_fn(params, self.dataset.x_test), self.dataset.y_test)),
        }
        if name == "sgd_l1_prox":
            leaves = jax.tree.leaves(params)
            run["fraction_of_zero_weights"] = float(
                sum(int(jnp.sum(leaf == 0)) for leaf in leaves) / sum(leaf.size for leaf in leaves)
            )
        if name == "adam":
            run["theory_after_training"] = self.measure(params)
        return run

    def sharpness(self) -> dict:
        """The top Hessian eigenvalue along a full-batch GD run with ``eta = 1/L0``."""
        gd_steps, every = (10, 5) if self.fast else (300, 20)
        sharpness = convergence.sharpness_along_run(
            self.loss, self.params0, optim.sgd(self.eta), gd_steps, key=self.sharpness_key, every=every,
            num_iterations=20
        )
        return {
            "learning_rate": self.eta,
            "step": sharpness.step,
            "sharpness": sharpness.sharpness,
            "loss": sharpness.loss,
            "edge_of_stability_2_over_eta": 2 / self.eta,
        }


# --- run -------------------------------------------------------------------------------


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """All three parts, each optimiser's digits run a unit of work of its own (see
    :mod:`jaxdl.experiments.units`); writes ``optimizers.json`` and ``optimizers.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    key = jax.random.key(seed)
    quadratic_key, mlp_key = jax.random.split(key)
    steps = 60 if fast else 300
    game_steps = 60 if fast else 200
    mlp_names = FAST_MLP_OPTIMIZERS if fast else MLP_OPTIMIZERS
    digits = []  # built by the first digits unit that needs it (not at all when those are all resumed)

    def mlp():
        if not digits:
            digits.append(DigitsMLP(mlp_key, fast))
        return digits[0]

    def quadratic():
        runs, settings, pl_bound, gap0, measured = quadratic_experiment(quadratic_key, steps)
        return {"gap0": gap0, "settings": settings, "final_gap": {name: float(gaps[-1]) for name, gaps in runs.items()},
                "gaps": runs, "pl_bound": pl_bound, "measured": measured}

    def game():
        norms = game_experiment(game_steps)
        return {"final_norm": {name: path[-1] for name, path in norms.items()}, "norms": norms}

    work = {"quadratic": quadratic, "bilinear game": game, "digits MLP: theory at init.": lambda: mlp().at_init}
    work |= {f"digits MLP: {name}": (lambda name=name: mlp().train(name)) for name in mlp_names}
    work["digits MLP: sharpness along GD"] = lambda: mlp().sharpness()
    done = run_units(NAME, list(work), lambda unit: work[unit](), out_dir=out_dir, resume=resume,
                     settings={"fast": fast, "seed": seed, "steps": steps, "mlp_optimizers": list(mlp_names)})

    mlp_runs = {name: done[f"digits MLP: {name}"] for name in mlp_names}
    gd_run = done["digits MLP: sharpness along GD"]
    mlp_theory = {
        "model": f"stax.serial(Dense({16 if fast else 128}), Relu(), Dense({16 if fast else 128}), Relu(), "
                 "Dense(10)), ntk parameterisation",
        "at_init": done["digits MLP: theory at init."],
        "after_adam": mlp_runs["adam"]["theory_after_training"],
        "gd_run": gd_run,
    }
    results = {
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "quadratic": done["quadratic"],
        "bilinear_game": done["bilinear game"],
        "digits_mlp": {"runs": mlp_runs, "theory": mlp_theory},
        "seconds": time.perf_counter() - start,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    final = results["quadratic"]["final_gap"]
    game = results["bilinear_game"]["final_norm"]
    runs = results["digits_mlp"]["runs"]
    best = max(runs, key=lambda name: runs[name]["test_accuracy"])
    gd_run = results["digits_mlp"]["theory"]["gd_run"]
    return {
        "quadratic final gap, GD / heavy ball / Nesterov": f"{final['gd']:.3g} / {final['heavy_ball']:.3g} / "
        f"{final['nesterov']:.3g} (GD below the PL bound: {results['quadratic']['measured']['gd_below_pl_bound']})",
        "bilinear game final |(theta, phi)|, GDA / extragradient / optimistic": f"{game['gda']:.3g} / "
        f"{game['extragradient']:.3g} / {game['optimistic_gd']:.3g} (start 1.41)",
        "digits MLP best test accuracy": f"{runs[best]['test_accuracy']:.3f} ({best})",
        "digits MLP sharpness at the end of GD / 2/eta": f"{gd_run['sharpness'][-1]:.3g} / "
        f"{gd_run['edge_of_stability_2_over_eta']:.3g}",
    }


def figure(results: dict):
    """The four panels: quadratic gaps against the PL bound, the bilinear game, the digits MLP's
    training losses and the sharpness along GD."""
    fig, axes = new_figure("Optimisers of jaxdl.optim on three problems", results["fast"], 2, 2, figsize=(14, 13))
    quadratic = results["quadratic"]
    ax = axes[0, 0]
    floor = 1e-14
    for (name, gaps), color in zip(quadratic["gaps"].items(), colors(len(quadratic["gaps"]))):
        style = "o-" if name == "newton" else "-"
        ax.semilogy(np.arange(len(gaps)), np.maximum(np.asarray(gaps, float), floor), style, color=color, label=name,
                    lw=1.2)
    pl_bound = np.asarray(quadratic["pl_bound"], float)
    ax.semilogy(np.arange(len(pl_bound)), np.maximum(pl_bound, floor), "--", color="k", lw=2,
                label="PL bound (1-mu/L)^t gap0")
    ax.set(xlabel="step t", ylabel="h(W_t) - h* (floored at 1e-14)",
           title=f"ill-conditioned quadratic, kappa = {L / MU:.0f}", ylim=(floor, quadratic["gap0"] * 10))
    legend_outside(ax, ncol=3)
    ax = axes[0, 1]
    norms = results["bilinear_game"]["norms"]
    for (name, path), color in zip(norms.items(), colors(len(norms))):
        ax.semilogy(path, color=color, label=name)
    ax.set(xlabel="step", ylabel="distance from the equilibrium |(theta, phi)|",
           title="bilinear game min_theta max_phi theta phi (eta = 0.2)")
    legend_outside(ax, ncol=3)
    ax = axes[1, 0]
    runs = results["digits_mlp"]["runs"]
    for (name, run_), color in zip(runs.items(), colors(len(runs))):
        ax.semilogy(np.arange(1, len(run_["train_loss"]) + 1), run_["train_loss"], "o-", ms=3, color=color,
                    label=f"{name} (test acc. {run_['test_accuracy']:.3f})")
    ax.set(xlabel="epoch", ylabel="training cross-entropy (mean over the epoch)",
           title="digits MLP, minibatches of 64")
    legend_outside(ax, ncol=2)
    ax = axes[1, 1]
    gd_run = results["digits_mlp"]["theory"]["gd_run"]
    ax.plot(gd_run["step"], gd_run["sharpness"], "o-", color="C0", label="sharpness lambda_max of the Hessian")
    ax.axhline(gd_run["edge_of_stability_2_over_eta"], color="k", ls="--", label="2/eta (edge of stability)")
    ax.set(xlabel="GD step", ylabel="top Hessian eigenvalue lambda_max",
           title=f"sharpness along full-batch GD, eta = 1/L0 = {gd_run['learning_rate']:.3g}")
    legend_outside(ax, ncol=2)
    return fig
