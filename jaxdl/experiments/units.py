"""Checkpointed units of work: an experiment that survives Ctrl-C and resumes where it stopped.

An experiment whose work splits into independent *units* (one width and seed, one load,
one cell of a grid) runs them through :func:`run_units`. After every finished unit the
results so far are written to ``<out_dir>/<name>.json`` as

.. code-block:: json

    {"experiment": "kernel-limit", "interrupted": true, "settings": {...},
     "units_done": 3, "units_total": 8, "completed_units": {"width=32,seed=0": {...}, ...}}

so a Ctrl-C (or a killed process) loses at most the unit in flight. On Ctrl-C,
:func:`run_units` raises :class:`Interrupted`, which the ``jaxdl`` command turns into one
line and exit status 130. With ``resume=True`` the completed units are read back (the
settings must match) and only the others run; every unit is a deterministic function of
its key, so a resumed run gives the same numbers as an uninterrupted one. When the
experiment finishes it overwrites the file with its full results.

Each unit's value must be JSON-serialisable (numbers, strings, lists, dicts, arrays): it
is stored as JSON and returned as it reads back, so fresh and resumed units look alike.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxdl.experiments.report import progress, to_json, write_json

#: Test hook: after this many freshly computed units, the process sends itself SIGINT (Ctrl-C).
INTERRUPT_AFTER_ENV = "JAXDL_INTERRUPT_AFTER_UNITS"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_units`; the finished units are saved in ``path``."""

    def __init__(self, name: str, path: Path | None, done: int, total: int):
        self.name, self.path, self.done, self.total = name, path, done, total
        where = f"saved in {path}; continue with --resume" if path is not None and done else "nothing saved"
        super().__init__(f"{name} interrupted after {done} of {total} units of work; {where}")


def _normalised(value):
    """``value`` as it reads back from JSON."""
    return json.loads(json.dumps(to_json(value)))


def load_completed(name: str, path: Path, settings: dict) -> dict:
    """The completed units of the interrupted run of ``name`` saved at ``path``.

    Raises ``ValueError`` when there is no such file, when it holds a finished run or
    another experiment, or when it was run with other ``settings``.
    """
    if not path.is_file():
        raise ValueError(f"{name}: --resume: {path} does not exist; there is no interrupted run to continue")
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{name}: --resume: cannot read {path}: {error}") from None
    if not isinstance(saved, dict) or saved.get("experiment", name) != name:
        raise ValueError(f"{name}: --resume: {path} is not a result of {name}")
    if saved.get("interrupted") is not True or not isinstance(saved.get("completed_units"), dict):
        raise ValueError(f"{name}: --resume: {path} holds a finished run; run without --resume to redo it")
    expected = _normalised(settings)
    if saved.get("settings") != expected:
        old = saved.get("settings") or {}
        differ = sorted(k for k in set(old) | set(expected) if old.get(k) != expected.get(k))
        detail = ", ".join(f"{k}={old.get(k)!r} there, {expected.get(k)!r} now" for k in differ)
        raise ValueError(f"{name}: --resume: {path} was run with other settings ({detail})")
    return saved["completed_units"]


def run_units(
    name: str,
    keys: Sequence[str],
    work: Callable[[str], object],
    *,
    out_dir: str | Path | None,
    settings: dict,
    resume: bool = False,
    desc: str | None = None,
    pass_done: bool = False,
) -> dict:
    """``{key: work(key)}`` for every key, saving progress in ``out_dir/<name>.json``.

    Args:
      name: the experiment's name (the file name and the progress bar's label).
      keys: distinct unit names, in the order to run them.
      work: computes one unit; its value must be JSON-serialisable.
      out_dir: where the partial results go; ``None`` keeps nothing (no file, no resume).
      settings: what determines the units' values (fast mode, seed, sizes); a resumed
        run must have the same.
      resume: start from the completed units of an interrupted run in ``out_dir``.
      pass_done: call ``work(key, done)`` with the units finished so far (as they read back
        from JSON), for a unit that builds on earlier ones.

    Raises:
      Interrupted: on Ctrl-C, after saving the units finished so far.
    """
    keys = list(keys)
    if len(set(keys)) != len(keys):
        raise ValueError(f"run_units: expected distinct unit keys, got {keys}")
    path = None if out_dir is None else Path(out_dir) / f"{name}.json"
    if resume and path is None:
        raise ValueError(f"run_units: {name}: resume=True needs an out_dir")
    done = {}
    if resume:
        saved = load_completed(name, path, settings)
        unknown = sorted(set(saved) - set(keys))
        if unknown:
            raise ValueError(f"{name}: --resume: {path} holds units this run does not have: {unknown[:3]}")
        done = {key: saved[key] for key in keys if key in saved}
    interrupt_after = int(os.environ.get(INTERRUPT_AFTER_ENV, "0") or 0)

    def save():
        write_json(path.parent, name, {
            "experiment": name,
            "interrupted": True,
            "settings": settings,
            "units_done": len(done),
            "units_total": len(keys),
            "completed_units": done,
        })

    fresh = 0
    try:
        with progress(None, desc=desc or name, total=len(keys), initial=len(done)) as bar:
            for key in keys:
                if key in done:
                    continue
                bar.set_postfix_str(key)
                done[key] = _normalised(work(key, dict(done)) if pass_done else work(key))
                fresh += 1
                if path is not None:
                    save()
                bar.update()
                if fresh == interrupt_after:
                    os.kill(os.getpid(), signal.SIGINT)
    except KeyboardInterrupt:
        raise Interrupted(name, path, len(done), len(keys)) from None
    return {key: done[key] for key in keys}


def run_fit(name: str, fit: Callable, *, num_epochs: int, out_dir: str | Path, settings: dict,
            resume: bool = False):
    """``fit(checkpoint_path, resume)`` (a :func:`jaxdl.train.fit` call) made interrupt-safe.

    For an experiment that is one training run: its epochs are the units of work. ``fit``
    checkpoints every epoch to ``<out_dir>/<name>.ckpt``; on Ctrl-C the JSON file is marked
    ``"interrupted": true`` with the epochs finished, and :class:`Interrupted` is raised.
    With ``resume=True`` the settings are checked against that file and ``fit`` continues
    from the checkpoint (bit-exact: it restores the optimiser state and the data keys). A
    finished run removes its checkpoint.
    """
    out_dir = Path(out_dir)
    path, checkpoint = out_dir / f"{name}.json", out_dir / f"{name}.ckpt"
    if resume:
        load_completed(name, path, settings)
        if not checkpoint.is_file():
            raise ValueError(f"{name}: --resume: the checkpoint {checkpoint} is missing; run without --resume")
    else:
        checkpoint.unlink(missing_ok=True)
    try:
        result = fit(checkpoint, resume)
    except KeyboardInterrupt:
        epochs = _epochs_in(checkpoint)
        if epochs:
            write_json(out_dir, name, {
                "experiment": name, "interrupted": True, "settings": settings, "units_done": epochs,
                "units_total": num_epochs, "completed_units": {}, "checkpoint": str(checkpoint),
            })
        raise Interrupted(name, path if epochs else None, epochs, num_epochs) from None
    checkpoint.unlink(missing_ok=True)
    return result


def _epochs_in(checkpoint: Path) -> int:
    """How many epochs the ``fit`` checkpoint at ``checkpoint`` holds (0 when there is none)."""
    from jaxdl.train import restore_checkpoint

    if not checkpoint.is_file():
        return 0
    return len(restore_checkpoint(checkpoint)["history"]["epoch"])
