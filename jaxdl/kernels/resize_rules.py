"""Infinite-width kernel of ``ImageResize``.

``jax.image.resize`` applies, along each resized axis, a fixed interpolation
matrix ``M`` (it is separable and linear for every method). The outputs'
covariance along that axis is ``M K M^T``: the same resize applied to both
copies of the axis in the covariance array. So the kernel is
``jax.image.resize`` of ``nngp``/``ntk``/``cov1``/``cov2`` to the paired target
shape (neural-tangents' rule, extended from linear/nearest to every method).
Resizing the batch axis needs full batch covariances; resizing the channel axis
has no infinite-width meaning.
"""

from __future__ import annotations

import jax

from jaxdl.kernels.kernel import Kernel
from jaxdl.stax.resize import target_shape


def image_resize(hyper, k: Kernel, ctx) -> Kernel:
    ndim = len(k.shape1)
    batch, channel = k.batch_axis, k.channel_axis
    if hyper["shape"][channel] != -1 and hyper["shape"][channel] != k.shape1[channel]:
        raise ValueError(
            f"ImageResize: resizing the channel axis {channel} (infinitely wide) has no kernel; "
            f"set shape[{channel}] = -1"
        )
    spatial = [a for a in range(ndim) if a not in (batch, channel)]
    out1 = target_shape("ImageResize", hyper["shape"], k.shape1)
    out2 = target_shape("ImageResize", hyper["shape"], k.shape2)
    resizes_spatial = any(out1[a] != k.shape1[a] for a in spatial)
    if k.diagonal_spatial and resizes_spatial:
        raise ValueError("ImageResize: resizing spatial axes requires full spatial covariances, got diagonal_spatial=True")
    resizes_batch = out1[batch] != k.shape1[batch] or out2[batch] != k.shape2[batch]
    if resizes_batch and k.diagonal_batch:
        raise ValueError(
            "ImageResize: resizing the batch axis mixes examples and needs full batch covariances; "
            "call kernel_fn with diagonal_batch=False"
        )

    def resize(mat, first, second, batch_ndim):
        if mat is None or mat.ndim == 0:
            return mat
        shape = (first[batch],) + ((second[batch],) if batch_ndim == 2 else ())
        for a in spatial:
            shape += (first[a],) if k.diagonal_spatial else (first[a], second[a])
        return jax.image.resize(mat, shape, hyper["method"], antialias=hyper["antialias"], precision=hyper["precision"])

    cov_batch = 1 if k.diagonal_batch else 2
    return k.replace(
        nngp=resize(k.nngp, out1, out2, 2),
        ntk=resize(k.ntk, out1, out2, 2),
        cov1=resize(k.cov1, out1, out1, cov_batch),
        cov2=resize(k.cov2, out2, out2, cov_batch),
        shape1=out1,
        shape2=out2,
    )


RULES = {"ImageResize": image_resize}
