"""Optimisers of the lecture notes, as optax ``GradientTransformation``s where the rule fits one.

* first order: :func:`sgd`, :func:`heavy_ball`, :func:`nesterov`, :func:`adagrad`,
  :func:`rmsprop`, :func:`adam`, :func:`muon`, schedules :func:`robbins_monro`,
  regularisers :func:`weight_decay` and :func:`l1_prox` (soft-thresholding);
* iterate averaging: :func:`polyak_averaging`, read with :func:`averaged_params`;
* games: :func:`extragradient`, :func:`optimistic_gradient_descent` (optax's),
  :func:`minmax_vector_field`;
* second order: :func:`newton_step`.

Everything composes with ``optax.chain`` and the rest of optax.
"""

from jaxdl.optim.averaging import PolyakAveragingState, averaged_params, polyak_averaging
from jaxdl.optim.first_order import (
    L1ProxState,
    adagrad,
    adam,
    heavy_ball,
    l1_prox,
    muon,
    nesterov,
    rmsprop,
    robbins_monro,
    sgd,
    soft_threshold,
    weight_decay,
)
from jaxdl.optim.games import extragradient, minmax_vector_field, optimistic_gradient_descent
from jaxdl.optim.second_order import newton_step

__all__ = [
    "L1ProxState",
    "PolyakAveragingState",
    "adagrad",
    "adam",
    "averaged_params",
    "extragradient",
    "heavy_ball",
    "l1_prox",
    "minmax_vector_field",
    "muon",
    "nesterov",
    "newton_step",
    "optimistic_gradient_descent",
    "polyak_averaging",
    "rmsprop",
    "robbins_monro",
    "sgd",
    "soft_threshold",
    "weight_decay",
]
