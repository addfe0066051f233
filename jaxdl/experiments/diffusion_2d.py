"""DDPM, DDIM and classifier-free guidance on a 2-D Gaussian mixture whose noised scores are known.

Data: a mixture of K = 4 anisotropic Gaussians in the plane, Σ_k π_k N(m_k, S_k). The forward process
keeps it a mixture, q_t = Σ_k π_k N(√ᾱ_t m_k, ᾱ_t S_k + (1-ᾱ_t) I), so the true score ∇ log q_t is
known in closed form (:func:`true_log_density`, differentiated).

For each noise schedule (cosine, linear; T = 100, :func:`jaxdl.generative.diffusion.noise_schedule`)
one ε-network (an MLP on [x, sinusoidal embedding of t/T, one-hot class or "none"]) is trained on
the seeds' simplified criterion with the class label dropped 20 % of the time
(:func:`~jaxdl.generative.diffusion.eps_loss`), so that the same network is unconditional
(class "none") and conditional. Reported:

* score error across t: E||ŝ_θ(x_t, t) - ∇ log q_t(x_t)||² / E||∇ log q_t(x_t)||² at x_t ~ q_t,
  with ŝ_θ = -ε_θ/√(1-ᾱ_t);
* sample quality by MMD² (unbiased, Gaussian kernels of bandwidths 0.2, 0.5, 1, 2) between samples
  and fresh data, for DDPM ancestral sampling (T steps), DDIM η = 0 (20 steps; also without x̂_0
  clipping at |x| ≤ 5, and with all T steps), and per class for
  conditional and guided sampling (w = 0, 1, 3; against that class's data), with two reference
  values: a second data sample (the noise floor) and N(0, I) (no learning);
* DDIM trajectories from x_T to x_0 for the figure.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import stax
from jaxdl.experiments.report import colors, legend_outside, new_figure, progress, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.generative import diffusion

NAME = "diffusion-2d"
DESCRIPTION = ("DDPM / DDIM / classifier-free guidance on a 2-D Gaussian mixture: score error against the "
               "closed-form noised score, MMD of samples to the data")
FAST_MODE = ("linear schedule only (full: linear and cosine), 1500 training steps (full: 8000), "
             "1000 samples (full: 4000)")
DATASET = "4-component 2-D Gaussian mixture (synthetic, closed-form noised scores)"

MEANS = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
COVS = np.array([[[0.30, 0.20], [0.20, 0.30]], [[0.30, -0.20], [-0.20, 0.30]],
                 [[0.50, 0.00], [0.00, 0.05]], [[0.05, 0.00], [0.00, 0.50]]])
WEIGHTS = np.array([0.3, 0.3, 0.2, 0.2])
K = len(WEIGHTS)
NULL_CLASS = K
BANDWIDTHS = (0.2, 0.5, 1.0, 2.0)
GUIDANCE_WEIGHTS = (0.0, 1.0, 3.0)
SCORE_TIMES = (1, 2, 5, 10, 20, 35, 50, 70, 100)
CLIP_X0 = 5.0  # |x| of the data stays below 4.5; clipping x̂_0 there only ever removes blow-ups


def settings_for(fast: bool, seed: int) -> dict:
    return {
        "fast": fast,
        "seed": seed,
        "schedules": ["linear"] if fast else ["linear", "cosine"],
        "num_diffusion_steps": 100,
        "ddim_steps": 20,
        "clip_x0": CLIP_X0,
        "train_steps": 1500 if fast else 8000,
        "batch_size": 256,
        "learning_rate": 2e-3,
        "hidden": [128, 128, 128],
        "time_embedding": 16,
        "cond_drop_prob": 0.2,
        "num_samples": 1000 if fast else 4000,
        "guidance_weights": list(GUIDANCE_WEIGHTS),
        "score_times": list(SCORE_TIMES),
        "mmd_bandwidths": list(BANDWIDTHS),
    }


# --------------------------------------------------------------------------- data and the true score


def sample_mixture(key, n: int):
    """n points of the mixture and their component labels."""
    key_c, key_x = jax.random.split(key)
    labels = jax.random.choice(key_c, K, (n,), p=jnp.asarray(WEIGHTS))
    chol = jnp.asarray(np.linalg.cholesky(COVS), jnp.float32)
    z = jax.random.normal(key_x, (n, 2))
    return jnp.asarray(MEANS, jnp.float32)[labels] + jnp.einsum("nij,nj->ni", chol[labels], z), labels


def sample_class(key, n: int, k: int):
    chol = np.linalg.cholesky(COVS[k])
    return jnp.asarray(MEANS[k] + np.asarray(jax.random.normal(key, (n, 2))) @ chol.T, jnp.float32)


def true_log_density(x, alpha_bar):
    """log q_t(x) = log Σ_k π_k N(x; √ᾱ m_k, ᾱ S_k + (1-ᾱ) I) for one point x of shape (2,)."""
    covs = alpha_bar * jnp.asarray(COVS) + (1 - alpha_bar) * jnp.eye(2)
    diffs = x - jnp.sqrt(alpha_bar) * jnp.asarray(MEANS)
    quad = jnp.einsum("ki,kij,kj->k", diffs, jnp.linalg.inv(covs), diffs)
    logs = jnp.log(jnp.asarray(WEIGHTS)) - 0.5 * quad - 0.5 * jnp.log(jnp.linalg.det(covs)) - jnp.log(2 * jnp.pi)
    return jax.scipy.special.logsumexp(logs)


true_score = jax.jit(jax.vmap(jax.grad(true_log_density), in_axes=(0, None)))


def mmd2(x, y, bandwidths=BANDWIDTHS):
    """Unbiased MMD² with the sum of Gaussian kernels exp(-||a-b||²/(2h²)) over ``bandwidths``."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    def gram(a, b):
        d2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
        return sum(jnp.exp(-d2 / (2 * h**2)) for h in bandwidths)

    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    return float((jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1)) + (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
                 - 2 * jnp.mean(kxy))


