"""Named, reproducible experiments run by the ``jaxdl`` command.

An experiment is a module in this package that defines

* ``NAME``: the name used on the command line (``jaxdl run NAME``),
* ``DESCRIPTION``: one line shown by ``jaxdl list``,
* ``run(out_dir, *, fast=False, seed=0) -> dict``: does the work, writes
  ``<out_dir>/<NAME>.json`` plus its PNG figures, and returns the results dict.

Modules are discovered by name, so adding an experiment is adding a file.
Helpers shared by all experiments live in :mod:`jaxdl.experiments.report`.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

_NOT_EXPERIMENTS = {"report"}


def available() -> dict[str, ModuleType]:
    """Every experiment module, keyed by its command-line ``NAME``."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_EXPERIMENTS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return dict(sorted(found.items()))


def run(name: str, out_dir: str | Path, *, fast: bool = False, seed: int = 0) -> dict:
    """Run experiment ``name``, writing its JSON and figures under ``out_dir``."""
    experiments = available()
    if name not in experiments:
        raise ValueError(
            f"jaxdl.experiments.run: unknown experiment {name!r}; "
            f"expected one of {sorted(experiments)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return experiments[name].run(out_dir, fast=fast, seed=seed)
