"""The pac-bayes experiment: a full fast run behind the slow marker (about 3 minutes on 2 busy
cores); by default its pieces: settings, task, losses, figure and summary from a fake result."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.experiments import pac_bayes, report


def fake_results(fast=True):
    steps = [0, 25, 50]
    return {
        "dataset": "sklearn-digits", "task": "digit >= 5 (binary)", "fast": fast, "num_train": 1347,
        "num_params": 2113, "stochastic_test_error": 0.06, "mc_empirical_risk": 0.04, "seeger_bound": 0.42,
        "catoni_bound": 0.5, "mcallester_bound": 0.5, "seed_bound": 0.9, "vc_bound_lower": 2.5,
        "vc_bound_params": 9.0, "vc_dimension_params": 2113, "kl": 350.0, "seconds": 100.0,
        "history_step": steps, "history": {"objective": [3.0, 1.0, 0.6], "surrogate": [0.1, 0.2, 0.15],
                                           "kl": [1e4, 1e3, 350.0]},
    }


def test_settings_task_and_losses():
    fast, full = pac_bayes.settings(True), pac_bayes.settings(False)
    assert fast["chunks"] * fast["steps_per_chunk"] < full["chunks"] * full["steps_per_chunk"]
    assert len(pac_bayes.PRIOR_GRID) == 48 and pac_bayes.PRIOR_GRID[0] == 10.0
    name, x, y, x_test, y_test = pac_bayes.load_task(0)
    assert name == "sklearn-digits" and x.shape == (1347, 64) and set(np.unique(y)) == {0.0, 1.0}
    assert 0.4 < y.mean() < 0.6 and len(x_test) == len(y_test) == 450
    logits = jnp.array([[2.0], [-1.0], [0.5], [-3.0]])
    labels = jnp.array([1.0, 1.0, 0.0, 0.0])
    assert pac_bayes.zero_one(logits, labels).tolist() == [False, True, True, False]
    # the surrogate is the mean logistic loss in bits, and bounds the 0-1 error from above
    expected = np.mean(np.log1p(np.exp(-np.array([2.0, -1.0, -0.5, 3.0])))) / math.log(2)
    assert float(pac_bayes.surrogate(logits, labels)) == pytest.approx(expected, rel=1e-5)
    assert float(pac_bayes.surrogate(logits, labels)) >= float(jnp.mean(pac_bayes.zero_one(logits, labels)))


@pytest.mark.parametrize("fast", [True, False])
def test_figure_and_summary_from_a_fake_result(fast):
    results = fake_results(fast)
    assert report.figure_problems(pac_bayes.figure(results), fast=fast) == []
    summary = pac_bayes.summary(results)
    assert summary["PAC-Bayes bound (kl, 96.5 %)"] == "0.420"
    assert summary["VC bound (d >= 65)"] == "2.50 (vacuous)"


@pytest.mark.slow
def test_fast_run_gives_a_non_vacuous_bound_and_a_vacuous_vc_bound(tmp_path):
    results = pac_bayes.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "pac-bayes.json").read_text())
    assert (tmp_path / "pac-bayes.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits" and saved["seeger_bound"] == pytest.approx(results["seeger_bound"])
    assert saved["stochastic_test_error"] < saved["seeger_bound"] < 1.0  # the bound holds and says something
    assert saved["mc_empirical_risk"] <= saved["empirical_risk_bound"] <= saved["seeger_bound"]
    assert saved["seeger_bound"] <= saved["mcallester_bound"] <= saved["seed_bound"]
    assert saved["vc_bound_lower"] > 1.0 and saved["vc_bound_params"] > saved["vc_bound_lower"]
    assert report.figure_problems(pac_bayes.figure(saved), fast=True) == []


@pytest.mark.slow
def test_ctrl_c_after_two_units_and_resume_match_an_uninterrupted_run(tmp_path, monkeypatch):
    from jaxdl.experiments.units import INTERRUPT_AFTER_ENV, Interrupted

    tiny = {**pac_bayes.settings(True), "pretrain_steps": 20, "chunks": 2, "steps_per_chunk": 30,
            "num_samples": 20, "num_test_samples": 10}
    monkeypatch.setattr(pac_bayes, "settings", lambda fast: tiny)
    whole = pac_bayes.run(tmp_path / "whole", fast=True, seed=0)
    monkeypatch.setenv(INTERRUPT_AFTER_ENV, "2")
    with pytest.raises(Interrupted) as stop:
        pac_bayes.run(tmp_path, fast=True, seed=0)
    assert (stop.value.done, stop.value.total) == (2, 5)
    monkeypatch.delenv(INTERRUPT_AFTER_ENV)
    resumed = pac_bayes.run(tmp_path, fast=True, seed=0, resume=True)
    for field in ("seeger_bound", "kl", "mc_empirical_risk", "stochastic_test_error", "history"):
        assert resumed[field] == whole[field], field