# --------------------------------------------------------------------------- the ε-network


def eps_network(settings: dict, schedule):
    """``(init, eps_apply)``: ε_θ(x, t, c) = √(1-ᾱ_t) x + MLP([x, sin/cos embedding of t/T, one-hot c]).

    The skip term is the exact ε for N(0, I) data; with it the MLP learns only a correction, which
    keeps ε_θ accurate at t ≈ T, where x̂_0 = (x_t - √(1-ᾱ_t) ε)/√ᾱ_t divides its error by √ᾱ_T
    (2e-4 for the cosine schedule). Class K is "no class"."""
    layers = []
    for width in settings["hidden"]:
        layers += [stax.Dense(width, W_std=2**0.5, b_std=0.0, parameterization="standard"), stax.Gelu()]
    init_fn, apply_fn, _ = stax.serial(*layers, stax.Dense(2, b_std=0.0, parameterization="standard"))
    T, E = settings["num_diffusion_steps"], settings["time_embedding"]
    frequencies = jnp.exp(jnp.linspace(0.0, math.log(100.0), E // 2))

    def features(x, t, cond):
        phase = (t / T)[:, None] * frequencies[None, :]
        return jnp.concatenate([x, jnp.sin(phase), jnp.cos(phase), jax.nn.one_hot(cond, K + 1)], axis=1)

    def init(key):
        return init_fn(key, (-1, 2 + E + K + 1))[1]

    def eps_apply(params, x_t, t, cond):
        skip = jnp.sqrt(1.0 - schedule.alpha_bars[t - 1])[:, None] * x_t
        return skip + apply_fn(params, features(x_t, t, cond))

    return init, eps_apply


def train(settings: dict, schedule, key):
    init, eps_apply = eps_network(settings, schedule)
    key_init, key_steps = jax.random.split(key)
    params = init(key_init)
    optimizer = optax.adam(optax.cosine_decay_schedule(settings["learning_rate"], settings["train_steps"]))
    opt_state = optimizer.init(params)

    def loss_fn(params, key):
        key_data, key_loss = jax.random.split(key)
        x0, labels = sample_mixture(key_data, settings["batch_size"])
        return diffusion.eps_loss(eps_apply, params, schedule, x0, key_loss, labels,
                                  cond_drop_prob=settings["cond_drop_prob"], null_cond=NULL_CLASS)

    @jax.jit
    def chunk(carry, keys):
        def step(carry, key):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(step, carry, keys)

    steps, size = settings["train_steps"], 250
    keys = jax.random.split(key_steps, steps)
    carry, losses = (params, opt_state), []
    for start in progress(range(0, steps, size), desc=f"{NAME}: training", total=-(-steps // size)):
        carry, chunk_losses = chunk(carry, keys[start:start + size])
        losses += np.asarray(chunk_losses).tolist()
    return carry[0], eps_apply, losses


def evaluate(settings: dict, schedule_name: str, key) -> dict:
    """Train one ε-network and measure its scores and samples (one unit of work)."""
    schedule = diffusion.noise_schedule(schedule_name, settings["num_diffusion_steps"])
    key_train, key_eval = jax.random.split(key)
    start, cpu = time.perf_counter(), time.process_time()
    params, eps_apply, losses = train(settings, schedule, key_train)
    train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    keys = iter(jax.random.split(key_eval, 32))
    n = settings["num_samples"]
    null = jnp.full((n,), NULL_CLASS)
    uncond = lambda p, x, t: eps_apply(p, x, t, jnp.full(x.shape[:1], NULL_CLASS))  # noqa: E731

    # score error against the closed-form score of q_t
    score_errors = []
    x0, _ = sample_mixture(next(keys), n)
    for t in settings["score_times"]:
        tt = jnp.full((n,), t, jnp.int32)
        x_t = diffusion.q_sample(schedule, x0, tt, jax.random.normal(next(keys), x0.shape))
        truth = true_score(x_t, schedule.alpha_bars[t - 1])
        model = diffusion.eps_to_score(schedule, tt, uncond(params, x_t, tt))
        score_errors.append(float(jnp.mean(jnp.sum((model - truth) ** 2, 1)) / jnp.mean(jnp.sum(truth**2, 1))))

    start = time.perf_counter()
    ddpm = diffusion.ddpm_sample(eps_apply, params, schedule, (n, 2), next(keys), null)
    ddpm_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ddim_key = next(keys)
    ddim, trajectories = diffusion.ddim_sample(eps_apply, params, schedule, (n, 2), ddim_key, null,
                                               num_steps=settings["ddim_steps"], clip_x0=settings["clip_x0"],
                                               return_trajectory=True)
    ddim_seconds = time.perf_counter() - start
    ddim_unclipped = diffusion.ddim_sample(eps_apply, params, schedule, (n, 2), ddim_key, null,
                                           num_steps=settings["ddim_steps"])
    ddim_all_steps = diffusion.ddim_sample(eps_apply, params, schedule, (n, 2), ddim_key, null,
                                           clip_x0=settings["clip_x0"])
    data, _ = sample_mixture(next(keys), n)
    bw = tuple(settings["mmd_bandwidths"])
    mmd = {
        "ddpm": mmd2(ddpm, data, bw),
        "ddim_eta0": mmd2(ddim, data, bw),
        "ddim_eta0_unclipped": mmd2(ddim_unclipped, data, bw),
        "ddim_eta0_all_steps": mmd2(ddim_all_steps, data, bw),
        "reference: second data sample": mmd2(sample_mixture(next(keys), n)[0], data, bw),
        "reference: N(0, I)": mmd2(jax.random.normal(next(keys), (n, 2)), data, bw),
    }
    # conditional / guided: per class, DDIM eta=0 against that class's data
    per_class = max(n // K, 50)
    guided_mmd, guided_samples, guided_in_class = {}, {}, {}
    for w in settings["guidance_weights"]:
        guided = diffusion.classifier_free_guidance(eps_apply, w, NULL_CLASS)
        values, inside, samples = [], [], []
        for k in range(K):
            x = diffusion.ddim_sample(guided, params, schedule, (per_class, 2), next(keys), jnp.full((per_class,), k),
                                      num_steps=settings["ddim_steps"], clip_x0=settings["clip_x0"])
            values.append(mmd2(x, sample_class(jax.random.fold_in(key_eval, 100 + k), per_class, k), bw))
            inside.append(float(jnp.mean(_nearest_component(x) == k)))
            samples.append(np.asarray(x[:100]).tolist())
        guided_mmd[f"w={w:g}"], guided_in_class[f"w={w:g}"] = float(np.mean(values)), float(np.mean(inside))
        guided_samples[f"w={w:g}"] = samples
    show = min(n, 1000)
    return {
        "schedule": schedule_name,
        "alpha_bar_T": float(schedule.alpha_bars[-1]),
        "final_train_loss": float(np.mean(losses[-100:])),
        "train_loss_history": losses[:: max(1, len(losses) // 200)],
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "ddpm_sampling_seconds": ddpm_seconds,
        "ddim_sampling_seconds": ddim_seconds,
        "score_times": settings["score_times"],
        "score_relative_error": score_errors,
        "mmd2": mmd,
        "guided_mmd2_per_class": guided_mmd,
        "guided_fraction_in_class": guided_in_class,
        "samples": {"data": np.asarray(data[:show]).tolist(), "ddpm": np.asarray(ddpm[:show]).tolist(),
                    "ddim_eta0": np.asarray(ddim[:show]).tolist()},
        "guided_samples": guided_samples,
        "ddim_trajectories": np.asarray(trajectories[:, :40]).transpose(1, 0, 2).tolist(),
    }


def _nearest_component(x):
    """The component of highest posterior responsibility at x (unnoised mixture)."""
    covs = jnp.asarray(COVS)
    diffs = x[:, None, :] - jnp.asarray(MEANS)[None]
    quad = jnp.einsum("nki,kij,nkj->nk", diffs, jnp.linalg.inv(covs), diffs)
    return jnp.argmax(jnp.log(jnp.asarray(WEIGHTS)) - 0.5 * quad - 0.5 * jnp.log(jnp.linalg.det(covs)), axis=1)


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train and evaluate one ε-network per schedule (a unit each); writes diffusion-2d.json/.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)

    def work(unit: str) -> dict:
        index = settings["schedules"].index(unit)
        return evaluate(settings, unit, jax.random.fold_in(jax.random.key(seed), index))

    units = run_units(NAME, settings["schedules"], work, out_dir=out_dir, settings=settings, resume=resume)
    best = min(units, key=lambda s: units[s]["mmd2"]["ddpm"])
    results = {
        "description": DESCRIPTION,
        "dataset": DATASET,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "mixture": {"means": MEANS.tolist(), "covariances": COVS.tolist(), "weights": WEIGHTS.tolist()},
        "best_schedule": best,
        "runs": units,
        "total_train_seconds": sum(u["train_seconds"] for u in units.values()),
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    lines = {}
    for name, r in results["runs"].items():
        errors = dict(zip(r["score_times"], r["score_relative_error"]))
        pick = [t for t in (1, 10, 50, 100) if t in errors]
        lines[f"{name}: relative score error at t = {', '.join(map(str, pick))}"] = " / ".join(
            f"{errors[t]:.3f}" for t in pick)
        keys = ("ddpm", "ddim_eta0", "ddim_eta0_unclipped", "ddim_eta0_all_steps", "reference: second data sample",
                "reference: N(0, I)")
        label = f"{name}: MMD² DDPM / DDIM(η=0, 20 steps) / unclipped / all T steps / data floor / N(0,I)"
        lines[label] = " / ".join(f"{r['mmd2'][k]:.4f}" for k in keys)
        lines[f"{name}: guided per-class MMD² ({', '.join(r['guided_mmd2_per_class'])})"] = " / ".join(
            f"{v:.4f}" for v in r["guided_mmd2_per_class"].values())
        lines[f"{name}: guided samples in their class"] = " / ".join(
            f"{v:.3f}" for v in r["guided_fraction_in_class"].values())
    return lines


def figure(results: dict):
    """Data, DDPM, DDIM and guided samples, DDIM trajectories, and the score error across t."""
    run_ = results["runs"][results["best_schedule"]]
    fig, axes = new_figure(f"Diffusion on a 2-D Gaussian mixture (samples from the {results['best_schedule']} "
                           f"schedule, T = {results['settings']['num_diffusion_steps']})",
                           results["fast"], 2, 3, figsize=(15, 9.5))
    data_ax, ddpm_ax, ddim_ax, guided_ax, traj_ax, score_ax = axes.ravel()
    mmd = run_["mmd2"]
    panels = ((data_ax, "data", "data"), (ddpm_ax, "ddpm", f"DDPM, {results['settings']['num_diffusion_steps']} steps"),
              (ddim_ax, "ddim_eta0", f"DDIM η=0, {results['settings']['ddim_steps']} steps"))
    for ax, key, title in panels:
        pts = np.asarray(run_["samples"][key])
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color="tab:blue" if key == "data" else "tab:orange")
        if key != "data":
            title += f": MMD² {mmd[key]:.4f}"
        ax.set_title(title)
    class_colors = colors(K)
    last_w = list(run_["guided_samples"])[-1]
    for k, pts in enumerate(run_["guided_samples"][last_w]):
        pts = np.asarray(pts)
        guided_ax.scatter(pts[:, 0], pts[:, 1], s=4, color=class_colors[k], label=f"class {k}")
    guided_ax.set_title(f"guided, {last_w}: MMD²/class {run_['guided_mmd2_per_class'][last_w]:.4f}")
    legend_outside(guided_ax, ncol=4)
    data = np.asarray(run_["samples"]["data"])
    traj_ax.scatter(data[:, 0], data[:, 1], s=2, color="0.8")
    for path in run_["ddim_trajectories"][:25]:
        path = np.asarray(path)
        traj_ax.plot(path[:, 0], path[:, 1], lw=0.6, color="tab:green", alpha=0.7)
        traj_ax.scatter(path[-1:, 0], path[-1:, 1], s=8, color="tab:red", zorder=3)
    traj_ax.set_title("DDIM η=0 trajectories x_T → x_0 (red: x_0)")
    for ax in (data_ax, ddpm_ax, ddim_ax, guided_ax, traj_ax):
        ax.set(xlabel="x₁", ylabel="x₂", xlim=(-4, 4), ylim=(-4, 4))
        ax.set_aspect("equal")
    names = list(results["runs"])
    for color, name in zip(colors(len(names)), names):
        r = results["runs"][name]
        score_ax.plot(r["score_times"], r["score_relative_error"], "o-", color=color, label=f"{name} schedule")
    score_ax.set(xlabel="diffusion step t", ylabel="E||ŝ_θ - ∇log q_t||² / E||∇log q_t||²", yscale="log",
                 title="score error against the closed form")
    legend_outside(score_ax, ncol=2)
    return fig
