"""Deep latent Gaussian models (DLGM; Rezende, Mohamed & Wierstra 2014): stochastic layers at every level.

Seed formulas (seed 003 §9.3, "Deep Gaussian Models: generalize factor analysis with depth"):

* noise variables ``z^l ~ N(0, I)`` i.i.d., ``l = 1, …, L``;
* hidden activities, top-down ``h^L → h^1``:
  ``h^L = W^L z^L`` and ``h^l = F^l(h^{l+1}) + W^l z^l`` (``F^l`` deterministic, ``W^l z^l``
  stochastic), so ``h^l | h^{l+1} ~ N(F^l(h^{l+1}), W^l W^lᵀ)`` — with ``L = 1`` and a
  linear observation this is factor analysis, ``x ~ N(μ, W Wᵀ + Σ)``;
* the observation ``x ~ p(x | T(h^1))`` (Gaussian mean or Bernoulli logits ``T(h^1)``);
* "two coupled networks": the top-down generative network above and a bottom-up
  recognition network ``q(z|x) = Π_l N(z^l; μ_l(x), diag σ_l²(x))``; the forward pass
  is deterministic recognition and sampled generation, the gradient flows through the
  samples by stochastic backpropagation ``∇_μ E[f(z)] = E[∇_z f(z)]``.

Because every ``h^l`` is a deterministic function of the noise ``z = (z^1, …, z^L)``,
``p(x) = ∫ N(z; 0, I) p(x | T(h^1(z))) dz`` and the ELBO over the noise,
``E_q[log p(x | z)] − KL(q(z|x) || N(0, I))``, is the VAE's ELBO with the whole top-down
network as the decoder. So :func:`dlgm` builds a :class:`~jaxdl.generative.vae.VAE`
whose decoder is :func:`DeepLatentGaussian`, the generative network as one stax layer
(``z ↦ T(h^1)``): ELBO, β, IWAE and sampling are the VAE's, written once. Rezende et al.
give ``q(z^l|x)`` a rank-one-plus-diagonal covariance; here it is diagonal (the VAE's).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxdl.generative import vae as vae_lib
from jaxdl.stax.combinators import as_layer
from jaxdl.stax.layer import Layer, LayerSpec, check_array, check_key, check_shape, make_layer

NAME = "DeepLatentGaussian"


def _check_latent_dims(latent_dims) -> tuple[int, ...]:
    if isinstance(latent_dims, int) or not isinstance(latent_dims, Sequence) or not latent_dims:
        raise TypeError(f"{NAME}: expected latent_dims to be a non-empty sequence of positive ints, got {latent_dims!r}")
    for d in latent_dims:
        if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
            raise ValueError(f"{NAME}: expected latent_dims to be positive ints, got {list(latent_dims)!r}")
    return tuple(latent_dims)


def DeepLatentGaussian(latent_dims: Sequence[int], top_down: Sequence, observation) -> Layer:
    """The DLGM's generative network as a stax layer: noise ``f[..., d_1 + … + d_L]`` ↦ ``T(h^1)``.

    ``latent_dims = (d_1, …, d_L)``: ``z^l`` and ``h^l`` have ``d_l`` features, and the input
    holds ``z^1, …, z^L`` concatenated in that order. ``top_down = (F^1, …, F^{L-1})``: stax
    layers with ``F^l: f[..., d_{l+1}] → f[..., d_l]``. ``observation``: the stax layer
    ``T: f[..., d_1] → f[..., dim]`` (the likelihood's parameters). Params
    ``{"W_l": f[d_l, d_l], "F_l": …, "observation": …}``; ``W^l`` starts at the identity.
    ``apply_fn(params, z, return_hidden=True)`` also returns ``[h^1, …, h^L]``.
    No infinite-width kernel (``kernel_fn`` raises ``NotImplementedError``).
    """
    dims = _check_latent_dims(latent_dims)
    if isinstance(top_down, Layer) or not isinstance(top_down, Sequence):
        raise TypeError(f"{NAME}: expected top_down to be a sequence of {len(dims) - 1} stax layers, got {top_down!r}")
    if len(top_down) != len(dims) - 1:
        raise ValueError(f"{NAME}: expected {len(dims) - 1} top-down layers F^1..F^{len(dims) - 1} for "
                         f"{len(dims)} latent levels, got {len(top_down)}")  # fmt: skip
    top_down = [as_layer(f, NAME) for f in top_down]
    observation = as_layer(observation, NAME)
    if any(layer.stateful for layer in (*top_down, observation)):
        raise ValueError(f"{NAME}: expected stateless layers (no BatchNorm) in the generative network")
    offsets = [sum(dims[:l]) for l in range(len(dims))]
    total = sum(dims)

    def init_fn(key, input_shape):
        key = check_key(NAME, key)
        input_shape = check_shape(NAME, input_shape)
        if input_shape[-1] != total:
            raise ValueError(f"{NAME}: expected noise of shape (..., {total}) (latent_dims {list(dims)}), "
                             f"got {input_shape}")  # fmt: skip
        batch = input_shape[:-1]
        keys = jax.random.split(key, 2 * len(dims))
        params = {f"W_{l + 1}": jnp.eye(d) for l, d in enumerate(dims)}
        for l, f in enumerate(top_down):  # F^{l+1}: d_{l+2} → d_{l+1}
            out_shape, params[f"F_{l + 1}"] = f.init(keys[l], (*batch, dims[l + 1]))
            if tuple(out_shape) != (*batch, dims[l]):
                raise ValueError(f"{NAME}: expected F^{l + 1} to map (..., {dims[l + 1]}) to (..., {dims[l]}), "
                                 f"got output shape {tuple(out_shape)}")  # fmt: skip
        out_shape, params["observation"] = observation.init(keys[-1], (*batch, dims[0]))
        return out_shape, params

    def apply_fn(params, z, *, key=None, rng=None, return_hidden: bool = False, **kwargs):
        z = check_array(NAME, z)
        if z.shape[-1] != total:
            raise ValueError(f"{NAME}: expected noise of shape (..., {total}) (latent_dims {list(dims)}), "
                             f"got {tuple(z.shape)}")  # fmt: skip
        key = key if key is not None else rng
        keys = [None] * len(dims) if key is None else list(jax.random.split(key, len(dims)))

        def call(layer, layer_params, x, layer_key):
            return layer.apply(layer_params, x, **kwargs) if layer_key is None else \
                layer.apply(layer_params, x, key=layer_key, **kwargs)  # fmt: skip

        def noise(l):  # W^l z^l (l counted from 0)
            return z[..., offsets[l] : offsets[l] + dims[l]] @ params[f"W_{l + 1}"].T.astype(z.dtype)

        h = noise(len(dims) - 1)  # h^L = W^L z^L
        hidden = [h]
        for l in reversed(range(len(dims) - 1)):  # h^l = F^l(h^{l+1}) + W^l z^l
            h = call(top_down[l], params[f"F_{l + 1}"], h, keys[l + 1]) + noise(l)
            hidden.insert(0, h)
        out = call(observation, params["observation"], h, keys[0])
        return (out, hidden) if return_hidden else out

    spec = LayerSpec(NAME, {"latent_dims": dims}, tuple(layer.spec for layer in (*top_down, observation)))
    return make_layer(NAME, init_fn, apply_fn, spec)


def dlgm(recognition, latent_dims: Sequence[int], top_down: Sequence, observation, likelihood: str = "gaussian",
         obs_log_var: float | None = None) -> vae_lib.VAE:  # fmt: skip
    """A deep latent Gaussian model with its recognition network, as a
    :class:`~jaxdl.generative.vae.VAE` over the concatenated noise ``z = (z^1, …, z^L)``.

    ``recognition``: a stax layer ``x ↦ (μ, log σ²)`` with ``2 (d_1 + … + d_L)`` outputs
    (all the means, then all the log-variances, each level after level); the generative
    network is :func:`DeepLatentGaussian` ``(latent_dims, top_down, observation)``.
    ``model.elbo``, ``model.iwae`` and ``model.sample`` are the VAE's; the hidden
    activities are ``model.decoder.apply(params["decoder"], z, return_hidden=True)[1]``.
    """
    generative = DeepLatentGaussian(latent_dims, top_down, observation)
    return vae_lib.vae(recognition, generative, sum(_check_latent_dims(latent_dims)), likelihood, obs_log_var)
