"""Plain convolutional classifiers of the seeds' CNN chapter: LeNet-5 and VGG.

* LeNet-5 (1998): two convolutions, each followed by average pooling (spatial
  subsampling), then three fully connected layers; sigmoid/tanh activations.
* VGG (2014): stages of stacked 3×3 convolutions (two 3×3 layers see a 5×5
  window with fewer parameters, ``2·9c² < 25c²``) separated by 2×2 pooling,
  then fully connected layers.

A conv layer with ``K`` filters of size ``p×q`` on ``c`` channels has the seeds'
``K(pqc + 1)`` parameters. With ``pool='avg'`` (and a smooth or ReLU activation)
every layer has an infinite-width kernel, so ``kernel_fn`` gives the analytic
NNGP/NTK; ``MaxPool`` has none.
"""

from __future__ import annotations

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, per_stage, pool_layer, positive_ints
from jaxdl.stax.layer import check_choice, check_positive_int


def lenet5(
    num_classes: int = 10,
    *,
    channels=(6, 16),
    hidden=(120, 84),
    filter_size: int = 5,
    padding: str = "VALID",
    activation: str = "tanh",
    pool: str = "avg",
    W_std: float = 1.0,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """LeNet-5: [Conv(c, f×f) → φ → Pool 2×2/2] for c in ``channels`` → Flatten → [Dense(h) → φ] for h in ``hidden`` → Dense(``num_classes``).

    The defaults are LeCun et al.'s network for 32×32×1 images (61 706 parameters);
    ``padding='SAME'`` keeps the convolutions from shrinking small images (8×8 digits).
    """
    name = "lenet5"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    channels = positive_ints(name, "channels", channels)
    hidden = positive_ints(name, "hidden", hidden, allow_empty=True)
    filter_size = check_positive_int(name, "filter_size", filter_size)
    padding = check_choice(name, "padding", padding, ("VALID", "SAME"))
    affine = affine_options(name, W_std, b_std, parameterization)
    layers = []
    for c in channels:
        layers += [
            stax.Conv(c, (filter_size, filter_size), padding=padding, **affine),
            make_activation(name, activation),
            pool_layer(name, pool),
        ]
    layers.append(stax.Flatten())
    for h in hidden:
        layers += [stax.Dense(h, **affine), make_activation(name, activation)]
    layers.append(stax.Dense(num_classes, **affine))
    return stax.serial(*layers)


def vgg(
    num_classes: int = 1000,
    *,
    widths=(64, 128, 256, 512, 512),
    convs_per_stage=(2, 2, 3, 3, 3),
    hidden=(4096, 4096),
    pool: str = "max",
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
):
    """VGG: per stage s [Conv(widths[s], 3×3, SAME) → φ] × convs_per_stage[s] → Pool 2×2/2; Flatten → [Dense(h) → φ] for h in ``hidden`` → Dense(``num_classes``).

    The defaults are VGG-16 (138 357 544 parameters on 224×224×3 images);
    ``convs_per_stage`` may be one int for every stage. ``pool='avg'`` gives a
    network with an analytic NNGP/NTK.
    """
    name = "vgg"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    widths = positive_ints(name, "widths", widths)
    convs_per_stage = per_stage(name, "convs_per_stage", convs_per_stage, len(widths))
    hidden = positive_ints(name, "hidden", hidden, allow_empty=True)
    affine = affine_options(name, W_std, b_std, parameterization)
    layers = []
    for width, num_convs in zip(widths, convs_per_stage):
        for _ in range(num_convs):
            layers += [stax.Conv(width, (3, 3), padding="SAME", **affine), make_activation(name, activation)]
        layers.append(pool_layer(name, pool))
    layers.append(stax.Flatten())
    for h in hidden:
        layers += [stax.Dense(h, **affine), make_activation(name, activation)]
    layers.append(stax.Dense(num_classes, **affine))
    return stax.serial(*layers)
