"""`jaxdl run point-sets`: tiny settings (JSON keys, the figure, invariance of Deep Sets
and PointNet under re-ordering, the MLP's dependence on the order), fast mode behind ``slow``."""

import json

import jax
import numpy as np
import pytest

from jaxdl import experiments
from jaxdl.experiments import point_sets, report


_SETTINGS = point_sets.settings_for


def _tiny(fast, seed):
    settings = _SETTINGS(fast, seed)
    settings.update(train_per_class=12, test_per_class=8, n_points=16, steps=60, width=16, permutations=2)
    return settings


def test_permute_points_permutes_each_cloud():
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    shuffled = np.asarray(point_sets.permute_points(x, jax.random.key(0)))
    for cloud, new in zip(x, shuffled):
        assert sorted(map(tuple, cloud.tolist())) == sorted(map(tuple, new.tolist()))
    assert not np.array_equal(shuffled, x)


def test_point_sets_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setattr(point_sets, "settings_for", _tiny)
    results = point_sets.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "point-sets.json").read_text())
    assert (tmp_path / "point-sets.png").stat().st_size > 0
    for key in ("dataset", "test_accuracy", "permuted_test_accuracy_mean", "max_logit_change_invariant",
                "mlp_accuracy_drop", "runs"):
        assert key in saved
    assert saved["num_train"] == 60 and saved["num_test"] == 40
    for model in point_sets.INVARIANT:
        run = saved["runs"][model]
        assert run["permuted_test_accuracy"] == [run["test_accuracy"]] * 2
        assert run["max_logit_change"] <= 1e-4 * max(1.0, run["max_abs_logit"])  # float32 summation order only
    # the MLP reads coordinates by position: re-ordering changes its logits by a lot
    assert saved["runs"]["mlp"]["max_logit_change"] > 100 * saved["max_logit_change_invariant"] + 1e-3
    assert results["test_accuracy"] == saved["test_accuracy"]
    assert report.figure_problems(point_sets.figure(saved), fast=True) == []
    assert report.figure_problems(point_sets.figure({**saved, "fast": False}), fast=False) == []


@pytest.mark.slow
def test_point_sets_fast_mode(tmp_path):
    results = experiments.run("point-sets", tmp_path, fast=True, seed=0)
    assert results["test_accuracy"]["pointnet"] >= 0.8
    assert results["max_accuracy_change_invariant"] == 0.0
    assert results["mlp_accuracy_drop"] > 0.0
