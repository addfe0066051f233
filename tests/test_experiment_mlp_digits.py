"""The mlp-digits experiment: fast mode end to end (full mode behind the slow marker)."""

import json

import pytest

from jaxdl.experiments import mlp_digits, report


def check_outputs(out_dir, results, min_accuracy):
    saved = json.loads((out_dir / "mlp-digits.json").read_text())
    assert (out_dir / "mlp-digits.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits"
    assert saved["test_accuracy"] == pytest.approx(results["test_accuracy"])
    assert saved["test_accuracy"] >= min_accuracy
    assert len(saved["train_loss"]) == saved["num_epochs"] == len(saved["test_accuracy_history"])
    assert saved["train_loss"][-1] < saved["train_loss"][0]
    assert saved["test_accuracy_history"][-1] == pytest.approx(saved["test_accuracy"])
    assert report.figure_problems(mlp_digits.figure(saved), fast=saved["fast"]) == []


def test_fast_run_writes_json_and_figure(tmp_path):
    results = mlp_digits.run(tmp_path, fast=True, seed=0)
    check_outputs(tmp_path, results, min_accuracy=0.85)


@pytest.mark.slow
def test_full_run_reaches_95_percent(tmp_path):
    results = mlp_digits.run(tmp_path, fast=False, seed=0)
    check_outputs(tmp_path, results, min_accuracy=0.95)


def test_ctrl_c_keeps_finished_epochs_and_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    from jaxdl.experiments.units import Interrupted
    from jaxdl.train import loop

    uninterrupted = mlp_digits.run(tmp_path / "whole", fast=True, seed=0)
    real_save, saves = loop.save_checkpoint, []

    def save_then_ctrl_c(path, tree):  # Ctrl-C arrives right after the second epoch's checkpoint
        real_save(path, tree)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_ctrl_c)
    with pytest.raises(Interrupted) as stop:
        mlp_digits.run(tmp_path, fast=True, seed=0)
    assert (stop.value.done, stop.value.total) == (2, uninterrupted["num_epochs"])
    saved = json.loads((tmp_path / "mlp-digits.json").read_text())
    assert saved["interrupted"] is True and saved["units_done"] == 2
    with pytest.raises(ValueError, match="mlp-digits: --resume: .* other settings"):
        mlp_digits.run(tmp_path, fast=False, seed=0, resume=True)

    resumed = mlp_digits.run(tmp_path, fast=True, seed=0, resume=True)
    assert len(saves) == uninterrupted["num_epochs"]  # epochs 3.. only, one checkpoint each
    for field in ("train_loss", "test_loss", "test_accuracy_history", "test_accuracy"):
        assert resumed[field] == uninterrupted[field]
    assert not (tmp_path / "mlp-digits.ckpt").exists()
