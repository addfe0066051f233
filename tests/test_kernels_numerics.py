"""jaxdl.kernels.numerics: the vectorised arctan2 and blockwise evaluation of elementwise rules.

References: numpy's ``arctan2`` in extended precision (``np.longdouble``) for the
values, the exact derivative ``(x dy - y dx) / (x^2 + y^2)`` and finite
differences for the gradient, and the direct (unblocked) call for ``map_row_blocks``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.kernels.numerics import arctan2, map_row_blocks


def _points(seed=0, n=200_000):
    """Random points over 40 orders of magnitude, plus axes, diagonals and signed zeros."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))
    x = rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))
    special_y = [0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 3.0, -3.0, 1e-30, 0.5]
    special_x = [1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 3.0, 3.0, -3.0, -3.0, 1.0, np.tan(np.pi / 8) / 2]
    return np.concatenate([y, special_y]), np.concatenate([x, special_x])


@pytest.mark.parametrize("dtype, max_ulps", [(np.float32, 4.0), (np.float64, 4.0)])
def test_arctan2_is_accurate_to_a_few_ulps(dtype, max_ulps):
    y, x = (a.astype(dtype) for a in _points())
    truth = np.arctan2(y.astype(np.longdouble), x.astype(np.longdouble))
    with jax.enable_x64(dtype == np.float64):
        ours = np.asarray(jax.jit(arctan2)(jnp.asarray(y), jnp.asarray(x)))
    assert ours.dtype == dtype
    ulp = np.spacing(np.abs(truth).astype(dtype)).astype(np.longdouble)
    errors = np.abs(ours.astype(np.longdouble) - truth) / np.maximum(ulp, np.finfo(dtype).tiny)
    assert float(np.max(errors)) <= max_ulps


def test_arctan2_quadrants_signed_zeros_and_infinities_follow_numpy():
    inf = np.inf
    y = np.array([0.0, -0.0, 0.0, -0.0, 2.0, -2.0, 1.0, -1.0, inf, -inf, inf, 1.0, -1.0, inf, 0.0])
    x = np.array([1.0, 1.0, -1.0, -1.0, 0.0, 0.0, -1e-3, -1e-3, inf, inf, -inf, inf, -inf, 1.0, -inf])
    with jax.enable_x64(True):
        ours = np.asarray(arctan2(jnp.asarray(y), jnp.asarray(x)))
    np.testing.assert_allclose(ours, np.arctan2(y, x), rtol=1e-15, atol=0)
    assert np.array_equal(np.signbit(ours), np.signbit(np.arctan2(y, x)))
    assert float(arctan2(0.0, 0.0)) == 0.0


def test_arctan2_derivative_is_exact_and_finite_at_the_origin():
    with jax.enable_x64(True):
        grad = jax.grad(arctan2, argnums=(0, 1))
        for y, x in [(0.3, 0.7), (-2.0, -0.5), (1e-8, 1.0), (5.0, -1e-3)]:
            dy, dx = grad(y, x)
            r2 = x * x + y * y
            np.testing.assert_allclose([dy, dx], [x / r2, -y / r2], rtol=1e-14)
            h = 1e-6
            fd = (np.arctan2(y + h, x) - np.arctan2(y - h, x)) / (2 * h)
            np.testing.assert_allclose(dy, fd, rtol=1e-6)
        assert [float(g) for g in grad(0.0, 0.0)] == [0.0, 0.0]


def test_arctan2_half_precision_and_bad_dtype():
    y, x = jnp.asarray([0.5, -1.5], jnp.bfloat16), jnp.asarray([1.0, -0.25], jnp.bfloat16)
    out = arctan2(y, x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), np.arctan2([0.5, -1.5], [1.0, -0.25]), rtol=1e-2)
    with pytest.raises(TypeError, match="arctan2: expected floating-point inputs"):
        arctan2(jnp.arange(3), jnp.arange(3))


def _rule(c, q1, q2, ntk):
    value = jnp.sin(c) * q1 + jnp.cos(q2)
    return value, None if ntk is None else ntk * value


