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
