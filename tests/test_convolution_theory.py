"""jaxdl.theory.convolution: Toeplitz matrices, FFT convolution, receptive fields and
parameter counts, each against an independent computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdl import stax
from jaxdl.theory import convolution as C

RNG = np.random.default_rng(0)
GEOMETRIES = [((1, 1), (1, 1)), ((2, 1), (1, 2)), ((2, 3), (2, 1))]


def test_toeplitz_matrix_is_the_seeds_full_convolution_and_has_constant_diagonals():
    h, f = RNG.normal(size=4), RNG.normal(size=9)
    H = np.asarray(C.toeplitz_matrix(jnp.asarray(h), 9))
    assert H.shape == (9 + 4 - 1, 9)
    np.testing.assert_allclose(H @ f, np.convolve(f, h, "full"), rtol=1e-5, atol=1e-5)
    for lag in range(-8, 12):  # every NW-SE diagonal is constant
        assert np.ptp(np.diagonal(H, offset=-lag)) == 0


@pytest.mark.parametrize("padding", ["VALID", "SAME", "CAUSAL", "CIRCULAR"])
@pytest.mark.parametrize("strides,dilation", GEOMETRIES)
def test_toeplitz_product_equals_stax_conv_and_fft_conv(padding, strides, dilation):
    x = jnp.asarray(RNG.normal(size=(2, 7, 6, 3)), jnp.float32)
    w = jnp.asarray(RNG.normal(size=(3, 2, 3, 4)), jnp.float32)
    b = jnp.asarray(RNG.normal(size=(1, 1, 1, 4)), jnp.float32)
    layer = stax.Conv(4, (3, 2), strides, padding, W_std=1.5, b_std=0.5, rhs_dilation=dilation)
    y = layer.apply({"W": w, "b": b}, x)
    scale = 1.5 / math.sqrt(3 * 2 * 3)  # the 'ntk' parameterization's W_std / sqrt(fan_in)
    M = C.conv_matrix(w, (7, 6, 3), strides, padding, dilation)
    y_toeplitz = (x.reshape(2, -1) @ M.T).reshape(y.shape) * scale + 0.5 * b
    y_fft = C.fft_conv(x, w, strides, padding, dilation) * scale + 0.5 * b
    np.testing.assert_allclose(y_toeplitz, y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_fft, y, rtol=1e-4, atol=1e-4)


def test_fft_conv_matches_lax_in_1d_and_3d_float64():
    with jax.enable_x64(True):
        for spatial, window in [((13,), (4,)), ((5, 4, 6), (2, 3, 2))]:
            x = jnp.asarray(RNG.normal(size=(2, *spatial, 2)))
            w = jnp.asarray(RNG.normal(size=(*window, 2, 3)))
            ref = lax.conv_general_dilated(
                x, w, (1,) * len(spatial), "SAME", dimension_numbers=stax.conv.default_dimension_numbers(len(spatial))
            )
            np.testing.assert_allclose(C.fft_conv(x, w, padding="SAME"), ref, rtol=1e-10, atol=1e-10)


def test_conv1d_matrix_is_a_band_toeplitz_matrix():
    k = jnp.asarray([1.0, 2.0, 3.0])
    M = np.asarray(C.conv1d_matrix(k, 6))
    expected = np.zeros((4, 6))
    for u in range(4):
        expected[u, u : u + 3] = [1, 2, 3]  # M[u, j] = k[j - u]: cross-correlation
    np.testing.assert_array_equal(M, expected)
    dilated = np.asarray(C.conv1d_matrix(k, 7, dilation=2, padding="CAUSAL"))
    assert dilated.shape == (7, 7)
    np.testing.assert_array_equal(dilated[6], [0, 0, 1, 0, 2, 0, 3])  # taps t = 6 - 4, 6 - 2, 6
    assert np.all(np.triu(dilated, 1) == 0)  # causal: lower triangular


def test_conv2d_matrix_is_doubly_block_toeplitz():
    k = jnp.asarray(RNG.normal(size=(2, 3)), jnp.float32)
    H, W = 4, 5
    M = np.asarray(C.conv2d_matrix(k, (H, W)))
    Ho, Wo = H - 1, W - 2
    blocks = M.reshape(Ho, Wo, H, W).transpose(0, 2, 1, 3)  # block (a, b): [Wo, W]
    for a in range(Ho):
        for b in range(H):
            expected = np.asarray(C.conv1d_matrix(k[b - a], W)) if 0 <= b - a < 2 else np.zeros((Wo, W))
            np.testing.assert_allclose(blocks[a, b], expected, rtol=1e-6)


def test_conv_matrix_rejects_bad_geometry():
    with pytest.raises(ValueError, match="^conv_matrix: .*does not fit"):
        C.conv_matrix(jnp.ones((5, 1, 1)), (3, 1))
    with pytest.raises(ValueError, match="^conv_matrix: .*padding"):
        C.conv_matrix(jnp.ones((2, 1, 1)), (3, 1), padding="FULL")
    with pytest.raises(ValueError, match="^fft_conv: "):
        C.fft_conv(jnp.ones((1, 4, 2)), jnp.ones((2, 3, 1)))


def _measured_support(model, input_shape, out_index):
    """Input positions whose gradient of the output unit at ``out_index`` (summed over
    channels, batch 0) is non-zero, along each spatial axis."""
    _, params = model.init(jax.random.key(3), input_shape)
    x = jnp.asarray(RNG.uniform(0.5, 1.5, size=input_shape), jnp.float64)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    g = jax.grad(lambda x: model.apply(params, x)[(0, *out_index)].sum())(x)
    nonzero = np.abs(np.asarray(g[0])).sum(-1) > 0  # over channels
    axes = range(nonzero.ndim)
    return [np.nonzero(nonzero.any(axis=tuple(j for j in axes if j != a)))[0] for a in axes]


@pytest.mark.parametrize(
    "build,input_shape",
    [
        (lambda: stax.serial(stax.Conv(3, (3, 3), padding="SAME"), stax.Tanh(), stax.AvgPool((2, 2), (2, 2)),
                             stax.Conv(3, (3, 2), strides=(2, 1)), stax.Tanh(), stax.Dense(2)), (1, 17, 15, 2)),
        (lambda: stax.serial(*[stax.Conv(3, (2,), padding="CAUSAL", rhs_dilation=(d,)) for d in (1, 2, 4)]),
         (1, 20, 2)),
        (lambda: stax.serial(stax.Conv(3, (3,)), stax.FanOut(2),
                             stax.parallel(stax.Conv(3, (5,), padding="SAME"), stax.Identity()), stax.FanInSum(),
                             stax.SumPool((2,), (2,))), (1, 24, 1)),
    ],
    ids=["cnn2d", "wavenet_stack", "residual"],
)
def test_receptive_field_equals_the_measured_support_of_the_input_gradient(build, input_shape):
    model = build()
    with jax.enable_x64(True):
        fields = C.receptive_field(model, input_shape)
        out_shape, _ = model.init(jax.random.key(0), input_shape)
        spatial_out = out_shape[1:-1]
        lengths = input_shape[1:-1]
        for out_index in [tuple(n // 2 for n in spatial_out), tuple(n - 1 for n in spatial_out)]:
            support = _measured_support(model, input_shape, out_index)
            for rf, i, n, measured in zip(fields, out_index, lengths, support):
                first, last = rf.interval(i)
                assert measured.min() == max(first, 0) and measured.max() == min(last, n - 1)
                assert len(measured) == min(last, n - 1) - max(first, 0) + 1  # contiguous


def test_receptive_field_values_for_known_stacks():
    wavenet = stax.serial(*[stax.Conv(4, (2,), padding="CAUSAL", rhs_dilation=(d,)) for d in (1, 2, 4, 8)])
    assert C.receptive_field(wavenet, (1, 32, 1)) == (C.ReceptiveField(16, 1, -15),)  # 2^4: exponential growth
    vgg = stax.serial(stax.Conv(4, (3, 3)), stax.Relu(), stax.Conv(4, (3, 3)))
    assert C.receptive_field(vgg, (1, 9, 9, 1)) == (C.ReceptiveField(5, 1, 0),) * 2  # two 3x3 = one 5x5


def test_receptive_field_errors_name_the_layer():
    with pytest.raises(ValueError, match="^receptive_field: cannot analyse Flatten"):
        C.receptive_field(stax.serial(stax.Conv(2, (3, 3)), stax.Flatten()), (1, 8, 8, 1))
    with pytest.raises(ValueError, match="^receptive_field: cannot analyse ConvTranspose"):
        C.receptive_field(stax.ConvTranspose(2, (3, 3)), (1, 8, 8, 1))
    with pytest.raises(ValueError, match="^receptive_field: the model ends in 2 branches"):
        C.receptive_field(stax.FanOut(2), (1, 8, 8, 1))


def test_param_counts_match_the_actual_stax_layers():
    m, n, c, p, q, K = 9, 7, 3, 3, 2, 5
    counts = C.param_counts(m, n, c, p, q, K)
    assert counts["conv"] == K * (p * q * c + 1)
    shape = (1, m, n, c)
    _, conv = stax.Conv(K, (p, q), b_std=1.0).init(jax.random.key(0), shape)
    out_shape, local = stax.ConvLocal(K, (p, q), b_std=1.0).init(jax.random.key(0), shape)
    outputs = math.prod(out_shape[1:])
    _, dense = stax.Dense(outputs, b_std=1.0).init(jax.random.key(0), (1, m * n * c))
    assert C.count_params(conv) == counts["conv"]
    assert C.count_params(local) == counts["locally_connected"]
    assert C.count_params(dense) == counts["fully_connected"]
    assert counts["conv"] < counts["locally_connected"] < counts["fully_connected"]
    with pytest.raises(ValueError, match="^param_counts: "):
        C.param_counts(3, 3, 1, 4, 1, 1)


@pytest.mark.slow
def test_receptive_field_of_the_wavenet_model_grows_exponentially_and_matches_its_gradient():
    from jaxdl import models

    model = models.wavenet(3, num_layers=4, residual_channels=3, dilation_channels=3, skip_channels=3)
    (rf,) = C.receptive_field(model, (1, 24, 1))
    assert rf == C.ReceptiveField(2**4, 1, -(2**4 - 1))  # filter 2, dilations 1, 2, 4, 8
    with jax.enable_x64(True):
        (support,) = _measured_support(model, (1, 24, 1), (23,))
    assert support.min() == 23 - 15 and support.max() == 23  # causal: nothing after t
