"""Infinite-width kernel of ``DotGeneral`` (a constant linear map of the non-channel axes).

If ``y = A x`` acts on the batch and spatial axes and not on the (infinitely
wide, i.i.d.) channels, then every channel of ``y`` is the same linear map of
the corresponding channel of ``x``, so (lecture notes, "Gaussian processes":
a linear map of a GP is a GP)::

    K_y[(i, p), (j, q)] = sum_{p', q'} A[p, p'] A[q, q'] K_x[(i, p'), (j, q')]

for the NNGP, the NTK (the map has no parameters, so it only transports the
tangent kernel) and both self-covariances. One ``einsum`` does it: each axis of
the covariance array gets a label, the constant is labelled on its left and
right copies, contracted axes disappear from the output. Written by hand (the
labelling is specific to neural-tangents' zipped covariance layout).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.kernels.kernel import Kernel
from jaxdl.stax.dot_general import dot_with_constant, output_batch_axis


def _shape_after(hyper, shape):
    dummy = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
    return tuple(jax.eval_shape(lambda x: dot_with_constant(hyper, x), dummy).shape)


def dot_general(hyper, k: Kernel, ctx) -> Kernel:
    other = hyper["other"]
    if other is None:
        return k
    ndim = len(k.shape1)
    batch, channel = k.batch_axis, k.channel_axis
    (lhs_c, rhs_c), (lhs_b, rhs_b) = hyper["dimension_numbers"]
    n_other = np.ndim(other)
    input_c, input_b = (rhs_c, rhs_b) if hyper["is_lhs"] else (lhs_c, lhs_b)
    other_c, other_b = (lhs_c, lhs_b) if hyper["is_lhs"] else (rhs_c, rhs_b)
    input_c = [a % ndim for a in input_c]
    input_b = [a % ndim for a in input_b]
    other_c = [a % n_other for a in other_c]
    other_b = [a % n_other for a in other_b]
    if channel in input_c or channel in input_b:
        raise ValueError(
            f"DotGeneral: the channel axis {channel} (infinitely wide) cannot be contracted or a batch "
            f"dimension of the dot product; got dimension_numbers={hyper['dimension_numbers']}"
        )
    if batch in input_c:
        raise NotImplementedError(
            "DotGeneral: contracting the batch axis (summing over examples) has no kernel here; "
            "keep the batch axis free or a dot-batch dimension"
        )
    spatial = [a for a in range(ndim) if a not in (batch, channel)]
    if k.diagonal_spatial and any(a in input_c for a in spatial):
        raise ValueError("DotGeneral: contracting spatial axes requires full spatial covariances, got diagonal_spatial=True")
    pairs = dict(zip(input_b + input_c, other_b + other_c))  # input axis -> paired axis of the constant
    other_free = [j for j in range(n_other) if j not in other_b + other_c]
    other_array = jnp.asarray(other, k.nngp.dtype)

    # Output activation axes, in lax.dot_general's order, as ("input", a) / ("other", j).
    input_free = [a for a in range(ndim) if a not in input_b + input_c]
    middle = [("other", j) for j in other_free] + [("input", a) for a in input_free]
    if not hyper["is_lhs"]:
        middle = [("input", a) for a in input_free] + [("other", j) for j in other_free]
    out_axes = [("input", a) for a in input_b] + middle

    def covariance(mat, pair_batch: bool):
        if mat is None or jnp.ndim(mat) == 0:
            return mat
        labels = itertools.count()
        left, right = {}, {}
        left[batch] = next(labels)
        right[batch] = next(labels) if pair_batch else left[batch]
        for a in spatial:
            left[a] = next(labels)
            right[a] = left[a] if k.diagonal_spatial else next(labels)
        new_left = {j: next(labels) for j in other_free}
        new_right = {j: new_left[j] if k.diagonal_spatial else next(labels) for j in other_free}
        inv = {j: a for a, j in pairs.items()}

        def other_labels(side_in, side_new):
            return [side_in[inv[j]] if j in inv else side_new[j] for j in range(n_other)]

        mat_labels = [left[batch]] + ([right[batch]] if pair_batch else [])
        for a in spatial:
            mat_labels += [left[a]] if k.diagonal_spatial else [left[a], right[a]]
        out_labels = [left[batch]] + ([right[batch]] if pair_batch else [])
        for origin, axis in out_axes:
            if origin == "input" and axis in (batch, channel):
                continue
            l_lab, r_lab = (left[axis], right[axis]) if origin == "input" else (new_left[axis], new_right[axis])
            out_labels += [l_lab] if k.diagonal_spatial else [l_lab, r_lab]
        return jnp.einsum(
            other_array, other_labels(left, new_left), mat, mat_labels,
            other_array, other_labels(right, new_right), out_labels,
        )  # fmt: skip

    positions = [output_batch_axis(hyper, ndim, a) for a in (batch, channel)]
    return k.replace(
        nngp=covariance(k.nngp, True),
        ntk=covariance(k.ntk, True),
        cov1=covariance(k.cov1, not k.diagonal_batch),
        cov2=covariance(k.cov2, not k.diagonal_batch),
        is_reversed=False,
        batch_axis=positions[0],
        channel_axis=positions[1],
        shape1=_shape_after(hyper, k.shape1),
        shape2=_shape_after(hyper, k.shape2),
    )


RULES = {"DotGeneral": dot_general}
