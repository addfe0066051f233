"""Residual networks (the seeds' residual layer ``F(x) = x + [φ(Wx + b) - φ(0)]``,
``F[0, 0] = id``: each block learns a correction to the identity; when the
shape changes, ``x`` is linearly projected).

Blocks are He et al.'s *pre-activation* basic blocks (ResNet v2)::

    y = shortcut(x) + Conv3×3(φ(BN(Conv3×3/stride(φ(BN(x))))))

with ``shortcut`` the identity, or a strided 1×1 convolution of ``φ(BN(x))``
when the stride or the channel count changes (projection shortcut). Every
branch that meets in the sum ends in an affine layer, so without BatchNorm the
network has an analytic NNGP/NTK (``batch_norm=False``); with BatchNorm it is a
stateful model (``model.init_state``, ``apply_fn(..., state=, train=)``).
"""

from __future__ import annotations

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, per_stage, positive_ints
from jaxdl.stax.layer import check_positive_int


def _bool(model: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{model}: expected {name} to be a bool, got {value!r}")
    return value


def resnet_block(
    width: int,
    *,
    stride: int = 1,
    projection: bool = False,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """Pre-activation basic block: x → shortcut(x) + Conv3×3(φ(BN(Conv3×3/stride(φ(BN(x)))))).

    ``projection=True`` makes the shortcut a 1×1 convolution with ``stride`` (needed
    when ``stride > 1`` or the input does not have ``width`` channels); otherwise the
    shortcut is the identity.
    """
    name = "resnet_block"
    width = check_positive_int(name, "width", width)
    stride = check_positive_int(name, "stride", stride)
    projection = _bool(name, "projection", projection)
    batch_norm = _bool(name, "batch_norm", batch_norm)
    if stride > 1 and not projection:
        raise ValueError(f"{name}: expected projection=True for stride {stride} > 1 (the identity cannot subsample)")
    affine = affine_options(name, W_std, b_std, parameterization)

    def pre_activation():
        norm = [stax.BatchNorm(momentum=bn_momentum)] if batch_norm else []
        return [*norm, make_activation(name, activation)]

    residual = stax.serial(
        stax.Conv(width, (3, 3), (stride, stride), padding="SAME", **affine),
        *pre_activation(),
        stax.Conv(width, (3, 3), padding="SAME", **affine),
    )
    if projection:
        shortcut = stax.Conv(width, (1, 1), (stride, stride), padding="SAME", **affine)
        return stax.serial(*pre_activation(), stax.FanOut(2), stax.parallel(residual, shortcut), stax.FanInSum())
    residual = stax.serial(*pre_activation(), residual)
    return stax.serial(stax.FanOut(2), stax.parallel(residual, stax.Identity()), stax.FanInSum())


def resnet(
    num_classes: int = 10,
    *,
    widths=(16, 32, 64),
    blocks_per_stage=2,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """ResNet: Conv3×3(widths[0]) → stages of pre-activation basic blocks (widths[s] channels, the first block of stage s > 0 with stride 2 and a projection shortcut) → [BN] → φ → GlobalAvgPool → Dense(``num_classes``).

    ``blocks_per_stage``: an int or one int per stage (``(2, 2, 2)`` with
    ``widths=(16, 32, 64)`` is He et al.'s CIFAR ResNet-14 layout). Inputs are
    ``(batch, height, width, channels)`` images. ``batch_norm=False`` gives a
    stateless network with an analytic NNGP/NTK.
    """
    name = "resnet"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    widths = positive_ints(name, "widths", widths)
    blocks_per_stage = per_stage(name, "blocks_per_stage", blocks_per_stage, len(widths))
    batch_norm = _bool(name, "batch_norm", batch_norm)
    affine = affine_options(name, W_std, b_std, parameterization)
    options = dict(batch_norm=batch_norm, activation=activation, bn_momentum=bn_momentum, **affine)
    layers = [stax.Conv(widths[0], (3, 3), padding="SAME", **affine)]
    for stage, (width, num_blocks) in enumerate(zip(widths, blocks_per_stage)):
        for block in range(num_blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            projection = block == 0 and (stride > 1 or (stage > 0 and widths[stage - 1] != width))
            layers.append(resnet_block(width, stride=stride, projection=projection, **options))
    if batch_norm:
        layers.append(stax.BatchNorm(momentum=bn_momentum))
    layers += [make_activation(name, activation), stax.GlobalAvgPool(), stax.Dense(num_classes, **affine)]
    return stax.serial(*layers)
