"""Score matching: fit ψ_θ ≈ ∇_x log p without ever normalising the model.

Seed formulas implemented (lecture notes, "Density Estimation", score matching):

* the criterion J(θ) = E ||ψ_θ - ψ||² with ψ = ∇ log p, which by integration by parts equals, up to a
  constant, the implicit score-matching loss  E[Σ_i ∂_i ψ_θ,i(x) + ½ ψ_θ,i(x)²]  (Hyvärinen 2005)
                                                                   (:func:`implicit_score_matching_loss`);
* denoising score matching (Vincent 2011): with x̃ = x + σ z, z ~ N(0, I),
  ½ E ||ψ_θ(x̃) + z/σ||²  is minimised by the score of the noised density p_σ = p * N(0, σ² I);
  σ → 0 recovers ∇ log p. A diffusion model's ε-loss is this loss at every noise level, with
  ψ = -ε/√(1-ᾱ_t) (:func:`jaxdl.generative.diffusion.eps_to_score`)      (:func:`dsm_loss`).

A score model is ``score_fn(params, x) -> (batch, d)`` on a batch x of shape (batch, d).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _check(fn: str, score_fn, x):
    if not callable(score_fn):
        raise TypeError(f"{fn}: expected a callable score_fn(params, x), got {score_fn!r}")
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{fn}: expected x of shape (batch, d), got {x.shape}")
    return x


def implicit_score_matching_loss(score_fn: Callable, params, x):
    """E[tr ∇_x ψ_θ(x) + ½ ||ψ_θ(x)||²] over the batch (exact Jacobian trace: d forward-mode passes)."""
    x = _check("implicit_score_matching_loss", score_fn, x)
    scores = score_fn(params, x)
    if scores.shape != x.shape:
        raise ValueError(f"implicit_score_matching_loss: score_fn returned {scores.shape}, expected {x.shape}")
    jac = jax.vmap(jax.jacfwd(lambda xi: score_fn(params, xi[None])[0]))(x)
    trace = jnp.trace(jac, axis1=1, axis2=2)
    return jnp.mean(trace + 0.5 * jnp.sum(scores**2, axis=1))


def dsm_loss(score_fn: Callable, params, x, key, sigma: float):
    """½ E ||ψ_θ(x + σ z) + z/σ||², z ~ N(0, I) (one draw per example); minimiser ∇ log (p * N(0, σ² I))."""
    x = _check("dsm_loss", score_fn, x)
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"dsm_loss: expected a noise level sigma > 0, got {sigma!r}")
    z = jax.random.normal(key, x.shape, x.dtype)
    scores = score_fn(params, x + sigma * z)
    if scores.shape != x.shape:
        raise ValueError(f"dsm_loss: score_fn returned {scores.shape}, expected {x.shape}")
    return 0.5 * jnp.mean(jnp.sum((scores + z / sigma) ** 2, axis=1))