# More than 8192 elements (smaller arrays skip the loop); block sizes with and without a remainder.
@pytest.mark.parametrize("shape, block_elements", [((301, 37), 2000), ((301, 37), 37), ((40, 12, 5, 5), 500),
                                                   ((8, 4), 10**6), ((300, 40), 10**6)])
def test_map_row_blocks_equals_the_direct_call(shape, block_elements):
    rng = np.random.default_rng(1)
    c = jnp.asarray(rng.standard_normal(shape))
    q1 = jnp.asarray(rng.uniform(1, 2, (shape[0], 1) + shape[2:]))
    q2 = jnp.asarray(rng.uniform(1, 2, (1,) + shape[1:]))
    ntk = jnp.asarray(rng.standard_normal(shape))
    direct = _rule(c, q1, q2, ntk)
    blocked = jax.jit(lambda *a: map_row_blocks(_rule, *a, block_elements=block_elements))(c, q1, q2, ntk)
    for ours, ref in zip(blocked, direct):
        assert ours.shape == shape
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)
    value, none = map_row_blocks(_rule, c, q1, q2, None, block_elements=block_elements)
    assert none is None
    np.testing.assert_allclose(value, direct[0], rtol=1e-6, atol=1e-7)


def _direct_total(c, q1, q2):
    return jnp.sum(_rule(c, q1, q2, None)[0])


def test_map_row_blocks_differentiates_and_vmaps():
    rng = np.random.default_rng(2)
    c = jnp.asarray(rng.standard_normal((97, 101)))
    q1, q2 = jnp.asarray(rng.uniform(1, 2, (97, 1))), jnp.asarray(rng.uniform(1, 2, (1, 101)))

    def total(c, block_elements):
        return jnp.sum(map_row_blocks(_rule, c, q1, q2, None, block_elements=block_elements)[0])

    np.testing.assert_allclose(jax.grad(total)(c, 1000), jax.grad(_direct_total)(c, q1, q2), rtol=1e-6, atol=1e-6)
    batched = jax.vmap(lambda c: map_row_blocks(_rule, c, q1, q2, None, block_elements=1000)[0])(jnp.stack([c, 2 * c]))
    np.testing.assert_allclose(batched[1], _rule(2 * c, q1, q2, None)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("block_elements", [2000, 37, 10**6])
def test_map_row_blocks_overwrite_gives_the_same_values_and_leaves_inputs_intact(block_elements):
    rng = np.random.default_rng(3)
    c = jnp.asarray(rng.standard_normal((301, 37)))
    q1, q2 = jnp.asarray(rng.uniform(1, 2, (301, 1))), jnp.asarray(rng.uniform(1, 2, (1, 37)))
    ntk = jnp.asarray(rng.standard_normal((301, 37)))
    c_before, ntk_before = np.asarray(c).copy(), np.asarray(ntk).copy()
    direct = _rule(c, q1, q2, ntk)
    for call in (map_row_blocks, jax.jit(map_row_blocks, static_argnums=0, static_argnames=("block_elements", "overwrite"))):
        value, scaled = call(_rule, c, q1, q2, ntk, block_elements=block_elements, overwrite=(0, 3))
        np.testing.assert_allclose(value, direct[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(scaled, direct[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(c), c_before)
    np.testing.assert_array_equal(np.asarray(ntk), ntk_before)
    # An operand that cannot hold the output (here q1, of shape (301, 1)) is not reused.
    value, _ = map_row_blocks(_rule, c, q1, q2, None, block_elements=block_elements, overwrite=(1,))
    np.testing.assert_allclose(value, direct[0], rtol=1e-6, atol=1e-7)


def test_map_row_blocks_loops_over_large_arrays_only():
    def loops(shape):
        c = jnp.ones(shape)
        text = str(jax.make_jaxpr(lambda c: map_row_blocks(_rule, c, c[:, :1], c[:1], None, block_elements=2000))(c))
        return "scan" in text or "while" in text  # fori_loop with static bounds is a scan

    assert loops((301, 37))  # 11137 elements: a loop over row blocks
    assert not loops((64, 64))  # 4096 elements: evaluated directly
