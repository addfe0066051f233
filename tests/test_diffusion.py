"""Diffusion (jaxdl.generative.diffusion) against closed forms, brute-force Gaussian conditioning and
Monte Carlo: for Gaussian data the exact denoiser ε*(x_t, t) = E[ε | x_t] is linear, so every
reverse-process quantity has an independent closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.generative import diffusion as D

MEAN = np.array([1.0, -0.5])
COV = np.array([[0.8, 0.3], [0.3, 0.5]])


def exact_eps(schedule, mean=MEAN, cov=COV):
    """ε*(x_t, t) = √(1-ᾱ_t) C_t⁻¹ (x_t - √ᾱ_t m), C_t = ᾱ_t S + (1-ᾱ_t) I, for x_0 ~ N(m, S)."""
    ab_all = np.asarray(schedule.alpha_bars, np.float64)
    d = len(mean)
    precisions = np.stack([np.linalg.inv(a * cov + (1 - a) * np.eye(d)) for a in ab_all])
    precisions = jnp.asarray(precisions, jnp.float32)
    ab_all = jnp.asarray(ab_all, jnp.float32)
    mean = jnp.asarray(mean, jnp.float32)

    def eps_apply(params, x, t):
        a = ab_all[t - 1][:, None]
        centred = x - jnp.sqrt(a) * mean
        return jnp.sqrt(1 - a) * jnp.einsum("bij,bj->bi", precisions[t - 1], centred)

    return eps_apply


def gaussian_condition(m1, v1, m2, v2, c12, x2):
    """Mean and covariance of x1 | x2 for a jointly Gaussian (x1, x2)."""
    gain = c12 @ np.linalg.inv(v2)
    return m1 + gain @ (x2 - m2), v1 - gain @ c12.T


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_constants_match_their_definitions(kind):
    T = 50
    s = D.noise_schedule(kind, T, dtype=jnp.float32)
    betas = np.asarray(s.betas, np.float64)
    if kind == "linear":
        np.testing.assert_allclose(betas[[0, -1]], [20 * 1e-4, 20 * 0.02], rtol=1e-6)
    else:
        f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        np.testing.assert_allclose(np.asarray(s.alpha_bars[:-1]), [f(t) / f(0) for t in range(1, T)], rtol=1e-4)
    ab = np.cumprod(1 - betas)
    np.testing.assert_allclose(np.asarray(s.alpha_bars), ab, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(s.alpha_bars_prev), np.r_[1.0, ab[:-1]], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(s.posterior_variances), (1 - np.r_[1.0, ab[:-1]]) / (1 - ab) * betas,
                               rtol=1e-4, atol=1e-8)
    assert s.alpha_bars[-1] < 1e-3 and np.all(np.diff(ab) < 0)


def test_bad_arguments_raise_named_errors():
    s = D.noise_schedule("linear", 10)
    with pytest.raises(ValueError, match="^noise_schedule:"):
        D.noise_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="^noise_schedule:"):
        D.noise_schedule("linear", 0)
    with pytest.raises(TypeError, match="^q_sample:"):
        D.q_sample(s, jnp.zeros((3, 2)), jnp.ones(3), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="^q_sample:"):
        D.q_sample(s, jnp.zeros((3, 2)), jnp.ones(3, jnp.int32), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="^ddim_sample:"):
        D.ddim_sample(lambda p, x, t: x, None, s, (4, 2), jax.random.key(0), eta=-1.0)
    with pytest.raises(ValueError, match="^eps_loss:"):
        D.eps_loss(lambda p, x, t, c: x, None, s, jnp.zeros((3, 2)), jax.random.key(0), cond_drop_prob=0.5)


@pytest.mark.slow  # q_sample's marginal is also checked, more cheaply, by the variational-bound Monte Carlo test
def test_q_sample_marginal_matches_simulated_forward_chain():
    s = D.noise_schedule("cosine", 30)
    n, t = 40000, 17
    x0 = jnp.full((n, 1), 1.5)
    x = x0
    keys = jax.random.split(jax.random.key(0), t)
    for step in range(t):  # x_t = √(1-β_t) x_{t-1} + √β_t e_t, one step at a time
        x = jnp.sqrt(1 - s.betas[step]) * x + jnp.sqrt(s.betas[step]) * jax.random.normal(keys[step], x.shape)
    closed = D.q_sample(s, x0, jnp.full((n,), t, jnp.int32), jax.random.normal(jax.random.key(1), x0.shape))
    for sample in (x, closed):
        np.testing.assert_allclose(float(sample.mean()), 1.5 * math.sqrt(float(s.alpha_bars[t - 1])), atol=0.02)
        np.testing.assert_allclose(float(sample.var()), 1 - float(s.alpha_bars[t - 1]), atol=0.02)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_posterior_equals_brute_force_gaussian_conditioning(kind):
    s = D.noise_schedule(kind, 40)
    x0 = jnp.array([[0.7], [-1.2], [2.0]])
    x_t = jnp.array([[0.1], [0.5], [-0.3]])
    for t in (1, 2, 13, 40):
        mean, var = D.posterior_mean_variance(s, x0, x_t, jnp.full((3,), t, jnp.int32))
        ab_prev = float(s.alpha_bars_prev[t - 1])
        alpha, beta = float(s.alphas[t - 1]), float(s.betas[t - 1])
        for i in range(3):
            # joint of (x_{t-1}, x_t) given x_0:
            # x_{t-1} ~ N(√ᾱ_{t-1} x_0, 1-ᾱ_{t-1}), x_t = √α_t x_{t-1} + √β_t e.
            m1, v1 = math.sqrt(ab_prev) * float(x0[i, 0]), 1 - ab_prev
            m, v = gaussian_condition(np.array([m1]), np.array([[v1]]), np.array([math.sqrt(alpha) * m1]),
                                      np.array([[alpha * v1 + beta]]), np.array([[math.sqrt(alpha) * v1]]),
                                      np.array([float(x_t[i, 0])]))
            np.testing.assert_allclose(float(mean[i, 0]), m[0], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(float(var[i, 0]), v[0, 0], rtol=1e-3, atol=1e-6)


def test_exact_denoiser_gives_the_true_reverse_mean():
    """With ε*, μ_θ(x_t, t) = E[x_{t-1} | x_t] (brute-force conditioning with x_0 integrated out)
    = μ̃_t(E[x_0 | x_t], x_t), the closed-form posterior at the posterior-mean x_0."""
    s = D.noise_schedule("linear", 100)
    eps_apply = exact_eps(s)
    x_t = jnp.array([[0.3, -1.0], [2.0, 0.4]])
    for t in (2, 30, 100):
        tt = jnp.full((2,), t, jnp.int32)
        eps = eps_apply(None, x_t, tt)
        mu = np.asarray(D.model_mean(s, x_t, tt, eps), np.float64)
        ab, ab_prev = float(s.alpha_bars[t - 1]), float(s.alpha_bars_prev[t - 1])
        alpha, beta = float(s.alphas[t - 1]), float(s.betas[t - 1])
        v_prev = ab_prev * COV + (1 - ab_prev) * np.eye(2)
        for i in range(2):
            xt = np.asarray(x_t[i], np.float64)
            m_prev, _ = gaussian_condition(math.sqrt(ab_prev) * MEAN, v_prev, math.sqrt(ab) * MEAN,
                                           alpha * v_prev + beta * np.eye(2), math.sqrt(alpha) * v_prev, xt)
            np.testing.assert_allclose(mu[i], m_prev, rtol=1e-4, atol=1e-4)
            x0_mean, _ = gaussian_condition(MEAN, COV, math.sqrt(ab) * MEAN, ab * COV + (1 - ab) * np.eye(2),
                                            math.sqrt(ab) * COV, xt)
            post, _ = D.posterior_mean_variance(s, jnp.asarray(x0_mean, jnp.float32)[None], x_t[i:i + 1],
                                                jnp.array([t], jnp.int32))
            np.testing.assert_allclose(np.asarray(post[0]), m_prev, rtol=1e-4, atol=1e-4)
        # x̂_0 from ε* is E[x_0 | x_t] too, and the score is -ε*/√(1-ᾱ_t) = -C_t⁻¹(x_t - √ᾱ_t m).
        score = np.asarray(D.eps_to_score(s, tt, eps))
        want = -(np.asarray(x_t) - math.sqrt(ab) * MEAN) @ np.linalg.inv(ab * COV + (1 - ab) * np.eye(2)).T
        np.testing.assert_allclose(score, want, rtol=1e-3, atol=1e-4)


def test_eps_loss_of_exact_denoiser_is_the_posterior_variance_of_the_noise():
    """E||ε - ε*||²/d = mean_t tr(I - (1-ᾱ_t) C_t⁻¹)/d, the irreducible part of L_simple."""
    s = D.noise_schedule("cosine", 20)
    eps_apply = exact_eps(s)
    x0 = jax.random.multivariate_normal(jax.random.key(0), jnp.asarray(MEAN), jnp.asarray(COV), (20000,))
    got = float(D.eps_loss(eps_apply, None, s, x0, jax.random.key(1)))
    want = np.mean([np.trace(np.eye(2) - (1 - a) * np.linalg.inv(a * COV + (1 - a) * np.eye(2))) / 2
                    for a in np.asarray(s.alpha_bars, np.float64)])
    np.testing.assert_allclose(got, want, rtol=0.03)


def test_eps_loss_drops_the_condition_at_the_requested_rate():
    s = D.noise_schedule("linear", 10)
    seen = []

    def eps_apply(params, x, t, cond):
        seen.append(cond)
        return jnp.zeros_like(x)

    D.eps_loss(eps_apply, None, s, jnp.zeros((20000, 1)), jax.random.key(3), jnp.zeros(20000, jnp.int32),
               cond_drop_prob=0.25, null_cond=7)
    assert abs(float(jnp.mean(seen[0] == 7)) - 0.25) < 0.015
    assert set(np.unique(np.asarray(seen[0]))) == {0, 7}


def _moments(x):
    x = np.asarray(x, np.float64)
    return x.mean(0), np.cov(x.T)


def test_ddpm_and_ddim_with_exact_denoiser_reproduce_the_data_moments():
    s = D.noise_schedule("linear", 100)
    eps_apply = exact_eps(s)
    n = 6000
    samples = {
        "ddpm": D.ddpm_sample(eps_apply, None, s, (n, 2), jax.random.key(0)),
        "ddim": D.ddim_sample(eps_apply, None, s, (n, 2), jax.random.key(1), num_steps=50),
        "ddim_eta_half": D.ddim_sample(eps_apply, None, s, (n, 2), jax.random.key(2), eta=0.5, num_steps=100),
    }
    for name, x in samples.items():
        m, c = _moments(x)
        np.testing.assert_allclose(m, MEAN, atol=0.05, err_msg=name)
        np.testing.assert_allclose(c, COV, atol=0.06, err_msg=name)


def test_ddim_eta0_is_deterministic_and_eta1_is_ddpm_with_posterior_variance():
    s = D.noise_schedule("cosine", 25)
    eps_apply = exact_eps(s)
    x_init = jax.random.normal(jax.random.key(5), (64, 2))
    a = D.ddim_sample(eps_apply, None, s, (64, 2), jax.random.key(0), x_init=x_init)
    b = D.ddim_sample(eps_apply, None, s, (64, 2), jax.random.key(1), x_init=x_init)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ddim1, path = D.ddim_sample(eps_apply, None, s, (64, 2), jax.random.key(2), eta=1.0, x_init=x_init,
                                return_trajectory=True)
    ddpm = D.ddpm_sample(eps_apply, None, s, (64, 2), jax.random.key(2), variance="posterior", x_init=x_init)
    np.testing.assert_allclose(np.asarray(ddim1), np.asarray(ddpm), rtol=1e-4, atol=1e-4)
    assert path.shape == (26, 64, 2)
    np.testing.assert_array_equal(np.asarray(path[0]), np.asarray(x_init))


def test_classifier_free_guidance_combines_the_two_predictions():
    def eps_apply(params, x, t, cond):
        return x * jnp.where(cond == 9, 1.0, 2.0)[:, None]

    guided = D.classifier_free_guidance(eps_apply, 1.5, null_cond=9)
    x = jnp.ones((3, 2))
    out = guided(None, x, jnp.ones(3, jnp.int32), jnp.array([0, 1, 2]))
    np.testing.assert_allclose(np.asarray(out), (1 + 1.5) * 2.0 - 1.5 * 1.0)


def test_variational_bound_equals_monte_carlo_of_the_log_density_ratio():
    """E_q[log q(x_{1:T}|x_0) - log p_θ(x_{0:T})] by simulating whole forward chains with explicit
    Gaussian log densities, for an arbitrary (linear, untrained) ε-model."""
    T = 4
    s = D.noise_schedule("linear", T, beta_start=0.05, beta_end=0.4)

    def eps_apply(params, x, t):
        return params[0] * x + params[1] * (t[:, None] / T)

    params = (0.6, -0.3)
    n = 20000
    x0 = jnp.broadcast_to(jnp.array([[0.8, -0.4]]), (n, 2))
    bound = D.variational_bound(eps_apply, params, s, x0, jax.random.key(0))

    def log_normal(x, mean, var):
        return jnp.sum(-0.5 * (x - mean) ** 2 / var - 0.5 * jnp.log(2 * jnp.pi * var), axis=1)

    keys = jax.random.split(jax.random.key(1), T)
    xs = [x0]
    for t in range(1, T + 1):
        beta = s.betas[t - 1]
        xs.append(jnp.sqrt(1 - beta) * xs[-1] + jnp.sqrt(beta) * jax.random.normal(keys[t - 1], x0.shape))
    log_q = sum(log_normal(xs[t], jnp.sqrt(1 - s.betas[t - 1]) * xs[t - 1], s.betas[t - 1]) for t in range(1, T + 1))
    log_p = log_normal(xs[T], 0.0, 1.0)
    for t in range(1, T + 1):
        tt = jnp.full((n,), t, jnp.int32)
        mu = D.model_mean(s, xs[t], tt, eps_apply(params, xs[t], tt))
        var = s.betas[t - 1]  # decoder variance β_1 at t = 1, model variance β_t above
        log_p = log_p + log_normal(xs[t - 1], mu, var)
    direct = log_q - log_p
    np.testing.assert_allclose(float(bound.mean()), float(direct.mean()), rtol=0.01, atol=0.05)
    assert bound.shape == (n,)


@pytest.mark.slow
def test_variational_bound_of_exact_denoiser_bounds_the_true_negative_log_likelihood():
    s = D.noise_schedule("linear", 100)
    x0 = jax.random.multivariate_normal(jax.random.key(0), jnp.asarray(MEAN), jnp.asarray(COV), (4000,))
    bound = float(D.variational_bound(exact_eps(s), None, s, x0, jax.random.key(1)).mean())
    entropy = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * COV))  # E[-log p(x_0)] for Gaussian data
    # bound >= E[-log p_θ] >= entropy (up to Monte Carlo error); measured gap ≈ 0.09 nat.
    assert entropy - 0.05 < bound < entropy + 0.2, (bound, entropy)
    grads = jax.grad(lambda p: D.variational_bound(lambda q, x, t: q * x, p, s, x0[:8], jax.random.key(2)).sum())(0.1)
    assert np.isfinite(float(grads))
