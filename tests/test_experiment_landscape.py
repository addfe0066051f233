"""The landscape experiment: on tiny nets the trained Bézier curve between two independently
trained minima has a lower loss barrier than the straight line; a lottery-ticket round trip on a
tiny net; the figure and summary from a fake result; the fast run end to end behind the slow marker."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.data import load_digits
from jaxdl.experiments import landscape as land
from jaxdl.experiments import report


@pytest.fixture(scope="module")
def tiny_data():
    d = load_digits(seed=0, num_train=200)
    return tuple(jnp.asarray(a) for a in (d.x_train, d.y_train, d.x_test[:200], d.y_test[:200]))


def test_bezier_barrier_is_below_the_straight_line_barrier_on_tiny_nets(tiny_data):
    mc = land.mode_connectivity(jax.random.key(0), tiny_data, width=8, epochs=15, bezier_steps=200, path_points=11)
    assert mc["line_barrier"] > 0.05  # two independent minima of a width-8 net are not linearly connected
    assert mc["curve_barrier"] < 0.5 * mc["line_barrier"]
    # the end points are shared: the two paths agree at t = 0 and t = 1
    np.testing.assert_allclose([mc["line_train_loss"][0], mc["line_train_loss"][-1]],
                               [mc["curve_train_loss"][0], mc["curve_train_loss"][-1]], rtol=1e-5)


@pytest.mark.slow
def test_lottery_on_a_tiny_net_prunes_on_schedule(tiny_data):
    lt = land.lottery(jax.random.key(1), tiny_data, width=16, epochs=20, fraction=0.5, rounds=3, rewind_epochs=1)
    assert lt["sparsity"] == pytest.approx([0.0, 0.5, 0.75], abs=1e-3)
    assert len(lt["random_reinit_test_accuracy"]) == 3
    assert lt["random_reinit_test_accuracy"][0] == lt["ticket_test_accuracy"][0]
    assert min(lt["ticket_test_accuracy"]) > 0.6  # chance 0.1


def fake_results(fast=True):
    return {
        "dataset": "sklearn-digits", "model": "mlp((64,), 10)", "fast": fast,
        "sharpness": [{"batch_size": b, "learning_rate": lr, "sharpness": s, "test_accuracy": a}
                      for b, lr, s, a in ((16, 0.1, 2.0, 0.95), (16, 0.01, 5.0, 0.94), (250, 0.1, 8.0, 0.93),
                                          (250, 0.01, 20.0, 0.9))],
        "mode_connectivity": {"t": [0, 0.5, 1], "line_train_loss": [0.01, 1.0, 0.02],
                              "curve_train_loss": [0.01, 0.05, 0.02], "line_barrier": 0.985, "curve_barrier": 0.035},
        "lottery": {"sparsity": [0, 0.5, 0.75], "ticket_test_accuracy": [0.95, 0.95, 0.94],
                    "random_reinit_test_accuracy": [0.95, 0.93, 0.9]},
    }


def test_figure_and_summary_from_a_fake_result():
    for fast in (True, False):
        assert report.figure_problems(land.figure(fake_results(fast)), fast=fast) == []
    rows = land.summary(fake_results())
    assert rows["loss barrier line / Bezier"] == "0.985 / 0.035"
    assert rows["batch 16, lr 0.1"] == "lambda_max 2, test accuracy 0.950"


@pytest.mark.slow
def test_fast_run_writes_json_and_figure(tmp_path):
    results = land.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "landscape.json").read_text())
    assert (tmp_path / "landscape.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits" and saved["interrupted"] is False
    assert len(saved["sharpness"]) == 4 and all(r["test_accuracy"] > 0.8 for r in saved["sharpness"])
    mc = saved["mode_connectivity"]
    assert mc["curve_barrier"] < mc["line_barrier"]
    assert saved["lottery"]["sparsity"] == pytest.approx([1 - 0.5**r for r in range(5)], abs=1e-3)
    assert results["mode_connectivity"]["line_barrier"] == pytest.approx(mc["line_barrier"])
    assert report.figure_problems(land.figure(saved), fast=True) == []
