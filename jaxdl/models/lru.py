"""Deep linear recurrent networks (Orvieto et al., 2023): stacks of the seeds' linear
recurrent unit (:func:`jaxdl.stax.LRU`) with position-wise nonlinear mixing.

The LRU itself is linear in time; the nonlinearity lives in a position-wise
network applied at every time step, and a residual connection keeps the
identity path open through the depth. One block (pre-normalisation)::

    x ← x + Dropout(Mix(GELU(LRU(LayerNorm(x)))))

with ``Mix`` a gated linear unit ``GLU(z) = (z W_1 + b_1) ⊙ σ(z W_2 + b_2)`` or a
two-layer MLP ``Dense(e·d) → GELU → Dense(d)``. The network::

    Dense(d_model) → num_blocks × block → LayerNorm → pool over time → Dense(num_outputs)

with ``pooling`` ``"mean"`` (average over time), ``"last"`` (the last step: causal,
for streaming) or ``None`` (a read-out at every step, ``(batch, time, num_outputs)``).
The LRU has no infinite-width kernel, so neither has the model.
"""

from __future__ import annotations

import math

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation
from jaxdl.stax.layer import check_choice, check_positive_int

MIXERS = ("glu", "mlp")
POOLINGS = ("mean", "last")


def _residual(branch):
    return stax.serial(stax.FanOut(2), stax.parallel(branch, stax.Identity()), stax.FanInSum())


def lru_block(
    d_model: int,
    d_state: int,
    *,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
    mixer: str = "glu",
    expansion: int = 2,
    activation: str = "gelu",
    dropout: float = 0.0,
    mode: str = "parallel",
    radius_distribution: str = "uniform",
    W_std: float = 1.0,
    b_std: float | None = 0.1,
    parameterization: str = "standard",
):
    """x → x + Dropout(Mix(φ(LRU(LayerNorm(x))))) on ``(batch, time, d_model)``.

    Args:
      d_model: features of the input and of the output.
      d_state: complex state size of the LRU.
      r_min, r_max, max_phase, mode, radius_distribution: the LRU's (see :func:`jaxdl.stax.LRU`).
      mixer: ``"glu"`` (gated linear unit) or ``"mlp"`` (``Dense(expansion·d_model) → φ → Dense``).
      expansion: hidden width factor of the MLP mixer.
      activation: φ, a name from :data:`jaxdl.models._common.ACTIVATIONS`.
      dropout: the probability of *dropping* an entry (0: no dropout layer; otherwise
        ``apply_fn`` needs ``key=`` in training, and ``train=False`` turns it off).
      W_std, b_std, parameterization: options of every ``Dense``.
    """
    name = "lru_block"
    d_model = check_positive_int(name, "d_model", d_model)
    d_state = check_positive_int(name, "d_state", d_state)
    expansion = check_positive_int(name, "expansion", expansion)
    mixer = check_choice(name, "mixer", mixer, MIXERS)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: expected dropout (the drop probability) in [0, 1), got {dropout!r}")
    affine = affine_options(name, W_std, b_std, parameterization)

    if mixer == "glu":
        mix = stax.serial(
            stax.FanOut(2),
            stax.parallel(stax.Dense(d_model, **affine), stax.serial(stax.Dense(d_model, **affine), stax.Sigmoid())),
            stax.FanInProd(),
        )
    else:
        mix = stax.serial(
            stax.Dense(expansion * d_model, **affine), make_activation(name, activation), stax.Dense(d_model, **affine)
        )
    branch = [
        stax.LayerNorm(axis=-1, eps=1e-6),
        stax.LRU(d_state, d_model, r_min, r_max, max_phase, mode=mode, radius_distribution=radius_distribution),
        make_activation(name, activation),
        mix,
    ]
    if dropout > 0:
        branch.append(stax.Dropout(1.0 - dropout))  # stax.Dropout takes the keep probability
    return _residual(stax.serial(*branch))


def deep_lru(
    num_blocks: int,
    d_model: int,
    d_state: int,
    num_outputs: int,
    *,
    pooling: str | None = "mean",
    W_std: float = 1.0,
    b_std: float | None = 0.1,
    parameterization: str = "standard",
    **block_options,
):
    """Dense(d_model) → ``num_blocks`` × :func:`lru_block` → LayerNorm → pooling → Dense(num_outputs).

    Inputs ``(batch, time, features)``; outputs ``(batch, num_outputs)`` for
    ``pooling="mean"`` or ``"last"``, ``(batch, time, num_outputs)`` for ``pooling=None``
    (causal: the output at ``t`` sees the inputs up to ``t``, as does ``"last"``).
    ``block_options`` go to every :func:`lru_block` (``r_min``, ``r_max``, ``mixer``,
    ``dropout``, ``mode``, ...).
    """
    name = "deep_lru"
    num_blocks = check_positive_int(name, "num_blocks", num_blocks)
    d_model = check_positive_int(name, "d_model", d_model)
    d_state = check_positive_int(name, "d_state", d_state)
    num_outputs = check_positive_int(name, "num_outputs", num_outputs)
    if pooling is not None:
        pooling = check_choice(name, "pooling", pooling, POOLINGS)
    affine = affine_options(name, W_std, b_std, parameterization)
    blocks = [lru_block(d_model, d_state, **affine, **block_options) for _ in range(num_blocks)]
    pool = {None: [], "mean": [stax.GlobalAvgPool()], "last": [stax.Index(stax.Slice[:, -1])]}[pooling]
    return stax.serial(
        stax.Dense(d_model, **affine),
        *blocks,
        stax.LayerNorm(axis=-1, eps=1e-6),
        *pool,
        stax.Dense(num_outputs, **affine),
    )
