"""Output helpers shared by the experiments: JSON results, PNG figures, colours, progress bars.

Figures are :class:`matplotlib.figure.Figure` objects made by :func:`new_figure`, never
pyplot state, so importing an experiment leaves matplotlib's global backend alone (a
notebook keeps its inline backend, a script its own). :func:`figure_problems` lists what
makes a figure hard to read (an unlabelled axis, a repeated line colour, a fast-mode
figure that does not say so); the tests run it on every experiment's figure.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from tqdm.auto import tqdm

FAST_MODE_NOTE = "fast mode: reduced sizes, not the documented results"


def to_json(value):
    """``value`` with arrays turned into lists, keys into strings and non-finite floats into ``None``."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "tolist"):  # numpy and jax arrays, numpy scalars
        return to_json(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename, so that an interrupt
    never leaves a half-written file behind."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(out_dir: Path, name: str, results: dict) -> Path:
    """Write ``results`` to ``out_dir/<name>.json`` (arrays become lists), atomically."""
    return write_text_atomically(Path(out_dir) / f"{name}.json", json.dumps(to_json(results), indent=2) + "\n")


def new_figure(title: str, fast: bool, nrows: int = 1, ncols: int = 1, figsize=(8, 4.5)):
    """A ``Figure`` (no pyplot state) with a grid of Axes and a suptitle that says when the
    results come from fast mode. Returns ``(fig, axes)``; ``axes`` is one Axes for a 1 x 1 grid."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True)
    fig.suptitle(f"{title}\n[{FAST_MODE_NOTE}]" if fast else title)
    return fig, axes


def save_figure(fig: Figure, out_dir: Path, filename: str) -> Path:
    """Save ``fig`` as a PNG under ``out_dir``."""
    path = Path(out_dir) / filename
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def colors(n: int) -> list:
    """``n`` pairwise different colours: tab10 while it lasts, then tab20's light shades,
    then evenly spaced hues (so 12 lines on one Axes never share a colour)."""
    palette = list(colormaps["tab10"].colors)
    palette += [colormaps["tab20"].colors[2 * k + 1] for k in range(10)]
    if n > len(palette):
        palette += [colormaps["hsv"](k / (n - len(palette))) for k in range(n - len(palette))]
    return palette[:n]


def legend_outside(ax, ncol: int = 1, fontsize="small"):
    """The legend of ``ax`` below the Axes, off the data."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize=fontsize,
                     frameon=False)


def figure_problems(fig: Figure, fast: bool) -> list[str]:
    """What makes ``fig`` hard to trust, as a list of sentences (empty: nothing found).

    Checks every Axes that shows data (colour bars and hidden Axes are skipped): an x and a
    y label, no two labelled lines of the same colour, a legend that does not sit on the
    data area, and a title (suptitle or Axes titles) that says "fast mode" exactly when
    ``fast``.
    """
    problems = []
    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out, so that the legends' places are final
    renderer = canvas.get_renderer()
    titles = [fig.get_suptitle()]
    for index, ax in enumerate(fig.axes):
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        name = f"Axes {index} ({ax.get_title() or 'untitled'})"
        titles.append(ax.get_title())
        if not ax.get_xlabel().strip():
            problems.append(f"{name} has no x label")
        if not ax.get_ylabel().strip():
            problems.append(f"{name} has no y label")
        seen = {}
        for line in ax.get_lines():
            label = line.get_label()
            if not label or label.startswith("_"):
                continue
            colour = tuple(np.round(to_rgba(line.get_color()), 3))
            if colour in seen:
                problems.append(f"{name}: lines {seen[colour]!r} and {label!r} share a colour")
            seen.setdefault(colour, label)
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
            overlap_w = min(box.x1, area.x1) - max(box.x0, area.x0)
            overlap_h = min(box.y1, area.y1) - max(box.y0, area.y0)
            if overlap_w > 1 and overlap_h > 1:
                problems.append(f"{name}: the legend sits on the data area")
    says_fast = any("fast mode" in title for title in titles)
    if fast and not says_fast:
        problems.append("fast-mode figure whose title does not say 'fast mode'")
    if not fast and says_fast:
        problems.append("full-run figure whose title says 'fast mode'")
    return problems


def progress(iterable: Iterable | None, desc: str, total: int | None = None, initial: int = 0):
    """A tqdm progress bar that switches itself off when stderr is not a terminal."""
    return tqdm(iterable, desc=desc, total=total, initial=initial, disable=None, leave=False)
