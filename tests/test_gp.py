"""jaxdl.prob.gp: GP posterior against a direct numpy solve, the log marginal likelihood against
scipy's multivariate normal, hyperparameter fitting against a grid search, Neal's theorem."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxdl import prob, stax

RNG = np.random.default_rng(0)


def numpy_rbf(a, b, lengthscale, variance):
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return variance * np.exp(-sq / (2 * lengthscale**2))


def numpy_posterior(k_dd, k_td, k_tt, y, noise):
    a = k_dd + noise * np.eye(len(k_dd))
    return k_td @ np.linalg.solve(a, y), k_tt - k_td @ np.linalg.solve(a, k_td.T)


def test_posterior_matches_numpy_solve_rbf():
    x, xt = RNG.uniform(-2, 2, (12, 1)), RNG.uniform(-2, 2, (5, 1))
    y = np.sin(2 * x[:, 0]) + 0.1 * RNG.normal(size=12)
    kernel = lambda a, b: prob.rbf_kernel(a, b, lengthscale=0.7, variance=1.3)  # noqa: E731
    out = prob.gp_posterior(kernel, x, y, xt, noise_variance=0.01)
    mean, cov = numpy_posterior(*(numpy_rbf(a, b, 0.7, 1.3) for a, b in ((x, x), (xt, x), (xt, xt))), y, 0.01)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out.covariance, cov, atol=1e-4)


def test_posterior_with_the_analytic_nngp_and_ntk_kernels():
    _, _, kernel_fn = stax.serial(stax.Dense(64, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(1, W_std=1.5))
    x, xt = RNG.normal(size=(10, 3)), RNG.normal(size=(4, 3))
    y = RNG.normal(size=(10, 2))
    for get in ("nngp", "ntk"):
        kernel = prob.from_kernel_fn(kernel_fn, get)
        out = prob.gp_posterior(kernel, x, y, xt, noise_variance=0.1)
        k = {(a, b): np.asarray(kernel_fn(p, q, get), np.float64)
             for (a, p), (b, q) in [(("d", x), ("d", x)), (("t", xt), ("d", x)), (("t", xt), ("t", xt))]}
        mean, cov = numpy_posterior(k["d", "d"], k["t", "d"], k["t", "t"], y, 0.1)
        np.testing.assert_allclose(out.mean, mean, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(out.covariance, cov, rtol=1e-3, atol=1e-4)


def test_log_marginal_likelihood_matches_scipy():
    x = RNG.normal(size=(15, 2))
    k = numpy_rbf(x, x, 1.1, 0.8)
    y = RNG.normal(size=(15, 3))
    reference = sum(scipy.stats.multivariate_normal(np.zeros(15), k + 0.05 * np.eye(15)).logpdf(y[:, j])
                    for j in range(3))
    assert float(prob.log_marginal_likelihood(k, y, 0.05)) == pytest.approx(reference, rel=1e-4)
    with pytest.raises(ValueError, match="^log_marginal_likelihood: K \\+ noise_variance I is not positive definite"):
        prob.log_marginal_likelihood(-np.eye(3), np.ones(3), 0.1)
    with pytest.raises(ValueError, match="^gp_posterior: expected noise_variance >= 0"):
        prob.gp_posterior(prob.rbf_kernel, x, y, x, noise_variance=-1.0)


def test_fitting_hyperparameters_reports_a_non_finite_likelihood_with_its_step():
    x = np.linspace(-1, 1, 6)[:, None]

    def kernel(p, a, b):  # the lengthscale's exp overflows to inf after a few steps of growth
        return prob.rbf_kernel(a, b, 1.0, jnp.exp(jnp.exp(p["log_log_variance"])))

    init = {"log_log_variance": 4.4, "log_noise_variance": -1.0}  # exp(e^4.4) ≈ 1.6e35: finite; e^4.5 is 90 → inf
    with pytest.raises(FloatingPointError, match=r"^fit_hyperparameters: the log marginal likelihood became -?(nan|inf) at step \d+"):
        prob.fit_hyperparameters(kernel, init, x, np.sin(3 * x[:, 0]), num_steps=20, learning_rate=-0.5)
    with pytest.raises(ValueError, match="^fit_hyperparameters: expected num_steps"):
        prob.fit_hyperparameters(kernel, init, x, x[:, 0], num_steps=0)


@pytest.mark.slow
def test_fitting_hyperparameters_reaches_the_grid_search_optimum():
    x = np.linspace(-3, 3, 25)[:, None]
    y = np.sin(1.5 * x[:, 0]) + 0.1 * RNG.normal(size=25)

    def kernel(p, a, b):
        return prob.rbf_kernel(a, b, jnp.exp(p["log_lengthscale"]), jnp.exp(p["log_variance"]))

    init = {"log_lengthscale": 1.0, "log_variance": 0.0, "log_noise_variance": -1.0}
    params, history = prob.fit_hyperparameters(kernel, init, x, y, num_steps=300, learning_rate=0.05)
    assert history[-1] > history[0]
    # independent check: the best value on a grid, scored with scipy's multivariate normal
    best = -np.inf
    for ls in np.exp(np.linspace(-1.5, 1.0, 26)):
        for var in np.exp(np.linspace(-1.0, 1.5, 11)):
            for noise in np.exp(np.linspace(-6.0, -2.0, 17)):
                cov = numpy_rbf(x, x, ls, var) + noise * np.eye(25)
                best = max(best, scipy.stats.multivariate_normal(np.zeros(25), cov).logpdf(y))
    assert history[-1] >= best - 0.1


def numpy_network_kurtosis(x, width, num_networks, w_std=1.5, b_std=0.1):
    """Sample kurtosis of f(x) for a one-hidden-layer erf net drawn in numpy."""
    from scipy.special import erf

    rng = np.random.default_rng(1)
    w = rng.normal(size=(num_networks, width, x.shape[0])) * w_std / math.sqrt(x.shape[0])
    h = w @ x + b_std * rng.normal(size=(num_networks, width))
    f = (w_std / math.sqrt(width)) * np.sum(rng.normal(size=(num_networks, width)) * erf(h), -1)
    return scipy.stats.kurtosis(f + b_std * rng.normal(size=num_networks))


def test_neal_kurtosis_formula_matches_numpy_networks():
    x = RNG.normal(size=4)
    for width in (2, 8):
        predicted = float(prob.neal_excess_kurtosis(x[None, :], width)[0])
        assert numpy_network_kurtosis(x, width, 400_000) == pytest.approx(predicted, abs=0.05 + 0.05 * predicted)


@pytest.mark.slow
def test_neal_convergence_kurtosis_and_ks_vanish_with_width():
    x = RNG.normal(size=(3, 4))
    out = prob.neal_convergence(x, [1, 256], jax.random.key(0), num_networks=2000)
    measured, predicted = out["excess_kurtosis"], out["predicted_excess_kurtosis"]
    assert predicted[0] > 0.3 and predicted[1] == pytest.approx(predicted[0] / 256)
    assert measured[0] == pytest.approx(predicted[0], rel=0.35)
    assert abs(measured[1]) < 0.25
    assert out["ks_distance"][1] < out["ks_distance"][0]
    assert max(out["kernel_error"]) < 0.1  # the covariance is the NNGP at every width
    with pytest.raises(ValueError, match="^neal_convergence: expected activation"):
        prob.neal_convergence(x, [1], jax.random.key(0), activation="tanh")
