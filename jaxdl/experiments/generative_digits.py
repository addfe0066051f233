"""Generative models on the bundled 8×8 digits: test log-likelihood in bits per dimension.

The seeds' generative chapters on :func:`jaxdl.data.load_digits` (1347 training and 450
test images, 64 pixels with 17 grey levels 0..16):

* **discrete, exact**: MADE with a 17-way categorical conditional per pixel
  (:mod:`jaxdl.generative.autoregressive`) gives ``-log2 P(x) / 64`` exactly;
* **continuous models** see uniformly dequantised pixels ``y = (x + u) / 17``,
  ``u ~ U[0, 1)^64``, standardised with the training mean and std (an affine map whose
  log-determinant is added back). For any density ``p`` on ``y``,
  ``-log P(x) ≤ E_u[-log p(y)] + 64 log 17`` (Jensen; Theis et al. 2016), so their
  discrete bits/dim are *upper bounds*; the continuous log-density itself is exact for
  PPCA (closed form), factor analysis (EM) and RealNVP (change of variables), and a
  bound for the VAE (ELBO; IWAE with k samples) and the DDPM (its variational bound,
  :func:`jaxdl.generative.diffusion.variational_bound`).

PCA itself is not a density: its row reports the test reconstruction error, and the
linear autoencoder's decoder is compared with the PCA subspace by principal angles
(seed 003 §9.1). Uniform noise over the 17 levels is ``log2 17 = 4.09`` bits/dim.
Each model is one unit of work (:mod:`jaxdl.experiments.units`), so an interrupted run
resumes; the figure shows the bits/dim and a grid of samples per model.
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
from jaxdl.data import load_digits
from jaxdl.experiments.report import colors, new_figure, progress, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.generative import autoregressive, dlgm, flows, linear
from jaxdl.generative import vae as vae_lib

NAME = "generative-digits"
DESCRIPTION = ("PCA/FA/PPCA, VAE and a two-level deep latent Gaussian model (ELBO, IWAE), RealNVP, MADE and a "
               "small DDPM on 8x8 digits: "
               "test bits/dim, exact or bounded, and sample grids")  # fmt: skip
FAST_MODE = "few epochs (VAE and DLGM 5, RealNVP 5, MADE 5, DDPM 10; full 150/30/100/300), smaller networks, T = 50 (full 200)"

LEVELS = 17
DIM = 64
MODELS = ("linear", "vae", "realnvp", "made", "ddpm", "dlgm")  # the unit keys are fold_in(seed, index): append only
UNIFORM_BITS = math.log2(LEVELS)


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    return {
        "fast": fast,
        "seed": seed,
        "num_components": 16,
        "fa_iters": 100 if fast else 500,
        "autoencoder_steps": 300 if fast else 3000,
        "epochs": {"vae": 5, "realnvp": 5, "made": 5, "ddpm": 10} if fast else
                  {"vae": 150, "realnvp": 30, "made": 100, "ddpm": 300},  # fmt: skip
        "batch_size": 64,
        "learning_rate": 1e-3,
        "vae_hidden": 128 if fast else 256,
        "vae_latent": 16,
        "dlgm_latents": [16, 8],  # d_1 (next to the pixels), d_2 (top)
        "iwae_k": 16 if fast else 256,
        "flow_couplings": 4 if fast else 8,
        # wider or longer-trained flows overfit the 1347 images (8 couplings of 256x256 for 150
        # epochs: 649 test bits/dim); 8 couplings of 64 for 30 epochs: 2.46
        "flow_hidden": [64],
        "made_hidden": [128] if fast else [512],
        "ddpm_steps": 50 if fast else 200,
        "ddpm_hidden": 128 if fast else 512,
        "test_dequantisations": 1 if fast else 4,
        "num_samples": 16,
    }


def _bits(log_density_nats):
    """Discrete bits/dim bound from the mean continuous log-density of ``y`` in [0, 1]^64."""
    return (DIM * math.log(LEVELS) - float(log_density_nats)) / (DIM * math.log(2))


class _Data:
    """Pixels, dequantisation and the standardisation shared by the continuous models."""

    def __init__(self, dataset, seed, num_test_draws):
        self.pixels_train = np.asarray(dataset.x_train, np.float32)
        self.pixels_test = np.asarray(dataset.x_test, np.float32)
        rng = np.random.default_rng(seed)
        y = (self.pixels_train + rng.uniform(size=self.pixels_train.shape)) / LEVELS
        self.mean, self.std = y.mean(0), y.std(0)
        self.log_scale = float(np.sum(np.log(self.std)))  # log|det| of y -> z
        self.z_train_fixed = self.standardise(y).astype(np.float32)
        self.z_test_draws = [self.standardise((self.pixels_test + rng.uniform(size=self.pixels_test.shape)) / LEVELS)
                             .astype(np.float32) for _ in range(num_test_draws)]  # fmt: skip

    def standardise(self, y):
        return (y - self.mean) / self.std

    def dequantised_batch(self, pixels, key):
        y = (pixels + jax.random.uniform(key, pixels.shape)) / LEVELS
        return (y - self.mean) / self.std

    def test_bits(self, log_density_z):
        """Average over the test dequantisations of ``log_density_z(z) -> f[n]`` (nats), as bits/dim."""
        values = [float(jnp.mean(log_density_z(z))) - self.log_scale for z in self.z_test_draws]
        return _bits(np.mean(values))

    def to_images(self, z):
        return np.clip(np.asarray(z) * self.std + self.mean, 0.0, 1.0)


def _train(loss_fn, params, pixels, data: _Data, settings, epochs, key, desc, discrete=False):
    """Minibatch Adam on ``loss_fn(params, batch, key)`` (batches dequantised and standardised
    unless ``discrete``). Returns ``(params, losses per epoch, seconds)``."""
    bs = settings["batch_size"]
    steps_per_epoch = pixels.shape[0] // bs
    optimizer = optax.adam(optax.cosine_decay_schedule(settings["learning_rate"], epochs * steps_per_epoch, 0.05))
    state = optimizer.init(params)
    pixels = jnp.asarray(pixels)

    @jax.jit
    def epoch(params, state, key):
        perm_key, key = jax.random.split(key)
        order = jax.random.permutation(perm_key, pixels.shape[0])[: steps_per_epoch * bs].reshape(steps_per_epoch, bs)

        def step(carry, inputs):
            params, state = carry
            index, k = inputs
            dq_key, loss_key = jax.random.split(k)
            batch = pixels[index] if discrete else data.dequantised_batch(pixels[index], dq_key)
            value, grads = jax.value_and_grad(loss_fn)(params, batch, loss_key)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, state), values = jax.lax.scan(step, (params, state), (order, jax.random.split(key, steps_per_epoch)))
        return params, state, jnp.mean(values)

    losses, start = [], time.perf_counter()
    for e in progress(range(epochs), desc=desc):
        params, state, value = epoch(params, state, jax.random.fold_in(key, e))
        losses.append(float(value))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"{NAME}: {desc} training diverged at epoch {e}")
    return params, losses, time.perf_counter() - start


def _linear_unit(data: _Data, settings, key) -> dict:
    m = settings["num_components"]
    start = time.perf_counter()
    z = jnp.asarray(data.z_train_fixed)
    pca_model = linear.pca(z, m)
    recon = [float(jnp.mean(jnp.sum((pca_model.decode(pca_model.encode(t)) - t) ** 2, -1))) for t in data.z_test_draws]
    ppca_model = linear.ppca(z, m)
    fa_model, history = linear.factor_analysis(z, m, num_iters=settings["fa_iters"])
    ae = linear.linear_autoencoder(DIM, m)
    ae_params, ae_losses = linear.fit_autoencoder(ae, z - pca_model.mean, key, num_steps=settings["autoencoder_steps"],
                                                  learning_rate=1e-2)  # fmt: skip
    optimum = 0.5 * float(jnp.sum(pca_model.variances[m:]))
    angles = linear.principal_angles(linear.decoder_basis(ae_params), pca_model.components.T)
    samples = data.to_images(linear.sample(ppca_model, jax.random.fold_in(key, 1), settings["num_samples"]))
    return {
        "pca_test_reconstruction_mse_standardised": float(np.mean(recon)) / DIM,
        "pca_explained_variance_share": float(jnp.sum(pca_model.variances[:m]) / jnp.sum(pca_model.variances)),
        "ppca_test_bits_per_dim": data.test_bits(lambda t: linear.log_likelihood(ppca_model, t)),
        "fa_test_bits_per_dim": data.test_bits(lambda t: linear.log_likelihood(fa_model, t)),
        "ppca_train_bits_per_dim": _bits(float(jnp.mean(linear.log_likelihood(ppca_model, z))) - data.log_scale),
        "fa_train_bits_per_dim": _bits(float(history[-1]) - data.log_scale),
        "fa_em_monotone": bool(np.all(np.diff(np.asarray(history)) >= -1e-3)),
        "autoencoder_max_principal_angle_deg": float(jnp.degrees(jnp.max(angles))),
        "autoencoder_principal_angles_deg": np.degrees(np.asarray(angles)),
        "autoencoder_final_loss": float(ae_losses[-1]),
        "pca_half_discarded_variance": optimum,  # the autoencoder's optimal loss (seed 003 §9.1)
        "autoencoder_loss_excess": float(ae_losses[-1]) / optimum - 1.0,
        "samples": samples,
        "train_seconds": time.perf_counter() - start,
    }


def _mlp(hidden, out_dim):
    dense = dict(parameterization="standard", b_std=0.0)
    return stax.serial(stax.Dense(hidden, W_std=2**0.5, **dense), stax.Relu(), stax.Dense(out_dim, **dense))


def _fit_latent_model(model, data: _Data, settings, key, desc) -> dict:
    """Train a VAE-like model (``vae.VAE``; the DLGM is one) on the ELBO; test ELBO and IWAE bits/dim."""
    init_key, train_key, eval_key = jax.random.split(key, 3)
    params = model.init(init_key, (-1, DIM))
    params, losses, seconds = _train(lambda p, b, k: -jnp.mean(model.elbo(p, b, k)), params, data.pixels_train, data,
                                     settings, settings["epochs"]["vae"], train_key, desc)  # fmt: skip
    k = settings["iwae_k"]
    elbo = data.test_bits(lambda t: model.elbo(params, jnp.asarray(t), eval_key, num_samples=16))
    iwae = data.test_bits(jax.jit(lambda t: model.iwae(params, t, eval_key, k)))
    return {"elbo_test_bits_per_dim": elbo, "iwae_test_bits_per_dim": iwae, "iwae_k": k, "train_loss": losses,
            "samples": data.to_images(model.sample(params, jax.random.fold_in(key, 1), settings["num_samples"])),
            "train_seconds": seconds}  # fmt: skip


def _vae_unit(data: _Data, settings, key) -> dict:
    h, latent = settings["vae_hidden"], settings["vae_latent"]
    model = vae_lib.vae(_mlp(h, 2 * latent), _mlp(h, DIM), latent, "gaussian")
    return _fit_latent_model(model, data, settings, key, "VAE")


def _dlgm_unit(data: _Data, settings, key) -> dict:
    """The seeds' deep latent Gaussian model: stochastic layers at two levels, h^2 = W^2 z^2,
    h^1 = F^1(h^2) + W^1 z^1, x ~ N(T(h^1), diag σ²), with a bottom-up recognition network."""
    h, dims = settings["vae_hidden"], tuple(settings["dlgm_latents"])
    model = dlgm.dlgm(_mlp(h, 2 * sum(dims)), dims, [_mlp(h, dims[0])], _mlp(h, DIM), "gaussian")
    return {**_fit_latent_model(model, data, settings, key, "DLGM"), "latent_dims": list(dims)}


def _realnvp_unit(data: _Data, settings, key) -> dict:
    flow = flows.realnvp(DIM, settings["flow_couplings"], tuple(settings["flow_hidden"]), mixing="1x1",
                         masks=[flows.checkerboard_mask(8, 8, i % 2) for i in range(settings["flow_couplings"])])  # fmt: skip
    init_key, train_key = jax.random.split(key)
    params = flow.init(init_key)
    params, losses, seconds = _train(lambda p, b, k: -jnp.mean(flow.log_prob(p, b)), params, data.pixels_train, data,
                                     settings, settings["epochs"]["realnvp"], train_key, "RealNVP")  # fmt: skip
    return {"test_bits_per_dim": data.test_bits(jax.jit(lambda t: flow.log_prob(params, t))), "train_loss": losses,
            "samples": data.to_images(flow.sample(params, jax.random.fold_in(key, 1), settings["num_samples"])),
            "train_seconds": seconds}  # fmt: skip


def _made_unit(data: _Data, settings, key) -> dict:
    model = autoregressive.made(DIM, tuple(settings["made_hidden"]), num_classes=LEVELS)
    init_key, train_key = jax.random.split(key)
    params = model.init(init_key)
    params, losses, seconds = _train(lambda p, b, k: -jnp.mean(model.log_prob(p, b)), params, data.pixels_train, data,
                                     settings, settings["epochs"]["made"], train_key, "MADE", discrete=True)  # fmt: skip
    test = float(jnp.mean(model.log_prob(params, jnp.asarray(data.pixels_test, jnp.int32))))
    samples = np.asarray(model.sample(params, jax.random.fold_in(key, 1), settings["num_samples"])) / (LEVELS - 1)
    return {"test_bits_per_dim": -test / (DIM * math.log(2)), "train_loss": losses, "samples": samples,
            "train_seconds": seconds}  # fmt: skip


def _ddpm_unit(data: _Data, settings, key) -> dict:
    from jaxdl.generative import diffusion

    T, h = settings["ddpm_steps"], settings["ddpm_hidden"]
    schedule = diffusion.noise_schedule("linear", T)
    dense = dict(parameterization="standard", b_std=0.0)
    net = stax.serial(stax.Dense(h, W_std=2**0.5, **dense), stax.Relu(), stax.Dense(h, W_std=2**0.5, **dense),
                      stax.Relu(), stax.Dense(DIM, **dense))  # fmt: skip
    frequencies = jnp.exp(jnp.linspace(0.0, math.log(1000.0), 16))

    def eps_apply(params, x, t):
        angle = (t.astype(x.dtype) / T)[:, None] * frequencies
        return net.apply(params, jnp.concatenate([x, jnp.sin(angle), jnp.cos(angle)], axis=-1))

    init_key, train_key, eval_key = jax.random.split(key, 3)
    _, params = net.init(init_key, (-1, DIM + 32))
    params, losses, seconds = _train(lambda p, b, k: diffusion.eps_loss(eps_apply, p, schedule, b, k), params,
                                     data.pixels_train, data, settings, settings["epochs"]["ddpm"], train_key, "DDPM")  # fmt: skip
    bound = data.test_bits(jax.jit(lambda t: -diffusion.variational_bound(eps_apply, params, schedule, t, eval_key)))
    samples = diffusion.ddpm_sample(eps_apply, params, schedule, (settings["num_samples"], DIM), jax.random.fold_in(key, 1))
    return {"test_bits_per_dim": bound, "num_steps": T, "train_loss": losses, "samples": data.to_images(samples),
            "train_seconds": seconds}  # fmt: skip


def _ddpm_available() -> bool:
    try:
        from jaxdl.generative import diffusion
    except ImportError:
        return False
    return all(hasattr(diffusion, f) for f in ("noise_schedule", "eps_loss", "ddpm_sample", "variational_bound"))


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Fit the six model families (one unit of work each); writes ``generative-digits.json`` and ``.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    dataset = load_digits(test_fraction=0.25, seed=seed, standardize=False)
    data = _Data(dataset, seed, settings["test_dequantisations"])
    work_fns = {"linear": _linear_unit, "vae": _vae_unit, "dlgm": _dlgm_unit, "realnvp": _realnvp_unit,
                "made": _made_unit, "ddpm": _ddpm_unit}  # fmt: skip
    keys = [k for k in MODELS if k != "ddpm" or _ddpm_available()]

    def work(unit: str) -> dict:
        return work_fns[unit](data, settings, jax.random.fold_in(jax.random.key(seed), MODELS.index(unit)))

    units = run_units(NAME, keys, work, out_dir=out_dir, settings=settings, resume=resume)
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": dataset.name,
        "num_train": int(data.pixels_train.shape[0]),
        "num_test": int(data.pixels_test.shape[0]),
        "uniform_bits_per_dim": UNIFORM_BITS,
        "bits_per_dim": bits_table(units),
        "missing": [] if "ddpm" in units else ["ddpm: jaxdl.generative.diffusion lacks the functions it needs"],
        "total_train_seconds": sum(u["train_seconds"] for u in units.values()),
        "units": units,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def bits_table(units: dict) -> list[dict]:
    """One row per model: test bits/dim of the discrete digits and what kind of number it is."""
    rows = []
    if "linear" in units:
        lin = units["linear"]
        rows += [
            {"model": "PPCA", "bits_per_dim": lin["ppca_test_bits_per_dim"],
             "kind": "bound (exact continuous density, dequantisation)"},
            {"model": "factor analysis", "bits_per_dim": lin["fa_test_bits_per_dim"],
             "kind": "bound (exact continuous density, dequantisation)"},
        ]  # fmt: skip
    if "vae" in units:
        rows += [
            {"model": "VAE (ELBO)", "bits_per_dim": units["vae"]["elbo_test_bits_per_dim"],
             "kind": "bound (ELBO, dequantisation)"},
            {"model": f"VAE (IWAE k={units['vae']['iwae_k']})", "bits_per_dim": units["vae"]["iwae_test_bits_per_dim"],
             "kind": "bound (IWAE, dequantisation)"},
        ]  # fmt: skip
    if "dlgm" in units:
        levels = len(units["dlgm"]["latent_dims"])
        rows += [
            {"model": f"DLGM, {levels} levels (ELBO)", "bits_per_dim": units["dlgm"]["elbo_test_bits_per_dim"],
             "kind": "bound (ELBO, dequantisation)"},
            {"model": f"DLGM, {levels} levels (IWAE k={units['dlgm']['iwae_k']})",
             "bits_per_dim": units["dlgm"]["iwae_test_bits_per_dim"], "kind": "bound (IWAE, dequantisation)"},
        ]  # fmt: skip
    if "realnvp" in units:
        rows.append({"model": "RealNVP", "bits_per_dim": units["realnvp"]["test_bits_per_dim"],
                     "kind": "bound (exact continuous density, dequantisation)"})  # fmt: skip
    if "made" in units:
        rows.append({"model": "MADE (17-way)", "bits_per_dim": units["made"]["test_bits_per_dim"],
                     "kind": "exact (discrete likelihood)"})  # fmt: skip
    if "ddpm" in units:
        rows.append({"model": f"DDPM (T={units['ddpm']['num_steps']})", "bits_per_dim": units["ddpm"]["test_bits_per_dim"],
                     "kind": "bound (variational bound, dequantisation)"})  # fmt: skip
    return rows


def summary(results: dict) -> dict:
    """The headline figures, for the ``jaxdl`` command."""
    lines = {f"{row['model']} test bits/dim": f"{row['bits_per_dim']:.3f} ({row['kind']})" for row in results["bits_per_dim"]}
    lines["uniform over 17 levels"] = f"{results['uniform_bits_per_dim']:.3f} bits/dim"
    if "linear" in results["units"]:
        lin = results["units"]["linear"]
        lines["linear autoencoder vs PCA"] = (f"loss {100 * lin['autoencoder_loss_excess']:.2f} % above the PCA optimum, "
                                              f"largest principal angle {lin['autoencoder_max_principal_angle_deg']:.1f} deg")  # fmt: skip
    if results.get("missing"):
        lines["missing"] = "; ".join(results["missing"])
    return lines


def _grid(samples, columns=4):
    samples = np.asarray(samples, np.float64).reshape(-1, 8, 8)
    rows = -(-len(samples) // columns)
    mosaic = np.full((rows * 9 - 1, columns * 9 - 1), np.nan)
    for i, s in enumerate(samples):
        r, c = divmod(i, columns)
        mosaic[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = s
    return mosaic


def figure(results: dict):
    """Bits/dim per model (exact vs bound) and a sample grid per model."""
    units = results["units"]
    grids = [(name, units[key]["samples"]) for key, name in
             (("linear", "PPCA"), ("vae", "VAE (decoder means)"), ("dlgm", "DLGM (decoder means)"),
              ("realnvp", "RealNVP"), ("made", "MADE"), ("ddpm", "DDPM")) if key in units]  # fmt: skip
    fig, axes = new_figure(f"Generative models on 8x8 digits ({results['num_train']} train / {results['num_test']} test)",
                           results["fast"], 2, 4, figsize=(18, 8))  # fmt: skip
    axes = axes.ravel()
    rows = results["bits_per_dim"]
    palette = colors(2)
    bar_ax = axes[0]
    for i, row in enumerate(rows):
        exact = row["kind"].startswith("exact")
        bar_ax.barh(i, row["bits_per_dim"], color=palette[0] if exact else palette[1], hatch="" if exact else "//")
        bar_ax.text(row["bits_per_dim"], i, f" {row['bits_per_dim']:.2f}", va="center", fontsize="small")
    bar_ax.axvline(results["uniform_bits_per_dim"], color="grey", ls="--", lw=1)
    bar_ax.set_yticks(range(len(rows)), [row["model"] for row in rows], fontsize="small")
    bar_ax.invert_yaxis()
    bar_ax.set(xlabel="test bits/dim (solid: exact, hatched: upper bound; dashed: uniform)", ylabel="model",
               title="negative log-likelihood of the test digits")  # fmt: skip
    for ax, (name, samples) in zip(axes[1:], grids):
        ax.imshow(_grid(samples), cmap="gray_r", vmin=0, vmax=1)
        ax.set(title=f"{name} samples", xlabel="4 samples of 8x8 px per row", ylabel="rows of samples")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[1 + len(grids) :]:
        ax.set_visible(False)
    return fig
