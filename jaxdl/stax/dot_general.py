"""``DotGeneral``: a fixed (non-trainable) linear map, ``lax.dot_general`` of the
inputs with a constant array (neural-tangents' layer, same arguments).

``DotGeneral(rhs=A, dimension_numbers=dn)`` computes ``lax.dot_general(x, A, dn)``
and ``DotGeneral(lhs=A, ...)`` computes ``lax.dot_general(A, x, dn)``; with
neither it is the identity. Any linear map of the non-channel axes can be
written this way (scaling, differences of positions, permutations, pooling...).
The channel axis must stay a free axis: it is the infinitely wide one. Its
infinite-width kernel (a linear map of a Gaussian process stays Gaussian, with
covariance ``A K A^T``) lives in :mod:`jaxdl.kernels.dot_general_rules`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.stax.layer import LayerSpec, check_array, check_shape, make_layer
from jaxdl.stax.masking import with_masking


def _check_dimension_numbers(name: str, dimension_numbers):
    try:
        (lhs_c, rhs_c), (lhs_b, rhs_b) = dimension_numbers
        parts = [tuple(int(a) for a in axes) for axes in (lhs_c, rhs_c, lhs_b, rhs_b)]
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}: expected dimension_numbers ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch)), "
            f"got {dimension_numbers!r}"
        ) from None
    if len(parts[0]) != len(parts[1]) or len(parts[2]) != len(parts[3]):
        raise ValueError(f"{name}: contracting and batch dimensions must pair up, got {dimension_numbers!r}")
    return (parts[0], parts[1]), (parts[2], parts[3])


def dot_with_constant(hyper: dict, x, nonzero_pattern: bool = False):
    """``lax.dot_general`` of ``x`` with the layer's constant (on the side the layer
    says). ``nonzero_pattern``: use ``constant != 0`` instead (for mask propagation)."""
    other = hyper["other"]
    if other is None:
        return x
    other = (other != 0) if nonzero_pattern else other
    other = jnp.asarray(other, x.dtype)
    args = (other, x) if hyper["is_lhs"] else (x, other)
    return lax.dot_general(*args, hyper["dimension_numbers"], precision=hyper["precision"])


def DotGeneral(
    *,
    lhs=None,
    rhs=None,
    dimension_numbers=(((), ()), ((), ())),
    precision=None,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Constant ``lhs`` or ``rhs`` dot general with the inputs.

    Args:
      lhs, rhs: the constant factor (an array or a scalar); at most one may be
        given, the inputs are the other factor. Neither: the identity.
      dimension_numbers: ``((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))``
        as in ``jax.lax.dot_general``.
      precision: ``lax.Precision`` of the product (``None``: the backend default).
      batch_axis, channel_axis: axes of the batch and the channels of the inputs.
        The channel axis may not be contracted or a dot-batch axis (kernel only).
    """
    name = "DotGeneral"
    if lhs is not None and rhs is not None:
        raise ValueError(f"{name}: expected at most one of lhs and rhs (the inputs are the other factor), got both")
    dimension_numbers = _check_dimension_numbers(name, dimension_numbers)
    is_lhs = rhs is None
    other = None if (lhs is None and rhs is None) else np.asarray(lhs if is_lhs else rhs)
    if other is not None and not np.issubdtype(other.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric constant, got dtype {other.dtype}")
    if other is not None and not np.all(np.isfinite(other)):
        raise ValueError(f"{name}: expected a finite constant, got non-finite entries in {other!r:.60}")
    if other is not None and np.issubdtype(other.dtype, np.inexact) and not np.isfinite(other).all():
        raise ValueError(f"{name}: expected a finite constant, got {'lhs' if is_lhs else 'rhs'} with NaN or inf")
    hyper = dict(
        other=other, is_lhs=is_lhs, dimension_numbers=dimension_numbers, precision=precision,
        batch_axis=batch_axis, channel_axis=channel_axis,
    )  # fmt: skip

    def output_shape(input_shape):
        dummy = jax.ShapeDtypeStruct(tuple(max(d, 1) for d in input_shape), jnp.float32)
        try:
            out = jax.eval_shape(lambda x: dot_with_constant(hyper, x), dummy)
        except TypeError as error:  # lax's shape check, reworded
            raise ValueError(f"{name}: expected inputs matching dimension_numbers, got shape {input_shape}: {error}")
        return tuple(out.shape)

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        out = list(output_shape(input_shape))
        if -1 in input_shape:  # carry an unknown batch size through where it is a free axis
            position = output_batch_axis(hyper, len(input_shape), input_shape.index(-1))
            if position is None:
                raise ValueError(f"{name}: a contracted axis needs a known size, got input_shape {input_shape}")
            out[position] = -1
        return tuple(out), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, min_ndim=1)
        if other is None:
            return x
        output_shape(tuple(x.shape))
        return dot_with_constant(hyper, x)

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, hyper)))


def output_batch_axis(hyper: dict, ndim: int, axis: int) -> int | None:
    """Where input axis ``axis`` lands in the output of ``lax.dot_general`` (None if contracted)."""
    if hyper["other"] is None:
        return axis
    (lhs_c, rhs_c), (lhs_b, rhs_b) = hyper["dimension_numbers"]
    n_other = np.ndim(hyper["other"])
    input_c, input_b = (rhs_c, rhs_b) if hyper["is_lhs"] else (lhs_c, lhs_b)
    other_c, other_b = (lhs_c, lhs_b) if hyper["is_lhs"] else (rhs_c, rhs_b)
    input_c = [a % ndim for a in input_c]
    input_b = [a % ndim for a in input_b]
    if axis in input_c:
        return None
    if axis in input_b:
        return input_b.index(axis)
    free = [a for a in range(ndim) if a not in input_c and a not in input_b]
    n_other_free = n_other - len(other_c) - len(other_b)
    return len(input_b) + (n_other_free if hyper["is_lhs"] else 0) + free.index(axis)
