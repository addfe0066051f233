"""Linear regions of random ReLU networks on R^2 against the Zaslavsky and Montufar bounds.

Builds ``L`` hidden ReLU layers of width ``m`` with ``jaxdl.stax`` (He-scaled
weights, unit-variance biases), counts the pieces on which the network is
affine on a grid over ``[-B, B]^2`` (:func:`jaxdl.theory.regions.count_linear_regions`)
and compares with

* Zaslavsky's ``R(m) = sum_{i <= 2} binom(m, i)``, the most one layer can make;
* Montufar et al.'s ``R(m) floor(m/2)^{2(L-1)}``, what the best depth-``L``
  network reaches (a lower bound on the maximum);
* the layer-wise upper bound ``R(m)^L``.

For one hidden layer the exact number of regions inside the box is known from
the line arrangement of the hidden units (:func:`line_arrangement_regions`),
which checks the grid count. Random networks stay far below Montufar's count
for depth > 1: the bound is about the best weights, not typical ones. The
proof's own network (:func:`montufar_network`, zig-zag folds then a line
arrangement, on ``[0, 1]^2``) is counted too and reaches the bound.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np

from jaxdl import stax
from matplotlib import colormaps

from jaxdl.experiments.report import legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.theory.regions import (
    count_linear_regions,
    layerwise_region_bound,
    line_arrangement_regions,
    linear_region_labels,
    montufar_bound,
    montufar_network,
    zaslavsky_bound,
)

NAME = "linear-regions"
DESCRIPTION = "Linear regions of random ReLU nets vs width and depth, against the Zaslavsky and Montufar bounds"
FAST_MODE = "widths 4, 8 (full: 4-32), depths 1, 2 (1-3), 1 net per cell (3), grid 160^2 (600^2), 2 constructions (8)"

INPUT_DIM = 2
HALF_WIDTH = 3.0


def relu_network(width: int, depth: int):
    """``depth`` hidden ReLU layers of ``width`` units and a scalar output, as a stax triple."""
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(width, W_std=math.sqrt(2.0), b_std=1.0), stax.Relu()]
    return stax.serial(*layers, stax.Dense(1, b_std=1.0))


def _first_layer_lines(params):
    """Normals and offsets of the first hidden layer's kinks (ntk parameterisation)."""
    dense = params["Dense_0"]
    normals = np.asarray(dense["W"]).T * math.sqrt(2.0) / math.sqrt(INPUT_DIM)
    return normals, np.asarray(dense["b"]).reshape(-1)


def network_key(seed: int, width: int, depth: int, index: int):
    """The initialisation key of network ``index`` of the cell ``(width, depth)``: each network
    is a function of its own name, so the figure can redraw one that the JSON counts."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), width), depth), index)


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Count the regions of every cell ``(m, L)`` and of Montufar's construction (one unit of
    work each, see :mod:`jaxdl.experiments.units`); writes ``linear-regions.json`` and ``.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    widths = [4, 8] if fast else [4, 8, 16, 32]
    depths = [1, 2] if fast else [1, 2, 3]
    networks_per_cell = 1 if fast else 3
    resolution = 160 if fast else 600
    bounds = (-HALF_WIDTH, HALF_WIDTH)
    construction_cells = [(4, 1), (4, 2)] if fast else [(4, 1), (4, 2), (4, 3), (4, 4), (5, 2), (5, 3), (6, 2), (8, 2)]
    construction_resolution = 400

    def random_cell(width, depth):
        init_fn, apply_fn, _ = relu_network(width, depth)
        counts, exact_counts = [], []
        for index in range(networks_per_cell):
            _, params = init_fn(network_key(seed, width, depth, index), (-1, INPUT_DIM))
            counts.append(count_linear_regions(apply_fn, params, bounds, resolution))
            if depth == 1:
                exact_counts.append(line_arrangement_regions(*_first_layer_lines(params), bounds))
        return {
            "width": width,
            "depth": depth,
            "counts": counts,
            "mean_count": float(np.mean(counts)),
            "exact_counts_in_box": exact_counts or None,
            "zaslavsky_bound": zaslavsky_bound(width, INPUT_DIM),
            "montufar_bound": montufar_bound(width, INPUT_DIM, depth),
            "layerwise_upper_bound": layerwise_region_bound(width, INPUT_DIM, depth),
        }

    def construction(width, depth):
        apply_fn, params = montufar_network(width, depth)
        return {
            "width": width,
            "depth": depth,
            "count": count_linear_regions(apply_fn, params, (0.0, 1.0), construction_resolution),
            "montufar_bound": montufar_bound(width, INPUT_DIM, depth),
        }

    cells = {f"random m={m},L={L}": (random_cell, m, L) for L in depths for m in widths}
    cells |= {f"construction m={m},L={L}": (construction, m, L) for m, L in construction_cells}
    settings = {"fast": fast, "seed": seed, "widths": widths, "depths": depths,
                "networks_per_cell": networks_per_cell, "resolution": resolution,
                "construction_resolution": construction_resolution}
    done = run_units(NAME, list(cells), lambda unit: cells[unit][0](*cells[unit][1:]), out_dir=out_dir,
                     settings=settings, resume=resume)
    rows = [done[unit] for unit in cells if unit.startswith("random")]
    constructed = [done[unit] for unit in cells if unit.startswith("construction")]

    one_layer = [row for row in rows if row["depth"] == 1]
    grid_vs_exact = [abs(c - e) for row in one_layer for c, e in zip(row["counts"], row["exact_counts_in_box"])]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "input_dim": INPUT_DIM,
        "box": [list(bounds), list(bounds)],
        "resolution": resolution,
        "networks_per_cell": networks_per_cell,
        "rows": rows,
        "montufar_construction": constructed,
        "montufar_construction_resolution": construction_resolution,
        "montufar_construction_exact_hits": sum(c["count"] == c["montufar_bound"] for c in constructed),
        "one_layer_max_abs_grid_minus_exact": max(grid_vs_exact),
        "all_below_layerwise_bound": all(max(r["counts"]) <= r["layerwise_upper_bound"] for r in rows),
        "one_layer_all_below_zaslavsky": all(max(r["counts"]) <= r["zaslavsky_bound"] for r in one_layer),
    }
    write_json(out_dir, NAME, results)
    save_figure(figure(results), out_dir, f"{NAME}.png")
    return results


def summary(results: dict) -> dict:
    """The headline figures of a run, for the ``jaxdl`` command's summary."""
    largest = max(results["rows"], key=lambda row: (row["depth"], row["width"]))
    built = results["montufar_construction"]
    return {
        f"mean regions at m={largest['width']}, L={largest['depth']}": f"{largest['mean_count']:.1f} "
        f"(Montufar's bound {largest['montufar_bound']}, layer-wise bound {largest['layerwise_upper_bound']})",
        "Montufar's construction reaches its bound": f"{results['montufar_construction_exact_hits']} of {len(built)}",
        "one layer: largest |grid count - exact|": results["one_layer_max_abs_grid_minus_exact"],
    }


