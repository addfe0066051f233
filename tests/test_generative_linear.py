"""Linear latent models against exact references: scikit-learn's PCA score (the PPCA
likelihood) and FactorAnalysis, the seeds' optimal-linear-compression theorem (principal
angles), the closed-form linear denoiser, brute-force Gaussian densities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import FactorAnalysis

from jaxdl.generative import linear


def _data(k=300, n=6, m=2, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, m)) * np.array([3.0, 1.5])
    noise = rng.uniform(0.2, 1.0, size=n)
    return rng.normal(size=(k, m)) @ W.T + rng.normal(size=(k, n)) * np.sqrt(noise) + rng.normal(size=n)


def test_ppca_log_likelihood_equals_sklearn_pca_score():
    x = _data()
    with jax.enable_x64(True):
        for m in (1, 4):
            model = linear.ppca(jnp.asarray(x), m, ddof=1)  # sklearn's covariance uses 1/(k-1)
            ours = float(jnp.mean(linear.log_likelihood(model, jnp.asarray(x))))
            assert ours == pytest.approx(SkPCA(m).fit(x).score(x), rel=1e-10)


def test_ppca_is_the_maximum_likelihood_and_log_likelihood_matches_scipy():
    x = _data(seed=1)
    with jax.enable_x64(True):
        model = linear.ppca(jnp.asarray(x), 2)
        ll = linear.log_likelihood(model, jnp.asarray(x))
        ref = multivariate_normal(np.asarray(model.mean), np.asarray(model.covariance)).logpdf(x)
        np.testing.assert_allclose(ll, ref, rtol=1e-10)
        best = float(jnp.mean(ll))
        rng = np.random.default_rng(0)
        for _ in range(5):  # any perturbation of (W, σ²) lowers the likelihood
            W = model.W + 0.05 * rng.normal(size=model.W.shape)
            noise = model.noise_var * np.exp(0.05 * rng.normal())
            other = linear.LinearGaussian(model.mean, jnp.asarray(W), noise)
            assert float(jnp.mean(linear.log_likelihood(other, jnp.asarray(x)))) < best
        assert best > float(jnp.mean(linear.log_likelihood(linear.ppca(jnp.asarray(x), 2, ddof=1), jnp.asarray(x))))


def test_pca_matches_sklearn_components_and_variances():
    x = _data(seed=2)
    sk = SkPCA(3).fit(x)
    with jax.enable_x64(True):
        ours = linear.pca(jnp.asarray(x), 3, ddof=1)
        np.testing.assert_allclose(ours.variances[:3], sk.explained_variance_, rtol=1e-9)
        np.testing.assert_allclose(np.abs(ours.components @ sk.components_.T), np.eye(3), atol=1e-8)
        recon = ours.decode(ours.encode(jnp.asarray(x)))
        np.testing.assert_allclose(recon, sk.inverse_transform(sk.transform(x)), atol=1e-8)


def test_factor_analysis_em_is_monotone_and_at_least_sklearn():
    x = _data(seed=3)
    with jax.enable_x64(True):
        model, history = linear.factor_analysis(jnp.asarray(x), 2, num_iters=400, key=jax.random.key(0))
        history = np.asarray(history)
        assert np.all(np.diff(history) >= -1e-9), "EM decreased the likelihood"
        ours = float(jnp.mean(linear.log_likelihood(model, jnp.asarray(x))))
        assert ours == pytest.approx(history[-1], rel=1e-10)
    sk = FactorAnalysis(2, tol=1e-8, max_iter=5000).fit(x)
    assert ours >= sk.score(x) - 1e-4
    cov = np.asarray(model.covariance)
    assert np.linalg.norm(cov - sk.get_covariance()) < 1e-2 * np.linalg.norm(cov)


def test_factor_analysis_posterior_matches_brute_force_conditioning():
    x = _data(k=50, seed=4)
    with jax.enable_x64(True):
        model, _ = linear.factor_analysis(jnp.asarray(x), 2, num_iters=50)
        mean, cov = linear.posterior(model, jnp.asarray(x))
        # joint Gaussian of (z, x): condition by the Schur complement
        W, C = np.asarray(model.W), np.asarray(model.covariance)
        gain = np.linalg.solve(C, W).T
        np.testing.assert_allclose(mean, (x - np.asarray(model.mean)) @ gain.T, atol=1e-10)
        np.testing.assert_allclose(cov, np.eye(2) - W.T @ np.linalg.inv(C) @ W, atol=1e-10)
        # and Bayes' rule numerically: log p(z|x) = log p(z) + log p(x|z) - log p(x) for a z
        z = np.array([0.3, -0.7])
        lhs = multivariate_normal(np.asarray(mean[0]), np.asarray(cov)).logpdf(z)
        cond = multivariate_normal(np.asarray(model.mean) + W @ z, np.diag(np.asarray(model.noise_var))).logpdf(x[0])
        rhs = multivariate_normal(np.zeros(2)).logpdf(z) + cond - float(linear.log_likelihood(model, jnp.asarray(x[:1]))[0])
        assert lhs == pytest.approx(rhs, abs=1e-8)


def test_linear_autoencoder_decoder_spans_the_pca_subspace():
    x = _data(k=200, seed=5)
    x = jnp.asarray(x - x.mean(0), jnp.float32)
    model = linear.linear_autoencoder(6, 2)
    params, losses = linear.fit_autoencoder(model, x, jax.random.key(0), num_steps=1500, learning_rate=3e-2)
    angles = linear.principal_angles(linear.decoder_basis(params), linear.pca(x, 2).components.T)
    assert float(jnp.max(angles)) < 0.02, angles
    optimum = 0.5 * float(jnp.sum(linear.pca(x, 2).variances[2:]))  # discarded variance / 2
    assert float(losses[-1]) == pytest.approx(optimum, rel=1e-3)
    random_angles = linear.principal_angles(jax.random.normal(jax.random.key(1), (6, 2)), linear.pca(x, 2).components.T)
    assert float(jnp.max(random_angles)) > 0.1  # the check can fail


def test_principal_angles_known_values():
    e = jnp.eye(3)
    tilted = jnp.stack([e[0], jnp.cos(0.3) * e[1] + jnp.sin(0.3) * e[2]], axis=1)
    np.testing.assert_allclose(linear.principal_angles(e[:, :2], tilted), [0.0, 0.3], atol=1e-3)
    with pytest.raises(ValueError, match="^principal_angles:"):
        linear.principal_angles(e, jnp.ones((2, 1)))


def test_linear_denoising_autoencoder_learns_the_shrinkage_filter():
    # E||x - A(x + η)||² over rank-m A is minimised by U_m diag(λ/(λ+σ²)) U_m^T
    x = _data(k=200, n=4, seed=6)
    x = jnp.asarray(x - x.mean(0), jnp.float32)
    sigma = 2.0
    model = linear.linear_autoencoder(4, 2)
    params, _ = linear.fit_autoencoder(model, x, jax.random.key(2), num_steps=3000, learning_rate=2e-2, noise_std=sigma)
    A = np.asarray(params["Dense_0"]["W"] @ params["Dense_1"]["W"]).T  # x̂ = A x
    lam, U = np.linalg.eigh(np.asarray(x.T @ x / x.shape[0], np.float64))
    lam, U = lam[::-1][:2], U[:, ::-1][:, :2]
    expected = U @ np.diag(lam / (lam + sigma**2)) @ U.T
    error = np.linalg.norm(A - expected) / np.linalg.norm(expected)
    assert error < 0.05, error
    assert np.linalg.norm(A - U @ U.T) / np.linalg.norm(expected) > 4 * error  # not the plain projection  # not the plain projection


def test_sample_moments_and_bad_input():
    with jax.enable_x64(True):
        model = linear.LinearGaussian(jnp.array([1.0, -1.0, 0.5]), jnp.array([[1.0], [0.5], [-0.3]]), jnp.array([0.2, 0.3, 0.1]))
        xs = linear.sample(model, jax.random.key(0), 40000)
        np.testing.assert_allclose(np.cov(np.asarray(xs).T), model.covariance, atol=0.03)
    with pytest.raises(ValueError, match="^ppca:"):
        linear.ppca(jnp.ones((10, 3)), 3)
    with pytest.raises(ValueError, match="^factor_analysis:"):
        linear.factor_analysis(jnp.full((10, 3), jnp.nan), 1)
    with pytest.raises(ValueError, match="^log_likelihood:"):
        linear.log_likelihood(model, jnp.ones((2, 4)))
