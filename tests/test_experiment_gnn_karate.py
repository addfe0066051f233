"""`jaxdl run gnn-karate`: tiny settings (JSON keys, the figure, accuracy from 2 labels,
oversmoothing) and the fast mode behind ``slow``."""

import json

import numpy as np
import pytest

from jaxdl import experiments
from jaxdl.experiments import gnn_karate, report


_SETTINGS = gnn_karate.settings_for


def _tiny(fast, seed):
    settings = _SETTINGS(fast, seed)
    settings.update(models=["gcn"], seeds=1, steps=60, trained_depths=[2], depths=[1, 2, 4, 8, 16, 32], oversmoothing_seeds=2)
    return settings


def test_spread_is_zero_for_parallel_rows_and_two_for_opposite():
    assert gnn_karate.spread(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])) == 0.0
    assert np.isclose(gnn_karate.spread(np.array([[1.0, 0.0], [-5.0, 0.0]])), 2.0)
    # brute force on random rows
    h = np.random.default_rng(0).normal(size=(5, 3))
    u = h / np.linalg.norm(h, axis=1, keepdims=True)
    pairs = [np.linalg.norm(u[i] - u[j]) for i in range(5) for j in range(5) if i != j]
    assert np.isclose(gnn_karate.spread(h), np.mean(pairs))


def test_gnn_karate_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setattr(gnn_karate, "settings_for", _tiny)
    results = gnn_karate.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "gnn-karate.json").read_text())
    assert (tmp_path / "gnn-karate.png").stat().st_size > 0
    for key in ("dataset", "test_accuracy", "embeddings", "oversmoothing_at_init", "oversmoothing_trained"):
        assert key in saved
    assert saved["num_nodes"] == 34 and saved["num_edges"] == 78 and saved["num_test_nodes"] == 32
    assert list(saved["test_accuracy"]) == ["gcn"]  # GAT and ChebNet: the fast-mode test (slow)
    for model in ["gcn"]:
        assert np.asarray(saved["embeddings"][model]).shape == (34, 2)
        assert 0.0 <= saved["test_accuracy"][model]["mean"] <= 1.0
        run = saved["runs"][f"{model}|seed=0|depth=2"]
        assert run["train_accuracy"] == 1.0  # the two labelled nodes are fitted
    assert saved["test_accuracy"]["gcn"]["mean"] >= 0.75  # far above chance from two labels
    for activation in ("linear", "relu"):
        spread = np.asarray(saved["oversmoothing_at_init"][activation]["mean"])
        assert spread[-1] < 0.1 * spread[0], activation  # depth 32 collapses
        assert np.all(np.diff(spread[2:]) < 0), activation  # and falls steadily once depth >= 4
    assert results["test_accuracy"] == saved["test_accuracy"]
    assert report.figure_problems(gnn_karate.figure(saved), fast=True) == []
    assert report.figure_problems(gnn_karate.figure({**saved, "fast": False}), fast=False) == []
    assert "gcn test accuracy (32 unlabelled nodes, 1 seeds)" in gnn_karate.summary(saved)


@pytest.mark.slow
def test_gnn_karate_fast_mode(tmp_path):
    results = experiments.run("gnn-karate", tmp_path, fast=True, seed=0)
    assert results["test_accuracy"]["gcn"]["mean"] >= 0.8
    assert results["test_accuracy"]["gat"]["mean"] >= 0.8
    assert set(results["embeddings"]) == set(gnn_karate.MODELS)
    assert report.figure_problems(gnn_karate.figure(results), fast=True) == []
