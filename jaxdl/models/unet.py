"""U-Net (Ronneberger et al., 2015), the seeds' encoder-decoder for pixel-wise
classification: a contracting path (convolutions and 2×2 pooling) captures
context, an expansive path (2×2 transposed convolutions, "up-convs") restores
the resolution, and skip connections concatenate each encoder level's
high-resolution features to the decoder at the same level."""

from __future__ import annotations

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, pool_layer, positive_ints
from jaxdl.stax.layer import check_positive_int


def unet(
    out_channels: int = 2,
    *,
    widths=(64, 128, 256, 512, 1024),
    convs_per_level: int = 2,
    pool: str = "max",
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """U-Net: level l = [Conv3×3(widths[l]) → φ]×n → concat(·, ConvTranspose2×2/2(widths[l])(level l+1 of Pool2×2/2(·))) → [Conv3×3(widths[l]) → φ]×n; output Conv1×1(``out_channels``).

    The output has the input's height and width when both are divisible by
    ``2**(len(widths) - 1)`` (SAME convolutions, where the original paper crops).
    The defaults are the paper's widths. ``pool='avg'`` gives a network with an
    analytic NNGP/NTK.
    """
    name = "unet"
    out_channels = check_positive_int(name, "out_channels", out_channels)
    widths = positive_ints(name, "widths", widths)
    convs_per_level = check_positive_int(name, "convs_per_level", convs_per_level)
    affine = affine_options(name, W_std, b_std, parameterization)

    def convs(width):
        layers = []
        for _ in range(convs_per_level):
            layers += [stax.Conv(width, (3, 3), padding="SAME", **affine), make_activation(name, activation)]
        return layers

    def level(index: int):
        width = widths[index]
        if index == len(widths) - 1:
            return stax.serial(*convs(width))
        down_and_up = stax.serial(
            pool_layer(name, pool),
            level(index + 1),
            stax.ConvTranspose(width, (2, 2), (2, 2), padding="VALID", **affine),
        )
        return stax.serial(
            *convs(width),
            stax.FanOut(2),
            stax.parallel(stax.Identity(), down_and_up),
            stax.FanInConcat(axis=-1),
            *convs(width),
        )

    return stax.serial(level(0), stax.Conv(out_channels, (1, 1), **affine))
