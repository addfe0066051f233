"""GAN losses (jaxdl.generative.gan) against the seeds' optimal-discriminator identity, finite
differences, and a tiny game whose equilibrium is known."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.generative import gan


def test_minimax_value_at_optimal_discriminator_is_minus_log4_plus_2jsd():
    """On discrete distributions the expectations are exact sums: V(D*, G) = -log 4 + 2 JS(p, q)."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.dirichlet(np.ones(6))
        q = rng.dirichlet(np.ones(6))
        q[rng.integers(6)] = 0.0  # a point the generator never produces: D* = 1 there
        q /= q.sum()
        d_star = np.asarray(gan.optimal_discriminator(p, q), np.float64)
        value = np.sum(p * np.log(d_star)) + np.sum(np.where(q > 0, q * np.log1p(-np.minimum(d_star, 1 - 1e-12)), 0.0))
        m = 0.5 * (p + q)
        js = 0.5 * sum(a * np.log(a / b) for a, b in zip(p, m) if a > 0) + \
            0.5 * sum(a * np.log(a / b) for a, b in zip(q, m) if a > 0)
        np.testing.assert_allclose(float(gan.jensen_shannon(p, q)), js, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(value, -np.log(4) + 2 * js, rtol=1e-5, atol=1e-6)
        # D* maximises V: any other discriminator scores lower.
        other = np.clip(d_star + rng.normal(0, 0.05, 6), 1e-3, 1 - 1e-3)
        assert np.sum(p * np.log(other)) + np.sum(q * np.log1p(-other)) <= value + 1e-6
    assert float(gan.jensen_shannon(p, p)) == pytest.approx(0.0, abs=1e-7)


def test_losses_from_logits_match_their_probability_forms():
    real = jnp.array([2.0, -1.0, 0.3])
    fake = jnp.array([-3.0, 0.5, 40.0])  # one confidently-accepted fake: log(1 - D) = -40, finite
    d = lambda s: 1 / (1 + np.exp(-np.asarray(s, np.float64)))  # noqa: E731
    value = np.mean(np.log(d(real))) + np.mean(np.log1p(-d(fake[:2])).tolist() + [-40.0])
    np.testing.assert_allclose(float(gan.minimax_value(real, fake)), value, rtol=1e-5)
    np.testing.assert_allclose(float(gan.discriminator_loss(real, fake)), -value, rtol=1e-5)
    np.testing.assert_allclose(float(gan.nonsaturating_generator_loss(fake[:2])), -np.mean(np.log(d(fake[:2]))),
                               rtol=1e-5)
    np.testing.assert_allclose(float(gan.minimax_generator_loss(fake[:2])), np.mean(np.log1p(-d(fake[:2]))), rtol=1e-5)
    np.testing.assert_allclose(float(gan.wasserstein_critic_loss(real, fake)), float(fake.mean() - real.mean()))
    # non-saturation: where D rejects the fake (logit -10) the minimax gradient vanishes, the NS one does not.
    g_mm = jax.grad(lambda s: gan.minimax_generator_loss(s))(jnp.array([-10.0]))
    g_ns = jax.grad(lambda s: gan.nonsaturating_generator_loss(s))(jnp.array([-10.0]))
    assert abs(float(g_mm[0])) < 1e-4 and abs(float(g_ns[0])) > 0.99


def test_gradient_penalty_matches_finite_difference_gradient_norms():
    w1 = jax.random.normal(jax.random.key(0), (3, 16))
    w2 = jax.random.normal(jax.random.key(1), (16,))

    def critic(x):
        return jnp.tanh(x @ w1) @ w2

    real = jax.random.normal(jax.random.key(2), (5, 3))
    fake = jax.random.normal(jax.random.key(3), (5, 3)) + 2.0
    key = jax.random.key(4)
    got = float(gan.gradient_penalty(critic, real, fake, key, weight=10.0))
    # same interpolation weights as the function (one uniform per example from the same key)
    alpha = np.asarray(jax.random.uniform(key, (5, 1)), np.float64)
    x_hat = alpha * np.asarray(real, np.float64) + (1 - alpha) * np.asarray(fake, np.float64)
    f = lambda x: np.tanh(x @ np.asarray(w1, np.float64)) @ np.asarray(w2, np.float64)  # noqa: E731
    h = 1e-5
    norms = []
    for x in x_hat:
        g = [(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(3)]
        norms.append(np.linalg.norm(g))
    np.testing.assert_allclose(got, 10.0 * np.mean((np.array(norms) - 1) ** 2), rtol=1e-3)
    # a 1-Lipschitz linear critic with unit gradient has zero penalty; a constant one has penalty λ, finitely.
    assert float(gan.gradient_penalty(lambda x: x @ jnp.array([0.6, 0.8, 0.0]), real, fake, key)) < 1e-8
    zero = jax.grad(lambda c: gan.gradient_penalty(lambda x: c * jnp.sum(x * 0, axis=1), real, fake, key))(1.0)
    assert np.isfinite(float(zero))


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ValueError, match="^minimax_value:"):
        gan.minimax_value(jnp.zeros((3, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match="^gan_losses:"):
        gan.gan_losses(lambda p, z: z, lambda p, x: x, 2, loss="hinge")
    with pytest.raises(ValueError, match="^gradient_penalty:"):
        gan.gradient_penalty(lambda x: x[:, 0], jnp.zeros((3, 2)), jnp.zeros((4, 2)), jax.random.key(0))
    with pytest.raises(ValueError, match="^jensen_shannon:"):
        gan.jensen_shannon(jnp.ones(3) / 3, jnp.ones(4) / 4)


def _shift_game(loss):
    """Data N(3, 1) in 1-D, generator G(z) = z + b, logistic or linear discriminator on (x, x²)."""
    def generator(b, z):
        return z + b

    def discriminator(w, x):
        return w[0] * x[:, 0] + w[1] * x[:, 0] ** 2 + w[2]

    return gan.gan_losses(generator, discriminator, latent_dim=1, loss=loss)


@pytest.mark.parametrize("method", ["alternating_adam", "extragradient", "optimistic"])
def test_training_methods_move_the_generator_to_the_data_mean(method):
    losses = _shift_game("nonsaturating")
    real_all = 3.0 + jax.random.normal(jax.random.key(0), (400, 256, 1))
    b0, w0 = jnp.array(0.0), jnp.zeros(3)
    if method == "alternating_adam":
        g_opt, d_opt = optax.adam(0.05, b1=0.5), optax.adam(0.05, b1=0.5)
        state = gan.init_gan_state(b0, w0, g_opt, d_opt)
        step = gan.alternating_step(losses, g_opt, d_opt)
    elif method == "extragradient":
        state = gan.init_gan_state(b0, w0)
        step = gan.extragradient_step(losses, 0.1)
    else:
        opt = optax.optimistic_gradient_descent(0.05)
        state = gan.GANState(b0, w0, opt.init((b0, w0)), None)
        step = gan.simultaneous_step(losses, opt)

    def body(state, inputs):
        real, key = inputs
        state, values = step(state, real, key)
        return state, state.g_params

    state, path = jax.lax.scan(body, state, (real_all, jax.random.split(jax.random.key(1), 400)))
    assert abs(float(jnp.mean(path[-50:])) - 3.0) < 0.3, method


def test_wgan_gp_critic_reaches_its_closed_form_optimum():
    """Data N(3, 1), generator frozen at G(z) = z + 1, linear critic f(x) = w x + c: the critic loss
    w (1 - 3) + λ(|w| - 1)² is minimised at w* = 1 + 1/λ, value -2(1 + 1/λ) + 1/λ (λ = 10)."""
    losses = gan.gan_losses(lambda b, z: z + b, lambda w, x: w[0] * x[:, 0] + w[1], latent_dim=1, loss="wgan-gp")
    g_opt, d_opt = optax.set_to_zero(), optax.adam(0.02)
    state = gan.init_gan_state(jnp.array(1.0), jnp.zeros(2), g_opt, d_opt)
    step = gan.alternating_step(losses, g_opt, d_opt, critic_steps=5)
    real = 3.0 + jax.random.normal(jax.random.key(0), (300, 5, 512, 1))

    def body(state, inputs):
        state, values = step(state, *inputs)
        return state, values

    state, (d_values, g_values) = jax.lax.scan(body, state, (real, jax.random.split(jax.random.key(1), 300)))
    assert float(state.g_params) == 1.0
    np.testing.assert_allclose(float(state.d_params[0]), 1.1, atol=0.03)
    np.testing.assert_allclose(float(jnp.mean(d_values[-50:])), -2.2 + 0.1, atol=0.1)
    assert np.all(np.isfinite(np.asarray(g_values)))
