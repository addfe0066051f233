"""Numerically safe and fast primitives shared by the kernel rules.

``safe_sqrt`` and ``safe_divide`` keep values *and gradients* finite at the
degenerate points every kernel recursion meets: zero inputs (zero variance) and
identical or collinear inputs (correlation exactly +-1). Written by hand because
``jnp.sqrt``/``jnp.where`` alone give infinite or NaN derivatives there.

``arctan2`` is written by hand because XLA:CPU evaluates ``atan2`` (and
``asin``/``acos``, which it lowers to ``atan2``) one element at a time through
libm, about 50 times slower than ``exp``; the angle of every arc-cosine and
arcsine kernel entry made it the dominant cost of ReLU/Erf kernels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


@jax.custom_jvp
def safe_sqrt(x):
    """``sqrt(max(x, 0))`` whose derivative is 0 (not inf/NaN) at and below 0."""
    return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    root = safe_sqrt(x)
    positive = x > 0
    denom = jnp.where(positive, 2 * root, 1.0)
    return root, jnp.where(positive, x_dot / denom, 0.0)


def straight_through(value, proxy):
    """``value``, differentiated as ``proxy`` (to every order).

    For projections that only remove rounding error, e.g. a clip of a correlation
    to [-1, 1] or a snap of ``|c| ~ sqrt(q1 q2)`` onto exact equality: the true
    function is ``proxy``'s, so its derivatives are. Differentiating the
    projection instead gives a clip's half-gradient at the boundary, or the
    derivatives of ``sqrt(q1 q2)`` in place of those of ``c`` (wrong Hessians on
    the kernel diagonal). ``proxy + (value - proxy)`` rounds to ``value`` when the
    two are within a factor 2 of each other (Sterbenz), as they are here.
    """
    return proxy + jax.lax.stop_gradient(value - proxy)


def safe_divide(num, den):
    """``num / den`` with 0 where ``den == 0`` (and finite gradients there)."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1.0), 0.0)


# Power-series coefficients in ``z = t^2`` of ``atan(t) / t`` on ``|t| <= tan(pi/8)``:
# Chebyshev interpolants computed in extended precision (degree 5: error 6e-10,
# below float32's resolution; degree 11: error 7e-17, below float64's).
_ATAN_COEFFICIENTS_F32 = (
    0.9999999993920999, -0.33333307493429554, 0.19998210797562035, -0.1423998291869444,
    0.105728144754177, -0.060332417009912424,
)  # fmt: skip
_ATAN_COEFFICIENTS_F64 = (
    1.0, -0.33333333333333104, 0.19999999999935852, -0.1428571427881071, 0.11111110725367711,
    -0.09090896295092146, 0.07692036793872326, -0.06662859774580804, 0.05846235948483298,
    -0.050323040137455186, 0.03789611847635568, -0.017731468183446848,
)  # fmt: skip
_TAN_PI_8 = math.tan(math.pi / 8)


@jax.custom_jvp
def arctan2(y, x):
    """``atan2(y, x)`` in ``[-pi, pi]`` from vectorisable arithmetic (no libm calls).

    The ratio ``t = min(|x|, |y|) / max(|x|, |y|)`` is reduced to
    ``|t| <= tan(pi/8)`` by ``atan(t) = pi/4 + atan((t - 1) / (t + 1))``, then a
    polynomial in ``t^2`` gives ``atan(t)``; quadrant and sign follow from ``x``
    and ``y``. Accurate to a few ulps in float32 and float64 (float16/bfloat16
    are computed in float32); infinities follow libm, and ``arctan2(0, 0) = 0``.
    The derivative is exact: ``(x dy - y dx) / (x^2 + y^2)``, 0 at the origin.
    """
    dtype = jnp.result_type(y, x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"arctan2: expected floating-point inputs, got {dtype}")
    work = jnp.float64 if dtype == jnp.float64 else jnp.float32
    coefficients = _ATAN_COEFFICIENTS_F64 if work == jnp.float64 else _ATAN_COEFFICIENTS_F32
    y, x = jnp.asarray(y, work), jnp.asarray(x, work)
    abs_y, abs_x = jnp.abs(y), jnp.abs(x)
    big, small = jnp.maximum(abs_y, abs_x), jnp.minimum(abs_y, abs_x)
    t = small / jnp.where(big == 0, 1.0, big)
    t = jnp.where(jnp.isinf(big), jnp.where(jnp.isinf(small), 1.0, 0.0), t)
    reduced = t > _TAN_PI_8
    t = jnp.where(reduced, (t - 1.0) / (t + 1.0), t)
    z = t * t
    poly = coefficients[-1]
    for c in coefficients[-2::-1]:
        poly = poly * z + c
    angle = t * poly + jnp.where(reduced, math.pi / 4, 0.0)
    angle = jnp.where(abs_y > abs_x, math.pi / 2 - angle, angle)
    angle = jnp.where(x < 0, math.pi - angle, angle)
    return jnp.where(jnp.signbit(y), -angle, angle).astype(dtype)


