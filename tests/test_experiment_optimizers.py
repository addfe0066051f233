"""The optimizers experiment in fast mode: its JSON agrees with the theory it reports."""

import json
import math

import pytest

from jaxdl.experiments import optimizers, report


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("optimizers")
    optimizers.run(out_dir, fast=True, seed=0)
    assert (out_dir / "optimizers.png").stat().st_size > 0
    return json.loads((out_dir / "optimizers.json").read_text())


def test_quadratic_part_matches_the_theory(saved):
    quadratic = saved["quadratic"]
    measured = quadratic["measured"]
    assert measured["L_power_iteration"] == pytest.approx(optimizers.L, rel=1e-4)
    assert measured["condition_number_lanczos"] == pytest.approx(optimizers.L / optimizers.MU, rel=1e-3)
    assert measured["min_pl_ratio_along_gd"] >= optimizers.MU * (1 - 1e-4)
    assert measured["gd_below_pl_bound"] is True
    final = quadratic["final_gap"]
    assert set(final) >= {"gd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam", "muon",
                          "sgd_robbins_monro", "sgd_polyak_average", "gd_weight_decay", "ista_l1", "newton"}
    assert final["newton"] < 1e-6 * quadratic["gap0"]
    assert final["heavy_ball"] < final["gd"] and final["nesterov"] < final["gd"]
    gd, bound = quadratic["gaps"]["gd"], quadratic["pl_bound"]
    assert all(g <= b * (1 + 1e-5) + 1e-7 for g, b in zip(gd, bound))


def test_game_part(saved):
    final = saved["bilinear_game"]["final_norm"]
    assert final["gda"] > math.sqrt(2) > final["extragradient"]
    assert final["optimistic_gd"] < math.sqrt(2)


def test_mlp_part_reports_every_optimiser_and_the_measured_theory(saved):
    mlp = saved["digits_mlp"]
    assert tuple(mlp["runs"]) == optimizers.FAST_MLP_OPTIMIZERS  # the full run trains every optimiser
    assert set(optimizers.MLP_OPTIMIZERS) == {"sgd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam", "muon",
                                              "sgd_polyak_average", "sgd_weight_decay", "sgd_l1_prox"}
    for run in mlp["runs"].values():
        assert all(math.isfinite(v) for v in run["train_loss"])
        assert 0.0 <= run["test_accuracy"] <= 1.0
    for point in ("at_init", "after_adam"):
        theory = mlp["theory"][point]
        assert theory["L_hessian_top_eigenvalue"] > 0
        assert theory["top_hessian_eigenvalues_lanczos"][0] == pytest.approx(theory["L_hessian_top_eigenvalue"], rel=1e-2)
        assert 0 < theory["pl_ratio_min_loss_0"] < math.inf
        assert theory["sgd_gradient_variance"] > 0
    gd_run = mlp["theory"]["gd_run"]
    assert gd_run["step"] == [0, 5, 10]
    assert gd_run["sharpness"][0] == pytest.approx(mlp["theory"]["at_init"]["L_hessian_top_eigenvalue"], rel=1e-2)


def test_figure_is_labelled_with_distinct_colours_and_says_fast_mode(saved):
    """The quadratic panel has 13 lines: the default 10-colour cycle used to repeat."""
    fig = optimizers.figure(saved)
    assert len([line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]) == 13
    assert report.figure_problems(fig, fast=True) == []
    assert report.figure_problems(optimizers.figure({**saved, "fast": False}), fast=False) == []
