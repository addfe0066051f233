"""Image augmentation as pure functions of a PRNG key ("transform input data to
train invariances", seeds' tricks-of-the-trade chapter).

Every augmentation is ``aug(key, x) -> x'`` on a channels-last batch
``f[N, H, W, C]`` (or one image ``f[H, W, C]``), draws independent randomness
per image, keeps shape and dtype, and works under ``jax.jit``/``jax.vmap``
(hyperparameters are fixed when the augmentation is built):

* :func:`random_crop` / :func:`random_shift`: pad by ``p`` pixels (zeros, edge
  or reflection) and cut an ``H x W`` window at a random offset, i.e. shift the
  image by ``(dy, dx)``, ``|dy|, |dx| <= p``;
* :func:`random_flip`: mirror left-right (or up-down) with probability ``prob``;
  :func:`flip_left_right` is the deterministic mirror;
* :func:`gaussian_noise`: add ``N(0, std**2)`` to every pixel;
* :func:`compose`: apply several in order, each with its own split of the key.

:func:`as_batch_transform` turns an augmentation into the
``batch_transform(key, x, y) -> (x, y)`` that ``jaxdl.train.fit`` applies to
every minibatch inside its jitted step (reshaping flat ``f[N, H*W*C]`` rows to
images and back when ``image_shape`` is given). Written here because optax
and flax ship no augmentation; the ops are ``jax.random`` and ``lax`` slicing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.stax.layer import check_key

__all__ = [
    "as_batch_transform",
    "compose",
    "flip_left_right",
    "gaussian_noise",
    "random_crop",
    "random_flip",
    "random_shift",
]

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]
_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect"}


def _check_images(name: str, x) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected images f[N, H, W, C] or one image f[H, W, C], got shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating images, got dtype {x.dtype}")
    return x


def _per_image(fn: Callable, key, x):
    """Apply ``fn(key, image)`` to one image or, with independent keys, to each of a batch."""
    if x.ndim == 3:
        return fn(key, x)
    return jax.vmap(fn)(jax.random.split(key, x.shape[0]), x)


def _check_nonneg_int(name: str, what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: expected {what} to be an int >= 0, got {value!r}")
    return int(value)


def random_crop(padding: int, pad_mode: str = "constant") -> Augmentation:
    """Pad every side by ``padding`` pixels (``pad_mode``: ``'constant'`` zeros,
    ``'edge'`` or ``'reflect'``) and crop back to ``H x W`` at a uniformly random offset."""
    return _crop("random_crop", _check_nonneg_int("random_crop", "padding", padding), pad_mode)


def _crop(name: str, p: int, pad_mode: str) -> Augmentation:
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"{name}: expected pad_mode in {sorted(_PAD_MODES)}, got {pad_mode!r}")

    def crop_one(key, image):
        H, W, C = image.shape
        if pad_mode == "reflect" and p >= min(H, W):
            raise ValueError(f"{name}: reflect padding {p} needs images larger than {p} pixels, got {H}x{W}")
        padded = jnp.pad(image, ((p, p), (p, p), (0, 0)), mode=_PAD_MODES[pad_mode])
        offsets = jax.random.randint(key, (2,), 0, 2 * p + 1)
        return lax.dynamic_slice(padded, (offsets[0], offsets[1], 0), (H, W, C))

    def augment(key, x):
        x = _check_images(name, x)
        key = check_key(name, key)
        return x if p == 0 else _per_image(crop_one, key, x)

    return augment


def random_shift(max_shift: int) -> Augmentation:
    """Shift each image by a random ``(dy, dx)`` with ``|dy|, |dx| <= max_shift``,
    filling the vacated border with zeros (:func:`random_crop` with zero padding)."""
    return _crop("random_shift", _check_nonneg_int("random_shift", "max_shift", max_shift), "constant")


def flip_left_right(x) -> jax.Array:
    """Mirror images along the width axis (deterministic)."""
    x = _check_images("flip_left_right", x)
    return jnp.flip(x, axis=-2)


def random_flip(prob: float = 0.5, axis: str = "horizontal") -> Augmentation:
    """Mirror each image left-right (``axis='horizontal'``) or up-down
    (``'vertical'``) with probability ``prob``."""
    name = "random_flip"
    if isinstance(prob, bool) or not isinstance(prob, (int, float, np.floating)) or not 0 <= prob <= 1:
        raise ValueError(f"{name}: expected prob in [0, 1], got {prob!r}")
    if axis not in ("horizontal", "vertical"):
        raise ValueError(f"{name}: expected axis 'horizontal' or 'vertical', got {axis!r}")
    flip_axis = 1 if axis == "horizontal" else 0  # of one image (H, W, C)

    def flip_one(key, image):
        return jnp.where(jax.random.bernoulli(key, prob), jnp.flip(image, axis=flip_axis), image)

    def augment(key, x):
        x = _check_images(name, x)
        return _per_image(flip_one, check_key(name, key), x)

    return augment


def gaussian_noise(std: float) -> Augmentation:
    """Add i.i.d. ``N(0, std**2)`` noise to every pixel."""
    name = "gaussian_noise"
    if isinstance(std, bool) or not isinstance(std, (int, float, np.floating)) or not np.isfinite(std) or std < 0:
        raise ValueError(f"{name}: expected a finite std >= 0, got {std!r}")

    def augment(key, x):
        x = _check_images(name, x)
        key = check_key(name, key)
        return x + jnp.asarray(std, x.dtype) * jax.random.normal(key, x.shape, x.dtype)

    return augment


def compose(*augmentations: Augmentation) -> Augmentation:
    """Apply ``augmentations`` left to right, each with an independent key."""
    if not augmentations or not all(callable(a) for a in augmentations):
        raise TypeError(f"compose: expected one or more augmentations aug(key, x), got {augmentations!r}")

    def augment(key, x):
        keys = jax.random.split(check_key("compose", key), len(augmentations))
        for k, aug in zip(keys, augmentations):
            x = aug(k, x)
        return x

    return augment


def as_batch_transform(augmentation: Augmentation, image_shape: Sequence[int] | None = None) -> Callable:
    """``batch_transform(key, x, y) -> (augmentation(key, x), y)`` for
    ``jaxdl.train.fit(..., batch_transform=...)``.

    ``image_shape``: ``(H, W, C)`` when the dataset stores flat rows
    ``f[N, H*W*C]`` (e.g. ``jaxdl.data.load_digits`` with ``(8, 8, 1)``); the rows
    are viewed as images, augmented and flattened back.
    """
    if not callable(augmentation):
        raise TypeError(f"as_batch_transform: expected an augmentation aug(key, x), got {augmentation!r}")
    shape = None if image_shape is None else tuple(int(d) for d in image_shape)
    if shape is not None and (len(shape) != 3 or min(shape) <= 0):
        raise ValueError(f"as_batch_transform: expected image_shape (H, W, C), got {image_shape!r}")

    def batch_transform(key, x, y):
        if shape is None:
            return augmentation(key, x), y
        if x.shape[1:] != (int(np.prod(shape)),):
            raise ValueError(
                f"as_batch_transform: expected flat rows of {int(np.prod(shape))} values for images {shape}, "
                f"got x of shape {tuple(x.shape)}"
            )
        images = augmentation(key, x.reshape((x.shape[0], *shape)))
        return images.reshape(x.shape), y

    return batch_transform
