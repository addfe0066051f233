"""`jaxdl run linear-regions --fast`: JSON content against the region bounds."""

import json

from jaxdl import experiments
from jaxdl.experiments import linear_regions, report
from jaxdl.theory.regions import montufar_bound, zaslavsky_bound


def test_linear_regions_fast_run(tmp_path):
    results = experiments.run("linear-regions", tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "linear-regions.json").read_text())
    assert (tmp_path / "linear-regions.png").stat().st_size > 0
    assert saved["rows"] == json.loads(json.dumps(results["rows"]))
    for row in saved["rows"]:
        assert row["zaslavsky_bound"] == zaslavsky_bound(row["width"], 2)
        assert row["montufar_bound"] == montufar_bound(row["width"], 2, row["depth"])
        assert all(1 <= count <= row["layerwise_upper_bound"] for count in row["counts"])
        if row["depth"] == 1:
            assert all(abs(c - e) <= 2 for c, e in zip(row["counts"], row["exact_counts_in_box"]))
    assert saved["all_below_layerwise_bound"] and saved["one_layer_all_below_zaslavsky"]
    for built in saved["montufar_construction"]:
        assert built["count"] == built["montufar_bound"]
    assert report.figure_problems(linear_regions.figure(saved), fast=True) == []
    assert report.figure_problems(linear_regions.figure({**saved, "fast": False}), fast=False) == []
    # the region map used to draw a fresh random network (134 regions) under a title that read like
    # the counted one (79): it now redraws network 1 of the largest cell from its key
    largest = max(saved["rows"], key=lambda row: (row["depth"], row["width"]))
    title = linear_regions.figure(saved).axes[1].get_title()
    assert f"m={largest['width']}, L={largest['depth']}: {largest['counts'][0]} regions" in title

