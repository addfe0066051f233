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
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxdl import optim, stax, train
from jaxdl.data import load_digits
from jaxdl.experiments.report import progress, save_figure, write_json
from jaxdl.theory import convergence

NAME = "optimizers"
DESCRIPTION = "every jaxdl.optim optimiser on an ill-conditioned quadratic (PL bound), a bilinear game and the digits MLP, with measured L and PL ratio"

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


def best_of_grid(loss, w0, build, steps):
    """The learning rate of ``LEARNING_RATE_GRID`` with the lowest final gap (one vmapped run)."""
    grid = jnp.asarray(LEARNING_RATE_GRID)
    all_gaps = jax.jit(jax.vmap(lambda rate: optimize_quadratic(loss, w0, build(rate), steps)[0]))(grid)
    finals = jnp.where(jnp.all(jnp.isfinite(all_gaps), axis=1), all_gaps[:, -1], jnp.inf)
    best = int(jnp.argmin(finals))
    return LEARNING_RATE_GRID[best], all_gaps[best]


def quadratic_experiment(key, steps):
    loss, w0, _ = quadratic_problem(key)
    gap0 = float(loss(w0))
    kappa = L / MU
    momentum = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    runs, settings = {}, {}
    runs["gd"] = optimize_quadratic(loss, w0, optim.sgd(1 / L), steps)[0]
    settings["gd"] = "sgd(1/L), exact gradients"
    hb_rate = 4 / (np.sqrt(L) + np.sqrt(MU)) ** 2
    runs["heavy_ball"] = optimize_quadratic(loss, w0, optim.heavy_ball(hb_rate, momentum**2), steps)[0]
    settings["heavy_ball"] = f"heavy_ball(4/(√L+√μ)² = {hb_rate:.4g}, β = ((√κ−1)/(√κ+1))² = {momentum**2:.4g})"
    runs["nesterov"] = optimize_quadratic(loss, w0, optim.nesterov(1 / L, momentum), steps)[0]
    settings["nesterov"] = f"nesterov(1/L, β = (√κ−1)/(√κ+1) = {momentum:.4g}) (gap at the look-ahead point)"
    for name, build in {
        "adagrad": optim.adagrad,
        "rmsprop": optim.rmsprop,
        "adam": optim.adam,
        "muon": optim.muon,
    }.items():
        rate, runs[name] = best_of_grid(loss, w0, build, steps)
        settings[name] = f"{name}({rate}) (best final gap over the grid {list(LEARNING_RATE_GRID)})"
    noise_key = jax.random.fold_in(key, 1)
    schedule = optim.robbins_monro(1 / L, 0.6)
    last, averaged = optimize_quadratic(
        loss, w0, optim.polyak_averaging(optim.sgd(schedule)), steps, noise_key=noise_key, noise=1.0
    )
    runs["sgd_robbins_monro"], runs["sgd_polyak_average"] = last, averaged
    settings["sgd_robbins_monro"] = "sgd(robbins_monro(c=1/L, alpha=0.6)), gradient noise N(0, 1)"
    settings["sgd_polyak_average"] = (
        "uniform average of the iterates of sgd_robbins_monro (it still carries the early, distant "
        "iterates; it pays off once the noise, not the start, dominates the gap)"
    )
    runs["gd_weight_decay"] = optimize_quadratic(
        loss, w0, optax.chain(optim.weight_decay(0.5), optim.sgd(1 / (L + 0.5))), steps
    )[0]
    settings["gd_weight_decay"] = "weight_decay(0.5) + sgd(1/(L+0.5)): converges to (H+μI)⁻¹Hθ*, not θ*"
    runs["ista_l1"] = optimize_quadratic(loss, w0, optax.chain(optim.sgd(1 / L), optim.l1_prox(0.5, 1 / L)), steps)[0]
    settings["ista_l1"] = "sgd(1/L) + l1_prox(0.5, 1/L): converges to the lasso solution, not θ*"
    newton_iterate = optim.newton_step(loss, w0)
    runs["newton"] = jnp.array([gap0, float(loss(newton_iterate))])
    settings["newton"] = "newton_step: one step solves a quadratic"

    steps_axis = jnp.arange(steps + 1)
    pl_bound = convergence.gd_convergence_bound(L, MU, gap0, steps_axis)
    def gd_step(w, _):
        return w - jax.grad(loss)(w) / L, convergence.pl_ratio(loss, w, 0.0)

    _, gd_path_ratio = jax.lax.scan(gd_step, w0, length=min(steps, 50))
    measured = {
        "L_true": L,
        "mu_true": MU,
        "L_power_iteration": float(convergence.hessian_top_eigenvalue(loss, w0, key=key, num_iterations=300)),
        "condition_number_lanczos": float(convergence.condition_number(loss, w0, key=key)),
        "min_pl_ratio_along_gd": float(jnp.min(gd_path_ratio)),
        "gd_below_pl_bound": bool(jnp.all(runs["gd"] <= pl_bound * (1 + 1e-5) + 1e-7)),
        "steps_to_eps_critical_eps_1e-2": convergence.steps_to_eps_critical(L, gap0, 1e-2),
    }
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


