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
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.theory.capacity import cover_fraction, is_linearly_separable

NAME = "cover"
DESCRIPTION = "Cover's theorem: separable fraction of random dichotomies vs s/n against C(s, n)/2^s"
FAST_MODE = "dimensions 5, 10 (full: 5, 10, 20, 40), s/n in steps of 0.25 (0.1), 40 trials (200), 50 perceptron epochs (200)"


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


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Measure one curve per dimension ``n`` (one unit of work each, see
    :mod:`jaxdl.experiments.units`); writes ``cover.json`` and ``cover.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dimensions = [5, 10] if fast else [5, 10, 20, 40]
    alpha_step = 0.25 if fast else 0.1
    trials = 40 if fast else 200
    max_epochs = 50 if fast else 200
    alphas_grid = np.round(np.arange(alpha_step, 4.0 + 1e-9, alpha_step), 3)

    def work(unit):
        """The curve of dimension ``n``, from its own random stream (units run in any order)."""
        n = int(unit.removeprefix("n="))
        rng = np.random.default_rng([seed, n])
        sizes = sorted({max(1, int(round(alpha * n))) for alpha in alphas_grid})
        points = rng.normal(size=(trials, sizes[-1], n)).astype(np.float32)
        labels = rng.choice([-1.0, 1.0], size=(trials, sizes[-1])).astype(np.float32)
        measured = []
        for s in sizes:
            separable = [is_linearly_separable(points[t, :s], labels[t, :s]) for t in range(trials)]
            measured.append(float(np.mean(separable)))
        theory = [cover_fraction(s, n) for s in sizes]
        alphas = [s / n for s in sizes]
        return {
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

    settings = {"fast": fast, "seed": seed, "dimensions": dimensions, "alpha_step": alpha_step,
                "trials": trials, "max_epochs": max_epochs}
    units = run_units(NAME, [f"n={n}" for n in dimensions], work, out_dir=out_dir, settings=settings,
                      resume=resume)
    curves = {str(curve["n"]): curve for curve in units.values()}

    largest = curves[str(dimensions[-1])]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
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
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    return {
        f"transition s/n at n = {results['dimensions'][-1]} (theory 2)": f"{results['transition_alpha_largest_n']:.3f}",
        "largest |measured - C(s, n)/2^s|": f"{results['max_abs_error_vs_theory']:.3f} "
        f"(binomial s.e. at 1/2: {results['binomial_standard_error_at_half']:.3f})",
    }


def figure(results: dict):
    """Separable fraction (LP) against Cover's formula, and the perceptron's success rate."""
    curves = list(results["curves"].values())
    fig, (lp_ax, perceptron_ax) = new_figure(
        f"Cover's theorem: random +-1 labels on s Gaussian points in R^n, {results['trials']} trials per point",
        results["fast"], 1, 2, figsize=(12, 5))
    for color, curve in zip(colors(len(curves)), curves):
        lp_ax.plot(curve["alpha"], curve["theory_fraction"], "-", color=color, label=f"n = {curve['n']}")
        lp_ax.plot(curve["alpha"], curve["measured_fraction"], "o", ms=3, color=color)
        perceptron_ax.plot(curve["alpha"], curve["perceptron_fraction"], "x-", ms=4, color=color,
                           label=f"n = {curve['n']}")
    for ax in (lp_ax, perceptron_ax):
        ax.axvline(2.0, color="0.5", ls=":", lw=1, label="s = 2n")
        ax.set_xlabel("points per dimension s/n")
        legend_outside(ax, ncol=3)
    lp_ax.set(ylabel="fraction of labellings separable",
              title="linear programming (dots) vs C(s, n)/2^s (lines)")
    perceptron_ax.set(ylabel="fraction of labellings separated",
                      title=f"homogeneous perceptron within {results['perceptron_max_epochs']} epochs")
    return fig
