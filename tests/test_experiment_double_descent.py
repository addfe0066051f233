"""The double-descent experiment: the random-features peak sits at the interpolation threshold
(cheap sizes, deterministic seed), the NTK-feature and MLP pieces on tiny sizes, the figure and
summary from a small fake result; the fast run end to end behind the slow marker."""

import json

import jax
import numpy as np
import pytest

from jaxdl.data import load_digits
from jaxdl.experiments import double_descent as dd
from jaxdl.experiments import report


@pytest.fixture(scope="module")
def digits():
    d = load_digits(seed=0, standardize=False)
    x, x_test = dd.center_pixels(d.x_train, d.x_test[:200])  # as the experiment
    return x, d.y_train, x_test, d.y_test[:200]


def test_random_features_peak_lies_at_the_interpolation_threshold(digits):
    x, y, x_test, y_test = digits
    n = 60
    grid = [10, 30, 45, 55, 60, 66, 75, 120, 600]
    curve = dd.random_features_curve(jax.random.key(0), x[:n], y[:n], x_test, y_test, grid, num_seeds=2)
    peak = dd.peak_of(curve["num_features"], curve["test_mse"])
    assert 0.8 * n <= peak <= 1.25 * n, curve["test_mse"]
    mse = np.asarray(curve["test_mse"])
    assert mse[grid.index(60)] > 5 * mse[grid.index(600)]  # and it descends again past the peak
    assert mse[grid.index(60)] > 5 * mse[grid.index(10)]
    # the least-norm coefficients blow up at p = n too (the mechanism)
    assert dd.peak_of(curve["num_features"], curve["coef_norm"]) == 60


@pytest.mark.slow
def test_ntk_features_curve_and_mlp_point_on_tiny_sizes(digits):
    _, y, _, y_test = digits
    d = load_digits(seed=0, standardize=False)
    raw, raw_test = d.x_train / 16, d.x_test[:200] / 16  # the NTK part uses uncentred pixels
    x, x_test = digits[0], digits[2]
    curve = dd.ntk_curve(jax.random.key(1), raw[:30], y[:30], raw_test[:50], y_test[:50], [10, 30, 200], width=4)
    assert curve["total_params"] == 4 * 64 + 4  # stax.Dense has no bias unless b_std is given
    assert curve["nonzero_features"] < curve["total_params"]  # blank border pixels give zero gradients
    assert curve["num_params"] == [10, 30, 200]
    assert np.argmax(curve["test_mse"]) == 1  # p = n = 30
    point = dd.mlp_point(jax.random.key(2), x[:20], y[:20], x_test[:50], y_test[:50], width=64, steps=1000)
    assert point["num_params"] == 65 * 64 + 65 * 10
    assert point["train_mse"] < 0.1  # 20 points, 4810 parameters: (nearly) interpolated


def fake_results(fast=True):
    n = 100
    p = [10, 50, 100, 200, 1000]
    return {
        "dataset": "sklearn-digits", "num_train": n, "fast": fast, "seconds": 1.0,
        "settings": {"bias_variance_draws": 5},
        "random_features": {"num_features": p, "test_mse": [1, 2, 50, 2, 0.5]},
        "random_features_peak": 100,
        "ntk_features": {"num_params": p, "test_mse": [1.5, 3, 40, 1, 0.4]},
        "ntk_features_peak": 100,
        "sample_wise": {"num_features": 100, "num_train": [20, 100, 400], "test_mse": [1, 30, 0.7]},
        "sample_wise_peak": 100,
        "bias_variance": {"num_features": p, "bias_squared": [1, 1, 5, 0.8, 0.3], "variance": [0.5, 1, 40, 1, 0.2],
                          "expected_mse": [1.5, 2, 45, 1.8, 0.5]},
        "bias_variance_peak": 100,
        "mlp": {"num_train": 50, "num_params": [160, 610, 20000], "train_mse": [0.7, 0.2, 0.0],
                "test_mse": [1.0, 1.4, 0.6]},
    }


def test_figure_and_summary_from_a_fake_result():
    for fast in (True, False):
        assert report.figure_problems(dd.figure(fake_results(fast)), fast=fast) == []
    assert dd.summary(fake_results())["random-features peak p (n)"] == "100 (100)"


@pytest.mark.slow
def test_fast_run_writes_json_and_figure_with_the_peak_at_n(tmp_path):
    results = dd.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "double-descent.json").read_text())
    assert (tmp_path / "double-descent.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits" and saved["interrupted"] is False
    n = saved["num_train"]
    assert 0.8 * n <= saved["random_features_peak"] <= 1.25 * n
    assert 0.8 * n <= saved["sample_wise_peak"] <= 1.25 * n
    assert 0.8 * n <= saved["ntk_features_peak"] <= 1.25 * n
    assert 0.8 * n <= saved["bias_variance_peak"] <= 1.25 * n
    assert saved["random_features_peak"] == results["random_features_peak"]
    assert report.figure_problems(dd.figure(saved), fast=True) == []
