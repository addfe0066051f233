"""jaxdl.models: shapes, parameter counts against the seeds' ``K(pqc + 1)`` by hand,
the residual and dense connections, U-Net resolution, WaveNet causality and
receptive field, and the ResNet's analytic NTK against a Monte Carlo estimate."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import models, stax
from jaxdl.kernels import monte_carlo_kernel_fn


def num_params(params) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def conv(K, p, q, c):
    """The seeds' parameter count of a conv layer: K filters p×q on c channels, with biases."""
    return K * (p * q * c + 1)


def dense(n_in, n_out):
    return (n_in + 1) * n_out


def batch_norm(c):
    return 2 * c  # scale and offset (the running statistics are state, not params)


def init(model, input_shape, key=jax.random.key(0)):
    """``(out_shape, params)``, with ``init`` compiled once (eager dispatch of every
    layer's random draws is slow)."""
    out_shapes = []

    def params_only(key):
        out_shape, params = model.init(key, input_shape)
        out_shapes.append(out_shape)
        return params

    params = jax.jit(params_only)(key)
    return out_shapes[0], params


def forward(model, params, x, train=False):
    """The model's output (a stateful model with a fresh state), compiled."""
    if model.stateful:
        state = model.init_state((-1,) + tuple(x.shape[1:]))
        return jax.jit(lambda p, x: model.apply(p, x, state=state, train=train)[0])(params, x)
    return jax.jit(model.apply)(params, x)


def param_count(model, input_shape) -> int:
    """The number of parameters, from their shapes alone (nothing is drawn)."""
    shapes = jax.eval_shape(lambda key: model.init(key, input_shape)[1], jax.random.key(0))
    return num_params(shapes)


# --- parameter counts -------------------------------------------------------------


def _hand_counts():
    lenet_32 = conv(6, 5, 5, 1) + conv(16, 5, 5, 6) + dense(5 * 5 * 16, 120) + dense(120, 84) + dense(84, 10)
    lenet_8 = conv(6, 5, 5, 1) + conv(16, 5, 5, 6) + dense(2 * 2 * 16, 120) + dense(120, 84) + dense(84, 10)
    resnet_convs = (
        conv(8, 3, 3, 1)  # stem
        + 2 * conv(8, 3, 3, 8)  # stage 0: identity block
        + conv(16, 3, 3, 8) + conv(16, 3, 3, 16) + conv(16, 1, 1, 8)  # stage 1: strided block + projection
        + dense(16, 10)
    )  # fmt: skip
    resnet_norms = 2 * batch_norm(8) + batch_norm(8) + batch_norm(16) + batch_norm(16)
    densenet = sum(batch_norm(3 + 4 * i) + conv(4, 3, 3, 3 + 4 * i) for i in range(3))
    inception = conv(4, 1, 1, 3) + conv(3, 1, 1, 3) + conv(5, 3, 3, 3) + conv(2, 1, 1, 3) + conv(3, 5, 5, 2) + conv(2, 1, 1, 3)
    unet = (
        conv(4, 3, 3, 1) + conv(4, 3, 3, 4) + conv(4, 3, 3, 8) + conv(4, 3, 3, 4) + conv(4, 2, 2, 8)  # level 0 + up-conv
        + conv(8, 3, 3, 4) + conv(8, 3, 3, 8) + conv(8, 3, 3, 16) + conv(8, 3, 3, 8) + conv(8, 2, 2, 16)  # level 1
        + conv(16, 3, 3, 8) + conv(16, 3, 3, 16)  # bottom
        + conv(2, 1, 1, 4)
    )  # fmt: skip
    r, g, s, L = 4, 4, 6, 3
    wavenet = conv(r, 1, 1, 1) + L * (2 * conv(g, 2, 1, r) + conv(r + s, 1, 1, g)) + conv(s, 1, 1, s) + conv(5, 1, 1, s)
    return [
        ("mlp", lambda: models.mlp((32, 16), 10), (-1, 8, 8, 1), dense(64, 32) + dense(32, 16) + dense(16, 10)),
        ("lenet5_32x32", lambda: models.lenet5(), (-1, 32, 32, 1), lenet_32),
        ("lenet5_8x8_same", lambda: models.lenet5(padding="SAME"), (-1, 8, 8, 1), lenet_8),
        ("vgg_small", lambda: models.vgg(10, widths=(8, 16), convs_per_stage=2, hidden=(32,)), (-1, 8, 8, 3),
         conv(8, 3, 3, 3) + conv(8, 3, 3, 8) + conv(16, 3, 3, 8) + conv(16, 3, 3, 16) + dense(2 * 2 * 16, 32) + dense(32, 10)),
        ("resnet_bn", lambda: models.resnet(10, widths=(8, 16), blocks_per_stage=1), (-1, 8, 8, 1), resnet_convs + resnet_norms),
        ("resnet_no_bn", lambda: models.resnet(10, widths=(8, 16), blocks_per_stage=1, batch_norm=False), (-1, 8, 8, 1), resnet_convs),
        ("inception_block", lambda: models.inception_block(4, (3, 5), (2, 3), 2), (-1, 6, 6, 3), inception),
        ("densenet_block", lambda: models.densenet_block(3, 4), (-1, 6, 6, 3), densenet),
        ("unet", lambda: models.unet(2, widths=(4, 8, 16)), (-1, 8, 8, 1), unet),
        ("wavenet", lambda: models.wavenet(5, num_layers=L, residual_channels=r, dilation_channels=g, skip_channels=s),
         (-1, 16, 1), wavenet),
    ]  # fmt: skip


