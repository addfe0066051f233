"""`jaxdl run bnn-digits --fast`: the JSON holds every method's metrics, consistent with
the reliability data it reports, and the figure is written."""

import json

import numpy as np
import pytest

from jaxdl import experiments
from jaxdl.experiments import bnn_digits, report, units


def test_calibration_matches_a_direct_computation():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 0])
    result = bnn_digits.calibration(probs, labels, num_bins=2)
    # bins (0, 0.5] and (0.5, 1]: every confidence is above 0.5 -> one bin, accuracy 3/4
    expected = abs(0.75 - np.mean([0.9, 0.6, 0.8, 0.55]))
    np.testing.assert_allclose(result["ece"], expected)
    np.testing.assert_array_equal(result["bin_count"], [0, 4])


def test_bnn_digits_fast_run_survives_ctrl_c_and_writes_its_results(tmp_path, monkeypatch):
    monkeypatch.setenv(units.INTERRUPT_AFTER_ENV, "2")  # Ctrl-C after MAP/ensemble and the SGLD chain
    with pytest.raises(units.Interrupted) as stop:
        experiments.run("bnn-digits", tmp_path, fast=True, seed=0)
    assert (stop.value.done, stop.value.total) == (2, 3)
    partial = json.loads((tmp_path / "bnn-digits.json").read_text())
    assert partial["interrupted"] is True and list(partial["completed_units"]) == ["MAP and deep ensemble", "SGLD"]
    monkeypatch.delenv(units.INTERRUPT_AFTER_ENV)
    results = experiments.run("bnn-digits", tmp_path, fast=True, seed=0, resume=True)
    saved = json.loads((tmp_path / "bnn-digits.json").read_text())
    assert (tmp_path / "bnn-digits.png").stat().st_size > 10_000
    methods = saved["methods"]
    assert set(methods) == {"MAP", "deep ensemble", "ensemble exp(-E) weights", "SGLD", "SGHMC"}
    for name, row in methods.items():
        assert 0.85 < row["accuracy"] <= 1.0, (name, row["accuracy"])
        assert 0.0 < row["nll"] < 1.0, (name, row["nll"])
        assert 0.0 <= row["ece"] < 0.2, (name, row["ece"])
        counts = np.array(row["bin_count"])
        assert counts.sum() == saved["num_test"]
        # ECE is the count-weighted gap of the reliability curve it reports.
        gap = np.abs(np.array(row["bin_accuracy"]) - np.array(row["bin_confidence"]))
        np.testing.assert_allclose(row["ece"], np.sum(counts * gap) / counts.sum(), rtol=1e-6)
    np.testing.assert_allclose(np.sum(saved["ensemble_weights"]), 1.0, rtol=1e-5)
    assert results["accuracy_sgld"] == methods["SGLD"]["accuracy"]
    assert report.figure_problems(bnn_digits.figure(saved), fast=True) == []
    assert report.figure_problems(bnn_digits.figure({**saved, "fast": False}), fast=False) == []


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    tiny = dict(width=8, map_steps=30, ensemble_size=2, burn_in=20, num_samples=5, thin=2, batch_size=64)
    monkeypatch.setattr(bnn_digits, "_config", lambda fast: tiny)
    bnn_digits.run(tmp_path / "whole", fast=True, seed=0)
    monkeypatch.setenv(units.INTERRUPT_AFTER_ENV, "1")
    with pytest.raises(units.Interrupted):
        bnn_digits.run(tmp_path, fast=True, seed=0)
    monkeypatch.delenv(units.INTERRUPT_AFTER_ENV)
    bnn_digits.run(tmp_path, fast=True, seed=0, resume=True)
    whole, resumed = (json.loads((path / "bnn-digits.json").read_text()) for path in (tmp_path / "whole", tmp_path))
    assert resumed["methods"] == whole["methods"]


def test_figure_plots_the_reported_reliability_data_one_quantity_per_axis():
    """From a fake result: the reliability panel plots each method's (confidence, accuracy) and
    the counts panel its bin counts at the bin centres, empty bins left out; four plain axes
    (no twin axis carrying a second quantity)."""
    rng = np.random.default_rng(0)
    bins = bnn_digits.NUM_BINS
    methods = {}
    for name in ("MAP", "SGLD"):
        counts = rng.integers(0, 30, size=bins)
        counts[:3] = 0
        methods[name] = {"accuracy": 0.9, "nll": 0.3, "ece": 0.05, "bin_count": counts.tolist(),
                         "bin_confidence": rng.uniform(size=bins).tolist(), "bin_accuracy": rng.uniform(size=bins).tolist()}
    fig = bnn_digits.figure({"dataset": "sklearn-digits", "num_test": 450, "fast": False, "methods": methods})
    assert len(fig.axes) == 4
    by_title = {ax.get_title(): ax for ax in fig.axes}
    reliability = by_title["reliability diagram (test set)"].get_lines()[1:]  # after the diagonal
    counts_lines = by_title["bin counts of the reliability diagram"].get_lines()
    centres = (np.arange(bins) + 0.5) / bins
    for row, curve, count_line in zip(methods.values(), reliability, counts_lines):
        filled = np.array(row["bin_count"]) > 0
        np.testing.assert_allclose(curve.get_xdata(), np.array(row["bin_confidence"])[filled])
        np.testing.assert_allclose(curve.get_ydata(), np.array(row["bin_accuracy"])[filled])
        np.testing.assert_allclose(count_line.get_xdata(), centres[filled])
        np.testing.assert_allclose(count_line.get_ydata(), np.array(row["bin_count"])[filled])
    assert report.figure_problems(fig, fast=False) == []
