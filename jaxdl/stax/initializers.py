"""Weight initialisers from the seeds' tricks-of-the-trade chapter.

For a weight matrix with fan-in ``n`` and fan-out ``m`` the seeds give the
variance of each entry (normal draws, or uniform on ``[-sqrt(3 var), sqrt(3 var)]``,
which has the same variance):

* LeCun: ``1/n`` (preserves the forward variance),
* Glorot/Xavier: ``2/(n + m)`` (balances forward and backward variance),
* He/Kaiming: ``2/n`` (ReLU: half the units are active),
* orthogonal: ``W`` uniform (Haar) on the orthogonal group, times ``gain``, so
  ``W^T W = gain**2 I`` (orthonormal columns; rows when ``W`` is wide). The
  seeds normalise it as ``W / sqrt(m) in O(m)``, ``W^T W = m I``: that is
  ``gain = sqrt(m)``, the scale of the 'ntk' parameterization, where the layer
  itself divides by ``sqrt(m)``; with 'standard' layers use ``gain = 1``.

The seeds write the uniform bounds as ``[-sqrt(3) eps, sqrt(3) eps]`` with ``eps``
the *variance*; the standard (and variance-preserving) reading, used here, is
``eps`` = standard deviation, i.e. bound ``sqrt(3 var)`` (Glorot's
``sqrt(6 / (n + m))``). LeCun's ``Uniform[-1/sqrt(n), 1/sqrt(n)]`` in one seed
has variance ``1/(3n)``; the other seed and LeCun et al. (1998) ask for
standard deviation ``1/sqrt(n)``, which is what ``lecun_uniform`` draws.

They are thin wrappers of ``jax.nn.initializers.variance_scaling`` (untruncated
normal, matching the seeds) and ``jax.nn.initializers.orthogonal`` that check
the shape and name themselves in errors. Each returns ``init(key, shape,
dtype) -> array``; convolution kernels follow the ``(*spatial, in, out)``
layout, whose receptive field multiplies both fans (:func:`fans`). Pass one
as ``W_init`` to ``Dense``/``Conv`` with ``parameterization='standard'``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.nn import initializers as _jax_init


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(*spatial, in, out)``: the
    receptive field ``prod(spatial)`` times ``in`` resp. ``out``."""
    shape = _check_weight_shape("fans", shape)
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def _check_weight_shape(name: str, shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{name}: expected a weight shape (*spatial, fan_in, fan_out), got {shape!r}") from None
    if len(shape) < 2 or min(shape) <= 0:
        raise ValueError(f"{name}: expected a weight shape (*spatial, fan_in, fan_out) of positive sizes, got {shape}")
    return shape


def _named(name: str, init):
    """Wrap a ``jax.nn.initializers`` function with a shape check naming ``name``."""

    def checked(key, shape, dtype=None):
        shape = _check_weight_shape(name, shape)
        return init(key, shape, dtype) if dtype is not None else init(key, shape)

    checked.__name__ = name
    return checked


def _scaling(name: str, scale: float, mode: str, distribution: str):
    return _named(name, _jax_init.variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1))


def lecun_normal():
    """``N(0, 1/fan_in)``."""
    return _scaling("lecun_normal", 1.0, "fan_in", "normal")


def lecun_uniform():
    """Uniform with variance ``1/fan_in``."""
    return _scaling("lecun_uniform", 1.0, "fan_in", "uniform")


def glorot_normal():
    """``N(0, 2/(fan_in + fan_out))``."""
    return _scaling("glorot_normal", 1.0, "fan_avg", "normal")


def glorot_uniform():
    """Uniform with variance ``2/(fan_in + fan_out)``, i.e. on ``[-sqrt(6/(n+m)), sqrt(6/(n+m))]``."""
    return _scaling("glorot_uniform", 1.0, "fan_avg", "uniform")


def he_normal():
    """``N(0, 2/fan_in)``."""
    return _scaling("he_normal", 2.0, "fan_in", "normal")


def he_uniform():
    """Uniform with variance ``2/fan_in``."""
    return _scaling("he_uniform", 2.0, "fan_in", "uniform")


def normal(std: float = 1.0):
    """``N(0, std**2)`` regardless of the fans."""
    return _jax_init.normal(std)


def uniform(std: float = 1.0):
    """Uniform on ``[-sqrt(3) std, sqrt(3) std]`` (variance ``std**2``)."""
    bound = 3.0**0.5 * std

    def init(key, shape, dtype=None):
        dtype = dtype or jax.dtypes.canonicalize_dtype(jnp.float64)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def orthogonal(gain: float = 1.0):
    """``gain`` times a matrix with orthonormal columns (or rows), drawn uniformly
    (Haar) from the orthogonal group via the QR decomposition. A conv kernel
    ``(*spatial, in, out)`` is orthogonal as a ``(prod(spatial) * in) x out`` matrix.
    The seeds' ``W^T W = m I`` for an ``m x m`` layer is ``gain = sqrt(m)``."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain):
        raise ValueError(f"orthogonal: expected a finite gain, got {gain!r}")
    return _named("orthogonal", _jax_init.orthogonal(gain, column_axis=-1))


__all__ = [
    "fans",
    "lecun_normal",
    "lecun_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "normal",
    "uniform",
    "orthogonal",
]
