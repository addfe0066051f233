"""The package under ``jax_numpy_rank_promotion='raise'`` (issue 22, item 5).

neural-tangents' tests and careful users run with implicit rank promotion turned
into an error; every computation here runs inside
``jax.numpy_rank_promotion('raise')``: every layer of ``tests/layer_registry.py``
through ``apply_fn`` (compared with the default mode) and, where it has an analytic
kernel, ``kernel_fn``; every elementwise kernel rule in convolutional layouts;
empirical NTKs of each implementation, Monte Carlo kernels, ``batch`` and
``predict``. (The whole suite can also run in that mode: ``pytest
--rank-promotion=raise`` or ``JAXDL_RANK_PROMOTION=raise``, see conftest.py.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdl.kernels as nt
from jaxdl import stax
from layer_registry import LAYERS, TokenIds, _elementwise


def _strict():
    return jax.numpy_rank_promotion("raise")


def _inputs(shape, key):
    if isinstance(shape, TokenIds):
        return jax.random.randint(key, shape, 0, shape.vocab)
    if isinstance(shape, list):
        return [jax.random.normal(k, s) for k, s in zip(jax.random.split(key, len(shape)), shape)]
    return jax.random.normal(key, shape)


def _abstract(shape):
    if isinstance(shape, list):
        return [_abstract(s) for s in shape]
    return (-1,) + tuple(shape[1:])


def _apply(layer, params, x, shape):
    if getattr(layer, "stateful", False):
        return layer.apply(params, x, state=layer.init_state(_abstract(shape)))[0]
    return layer.apply(params, x)


def _forward(build, shape, x):
    layer = build()
    _, params = layer.init(jax.random.key(0), _abstract(shape))
    return _apply(layer, params, x, shape)


def test_the_strict_context_rejects_implicit_rank_promotion():
    with _strict():
        with pytest.raises(ValueError, match="rank_promotion"):
            jnp.ones(3) + jnp.ones((2, 3))


# The default run covers the layers whose code broadcasts variances against
# covariances (quadrature and polynomial rules, conv, pooling, attention, graph,
# normalisation, combinators); `-m slow` runs every registered layer.
DEFAULT_IDS = {
    "Dense_on_images", "Conv2D_VALID_strided", "ConvTranspose_CIRCULAR", "AvgPool_SAME_normalized",
    "GlobalSelfAttention", "Aggregate_identity_graph", "LayerNorm_spatial", "serial_cnn", "residual",
    "Monomial", "ElementwiseNumerical", "Tanh", "Elu", "Polynomial", "Hermite", "Gelu", "RectifiedMonomial",
    "BatchNorm", "FanInConcat",
}
ENTRIES = [
    pytest.param(build, shape, id=name, marks=() if name in DEFAULT_IDS else pytest.mark.slow)
    for name, build, shape, _ in LAYERS
]


@pytest.mark.parametrize("build,shape", ENTRIES)
def test_layer_apply_fn_under_strict_rank_promotion(build, shape):
    x = _inputs(shape, jax.random.key(1))
    with _strict():
        strict = _forward(build, shape, x)
    reference = _forward(build, shape, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), strict, reference)


def _kernel(build, shape, x1, x2):
    """kernel_fn(x1, x2) of the layer; a nonlinearity (which needs Gaussian inputs)
    gets a Dense in front."""
    try:
        return build().kernel(x1, x2, ("nngp", "ntk"))
    except ValueError as error:
        if "Gaussian" not in str(error) or isinstance(shape, list):
            raise
    return stax.serial(stax.Dense(shape[-1]), build()).kernel(x1, x2, ("nngp", "ntk"))


@pytest.mark.parametrize("build,shape", ENTRIES)
def test_layer_kernel_fn_under_strict_rank_promotion(build, shape):
    x1, x2 = _inputs(shape, jax.random.key(1)), _inputs(shape, jax.random.key(2))
    try:
        with _strict():
            out = _kernel(build, shape, x1, x2)
    except (NotImplementedError, ValueError) as error:
        # No analytic kernel here (e.g. Relu after Relu): the same error in the default mode.
        assert "rank_promotion" not in str(error)
        with pytest.raises(type(error)):
            _kernel(build, shape, x1, x2)
        return
    for leaf in jax.tree.leaves(out):
        assert np.all(np.isfinite(np.asarray(leaf)))


_DEFAULT_ACTIVATIONS = {"Erf", "Gelu", "Tanh", "ElementwiseNumerical", "Monomial2", "RectifiedMonomial4", "ExpNormalized"}
_ACTIVATIONS = [pytest.param(build, id=name) for name, build in _elementwise() if name != "Elementwise"] + [
    pytest.param(lambda d=d: stax.Monomial(d), id=f"Monomial{d}") for d in (0, 2, 5)
] + [
    pytest.param(lambda d=d: stax.RectifiedMonomial(d), id=f"RectifiedMonomial{d}") for d in (0, 4)
] + [
    pytest.param(lambda: stax.Elementwise(jnp.sin, lambda c, q1, q2: jnp.exp(-(q1 + q2) / 2) * jnp.sinh(c)),
                 id="Elementwise_nngp_fn"),
    pytest.param(stax.ExpNormalized, id="ExpNormalized"),
]  # fmt: skip

_LAYOUTS = [
    pytest.param({}, id="full"),
    pytest.param({"diagonal_batch": False}, id="full_batch", marks=pytest.mark.slow),
    pytest.param({"diagonal_spatial": True}, id="diagonal_spatial", marks=pytest.mark.slow),
]


_ACTIVATIONS = [
    p if p.id in _DEFAULT_ACTIVATIONS else pytest.param(*p.values, id=p.id, marks=pytest.mark.slow) for p in _ACTIVATIONS
]


@pytest.mark.parametrize("layout", _LAYOUTS)
@pytest.mark.parametrize("activation", _ACTIVATIONS)
def test_elementwise_kernels_in_conv_layouts_under_strict_rank_promotion(activation, layout):
    """Two nonlinearities between 1-D convolutions: cov1, cov2, nngp and ntk all carry
    spatial axes, the case where variance arrays and covariances differ in rank."""
    net = stax.serial(stax.Conv(3, (2,), padding="SAME", b_std=0.1), activation(),
                      stax.Conv(3, (2,)), activation(), stax.GlobalAvgPool(), stax.Dense(1))  # fmt: skip
    x1 = jax.random.normal(jax.random.key(3), (2, 4, 2))
    x2 = jax.random.normal(jax.random.key(4), (3, 4, 2))
    with _strict():
        pair = net.kernel(x1, x2, ("nngp", "ntk"), **layout)
        alone = net.kernel(x1, None, ("nngp", "ntk"), **layout)
    for leaf in jax.tree.leaves((pair, alone)):
        assert np.all(np.isfinite(np.asarray(leaf)))


_NETS = {
    "mlp": (lambda: stax.serial(stax.Dense(4, b_std=0.1), stax.Erf(), stax.Dense(2)), (3, 5)),
    "cnn": (lambda: stax.serial(stax.Conv(3, (2, 2), padding="SAME"), stax.Relu(), stax.Flatten(), stax.Dense(2)),
            (3, 4, 3, 2)),
    "attention": (lambda: stax.GlobalSelfAttention(4, 3, 3, 2, b_std=0.1), (3, 5, 3)),
}  # fmt: skip


@pytest.mark.parametrize("implementation", [1, 2, 3])
@pytest.mark.parametrize("net", [n if n == "mlp" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(_NETS)])
def test_empirical_ntk_under_strict_rank_promotion(net, implementation):
    build, shape = _NETS[net]
    layer = build()
    _, params = layer.init(jax.random.key(5), shape)
    x1, x2 = jax.random.normal(jax.random.key(6), shape), jax.random.normal(jax.random.key(7), shape)
    ntk_fn = nt.empirical_ntk_fn(layer.apply, trace_axes=(), implementation=implementation)
    with _strict():
        strict = ntk_fn(x1, x2, params)
    np.testing.assert_allclose(strict, ntk_fn(x1, x2, params), rtol=1e-5, atol=1e-6)


def test_monte_carlo_batch_and_predict_under_strict_rank_promotion():
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(8, b_std=0.1), stax.Gelu(), stax.Dense(1))
    x_train = jax.random.normal(jax.random.key(8), (4, 3))
    y_train = jax.random.normal(jax.random.key(9), (4, 1))
    x_test = jax.random.normal(jax.random.key(10), (2, 3))
    with _strict():
        mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(11), 2, device_count=0)(x_test, x_train)
        batched = nt.batch(kernel_fn, batch_size=2, device_count=0)(x_test, x_train, "ntk")
        predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, diag_reg=1e-3)
        mean = predict_fn(1.0, x_test, "ntk")
        nngp = nt.empirical_nngp_fn(apply_fn)(x_test, x_train, init_fn(jax.random.key(12), x_test.shape)[1])
    np.testing.assert_allclose(batched, kernel_fn(x_test, x_train, "ntk"), rtol=1e-5)
    assert mc.ntk.shape == (2, 4) and np.all(np.isfinite(mc.ntk))
    assert mean.shape == (2, 1) and np.all(np.isfinite(mean))
    assert nngp.shape == (2, 4)
