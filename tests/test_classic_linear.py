"""Linear models and GLMs against numpy/scipy/sklearn solvers and autodiff gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

from jaxdl.classic import (
    BERNOULLI,
    GAUSSIAN,
    POISSON,
    glm_fit,
    glm_gradient,
    glm_mean,
    least_squares_gradient,
    least_squares_loss,
    least_squares_sgd,
    linear_regression,
    logistic_regression,
    ridge_regression,
    softmax_regression,
    softmax_regression_loss,
)


def regression_data(seed, s=50, n=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(s, n))
    w = rng.normal(size=n)
    return X, X @ w + 0.1 * rng.normal(size=s), w


def test_linear_regression_matches_numpy_lstsq_and_min_norm():
    X, y, _ = regression_data(0)
    np.testing.assert_allclose(linear_regression(X, y), np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-4)
    wide = np.random.default_rng(1).normal(size=(3, 6))  # underdetermined: minimum-norm solution
    targets = np.arange(3.0)
    with jax.enable_x64(True):
        w = linear_regression(wide, targets)
        assert w.dtype == jnp.float64
        np.testing.assert_allclose(w, np.linalg.lstsq(wide, targets, rcond=None)[0], rtol=1e-10)
        np.testing.assert_allclose(wide @ np.asarray(w), targets, atol=1e-10)


@pytest.mark.parametrize("shape", [(50, 4), (5, 12)])
def test_ridge_matches_sklearn_and_closed_form(shape):
    rng = np.random.default_rng(2)
    X = rng.normal(size=shape)
    Y = rng.normal(size=(shape[0], 2))
    with jax.enable_x64(True):
        w = ridge_regression(X, Y, 0.7)
        reference = Ridge(alpha=0.7, fit_intercept=False, solver="cholesky").fit(X, Y).coef_.T
        np.testing.assert_allclose(w, reference, rtol=1e-10)
        closed_form = np.linalg.solve(X.T @ X + 0.7 * np.eye(shape[1]), X.T @ Y)
        np.testing.assert_allclose(w, closed_form, rtol=1e-9)


def test_least_squares_gradient_matches_autodiff():
    X, y, _ = regression_data(3)
    w = np.random.default_rng(4).normal(size=4)
    with jax.enable_x64(True):
        np.testing.assert_allclose(least_squares_gradient(w, X, y), jax.grad(least_squares_loss)(w, X, y), rtol=1e-12)
        np.testing.assert_allclose(least_squares_loss(w, X, y), np.sum((X @ w - y) ** 2) / (2 * len(y)))


def test_sgd_reaches_the_pseudo_inverse_solution_on_consistent_data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 5)).astype(np.float32)
    y = X @ rng.normal(size=5).astype(np.float32)
    w = least_squares_sgd(X, y, key=jax.random.key(0), learning_rate=0.05, num_steps=3000)
    np.testing.assert_allclose(w, linear_regression(X, y), atol=1e-4)
    legacy = least_squares_sgd(X, y, key=jax.random.PRNGKey(0), learning_rate=0.05, num_steps=3000)
    np.testing.assert_allclose(legacy, w, atol=1e-4)


def test_sgd_single_step_is_the_seed_update():
    X, y, _ = regression_data(6)
    key = jax.random.key(1)
    w0 = np.ones(4)
    i = int(jax.random.randint(key, (1,), 0, len(y))[0])
    expected = w0 + 0.1 * (y[i] - w0 @ X[i]) * X[i]
    w = least_squares_sgd(X, y, key=key, learning_rate=0.1, num_steps=1, w0=w0)
    np.testing.assert_allclose(w, expected, rtol=1e-5)


def test_glm_gradients_match_autodiff_of_the_negative_log_likelihood():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 3))
    w = rng.normal(size=3) * 0.5
    targets = {GAUSSIAN: rng.normal(size=30), BERNOULLI: rng.integers(0, 2, 30), POISSON: rng.poisson(2.0, 30)}
    with jax.enable_x64(True):
        for family, y in targets.items():
            y = np.asarray(y, np.float64)

            def objective(w, family=family, y=y):
                eta = X @ w
                return jnp.mean(family.log_partition(eta) - y * eta) + 0.35 * w @ w

            np.testing.assert_allclose(glm_gradient(w, X, y, family, 0.7), jax.grad(objective)(w), rtol=1e-10)
            np.testing.assert_allclose(family.link(glm_mean(w, X, family)), X @ w, rtol=1e-8, atol=1e-10)
            eta = np.linspace(-3, 3, 7)
            autodiff = jax.vmap(jax.grad(family.inverse_link))(eta)
            np.testing.assert_allclose(family.inverse_link_derivative(eta), autodiff, rtol=1e-10)


def test_gaussian_glm_is_ridge_regression():
    X, y, _ = regression_data(8)
    with jax.enable_x64(True):
        fit = glm_fit(X, y, GAUSSIAN, lam=0.2)
        assert bool(fit.converged)
        np.testing.assert_allclose(fit.params, ridge_regression(X, y, 0.2 * len(y)), rtol=1e-9)


def test_logistic_regression_matches_sklearn():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(200, 3))
    y = (rng.random(200) < 1 / (1 + np.exp(-X @ np.array([1.5, -1.0, 0.5])))).astype(np.float64)
    lam = 0.01
    reference = LogisticRegression(C=1 / (lam * len(y)), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
    with jax.enable_x64(True):
        fit = logistic_regression(X, y, lam)
        assert bool(fit.converged)
        np.testing.assert_allclose(fit.params, reference.coef_[0], rtol=1e-6)
    fit32 = logistic_regression(X.astype(np.float32), y.astype(np.float32), lam)
    assert bool(fit32.converged)
    np.testing.assert_allclose(fit32.params, reference.coef_[0], rtol=1e-4)


def test_poisson_glm_matches_sklearn():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(300, 2)) * 0.5
    y = rng.poisson(np.exp(X @ np.array([0.8, -0.4]) + 0.3)).astype(np.float64)
    features = np.hstack([X, np.ones((300, 1))])
    with jax.enable_x64(True):
        fit = glm_fit(features, y, POISSON, lam=0.0)
    reference = PoissonRegressor(alpha=0.0, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(fit.params, np.append(reference.coef_, reference.intercept_), rtol=1e-5)


def test_softmax_regression_matches_scipy_and_gradient():
    rng = np.random.default_rng(11)
    X = np.hstack([rng.normal(size=(120, 3)), np.ones((120, 1))])
    y = rng.integers(0, 4, 120)
    lam = 0.05
    with jax.enable_x64(True):
        fit = softmax_regression(X, y, 4, lam)
        assert bool(fit.converged) and fit.params.shape == (4, 4)
        loss = jax.jit(jax.value_and_grad(lambda flat: softmax_regression_loss(flat.reshape(4, 4), X, y, lam)))
        reference = scipy.optimize.minimize(
            lambda flat: tuple(map(np.asarray, loss(flat))),
            np.zeros(16),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-11},
        )
        np.testing.assert_allclose(fit.params.ravel(), reference.x, atol=1e-5)
        # per-example gradient p - e_y (the seeds' multinomial gradient) vs autodiff
        logits = X @ fit.params
        seed_gradient = X.T @ (jax.nn.softmax(logits) - jax.nn.one_hot(y, 4)) / len(y) + lam * fit.params
        np.testing.assert_allclose(seed_gradient, jax.grad(softmax_regression_loss)(fit.params, X, y, lam), atol=1e-12)
        np.testing.assert_allclose(seed_gradient, 0.0, atol=1e-9)


def test_two_class_softmax_equals_logistic_on_the_difference():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(80, 3))
    y = rng.integers(0, 2, 80)
    with jax.enable_x64(True):
        W = softmax_regression(X, y, 2, 0.1).params
        # at the optimum w0 = -w1, so lam/2 (|w0|^2 + |w1|^2) = (lam/2)/2 |w1 - w0|^2
        w = logistic_regression(X, y.astype(np.float64), 0.05).params
        np.testing.assert_allclose(W[:, 1] - W[:, 0], w, rtol=1e-7)


def test_linear_models_reject_bad_input():
    X, y, _ = regression_data(0)
    with pytest.raises(ValueError, match="ridge_regression.*lam > 0"):
        ridge_regression(X, y, 0.0)
    with pytest.raises(ValueError, match="linear_regression.*same number of rows"):
        linear_regression(X, y[:-1])
    with pytest.raises(ValueError, match="glm_fit.*bernoulli targets"):
        logistic_regression(X, y, 0.1)
    with pytest.raises(TypeError, match="glm_fit.*GLMFamily"):
        glm_fit(X, y, "gaussian")
    with pytest.raises(TypeError, match="softmax_regression.*integer class labels"):
        softmax_regression(X, y, 3, 0.1)
    with pytest.raises(ValueError, match="softmax_regression.*labels in \\[0, 3\\)"):
        softmax_regression(X, np.full(len(y), 3), 3, 0.1)
    with pytest.raises(ValueError, match="softmax_regression.*lam > 0"):
        softmax_regression(X, np.zeros(len(y), int), 3, 0.0)
    with pytest.raises(ValueError, match="linear_regression.*finite"):
        linear_regression(np.full_like(X, np.nan), y)
