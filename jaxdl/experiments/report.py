"""Output helpers shared by the experiments: JSON results, PNG figures, progress bars."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402


def _to_json(value):
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if hasattr(value, "tolist"):  # numpy and jax arrays, numpy scalars
        return _to_json(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(out_dir: Path, name: str, results: dict) -> Path:
    """Write ``results`` to ``out_dir/<name>.json`` (arrays become lists)."""
    path = Path(out_dir) / f"{name}.json"
    path.write_text(json.dumps(_to_json(results), indent=2) + "\n")
    return path


def save_figure(fig: plt.Figure, out_dir: Path, filename: str) -> Path:
    """Save ``fig`` as a PNG under ``out_dir`` and close it."""
    path = Path(out_dir) / filename
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def progress(iterable: Iterable, desc: str, total: int | None = None):
    """A tqdm progress bar that switches itself off when stderr is not a terminal."""
    return tqdm(iterable, desc=desc, total=total, disable=None, leave=False)
