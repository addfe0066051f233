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
from jaxdl.experiments.report import progress, save_figure, write_json
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


def run(out_dir: Path, *, fast: bool = False, seed: int = 0) -> dict:
    widths = [4, 8] if fast else [4, 8, 16, 32]
    depths = [1, 2] if fast else [1, 2, 3]
    networks_per_cell = 1 if fast else 3
    resolution = 160 if fast else 600
    bounds = (-HALF_WIDTH, HALF_WIDTH)
    construction_cells = [(4, 1), (4, 2)] if fast else [(4, 1), (4, 2), (4, 3), (4, 4), (5, 2), (5, 3), (6, 2), (8, 2)]
    construction_resolution = 400
    key = jax.random.key(seed)

    rows = []
    cells = [(m, L) for L in depths for m in widths]
    for width, depth in progress(cells, desc="linear regions"):
        init_fn, apply_fn, _ = relu_network(width, depth)
        counts, exact_counts = [], []
        for _ in range(networks_per_cell):
            key, init_key = jax.random.split(key)
            _, params = init_fn(init_key, (-1, INPUT_DIM))
            counts.append(count_linear_regions(apply_fn, params, bounds, resolution))
            if depth == 1:
                exact_counts.append(line_arrangement_regions(*_first_layer_lines(params), bounds))
        rows.append(
            {
                "width": width,
                "depth": depth,
                "counts": counts,
                "mean_count": float(np.mean(counts)),
                "exact_counts_in_box": exact_counts or None,
                "zaslavsky_bound": zaslavsky_bound(width, INPUT_DIM),
                "montufar_bound": montufar_bound(width, INPUT_DIM, depth),
                "layerwise_upper_bound": layerwise_region_bound(width, INPUT_DIM, depth),
            }
        )

    constructed = []
    for width, depth in progress(construction_cells, desc="montufar construction"):
        apply_fn, params = montufar_network(width, depth)
        constructed.append(
            {
                "width": width,
                "depth": depth,
                "count": count_linear_regions(apply_fn, params, (0.0, 1.0), construction_resolution),
                "montufar_bound": montufar_bound(width, INPUT_DIM, depth),
            }
        )

    one_layer = [row for row in rows if row["depth"] == 1]
    grid_vs_exact = [abs(c - e) for row in one_layer for c, e in zip(row["counts"], row["exact_counts_in_box"])]
    results = {
        "description": DESCRIPTION,
        "fast": fast,
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
    _figure(rows, constructed, depths, out_dir, key, resolution, bounds)
    return results


def _figure(rows, constructed, depths, out_dir: Path, key, resolution, bounds) -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for depth in depths:
        cell = [r for r in rows if r["depth"] == depth]
        widths = [r["width"] for r in cell]
        color = f"C{depth - 1}"
        left.semilogy(widths, [r["mean_count"] for r in cell], "o-", color=color, label=f"measured, L={depth}")
        left.semilogy(widths, [r["montufar_bound"] for r in cell], "--", color=color, label=f"Montufar, L={depth}")
    widths = [r["width"] for r in rows if r["depth"] == 1]
    left.semilogy(widths, [r["zaslavsky_bound"] for r in rows if r["depth"] == 1], "k:", label="Zaslavsky R(m)")
    for depth in sorted({c["depth"] for c in constructed}):
        built = [c for c in constructed if c["depth"] == depth]
        counts = [c["count"] for c in built]
        left.semilogy([c["width"] for c in built], counts, "*", ms=9, color=f"C{depth - 1}", mfc="none")
    left.plot([], [], "k*", mfc="none", label="Montufar's construction (= bound)")
    left.set_xlabel("width m")
    left.set_ylabel(f"linear regions in [{bounds[0]:g}, {bounds[1]:g}]^2")
    left.set_title("ReLU nets on R^2")
    left.legend(fontsize=7, ncol=2)

    init_fn, apply_fn, _ = relu_network(max(widths), max(depths))
    _, params = init_fn(key, (-1, INPUT_DIM))
    labels = linear_region_labels(apply_fn, params, bounds, resolution)
    shuffled = np.random.default_rng(0).permutation(labels.max() + 1)[labels]
    right.imshow(shuffled.T, origin="lower", extent=[*bounds, *bounds], cmap="tab20", interpolation="nearest")
    right.set_title(f"regions of one net, m={max(widths)}, L={max(depths)}: {labels.max() + 1}")
    right.set_xlabel("x0")
    right.set_ylabel("x1")
    save_figure(fig, out_dir, "linear_regions.png")
