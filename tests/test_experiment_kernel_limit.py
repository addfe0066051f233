"""The kernel-limit experiment: its pieces at tiny sizes, checked against closed forms, and the
fast run end to end (full run behind the slow marker)."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

from jaxdl import predict, stax
from jaxdl.experiments import kernel_limit as kl
from jaxdl.experiments import report, units
from jaxdl.kernels.empirical import empirical_ntk_fn


def test_problem_inputs_lie_on_the_sphere_and_targets_are_centred_one_hot():
    problem = kl.load_problem(num_train=40, num_test=30, seed=1)
    assert problem.name == "sklearn-digits"
    assert problem.x_train.shape == (40, 64) and problem.x_test.shape == (30, 64)
    np.testing.assert_allclose(np.linalg.norm(problem.x_train, axis=1), 8.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(problem.x_test, axis=1), 8.0, rtol=1e-5)
    np.testing.assert_allclose(np.sum(problem.y_train, axis=1), 0.0, atol=1e-6)
    np.testing.assert_array_equal(np.argmax(problem.y_train, axis=1), problem.labels_train)
    with pytest.raises(ValueError, match="load_problem: expected 1 <= num_train"):
        kl.load_problem(num_train=0, num_test=30)


def test_loglog_slope_recovers_a_power_law_and_relative_change_is_the_frobenius_ratio():
    widths = np.array([16, 64, 256, 1024])
    slope, intercept = kl.loglog_slope(widths, 3.0 * widths**-0.5)
    assert slope == pytest.approx(-0.5, abs=1e-9)
    assert intercept == pytest.approx(np.log(3.0), abs=1e-9)
    a = np.arange(6.0).reshape(2, 3)
    b = a + np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    assert kl.relative_change(jnp.asarray(a), jnp.asarray(b)) == pytest.approx(np.sqrt(5.0) / np.sqrt(55.0))


def test_slope_interval_covers_the_true_slope_and_narrows_with_more_seeds():
    """Monte Carlo coverage: lognormal noise around ``3 w^-0.75`` (the mean of a lognormal is a
    constant multiple of its median, so the slope of the seed means is -0.75 in expectation)."""
    widths = np.array([64, 128, 256, 512, 1024, 2048, 4096])
    rng = np.random.default_rng(0)

    def intervals(num_seeds, repeats=200):
        noise = rng.lognormal(0.0, 0.3, (repeats, len(widths), num_seeds))
        return np.array([kl.loglog_slope_interval(widths, 3.0 * widths[:, None] ** -0.75 * n, num_resamples=500,
                                                  seed=i) for i, n in enumerate(noise)])  # fmt: skip

    few, many = intervals(8), intervals(32)
    for bounds in (few, many):
        assert 0.85 <= np.mean((bounds[:, 0] < -0.75) & (-0.75 < bounds[:, 1])) <= 1.0
    width_ratio = np.mean(many[:, 1] - many[:, 0]) / np.mean(few[:, 1] - few[:, 0])
    assert 0.4 < width_ratio < 0.6  # ~ sqrt(8 / 32)
    with pytest.raises(ValueError, match=r"loglog_slope_interval: expected values_per_seed of shape"):
        kl.loglog_slope_interval(widths, np.ones((len(widths), 1)))
    with pytest.raises(ValueError, match="loglog_slope_interval: expected 0 < level < 1"):
        kl.loglog_slope_interval(widths, np.ones((len(widths), 3)), level=95)


def test_centred_model_starts_at_zero_and_its_ntk_is_the_logit_averaged_jacobian_product():
    init_fn, apply_fn, _ = kl.mlp(width=8, depth=2, num_classes=3)
    _, params_0 = init_fn(jax.random.key(0), (-1, 5))
    x = jax.random.normal(jax.random.key(1), (4, 5))
    model = kl.centred(apply_fn, params_0)
    np.testing.assert_array_equal(model(params_0, x), 0.0)
    # brute force: the full Jacobian of all outputs w.r.t. the flattened parameters
    flat, unravel = ravel_pytree(params_0)
    jacobian = jax.jit(jax.jacobian(lambda p: model(unravel(p), x)))(flat)  # f[4, 3, P]
    expected = jnp.einsum("ncp,mcp->nm", jacobian, jacobian) / 3
    ntk = jax.jit(empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0))(x, None, params_0)
    np.testing.assert_allclose(ntk, expected, rtol=1e-4, atol=1e-5)


def test_frozen_gates_is_the_network_itself_with_its_own_gates_and_a_gated_linear_net_otherwise():
    layers = kl.mlp_layers(width=6, depth=1, num_classes=2, W_std=1.3, b_std=0.2)
    init_fn, apply_fn, _ = kl.mlp(width=6, depth=1, num_classes=2, W_std=1.3, b_std=0.2)
    _, params = init_fn(jax.random.key(0), (-1, 4))
    _, gate_params = init_fn(jax.random.key(1), (-1, 4))
    x = jax.random.normal(jax.random.key(2), (5, 4))
    gated = kl.frozen_gates(layers)
    np.testing.assert_array_equal(gated(params, x, params), apply_fn(params, x))

    # numpy, NTK parameterisation: z = W_std x W / sqrt(fan_in) + b_std b; relu(z) -> z * 1[z_gate > 0]
    def affine(p, h):
        return 1.3 * np.asarray(h) @ np.asarray(p["W"]) / np.sqrt(h.shape[1]) + 0.2 * np.asarray(p["b"])

    z, z_gate = affine(params["Dense_0"], x), affine(gate_params["Dense_0"], x)
    expected = affine(params["Dense_2"], z * (z_gate > 0))
    np.testing.assert_allclose(gated(params, x, gate_params), expected, rtol=1e-5, atol=1e-6)
    assert np.any((z > 0) != (z_gate > 0))  # the two gate patterns differ, so the check has teeth

    # its NTK: at theta_0 with gates_0 it is K_0; elsewhere it differs from the network's own
    ntk_fn = empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0)
    gated_ntk_fn = empirical_ntk_fn(gated, trace_axes=(-1,), vmap_axes=0)
    np.testing.assert_allclose(gated_ntk_fn(x, None, params, gate_params=params), ntk_fn(x, None, params), rtol=1e-6)
    assert kl.relative_change(ntk_fn(x, None, params), gated_ntk_fn(x, None, params, gate_params=gate_params)) > 0.01
    with pytest.raises(ValueError, match="frozen_gates: expected Dense and Relu layers"):
        kl.frozen_gates([stax.Dense(3), stax.Tanh()])
    with pytest.raises(ValueError, match="frozen_gates: expected parameters named"):
        gated({"Dense_0": params["Dense_0"]}, x, params)


def test_gradient_descent_follows_the_closed_form_with_the_predict_time_convention():
    """A linear model has a constant NTK ``x x^T``: gradient descent is the exact recursion
    ``f <- f - eta K (f - y) / |Y|`` and, for a small step, the gradient flow of
    ``jaxdl.predict`` at ``t = num_steps`` (learning rate given to the predictor)."""
    problem = kl.load_problem(num_train=24, num_test=10)
    x, y = problem.x_train, problem.y_train

    def linear(params, inputs):
        return inputs @ params["W"]

    params_0 = {"W": jnp.zeros((64, 10))}
    k_train = np.asarray(x @ x.T, np.float64)
    learning_rate = 0.05 * float(predict.max_learning_rate(jnp.asarray(k_train), y.size))
    num_steps = 200
    fit = kl.train_gd(linear, params_0, x, y, learning_rate, num_steps, jax.random.key(0))
    f = np.zeros(y.shape)
    for _ in range(num_steps):
        f = f - learning_rate * k_train @ (f - np.asarray(y)) / y.size
    trained = linear(fit.state.params, x)
    np.testing.assert_allclose(trained, f, atol=2e-4)
    flow = y - scipy.linalg.expm(-learning_rate * num_steps * k_train / y.size) @ np.asarray(y)
    predicted = predict.gradient_descent_mse(jnp.asarray(k_train, jnp.float32), y,
                                             learning_rate=learning_rate)(num_steps, 0.0)
    np.testing.assert_allclose(predicted, flow, atol=1e-4)
    np.testing.assert_allclose(trained, flow, atol=0.02 * np.abs(flow).max())


def test_kernel_predictions_are_the_closed_form_ntk_flow_and_nngp_posterior():
    problem = kl.load_problem(num_train=16, num_test=8)
    _, _, kernel_fn = kl.mlp(1, depth=1, num_classes=10)
    learning_rate, num_steps, diag_reg = 3.0, 40, 1e-3
    kernels = kl.kernel_predictions(kernel_fn, problem, learning_rate, num_steps, diag_reg=diag_reg)
    k = kernel_fn(problem.x_train, None, ("nngp", "ntk"))
    k_test = kernel_fn(problem.x_test, problem.x_train, ("nngp", "ntk"))
    y = np.asarray(problem.y_train, np.float64)
    ntk, nngp = np.asarray(k.ntk, np.float64), np.asarray(k.nngp, np.float64)
    decay = np.eye(16) - scipy.linalg.expm(-learning_rate * num_steps * ntk / y.size)
    expected_ntk = np.asarray(k_test.ntk) @ np.linalg.solve(ntk, decay @ y)
    np.testing.assert_allclose(kernels.ntk, expected_ntk, rtol=1e-3, atol=1e-4)

    def regularised(kernel):
        return kernel + diag_reg * np.trace(kernel) / 16 * np.eye(16)

    np.testing.assert_allclose(kernels.nngp, np.asarray(k_test.nngp) @ np.linalg.solve(regularised(nngp), y),
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(kernels.ntk_inf, np.asarray(k_test.ntk) @ np.linalg.solve(regularised(ntk), y),
                               rtol=1e-3, atol=1e-4)


def check_results(out_dir, results):
    saved = json.loads((out_dir / "kernel-limit.json").read_text())
    assert (out_dir / "kernel-limit.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits"
    widths = saved["widths"]
    assert len(widths) >= 4 and widths == sorted(widths)
    for name in ("ntk_drift", "ntk_drift_smooth", "ntk_drift_flips", "ntk_init_deviation", "prediction_gap",
                 "test_accuracy", "train_loss"):
        assert len(saved[name]) == len(widths), name
        assert np.all(np.isfinite(saved[name])), name
    for name in ("ntk_drift", "ntk_drift_smooth", "ntk_drift_flips", "ntk_init_deviation", "prediction_gap",
                 "test_accuracy"):
        assert np.shape(saved[f"{name}_per_seed"]) == (len(widths), saved["num_seeds"]), name
        np.testing.assert_allclose(np.mean(saved[f"{name}_per_seed"], axis=1), saved[name])
    for name in ("ntk_test_accuracy", "ntk_inf_test_accuracy", "nngp_test_accuracy"):
        assert 0.7 < saved[name] <= 1.0, name
    assert saved["drift_slope"] == pytest.approx(results["drift_slope"])
    for fit in ("drift", "drift_smooth", "drift_flips", "init_deviation", "gap"):
        low, high = saved[f"{fit}_slope_interval"]
        assert low < high, fit
    assert saved["training_time"] == pytest.approx(saved["learning_rate"] * saved["num_steps"])
    # the kernel limit: the drift falls with width on this fixed seed, the trained nets approach the
    # NTK prediction, and the empirical NTK at initialisation approaches the analytic one
    assert np.all(np.diff(saved["ntk_drift"]) < 0)
    assert -1.3 < saved["drift_slope"] < -0.3
    # the two parts of the drift: the triangle inequality ties them to the total
    total, smooth, flips = (np.asarray(saved[name]) for name in ("ntk_drift", "ntk_drift_smooth", "ntk_drift_flips"))
    assert np.all(total <= smooth + flips + 1e-7) and np.all(smooth <= total + flips + 1e-7)
    assert -1.4 < saved["drift_smooth_slope"] < -0.5 and -1.2 < saved["drift_flips_slope"] < -0.3
    assert saved["gap_ratio_largest_to_smallest"] < 0.6
    assert -0.8 < saved["init_deviation_slope"] < -0.3


def test_a_single_seed_has_slopes_but_no_intervals():
    config = kl.Config(num_train=16, num_test=20, widths=(16, 32), num_seeds=1, depth=1, num_steps=3)
    results = kl.study(config)
    assert np.shape(results["ntk_drift_per_seed"]) == (2, 1)
    assert np.isfinite(results["drift_slope"]) and results["drift_slope_interval"] is None
    assert report.figure_problems(kl.figure(results), fast=False) == []


def test_fast_run_interrupted_and_resumed_writes_json_and_figure(tmp_path, monkeypatch):
    """Ctrl-C (a real SIGINT, from the test hook) after 3 of the 8 networks keeps them in the JSON;
    the resumed run reuses them and computes the other 5."""
    monkeypatch.setenv(units.INTERRUPT_AFTER_ENV, "3")
    with pytest.raises(units.Interrupted, match="kernel-limit interrupted after 3 of 8 units"):
        kl.run(tmp_path, fast=True, seed=0)
    partial = json.loads((tmp_path / "kernel-limit.json").read_text())
    assert partial["interrupted"] is True and partial["settings"]["config"]["widths"] == list(kl.FAST.widths)
    assert list(partial["completed_units"]) == ["width=32,seed=0", "width=32,seed=1", "width=64,seed=0"]
    assert set(partial["completed_units"]["width=32,seed=0"]) == set(kl.MEASUREMENTS)
    monkeypatch.delenv(units.INTERRUPT_AFTER_ENV)

    results = kl.run(tmp_path, fast=True, seed=0, resume=True)
    check_results(tmp_path, results)
    assert results["fast"] is True and results["interrupted"] is False
    for (key, unit), (width_index, seed_index) in zip(partial["completed_units"].items(), [(0, 0), (0, 1), (1, 0)]):
        for name in kl.MEASUREMENTS[:-1]:  # train_loss is reported as a mean over seeds only
            assert results[f"{name}_per_seed"][width_index][seed_index] == unit[name], (key, name)
    saved = json.loads((tmp_path / "kernel-limit.json").read_text())
    assert report.figure_problems(kl.figure(saved), fast=True) == []
    assert report.figure_problems(kl.figure({**saved, "fast": False}), fast=False) == []


def test_the_documented_full_run_figure_states_the_measured_decomposition():
    """docs/kernel-limit.json: panel 2 gives the measured slopes of the parts (not -1 and -3/4)."""
    saved = json.loads((Path(__file__).resolve().parents[1] / "docs" / "kernel-limit.json").read_text())
    fig = kl.figure(saved)
    assert report.figure_problems(fig, fast=False) == []
    title = fig.axes[1].get_title()
    assert f"{saved['drift_smooth_slope']:.2f} and {saved['drift_flips_slope']:.2f}" in title
    assert "-3/4" not in title and "1/m" not in title and "do not add" in title


@pytest.mark.slow
def test_full_run_meets_the_kernel_limit_targets(tmp_path):
    results = kl.run(tmp_path, fast=False, seed=0)
    check_results(tmp_path, results)
    assert len(results["widths"]) >= 5
    assert results["gap_ratio_largest_to_smallest"] < 0.5
    # sign flips ~ m^-3/4 (0.70 measured), the smooth part tends to 1/m (0.91 measured) and is steeper
    assert -0.85 < results["drift_flips_slope"] < -0.6
    assert results["drift_smooth_slope"] < results["drift_flips_slope"] - 0.1
