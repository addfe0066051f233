"""Forward passes of the stax layers against independent references: numpy loops
for convolutions and pooling, numpy/scipy for activations, the adjoint identity
for transposed convolutions, and Monte Carlo statistics for the parameterizations
and initialisers."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from jaxdl import stax

RNG = np.random.default_rng(0)


def _pads(size, window, stride, padding):
    if padding == "VALID":
        return 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def np_correlate(x, w, strides, padding):
    """x: [n, *spatial, c_in]; w: [*filter, c_in, c_out]; cross-correlation by loops."""
    spatial = x.shape[1:-1]
    filt = w.shape[:-2]
    pads = [(0, 0)] + [_pads(s, f, st, padding) for s, f, st in zip(spatial, filt, strides)] + [(0, 0)]
    x = np.pad(x, pads, mode="wrap" if padding == "CIRCULAR" else "constant")
    out_sizes = [(x.shape[1 + i] - filt[i]) // strides[i] + 1 for i in range(len(filt))]
    out = np.zeros((x.shape[0], *out_sizes, w.shape[-1]))
    for pos in itertools.product(*[range(o) for o in out_sizes]):
        window = tuple(slice(p * st, p * st + f) for p, st, f in zip(pos, strides, filt))
        patch = x[(slice(None),) + window]
        out[(slice(None),) + pos] = np.tensordot(patch, w, axes=(list(range(1, patch.ndim)), list(range(w.ndim - 1))))
    return out


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_dense_matches_its_formula(parameterization):
    layer = stax.Dense(4, W_std=1.7, b_std=0.3, parameterization=parameterization, s=(1, 1))
    x = RNG.normal(size=(5, 6)).astype(np.float32)
    _, params = layer.init(jax.random.key(0), x.shape)
    W, b = np.asarray(params["W"]), np.asarray(params["b"])
    if parameterization == "ntk":
        expected = 1.7 / math.sqrt(6) * x @ W + 0.3 * b
    else:
        expected = x @ W + b
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "filter_shape,strides,padding",
    [((3,), (1,), "VALID"), ((3,), (2,), "SAME"), ((4,), (1,), "CIRCULAR"),
     ((3, 2), (1, 1), "SAME"), ((3, 3), (2, 1), "VALID"), ((3, 2), (2, 2), "CIRCULAR"),
     ((2, 2, 2), (1, 2, 1), "SAME")],
)  # fmt: skip
def test_conv_matches_numpy_correlation(filter_shape, strides, padding):
    spatial = (7, 6, 5)[: len(filter_shape)]
    x = RNG.normal(size=(2, *spatial, 3)).astype(np.float32)
    layer = stax.Conv(4, filter_shape, strides, padding, W_std=1.3, b_std=0.2)
    out_shape, params = layer.init(jax.random.key(1), x.shape)
    W, b = np.asarray(params["W"]), np.asarray(params["b"])
    expected = 1.3 / math.sqrt(3 * math.prod(filter_shape)) * np_correlate(x, W, strides, padding) + 0.2 * b
    got = layer.apply(params, x)
    assert got.shape == out_shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_local_matches_position_wise_filters():
    x = RNG.normal(size=(2, 5, 4, 2)).astype(np.float32)
    layer = stax.ConvLocal(3, (2, 3), padding="VALID", b_std=0.5)
    _, params = layer.init(jax.random.key(2), x.shape)
    W, b = np.asarray(params["W"]), np.asarray(params["b"])  # W: [4, 2, 2*2*3, 3]
    out = np.zeros((2, 4, 2, 3))
    for i, j in itertools.product(range(4), range(2)):
        patch = x[:, i : i + 2, j : j + 3, :]  # [n, 2, 3, c]
        # lax orders the flattened patch as (channel, filter rows, filter cols)
        flat = np.transpose(patch, (0, 3, 1, 2)).reshape(2, -1)
        out[:, i, j] = flat @ W[i, j]
    expected = 1.0 / math.sqrt(2 * 6) * out + 0.5 * b
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strides,padding", [((1, 1), "VALID"), ((2, 2), "VALID"), ((2, 1), "SAME")])
def test_conv_transpose_is_the_adjoint_of_conv(strides, padding):
    """<ConvT(y), x> = <y, Conv(x)> with the filter flipped and in/out swapped."""
    filter_shape = (3, 2)
    transpose = stax.ConvTranspose(2, filter_shape, strides, padding)
    y = jnp.asarray(RNG.normal(size=(1, 4, 5, 3)), jnp.float32)
    out_shape, params = transpose.init(jax.random.key(3), y.shape)
    W = params["W"]  # [3, 2, 3, 2]
    flipped = jnp.flip(W, axis=(0, 1)).swapaxes(2, 3)  # [3, 2, 2, 3]
    conv = stax.Conv(3, filter_shape, strides, padding)
    conv_apply = lambda x: conv.apply({"W": flipped}, x)  # noqa: E731
    x = jnp.asarray(RNG.normal(size=out_shape), jnp.float32)
    if conv_apply(x).shape != y.shape:
        pytest.skip("this stride/padding pair is not an exact adjoint pair")
    _, vjp = jax.vjp(conv_apply, x)
    # Both layers scale by W_std / sqrt(fan_in); the fans differ (3*6 vs 2*6 inputs).
    scale = math.sqrt(2 * 6) / math.sqrt(3 * 6)
    np.testing.assert_allclose(transpose.apply(params, y), scale * vjp(y)[0], rtol=1e-4, atol=1e-4)


def test_circular_conv_is_equivariant_to_cyclic_shifts():
    layer = stax.Conv(2, (3, 3), padding="CIRCULAR")
    x = jnp.asarray(RNG.normal(size=(1, 6, 5, 2)), jnp.float32)
    _, params = layer.init(jax.random.key(4), x.shape)
    shifted = layer.apply(params, jnp.roll(x, (2, -1), axis=(1, 2)))
    np.testing.assert_allclose(shifted, jnp.roll(layer.apply(params, x), (2, -1), axis=(1, 2)), atol=1e-5)


def test_circular_conv_transpose_is_equivariant_to_cyclic_shifts():
    layer = stax.ConvTranspose(2, (3, 3), strides=(2, 2), padding="CIRCULAR")
    x = jnp.asarray(RNG.normal(size=(1, 4, 3, 2)), jnp.float32)
    out_shape, params = layer.init(jax.random.key(5), x.shape)
    assert out_shape == (1, 8, 6, 2)
    shifted = layer.apply(params, jnp.roll(x, (1, 1), axis=(1, 2)))
    np.testing.assert_allclose(shifted, jnp.roll(layer.apply(params, x), (2, 2), axis=(1, 2)), atol=1e-5)


def np_pool(x, window, strides, padding, reduce):
    pads = [(0, 0)] + [_pads(s, w, st, padding) for s, w, st in zip(x.shape[1:-1], window, strides)] + [(0, 0)]
    fill = -np.inf if reduce is np.max else 0.0
    xp = np.pad(x, pads, mode="wrap") if padding == "CIRCULAR" else np.pad(x, pads, constant_values=fill)
    counts = np.pad(np.ones_like(x), pads) if padding != "CIRCULAR" else np.ones_like(xp)
    sizes = [(xp.shape[1 + i] - window[i]) // strides[i] + 1 for i in range(len(window))]
    out = np.zeros((x.shape[0], *sizes, x.shape[-1]))
    real = np.zeros_like(out)
    for pos in itertools.product(*[range(s) for s in sizes]):
        idx = (slice(None),) + tuple(slice(p * st, p * st + w) for p, st, w in zip(pos, strides, window))
        axes = tuple(range(1, x.ndim - 1))
        out[(slice(None),) + pos] = reduce(xp[idx], axis=axes)
        real[(slice(None),) + pos] = counts[idx].sum(axis=axes)
    return out, real


@pytest.mark.parametrize("padding", ["VALID", "SAME", "CIRCULAR"])
def test_pools_match_numpy(padding):
    x = RNG.normal(size=(2, 5, 6, 3)).astype(np.float32)
    window, strides = (2, 3), (2, 1)
    sums, real = np_pool(x, window, strides, padding, np.sum)
    maxes, _ = np_pool(x, window, strides, padding, np.max)
    apply = lambda layer: layer.apply({}, x)  # noqa: E731
    np.testing.assert_allclose(apply(stax.SumPool(window, strides, padding)), sums, atol=1e-5)
    np.testing.assert_allclose(apply(stax.AvgPool(window, strides, padding)), sums / 6, atol=1e-5)
    np.testing.assert_allclose(apply(stax.MaxPool(window, strides, padding)), maxes, atol=1e-6)
    normalized = stax.AvgPool(window, strides, padding, normalize_edges=True)
    np.testing.assert_allclose(apply(normalized), sums / (real if padding == "SAME" else 6), atol=1e-5)


def test_global_pools_flatten_and_layer_norm_match_numpy():
    x = RNG.normal(size=(2, 4, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(stax.GlobalAvgPool().apply({}, x), x.mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(stax.GlobalSumPool().apply({}, x), x.sum(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(stax.Flatten().apply({}, x), x.reshape(2, -1))
    np.testing.assert_allclose(stax.Flatten(batch_axis_out=1).apply({}, x), x.reshape(2, -1).T)
    for axis in (-1, (1, 2, 3)):
        mean = x.mean(axis=axis, keepdims=True)
        expected = (x - mean) / np.sqrt(x.var(axis=axis, keepdims=True) + 1e-6)
        np.testing.assert_allclose(stax.LayerNorm(axis, eps=1e-6).apply({}, x), expected, rtol=1e-4, atol=1e-5)


ACTIVATIONS = [
    (stax.Relu(), lambda x: np.maximum(x, 0)),
    (stax.LeakyRelu(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (stax.Abs(), np.abs),
    (stax.ABRelu(-0.5, 2.0), lambda x: np.where(x > 0, 2 * x, -0.5 * x)),
    (stax.Erf(2.0, 0.5, 0.1), lambda x: 2 * scipy.special.erf(0.5 * x) + 0.1),
    (stax.Sigmoid_like(), lambda x: 0.5 * scipy.special.erf(x / 2.4020563531719796) + 0.5),
    (stax.Gelu(), lambda x: x * scipy.special.ndtr(x)),  # the seeds' z Pr(Z <= z)
    (stax.Sign(), np.sign),
    (stax.Sin(1.5, 2.0, 0.3), lambda x: 1.5 * np.sin(2 * x + 0.3)),
    (stax.Cos(1.5, 2.0, 0.3), lambda x: 1.5 * np.cos(2 * x + 0.3)),
    (stax.Rbf(0.5), lambda x: np.sqrt(2) * np.sin(x + np.pi / 4)),
    (stax.Exp(0.5, 0.3), lambda x: 0.5 * np.exp(0.3 * x)),
    (stax.Gaussian(2.0, -0.5), lambda x: 2 * np.exp(-0.5 * x**2)),
    (stax.Monomial(3), lambda x: x**3),
    (stax.RectifiedMonomial(2), lambda x: np.maximum(x, 0) ** 2),
    (stax.Polynomial([0.5, -1.0, 0.25]), lambda x: 0.5 - x + 0.25 * x**2),
    (stax.Hermite(3), lambda x: scipy.special.eval_hermitenorm(3, x) / np.sqrt(6)),
    (stax.Hermite(6), lambda x: scipy.special.eval_hermitenorm(6, x) / np.sqrt(720)),
    (stax.Hermite(0), np.ones_like),
    (stax.Hermite(9), lambda x: scipy.special.eval_hermitenorm(9, x) / np.sqrt(362880)),
    (stax.Gabor(), lambda x: np.exp(-(x**2)) * np.sin(x)),
    (stax.Tanh(), np.tanh),
    (stax.Sigmoid(), scipy.special.expit),
    (stax.Softplus(), lambda x: np.logaddexp(0, x)),
    (stax.Elu(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    (stax.Softmax(), lambda x: scipy.special.softmax(x, axis=-1)),
    (stax.Maxout(2), lambda x: x.reshape(x.shape[0], -1, 2).max(-1)),
]


@pytest.mark.parametrize("layer,reference", ACTIVATIONS, ids=[a[0].name for a in ACTIVATIONS])
def test_activations_match_numpy(layer, reference):
    x = RNG.normal(size=(4, 6)) * 2
    with jax.enable_x64(True):
        np.testing.assert_allclose(layer.apply({}, jnp.asarray(x)), reference(x), rtol=1e-10, atol=1e-12)


def test_hermite_polynomials_are_orthonormal_under_the_gaussian():
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    values = np.stack([np.asarray(stax.Hermite(n).apply({}, jnp.asarray(nodes))) for n in range(0, 9)])
    np.testing.assert_allclose((values * weights) @ values.T, np.eye(9), atol=1e-4)


def _output_variance(layer, x, num_inits=3000):
    keys = jax.random.split(jax.random.key(11), num_inits)
    outs = jax.vmap(lambda k: layer.apply(layer.init(k, x.shape)[1], x))(keys)
    return np.asarray(outs).var(axis=0).mean(axis=-1), outs.size // x.shape[0]


@pytest.mark.parametrize("parameterization,s", [("ntk", (1, 1)), ("standard", (1, 1)), ("standard", (2, 3))])
def test_dense_output_variance_is_W_std2_mean_x2_plus_b_std2(parameterization, s):
    W_std, b_std = 1.6, 0.4
    x = jnp.asarray(RNG.normal(size=(3, 40)) * np.array([[0.5], [1.0], [2.0]]), jnp.float32)
    layer = stax.Dense(16, W_std, b_std, parameterization=parameterization, s=s)
    variance, samples = _output_variance(layer, x)
    expected = W_std**2 * np.mean(np.asarray(x) ** 2, axis=-1) + b_std**2
    # the sample variance of `samples` Gaussian draws has relative sd sqrt(2 / samples)
    np.testing.assert_allclose(variance, expected, rtol=5 * math.sqrt(2 / samples))


def test_conv_output_variance_is_W_std2_mean_patch_x2_plus_b_std2():
    W_std, b_std = 1.3, 0.5
    x = jnp.asarray(RNG.normal(size=(1, 5, 4)), jnp.float32)
    layer = stax.Conv(8, (3,), padding="VALID", W_std=W_std, b_std=b_std)
    keys = jax.random.split(jax.random.key(12), 3000)
    outs = np.asarray(jax.vmap(lambda k: layer.apply(layer.init(k, x.shape)[1], x))(keys))  # [inits, 1, 3, 8]
    patches = np.stack([np.asarray(x)[0, i : i + 3] for i in range(3)])  # [3 positions, 3, 4]
    expected = W_std**2 * (patches**2).mean(axis=(1, 2)) + b_std**2
    np.testing.assert_allclose(outs.var(axis=0).mean(axis=-1)[0], expected, rtol=5 * math.sqrt(2 / (3000 * 8)))


@pytest.mark.parametrize(
    "make,variance,uniform",
    [
        (stax.initializers.lecun_normal, lambda n, m: 1 / n, False),
        (stax.initializers.lecun_uniform, lambda n, m: 1 / n, True),
        (stax.initializers.glorot_normal, lambda n, m: 2 / (n + m), False),
        (stax.initializers.glorot_uniform, lambda n, m: 2 / (n + m), True),
        (stax.initializers.he_normal, lambda n, m: 2 / n, False),
        (stax.initializers.he_uniform, lambda n, m: 2 / n, True),
        (lambda: stax.initializers.normal(0.3), lambda n, m: 0.09, False),
        (lambda: stax.initializers.uniform(0.3), lambda n, m: 0.09, True),
    ],
)
def test_initializers_have_the_seeds_variances(make, variance, uniform):
    n, m = 300, 500
    W = np.asarray(make()(jax.random.key(0), (n, m)))
    expected = variance(n, m)
    assert abs(W.var() / expected - 1) < 5 * math.sqrt(2 / W.size)
    assert abs(W.mean()) < 5 * math.sqrt(expected / W.size)
    if uniform:  # uniform on [-sqrt(3 var), sqrt(3 var)]
        bound = math.sqrt(3 * expected)
        assert np.abs(W).max() <= bound + 1e-6 and np.abs(W).max() > 0.99 * bound


def test_orthogonal_initializer_has_orthonormal_columns():
    W = np.asarray(stax.initializers.orthogonal(gain=2.0)(jax.random.key(1), (64, 32)))
    np.testing.assert_allclose(W.T @ W, 4 * np.eye(32), atol=1e-4)


def test_standard_conv_with_an_initializer_uses_its_fans():
    layer = stax.Conv(64, (3, 3), parameterization="standard", W_init=stax.initializers.he_normal())
    _, params = layer.init(jax.random.key(2), (1, 8, 8, 16))
    fan_in = 3 * 3 * 16
    assert params["W"].shape == (3, 3, 16, 64)
    assert abs(float(params["W"].var()) * fan_in / 2 - 1) < 0.05