@pytest.mark.parametrize("build,input_shape,expected", [pytest.param(*e[1:], id=e[0]) for e in _hand_counts()])
def test_parameter_counts_match_hand_counts(build, input_shape, expected):
    assert param_count(build(), input_shape) == expected


def test_lenet5_and_vgg16_have_their_published_sizes():
    # LeCun et al. 1998: 61 706 parameters; Simonyan & Zisserman 2014 (VGG-16): 138 357 544.
    assert param_count(models.lenet5(), (-1, 32, 32, 1)) == 61_706
    assert param_count(models.vgg(), (-1, 224, 224, 3)) == 138_357_544


# --- shapes and connections -------------------------------------------------------


@pytest.mark.parametrize(
    "build,input_shape,out_shape",
    [
        (lambda: models.mlp((16,), 7), (2, 5, 5, 2), (2, 7)),
        (lambda: models.lenet5(4, padding="SAME"), (2, 8, 8, 1), (2, 4)),
        pytest.param(lambda: models.vgg(3, widths=(4, 8, 8), convs_per_stage=1, hidden=(), pool="avg"), (2, 8, 8, 2), (2, 3), marks=pytest.mark.slow),
        pytest.param(lambda: models.resnet(5, widths=(4, 8, 8), blocks_per_stage=(1, 2, 1)), (2, 9, 9, 3), (2, 5), marks=pytest.mark.slow),
        (lambda: models.resnet_block(6, stride=2, projection=True), (2, 8, 6, 3), (2, 4, 3, 6)),
        pytest.param(lambda: models.inception_block(3, (2, 4), (1, 5), 2), (2, 7, 5, 3), (2, 7, 5, 3 + 4 + 5 + 2), marks=pytest.mark.slow),
        pytest.param(lambda: models.unet(3, widths=(4, 8, 8)), (2, 12, 8, 1), (2, 12, 8, 3), marks=pytest.mark.slow),
        (lambda: models.wavenet(6, num_layers=2, residual_channels=3, skip_channels=4), (2, 11, 2), (2, 11, 6)),
    ],
)
def test_output_shapes(build, input_shape, out_shape):
    model = build()
    declared, params = init(model, (-1,) + input_shape[1:])
    y = forward(model, params, jax.random.normal(jax.random.key(1), input_shape))
    assert y.shape == out_shape
    assert declared == (-1,) + out_shape[1:]


def test_resnet_block_with_zero_residual_branch_is_the_identity():
    # The seeds' residual layer: F[0, 0] = id.
    block = models.resnet_block(5, batch_norm=False)
    _, params = init(block, (-1, 6, 6, 5))
    params["parallel_1"]["serial_0"] = jax.tree.map(jnp.zeros_like, params["parallel_1"]["serial_0"])
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 5))
    np.testing.assert_array_equal(forward(block, params, x), x)