def measure_theory(loss, params, key, x, y, apply_fn, num_eigenvalues):
    """L, top Lanczos eigenvalues, PL ratio (h* = 0) and SGD gradient variance, in one jit."""
    power_key, lanczos_key = jax.random.split(key)
    per_batch = lambda p, xb, yb: cross_entropy(apply_fn(p, xb), yb)

    @jax.jit
    def measure(params):
        return {
            "loss": loss(params),
            "L_hessian_top_eigenvalue": convergence.hessian_top_eigenvalue(
                loss, params, key=power_key, num_iterations=100
            ),
            "top_hessian_eigenvalues_lanczos": convergence.hessian_eigenvalues(
                loss, params, num_eigenvalues, key=lanczos_key
            ),
            "pl_ratio_min_loss_0": convergence.pl_ratio(loss, params, 0.0),
            "sgd_gradient_variance": convergence.sgd_gradient_variance(per_batch, params, x, y),
        }

    return {name: np.asarray(value).tolist() for name, value in measure(params).items()}


def mlp_experiment(key, fast):
    width, num_epochs, num_train = (16, 2, 256) if fast else (128, 15, None)
    dataset = load_digits(test_fraction=0.25, seed=0, num_train=num_train)
    x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    init_fn, apply_fn, _ = stax.serial(stax.Dense(width), stax.Relu(), stax.Dense(width), stax.Relu(), stax.Dense(10))
    init_key, theory_key, fit_key, sharpness_key = jax.random.split(key, 4)
    _, params0 = init_fn(init_key, (-1, x.shape[1]))
    loss = lambda p: cross_entropy(apply_fn(p, x), y)

    at_init = measure_theory(loss, params0, theory_key, x, y, apply_fn, 3 if fast else 5)
    eta = 1.0 / at_init["L_hessian_top_eigenvalue"]  # the GD step size of L-smoothness
    optimizers = {
        "sgd": (optim.sgd(eta), f"sgd(1/L0 = {eta:.3g})"),
        "heavy_ball": (optim.heavy_ball(0.1 * eta, 0.9), f"heavy_ball(0.1/L0 = {0.1 * eta:.3g}, 0.9)"),
        "nesterov": (optim.nesterov(0.1 * eta, 0.9), f"nesterov(0.1/L0 = {0.1 * eta:.3g}, 0.9)"),
        "adagrad": (optim.adagrad(0.1), "adagrad(0.1)"),
        "rmsprop": (optim.rmsprop(1e-2), "rmsprop(1e-2)"),
        "adam": (optim.adam(1e-2), "adam(1e-2)"),
        "muon": (optim.muon(0.1), "muon(0.1)"),
        "sgd_polyak_average": (optim.polyak_averaging(optim.sgd(eta)), f"polyak_averaging(sgd({eta:.3g}))"),
        "sgd_weight_decay": (optax.chain(optim.weight_decay(1e-4), optim.sgd(eta)), f"weight_decay(1e-4) + sgd({eta:.3g})"),
        "sgd_l1_prox": (optax.chain(optim.sgd(eta), optim.l1_prox(1e-4, eta)), f"sgd({eta:.3g}) + l1_prox(1e-4)"),
    }
    runs = {}
    trained = {}
    for name, (optimizer, setting) in progress(optimizers.items(), "optimizers on digits", len(optimizers)):
        result = train.fit(
            apply_fn, params0, optimizer, (x, y), loss_fn=cross_entropy, key=fit_key,
            num_epochs=num_epochs, batch_size=64, progress=False,
        )
        params = result.state.params
        if name == "sgd_polyak_average":
            params = optim.averaged_params(result.state.opt_state)
        trained[name] = params
        runs[name] = {
            "setting": setting,
            "train_loss": result.history["train_loss"],
            "test_accuracy": float(accuracy(apply_fn(params, dataset.x_test), dataset.y_test)),
        }
        if name == "sgd_l1_prox":
            leaves = jax.tree.leaves(params)
            runs[name]["fraction_of_zero_weights"] = float(
                sum(int(jnp.sum(leaf == 0)) for leaf in leaves) / sum(leaf.size for leaf in leaves)
            )
    after_adam = measure_theory(loss, trained["adam"], theory_key, x, y, apply_fn, 3 if fast else 5)

    gd_steps, every = (10, 5) if fast else (300, 20)
    sharpness = convergence.sharpness_along_run(
        loss, params0, optim.sgd(eta), gd_steps, key=sharpness_key, every=every, num_iterations=20
    )
    theory = {
        "model": f"stax.serial(Dense({width}), Relu(), Dense({width}), Relu(), Dense(10)), ntk parameterisation",
        "num_params": int(sum(leaf.size for leaf in jax.tree.leaves(params0))),
        "num_train": int(x.shape[0]),
        "at_init": at_init,
        "after_adam": after_adam,
        "gd_run": {
            "learning_rate": eta,
            "step": sharpness.step,
            "sharpness": sharpness.sharpness,
            "loss": sharpness.loss,
            "edge_of_stability_2_over_eta": 2 / eta,
        },
    }
    return runs, theory