def figure(results: dict):
    """Mean region counts against the bounds (left) and the regions of the first network of the
    largest cell (right), redrawn from its key: its count is the one the JSON reports."""
    rows, constructed = results["rows"], results["montufar_construction"]
    depths = sorted({row["depth"] for row in rows})
    bounds = tuple(results["box"][0])
    fig, (left, right) = new_figure(
        f"Linear regions of random ReLU nets on R^2 (He init., unit-variance biases), "
        f"{results['networks_per_cell']} net(s) per cell", results["fast"], 1, 2, figsize=(13, 5.8))
    paired = colormaps["tab20"].colors  # dark shade: measured, light shade of the same hue: bound
    for k, depth in enumerate(depths):
        cell = [r for r in rows if r["depth"] == depth]
        widths = [r["width"] for r in cell]
        left.semilogy(widths, [r["mean_count"] for r in cell], "o-", color=paired[2 * k],
                      label=f"measured (mean), L={depth}")
        left.semilogy(widths, [r["montufar_bound"] for r in cell], "--", color=paired[2 * k + 1],
                      label=f"Montufar's bound, L={depth}")
        built = [c for c in constructed if c["depth"] == depth]
        left.semilogy([c["width"] for c in built], [c["count"] for c in built], "*", ms=10,
                      color=paired[2 * k], mfc="none")
    widths = [r["width"] for r in rows if r["depth"] == 1]
    left.semilogy(widths, [r["zaslavsky_bound"] for r in rows if r["depth"] == 1], ":", color="k",
                  label="Zaslavsky R(m) (one layer's maximum)")
    left.plot([], [], "*", color="0.5", mfc="none", label="Montufar's construction on [0, 1]^2 (= bound)")
    left.set(xlabel="width m", ylabel=f"linear regions in [{bounds[0]:g}, {bounds[1]:g}]^2",
             title="region counts against the bounds")
    legend_outside(left, ncol=2)

    largest = max(rows, key=lambda row: (row["depth"], row["width"]))
    width, depth = largest["width"], largest["depth"]
    init_fn, apply_fn, _ = relu_network(width, depth)
    _, params = init_fn(network_key(results["seed"], width, depth, 0), (-1, INPUT_DIM))
    labels = linear_region_labels(apply_fn, params, bounds, results["resolution"])
    shuffled = np.random.default_rng(0).permutation(labels.max() + 1)[labels]
    right.imshow(shuffled.T, origin="lower", extent=[*bounds, *bounds], cmap="tab20", interpolation="nearest")
    right.set_title(f"network 1 of the cell m={width}, L={depth}: {labels.max() + 1} regions\n"
                    f"(JSON counts for this cell: {largest['counts']}; grid {results['resolution']}^2)")
    right.set_xlabel("x0")
    right.set_ylabel("x1")
    return fig