@arctan2.defjvp
def _arctan2_jvp(primals, tangents):
    (y, x), (y_dot, x_dot) = primals, tangents
    radius_sq = x * x + y * y
    nonzero = radius_sq != 0
    tangent = jnp.where(nonzero, (x * y_dot - y * x_dot) / jnp.where(nonzero, radius_sq, 1.0), 0.0)
    return arctan2(y, x), tangent


_DIRECT_ELEMENTS = 2**13  # below this, compiling a loop costs more than any recomputation


def map_row_blocks(fn, *operands, block_elements: int = 2**18, overwrite: tuple[int, ...] = ()):
    """``fn(*operands)`` for an elementwise ``fn``, evaluated over blocks of leading-axis rows.

    ``operands`` (arrays, or None passed through) broadcast to one output shape
    ``(n, ...)``; ``fn`` must treat every element independently and return an
    array or a tuple of arrays (or None) broadcastable to that shape. Rows are
    taken about ``block_elements`` elements at a time (in at least two blocks)
    in a ``jax.lax.fori_loop``. Two reasons: a block's intermediates stay in
    cache, and each call's outputs are materialised arrays. Without that
    boundary XLA fuses the cheap arithmetic of consecutive kernel layers into
    one another and recomputes it, at a cost quadratic in depth. Arrays of at
    most 8192 elements are evaluated directly (a loop costs more to compile).

    ``overwrite[i]`` names the operand whose buffer receives output ``i`` (it
    must have the output's shape and dtype): XLA then updates it in place
    instead of allocating a new array.
    """
    arrays = [op for op in operands if op is not None]
    shape = jnp.broadcast_shapes(*(jnp.shape(op) for op in arrays))
    num_rows = shape[0] if shape else 1
    if num_rows < 2 or math.prod(shape) <= _DIRECT_ELEMENTS:
        return _broadcast_outputs(fn(*operands), shape)
    # At least two blocks: XLA inlines a loop that runs once, and the boundary is lost.
    num_blocks = min(num_rows, max(2, -(-num_rows * math.prod(shape[1:]) // block_elements)))
    # Prefer a block count that divides the rows: no separately compiled remainder block.
    num_blocks = next((b for b in range(num_blocks, min(2 * num_blocks, num_rows) + 1) if num_rows % b == 0),
                      num_blocks)  # fmt: skip
    rows_per_block = -(-num_rows // num_blocks)

    operands = [None if op is None else jnp.reshape(op, (1,) * (len(shape) - jnp.ndim(op)) + jnp.shape(op))
                for op in operands]  # fmt: skip
    mapped = [op is not None and op.shape[0] == num_rows for op in operands]
    structure = jax.eval_shape(lambda: fn(*operands))
    single = not isinstance(structure, tuple)
    structure = (structure,) if single else structure

    def block(current, start, size):
        args = [jax.lax.dynamic_slice_in_dim(op, start, size) if is_mapped else op
                for op, is_mapped in zip(current, mapped)]  # fmt: skip
        out = _broadcast_outputs(fn(*args), (size,) + shape[1:])
        return (out,) if single else out

    def step(outputs, start, size):
        current = list(operands)
        for output_index, operand_index in reused.items():
            current[operand_index] = outputs[output_index]
        new = block(current, start, size)
        return tuple(None if out is None else jax.lax.dynamic_update_slice_in_dim(out, rows, start, 0)
                     for out, rows in zip(outputs, new))  # fmt: skip

    reused = {}  # output index -> index of the operand whose buffer it takes over
    for i, (out, index) in enumerate(zip(structure, overwrite)):
        target = operands[index]
        if out is not None and target is not None and target.shape == shape and target.dtype == out.dtype:
            reused[i] = index
    outputs = tuple(None if out is None else operands[reused[i]] if i in reused else jnp.zeros(shape, out.dtype)
                    for i, out in enumerate(structure))  # fmt: skip
    num_full = num_rows // rows_per_block
    outputs = jax.lax.fori_loop(0, num_full, lambda i, outs: step(outs, i * rows_per_block, rows_per_block),
                                outputs)
    remainder = num_rows - num_full * rows_per_block
    if remainder:
        outputs = step(outputs, num_full * rows_per_block, remainder)
    return outputs[0] if single else outputs


def _broadcast_outputs(out, shape):
    if isinstance(out, tuple):
        return tuple(None if o is None else jnp.broadcast_to(o, shape) for o in out)
    return jnp.broadcast_to(out, shape)
