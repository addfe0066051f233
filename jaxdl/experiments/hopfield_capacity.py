"""Hopfield capacity: recall quality against the load alpha = patterns per neuron.

Stores ``s = alpha n`` random +-1 patterns by the Hebbian rule, starts the
asynchronous dynamics (random update order) at stored patterns, exactly or
with a fraction of bits flipped, and measures the overlap
``m = x . xi / n`` of the final state with the pattern. Below the critical
load ``alpha_c ~ 0.138`` (Amit, Gutfreund and Sompolinsky 1985) the network
stays near its memories (``m ~ 0.97`` and above); past it the retrieval states
vanish and the overlap collapses. The measured breakdown ratio is the load at
which the mean overlap from exact starts first falls below 0.9.
Also reported: the fraction of stored bits that are unstable under one update,
against the Gaussian cross-talk estimate
:func:`jaxdl.theory.capacity.hopfield_bit_error_probability`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxdl.classic import hopfield_recall, hopfield_store
from jaxdl.experiments.report import legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.theory.capacity import HOPFIELD_CRITICAL_RATIO, hopfield_bit_error_probability

NAME = "hopfield-capacity"
DESCRIPTION = "Hopfield recall quality vs patterns per neuron: breakdown near alpha_c = 0.138"
FAST_MODE = "200 neurons (full: 1000), 8 loads (29), 2 pattern sets per load (4), 16 probes (32), 8 sweeps (20)"

BREAKDOWN_OVERLAP = 0.9


def _first_drop(alphas, overlaps, level) -> float:
    """First load where ``overlaps`` falls below ``level`` (linear interpolation)."""
    for k in range(1, len(alphas)):
        if overlaps[k - 1] >= level > overlaps[k]:
            a0, a1, m0, m1 = alphas[k - 1], alphas[k], overlaps[k - 1], overlaps[k]
            return float(a0 + (m0 - level) * (a1 - a0) / (m0 - m1))
    return float("nan")


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Measure every load (one unit of work each, see :mod:`jaxdl.experiments.units`); writes
    ``hopfield-capacity.json`` and ``hopfield-capacity.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 200 if fast else 1000
    alphas = [float(a) for a in np.round(np.arange(0.02, 0.301, 0.04 if fast else 0.01), 3)]
    trials = 2 if fast else 4
    probes = 16 if fast else 32
    sweeps = 8 if fast else 20
    noise = 0.1
    keys = [f"alpha={alpha:g}" for alpha in alphas]

    def work(unit):
        """Load number ``index``: its own numpy and JAX streams, so units run in any order."""
        index = keys.index(unit)
        alpha = alphas[index]
        rng = np.random.default_rng([seed, index])
        key = jax.random.fold_in(jax.random.key(seed), index)
        s = max(1, int(round(alpha * n)))
        overlaps_exact, overlaps_noisy, perfect, unstable = [], [], [], []
        for _ in range(trials):
            patterns = rng.choice(np.array([-1.0, 1.0], np.float32), size=(s, n))
            W = hopfield_store(patterns)
            unstable.append(float(np.mean(patterns * (patterns @ np.asarray(W)) < 0)))
            targets = patterns[np.arange(probes) % s]
            noisy = np.where(rng.random(targets.shape) < noise, -targets, targets)
            key, order_key = jax.random.split(key)
            for start, overlaps in ((targets, overlaps_exact), (noisy, overlaps_noisy)):
                final = np.asarray(hopfield_recall(W, start, sweeps, key=order_key))
                overlap = np.mean(final * targets, axis=1)
                overlaps.extend(overlap.tolist())
                if start is targets:
                    perfect.extend((overlap == 1.0).tolist())
        return {
            "alpha": alpha,
            "patterns": s,
            "mean_overlap_exact_start": float(np.mean(overlaps_exact)),
            "mean_overlap_noisy_start": float(np.mean(overlaps_noisy)),
            "perfect_recall_fraction": float(np.mean(perfect)),
            "unstable_bit_fraction": float(np.mean(unstable)),
            "predicted_unstable_bit_fraction": hopfield_bit_error_probability(s, n),
        }

    settings = {"fast": fast, "seed": seed, "neurons": n, "alphas": alphas, "trials": trials,
                "probes": probes, "sweeps": sweeps, "noise": noise}
    rows = list(run_units(NAME, keys, work, out_dir=out_dir, settings=settings, resume=resume).values())

    loads = [row["alpha"] for row in rows]
    exact_start = [row["mean_overlap_exact_start"] for row in rows]
    noisy_start = [row["mean_overlap_noisy_start"] for row in rows]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "neurons": n,
        "trials": trials,
        "probes_per_trial": probes,
        "sweeps": sweeps,
        "start_noise": noise,
        "breakdown_overlap_level": BREAKDOWN_OVERLAP,
        "rows": rows,
        "breakdown_ratio": _first_drop(loads, exact_start, BREAKDOWN_OVERLAP),
        "breakdown_ratio_noisy_start": _first_drop(loads, noisy_start, BREAKDOWN_OVERLAP),
        "theory_critical_ratio": HOPFIELD_CRITICAL_RATIO,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    return {
        "breakdown load (overlap < 0.9), exact / noisy start": f"{results['breakdown_ratio']:.3f} / "
        f"{results['breakdown_ratio_noisy_start']:.3f}",
        "theory alpha_c": results["theory_critical_ratio"],
        "neurons": results["neurons"],
    }


def figure(results: dict):
    """Overlap after recall, perfect-recall fraction and unstable bits against the load."""
    rows, n = results["rows"], results["neurons"]
    alphas = [row["alpha"] for row in rows]
    fig, (overlap_ax, perfect_ax, bits_ax) = new_figure(
        f"Hopfield capacity, n = {n} neurons, {results['trials']} pattern sets x "
        f"{results['probes_per_trial']} probes per load", results["fast"], 1, 3, figsize=(15, 4.8))
    overlap_ax.plot(alphas, [r["mean_overlap_exact_start"] for r in rows], "o-", color="C0", label="start at the pattern")
    overlap_ax.plot(alphas, [r["mean_overlap_noisy_start"] for r in rows], "s-", color="C1",
                    label=f"start with {results['start_noise']:.0%} of bits flipped")
    perfect_ax.plot(alphas, [r["perfect_recall_fraction"] for r in rows], "^-", color="C2",
                    label="start at the pattern")
    for ax in (overlap_ax, perfect_ax):
        ax.axvline(HOPFIELD_CRITICAL_RATIO, color="0.5", ls=":", lw=1, label=f"alpha_c = {HOPFIELD_CRITICAL_RATIO}")
        ax.set_xlabel("load alpha = patterns per neuron s/n")
    overlap_ax.set(ylabel="mean final overlap m = x . xi / n", title="recall quality")
    perfect_ax.set(ylabel="fraction of probes recalled exactly", title="perfect recall")
    measured = [r["unstable_bit_fraction"] or np.nan for r in rows]  # none seen: nothing to draw on a log axis
    bits_ax.semilogy(alphas, measured, "o", color="C0", label="measured")
    bits_ax.semilogy(alphas, [r["predicted_unstable_bit_fraction"] for r in rows], "-", color="C3",
                     label="Gaussian cross-talk estimate")
    bits_ax.set(xlabel="load alpha = patterns per neuron s/n", ylabel="fraction of stored bits unstable",
                title="stored bits flipped by one update")
    for ax in (overlap_ax, perfect_ax, bits_ax):
        legend_outside(ax)
    return fig
