"""The gan-2d experiment: mode metrics and figure checked cheaply; the fast run behind the slow marker."""

import json
import math

import numpy as np
import pytest

from jaxdl.experiments import gan_2d as exp
from jaxdl.experiments import report


def test_mode_metrics_on_hand_made_samples():
    settings = exp.settings_for(True, 0)
    rng = np.random.default_rng(0)
    spread = np.repeat(exp.MODES, 100, axis=0) + 0.01 * rng.normal(size=(800, 2))
    m = exp.mode_metrics(spread, settings)
    assert (m["modes_covered"], m["high_quality_fraction"], m["mode_counts"]) == (8, 1.0, [100] * 8)
    assert m["kl_from_uniform"] == pytest.approx(0.0, abs=1e-12)
    collapsed = np.concatenate([exp.MODES[[3]] + 0.01 * rng.normal(size=(90, 2)), np.zeros((10, 2))])
    m = exp.mode_metrics(collapsed, settings)
    assert (m["modes_covered"], m["high_quality_fraction"]) == (1, 0.9)
    assert m["kl_from_uniform"] == pytest.approx(math.log(8))
    # 3σ = 0.15 from a mode is the high-quality boundary
    edge = exp.MODES[:1] * (1 + np.array([[0.14], [0.16]]) / 2.0)
    assert exp.mode_metrics(edge, settings)["high_quality_fraction"] == 0.5


def _fake_results(fast):
    rng = np.random.default_rng(1)
    methods = exp.settings_for(fast, 0)["methods"]
    run = {"modes_covered": 8, "high_quality_fraction": 0.5, "kl_from_uniform": 0.01, "train_seconds": 3.0,
           "samples": rng.normal(size=(30, 2)).tolist(),
           "history": [{"step": 250, "modes_covered": 3, "high_quality_fraction": 0.2},
                       {"step": 500, "modes_covered": 8, "high_quality_fraction": 0.5}]}
    return {"fast": fast, "modes": exp.MODES.tolist(), "runs": {m: run for m in methods}}


@pytest.mark.parametrize("fast", [True, False])
def test_figure_and_summary_from_a_small_fake_result(fast):
    results = _fake_results(fast)
    assert report.figure_problems(exp.figure(results), fast=fast) == []
    assert len(exp.summary(results)) == len(results["runs"])


@pytest.mark.slow
def test_fast_run_wgan_gp_covers_the_ring(tmp_path):
    results = exp.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "gan-2d.json").read_text())
    assert (tmp_path / "gan-2d.png").stat().st_size > 0
    assert saved["dataset"] == exp.DATASET and saved["modes_covered"] == results["modes_covered"]
    assert saved["modes_covered"]["wgan-gp"] >= 7
    assert saved["high_quality_fraction"]["wgan-gp"] > 0.2
    assert report.figure_problems(exp.figure(saved), fast=True) == []
