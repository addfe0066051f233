"""The Inception module of the seeds' CNN chapter (GoogLeNet, 2014): instead of
choosing one filter size, run 1×1, 3×3 and 5×5 convolutions and a pooling
branch side by side and concatenate their channels; 1×1 "bottleneck"
convolutions shrink the channels before the expensive 3×3 and 5×5 filters."""

from __future__ import annotations

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, pool_layer, positive_ints
from jaxdl.stax.layer import check_positive_int


def inception_block(
    c1: int = 64,
    c3=(96, 128),
    c5=(16, 32),
    pool_proj: int = 32,
    *,
    pool: str = "max",
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """Inception: concat[φ(Conv1×1(c1)), φ(Conv3×3(c3[1])(φ(Conv1×1(c3[0])))), φ(Conv5×5(c5[1])(φ(Conv1×1(c5[0])))), φ(Conv1×1(pool_proj)(Pool3×3/1))].

    ``c3`` and ``c5`` are ``(bottleneck channels, output channels)``; every
    branch keeps the spatial size (SAME padding, stride 1), and the output has
    ``c1 + c3[1] + c5[1] + pool_proj`` channels. The defaults are GoogLeNet's
    block 3a. ``pool='avg'`` gives a block with an analytic NNGP/NTK.
    """
    name = "inception_block"
    c1 = check_positive_int(name, "c1", c1)
    pool_proj = check_positive_int(name, "pool_proj", pool_proj)
    c3, c5 = (positive_ints(name, label, pair) for label, pair in (("c3", c3), ("c5", c5)))
    if len(c3) != 2 or len(c5) != 2:
        raise ValueError(f"{name}: expected c3 and c5 as (bottleneck, output) channel pairs, got {c3!r} and {c5!r}")
    affine = affine_options(name, W_std, b_std, parameterization)

    def conv(channels, size):
        return [stax.Conv(channels, (size, size), padding="SAME", **affine), make_activation(name, activation)]

    branches = [
        stax.serial(*conv(c1, 1)),
        stax.serial(*conv(c3[0], 1), *conv(c3[1], 3)),
        stax.serial(*conv(c5[0], 1), *conv(c5[1], 5)),
        stax.serial(pool_layer(name, pool, (3, 3), (1, 1), "SAME"), *conv(pool_proj, 1)),
    ]
    return stax.serial(stax.FanOut(4), stax.parallel(*branches), stax.FanInConcat(axis=-1))
