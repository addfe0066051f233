"""The cnn-digits experiment: fast mode end to end (the full run, which must reach
98.5 % with its best CNN, behind the slow marker)."""

import json

import pytest

from jaxdl.experiments import cnn_digits, report

def check_outputs(out_dir, results, min_accuracy):
    saved = json.loads((out_dir / "cnn-digits.json").read_text())
    assert (out_dir / "cnn-digits.png").stat().st_size > 0
    assert saved["interrupted"] is False and saved["dataset"] == "sklearn-digits"
    assert (saved["num_train"], saved["num_test"]) == (1347, 450)
    keys = set(cnn_digits.unit_keys(cnn_digits.settings_for(saved["fast"], 0)))
    assert len(keys) == (8 if saved["fast"] else 15)  # 3 models x 2 or 4 variants, 2 or 3 students
    assert set(saved["test_accuracy"]) == keys == set(saved["runs"])
    for key, accuracy in saved["test_accuracy"].items():
        run = saved["runs"][key]
        assert accuracy == pytest.approx(results["test_accuracy"][key])
        assert accuracy == pytest.approx(run["test_accuracy_history"][-1])
        assert accuracy >= min_accuracy, key  # chance is 0.1
        assert len(run["test_accuracy_history"]) == len(run["epoch"]) == len(run["train_loss_history"])
        assert "teacher_train_logits" not in run  # the teacher's logits stay in the units file only
    best = saved["best_cnn"]
    assert best.split("|")[0] in ("lenet5", "resnet")
    assert saved["best_cnn_test_accuracy"] == max(
        a for k, a in saved["test_accuracy"].items() if k.split("|")[0] in ("lenet5", "resnet"))
    assert saved["best_cnn_test_errors"] == round((1 - saved["best_cnn_test_accuracy"]) * 450)
    assert len(saved["runs"]["lenet5|plain"]["first_layer_filters"]) == 6  # LeNet-5's 6 filters, 5x5
    assert len(saved["runs"]["lenet5|plain"]["first_layer_filters"][0]) == 5
    assert saved["num_params"]["lenet5"] > saved["num_params"]["student"]
    assert report.figure_problems(cnn_digits.figure(saved), fast=saved["fast"]) == []
    assert set(cnn_digits.summary(saved)) >= {"best CNN"}
    return saved


@pytest.mark.slow
def test_fast_run_writes_json_and_figure_and_beats_chance(tmp_path):
    results = cnn_digits.run(tmp_path, fast=True, seed=0)
    saved = check_outputs(tmp_path, results, min_accuracy=0.3)
    assert saved["fast"] is True
    assert max(saved["test_accuracy"].values()) >= 0.8


@pytest.mark.slow
def test_full_run_best_cnn_reaches_98_5_percent(tmp_path):
    results = cnn_digits.run(tmp_path, fast=False, seed=0)
    saved = check_outputs(tmp_path, results, min_accuracy=0.9)
    assert saved["best_cnn_test_accuracy"] >= 0.985
