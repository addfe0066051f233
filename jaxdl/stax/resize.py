"""``ImageResize``: ``jax.image.resize`` as a layer (neural-tangents' layer, same
arguments), with ``-1`` in ``shape`` meaning "keep this axis".

Every resize method of ``jax.image.resize`` (nearest, linear, cubic, lanczos)
is a fixed linear map applied axis by axis, so the infinite-width kernel is the
same resize applied to both copies of each axis of the covariance arrays
(:mod:`jaxdl.kernels.resize_rules`); neural-tangents only offers the kernel for
``'linear'`` and ``'nearest'``. The channel axis cannot be resized in the kernel.
"""

from __future__ import annotations

import jax
from jax import lax

from jaxdl.stax.layer import LayerSpec, check_array, check_shape, make_layer
from jaxdl.stax.masking import with_masking


def _method(name: str, method):
    try:
        return jax.image.ResizeMethod.from_string(method) if isinstance(method, str) else jax.image.ResizeMethod(method)
    except ValueError:
        raise ValueError(
            f"{name}: expected method among {[m.name.lower() for m in jax.image.ResizeMethod]}, got {method!r}"
        ) from None


def target_shape(name: str, shape, input_shape) -> tuple[int, ...]:
    """``shape`` with ``-1`` entries replaced by the input's sizes."""
    if len(shape) != len(input_shape):
        raise ValueError(f"{name}: expected shape of length {len(input_shape)} (the input's rank), got {tuple(shape)}")
    return tuple(int(d) if d != -1 else int(s) for d, s in zip(shape, input_shape))


def resize(hyper: dict, x):
    """The layer's resize of ``x`` (an activation, or a mask indicator of the same shape)."""
    return jax.image.resize(
        x, target_shape("ImageResize", hyper["shape"], x.shape), hyper["method"],
        antialias=hyper["antialias"], precision=hyper["precision"],
    )  # fmt: skip


def ImageResize(
    shape,
    method,
    antialias: bool = True,
    precision=lax.Precision.HIGHEST,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Resize to ``shape`` (one entry per input axis, ``-1``: keep that axis).

    Args:
      shape: the output shape; keep the batch and channel axes with ``-1``.
      method: ``'nearest'``, ``'linear'``, ``'cubic'``, ``'lanczos3'``, ``'lanczos5'``
        or a ``jax.image.ResizeMethod``.
      antialias: low-pass filter when downsampling (linear, cubic, lanczos).
      precision: ``lax.Precision`` of the interpolation products.
      batch_axis, channel_axis: axes of the batch and the channels of the inputs.
    """
    name = "ImageResize"
    if isinstance(shape, int) or not all(isinstance(d, int) and (d > 0 or d == -1) for d in shape):
        raise ValueError(f"{name}: expected shape to be a tuple of positive ints or -1, got {shape!r}")
    hyper = dict(
        shape=tuple(shape), method=_method(name, method), antialias=bool(antialias), precision=precision,
        batch_axis=batch_axis, channel_axis=channel_axis,
    )  # fmt: skip

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        out = target_shape(name, hyper["shape"], input_shape)
        for axis, (size, new) in enumerate(zip(input_shape, hyper["shape"])):
            if size == -1 and new != -1:
                raise ValueError(f"{name}: axis {axis} of unknown size (-1) cannot be resized; give its size")
        return out, {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, min_ndim=1)
        target_shape(name, hyper["shape"], x.shape)
        return resize(hyper, x)

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, hyper)))
