"""jaxdl.theory.landscape against closed forms and brute force: paths and barriers on explicit
functions, a Bézier curve that goes round a hill the straight line crosses, sharpness and the
random-perturbation flatness of a quadratic, and magnitude pruning against sorting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.theory import landscape as ls


def ring_loss(params):
    """(|theta|^2 - 1)^2: a circle of minima; the straight line from (-1, 0) to (1, 0) crosses a hill of height 1."""
    theta = params["theta"]
    return (jnp.sum(theta**2) - 1.0) ** 2


A = {"theta": jnp.array([-1.0, 0.0])}
B = {"theta": jnp.array([1.0, 0.0])}


def test_paths_have_the_right_end_points_and_midpoints():
    c = {"theta": jnp.array([0.0, 2.0])}
    np.testing.assert_allclose(ls.interpolate(A, B, 0.25)["theta"], [-0.5, 0.0])
    np.testing.assert_allclose(ls.bezier_curve(A, c, B, 0.0)["theta"], A["theta"])
    np.testing.assert_allclose(ls.bezier_curve(A, c, B, 1.0)["theta"], B["theta"])
    np.testing.assert_allclose(ls.bezier_curve(A, c, B, 0.5)["theta"], (A["theta"] + 2 * c["theta"] + B["theta"]) / 4)


def test_straight_line_barrier_on_the_ring_is_one():
    ts = np.linspace(0, 1, 21)
    losses = ls.loss_along_path(ring_loss, lambda t: ls.interpolate(A, B, t), ts)
    np.testing.assert_allclose(losses, [((2 * t - 1) ** 2 - 1) ** 2 for t in ts], atol=1e-6)
    assert ls.loss_barrier(ts, losses) == pytest.approx(1.0, abs=1e-6)
    # the barrier is measured against the chord between unequal end losses
    assert ls.loss_barrier([0, 0.5, 1], [1.0, 3.0, 2.0]) == pytest.approx(1.5)
    assert ls.loss_barrier([0, 0.5, 1], [1.0, 1.0, 2.0]) == 0.0


def test_a_trained_bezier_curve_goes_round_the_hill():
    """End points not quite opposite (so the midpoint start is not a symmetric saddle): the line
    passes 0.14 from the centre (barrier ~0.96), the trained curve bends round the circle."""
    b = {"theta": jnp.array([0.96, 0.28])}
    fit = ls.fit_bezier(ring_loss, A, b, key=jax.random.key(0), num_steps=300, learning_rate=0.05, num_t=8)
    ts = np.linspace(0, 1, 41)
    curve = ls.loss_along_path(ring_loss, lambda t: ls.bezier_curve(A, fit.control, b, t), ts)
    line = ls.loss_along_path(ring_loss, lambda t: ls.interpolate(A, b, t), ts)
    assert ls.loss_barrier(ts, line) > 0.9
    assert ls.loss_barrier(ts, curve) < 0.25 * ls.loss_barrier(ts, line)
    assert float(fit.control["theta"][1]) > 0.5  # the control point left the line, on the short side
    assert fit.loss_history[-1] < fit.loss_history[0]


def test_sharpness_and_perturbation_flatness_of_a_quadratic():
    """L = 1/2 theta^T A theta: lambda_max = largest eigenvalue of A; E[L(r u)] = r^2 tr(A) / (2P) exactly."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    eigenvalues = np.array([5.0, 2.0, 1.0, 0.5, 0.3, 0.1])
    a = jnp.asarray(q @ np.diag(eigenvalues) @ q.T, jnp.float32)
    loss = lambda p: 0.5 * p["w"] @ a @ p["w"]
    params = {"w": jnp.zeros(6)}
    assert ls.sharpness(loss, params, key=jax.random.key(0), num_iterations=100) == pytest.approx(5.0, rel=1e-3)
    increase = ls.perturbed_loss_increase(loss, params, 0.1, key=jax.random.key(1), num_samples=4000)
    assert increase == pytest.approx(0.1**2 * eigenvalues.sum() / (2 * 6), rel=0.05)


