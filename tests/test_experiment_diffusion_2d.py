"""The diffusion-2d experiment: its closed-form score, MMD and figure checked cheaply; the fast run
end to end behind the slow marker."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.experiments import diffusion_2d as exp
from jaxdl.experiments import report


def _numpy_log_density(x, alpha_bar):
    total = 0.0
    for w, m, s in zip(exp.WEIGHTS, exp.MEANS, exp.COVS):
        c = alpha_bar * s + (1 - alpha_bar) * np.eye(2)
        d = x - math.sqrt(alpha_bar) * m
        total += w * math.exp(-0.5 * d @ np.linalg.solve(c, d)) / (2 * math.pi * math.sqrt(np.linalg.det(c)))
    return math.log(total)


def test_true_score_is_the_gradient_of_the_noised_mixture_density():
    x = np.array([[0.3, -0.7], [1.5, 0.2], [-2.2, 0.1]])
    h = 1e-5
    for alpha_bar in (0.999, 0.6, 0.01):
        got = np.asarray(exp.true_score(jnp.asarray(x, jnp.float32), alpha_bar))
        for i, xi in enumerate(x):
            fd = [(_numpy_log_density(xi + h * e, alpha_bar) - _numpy_log_density(xi - h * e, alpha_bar)) / (2 * h)
                  for e in np.eye(2)]
            np.testing.assert_allclose(got[i], fd, rtol=2e-3, atol=2e-3)


def test_mmd2_equals_the_brute_force_unbiased_estimate():
    x = np.asarray(jax.random.normal(jax.random.key(0), (7, 2)))
    y = np.asarray(jax.random.normal(jax.random.key(1), (5, 2))) + 1.0
    k = lambda a, b: sum(math.exp(-np.sum((a - b) ** 2) / (2 * h**2)) for h in exp.BANDWIDTHS)  # noqa: E731
    xx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / (7 * 6)
    yy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / 35
    np.testing.assert_allclose(exp.mmd2(x, y), xx + yy - 2 * xy, rtol=1e-4)
    data, labels = exp.sample_mixture(jax.random.key(2), 600)
    assert abs(exp.mmd2(data, exp.sample_mixture(jax.random.key(3), 600)[0])) < 0.01
    assert exp.mmd2(data, jax.random.normal(jax.random.key(4), (600, 2))) > 0.1
    np.testing.assert_allclose(np.bincount(np.asarray(labels), minlength=4) / 600, exp.WEIGHTS, atol=0.06)


def _fake_results(fast=True):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 2)).tolist()
    run = {
        "score_times": [1, 10, 100], "score_relative_error": [0.5, 0.1, 0.01],
        "mmd2": {"ddpm": 0.01, "ddim_eta0": 0.02, "ddim_eta0_unclipped": 0.02, "ddim_eta0_all_steps": 0.01,
                 "reference: second data sample": 0.0, "reference: N(0, I)": 0.3},
        "guided_mmd2_per_class": {"w=0": 0.1, "w=3": 0.2}, "guided_fraction_in_class": {"w=0": 0.9, "w=3": 0.99},
        "samples": {"data": pts, "ddpm": pts, "ddim_eta0": pts},
        "guided_samples": {"w=0": [pts[:5]] * 4, "w=3": [pts[:5]] * 4},
        "ddim_trajectories": rng.normal(size=(3, 21, 2)).tolist(),
    }
    return {"fast": fast, "settings": exp.settings_for(fast, 0), "best_schedule": "linear",
            "runs": {"linear": run, "cosine": run}}


@pytest.mark.parametrize("fast", [True, False])
def test_figure_and_summary_from_a_small_fake_result(fast):
    results = _fake_results(fast)
    assert report.figure_problems(exp.figure(results), fast=fast) == []
    lines = exp.summary(results)
    assert any("MMD²" in k for k in lines) and any("score error" in k for k in lines)


@pytest.mark.slow
def test_fast_run_learns_the_mixture(tmp_path):
    results = exp.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "diffusion-2d.json").read_text())
    assert (tmp_path / "diffusion-2d.png").stat().st_size > 0
    assert saved["dataset"] == exp.DATASET and saved["interrupted"] is False
    run = saved["runs"]["linear"]
    assert run["mmd2"]["ddpm"] == pytest.approx(results["runs"]["linear"]["mmd2"]["ddpm"])
    assert run["mmd2"]["ddpm"] < 0.03 < run["mmd2"]["reference: N(0, I)"]
    assert run["mmd2"]["ddim_eta0"] < 0.05
    errors = dict(zip(run["score_times"], run["score_relative_error"]))
    assert errors[10] < 0.5 and errors[100] < 0.05
    assert run["guided_fraction_in_class"]["w=3"] > 0.9
    assert report.figure_problems(exp.figure(saved), fast=True) == []
