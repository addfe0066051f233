"""Generative adversarial networks: the seeds' losses, WGAN-GP, and three ways to train the game.

Seed formulas implemented (lecture notes, "Generative Adversarial Networks"):

* the minimax objective  V(D, G) = E_{x~p_data}[log D(x)] + E_z[log(1 - D(G(z)))], maximised by the
  discriminator and minimised by the generator                   (:func:`minimax_value`,
  :func:`discriminator_loss` = -V, :func:`minimax_generator_loss`);
* the Bayes-optimal discriminator  D*(x) = p(x)/(p(x) + p_θ(x)) at which V = -log 4 + 2 JS(p, p_θ)
  (the notes' ℓ* = JS - log 2 per class-balanced sample)   (:func:`optimal_discriminator`,
  :func:`jensen_shannon`);
* the non-saturating generator loss  -E_z[log D(G(z))], whose gradient does not vanish when D
  rejects the fakes                                            (:func:`nonsaturating_generator_loss`);
* the Wasserstein GAN  min_G max_{D 1-Lipschitz} E[D(x)] - E[D(G(z))] with the gradient penalty
  λ E_x̂[(||∇_x̂ D(x̂)||₂ - 1)²], x̂ = α x + (1 - α) G(z), α ~ U(0, 1)
  (:func:`wasserstein_critic_loss`, :func:`wasserstein_generator_loss`, :func:`gradient_penalty`);
* training: alternating gradient steps (the notes' θ_{t+1} from (θ_t, φ_t), then φ_{t+1} from
  (θ_{t+1}, φ_t)) with any optax optimiser, e.g. Adam (:func:`alternating_step`); extragradient on the
  game's vector field F = (∇_θ L_G, ∇_φ L_D) (:func:`extragradient_step`, via
  :func:`jaxdl.optim.extragradient`); or any optax transform of F, e.g. optimistic gradient descent
  (:func:`simultaneous_step`).

Discriminators return logits (D = sigmoid(logit)), critics return unbounded scores; both map a batch
(batch, *dims) to (batch,) or (batch, 1). All losses are computed from logits with log-sigmoid, so a
confident discriminator never produces log(0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdl.optim import extragradient

LOSSES = ("minimax", "nonsaturating", "wgan-gp")


def _scores(fn: str, values):
    values = jnp.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"{fn}: expected discriminator outputs of shape (batch,) or (batch, 1), got {values.shape}")
    return values


def minimax_value(real_logits, fake_logits):
    """V(D, G) = mean log D(x_real) + mean log(1 - D(x_fake)), D = sigmoid(logit)."""
    real_logits = _scores("minimax_value", real_logits)
    fake_logits = _scores("minimax_value", fake_logits)
    return jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def discriminator_loss(real_logits, fake_logits):
    """-V(D, G): the logistic loss of classifying real as 1 and fake as 0 (minimised by D)."""
    return -minimax_value(real_logits, fake_logits)


def minimax_generator_loss(fake_logits):
    """mean log(1 - D(G(z))): the generator's side of the minimax game (minimised by G; saturates)."""
    return jnp.mean(jax.nn.log_sigmoid(-_scores("minimax_generator_loss", fake_logits)))


def nonsaturating_generator_loss(fake_logits):
    """-mean log D(G(z)): same fixed point as the minimax loss, strong gradients when D wins."""
    return -jnp.mean(jax.nn.log_sigmoid(_scores("nonsaturating_generator_loss", fake_logits)))


def wasserstein_critic_loss(real_scores, fake_scores):
    """mean D(G(z)) - mean D(x): minus the critic's estimate of W₁ (minimised by the critic)."""
    return jnp.mean(_scores("wasserstein_critic_loss", fake_scores)) - jnp.mean(
        _scores("wasserstein_critic_loss", real_scores))


def wasserstein_generator_loss(fake_scores):
    """-mean D(G(z)) (minimised by the generator)."""
    return -jnp.mean(_scores("wasserstein_generator_loss", fake_scores))


