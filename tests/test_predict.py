"""jaxdl.predict against independent references.

* a wide ReLU network trained by gradient descent tracks
  ``gradient_descent_mse`` (NT's own idea of a test);
* a linearised network trained by discrete gradient descent equals the exact
  recursion ``f_{k+1} = f_k - lr/|Y| Theta (f_k - y)`` (numpy), and
  ``gradient_descent_mse`` approaches it as ``lr -> 0``;
* ``gp_inference`` equals the numpy GP posterior; the ensemble at large ``t``
  equals its ``t=None`` limit; ``gradient_descent`` with the MSE loss (ODE)
  equals the closed form; ``max_learning_rate`` separates converging from
  diverging gradient descent;
* singular kernels give finite results and a warning where Cholesky fails.
"""

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import predict, stax
from jaxdl.kernels.empirical import empirical_ntk_fn, linearize

Kernels = namedtuple("Kernels", "nngp ntk")


def _data(n_train=12, n_test=4, dim=3, key=0):
    k1, k2 = jax.random.split(jax.random.key(key))
    x_train = jax.random.normal(k1, (n_train, dim))
    x_test = jax.random.normal(k2, (n_test, dim))
    y_train = jnp.stack([jnp.sin(x_train.sum(1)), jnp.cos(x_train[:, 0])], axis=1)
    return x_train, x_test, y_train


def test_wide_network_tracks_gradient_descent_mse():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(2048, W_std=1.5, b_std=0.1), stax.Relu(),
                                       stax.Dense(2, W_std=1.5, b_std=0.1))  # fmt: skip
    x_train, x_test, y_train = _data()
    _, params = init_fn(jax.random.key(3), x_train.shape)
    ntk_fn = jax.jit(empirical_ntk_fn(apply_fn, vmap_axes=0))
    k_dd, k_td = ntk_fn(x_train, None, params), ntk_fn(x_test, x_train, params)
    lr = float(predict.max_learning_rate(k_dd, y_train.size)) / 10
    loss = lambda p: 0.5 * jnp.mean((apply_fn(p, x_train) - y_train) ** 2)  # ||f - y||^2 / (2|Y|)

    @jax.jit
    def step(p):
        return jax.tree.map(lambda w, g: w - lr * g, p, jax.grad(loss)(p))

    fx_train_0, fx_test_0 = apply_fn(params, x_train), apply_fn(params, x_test)
    predict_fn = predict.gradient_descent_mse(k_dd, y_train, learning_rate=lr)
    p = params
    for steps in range(1, 101):
        p = step(p)
        if steps in (10, 100):
            expected_train, expected_test = predict_fn(steps, fx_train_0, fx_test_0, k_td)
            for got, expected, start in ((apply_fn(p, x_train), expected_train, fx_train_0),
                                         (apply_fn(p, x_test), expected_test, fx_test_0)):  # fmt: skip
                change = float(jnp.max(jnp.abs(expected - start)))
                assert float(jnp.max(jnp.abs(got - expected))) < 0.06 * change
    assert float(loss(p)) < 0.2 * float(loss(params))


