"""Variational autoencoders: the ELBO with the reparameterisation trick, β-VAE, the IWAE bound.

Seed formulas (seed 001 §19.1, seed 003 §9.3 and §10.1):

* evidence lower bound ``log p_θ(x) ≥ L(θ, φ; x) = E_{q_φ(z|x)}[log p_θ(x|z)] − D_KL(q_φ(z|x) || p(z))``
  (:meth:`VAE.elbo`; the KL term of a diagonal Gaussian against ``N(0, I)`` in closed
  form, ``½ Σ (μ² + σ² − 1 − log σ²)``); β-VAE weighs the KL term by ``β``;
* the reparameterisation trick ``z = μ + Σ^{1/2} ε``, ``ε ~ N(0, I)``, so that
  ``∇_μ E[f(z)] = E[∇_z f(z)]`` (stochastic backpropagation, seed 003 §9.3) and the
  ELBO's gradient flows into the encoder;
* the importance-weighted bound (Burda et al. 2016) with ``k`` samples
  ``L_k = E[log 1/k Σ_i p(x, z_i) / q(z_i|x)]``: ``L_1`` is the ELBO,
  ``L_k ≤ L_{k+1} ≤ log p(x)`` and ``L_k → log p(x)`` (:meth:`VAE.iwae`).

A VAE is built from two stax triples: an ``encoder`` mapping ``x`` to
``2 * latent_dim`` outputs ``(μ, log σ²)`` and a ``decoder`` mapping ``z`` to the
likelihood's parameters (Gaussian: the mean, with a learnt per-pixel log-variance
in ``params["log_var"]`` or a fixed one; Bernoulli: the logits). With a linear
decoder and a Gaussian likelihood this is the linear-Gaussian (factor-analysis)
model of :mod:`jaxdl.generative.linear`, whose exact marginal likelihood the tests
use as the reference. The seeds' deep latent Gaussian model, with stochastic layers
at every level, is this VAE with the top-down network of :mod:`jaxdl.generative.dlgm`
as its decoder. Written by hand: flax/optax have no VAE.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

_LOG_2PI = float(np.log(2 * np.pi))
LIKELIHOODS = ("gaussian", "bernoulli")


@dataclasses.dataclass(frozen=True)
class VAE:
    """A VAE over vectors ``f[..., dim]`` (see :func:`vae`)."""

    encoder: object
    decoder: object
    likelihood: str
    latent_dim: int
    obs_log_var: float | None

    def init(self, key, input_shape):
        """Params ``{"encoder", "decoder"[, "log_var"]}`` for inputs of ``input_shape`` ``(-1, dim)``."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"VAE.init: expected input_shape (batch, dim), got {input_shape!r}")
        enc_key, dec_key = jax.random.split(key)
        enc_shape, enc_params = self.encoder.init(enc_key, input_shape)
        if enc_shape[-1] != 2 * self.latent_dim:
            raise ValueError(
                f"VAE.init: the encoder must output 2 * latent_dim = {2 * self.latent_dim} features, got {enc_shape}"
            )
        dec_shape, dec_params = self.decoder.init(dec_key, (input_shape[0], self.latent_dim))
        if dec_shape[-1] != input_shape[-1]:
            raise ValueError(f"VAE.init: the decoder must output {input_shape[-1]} features, got {dec_shape}")
        params = {"encoder": enc_params, "decoder": dec_params}
        if self.likelihood == "gaussian" and self.obs_log_var is None:
            params["log_var"] = jnp.zeros((input_shape[-1],))
        return params

    def encode(self, params, x):
        """``(μ, log σ²)`` of ``q(z|x)``, each ``f[..., latent_dim]``."""
        out = self.encoder.apply(params["encoder"], x)
        return out[..., : self.latent_dim], out[..., self.latent_dim :]

    def log_likelihood(self, params, x, z):
        """``log p(x | z)`` summed over the ``dim`` coordinates (``x`` and ``z`` share leading axes)."""
        out = self.decoder.apply(params["decoder"], z)
        if self.likelihood == "bernoulli":  # x log σ(l) + (1 − x) log σ(−l)
            return -jnp.sum(x * jax.nn.softplus(-out) + (1 - x) * jax.nn.softplus(out), axis=-1)
        log_var = params["log_var"] if self.obs_log_var is None else jnp.full(x.shape[-1], self.obs_log_var)
        return -0.5 * jnp.sum((x - out) ** 2 * jnp.exp(-log_var) + log_var + _LOG_2PI, axis=-1)

    def _posterior_samples(self, params, x, key, num_samples):
        mean, log_var = self.encode(params, x)
        eps = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
        return mean + jnp.exp(0.5 * log_var) * eps, mean, log_var, eps  # reparameterisation

    def elbo(self, params, x, key, *, beta: float = 1.0, num_samples: int = 1):
        """Per-example ``E_q[log p(x|z)] − β KL(q(z|x) || N(0, I))`` (nats), the expectation by
        ``num_samples`` reparameterised draws and the KL in closed form; ``β = 1`` is the ELBO."""
        x = self._check(x, "VAE.elbo")
        z, mean, log_var, _ = self._posterior_samples(params, x, key, num_samples)
        reconstruction = jnp.mean(self.log_likelihood(params, x, z), axis=0)
        return reconstruction - beta * kl_to_standard_normal(mean, log_var)

    def iwae(self, params, x, key, num_samples: int):
        """Per-example importance-weighted bound ``log 1/k Σ_i p(x, z_i)/q(z_i|x)`` with
        ``k = num_samples`` draws ``z_i ~ q(z|x)`` (nats); ``k = 1`` is an unbiased ELBO estimate."""
        x = self._check(x, "VAE.iwae")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"VAE.iwae: expected num_samples to be a positive int, got {num_samples!r}")
        z, _, log_var, eps = self._posterior_samples(params, x, key, num_samples)
        log_q = -0.5 * jnp.sum(eps**2 + log_var + _LOG_2PI, axis=-1)
        log_prior = -0.5 * jnp.sum(z**2 + _LOG_2PI, axis=-1)
        log_w = self.log_likelihood(params, x, z) + log_prior - log_q
        return jax.scipy.special.logsumexp(log_w, axis=0) - jnp.log(num_samples)

    def decode(self, params, z):
        """The likelihood's mean: the Gaussian mean or the Bernoulli probabilities."""
        out = self.decoder.apply(params["decoder"], z)
        return jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out

    def sample(self, params, key, num_samples: int, *, mean: bool = True):
        """Draws from ``p(x) = ∫ p(z) p(x|z) dz``; ``mean=True`` returns the mean of ``p(x|z)``
        for each ``z ~ N(0, I)`` (the usual picture), ``False`` a full draw."""
        z_key, x_key = jax.random.split(key)
        z = jax.random.normal(z_key, (num_samples, self.latent_dim))
        centre = self.decode(params, z)
        if mean:
            return centre
        if self.likelihood == "bernoulli":
            return jax.random.bernoulli(x_key, centre).astype(centre.dtype)
        log_var = params["log_var"] if self.obs_log_var is None else jnp.full(centre.shape[-1], self.obs_log_var)
        return centre + jnp.exp(0.5 * log_var) * jax.random.normal(x_key, centre.shape, centre.dtype)

    def _check(self, x, name):
        if not hasattr(x, "shape"):
            x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{name}: expected data of shape (batch, dim), got {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}: expected float data, got dtype {x.dtype}")
        return x


