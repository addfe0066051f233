"""jaxdl.prob: categorical and Gaussian information measures against scipy, Gaussian
conditioning against brute-force sampling, the GAN -log 4 identity, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.spatial.distance
import scipy.stats

from jaxdl import prob

RNG = np.random.default_rng(0)


def random_simplex(k, size=()):
    return RNG.dirichlet(np.ones(k), size=size)


def random_spd(d):
    a = RNG.normal(size=(d, d))
    return a @ a.T + 0.5 * np.eye(d)


def test_categorical_measures_match_scipy():
    p, q = random_simplex(6, 4), random_simplex(6, 4)
    np.testing.assert_allclose(prob.entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(prob.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(prob.cross_entropy(p, q), -np.sum(p * np.log(q), -1), rtol=1e-5)
    js_scipy = scipy.spatial.distance.jensenshannon(p, q, axis=-1) ** 2  # scipy returns sqrt(JS)
    np.testing.assert_allclose(prob.js_divergence(p, q), js_scipy, rtol=1e-4)
    # H(p, q) = H(p) + KL(p, q), and the edge cases: 0 log 0 = 0, KL = inf off the support
    np.testing.assert_allclose(prob.cross_entropy(p, q), prob.entropy(p) + prob.kl_divergence(p, q), rtol=1e-5)
    assert float(prob.entropy(np.array([1.0, 0.0]))) == 0.0
    assert float(prob.kl_divergence(np.array([0.5, 0.5]), np.array([1.0, 0.0]))) == math.inf
    assert float(prob.js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]))) == pytest.approx(math.log(2))


def test_gan_optimum_is_2js_minus_log4():
    p, q = random_simplex(5), random_simplex(5)
    value = prob.gan_optimal_value(p, q)
    assert float(value) == pytest.approx(2 * float(prob.js_divergence(p, q)) - prob.LOG4, rel=1e-5)
    assert float(prob.gan_optimal_value(p, p)) == pytest.approx(-math.log(4), rel=1e-6)
    d_star = prob.optimal_discriminator(p, q)
    for _ in range(20):  # D* maximises V(G, .)
        other = np.clip(np.asarray(d_star) + RNG.normal(scale=0.05, size=5), 1e-3, 1 - 1e-3)
        assert float(prob.gan_value(p, q, other)) <= float(value) + 1e-6


def test_gaussian_entropy_kl_against_scipy_and_sampling():
    d = 3
    m0, m1 = RNG.normal(size=d), RNG.normal(size=d)
    s0, s1 = random_spd(d), random_spd(d)
    n0 = scipy.stats.multivariate_normal(m0, s0)
    n1 = scipy.stats.multivariate_normal(m1, s1)
    assert float(prob.gaussian_entropy(m0, s0)) == pytest.approx(n0.entropy(), rel=1e-5)
    x = RNG.normal(size=(7, d))
    np.testing.assert_allclose(prob.gaussian_log_prob(x, m0, s0), n0.logpdf(x), rtol=1e-5)
    samples = n0.rvs(200_000, random_state=1)
    kl_mc = np.mean(n0.logpdf(samples) - n1.logpdf(samples))
    stderr = np.std(n0.logpdf(samples) - n1.logpdf(samples)) / math.sqrt(len(samples))
    assert abs(float(prob.gaussian_kl(m0, s0, m1, s1)) - kl_mc) < 4 * stderr
    assert float(prob.gaussian_cross_entropy(m0, s0, m1, s1)) == pytest.approx(-np.mean(n1.logpdf(samples)),
                                                                               abs=5 * stderr + 1e-3)
    assert float(prob.gaussian_kl(m0, s0, m0, s0)) == pytest.approx(0.0, abs=1e-5)
    # diagonal KL (the PAC-Bayes one) against the full formula
    sd_q, sd_p = RNG.uniform(0.5, 2, size=d), RNG.uniform(0.5, 2, size=d)
    assert float(prob.kl_diag_gaussians(m0, sd_q, m1, sd_p)) == pytest.approx(
        float(prob.gaussian_kl(m0, np.diag(sd_q**2), m1, np.diag(sd_p**2))), rel=1e-5)


def test_gaussian_js_against_quadrature():
    m0, m1, v0, v1 = 0.0, 1.5, 1.0, 2.0
    p = lambda x: scipy.stats.norm.pdf(x, m0, math.sqrt(v0))  # noqa: E731
    q = lambda x: scipy.stats.norm.pdf(x, m1, math.sqrt(v1))  # noqa: E731
    m = lambda x: 0.5 * (p(x) + q(x))  # noqa: E731
    js = 0.5 * scipy.integrate.quad(lambda x: p(x) * np.log(p(x) / m(x)), -30, 30)[0] \
        + 0.5 * scipy.integrate.quad(lambda x: q(x) * np.log(q(x) / m(x)), -30, 30)[0]
    estimate, stderr = prob.gaussian_js_divergence(np.array([m0]), np.array([[v0]]), np.array([m1]),
                                                   np.array([[v1]]), jax.random.key(0), num_samples=20_000)
    assert abs(float(estimate) - js) < 4 * float(stderr) + 1e-4


def test_conditioning_and_marginal_against_sampling():
    d = 3
    mean, cov = RNG.normal(size=d), random_spd(d)
    observed = mean[1] + 0.3 * math.sqrt(cov[1, 1])
    free, cond_mean, cond_cov = prob.condition(mean, cov, [1], [observed])
    assert free.tolist() == [0, 2]
    # brute force: sample the joint and keep the draws with x1 within 0.02 of the observed value
    x = RNG.multivariate_normal(mean, cov, size=400_000)
    kept = x[np.abs(x[:, 1] - observed) < 0.02 * math.sqrt(cov[1, 1])][:, [0, 2]]
    assert kept.shape[0] > 4000
    se = np.sqrt(np.diag(cond_cov) / kept.shape[0])
    np.testing.assert_array_less(np.abs(kept.mean(0) - np.asarray(cond_mean)), 5 * se)
    np.testing.assert_allclose(np.cov(kept.T), cond_cov, atol=0.06 * np.abs(cond_cov).max())
    # two observed coordinates: the sampled least-squares regression of x_a on x_b is the conditional
    d = 4
    mean, cov = RNG.normal(size=d), random_spd(d)
    free, cond_mean, cond_cov = prob.condition(mean, cov, [1, 3], [0.3, -0.2])
    x = RNG.multivariate_normal(mean, cov, size=200_000)
    design = np.hstack([np.ones((len(x), 1)), x[:, [1, 3]]])
    coef, *_ = np.linalg.lstsq(design, x[:, [0, 2]], rcond=None)
    residual = x[:, [0, 2]] - design @ coef
    np.testing.assert_allclose(np.array([1.0, 0.3, -0.2]) @ coef, cond_mean, atol=0.03 * np.abs(cov).max())
    np.testing.assert_allclose(np.cov(residual.T), cond_cov, atol=0.02 * np.abs(cov).max())
    # and the closed form via the precision matrix: cond_cov = (Lambda_aa)^-1
    precision = np.linalg.inv(cov)
    np.testing.assert_allclose(cond_cov, np.linalg.inv(precision[np.ix_([0, 2], [0, 2])]), rtol=1e-4)
    m, c = prob.marginal(mean, cov, [2, 0])
    np.testing.assert_allclose(c, cov[np.ix_([2, 0], [2, 0])])
    np.testing.assert_allclose(m, mean[[2, 0]])


def test_bad_input_raises_clearly():
    with pytest.raises(ValueError, match="^kl_divergence: expected p to sum to 1"):
        prob.kl_divergence(np.array([0.5, 0.6]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="^entropy: expected p to hold finite non-negative"):
        prob.entropy(np.array([1.2, -0.2]))
    with pytest.raises(ValueError, match="^js_divergence: expected p and q over the same number"):
        prob.js_divergence(np.ones(2) / 2, np.ones(3) / 3)
    not_psd = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3, -1
    with pytest.raises(ValueError, match="^condition: expected a positive semi-definite covariance"):
        prob.condition(np.zeros(2), not_psd, [0], [1.0])
    with pytest.raises(ValueError, match="^gaussian_kl: expected a positive definite covariance"):
        prob.gaussian_kl(np.zeros(2), not_psd, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="^gaussian_entropy: expected a symmetric covariance"):
        prob.gaussian_entropy(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="^condition: expected distinct indices"):
        prob.condition(np.zeros(2), np.eye(2), [2], [1.0])


def test_jit_skips_checks_but_computes_the_same():
    p, q = random_simplex(4), random_simplex(4)
    assert float(jax.jit(prob.kl_divergence)(p, q)) == pytest.approx(float(prob.kl_divergence(p, q)), rel=1e-6)
    grad = jax.grad(lambda q: prob.cross_entropy(jnp.asarray(p), q))(jnp.asarray(q))
    np.testing.assert_allclose(grad, -p / q, rtol=1e-5)
