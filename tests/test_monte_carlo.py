"""``monte_carlo_kernel_fn`` with neural-tangents' signature: averages of
empirical kernels over initialisations, blockwise over devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.kernels.empirical import empirical_kernel_fn
from jaxdl.kernels.monte_carlo import monte_carlo_kernel_fn

MODEL = stax.serial(stax.Dense(64, b_std=0.1), stax.Erf(), stax.Dense(3))
X1 = jax.random.normal(jax.random.key(0), (5, 4))
X2 = jax.random.normal(jax.random.key(1), (3, 4))


def _manual_average(n, key):
    """The definition: split the key per sample, init, average the empirical kernels."""
    empirical = empirical_kernel_fn(MODEL.apply)
    total = None
    for _ in range(n):
        key, sample_key = jax.random.split(key)
        init_key, _ = jax.random.split(sample_key)
        _, params = MODEL.init(init_key, X1.shape)
        sample = np.stack(empirical(X1, X2, ("nngp", "ntk"), params))
        total = sample if total is None else total + sample
    return total / n


@pytest.mark.slow
def test_average_matches_its_definition_and_the_generator_yields_running_averages():
    key = jax.random.key(2)
    averages = list(monte_carlo_kernel_fn(MODEL.init, MODEL.apply, key, [1, 3])(X1, X2, ("nngp", "ntk")))
    assert [type(a).__name__ for a in averages] == ["EmpiricalKernel"] * 2
    for estimate, n in zip(averages, [1, 3]):
        np.testing.assert_allclose(np.stack(estimate), _manual_average(n, key), rtol=1e-5, atol=1e-6)
    single = monte_carlo_kernel_fn(MODEL.init, MODEL.apply, key, 3)(X1, X2, "ntk")
    np.testing.assert_allclose(single, averages[1].ntk, rtol=1e-6)


def test_blockwise_over_devices_equals_one_block():
    key = jax.random.key(3)
    whole = monte_carlo_kernel_fn(MODEL.init, MODEL.apply, key, 2, device_count=0)(X1, None, "nngp")
    blocks = monte_carlo_kernel_fn(MODEL.init, MODEL.apply, key, 2, batch_size=1, device_count=-1)(X1, None, "nngp")
    np.testing.assert_allclose(blocks, whole, rtol=1e-5, atol=1e-6)


def test_converges_to_the_analytic_kernel_for_a_wide_net():
    # 128 outputs traced x 16 samples: the estimates have relative sd about sqrt(2 / 2048)
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512, b_std=0.2), stax.Relu(), stax.Dense(128))
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(4), 16, device_count=0, vmap_axes=0,
                               implementation=0)  # fmt: skip
    estimate = mc(X1, X2, ("nngp", "ntk"))
    exact = kernel_fn(X1, X2, ("nngp", "ntk"))
    for got, want in zip(estimate, exact):
        np.testing.assert_allclose(got, want, atol=0.1 * float(jnp.abs(want).max()))


@pytest.mark.parametrize("n_samples", [0, -2, 2.5, [], [3, 0], True])
def test_bad_sample_counts_raise(n_samples):
    with pytest.raises(ValueError, match="monte_carlo_kernel_fn: expected n_samples"):
        monte_carlo_kernel_fn(MODEL.init, MODEL.apply, jax.random.key(0), n_samples)


def test_plain_apply_functions_without_a_key_keyword_work():
    def apply_fn(params, x):  # no **kwargs: monte_carlo must not pass key=
        return MODEL.apply(params, x)

    estimate = monte_carlo_kernel_fn(MODEL.init, apply_fn, jax.random.key(2), 3)(X1, X2, "nngp")
    np.testing.assert_allclose(estimate, _manual_average(3, jax.random.key(2))[0], rtol=1e-5, atol=1e-6)


def test_dropout_gets_the_documented_key():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(32), stax.Dropout(0.5), stax.Dense(2))
    key = jax.random.key(5)
    estimate = monte_carlo_kernel_fn(init_fn, apply_fn, key, 1, device_count=0)(X1, X2, "nngp")
    _, sample_key = jax.random.split(key)
    init_key, apply_key = jax.random.split(sample_key)
    _, params = init_fn(init_key, X1.shape)
    # x1 gets the sample's key, x2 an independent one (neural-tangents' rule)
    outputs1 = apply_fn(params, X1, key=apply_key)
    outputs2 = apply_fn(params, X2, key=jax.random.fold_in(apply_key, 1))
    np.testing.assert_allclose(estimate, outputs1 @ outputs2.T / 2, rtol=1e-5, atol=1e-6)
