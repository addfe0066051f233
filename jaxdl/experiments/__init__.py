"""Named, reproducible experiments run by the ``jaxdl`` command.

An experiment is a module in this package that defines

* ``NAME``: the name used on the command line (``jaxdl run NAME``),
* ``DESCRIPTION``: one line shown by ``jaxdl list``,
* ``run(out_dir, *, fast=False, seed=0, resume=False) -> dict``: does the work, writes
  ``<out_dir>/<NAME>.json`` plus its figure ``<out_dir>/<NAME>.png``, and returns the
  results dict; its work is saved as it finishes (units of work through
  :func:`jaxdl.experiments.units.run_units`, or a training run's epochs through
  :func:`~jaxdl.experiments.units.run_fit`), so that Ctrl-C raises
  :class:`jaxdl.experiments.units.Interrupted` after saving, and ``resume=True``
  continues from there;

and may define

* ``FAST_MODE``: one line saying what ``--fast`` reduces (shown by ``jaxdl list``);
* ``figure(results) -> matplotlib.figure.Figure``: the figure, drawn from the results
  dict alone (no pyplot state), so it can be redrawn from the JSON;
* ``summary(results) -> dict``: the headline figures the ``jaxdl`` command prints.

Modules are discovered by name, so adding an experiment is adding a file.
Helpers shared by all experiments live in :mod:`jaxdl.experiments.report`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from pathlib import Path
from types import ModuleType

from jaxdl.experiments import units

_NOT_EXPERIMENTS = {"report", "units"}


def available() -> dict[str, ModuleType]:
    """Every experiment module, keyed by its command-line ``NAME``."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_EXPERIMENTS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return dict(sorted(found.items()))


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed; ``ValueError`` when it is a file, cannot be made or is not writable."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output directory {str(out_dir)!r} is an existing file, not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create output directory {str(out_dir)!r}: {error.strerror or error}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"output directory {str(out_dir)!r} is not writable")
    return out_dir


def run(name: str, out_dir: str | Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Run experiment ``name``, writing its JSON and figure under ``out_dir``.

    ``resume=True`` continues an interrupted run saved in ``out_dir``. Raises ``ValueError`` for an unknown name or an unusable
    ``out_dir``, and :class:`jaxdl.experiments.units.Interrupted` on Ctrl-C.
    """
    experiments = available()
    if name not in experiments:
        raise ValueError(
            f"jaxdl.experiments.run: unknown experiment {name!r}; "
            f"expected one of {sorted(experiments)}"
        )
    out_dir = prepare_out_dir(out_dir)
    return experiments[name].run(out_dir, fast=fast, seed=seed, resume=resume)
