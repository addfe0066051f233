"""The multilayer perceptron (the seeds' composition of layers
``G = F^L ∘ ... ∘ F^1`` with ``F^l(x) = φ(W^l x + b^l)``), as a stax triple."""

from __future__ import annotations

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, positive_ints
from jaxdl.stax.layer import check_positive_int


def mlp(
    widths=(512, 512),
    num_classes: int = 10,
    *,
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """MLP: Flatten → [Dense(w) → φ] for w in ``widths`` → Dense(``num_classes``).

    Inputs of any shape ``(batch, ...)`` are flattened first; ``activation`` is
    one of ``relu, tanh, sigmoid, erf, gelu``. Parameters:
    ``sum_l (n_{l-1} + 1) n_l`` (without biases when ``b_std`` is None).
    Has an analytic NNGP/NTK.
    """
    name = "mlp"
    widths = positive_ints(name, "widths", widths, allow_empty=True)
    num_classes = check_positive_int(name, "num_classes", num_classes)
    affine = affine_options(name, W_std, b_std, parameterization)
    layers = [stax.Flatten()]
    for width in widths:
        layers += [stax.Dense(width, **affine), make_activation(name, activation)]
    layers.append(stax.Dense(num_classes, **affine))
    return stax.serial(*layers)
