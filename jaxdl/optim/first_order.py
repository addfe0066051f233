"""First-order optimisers of the lecture notes as ``optax.GradientTransformation``s.

Each rule below is the seeds' formula; where optax already computes it, the
function only builds the optax chain (and says which), so that it composes with
every other optax transformation. Written here, because optax lacks them: the
Robbins-Monro schedule and the L1 proximal step (soft-thresholding).

Seed formulas (h: the loss, g_t = ∇h(θ_t), η: learning rate, η_t: its schedule):

* GD / SGD:     θ_{t+1} = θ_t − η g_t                      -> ``optax.sgd``
* heavy ball:   θ_{t+1} = θ_t − η g_t + β(θ_t − θ_{t−1})   -> ``scale_by_learning_rate`` then
  ``trace(β)``: the update u_t = −η_t g_t + β u_{t−1} is exactly θ_{t+1} − θ_t, for any schedule.
* Nesterov:     θ̃_{t+1} = θ_t + β(θ_t − θ_{t−1}),  θ_{t+1} = θ̃_{t+1} − η ∇h(θ̃_{t+1}).
  A gradient transformation only sees the gradient at the params it holds, so
  the params it holds are the look-ahead points y_t = θ̃_{t+1} = θ_t + β v_t
  (v_t = θ_t − θ_{t−1}, v_0 = 0, so y_0 = θ_0). Then
  v_{t+1} = β v_t − η_t ∇h(y_t) and y_{t+1} − y_t = −η_t ∇h(y_t) + β v_{t+1}, which is
  ``scale_by_learning_rate`` then ``trace(β, nesterov=True)`` (optax's
  reparameterised NAG). The seeds' iterate is recovered as θ_t = y_t − β v_t,
  with v_t the trace in the optimiser state.
* AdaGrad:      ν_t = ν_{t−1} + g_t²,  θ_{t+1} = θ_t − η g_t / √(ν_t + ε)
  -> ``optax.adagrad`` with ``initial_accumulator_value=0``.
* RMSprop:      ν_t = ρ ν_{t−1} + (1 − ρ) g_t²,  θ_{t+1} = θ_t − η g_t / √(ν_t + ε)
  -> ``optax.rmsprop`` (ε inside the root, zero initial scale).
* Adam:         m_t = β₁ m_{t−1} + (1 − β₁) g_t, v_t = β₂ v_{t−1} + (1 − β₂) g_t²,
  m̂_t = m_t/(1 − β₁ᵗ), v̂_t = v_t/(1 − β₂ᵗ), θ_{t+1} = θ_t − η m̂_t/(√v̂_t + ε) -> ``optax.adam``.
* Muon:         M_t = β M_{t−1} + ∇_W h,  P_t = orthogonalize(M_t),  W_{t+1} = W_t − η s P_t
  -> ``optax.contrib.muon`` with ``nesterov=False``. Its EMA momentum with bias
  correction is a positive multiple of the seeds' M_t, and orthogonalisation
  (Frobenius normalisation, then 5 Newton-Schulz steps X ← aX + b(XXᵀ)X + c(XXᵀ)²X)
  ignores positive scale, so the direction is the seeds'. The scale is optax's
  s = √max(1, d_out/d_in) (the seeds write √(d_out/d_in); they agree when
  d_out ≥ d_in). W is stored ``(d_in, d_out)`` (``x @ W``). Non-matrix params
  (biases) are updated by AdamW, as in optax.
* Robbins-Monro: Σ η_t = ∞, Σ η_t² < ∞, with η_t = c (t + 1)^{−α}, ½ < α ≤ 1.
* weight decay: θ_{t+1} = θ_t − η(∇h(θ_t) + μ θ_t) -> ``optax.add_decayed_weights(μ)``
  chained before the optimiser (GD on h + μ/2 ‖θ‖²).
* L1 (soft-thresholding): prox of η_t λ‖·‖₁, w ← sign(w)·max(|w| − η_t λ, 0),
  applied to the point the inner optimiser proposes (proximal gradient / ISTA).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import contrib as optax_contrib

from jaxdl.optim._checks import check_learning_rate, check_momentum, check_positive


def sgd(learning_rate) -> optax.GradientTransformation:
    """(Stochastic) gradient descent, θ_{t+1} = θ_t − η_t g_t; ``optax.sgd``."""
    check_learning_rate("sgd", learning_rate)
    return optax.sgd(learning_rate)


def heavy_ball(learning_rate, beta: float = 0.9) -> optax.GradientTransformation:
    """Polyak's heavy ball, θ_{t+1} = θ_t − η_t ∇h(θ_t) + β(θ_t − θ_{t−1}), with θ_{−1} = θ_0."""
    check_learning_rate("heavy_ball", learning_rate)
    check_momentum("heavy_ball", "beta", beta)
    return optax.chain(optax.scale_by_learning_rate(learning_rate), optax.trace(decay=beta))


def nesterov(learning_rate, beta: float = 0.9) -> optax.GradientTransformation:
    """Nesterov's accelerated gradient in look-ahead coordinates (see the module docstring).

    The params this optimiser holds are the look-ahead points θ̃ where the seeds
    evaluate the gradient; the seeds' iterate is θ = θ̃ − β·v with ``v`` the
    momentum trace in the state (``state[1].trace``).
    """
    check_learning_rate("nesterov", learning_rate)
    check_momentum("nesterov", "beta", beta)
    return optax.chain(
        optax.scale_by_learning_rate(learning_rate), optax.trace(decay=beta, nesterov=True)
    )