def test_magnitude_prune_matches_sorting():
    rng = np.random.default_rng(1)
    params = {"w1": jnp.asarray(rng.standard_normal((5, 8))), "b": jnp.asarray(rng.standard_normal(8)),
              "w2": jnp.asarray(rng.standard_normal((8, 3)))}
    masks = ls.magnitude_prune(params, 0.25)
    assert np.all(np.asarray(masks["b"]) == 1)  # biases are not pruned
    for name in ("w1", "w2"):
        w, m = np.abs(np.asarray(params[name])).ravel(), np.asarray(masks[name]).ravel()
        count = round(0.25 * w.size)
        assert (m == 0).sum() == count
        np.testing.assert_array_equal(np.sort(np.flatnonzero(m == 0)), np.sort(np.argsort(w)[:count]))
    # a second round prunes a quarter of the survivors only, nested in the first mask
    again = ls.magnitude_prune(params, 0.25, masks)
    for name in ("w1", "w2"):
        assert np.all(np.asarray(again[name]) <= np.asarray(masks[name]))
    assert ls.sparsity(again) == pytest.approx(
        (10 + round(0.25 * 30) + 6 + round(0.25 * 18)) / 64)
    # global scope: the smallest 25 % of all prunable weights together
    glob = ls.magnitude_prune(params, 0.25, scope="global")
    every = np.concatenate([np.abs(np.asarray(params[k])).ravel() for k in ("w1", "w2")])
    threshold = np.sort(every)[round(0.25 * every.size) - 1]
    for name in ("w1", "w2"):
        pruned = np.asarray(glob[name]) == 0
        assert np.all(np.abs(np.asarray(params[name]))[pruned] <= threshold)
        assert np.all(np.abs(np.asarray(params[name]))[~pruned] > threshold)
    np.testing.assert_array_equal(np.asarray(ls.apply_mask(params, masks)["w1"]) == 0, np.asarray(masks["w1"]) == 0)


def test_iterative_magnitude_pruning_rewinds_and_follows_the_schedule():
    rng = np.random.default_rng(2)
    rewind = {"w": jnp.asarray(rng.standard_normal((10, 10))), "b": jnp.zeros(10)}
    target = {"w": jnp.asarray(rng.standard_normal((10, 10))), "b": jnp.ones(10)}
    seen = []

    def train_fn(params, masks):  # "training" lands on target (masked); record what it started from
        seen.append(params)
        return ls.apply_mask(target, masks), {"accuracy": float(jnp.sum(masks["w"]))}

    rounds = ls.iterative_magnitude_pruning(train_fn, rewind, num_rounds=4, fraction=0.5)
    assert [r.sparsity for r in rounds] == pytest.approx([0.0, 0.5, 0.75, 0.87])  # 100 -> 50 -> 25 -> 13 weights (round(12.5) = 12 pruned)
    assert ls.sparsity_schedule(0.5, 4) == pytest.approx([0.0, 0.5, 0.75, 0.875])
    for r, start in zip(rounds, seen):
        m = np.asarray(r.masks["w"])
        np.testing.assert_array_equal(np.asarray(start["w"]), np.asarray(rewind["w"]) * m)  # rewound survivors
        np.testing.assert_array_equal(np.asarray(r.params["w"]), np.asarray(target["w"]) * m)
        assert r.metrics["accuracy"] == m.sum()
    # the survivors of the last round are the 13 largest |target| weights (pruning nests)
    keep = np.asarray(rounds[-1].masks["w"]).ravel() == 1
    assert set(np.flatnonzero(keep)) == set(np.argsort(np.abs(np.asarray(target["w"])).ravel())[-13:])


def test_bad_inputs_raise_with_the_function_name():
    with pytest.raises(ValueError, match="^interpolate: expected params_a and params_b with the same structure"):
        ls.interpolate({"a": 1.0}, {"b": 1.0}, 0.5)
    with pytest.raises(ValueError, match="^bezier_curve: expected params_a and control with the same leaf shapes"):
        ls.bezier_curve(A, {"theta": jnp.zeros(3)}, B, 0.5)
    with pytest.raises(ValueError, match="^loss_barrier: expected ts increasing from 0 to 1"):
        ls.loss_barrier([0.0, 0.7, 0.5, 1.0], [0, 1, 1, 0])
    with pytest.raises(ValueError, match="^loss_barrier: expected finite losses"):
        ls.loss_barrier([0.0, 1.0], [0.0, np.nan])
    with pytest.raises(ValueError, match="^magnitude_prune: expected fraction in"):
        ls.magnitude_prune(A, 1.0)
    with pytest.raises(ValueError, match="^magnitude_prune: expected scope"):
        ls.magnitude_prune(A, 0.5, scope="row")
    with pytest.raises(ValueError, match="^fit_bezier: expected num_steps"):
        ls.fit_bezier(ring_loss, A, B, key=jax.random.key(0), num_steps=0)
    with pytest.raises(TypeError, match="^fit_bezier: expected a callable loss_fn"):
        ls.fit_bezier(None, A, B, key=jax.random.key(0))
    with pytest.raises(ValueError, match="^perturbed_loss_increase: expected radius > 0"):
        ls.perturbed_loss_increase(ring_loss, A, 0.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="^iterative_magnitude_pruning: expected num_rounds"):
        ls.iterative_magnitude_pruning(lambda p, m: (p, {}), A, num_rounds=0)
    with pytest.raises(ValueError, match="^sparsity: no prunable leaves"):
        ls.sparsity({"b": jnp.ones(3)})