# --- run -------------------------------------------------------------------------------


def run(out_dir: Path, *, fast: bool = False, seed: int = 0) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    key = jax.random.key(seed)
    quadratic_key, mlp_key = jax.random.split(key)
    steps = 60 if fast else 300
    quad_runs, quad_settings, pl_bound, gap0, quad_measured = quadratic_experiment(quadratic_key, steps)
    game = game_experiment(60 if fast else 200)
    mlp_runs, mlp_theory = mlp_experiment(mlp_key, fast)

    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    ax = axes[0, 0]
    floor = 1e-14
    for name, gaps in quad_runs.items():
        style = "o-" if name == "newton" else "-"
        ax.semilogy(np.arange(len(gaps)), np.maximum(np.asarray(gaps), floor), style, label=name, lw=1.2)
    ax.semilogy(np.arange(steps + 1), np.maximum(np.asarray(pl_bound), floor), "k--", lw=2, label="PL bound (1−μ/L)^t·gap0")
    ax.set(xlabel="step", ylabel="h(W_t) − h*", title=f"ill-conditioned quadratic, κ = {L / MU:.0f}", ylim=(floor, gap0 * 10))
    ax.legend(fontsize=7, ncol=2)
    ax = axes[0, 1]
    for name, norms in game.items():
        ax.semilogy(norms, label=name)
    ax.set(xlabel="step", ylabel="‖(θ, φ)‖", title="bilinear game min_θ max_φ θφ (η = 0.2)")
    ax.legend()
    ax = axes[1, 0]
    for name, run_ in mlp_runs.items():
        ax.semilogy(np.arange(1, len(run_["train_loss"]) + 1), run_["train_loss"],
                    label=f"{name} (test acc {run_['test_accuracy']:.3f})")
    ax.set(xlabel="epoch", ylabel="train cross-entropy", title="digits MLP, minibatch 64")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    gd_run = mlp_theory["gd_run"]
    ax.plot(gd_run["step"], gd_run["sharpness"], "o-", label="sharpness λ_max(∇²h)")
    ax.axhline(gd_run["edge_of_stability_2_over_eta"], color="k", ls="--", label="2/η")
    ax.set(xlabel="GD step", ylabel="λ_max", title=f"sharpness along full-batch GD, η = 1/L0 = {gd_run['learning_rate']:.3g}")
    ax.legend()
    save_figure(fig, out_dir, f"{NAME}.png")

    results = {
        "fast": fast,
        "seed": seed,
        "quadratic": {
            "gap0": gap0,
            "settings": quad_settings,
            "final_gap": {name: float(gaps[-1]) for name, gaps in quad_runs.items()},
            "gaps": quad_runs,
            "pl_bound": pl_bound,
            "measured": quad_measured,
        },
        "bilinear_game": {"final_norm": {name: norms[-1] for name, norms in game.items()}, "norms": game},
        "digits_mlp": {"runs": mlp_runs, "theory": mlp_theory},
        "seconds": time.perf_counter() - start,
    }
    write_json(out_dir, NAME, results)
    return results
