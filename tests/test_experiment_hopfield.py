"""`jaxdl run hopfield-capacity --fast`: JSON content against the capacity theory."""

import json

import numpy as np

from jaxdl import experiments
from jaxdl.experiments import hopfield_capacity, report
from jaxdl.theory.capacity import hopfield_bit_error_probability


def test_hopfield_capacity_fast_run(tmp_path):
    results = experiments.run("hopfield-capacity", tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "hopfield-capacity.json").read_text())
    assert (tmp_path / "hopfield-capacity.png").stat().st_size > 0
    assert saved["breakdown_ratio"] == results["breakdown_ratio"]
    rows = saved["rows"]
    n = saved["neurons"]
    assert [r["predicted_unstable_bit_fraction"] for r in rows] == [
        hopfield_bit_error_probability(r["patterns"], n) for r in rows
    ]
    overlaps = np.array([r["mean_overlap_exact_start"] for r in rows])
    assert overlaps[0] == 1.0  # a light load recalls perfectly
    assert overlaps[-1] < 0.7  # alpha = 0.3 is far past capacity
    # measured instability follows the Gaussian cross-talk estimate once it is measurable
    heavy = [r for r in rows if r["alpha"] >= 0.14]
    for r in heavy:
        predicted = r["predicted_unstable_bit_fraction"]
        assert abs(r["unstable_bit_fraction"] - predicted) < 0.5 * predicted
    assert 0.1 < saved["breakdown_ratio"] < 0.25  # alpha_c = 0.138, smeared at n = 200
    assert report.figure_problems(hopfield_capacity.figure(saved), fast=True) == []
    assert report.figure_problems(hopfield_capacity.figure({**saved, "fast": False}), fast=False) == []
