"""`jaxdl run cover --fast`: JSON content against Cover's formula."""

import json

import numpy as np

from jaxdl import experiments
from jaxdl.experiments import cover, report
from jaxdl.theory.capacity import cover_fraction


def test_cover_fast_run(tmp_path):
    results = experiments.run("cover", tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "cover.json").read_text())
    assert (tmp_path / "cover.png").stat().st_size > 0
    assert saved["transition_alpha_largest_n"] == results["transition_alpha_largest_n"]
    for curve in saved["curves"].values():
        n = curve["n"]
        assert curve["theory_fraction"] == [cover_fraction(s, n) for s in curve["s"]]
        measured = np.array(curve["measured_fraction"])
        # every s <= n is separable; far past 2n almost nothing is
        assert np.all(measured[np.array(curve["s"]) <= n] == 1.0)
        assert measured[-1] <= 0.1
        # the perceptron only ever finds separators that exist
        assert np.all(np.array(curve["perceptron_fraction"]) <= measured + 1e-12)
        assert curve["max_abs_error"] < 0.25  # 40 trials: 0.08 standard error at 1/2
    assert 1.6 < saved["transition_alpha_largest_n"] < 2.4
    assert saved["theory_transition_alpha"] == 2.0
    assert report.figure_problems(cover.figure(saved), fast=True) == []
    assert report.figure_problems(cover.figure({**saved, "fast": False}), fast=False) == []