def test_linearized_gradient_descent_is_the_exact_recursion():
    with jax.enable_x64(True):
        init_fn, apply_fn, _ = stax.serial(stax.Dense(16, b_std=0.1), stax.Erf(), stax.Dense(2))
        x_train, x_test, y_train = _data()
        _, params = init_fn(jax.random.key(4), x_train.shape)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        f_lin = linearize(apply_fn, params)
        ntk = jax.jit(empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0))  # f[n1, n2, k1, k2]
        k_dd = np.asarray(ntk(x_train, None, params))
        k_td = np.asarray(ntk(x_test, x_train, params))
        lr = float(predict.max_learning_rate(k_dd, y_train.size)) / 100
        grad = jax.jit(jax.grad(lambda p: 0.5 * jnp.mean((f_lin(p, x_train) - y_train) ** 2)))
        p = params
        f_train = np.asarray(apply_fn(params, x_train))
        f_test = np.asarray(apply_fn(params, x_test))
        y = np.asarray(y_train)
        for _ in range(100):
            residual = f_train - y
            f_train = f_train - lr / y.size * np.einsum("ijkl,jl->ik", k_dd, residual)
            f_test = f_test - lr / y.size * np.einsum("ijkl,jl->ik", k_td, residual)
            p = jax.tree.map(lambda w, g: w - lr * g, p, grad(p))
        np.testing.assert_allclose(f_lin(p, x_train), f_train, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(f_lin(p, x_test), f_test, rtol=1e-9, atol=1e-9)
        # continuous time at the same t = steps: O(lr) discretisation error only
        flow_train, flow_test = predict.gradient_descent_mse(k_dd, y_train, lr, trace_axes=())(
            100, apply_fn(params, x_train), apply_fn(params, x_test), k_td)
        change = np.max(np.abs(f_train - np.asarray(apply_fn(params, x_train))))
        assert np.max(np.abs(flow_train - f_train)) < 0.02 * change
        assert np.max(np.abs(flow_test - f_test)) < 0.02 * change


def _kernels(n_train=10, n_test=3, seed=0):
    with jax.enable_x64(True):
        _, _, kernel_fn = stax.serial(stax.Dense(8, W_std=1.4, b_std=0.2), stax.Relu(),
                                      stax.Dense(2, W_std=1.4, b_std=0.2))  # fmt: skip
        x_train, x_test, y_train = _data(n_train, n_test, key=seed)
        x_train, x_test = x_train.astype(jnp.float64), x_test.astype(jnp.float64)
        dd = kernel_fn(x_train, None, ("nngp", "ntk"))
        td = kernel_fn(x_test, x_train, ("nngp", "ntk"))
        tt = kernel_fn(x_test, None, ("nngp", "ntk"))
    return kernel_fn, x_train, x_test, y_train.astype(jnp.float64), dd, td, tt


def test_gp_inference_is_the_numpy_posterior():
    with jax.enable_x64(True):
        _, _, _, y, dd, td, tt = _kernels()
        reg = 1e-3
        predict_fn = predict.gp_inference(Kernels(dd.nngp, dd.ntk), y, diag_reg=reg, diag_reg_absolute_scale=True)
        result = predict_fn(("nngp", "ntkgp"), Kernels(td.nngp, td.ntk), Kernels(tt.nngp, tt.ntk))
        for name, kind in (("nngp", "nngp"), ("ntkgp", "ntk")):
            k_dd = np.asarray(getattr(dd, kind)) + reg * np.eye(len(y))
            k_td, k_tt = np.asarray(getattr(td, kind)), np.asarray(getattr(tt, kind))
            mean = k_td @ np.linalg.solve(k_dd, np.asarray(y))
            cov = k_tt - k_td @ np.linalg.solve(k_dd, k_td.T)
            np.testing.assert_allclose(getattr(result, name).mean, mean, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(getattr(result, name).covariance, cov, rtol=1e-9, atol=1e-10)


def test_ensemble_converges_to_its_infinite_time_limit():
    with jax.enable_x64(True):
        kernel_fn, x_train, x_test, y, *_ = _kernels()
        predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y, diag_reg=1e-4)
        for get in ("nngp", "ntk"):
            limit = predict_fn(None, x_test, get, compute_cov=True)
            late = predict_fn(1e9, x_test, get, compute_cov=True)
            np.testing.assert_allclose(late.mean, limit.mean, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(late.covariance, limit.covariance, rtol=1e-6, atol=1e-8)
            start = predict_fn(0.0, x_test, get, compute_cov=True)
            np.testing.assert_allclose(start.mean, 0.0, atol=1e-12)  # prior mean
            nngp_tt = kernel_fn(x_test, None, "nngp")
            np.testing.assert_allclose(start.covariance, nngp_tt, rtol=1e-9, atol=1e-12)  # prior cov


def test_gradient_descent_ode_with_mse_equals_closed_form():
    with jax.enable_x64(True):
        _, _, _, y, dd, td, _ = _kernels()
        mse = lambda fx, y_hat: 0.5 * jnp.mean((fx - y_hat) ** 2)
        times = jnp.array([0.0, 0.5, 3.0, 20.0])
        fx_train_0 = 0.3 * jnp.ones_like(y)
        fx_test_0 = jnp.zeros((td.ntk.shape[0], 2))
        ode_train, ode_test = predict.gradient_descent(mse, dd.ntk, y, learning_rate=0.7)(
            times, fx_train_0, fx_test_0, td.ntk)
        exact_train, exact_test = predict.gradient_descent_mse(dd.ntk, y, learning_rate=0.7)(
            times, fx_train_0, fx_test_0, td.ntk)
        np.testing.assert_allclose(ode_train, exact_train, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ode_test, exact_test, rtol=1e-6, atol=1e-7)


def test_momentum_ode_matches_heavy_ball_limit():
    """With momentum m, small steps of heavy-ball GD on the linear model track the ODE."""
    with jax.enable_x64(True):
        _, _, _, y, dd, _, _ = _kernels()
        k, y = np.asarray(dd.ntk), np.asarray(y)
        lr, m, steps = 1e-3, 0.9, 2000
        f, v = np.zeros_like(y), np.zeros_like(y)
        for _ in range(steps):  # v <- m v - lr * grad; f <- f + K v  (function-space heavy ball)
            v = m * v - lr * (f - y) / y.size
            f = f + k @ v
        mse = lambda fx, y_hat: 0.5 * jnp.mean((fx - y_hat) ** 2)
        ode = predict.gradient_descent(mse, dd.ntk, y, learning_rate=lr, momentum=m)(steps, 0.0)
        assert np.max(np.abs(np.asarray(ode) - f)) < 0.02 * np.max(np.abs(f))


def test_max_learning_rate_separates_convergence_from_divergence():
    with jax.enable_x64(True):
        _, _, _, y, dd, _, _ = _kernels()
        k, y = np.asarray(dd.ntk), np.asarray(y)
        lr_max = float(predict.max_learning_rate(dd.ntk, y.size))
        for factor, converges in ((0.95, True), (1.05, False)):
            f = np.zeros_like(y)
            for _ in range(3000):
                f = f - factor * lr_max / y.size * k @ (f - y)
            assert (np.max(np.abs(f - y)) < 1e-3) == converges


def test_singular_kernel_gives_finite_predictions_and_warns():
    with jax.enable_x64(True):
        x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # duplicated input: rank-2 kernel
        k_dd = x @ x.T
        y = jnp.array([[1.0], [1.0], [-1.0]])
        k_td = jnp.array([[0.5, 0.5, 2.0]])
        predict_fn = predict.gradient_descent_mse(k_dd, y)
        train_t, test_t = predict_fn(5.0, 0.0, jnp.zeros((1, 1)), k_td)
        assert np.all(np.isfinite(train_t)) and np.all(np.isfinite(test_t))
        with pytest.warns(RuntimeWarning, match="pseudo-inverse"):
            _, test_inf = predict_fn(None, 0.0, jnp.zeros((1, 1)), k_td)
        expected = np.asarray(k_td) @ np.linalg.pinv(np.asarray(k_dd)) @ np.asarray(y)
        np.testing.assert_allclose(test_inf, expected, rtol=1e-9)
        late = predict_fn(1e8, 0.0, jnp.zeros((1, 1)), k_td)[1]
        np.testing.assert_allclose(late, expected, rtol=1e-6)
        # under jit the fallback is taken on device
        with pytest.warns(RuntimeWarning, match="pseudo-inverse"):
            jitted = jax.jit(lambda k: predict.gp_inference(k, y)("nngp", k_td))(k_dd)
            jax.block_until_ready(jitted)
        np.testing.assert_allclose(jitted, expected, rtol=1e-9)


def test_trace_axes_empty_with_zipped_kernels_equals_traced():
    """A (n, n, k, k) kernel that is identity over outputs gives the traced result."""
    with jax.enable_x64(True):
        _, _, _, y, dd, td, _ = _kernels()
        eye = jnp.eye(2)
        full_dd = jnp.einsum("ij,kl->ijkl", dd.ntk, eye)
        full_td = jnp.einsum("ij,kl->ijkl", td.ntk, eye)
        args = (2.0, 0.1 * jnp.ones_like(y), jnp.zeros((3, 2)))
        traced = predict.gradient_descent_mse(dd.ntk, y)(*args, td.ntk)
        full = predict.gradient_descent_mse(full_dd, y, trace_axes=())(*args, full_td)
        for a, b in zip(traced, full):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_bad_input_raises_clearly():
    k = jnp.eye(3)
    with pytest.raises(ValueError, match=r"gradient_descent_mse: kernel of shape \(3, 3\) does not match y_train"):
        predict.gradient_descent_mse(k, jnp.ones((4, 1)))
    with pytest.raises(ValueError, match="gradient_descent_mse: expected a square"):
        predict.gradient_descent_mse(jnp.ones((3, 2)), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="need k_test_train"):
        predict.gradient_descent_mse(k, jnp.ones((3, 1)))(1.0, 0.0, jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match="gp_inference: expected get"):
        predict.gp_inference(k, jnp.ones((3, 1)))("cov", k)
    with pytest.raises(TypeError, match="gradient_descent: expected loss"):
        predict.gradient_descent(None, k, jnp.ones((3, 1)))
