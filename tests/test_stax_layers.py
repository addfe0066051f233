"""The layer matrix: every registered stax layer against the design's contract."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from layer_registry import LAYERS, SLOW_IDS, TokenIds
from jaxdl import stax

# Errors name the (innermost) layer that rejected the input: "Conv: expected ...".
LAYER_ERROR = re.compile(r"^[A-Za-z_]+: expected ")
ENTRIES = [
    pytest.param(*entry[1:], id=entry[0], marks=pytest.mark.slow if entry[0] in SLOW_IDS else ())
    for entry in LAYERS
]


def _is_list(shape):
    return isinstance(shape, list)


def _inputs(shape, key, dtype=jnp.float32):
    if isinstance(shape, TokenIds):
        return jax.random.randint(key, shape, 0, shape.vocab)
    if _is_list(shape):
        keys = jax.random.split(key, len(shape))
        return [jax.random.normal(k, s, dtype) for k, s in zip(keys, shape)]
    return jax.random.normal(key, shape, dtype)


def _abstract(shape):
    """The input shape with the batch size replaced by -1."""
    if _is_list(shape):
        return [_abstract(s) for s in shape]
    return (-1,) + tuple(shape[1:])


def _build(build, shape, key=jax.random.key(0)):
    layer = build()
    out_shape, params = layer.init(key, _abstract(shape))
    return layer, out_shape, params


def _forward(layer, shape, train=True):
    """``(params, x) -> y``: a stateful layer gets a fresh state (``train`` mode by
    default; ``train=False`` uses the running statistics, per example)."""
    if not layer.stateful:
        return layer.apply

    def apply(params, x):
        return layer.apply(params, x, state=layer.init_state(_abstract(shape)), train=train)[0]

    return apply


def _shapes(tree):
    return jax.tree.map(lambda a: tuple(a.shape), tree)


def _with_batch(shape, batch):
    if isinstance(shape, list):
        return [_with_batch(s, batch) for s in shape]
    return tuple(batch if d == -1 else d for d in shape)


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_triple_unpacks_and_has_attributes(build, shape, bad_shape):
    layer = build()
    init_fn, apply_fn, kernel_fn = layer
    assert (init_fn, apply_fn, kernel_fn) == (layer.init, layer.apply, layer.kernel)
    assert len(layer) == 3 and layer[0] is layer.init


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_output_shape_matches_init(build, shape, bad_shape):
    layer, out_shape, params = _build(build, shape)
    y = _forward(layer, shape)(params, _inputs(shape, jax.random.key(1)))
    batch = shape[0][0] if _is_list(shape) else shape[0]
    expected = _with_batch(out_shape, batch)
    got = [tuple(o.shape) for o in y] if isinstance(y, list) else tuple(y.shape)
    assert got == expected


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_jit_equals_eager(build, shape, bad_shape):
    layer, _, params = _build(build, shape)
    x = _inputs(shape, jax.random.key(1))
    eager = _forward(layer, shape)(params, x)
    jitted = jax.jit(_forward(layer, shape))(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5), eager, jitted)


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_vmap_of_single_examples_equals_batch(build, shape, bad_shape):
    layer, _, params = _build(build, shape)
    x = _inputs(shape, jax.random.key(1))
    forward = _forward(layer, shape, train=False)  # batch statistics couple examples in training

    def single(example):
        batched = jax.tree.map(lambda a: a[None], example)
        return jax.tree.map(lambda a: a[0], forward(params, batched))

    per_example = jax.vmap(single)(x)
    whole = forward(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5), per_example, whole)


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_gradients_are_finite(build, shape, bad_shape):
    layer, _, params = _build(build, shape)
    x = _inputs(shape, jax.random.key(1))

    def loss(params, x):
        out = _forward(layer, shape)(params, x)
        return sum(jnp.sum(jnp.tanh(o)) for o in jax.tree.leaves(out))

    grads = jax.grad(loss, argnums=(0,) if isinstance(shape, TokenIds) else (0, 1))(params, x)
    for leaf in jax.tree.leaves(grads):
        assert jnp.all(jnp.isfinite(leaf))


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_float64(build, shape, bad_shape):
    with jax.enable_x64(True):
        layer, _, params = _build(build, shape)
        x = _inputs(shape, jax.random.key(1), jnp.float64)
        for leaf in jax.tree.leaves(params):
            assert leaf.dtype == jnp.float64
        out = _forward(layer, shape)(params, x)
        for leaf in jax.tree.leaves(out):
            assert leaf.dtype == jnp.float64
            assert jnp.all(jnp.isfinite(leaf))


@pytest.mark.parametrize("build,shape,bad_shape", ENTRIES)
def test_bad_input_raises_clearly(build, shape, bad_shape):
    layer, _, params = _build(build, shape)
    forward = _forward(layer, shape)
    x = _inputs(shape, jax.random.key(1))
    # A single array where a list is expected, or a list where an array is expected
    # (Identity passes anything through, lists included, as in neural-tangents).
    if layer.name != "Identity":
        wrong_kind = x[0] if _is_list(shape) else [x, x]
        with pytest.raises((TypeError, ValueError)) as error:
            forward(params, wrong_kind)
        assert LAYER_ERROR.match(str(error.value)), str(error.value)
    if bad_shape is not None:
        with pytest.raises(ValueError) as error:
            forward(params, _inputs(bad_shape, jax.random.key(2)))
        assert LAYER_ERROR.match(str(error.value)), str(error.value)


def test_typed_and_legacy_keys_give_the_same_params():
    layer = stax.serial(stax.Dense(4, b_std=0.1), stax.Relu(), stax.Dense(2))
    _, typed = layer.init(jax.random.key(7), (-1, 3))
    _, legacy = layer.init(jax.random.PRNGKey(7), (-1, 3))
    jax.tree.map(np.testing.assert_array_equal, typed, legacy)


def test_bad_keys_and_shapes_raise():
    dense = stax.Dense(3)
    with pytest.raises(TypeError, match="Dense: expected a PRNG key"):
        dense.init(None, (-1, 2))
    with pytest.raises(TypeError, match="Dense: expected a PRNG key"):
        dense.init(jnp.zeros(3), (-1, 2))
    with pytest.raises(ValueError, match="Dense: expected input_shape of positive ints"):
        dense.init(jax.random.key(0), (-1, 0))
    with pytest.raises(TypeError, match="Dense: expected input_shape"):
        dense.init(jax.random.key(0), 5)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: stax.Dense(0), "Dense: expected out_dim to be a positive int, got 0"),
        (lambda: stax.Dense(-3), "Dense: expected out_dim"),
        (lambda: stax.Dense(2.5), "Dense: expected out_dim"),
        (lambda: stax.Dense(3, parameterization="mup"), "Dense: expected parameterization to be one of"),
        (lambda: stax.Dense(3, W_std=-1.0), "Dense: expected W_std"),
        (lambda: stax.Dense(3, W_init=stax.initializers.he_normal()), "Dense: W_init"),
        (lambda: stax.Conv(0, (3, 3)), "Conv: expected out_chan"),
        (lambda: stax.Conv(3, (3, 3), padding="REFLECT"), "Conv: expected padding to be one of"),
        (lambda: stax.Conv(3, (3, 3), strides=(1,)), "Conv: expected strides of length 2"),
        (lambda: stax.Conv(3, (3, 0)), "Conv: expected filter_shape"),
        (lambda: stax.ConvLocal(3, (3,), parameterization="bogus"), "ConvLocal: expected parameterization"),
        (lambda: stax.AvgPool((2, 2), padding="FULL"), "AvgPool: expected padding"),
        (lambda: stax.Dropout(0.0), "Dropout: expected a keep rate in"),
        (lambda: stax.Dropout(0.5, mode="eval"), "Dropout: expected mode"),
        (lambda: stax.FanOut(0), "FanOut: expected num"),
        (lambda: stax.repeat(stax.Relu(), -1), "repeat: expected n"),
        (lambda: stax.serial(), "serial: expected at least one layer"),
        (lambda: stax.serial(stax.Relu(), "relu"), "serial: expected stax layers"),
        (lambda: stax.Hermite(-1), "Hermite: expected degree"),
        (lambda: stax.Maxout(0), "Maxout: expected num_pieces"),
        (lambda: stax.Rbf(-1.0), "Rbf: expected gamma > 0"),
        (lambda: stax.Elementwise(), "Elementwise: expected fn or nngp_fn"),
    ],
)
def test_bad_construction_raises_with_the_layer_name(make, message):
    with pytest.raises((ValueError, TypeError)) as error:
        make()
    assert message in str(error.value)


def test_init_rejects_shape_changing_repeat_and_wrong_rank_conv():
    with pytest.raises(ValueError, match="repeat: the repeated layer must keep its input shape"):
        stax.repeat(stax.Dense(3), 2).init(jax.random.key(0), (-1, 4))
    with pytest.raises(ValueError, match="Conv: expected an input_shape of rank 4"):
        stax.Conv(3, (2, 2)).init(jax.random.key(0), (-1, 4, 4))
    with pytest.raises(ValueError, match="Maxout: expected the channel count to be a multiple"):
        stax.Maxout(3).init(jax.random.key(0), (-1, 4))


def test_params_have_stable_readable_names():
    layer = stax.serial(stax.Dense(4, b_std=0.1), stax.Relu(), stax.repeat(stax.Dense(4), 2))
    _, params = layer.init(jax.random.key(0), (-1, 3))
    assert _shapes(params) == {
        "Dense_0": {"W": (3, 4), "b": (1, 4)},
        "Relu_1": {},
        "repeat_2": {"W": (2, 4, 4)},
    }


def test_dropout_train_keeps_rate_and_rescales():
    rate = 0.7
    layer = stax.Dropout(rate)
    _, params = layer.init(jax.random.key(0), (-1, 1000))
    x = jnp.ones((20, 1000))
    y = layer.apply(params, x, key=jax.random.key(3))
    kept = np.asarray(y != 0)
    n = kept.size
    assert abs(kept.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / rate, rtol=1e-6)
    same = layer.apply(params, x, rng=jax.random.key(3))  # neural-tangents' keyword
    np.testing.assert_array_equal(y, same)
    with pytest.raises(ValueError, match="Dropout: mode='train' needs a PRNG key"):
        layer.apply(params, x)


def test_serial_splits_the_key_between_dropout_layers():
    layer = stax.serial(stax.Dropout(0.5), stax.Dropout(0.5))
    _, params = layer.init(jax.random.key(0), (-1, 4000))
    y = layer.apply(params, jnp.ones((1, 4000)), key=jax.random.key(1))
    # Independent masks keep a quarter of the entries (the same mask would keep half).
    assert abs(float((y != 0).mean()) - 0.25) < 0.03
