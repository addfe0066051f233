"""Checkpointed units of work (:mod:`jaxdl.experiments.units`) on a toy experiment: progress is
saved after every unit, Ctrl-C (a real SIGINT from the test hook) keeps the finished units,
and a resumed run calls ``work`` only for the others and returns what an uninterrupted run does."""

import json

import numpy as np
import pytest

from jaxdl.experiments import units
from jaxdl.experiments.units import Interrupted, run_units

KEYS = [f"unit={k}" for k in range(5)]
SETTINGS = {"fast": True, "seed": 0, "sizes": (1, 2)}


def square(calls):
    def work(key):
        calls.append(key)
        k = int(key.split("=")[1])
        return {"k": k, "square": np.float64(k) ** 2, "array": np.arange(k), "pair": (k, -k)}

    return work


def test_uninterrupted_run_returns_json_values_and_saves_every_unit(tmp_path):
    calls = []
    done = run_units("toy", KEYS, square(calls), out_dir=tmp_path, settings=SETTINGS)
    assert calls == KEYS and list(done) == KEYS
    assert done["unit=3"] == {"k": 3, "square": 9.0, "array": [0, 1, 2], "pair": [3, -3]}  # as JSON reads back
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert saved["experiment"] == "toy" and saved["interrupted"] is True  # final results replace it
    assert saved["units_done"] == saved["units_total"] == 5 and saved["completed_units"] == done
    assert saved["settings"] == {"fast": True, "seed": 0, "sizes": [1, 2]}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["toy.json"]  # no temporary files left


def test_ctrl_c_keeps_the_finished_units_and_resume_runs_only_the_others(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv(units.INTERRUPT_AFTER_ENV, "2")
    with pytest.raises(Interrupted) as stop:
        run_units("toy", KEYS, square(calls), out_dir=tmp_path, settings=SETTINGS)
    assert isinstance(stop.value, KeyboardInterrupt)
    assert (stop.value.done, stop.value.total, stop.value.path) == (2, 5, tmp_path / "toy.json")
    assert str(stop.value) == f"toy interrupted after 2 of 5 units of work; saved in {tmp_path / 'toy.json'}; " \
                              "continue with --resume"
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert saved["interrupted"] is True and list(saved["completed_units"]) == KEYS[:2]
    monkeypatch.delenv(units.INTERRUPT_AFTER_ENV)

    calls.clear()
    resumed = run_units("toy", KEYS, square(calls), out_dir=tmp_path, settings=SETTINGS, resume=True)
    assert calls == KEYS[2:]
    assert resumed == run_units("toy", KEYS, square([]), out_dir=None, settings=SETTINGS)


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    with pytest.raises(ValueError, match=r"toy: --resume: .*toy.json does not exist"):
        run_units("toy", KEYS, square([]), out_dir=tmp_path, settings=SETTINGS, resume=True)
    run_units("toy", KEYS[:2], square([]), out_dir=tmp_path, settings=SETTINGS)
    with pytest.raises(ValueError, match=r"other settings \(seed=0 there, 1 now\)"):
        run_units("toy", KEYS, square([]), out_dir=tmp_path, settings={**SETTINGS, "seed": 1}, resume=True)
    with pytest.raises(ValueError, match="not a result of other"):
        units.load_completed("other", tmp_path / "toy.json", SETTINGS)
    with pytest.raises(ValueError, match="holds units this run does not have"):
        run_units("toy", KEYS[1:], square([]), out_dir=tmp_path, settings=SETTINGS, resume=True)
    (tmp_path / "toy.json").write_text(json.dumps({"experiment": "toy", "interrupted": False, "rows": []}))
    with pytest.raises(ValueError, match="holds a finished run"):
        run_units("toy", KEYS, square([]), out_dir=tmp_path, settings=SETTINGS, resume=True)
    (tmp_path / "toy.json").write_text('{"experiment": "toy", "interr')
    with pytest.raises(ValueError, match="cannot read"):
        run_units("toy", KEYS, square([]), out_dir=tmp_path, settings=SETTINGS, resume=True)
    with pytest.raises(ValueError, match="run_units: expected distinct unit keys"):
        run_units("toy", ["a", "a"], square([]), out_dir=None, settings=SETTINGS)
    with pytest.raises(ValueError, match="resume=True needs an out_dir"):
        run_units("toy", KEYS, square([]), out_dir=None, settings=SETTINGS, resume=True)


def test_without_an_out_dir_nothing_is_written_and_ctrl_c_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(units.INTERRUPT_AFTER_ENV, "1")
    with pytest.raises(Interrupted, match="after 1 of 5 units of work; nothing saved"):
        run_units("toy", KEYS, square([]), out_dir=None, settings=SETTINGS)
    assert list(tmp_path.iterdir()) == []
