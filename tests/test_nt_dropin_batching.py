"""`batch` and `monte_carlo_kernel_fn` as neural-tangents drop-ins (issue 22, items 2 and 9), float64.

* Every output layout is assembled from blocks correctly: batch axis not first
  (`Dense(batch_axis=1)`), `diagonal_axes` on the batch axis (one axis following
  both inputs) or on a spatial axis, untraced N-d outputs, `trace_axes` over the
  batch axis (no axis follows the inputs: computed whole), `vmap_axes`, Dropout.
  Reference: the empirical kernel of the very same sample, computed unbatched by
  `empirical_kernel_fn` (the Monte Carlo average of one sample is that kernel).
* `jax.grad`, `jax.jit`, `jax.jvp` through `batch(...)` and through
  `monte_carlo_kernel_fn` equal those of the unbatched function.
* A `Kernel` as input (a layer's `kernel_fn` applied to a kernel) and keyword
  pairs `pattern=(p1, p2)` (`Aggregate`) are cut into blocks with the inputs.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdl.kernels as nt
from jaxdl import stax
from jaxdl.kernels.kernel import Kernel

pytestmark = pytest.mark.usefixtures("x64")

SETTINGS = [(0, 0), (2, -1), (3, 2)]  # (batch_size, device_count): whole, all 8 devices, 2 devices


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _normal(seed, shape):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float64)


def _close(got, want, rtol=1e-10, atol=1e-12):
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for a, b in zip(got_leaves, want_leaves):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def _one_sample_reference(init_fn, apply_fn, key, x1, x2, get, kernel_kwargs=None, **apply_kwargs):
    """The empirical kernel of monte_carlo_kernel_fn's first sample, unbatched
    (its documented key use: split the key, then split again into init and apply keys)."""
    _, sample_key = jax.random.split(key)
    init_key, apply_key = jax.random.split(sample_key)
    _, params = init_fn(init_key, x1.shape)
    kernel_fn = nt.empirical_kernel_fn(apply_fn, **(kernel_kwargs or {}))
    return kernel_fn(x1, x2, get, params, key=apply_key, **apply_kwargs)


LAYOUTS = {
    # name: (network, x1 shape, x2 shape or None, empirical kernel arguments)
    "batch-axis-1": (lambda: stax.serial(stax.Dense(3, batch_axis=1, channel_axis=0), stax.Erf(),
                                         stax.Dense(2, batch_axis=1, channel_axis=0)),
                     (3, 5), (3, 7), dict(trace_axes=(0,))),  # fmt: skip
    "diagonal-batch": (lambda: stax.serial(stax.ConvTranspose(2, (3,), strides=(2,), padding="SAME"),
                                           stax.Relu(), stax.Conv(2, (2,))),
                       (5, 3, 2), None, dict(trace_axes=(-1,), diagonal_axes=(0,))),  # fmt: skip
    "diagonal-spatial": (lambda: stax.serial(stax.Conv(3, (2,), padding="SAME"), stax.Relu(), stax.Conv(2, (2,))),
                         (5, 4, 2), (3, 4, 2), dict(trace_axes=(-1,), diagonal_axes=(1,))),  # fmt: skip
    "untraced-nd": (lambda: stax.serial(stax.Dense(4), stax.Tanh(), stax.Dense(2)),
                    (5, 3), (4, 3), dict(trace_axes=())),  # fmt: skip
    "traced-batch": (lambda: stax.serial(stax.Conv(3, (2,)), stax.Relu(), stax.Conv(2, (2,))),
                     (4, 5, 2), (4, 5, 2), dict(trace_axes=(0, -1))),  # fmt: skip
    "vmap": (lambda: stax.serial(stax.Dense(4), stax.Erf(), stax.Dense(2)),
             (5, 3), (6, 3), dict(trace_axes=(-1,), vmap_axes=0)),  # fmt: skip
}
DEFAULT_LAYOUT_CASES = {("batch-axis-1", (2, -1)), ("diagonal-batch", (3, 2)), ("traced-batch", (2, -1))}
LAYOUT_CASES = [
    pytest.param(name, setting, id=f"{name}-{setting}",
                 marks=() if (name, setting) in DEFAULT_LAYOUT_CASES else pytest.mark.slow)
    for name in LAYOUTS for setting in SETTINGS
]  # fmt: skip


@pytest.mark.parametrize("name, setting", LAYOUT_CASES)
def test_monte_carlo_layouts_equal_the_unbatched_empirical_kernel(name, setting):
    network, shape1, shape2, kernel_kwargs = LAYOUTS[name]
    init_fn, apply_fn, _ = network()
    x1 = _normal(0, shape1)
    x2 = None if shape2 is None else _normal(1, shape2)
    key = jax.random.key(4)
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, 1, *setting, **kernel_kwargs)
    for get in ("ntk", ("nngp", "ntk")):
        want = _one_sample_reference(init_fn, apply_fn, key, x1, x2, get, kernel_kwargs)
        _close(mc(x1, x2, get), want)


def test_analytic_kernel_with_batch_axis_1_equals_unbatched():
    _, _, kernel_fn = stax.serial(stax.Dense(3, batch_axis=1, channel_axis=0), stax.Relu(),
                                  stax.Dense(2, batch_axis=1, channel_axis=0))  # fmt: skip
    x1, x2 = _normal(0, (3, 4)), _normal(1, (3, 8))
    for setting in SETTINGS:
        for second in (x2, None):
            batched = nt.batch(kernel_fn, *setting)
            _close(batched(x1, second, "ntk"), kernel_fn(x1, second, "ntk"))
            got, want = batched(x1, second), kernel_fn(x1, second)
            assert got.shape1 == want.shape1 and got.shape2 == want.shape2
            assert (got.cov2 is None) == (want.cov2 is None)
            _close(got, want)


@pytest.mark.slow
def test_dropout_kernel_shapes_and_whole_batch_values():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dropout(0.7), stax.Dense(2))
    x1, x2 = _normal(0, (4, 3)), _normal(1, (8, 3))
    key = jax.random.key(5)
    whole = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, 1, batch_size=0, device_count=0)(x1, x2, "ntk")
    _close(whole, _one_sample_reference(init_fn, apply_fn, key, x1, x2, "ntk"))
    # blocks draw their own dropout masks (as in neural-tangents), so only the layout is comparable
    blocks = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, batch_size=2, device_count=-1)(x1, x2, "ntk")
    assert blocks.shape == (4, 8) and np.all(np.isfinite(blocks))


def _analytic():
    return stax.serial(stax.Dense(4, W_std=1.3, b_std=0.2), stax.Erf(), stax.Dense(1))


def test_grad_jit_and_jvp_through_batch_equal_the_unbatched_kernel():
    _, _, kernel_fn = _analytic()
    x1, x2 = _normal(0, (6, 3)), _normal(1, (5, 3))
    tangent = _normal(2, x1.shape)
    batched = nt.batch(kernel_fn, 2, -1)

    def loss(fn, second):
        return lambda x: jnp.sum(jnp.sin(fn(x, second, "ntk")))

    for second in (x2, None):
        f, g = loss(batched, second), loss(kernel_fn, second)
        _close(jax.grad(f)(x1), jax.grad(g)(x1))
        _close(jax.jit(f)(x1), g(x1))
        _close(jax.jvp(f, (x1,), (tangent,)), jax.jvp(g, (x1,), (tangent,)))
    _close(jax.jit(lambda a: nt.batch(kernel_fn, 3, 2)(a, x2))(x1), kernel_fn(x1, x2))


@pytest.mark.slow
def test_grad_and_jit_through_monte_carlo_kernel_fn():
    init_fn, apply_fn, _ = _analytic()
    x1, x2 = _normal(0, (6, 3)), _normal(1, (5, 3))
    key = jax.random.key(6)
    blocks = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, batch_size=2, device_count=-1)
    whole = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, batch_size=0, device_count=0)
    loss = lambda fn: (lambda x: jnp.sum(fn(x, x2, "ntk") ** 2))  # noqa: E731
    _close(jax.grad(loss(blocks))(x1), jax.grad(loss(whole))(x1))
    _close(jax.jit(lambda x: blocks(x, None, "nngp"))(x1), whole(x1, None, "nngp"))
    # and both are the gradient of the estimate's definition (mean over samples)
    def reference(x):
        mean = sum(_sample_ntk(init_fn, apply_fn, k, x, x2) for k in _sample_keys(key, 2)) / 2
        return jnp.sum(mean**2)

    _close(jax.grad(loss(blocks))(x1), jax.grad(reference)(x1))


def _sample_keys(key, n):
    keys = []
    for _ in range(n):
        key, sample_key = jax.random.split(key)
        keys.append(sample_key)
    return keys


def _sample_ntk(init_fn, apply_fn, sample_key, x1, x2):
    init_key, apply_key = jax.random.split(sample_key)
    _, params = init_fn(init_key, x1.shape)
    return nt.empirical_ntk_fn(apply_fn)(x1, x2, params, key=apply_key)


def test_a_kernel_input_is_cut_into_blocks():
    _, _, first = stax.Dense(3, b_std=0.1)
    _, _, rest = stax.serial(stax.Relu(), stax.Dense(2), stax.Erf(), stax.Dense(1))
    x1, x2 = _normal(0, (6, 4)), _normal(1, (5, 4))
    for second in (x2, None):
        k_in = first(x1, second)
        want = rest(k_in)
        for setting in SETTINGS:
            got = nt.batch(rest, *setting)(k_in)
            assert isinstance(got, Kernel)
            for field in ("shape1", "shape2", "batch_axis", "diagonal_batch"):
                assert getattr(got, field) == getattr(want, field), field
            assert (got.cov2 is None) == (want.cov2 is None)
            for field in ("nngp", "ntk", "cov1", "cov2"):
                if getattr(want, field) is not None:
                    _close(getattr(got, field), getattr(want, field))
            assert dataclasses.fields(got) == dataclasses.fields(want)
            _close(nt.batch(rest, *setting)(k_in, get="ntk"), rest(k_in, get="ntk"))


def _graph_inputs():
    x1, x2 = _normal(0, (6, 4, 3)), _normal(1, (5, 4, 3))
    p1 = jax.random.bernoulli(jax.random.key(2), 0.5, (6, 4, 4)).astype(jnp.float64)
    p2 = jax.random.bernoulli(jax.random.key(3), 0.5, (5, 4, 4)).astype(jnp.float64)
    return x1, x2, p1, p2


@pytest.mark.slow
def test_aggregate_pattern_pairs_are_cut_with_the_inputs():
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(3), stax.Relu(), stax.Aggregate(),
                                               stax.GlobalAvgPool(), stax.Dense(1))  # fmt: skip
    x1, x2, p1, p2 = _graph_inputs()
    want = kernel_fn(x1, x2, "ntk", pattern=(p1, p2))
    for setting in SETTINGS:
        _close(nt.batch(kernel_fn, *setting)(x1, x2, "ntk", pattern=(p1, p2)), want)
    _close(nt.batch(kernel_fn, 2, -1)(x1, None, "nngp", pattern=(p1, p1)),
           kernel_fn(x1, None, "nngp", pattern=(p1, p1)))  # fmt: skip
    key = jax.random.key(7)
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, 1, batch_size=2, device_count=-1)
    _close(mc(x1, x2, ("nngp", "ntk"), pattern=(p1, p2)),
           _one_sample_reference(init_fn, apply_fn, key, x1, x2, ("nngp", "ntk"), pattern=(p1, p2)))  # fmt: skip
