"""Cover's theorem: how many random dichotomies a hyperplane through the origin realises.

For ``s`` Gaussian points in ``R^n`` and uniformly random labels the fraction
of separable labellings is ``C(s, n) / 2^s`` (:func:`jaxdl.theory.capacity.cover_fraction`),
which equals 1/2 at ``s = 2n`` and becomes a step there as ``n`` grows. The
experiment measures the fraction by linear programming and also reports how
often the (homogeneous) perceptron finds a separator within an epoch budget;
near ``s = 2n`` the margins shrink and the perceptron needs ever more epochs.
The perceptron runs vmapped over trials on inputs padded with zero rows, which
leave ``w`` unchanged (``w + y * 0 = w``), so every ``s`` shares one compilation.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxdl.classic import perceptron_fit
from jaxdl.experiments.report import progress, save_figure, write_json
from jaxdl.theory.capacity import cover_fraction, is_linearly_separable

NAME = "cover"
DESCRIPTION = "Cover's theorem: separable fraction of random dichotomies vs s/n against C(s, n)/2^s"


def _crossing(alphas, fractions, level=0.5) -> float:
    """First ``alpha`` where ``fractions`` falls below ``level`` (linear interpolation)."""
    for k in range(1, len(alphas)):
        if fractions[k - 1] >= level > fractions[k]:
            a0, a1, f0, f1 = alphas[k - 1], alphas[k], fractions[k - 1], fractions[k]
            return float(a0 + (f0 - level) * (a1 - a0) / (f0 - f1))
    return float("nan")


def _perceptron_fractions(points, labels, sizes, max_epochs):
    """Fraction of trials in which the perceptron separates the first ``s`` points, for each ``s``."""
    fit = jax.jit(jax.vmap(lambda X, y: perceptron_fit(X, y, max_epochs, fit_bias=False)))
    fractions = []
    for s in sizes:
        padded = np.where(np.arange(points.shape[1])[None, :, None] < s, points, 0.0)
        w, _, _ = fit(padded, labels)
        margins = labels[:, :s] * np.einsum("tsn,tn->ts", points[:, :s], np.asarray(w))
        fractions.append(float(np.mean(np.all(margins > 0, axis=1))))  # (w, 0) in the version space
    return fractions


def run(out_dir: Path, *, fast: bool = False, seed: int = 0) -> dict:
    dimensions = [5, 10] if fast else [5, 10, 20, 40]
    alpha_step = 0.25 if fast else 0.1
    trials = 40 if fast else 200
    max_epochs = 50 if fast else 200
    alphas_grid = np.round(np.arange(alpha_step, 4.0 + 1e-9, alpha_step), 3)
    rng = np.random.default_rng(seed)

    curves = {}
    for n in dimensions:
        sizes = sorted({max(1, int(round(alpha * n))) for alpha in alphas_grid})
        points = rng.normal(size=(trials, sizes[-1], n)).astype(np.float32)
        labels = rng.choice([-1.0, 1.0], size=(trials, sizes[-1])).astype(np.float32)
        measured = []
        for s in progress(sizes, desc=f"cover n={n}"):
            separable = [is_linearly_separable(points[t, :s], labels[t, :s]) for t in range(trials)]
            measured.append(float(np.mean(separable)))
        theory = [cover_fraction(s, n) for s in sizes]
        alphas = [s / n for s in sizes]
        curves[str(n)] = {
            "n": n,
            "s": sizes,
            "alpha": alphas,
            "measured_fraction": measured,
            "theory_fraction": theory,
            "perceptron_fraction": _perceptron_fractions(points, labels, sizes, max_epochs),
            "max_abs_error": float(np.max(np.abs(np.array(measured) - np.array(theory)))),
            "measured_transition_alpha": _crossing(alphas, measured),
            "theory_transition_alpha": _crossing(alphas, theory),
        }

    largest = curves[str(dimensions[-1])]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "seed": seed,
        "trials": trials,
        "perceptron_max_epochs": max_epochs,
        "dimensions": dimensions,
        "curves": curves,
        "transition_alpha_largest_n": largest["measured_transition_alpha"],
        "theory_transition_alpha": 2.0,
        "max_abs_error_vs_theory": max(curve["max_abs_error"] for curve in curves.values()),
        "binomial_standard_error_at_half": float(0.5 / np.sqrt(trials)),
    }
    write_json(out_dir, NAME, results)
    _figure(curves, out_dir)
    return results


def _figure(curves: dict, out_dir: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for k, curve in enumerate(curves.values()):
        color = f"C{k}"
        ax.plot(curve["alpha"], curve["theory_fraction"], "-", color=color, label=f"C(s, n)/2^s, n={curve['n']}")
        ax.plot(curve["alpha"], curve["measured_fraction"], "o", ms=3, color=color, label=f"LP, n={curve['n']}")
        ax.plot(curve["alpha"], curve["perceptron_fraction"], "x", ms=3, color=color, alpha=0.6)
    ax.axvline(2.0, color="gray", ls=":", lw=1)
    ax.set_xlabel("patterns per dimension s/n")
    ax.set_ylabel("fraction of separable dichotomies")
    ax.set_title("Cover's theorem (x: perceptron within epoch budget)")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, out_dir, "cover.png")
