"""Set layers and models (jaxdl.stax.sets, jaxdl.models.sets): pooling and the equivariant
layer against NumPy, invariance/equivariance under permutations, padding masks, kernels."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import models, stax

B, M, F = 3, 6, 2
SIZES = np.array([6, 2, 0])  # true set sizes: full, partial, empty


def _padded_sets(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, M, F)).astype(np.float32)
    mask = np.arange(M)[None, :] >= SIZES[:, None]  # True: padding
    return x, mask


@pytest.mark.parametrize("pooling", ["sum", "mean", "max"])
def test_set_pool_matches_numpy_over_the_real_elements(pooling):
    x, mask = _padded_sets()
    garbage = np.where(mask[..., None], 1e4, x)  # padding content must not matter
    out = np.asarray(stax.SetPool(pooling).apply({}, jnp.asarray(garbage), mask=jnp.asarray(mask)))
    for b, size in enumerate(SIZES):
        real = x[b, :size]
        expected = np.zeros(F) if size == 0 else {"sum": real.sum(0), "mean": real.mean(0), "max": real.max(0)}[pooling]
        np.testing.assert_allclose(out[b], expected, rtol=1e-6, atol=1e-6)
    grads = jax.grad(lambda z: jnp.sum(stax.SetPool(pooling).apply({}, z, mask=jnp.asarray(mask)) ** 2))(jnp.asarray(x))
    assert np.isfinite(np.asarray(grads)).all()
    np.testing.assert_array_equal(np.asarray(grads)[mask], 0.0)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_perm_equivariant_is_the_seeds_lambda_identity_plus_gamma_ones(pooling):
    x, _ = _padded_sets(1)
    layer = stax.PermEquivariant(1, pooling=pooling, W_std=1.0)
    _, params = layer.init(jax.random.key(0), (-1, M, 1))
    out = np.asarray(layer.apply(params, jnp.asarray(x[..., :1])))[..., 0]
    lam, gam = float(params["Lambda"][0, 0]), float(params["Gamma"][0, 0])
    c = 1.0 if pooling == "sum" else M
    matrix = lam * np.eye(M) + gam / c * np.ones((M, M))  # lambda I + gamma 1 1^T
    np.testing.assert_allclose(out, x[..., 0] @ matrix.T, rtol=1e-5, atol=1e-6)


def test_perm_equivariant_is_equivariant_and_ignores_padding():
    x, mask = _padded_sets(2)
    layer = stax.PermEquivariant(4, b_std=0.1)
    _, params = layer.init(jax.random.key(0), (-1, M, F))
    out = np.asarray(layer.apply(params, jnp.asarray(x)))
    perm = np.random.default_rng(0).permutation(M)
    np.testing.assert_allclose(np.asarray(layer.apply(params, jnp.asarray(x[:, perm]))), out[:, perm], rtol=1e-5, atol=1e-5)
    masked = np.asarray(layer.apply(params, jnp.asarray(np.where(mask[..., None], 7.0, x)), mask=jnp.asarray(mask)))
    alone = np.asarray(layer.apply(params, jnp.asarray(x[1:2, :2])))  # the size-2 set on its own
    np.testing.assert_allclose(masked[1, :2], alone[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(masked[mask], 0.0)


MODELS = {
    "deep_sets_sum": lambda: models.deep_sets(4, (8, 8), (8,)),
    "deep_sets_max_equivariant": lambda: models.deep_sets(4, (8,), (), pooling="max", equivariant=True),
    "pointnet": lambda: models.pointnet(4, dim=F, widths=(8, 16), head=(8,), feature_transform=True),
}


@pytest.mark.parametrize("name", [n if n != "pointnet" else pytest.param(n, marks=pytest.mark.slow) for n in MODELS])
def test_models_are_invariant_and_padding_does_not_change_outputs(name):
    model = MODELS[name]()
    x, mask = _padded_sets(3)
    _, params = model.init(jax.random.key(0), (-1, M, F))
    apply = jax.jit(lambda p, z, m: model.apply(p, z, mask=m))
    out = np.asarray(apply(params, jnp.asarray(x), jnp.asarray(mask)))
    assert np.isfinite(out).all()  # the empty set included
    perm = np.random.default_rng(1).permutation(M)
    np.testing.assert_allclose(np.asarray(apply(params, jnp.asarray(x[:, perm]), jnp.asarray(mask[:, perm]))), out,
                               rtol=1e-5, atol=1e-5)
    garbage = np.where(mask[..., None], -30.0, x)
    np.testing.assert_allclose(np.asarray(apply(params, jnp.asarray(garbage), jnp.asarray(mask))), out, rtol=1e-5,
                               atol=1e-5)
    alone = np.asarray(model.apply(params, jnp.asarray(x[1:2, :2])))  # the size-2 set without padding
    np.testing.assert_allclose(out[1], alone[0], rtol=1e-5, atol=1e-5)


def test_deep_sets_is_rho_of_the_sum_of_phi():
    model = models.deep_sets(3, (5,), (), activation="tanh", b_std=None)
    x, _ = _padded_sets(4)
    _, params = model.init(jax.random.key(0), (-1, M, F))
    W_phi, W_rho = (np.asarray(p["W"], np.float64) for p in (params["Dense_0"], params["Dense_3"]))
    phi = np.tanh(x @ W_phi * math.sqrt(2) / math.sqrt(F))
    expected = phi.sum(axis=1) @ W_rho * math.sqrt(2) / math.sqrt(5)
    np.testing.assert_allclose(model.apply(params, jnp.asarray(x)), expected, rtol=1e-5, atol=1e-5)


def test_tnet_starts_as_the_identity_and_learns_a_transform():
    tnet = models.TNet(F, widths=(4,), head=())
    x, mask = _padded_sets(5)
    _, params = tnet.init(jax.random.key(0), (-1, M, F))
    np.testing.assert_allclose(tnet.apply(params, jnp.asarray(x), mask=jnp.asarray(mask)), x, atol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(tnet.apply(p, jnp.asarray(x)) ** 2))(params)
    assert np.abs(np.asarray(grads["transform"]["W"])).sum() > 0


def test_bad_input_raises_naming_the_layer():
    with pytest.raises(ValueError, match="^SetPool: expected pooling"):
        stax.SetPool("median")
    with pytest.raises(ValueError, match="^SetPool: expected an input of rank 3"):
        stax.SetPool().apply({}, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="^SetPool: expected mask of shape"):
        stax.SetPool().apply({}, jnp.ones((2, 3, 1)), mask=jnp.zeros((2, 4), bool))
    layer = stax.PermEquivariant(2)
    _, params = layer.init(jax.random.key(0), (-1, 3, 2))
    with pytest.raises(ValueError, match="^PermEquivariant: expected 2 features"):
        layer.apply(params, jnp.ones((1, 3, 5)))
    with pytest.raises(ValueError, match="^PermEquivariant: expected pooling"):
        stax.PermEquivariant(2, pooling="max")
    with pytest.raises(ValueError, match="^TNet: expected input_shape"):
        models.TNet(3).init(jax.random.key(0), (-1, 5, 2))


def test_sum_pooling_deep_sets_kernel_matches_the_closed_form():
    """Dense -> SetPool('sum') -> Dense: nngp = W2^2 sum_{m, m'} (W1^2 x_m . x'_m' / F + b1^2) + b2^2."""
    x, _ = _padded_sets(6)
    model = stax.serial(stax.Dense(8, 1.5, 0.3), stax.SetPool("sum"), stax.Dense(3, 1.2, 0.1))
    with jax.enable_x64(True):
        k = model.kernel(jnp.asarray(x, jnp.float64), None, ("nngp", "ntk"))
    x64 = x.astype(np.float64)
    inner = 1.5**2 * np.einsum("imf,jnf->ij", x64, x64) / F + M * M * 0.3**2
    nngp = 1.2**2 * inner + 0.1**2
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-10)
    np.testing.assert_allclose(k.ntk, nngp + 1.2**2 * inner, rtol=1e-10)
    with pytest.raises(NotImplementedError, match="^SetPool: no closed-form"):
        stax.serial(stax.Dense(3), stax.SetPool("max")).kernel(jnp.asarray(x), None, "nngp")


@pytest.mark.slow
def test_deep_sets_kernels_match_monte_carlo():
    from jaxdl.kernels.monte_carlo import monte_carlo_kernel_fn

    x, _ = _padded_sets(7)
    init_fn, apply_fn, kernel_fn = models.deep_sets(512, (512,), (512,), pooling="mean")
    analytic = kernel_fn(jnp.asarray(x), None, ("nngp", "ntk"))
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(1), 16, device_count=0)(
        jnp.asarray(x), None, ("nngp", "ntk"))
    for exact, estimate in zip(analytic, mc):
        assert np.linalg.norm(exact - estimate) / np.linalg.norm(exact) < 0.08