def kl_to_standard_normal(mean, log_var):
    """``KL(N(μ, diag σ²) || N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²)`` over the last axis."""
    return 0.5 * jnp.sum(mean**2 + jnp.exp(log_var) - 1.0 - log_var, axis=-1)


def vae(encoder, decoder, latent_dim: int, likelihood: str = "gaussian", obs_log_var: float | None = None) -> VAE:
    """A VAE from stax ``encoder`` (``x ↦ (μ, log σ²)``, ``2 * latent_dim`` outputs) and
    ``decoder`` (``z ↦`` the Gaussian mean or the Bernoulli logits). ``obs_log_var``: a
    fixed Gaussian log-variance; ``None`` learns one per coordinate."""
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"vae: expected latent_dim to be a positive int, got {latent_dim!r}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"vae: expected likelihood to be one of {list(LIKELIHOODS)}, got {likelihood!r}")
    for name, net in (("encoder", encoder), ("decoder", decoder)):
        if not (hasattr(net, "init") and hasattr(net, "apply")):
            raise TypeError(f"vae: expected {name} to be a stax layer (init, apply, kernel), got {net!r}")
    if obs_log_var is not None and likelihood != "gaussian":
        raise ValueError("vae: obs_log_var only applies to the gaussian likelihood")
    return VAE(encoder, decoder, likelihood, latent_dim, obs_log_var)