def gradient_penalty(critic_fn: Callable, real, fake, key, weight: float = 10.0):
    """λ E_x̂[(||∇_x̂ D(x̂)||₂ - 1)²] at x̂ = α x_real + (1 - α) x_fake, one α ~ U(0, 1) per example.

    ``critic_fn(x)`` maps a batch to per-example scores and must treat examples independently (no
    batch statistics), so that the gradient of the summed scores is each example's own gradient.
    The norm is sqrt(||g||² + 1e-12): finite gradient at g = 0.
    """
    if not callable(critic_fn):
        raise TypeError(f"gradient_penalty: expected a callable critic_fn(x), got {critic_fn!r}")
    real, fake = jnp.asarray(real), jnp.asarray(fake)
    if real.shape != fake.shape or real.ndim < 2:
        raise ValueError(f"gradient_penalty: expected real and fake of one shape (batch, *dims), "
                         f"got {real.shape} and {fake.shape}")
    if not weight >= 0:
        raise ValueError(f"gradient_penalty: expected weight >= 0, got {weight!r}")
    alpha = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = alpha * real + (1.0 - alpha) * fake
    grads = jax.grad(lambda x: jnp.sum(_scores("gradient_penalty", critic_fn(x))))(x_hat)
    norms = jnp.sqrt(jnp.sum(grads**2, axis=tuple(range(1, real.ndim))) + 1e-12)
    return weight * jnp.mean((norms - 1.0) ** 2)


def optimal_discriminator(p_data, p_model):
    """D*(x) = p(x)/(p(x) + p_θ(x)) from (unnormalised alike) densities or probabilities; 1/2 where both vanish."""
    p_data, p_model = jnp.asarray(p_data), jnp.asarray(p_model)
    if p_data.shape != p_model.shape:
        raise ValueError(f"optimal_discriminator: expected p_data and p_model of one shape, "
                         f"got {p_data.shape} and {p_model.shape}")
    total = p_data + p_model
    return jnp.where(total > 0, p_data / jnp.where(total > 0, total, 1.0), 0.5)


def jensen_shannon(p, q):
    """JS(p, q) = ½ KL(p || m) + ½ KL(q || m), m = (p + q)/2, in nats, for probability vectors (last axis)."""
    p, q = jnp.asarray(p), jnp.asarray(q)
    if p.shape != q.shape or p.ndim < 1:
        raise ValueError(f"jensen_shannon: expected two probability vectors of one shape, got {p.shape} and {q.shape}")
    m = 0.5 * (p + q)

    def kl(a):
        return jnp.sum(jnp.where(a > 0, a * (jnp.log(jnp.where(a > 0, a, 1.0)) - jnp.log(jnp.where(a > 0, m, 1.0))),
                               0.0), axis=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


class GANLosses(NamedTuple):
    """``discriminator(d_params, g_params, real, key)`` and ``generator(g_params, d_params, real, key)``,
    each the loss its own player minimises on one batch of real data."""

    discriminator: Callable
    generator: Callable


def gan_losses(generator_apply: Callable, discriminator_apply: Callable, latent_dim: int,
               loss: str = "nonsaturating", gp_weight: float = 10.0) -> GANLosses:
    """The two players' losses for a generator G(z), z ~ N(0, I_latent_dim), and discriminator/critic.

    ``loss``: "minimax" (D: -V, G: mean log(1 - D(G(z)))), "nonsaturating" (D: -V, G: -mean log D(G(z)))
    or "wgan-gp" (critic: W-loss + gradient penalty with weight ``gp_weight``, G: -mean D(G(z))).
    Both losses draw a fresh batch of z (one per real example) from ``key``; using the same key in
    both keeps them on one sample, as extragradient needs.
    """
    if loss not in LOSSES:
        raise ValueError(f"gan_losses: expected loss in {LOSSES}, got {loss!r}")
    if not callable(generator_apply) or not callable(discriminator_apply):
        raise TypeError("gan_losses: expected callable generator_apply and discriminator_apply")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"gan_losses: expected a positive integer latent_dim, got {latent_dim!r}")

    def fakes(g_params, real, key):
        z = jax.random.normal(key, (real.shape[0], latent_dim), real.dtype)
        return generator_apply(g_params, z)

    def d_loss(d_params, g_params, real, key):
        key_z, key_gp = jax.random.split(key)
        fake = jax.lax.stop_gradient(fakes(g_params, real, key_z))
        real_out = discriminator_apply(d_params, real)
        fake_out = discriminator_apply(d_params, fake)
        if loss == "wgan-gp":
            penalty = gradient_penalty(lambda x: discriminator_apply(d_params, x), real, fake, key_gp, gp_weight)
            return wasserstein_critic_loss(real_out, fake_out) + penalty
        return discriminator_loss(real_out, fake_out)

    def g_loss(g_params, d_params, real, key):
        key_z, _ = jax.random.split(key)
        fake_out = discriminator_apply(d_params, fakes(g_params, real, key_z))
        if loss == "wgan-gp":
            return wasserstein_generator_loss(fake_out)
        if loss == "minimax":
            return minimax_generator_loss(fake_out)
        return nonsaturating_generator_loss(fake_out)

    return GANLosses(d_loss, g_loss)


