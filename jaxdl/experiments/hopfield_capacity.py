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
from jaxdl.experiments.report import progress, save_figure, write_json
from jaxdl.theory.capacity import HOPFIELD_CRITICAL_RATIO, hopfield_bit_error_probability

NAME = "hopfield-capacity"
DESCRIPTION = "Hopfield recall quality vs patterns per neuron: breakdown near alpha_c = 0.138"

BREAKDOWN_OVERLAP = 0.9


def _first_drop(alphas, overlaps, level) -> float:
    """First load where ``overlaps`` falls below ``level`` (linear interpolation)."""
    for k in range(1, len(alphas)):
        if overlaps[k - 1] >= level > overlaps[k]:
            a0, a1, m0, m1 = alphas[k - 1], alphas[k], overlaps[k - 1], overlaps[k]
            return float(a0 + (m0 - level) * (a1 - a0) / (m0 - m1))
    return float("nan")


def run(out_dir: Path, *, fast: bool = False, seed: int = 0) -> dict:
    n = 200 if fast else 1000
    alphas = np.round(np.arange(0.02, 0.301, 0.04 if fast else 0.01), 3)
    trials = 2 if fast else 4
    probes = 16 if fast else 32
    sweeps = 8 if fast else 20
    noise = 0.1
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)

    rows = []
    for alpha in progress(alphas, desc="hopfield loads"):
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
        rows.append(
            {
                "alpha": float(alpha),
                "patterns": s,
                "mean_overlap_exact_start": float(np.mean(overlaps_exact)),
                "mean_overlap_noisy_start": float(np.mean(overlaps_noisy)),
                "perfect_recall_fraction": float(np.mean(perfect)),
                "unstable_bit_fraction": float(np.mean(unstable)),
                "predicted_unstable_bit_fraction": hopfield_bit_error_probability(s, n),
            }
        )

    loads = [row["alpha"] for row in rows]
    exact_start = [row["mean_overlap_exact_start"] for row in rows]
    noisy_start = [row["mean_overlap_noisy_start"] for row in rows]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
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
    write_json(out_dir, NAME, results)
    _figure(rows, n, out_dir)
    return results


def _figure(rows: list, n: int, out_dir: Path) -> None:
    import matplotlib.pyplot as plt

    alphas = [row["alpha"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(alphas, [r["mean_overlap_exact_start"] for r in rows], "o-", label="start at pattern")
    left.plot(alphas, [r["mean_overlap_noisy_start"] for r in rows], "s-", label="start 10% flipped")
    left.plot(alphas, [r["perfect_recall_fraction"] for r in rows], "^:", label="perfect recall fraction")
    left.axvline(HOPFIELD_CRITICAL_RATIO, color="gray", ls=":", lw=1, label="alpha_c = 0.138")
    left.set_xlabel("patterns per neuron s/n")
    left.set_ylabel("final overlap")
    left.set_title(f"Hopfield recall, n = {n}")
    left.legend(fontsize=7)
    measured = [r["unstable_bit_fraction"] or np.nan for r in rows]  # none seen: nothing to draw on a log axis
    right.semilogy(alphas, measured, "o", label="measured")
    right.semilogy(alphas, [r["predicted_unstable_bit_fraction"] for r in rows], "-", label="Gaussian cross-talk")
    right.set_xlabel("patterns per neuron s/n")
    right.set_ylabel("unstable bit fraction")
    right.legend(fontsize=7)
    save_figure(fig, out_dir, "hopfield_capacity.png")
