"""The robust-digits experiment: settings and units, the figure and summary drawn from a
small fake result, the pieces (training by each method, evaluation) at tiny sizes, and
the --fast run end to end behind the slow marker."""

import json

import jax
import numpy as np
import pytest

from jaxdl.experiments import report
from jaxdl.experiments import robust_digits as rd


def fake_results(fast: bool) -> dict:
    settings = rd.settings_for(fast, 0)
    rng = np.random.default_rng(0)
    curve = lambda n: sorted(rng.uniform(0, 1, n).tolist(), reverse=True)
    methods = {}
    for m in settings["methods"]:
        methods[m] = {"clean_accuracy": 0.95, "fgsm": curve(len(settings["eps"])), "pgd": curve(len(settings["eps"])),
                      "ibp_certified": curve(len(settings["eps"])), "deepfool_median_l2": 0.5, "deepfool_success": 0.9}
        if m in ("standard", "noise"):
            methods[m].update(smoothing_certified=curve(len(settings["radii"])), smoothing_abstain=0.1)
        if m in ("standard", "adversarial"):
            x = rng.uniform(0, 1, (4, 64))
            methods[m]["examples"] = {"eps": 0.1, "x": x.tolist(), "x_adv": np.clip(x + 0.1, 0, 1).tolist(),
                                      "y": [0, 1, 2, 3], "pred": [0, 1, 2, 3], "pred_adv": [5, 1, 8, 3]}
    ntk = {key.split("|")[1]: {"clean_accuracy": 0.9, "pgd": curve(len(settings["ntk_eps"]))}
           for key in rd.unit_keys(settings) if key.startswith("ntk|")}
    return {"fast": fast, "settings": settings, "num_train": 1347, "num_test": 450, "methods": methods, "ntk": ntk}


@pytest.mark.parametrize("fast", [True, False])
def test_settings_units_figure_and_summary(fast):
    settings = rd.settings_for(fast, 0)
    keys = rd.unit_keys(settings)
    assert len(keys) == len(set(keys)) == len(settings["methods"]) + 2 + len(settings["ntk_widths"])
    assert ("train|trades" in keys) is (not fast)
    assert settings["eps"][0] == 0.0 and settings["train_eps"] in settings["eps"]
    results = fake_results(fast)
    assert report.figure_problems(rd.figure(results), fast=fast) == []
    lines = rd.summary(results)
    assert any(line.startswith("standard: clean / PGD-20 / IBP-certified") for line in lines)
    assert any("NTK predictor" in line for line in lines)


@pytest.mark.slow  # about 100 s on two loaded cores (five compiled training loops)
def test_every_training_method_runs_and_is_evaluated_at_tiny_sizes():
    settings = dict(rd.settings_for(True, 0), hidden=[8], epochs=1, ibp_epochs=5, train_pgd_steps=1, pgd_steps=2,
                    eps=[0.0, 0.1], smoothing_n0=8, smoothing_n=16, smoothing_examples=8)
    _, x, y, x_test, y_test = rd.data(0)
    x, y, x_test, y_test = x[:128], y[:128], x_test[:32], y_test[:32]
    for method in ("standard", "trades", "ibp", "noise"):
        model, params, seconds = rd.train_method(method, settings, x, y, jax.random.key(0))
        out = rd.evaluate_method(model, params, settings, x_test, y_test, jax.random.key(1), with_smoothing=method == "noise")
        assert seconds > 0 and out["pgd"][0] == out["fgsm"][0] == out["clean_accuracy"]  # eps = 0 is clean
        assert out["ibp_certified"][0] == pytest.approx(out["clean_accuracy"])
        assert out["pgd"][1] <= out["clean_accuracy"] and out["ibp_certified"][1] <= out["pgd"][1]
        if method == "noise":
            assert len(out["smoothing_certified"]) == len(settings["radii"])


@pytest.mark.slow
def test_fast_run_writes_json_and_figure(tmp_path):
    results = rd.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "robust-digits.json").read_text())
    assert (tmp_path / "robust-digits.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits" and saved["interrupted"] is False
    methods = saved["methods"]
    i = saved["settings"]["eps"].index(saved["settings"]["train_eps"])
    assert methods["standard"]["clean_accuracy"] > 0.9
    assert methods["adversarial"]["pgd"][i] > methods["standard"]["pgd"][i] + 0.2
    assert methods["ibp"]["ibp_certified"][i] > methods["standard"]["ibp_certified"][i]
    for m in methods.values():  # certified <= robust <= clean at every eps
        assert all(c <= p + 1e-6 <= m["clean_accuracy"] + 2e-6 for c, p in zip(m["ibp_certified"], m["pgd"]))
    assert saved["ntk"]["infinite"]["clean_accuracy"] > 0.8
    assert report.figure_problems(rd.figure(saved), fast=True) == []
    assert results["methods"].keys() == methods.keys()
