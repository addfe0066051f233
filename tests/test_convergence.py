"""jaxdl.theory.convergence against explicit Hessians (numpy eigvalsh) and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxdl.theory import convergence as cv

RNG = np.random.default_rng(1)
X_LS = RNG.normal(size=(40, 5)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2])
Y_LS = RNG.normal(size=40)


def mlp_problem(dtype):
    """A tiny tanh MLP with MSE loss on random data; params: a nested dict pytree."""
    keys = jax.random.split(jax.random.key(0), 4)
    params = {
        "hidden": {"W": jax.random.normal(keys[0], (3, 5), dtype), "b": jnp.zeros(5, dtype)},
        "out": {"W": jax.random.normal(keys[1], (5, 2), dtype) / 2, "b": jnp.zeros(2, dtype)},
    }
    x = jax.random.normal(keys[2], (16, 3), dtype)
    y = jax.random.normal(keys[3], (16, 2), dtype)

    def loss_fn(p):
        h = jnp.tanh(x @ p["hidden"]["W"] + p["hidden"]["b"])
        return 0.5 * jnp.mean(jnp.sum((h @ p["out"]["W"] + p["out"]["b"] - y) ** 2, axis=1))

    return loss_fn, params


def explicit_eigenvalues(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda v: loss_fn(unravel(v))))(flat)
    return np.linalg.eigvalsh(np.asarray(hessian, np.float64))


def least_squares(theta):
    return 0.5 * jnp.mean((jnp.asarray(X_LS, theta.dtype) @ theta - jnp.asarray(Y_LS, theta.dtype)) ** 2)


def test_hessian_top_eigenvalue_matches_eigvalsh_on_an_mlp():
    with jax.enable_x64(True):
        loss_fn, params = mlp_problem(jnp.float64)
        exact = explicit_eigenvalues(loss_fn, params)
        top = exact[np.argmax(np.abs(exact))]
        estimate = cv.hessian_top_eigenvalue(loss_fn, params, key=jax.random.key(3), num_iterations=500)
        np.testing.assert_allclose(estimate, top, rtol=1e-6)
    loss_fn, params = mlp_problem(jnp.float32)  # different random draws than in float64
    exact = explicit_eigenvalues(loss_fn, params)
    top = exact[np.argmax(np.abs(exact))]
    estimate = jax.jit(lambda p: cv.hessian_top_eigenvalue(loss_fn, p, key=jax.random.PRNGKey(3), num_iterations=500))(params)
    np.testing.assert_allclose(estimate, top, rtol=1e-3)


def test_hessian_eigenvalues_lanczos_matches_eigvalsh():
    with jax.enable_x64(True):
        loss_fn, params = mlp_problem(jnp.float64)
        exact = explicit_eigenvalues(loss_fn, params)
        n = exact.size
        key = jax.random.key(4)
        full = cv.hessian_eigenvalues(loss_fn, params, n, key=key, num_iterations=n)
        np.testing.assert_allclose(full, exact[::-1], atol=1e-8)
        top = cv.hessian_eigenvalues(loss_fn, params, 2, key=key, num_iterations=n - 10)
        np.testing.assert_allclose(top, exact[::-1][:2], rtol=1e-6)
        bottom = cv.hessian_eigenvalues(loss_fn, params, 3, key=key, num_iterations=n, which="smallest")
        np.testing.assert_allclose(bottom, exact[:3], atol=1e-8)
    loss_fn, params = mlp_problem(jnp.float32)
    exact = explicit_eigenvalues(loss_fn, params)
    top = cv.hessian_eigenvalues(loss_fn, params, 3, key=jax.random.PRNGKey(5))
    np.testing.assert_allclose(top, exact[::-1][:3], rtol=1e-3, atol=1e-4)


def test_lanczos_survives_breakdown_on_a_low_rank_hessian():
    """½‖Mθ‖² with M of rank 2 in 6 dimensions: the Krylov space is 2-dimensional."""
    m = RNG.normal(size=(2, 6))
    exact = np.linalg.eigvalsh(m.T @ m)
    with jax.enable_x64(True):
        loss_fn = lambda theta: 0.5 * jnp.sum((jnp.asarray(m) @ theta) ** 2)
        ritz = cv.hessian_eigenvalues(loss_fn, jnp.ones(6), 6, key=jax.random.key(0), num_iterations=6)
    assert np.all(np.isfinite(ritz))
    np.testing.assert_allclose(ritz, exact[::-1], atol=1e-9)


def test_condition_number_matches_numpy():
    h = X_LS.T @ X_LS / len(X_LS)
    with jax.enable_x64(True):
        kappa = cv.condition_number(least_squares, jnp.zeros(5), key=jax.random.key(0))
    np.testing.assert_allclose(kappa, np.linalg.cond(h), rtol=1e-8)


def test_pl_ratio_closed_form_and_pl_constant_of_least_squares():
    h = X_LS.T @ X_LS / len(X_LS)
    theta_star = np.linalg.lstsq(X_LS, Y_LS, rcond=None)[0]
    min_loss = 0.5 * np.mean((X_LS @ theta_star - Y_LS) ** 2)
    mu = np.linalg.eigvalsh(h)[0]
    with jax.enable_x64(True):
        for theta in RNG.normal(size=(5, 5)):
            gradient = X_LS.T @ (X_LS @ theta - Y_LS) / len(X_LS)
            gap = 0.5 * np.mean((X_LS @ theta - Y_LS) ** 2) - min_loss
            ratio = cv.pl_ratio(least_squares, jnp.asarray(theta), min_loss)
            np.testing.assert_allclose(ratio, 0.5 * gradient @ gradient / gap, rtol=1e-8)
            assert ratio >= mu * (1 - 1e-9)
        at_minimum = float(least_squares(jnp.asarray(theta_star)))
        assert cv.pl_ratio(least_squares, jnp.asarray(theta_star), at_minimum) == np.inf
        with pytest.raises(ValueError, match="pl_ratio.*min_loss"):
            cv.pl_ratio(least_squares, jnp.asarray(theta_star), min_loss + 1.0)


def test_pl_bound_holds_for_gradient_descent_on_least_squares():
    eigenvalues = np.linalg.eigvalsh(X_LS.T @ X_LS / len(X_LS))
    mu = eigenvalues[0]
    theta_star = np.linalg.lstsq(X_LS, Y_LS, rcond=None)[0]
    min_loss = 0.5 * np.mean((X_LS @ theta_star - Y_LS) ** 2)
    with jax.enable_x64(True):
        theta = jnp.asarray(RNG.normal(size=5) * 3)
        L = float(cv.hessian_top_eigenvalue(least_squares, theta, key=jax.random.key(0), num_iterations=300))
        np.testing.assert_allclose(L, eigenvalues[-1], rtol=1e-8)
        steps = 200
        gaps, gradient_norms = [], []
        for _ in range(steps + 1):
            loss, gradient = jax.value_and_grad(least_squares)(theta)
            gaps.append(float(loss) - min_loss)
            gradient_norms.append(float(jnp.linalg.norm(gradient)))
            theta = theta - gradient / L
        bound = cv.gd_convergence_bound(L, mu, gaps[0], jnp.arange(steps + 1))
    assert np.all(np.asarray(gaps) <= np.asarray(bound) * (1 + 1e-9) + 1e-14)
    assert gaps[-1] < 1e-3 * gaps[0]  # the bound is not vacuous here
    eps = 0.05
    first_critical = next(t for t, g in enumerate(gradient_norms) if g <= eps)
    assert first_critical <= cv.steps_to_eps_critical(L, gaps[0], eps)


def test_rate_formulas_closed_form():
    np.testing.assert_allclose(cv.gd_convergence_bound(10.0, 1.0, 2.0, [0, 1, 3]), [2.0, 1.8, 2.0 * 0.9**3], rtol=1e-6)
    assert cv.steps_to_eps_critical(4.0, 3.0, 0.5) == pytest.approx(2 * 4.0 * 3.0 / 0.25)
    with pytest.raises(ValueError, match="gd_convergence_bound.*mu <= L"):
        cv.gd_convergence_bound(1.0, 2.0, 1.0, 3)
    with pytest.raises(ValueError, match="steps_to_eps_critical"):
        cv.steps_to_eps_critical(1.0, 1.0, 0.0)


def test_sharpness_along_gradient_descent():
    with jax.enable_x64(True):
        top = np.linalg.eigvalsh(X_LS.T @ X_LS / len(X_LS))[-1]
        trace = cv.sharpness_along_run(
            least_squares, jnp.zeros(5), optax.sgd(0.5 / top), 30, key=jax.random.key(0), every=10, num_iterations=200
        )
        np.testing.assert_array_equal(trace.step, [0, 10, 20, 30])
        np.testing.assert_allclose(trace.sharpness, top, rtol=1e-8)  # constant Hessian
        assert np.all(np.diff(trace.loss) < 0)
        loss_fn, params = mlp_problem(jnp.float64)
        trace = cv.sharpness_along_run(
            loss_fn, params, optax.sgd(0.1), 4, key=jax.random.key(1), every=2, num_iterations=300
        )
        for _ in range(4):
            params = jax.tree.map(lambda p, g: p - 0.1 * g, params, jax.grad(loss_fn)(params))
        exact = explicit_eigenvalues(loss_fn, params)
        np.testing.assert_allclose(trace.sharpness[-1], exact[np.argmax(np.abs(exact))], rtol=1e-6)
        np.testing.assert_allclose(trace.loss[-1], loss_fn(params), rtol=1e-12)


def test_sgd_gradient_variance_closed_form_on_least_squares():
    theta = RNG.normal(size=5)

    def loss_fn(theta, x, y):
        return 0.5 * jnp.mean((x @ theta - y) ** 2)

    per_example = X_LS * (X_LS @ theta - Y_LS)[:, None]
    expected = np.mean(np.sum((per_example - per_example.mean(0)) ** 2, axis=1))
    with jax.enable_x64(True):
        variance = cv.sgd_gradient_variance(loss_fn, jnp.asarray(theta), jnp.asarray(X_LS), jnp.asarray(Y_LS))
    np.testing.assert_allclose(variance, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="sgd_gradient_variance"):
        cv.sgd_gradient_variance(loss_fn, theta, X_LS, Y_LS[:3])


def test_bad_input_names_the_function():
    with pytest.raises(TypeError, match="hessian_top_eigenvalue.*key"):
        cv.hessian_top_eigenvalue(least_squares, jnp.zeros(5), key=None)
    with pytest.raises(ValueError, match="hessian_eigenvalues"):
        cv.hessian_eigenvalues(least_squares, jnp.zeros(5), 3, key=jax.random.key(0), num_iterations=9)
    with pytest.raises(ValueError, match="hessian_eigenvalues.*which"):
        cv.hessian_eigenvalues(least_squares, jnp.zeros(5), 1, key=jax.random.key(0), which="middle")
    with pytest.raises(TypeError, match="pl_ratio"):
        cv.pl_ratio("loss", jnp.zeros(5), 0.0)