def adagrad(learning_rate, eps: float = 1e-7) -> optax.GradientTransformation:
    """AdaGrad, θ_{t+1} = θ_t − η g_t / √(Σ_{s≤t} g_s² + ε); ``optax.adagrad`` from a zero accumulator."""
    check_learning_rate("adagrad", learning_rate)
    check_positive("adagrad", "eps", eps)
    return optax.adagrad(learning_rate, initial_accumulator_value=0.0, eps=eps)


def rmsprop(learning_rate, decay: float = 0.9, eps: float = 1e-8) -> optax.GradientTransformation:
    """RMSprop, ν_t = ρν_{t−1} + (1 − ρ)g_t², θ_{t+1} = θ_t − η g_t/√(ν_t + ε); ``optax.rmsprop``."""
    check_learning_rate("rmsprop", learning_rate)
    check_momentum("rmsprop", "decay", decay)
    check_positive("rmsprop", "eps", eps)
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, initial_scale=0.0, eps_in_sqrt=True)


def adam(
    learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam with bias correction, θ_{t+1} = θ_t − η m̂_t/(√v̂_t + ε); ``optax.adam``."""
    check_learning_rate("adam", learning_rate)
    check_momentum("adam", "b1", b1)
    check_momentum("adam", "b2", b2)
    check_positive("adam", "eps", eps)
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def muon(
    learning_rate, beta: float = 0.95, *, nesterov: bool = False, ns_steps: int = 5
) -> optax.GradientTransformation:
    """Muon, W ← W − η s·orthogonalize(M_t) for matrix params; ``optax.contrib.muon``.

    ``nesterov=False`` (the default here) is the seeds' plain momentum
    M_t = βM_{t−1} + ∇h; ``True`` is optax's default Nesterov variant.
    """
    check_learning_rate("muon", learning_rate)
    check_momentum("muon", "beta", beta)
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or ns_steps < 1:
        raise ValueError(f"muon: expected ns_steps to be a positive int, got {ns_steps!r}")
    return optax_contrib.muon(learning_rate, beta=beta, ns_steps=ns_steps, nesterov=nesterov)


def robbins_monro(c: float, alpha: float) -> optax.Schedule:
    """The step-size schedule η_t = c·(t + 1)^{−α} (t = 0, 1, ...), ½ < α ≤ 1.

    For α in (½, 1] it meets the Robbins-Monro conditions Σ η_t = ∞ and
    Σ η_t² < ∞; any other α violates one of them, and is refused.
    """
    check_positive("robbins_monro", "c", c)
    check_positive("robbins_monro", "alpha", alpha)
    if not 0.5 < alpha <= 1.0:
        raise ValueError(
            "robbins_monro: expected 1/2 < alpha <= 1 (so that sum eta_t = inf and "
            f"sum eta_t^2 < inf), got alpha={alpha!r}"
        )

    def schedule(count):
        return c * (jnp.asarray(count, jnp.float32) + 1.0) ** (-alpha)

    return schedule


def weight_decay(rate: float, mask=None) -> optax.GradientTransformation:
    """Adds μθ to the gradient (L2 regularisation μ/2 ‖θ‖²); chain it before an optimiser.

    ``optax.chain(weight_decay(mu), sgd(eta))`` is θ_{t+1} = θ_t − η(∇h(θ_t) + μθ_t).
    ``mask``: as in ``optax.add_decayed_weights`` (e.g. decay weights, not biases).
    """
    check_positive("weight_decay", "rate", rate, allow_zero=True)
    return optax.add_decayed_weights(rate, mask)


class L1ProxState(NamedTuple):
    """State of :func:`l1_prox`: the number of steps taken (for a scheduled step size)."""

    count: jax.Array


def soft_threshold(x: jax.Array, threshold) -> jax.Array:
    """The prox of threshold·‖·‖₁: sign(x)·max(|x| − threshold, 0), elementwise."""
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - threshold, 0.0)


def l1_prox(strength: float, learning_rate) -> optax.GradientTransformation:
    """Proximal step of the L1 penalty λ‖θ‖₁, chained after a gradient optimiser.

    Given the inner optimiser's update u, the new params are the soft-threshold
    of θ + u at η_t λ, so ``optax.chain(sgd(eta), l1_prox(lam, eta))`` is ISTA,
    proximal gradient descent on h(θ) + λ‖θ‖₁. Needs ``params`` in ``update``.
    """
    check_positive("l1_prox", "strength", strength, allow_zero=True)
    check_learning_rate("l1_prox", learning_rate)
    step_size = learning_rate if callable(learning_rate) else (lambda count: learning_rate)

    def init_fn(params):
        del params
        return L1ProxState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("l1_prox: update needs params (the prox acts on θ + update), got None")
        threshold = step_size(state.count) * strength
        new_updates = jax.tree.map(
            lambda p, u: (soft_threshold(p + u, threshold) - p).astype(u.dtype), params, updates
        )
        return new_updates, L1ProxState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)
