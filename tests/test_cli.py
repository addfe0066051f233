"""The ``jaxdl`` command: plain-text help, one-line errors for a bad ``--out``, Ctrl-C that saves
the finished units of work and exits 130, and ``--resume`` that completes the run with the
same numbers as an uninterrupted one.

Interrupts are real SIGINTs: the test hook ``JAXDL_INTERRUPT_AFTER_UNITS=k`` makes the process
send itself SIGINT after its k-th finished unit, exactly what Ctrl-C in a terminal does.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxdl import experiments
from jaxdl.cli import main
from jaxdl.experiments import units

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, timeout=600):
    """``python -m jaxdl.cli ARGS`` in a child process: ``(returncode, stdout, stderr)``."""
    child_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    child_env.pop("XLA_FLAGS", None)  # the suite's 8 virtual devices are not needed here
    done = subprocess.run([sys.executable, "-m", "jaxdl.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=child_env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def test_help_is_plain_text_listing_experiments_run_options_and_fast_mode(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "`" not in text and "``" not in text  # no reST markup
    for name, module in experiments.available().items():
        assert f"\n  {name} " in text, name
    for option in ("--fast", "--out DIR", "--seed SEED", "--resume"):
        assert option in text, option
    assert "reduced version" in text and "fast mode" in text  # what --fast changes
    assert "--fast: 4 widths 32-256" in text  # each experiment's reduction (kernel-limit's shown)
    assert "130" in text and "interrupted" in text


@pytest.mark.parametrize("case", ["existing file", "below a file", "not writable"])
def test_a_bad_out_gives_one_jaxdl_line(tmp_path, capsys, case):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a directory")
    out = {"existing file": a_file, "below a file": a_file / "runs", "not writable": Path("/sys/jaxdl-runs")}[case]
    if case == "not writable" and not Path("/sys").is_dir():
        pytest.skip("no /sys to stand for a directory nobody can write")
    assert main(["run", "cover", "--fast", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxdl: "), captured.err
    assert str(out) in lines[0]
    assert {"existing file": "existing file", "below a file": "cannot create",
            "not writable": "cannot create"}[case] in lines[0]
    assert captured.out == "" and a_file.read_text() == "not a directory"


def test_unknown_experiment_and_resume_without_an_interrupted_run_are_one_line_errors(tmp_path, capsys):
    assert main(["run", "no-such-experiment", "--out", str(tmp_path)]) == 2
    assert main(["run", "mlp-digits", "--fast", "--resume", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("jaxdl: ") for line in lines)
    assert "unknown experiment" in lines[0] and "there is no interrupted run to continue" in lines[1]


def test_ctrl_c_saves_finished_units_exits_130_and_resume_reproduces_an_uninterrupted_run(tmp_path, monkeypatch,
                                                                                          capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["run", "hopfield-capacity", "--fast", "--out", str(whole)]) == 0
    assert "breakdown load" in capsys.readouterr().out  # the summary gives the headline figures

    monkeypatch.setenv(units.INTERRUPT_AFTER_ENV, "3")
    assert main(["run", "hopfield-capacity", "--fast", "--out", str(split)]) == 130
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxdl: hopfield-capacity interrupted after 3 of 8 units"), lines
    assert "--resume" in lines[0]
    partial = json.loads((split / "hopfield-capacity.json").read_text())
    assert partial["interrupted"] is True and partial["units_done"] == 3 and partial["units_total"] == 8
    assert list(partial["completed_units"]) == ["alpha=0.02", "alpha=0.06", "alpha=0.1"]
    assert not (split / "hopfield-capacity.png").exists()
    monkeypatch.delenv(units.INTERRUPT_AFTER_ENV)

    assert main(["run", "hopfield-capacity", "--fast", "--seed", "1", "--resume", "--out", str(split)]) == 2
    assert "other settings (seed=0 there, 1 now)" in capsys.readouterr().err

    assert main(["run", "hopfield-capacity", "--fast", "--resume", "--out", str(split)]) == 0
    resumed = json.loads((split / "hopfield-capacity.json").read_text())
    uninterrupted = json.loads((whole / "hopfield-capacity.json").read_text())
    assert resumed["interrupted"] is False
    assert resumed["rows"][:3] == list(partial["completed_units"].values())
    assert resumed == uninterrupted
    assert (split / "hopfield-capacity.png").stat().st_size > 0

    assert main(["run", "hopfield-capacity", "--fast", "--resume", "--out", str(split)]) == 2
    assert "holds a finished run" in capsys.readouterr().err


def test_resume_without_a_saved_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["run", "cover", "--fast", "--resume", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "there is no interrupted run to continue" in lines[0]


def test_interrupt_in_a_child_process_prints_one_line_and_no_traceback(tmp_path):
    code, out, err = run_cli("run", "cover", "--fast", "--out", str(tmp_path),
                             env={units.INTERRUPT_AFTER_ENV: "1"})
    assert code == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("jaxdl: cover interrupted after 1 of 2")
    assert [line for line in err.splitlines() if line.startswith("jaxdl:")] == err.strip().splitlines()[-1:]
    saved = json.loads((tmp_path / "cover.json").read_text())
    assert saved["interrupted"] is True and list(saved["completed_units"]) == ["n=5"]


@pytest.mark.slow
def test_ctrl_c_from_outside_during_kernel_limit_then_resume(tmp_path):
    """A SIGINT from another process, as a terminal's Ctrl-C, once a unit is saved."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    child = subprocess.Popen([sys.executable, "-m", "jaxdl.cli", "run", "kernel-limit", "--fast", "--out", str(tmp_path)],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = tmp_path / "kernel-limit.json"
    deadline = time.monotonic() + 600
    while not (path.is_file() and json.loads(path.read_text())["units_done"] >= 1):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("jaxdl: kernel-limit interrupted after")
    partial = json.loads(path.read_text())
    assert partial["interrupted"] is True and partial["units_done"] >= 1
    code, out, err = run_cli("run", "kernel-limit", "--fast", "--resume", "--out", str(tmp_path))
    assert code == 0, err
    assert "NTK drift slope" in out
    final = json.loads(path.read_text())
    assert final["interrupted"] is False and len(final["widths"]) == 4
    first = next(iter(partial["completed_units"].values()))
    assert final["ntk_drift_per_seed"][0][0] == first["ntk_drift"]