def test_strided_resnet_block_needs_a_projection():
    with pytest.raises(ValueError, match="^resnet_block: expected projection=True"):
        models.resnet_block(4, stride=2)


@pytest.mark.slow
def test_densenet_block_concatenates_the_input_and_every_layer():
    c, layers, growth = 3, 4, 5
    block = models.densenet_block(layers, growth, batch_norm=False)
    out_shape, params = init(block, (-1, 6, 6, c))
    assert out_shape == (-1, 6, 6, c + layers * growth)
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, c))
    y = forward(block, params, x)
    np.testing.assert_array_equal(y[..., :c], x)  # the input is concatenated back in unchanged
    # the features of layer l are those of the first l layers of the block (later layers only append)
    prefix = models.densenet_block(2, growth, batch_norm=False)
    _, prefix_params = init(prefix, (-1, 6, 6, c))
    prefix_params = {f"serial_{i}": params[f"serial_{i}"] for i in range(2)}
    np.testing.assert_allclose(y[..., : c + 2 * growth], forward(prefix, prefix_params, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [(8, 8), pytest.param((16, 4), marks=pytest.mark.slow),
                                  pytest.param((4, 12), marks=pytest.mark.slow)])
def test_unet_output_has_the_input_resolution(size):
    model = models.unet(3, widths=(4, 6, 8))
    out_shape, params = init(model, (-1, *size, 2))
    y = forward(model, params, jax.random.normal(jax.random.key(1), (2, *size, 2)))
    assert out_shape == (-1, *size, 3) and y.shape == (2, *size, 3)


def test_unet_rejects_a_resolution_it_cannot_halve_and_double():
    with pytest.raises(ValueError, match="^FanInConcat: expected shapes equal except on axis"):
        models.unet(2, widths=(4, 8)).init(jax.random.key(0), (-1, 7, 8, 1))


# --- WaveNet: causality and receptive field (via jax.jacobian) ----------------------


@pytest.mark.parametrize("num_layers,num_stacks", [(3, 1), pytest.param(2, 2, marks=pytest.mark.slow)])
def test_wavenet_is_causal_with_receptive_field_2_to_the_L(num_layers, num_stacks):
    T = 24
    model = models.wavenet(2, num_layers=num_layers, num_stacks=num_stacks, residual_channels=4,
                           dilation_channels=3, skip_channels=5)  # fmt: skip
    _, params = init(model, (-1, T, 1))
    x = jax.random.normal(jax.random.key(1), (T,))
    jac = jax.jit(jax.jacobian(lambda x: model.apply(params, x[None, :, None])[0, :, 0]))(x)  # d y[t] / d x[s]
    support = np.abs(np.asarray(jac)) > 0
    field = num_stacks * (2**num_layers - 1) + 1
    t, s = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    assert not support[s > t].any()  # no output depends on a later input
    np.testing.assert_array_equal(support, (s <= t) & (s > t - field))  # exactly the last `field` inputs
    if num_stacks == 1:
        assert field == 2**num_layers


# --- stateful (BatchNorm) models ----------------------------------------------------


def test_resnet_with_batch_norm_threads_its_state():
    model = models.resnet(3, widths=(4, 6), blocks_per_stage=1, bn_momentum=0.5)
    _, params = init(model, (-1, 6, 6, 1))
    state = model.init_state((-1, 6, 6, 1))
    x = 2.0 + 3.0 * jax.random.normal(jax.random.key(1), (8, 6, 6, 1))
    apply = jax.jit(model.apply, static_argnames="train")
    y, new_state = apply(params, x, state=state, train=True)
    # the first BatchNorm (first block, on the stem conv's output) moved halfway to the batch statistics
    stem = stax.Conv(4, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.1)
    h = stem.apply(params["Conv_0"], x)
    first_bn = new_state["serial_1"]["parallel_1"]["serial_0"]["BatchNorm_0"]
    np.testing.assert_allclose(first_bn["mean"], 0.5 * h.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first_bn["var"], 0.5 + 0.5 * h.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    y_eval, same_state = apply(params, x, state=new_state, train=False)
    jax.tree.map(np.testing.assert_array_equal, same_state, new_state)
    one = apply(params, x[:1], state=new_state, train=False)[0]
    np.testing.assert_allclose(one, y_eval[:1], rtol=1e-5, atol=1e-5)  # eval mode is per example
    assert y.shape == y_eval.shape == (8, 3)


# --- analytic kernels ---------------------------------------------------------------


def test_kernels_are_refused_by_models_with_a_layer_without_one():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
    with pytest.raises(NotImplementedError, match="BatchNorm"):
        models.resnet(2, widths=(4,), blocks_per_stage=1).kernel(x, None, "ntk")
    with pytest.raises(NotImplementedError, match="MaxPool"):
        models.vgg(2, widths=(4,), convs_per_stage=1, hidden=()).kernel(x, None, "nngp")


def _resnet_kernels_agree(widths, blocks, x, width_samples, num_classes, ntk_tol, nngp_tol):
    model = models.resnet(num_classes, widths=widths, blocks_per_stage=blocks, batch_norm=False, W_std=1.5, b_std=0.2)
    exact = model.kernel(x, None, ("nngp", "ntk"))
    estimate = monte_carlo_kernel_fn(model.init, model.apply, jax.random.key(3), width_samples)(x, None, ("nngp", "ntk"))
    for name, tol in (("ntk", ntk_tol), ("nngp", nngp_tol)):
        a, b = np.asarray(getattr(exact, name)), np.asarray(getattr(estimate, name))
        assert np.abs(a - b).max() <= tol * np.abs(a).max(), (name, a, b)


def test_resnet_analytic_ntk_matches_monte_carlo_small():
    # One stage, one identity block, 128 channels: the NTK self-averages (about 1 % off here),
    # the NNGP estimate averages 20 draws x 8 outputs (about 10 % off).
    x = jax.random.normal(jax.random.key(1), (2, 3, 3, 1))
    _resnet_kernels_agree((128,), 1, x, 20, 8, ntk_tol=0.05, nngp_tol=0.3)


@pytest.mark.slow
def test_resnet_analytic_ntk_matches_monte_carlo_wide_strided():
    # Two stages (a strided block with a projection shortcut), 256 channels.
    x = jax.random.normal(jax.random.key(1), (3, 4, 4, 2))
    _resnet_kernels_agree((256, 256), (1, 1), x, 32, 16, ntk_tol=0.05, nngp_tol=0.15)


# --- argument checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: models.mlp((8, 0)), "mlp: expected widths"),
        (lambda: models.mlp((8,), num_classes=0), "mlp: expected num_classes"),
        (lambda: models.mlp(activation="swish"), "mlp: expected activation to be one of"),
        (lambda: models.lenet5(padding="FULL"), "lenet5: expected padding"),
        (lambda: models.lenet5(pool="min"), "lenet5: expected pool to be one of"),
        (lambda: models.vgg(widths=(8, 8), convs_per_stage=(1, 2, 3)), "vgg: expected convs_per_stage to have 2 entries"),
        (lambda: models.resnet(blocks_per_stage=0), "resnet: expected blocks_per_stage"),
        (lambda: models.resnet(batch_norm="yes"), "resnet: expected batch_norm to be a bool"),
        (lambda: models.resnet(parameterization="mup"), "resnet: expected parameterization"),
        (lambda: models.inception_block(c3=(4,)), "inception_block: expected c3 and c5"),
        (lambda: models.densenet_block(growth_rate=0), "densenet_block: expected growth_rate"),
        (lambda: models.unet(widths=()), "unet: expected widths"),
        (lambda: models.wavenet(num_layers=0), "wavenet: expected num_layers"),
        (lambda: models.wavenet(W_std=-1.0), "wavenet: expected W_std"),
    ],
)
def test_bad_arguments_raise_with_the_model_name(make, message):
    with pytest.raises((TypeError, ValueError)) as error:
        make()
    assert str(error.value).startswith(message), str(error.value)
