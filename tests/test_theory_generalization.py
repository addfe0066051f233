"""jaxdl.theory.generalization against independent references: numpy's pseudo-inverse and the
normal equations, the arc-cosine kernel (the random-ReLU-features limit), the empirical NTK, and
the Gaussian-design closed form of ordinary least squares' variance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.kernels.empirical import empirical_ntk_fn
from jaxdl.theory import generalization as gen


def test_min_norm_regression_matches_pinv_normal_equations_and_ridge():
    rng = np.random.default_rng(0)
    for n, p in ((30, 8), (8, 30), (12, 12)):
        phi = rng.standard_normal((n, p))
        y = rng.standard_normal((n, 3))
        beta = np.asarray(gen.min_norm_regression(phi, y))
        np.testing.assert_allclose(beta, np.linalg.pinv(phi) @ y, rtol=2e-3, atol=2e-4)
        if n > p:  # ordinary least squares: the normal equations
            np.testing.assert_allclose(beta, np.linalg.solve(phi.T @ phi, phi.T @ y), rtol=2e-3, atol=2e-4)
        if p > n:  # the interpolant of least norm, Phi^T (Phi Phi^T)^-1 y
            np.testing.assert_allclose(phi @ beta, y, atol=2e-4)
            np.testing.assert_allclose(beta, phi.T @ np.linalg.solve(phi @ phi.T, y), rtol=2e-3, atol=2e-4)
        ridge = np.asarray(gen.min_norm_regression(phi, y[:, 0], ridge=0.5))
        np.testing.assert_allclose(ridge, np.linalg.solve(phi.T @ phi + 0.5 * np.eye(p), phi.T @ y[:, 0]),
                                   rtol=2e-3, atol=2e-4)


def test_min_norm_regression_drops_a_null_direction():
    """Duplicated feature columns: the least-norm solution splits the weight equally."""
    x = np.linspace(-1, 1, 10)
    phi = np.stack([x, x], axis=1)
    beta = np.asarray(gen.min_norm_regression(phi, 3 * x))
    np.testing.assert_allclose(beta, [1.5, 1.5], rtol=1e-4)


def test_random_relu_features_approach_the_arc_cosine_kernel():
    """E_w[relu(x.w/sqrt d) relu(x'.w/sqrt d)] = |x||x'|/(2 pi d) (sin t + (pi - t) cos t) (Cho & Saul)."""
    d, p = 4, 40000
    x = np.array([[1.0, 0.5, -0.3, 2.0], [0.2, -1.0, 0.7, 0.1], [1.0, 0.5, -0.3, 2.0]])
    features = np.asarray(gen.random_features(jax.random.key(0), d, p)(x), np.float64)
    gram = features @ features.T / p
    norms = np.linalg.norm(x, axis=1)
    cos = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
    angle = np.arccos(cos)
    exact = np.outer(norms, norms) / (2 * np.pi * d) * (np.sin(angle) + (np.pi - angle) * cos)
    np.testing.assert_allclose(gram, exact, rtol=0.03, atol=1e-3)
    assert features.shape == (3, p) and features.min() >= 0


def test_ntk_features_give_the_empirical_ntk():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(1))
    _, params = init_fn(jax.random.key(1), (-1, 5))
    x1 = jax.random.normal(jax.random.key(2), (6, 5))
    x2 = jax.random.normal(jax.random.key(3), (4, 5))
    j1, j2 = gen.ntk_features(apply_fn, params, x1), gen.ntk_features(apply_fn, params, x2)
    num_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    assert j1.shape == (6, num_params)
    expected = empirical_ntk_fn(apply_fn)(x1, x2, params)
    np.testing.assert_allclose(j1 @ j2.T, np.asarray(expected).reshape(6, 4), rtol=1e-4, atol=1e-4)


def test_bias_variance_of_least_squares_with_gaussian_design_matches_the_closed_form():
    """y = x.w + eps, x ~ N(0, I_d), OLS on n samples: Bias^2 = 0, Var = sigma^2 d / (n - d - 1);
    and Bias^2 + Var + sigma^2 equals the test MSE measured against fresh noisy labels."""
    d, n, sigma, draws, m = 5, 20, 0.5, 3000, 400
    key = jax.random.key(0)
    w = jax.random.normal(jax.random.fold_in(key, 0), (d,))
    x_test = jax.random.normal(jax.random.fold_in(key, 1), (m, d))
    f_test = x_test @ w

    def one_draw(k):
        kx, ke, kt = jax.random.split(k, 3)
        x = jax.random.normal(kx, (n, d))
        y = x @ w + sigma * jax.random.normal(ke, (n,))
        beta = jnp.linalg.solve(x.T @ x, x.T @ y)
        prediction = x_test @ beta
        noisy_test = f_test + sigma * jax.random.normal(kt, (m,))
        return prediction, jnp.mean((prediction - noisy_test) ** 2)

    predictions, measured_mse = jax.vmap(one_draw)(jax.random.split(jax.random.fold_in(key, 2), draws))
    result = gen.bias_variance_decomposition(predictions, f_test, sigma**2)
    exact_variance = sigma**2 * d / (n - d - 1)
    assert float(result.variance) == pytest.approx(exact_variance, rel=0.1)
    assert float(result.bias_squared) < 5 * exact_variance / draws  # only the Monte Carlo error of the mean
    assert float(result.noise) == pytest.approx(sigma**2)
    assert float(result.expected_mse) == pytest.approx(float(jnp.mean(measured_mse)), rel=0.03)
    # the identity behind it is exact: Bias^2 + Var = mean over draws of the MSE against f*
    direct = float(jnp.mean((predictions - f_test) ** 2))
    assert float(result.bias_squared + result.variance) == pytest.approx(direct, rel=1e-5)


def test_bad_inputs_raise_with_the_function_name():
    with pytest.raises(ValueError, match="^min_norm_regression: expected as many targets"):
        gen.min_norm_regression(np.ones((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="^min_norm_regression: expected finite features"):
        gen.min_norm_regression(np.array([[np.nan, 1.0]]), np.ones(1))
    with pytest.raises(ValueError, match="^min_norm_regression: expected ridge >= 0"):
        gen.min_norm_regression(np.ones((4, 2)), np.ones(4), ridge=-1.0)
    with pytest.raises(ValueError, match="^random_features: expected activation"):
        gen.random_features(jax.random.key(0), 3, 4, activation="swish")
    with pytest.raises(ValueError, match="^random_features: expected num_features"):
        gen.random_features(jax.random.key(0), 3, 0)
    with pytest.raises(ValueError, match=r"^random_features: expected inputs of shape \(\.\.\., 3\)"):
        gen.random_features(jax.random.key(0), 3, 4)(np.ones((2, 5)))
    with pytest.raises(TypeError, match="^random_features: expected a PRNG key"):
        gen.random_features(None, 3, 4)
    with pytest.raises(ValueError, match="^bias_variance_decomposition: expected predictions of shape"):
        gen.bias_variance_decomposition(np.ones((3, 4)), np.ones(5))
    with pytest.raises(ValueError, match="^bias_variance_decomposition: expected predictions from at least 2"):
        gen.bias_variance_decomposition(np.ones((1, 4)), np.ones(4))
    with pytest.raises(ValueError, match="^bias_variance_decomposition: expected noise_variance"):
        gen.bias_variance_decomposition(np.ones((3, 4)), np.ones(4), -0.1)
    init_fn, apply_fn, _ = stax.serial(stax.Dense(3))
    _, params = init_fn(jax.random.key(0), (-1, 2))
    with pytest.raises(ValueError, match=r"^ntk_features: expected apply_fn to return shape"):
        gen.ntk_features(apply_fn, params, np.ones((4, 2)))
