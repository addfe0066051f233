"""Weight initialisers from the seeds' tricks-of-the-trade chapter.

For a weight matrix with fan-in ``n`` and fan-out ``m`` the seeds give the
variance of each entry (normal draws, or uniform on ``[-sqrt(3 var), sqrt(3 var)]``,
which has the same variance):

* LeCun: ``1/n`` (preserves the forward variance),
* Glorot/Xavier: ``2/(n + m)`` (balances forward and backward variance),
* He/Kaiming: ``2/n`` (ReLU: half the units are active),
* orthogonal: ``W`` uniform on the orthogonal group, times ``gain``.

They are thin wrappers of ``jax.nn.initializers.variance_scaling`` (untruncated
normal, matching the seeds) and ``jax.nn.initializers.orthogonal``. Each returns
``init(key, shape, dtype) -> array``; convolution kernels follow the
``(*spatial, in, out)`` layout, whose receptive field multiplies both fans.
Pass one as ``W_init`` to ``Dense``/``Conv`` with ``parameterization='standard'``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.nn import initializers as _jax_init


def _scaling(scale: float, mode: str, distribution: str):
    return _jax_init.variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1)


def lecun_normal():
    """``N(0, 1/fan_in)``."""
    return _scaling(1.0, "fan_in", "normal")


def lecun_uniform():
    """Uniform with variance ``1/fan_in``."""
    return _scaling(1.0, "fan_in", "uniform")


def glorot_normal():
    """``N(0, 2/(fan_in + fan_out))``."""
    return _scaling(1.0, "fan_avg", "normal")


def glorot_uniform():
    """Uniform with variance ``2/(fan_in + fan_out)``."""
    return _scaling(1.0, "fan_avg", "uniform")


def he_normal():
    """``N(0, 2/fan_in)``."""
    return _scaling(2.0, "fan_in", "normal")


def he_uniform():
    """Uniform with variance ``2/fan_in``."""
    return _scaling(2.0, "fan_in", "uniform")


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
    (Haar) from the orthogonal group via the QR decomposition."""
    return _jax_init.orthogonal(gain, column_axis=-1)


__all__ = [
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
