"""`batch`: blockwise, multi-device kernels equal the unbatched kernel (float64).

Checked over the 8 virtual CPU devices of tests/conftest.py for analytic
kernel_fns (arrays, namedtuples and full `Kernel` objects), empirical kernel
functions with parameters, and a plain jnp kernel returning a dict; block
sizes that do not divide the batch, `device_count` 0/2/all, and both
`store_on_device` settings.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.kernels.batching import _block_fn, batch
from jaxdl.kernels.empirical import empirical_kernel_fn, empirical_ntk_fn
from jaxdl.kernels.kernel import Kernel

SETTINGS = [(0, -1, True), (4, -1, True), (3, 2, False), (0, 0, False), (5, -1, False)]


def _inputs():
    x1 = jax.random.normal(jax.random.key(0), (21, 5), jnp.float64)
    x2 = jax.random.normal(jax.random.key(1), (10, 5), jnp.float64)
    return x1, x2  # float64 inside `jax.enable_x64(True)`, float32 outside


def _assert_same(batched, expected):
    if isinstance(expected, Kernel):
        assert isinstance(batched, Kernel)
        for field in dataclasses.fields(Kernel):
            a, b = getattr(batched, field.name), getattr(expected, field.name)
            if a is None or b is None or isinstance(b, (bool, int, tuple)):
                assert a == b or (a is None and b is None), field.name
            else:
                np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-12,
                                           atol=1e-14, err_msg=field.name)  # fmt: skip
        return
    leaves_a, leaves_b = jax.tree.leaves(batched), jax.tree.leaves(expected)
    assert len(leaves_a) == len(leaves_b)
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_eight_devices_available():
    assert jax.device_count() == 8


GRID = [
    pytest.param(setting, get, id=f"{name}-{setting}", marks=() if (i + k) % 3 == 0 else pytest.mark.slow)
    for i, setting in enumerate(SETTINGS)
    for k, (name, get) in enumerate((("Kernel", None), ("ntk", "ntk"), ("pair", ("nngp", "ntk"))))
]  # default run: 5 of the 15 combinations, every setting and every `get` at least once


@pytest.mark.parametrize("setting, get", GRID)
def test_analytic_kernel_batched_equals_unbatched(setting, get):
    batch_size, device_count, store_on_device = setting
    with jax.enable_x64(True):
        _, _, kernel_fn = stax.serial(stax.Dense(16, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(3))
        x1, x2 = _inputs()
        batched = batch(kernel_fn, batch_size, device_count, store_on_device)
        for second in (None, x2):
            result = batched(x1, second, get)
            _assert_same(result, kernel_fn(x1, second, get))
            leaf = jax.tree.leaves(result)[0]
            assert isinstance(leaf, np.ndarray) != store_on_device


def test_empirical_kernels_batched_equal_unbatched():
    with jax.enable_x64(True):
        init_fn, apply_fn, _ = stax.serial(stax.Dense(8, b_std=0.1), stax.Erf(), stax.Dense(2))
        x1, x2 = _inputs()
        _, params = init_fn(jax.random.key(2), x1.shape)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        kernel_fn = empirical_kernel_fn(apply_fn, trace_axes=(), vmap_axes=0)
        expected = jax.jit(kernel_fn, static_argnums=2)(x1, x2, ("nngp", "ntk"), params)
        _assert_same(batch(kernel_fn, 4)(x1, x2, ("nngp", "ntk"), params), expected)
        ntk_fn = empirical_ntk_fn(apply_fn)
        _assert_same(batch(ntk_fn, 7, store_on_device=False)(x1, None, params), jax.jit(ntk_fn)(x1, None, params))


def test_plain_jnp_kernel_with_dict_output():
    with jax.enable_x64(True):
        def rbf(x1, x2=None, lengthscale=1.0):
            x2 = x1 if x2 is None else x2
            d2 = jnp.sum((x1[:, None] - x2[None]) ** 2, -1)
            return {"rbf": jnp.exp(-d2 / (2 * lengthscale**2)), "dot": x1 @ x2.T}

        x1, x2 = _inputs()
        for setting in SETTINGS:
            _assert_same(batch(rbf, *setting)(x1, x2, lengthscale=0.7), rbf(x1, x2, lengthscale=0.7))


def test_blocks_are_sharded_over_all_devices():
    x1 = jax.random.normal(jax.random.key(0), (16, 5))
    x2 = jax.random.normal(jax.random.key(1), (10, 5))
    kernel_fn = lambda a, b: a @ b.T
    block_fn = _block_fn(kernel_fn, jax.devices(), (), {}, x1, x2, 16, 10)
    block = block_fn(x1, x2)
    assert len(block.sharding.device_set) == 8
    np.testing.assert_allclose(block, np.asarray(x1[:16]) @ np.asarray(x2).T, rtol=1e-5, atol=1e-6)


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="batch: expected batch_size"):
        batch(lambda a, b: a, batch_size=-1)
    with pytest.raises(ValueError, match="batch: expected device_count"):
        batch(lambda a, b: a, device_count=-2)
    with pytest.raises(TypeError, match="batch: expected a kernel_fn"):
        batch(None)
    with pytest.raises(ValueError, match="only 8 devices"):
        batch(lambda a, b: a @ b.T, device_count=9)(jnp.ones((4, 2)))