class GANState(NamedTuple):
    g_params: object
    d_params: object
    g_opt_state: object
    d_opt_state: object


def init_gan_state(g_params, d_params, g_optimizer: optax.GradientTransformation | None = None,
                   d_optimizer: optax.GradientTransformation | None = None) -> GANState:
    """Bundle both players' parameters with their optimiser states (``None`` for optimiser-free steps)."""
    return GANState(g_params, d_params,
                    None if g_optimizer is None else g_optimizer.init(g_params),
                    None if d_optimizer is None else d_optimizer.init(d_params))


def alternating_step(losses: GANLosses, g_optimizer: optax.GradientTransformation,
                     d_optimizer: optax.GradientTransformation, critic_steps: int = 1) -> Callable:
    """``step(state, real, key) -> (state, (d_loss, g_loss))``: ``critic_steps`` discriminator updates
    on the (critic_steps, batch, *dims) stack ``real`` (a plain batch when critic_steps = 1), then one
    generator update against the new discriminator. Jit it yourself."""
    if isinstance(critic_steps, bool) or not isinstance(critic_steps, int) or critic_steps < 1:
        raise ValueError(f"alternating_step: expected a positive integer critic_steps, got {critic_steps!r}")
    d_grad = jax.value_and_grad(losses.discriminator)
    g_grad = jax.value_and_grad(losses.generator)

    def step(state: GANState, real, key):
        real = jnp.asarray(real)
        batches = real[None] if critic_steps == 1 else real
        if batches.shape[0] != critic_steps:
            raise ValueError(f"alternating_step: expected {critic_steps} stacked real batches, got {batches.shape[0]}")
        keys = jax.random.split(key, critic_steps + 1)

        def d_update(carry, inputs):
            d_params, d_opt_state = carry
            batch, k = inputs
            value, grads = d_grad(d_params, state.g_params, batch, k)
            updates, d_opt_state = d_optimizer.update(grads, d_opt_state, d_params)
            return (optax.apply_updates(d_params, updates), d_opt_state), value

        (d_params, d_opt_state), d_values = jax.lax.scan(
            d_update, (state.d_params, state.d_opt_state), (batches, keys[:-1]))
        g_value, grads = g_grad(state.g_params, d_params, batches[-1], keys[-1])
        updates, g_opt_state = g_optimizer.update(grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        return GANState(g_params, d_params, g_opt_state, d_opt_state), (d_values[-1], g_value)

    return step


def game_vector_field(losses: GANLosses, real, key) -> Callable:
    """F(g, d) = (∇_g L_G(g, d), ∇_d L_D(d, g)) on one fixed batch and noise draw.

    Each player descends its own loss; for the zero-sum minimax loss this is
    :func:`jaxdl.optim.minmax_vector_field`'s (∇_θ ℓ, -∇_φ ℓ)."""

    def field(params):
        g_params, d_params = params
        return (jax.grad(losses.generator)(g_params, d_params, real, key),
                jax.grad(losses.discriminator)(d_params, g_params, real, key))

    return field


def extragradient_step(losses: GANLosses, learning_rate: float) -> Callable:
    """``step(state, real, key) -> (state, (d_loss, g_loss))``: one extragradient step
    z ← z - η F(z - η F(z)) on z = (g, d) (Korpelevich; the notes' remedy for GDA cycling)."""

    def step(state: GANState, real, key):
        field = game_vector_field(losses, real, key)
        g_params, d_params = extragradient(field, (state.g_params, state.d_params), learning_rate)
        values = (losses.discriminator(d_params, g_params, real, key), losses.generator(g_params, d_params, real, key))
        return GANState(g_params, d_params, state.g_opt_state, state.d_opt_state), values

    return step


def simultaneous_step(losses: GANLosses, optimizer: optax.GradientTransformation) -> Callable:
    """``step(state, real, key) -> (state, (d_loss, g_loss))``: one update of the joint (g, d) by an optax
    transform of the vector field F, e.g. ``jaxdl.optim.optimistic_gradient_descent``. The joint
    optimiser state lives in ``state.g_opt_state`` (initialise it with ``optimizer.init((g, d))``)."""

    def step(state: GANState, real, key):
        params = (state.g_params, state.d_params)
        updates, opt_state = optimizer.update(game_vector_field(losses, real, key)(params), state.g_opt_state, params)
        g_params, d_params = optax.apply_updates(params, updates)
        values = (losses.discriminator(d_params, g_params, real, key), losses.generator(g_params, d_params, real, key))
        return GANState(g_params, d_params, opt_state, None), values

    return step
