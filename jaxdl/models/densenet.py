"""The dense block of DenseNet (Huang et al., 2017): the seeds' skip connection
"concatenate the previous layer back in", applied at every layer, so layer ``l``
sees the block input and the outputs of all earlier layers, and a block of
``L`` layers with growth rate ``k`` on ``c`` channels outputs ``c + L k`` channels."""

from __future__ import annotations

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation
from jaxdl.stax.layer import check_positive_int


def densenet_block(
    num_layers: int = 4,
    growth_rate: int = 12,
    *,
    bottleneck: int | None = None,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """Dense block: ``num_layers`` × [x → concat(x, Conv3×3(growth_rate)(φ(BN(x))))].

    ``bottleneck=b`` inserts DenseNet-B's ``φ(BN(Conv1×1(b)(·)))`` before each 3×3
    convolution (``b = 4 · growth_rate`` in the paper). ``batch_norm=False`` gives a
    stateless block. There is no analytic NNGP/NTK: from the second layer on, the
    nonlinearity acts on a concatenation of channels with different covariances,
    which is not one Gaussian process.
    """
    name = "densenet_block"
    num_layers = check_positive_int(name, "num_layers", num_layers)
    growth_rate = check_positive_int(name, "growth_rate", growth_rate)
    if bottleneck is not None:
        bottleneck = check_positive_int(name, "bottleneck", bottleneck)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"{name}: expected batch_norm to be a bool, got {batch_norm!r}")
    affine = affine_options(name, W_std, b_std, parameterization)

    def pre_activation():
        norm = [stax.BatchNorm(momentum=bn_momentum)] if batch_norm else []
        return [*norm, make_activation(name, activation)]

    def new_features():
        layers = pre_activation()
        if bottleneck is not None:
            layers += [stax.Conv(bottleneck, (1, 1), **affine), *pre_activation()]
        layers.append(stax.Conv(growth_rate, (3, 3), padding="SAME", **affine))
        return stax.serial(*layers)

    layer = lambda: stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), new_features()), stax.FanInConcat(axis=-1))
    return stax.serial(*[layer() for _ in range(num_layers)])
