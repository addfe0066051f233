"""The state convention (stax.layer): BatchNorm's statistics against numpy, state
through every combinator against hand composition, train.fit carrying state
(resume-exact, 8-device data-parallel = one device), WeightNorm, dropout's
weight-scaling rule, NT-style positional params, repeat edge cases, fit's data
checks and batch_transform."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

from jaxdl import stax, train

RNG = np.random.default_rng(0)
IMAGES = jnp.asarray(RNG.normal(3.0, 2.0, size=(16, 5, 4, 3)) * np.array([1.0, 0.5, 4.0]), jnp.float32)


def batchnorm_params_state(shape, **kwargs):
    layer = stax.BatchNorm(**kwargs)
    _, params = layer.init(jax.random.key(0), shape)
    return layer, params, layer.init_state(shape)


def test_batchnorm_train_output_is_standardised_per_channel_and_matches_numpy():
    layer, params, state = batchnorm_params_state((-1, 5, 4, 3))
    params = {"scale": jnp.array([1.0, 2.0, 0.5]), "offset": jnp.array([0.0, -1.0, 3.0])}
    y, new_state = layer.apply(params, IMAGES, state=state, train=True)
    x = np.asarray(IMAGES, np.float64)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    expected = (x - mean) / np.sqrt(var + 1e-5) * np.array([1.0, 2.0, 0.5]) + np.array([0.0, -1.0, 3.0])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    standardised = (np.asarray(y) - np.array([0.0, -1.0, 3.0])) / np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(standardised.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(standardised.var(axis=(0, 1, 2)), 1.0, atol=1e-3)
    np.testing.assert_allclose(new_state["mean"], 0.01 * mean, rtol=1e-5)
    np.testing.assert_allclose(new_state["var"], 0.99 + 0.01 * var, rtol=1e-5)


def test_batchnorm_running_statistics_converge_to_the_data():
    layer, params, state = batchnorm_params_state((-1, 3), momentum=0.9)
    mu, sigma = np.array([2.0, -1.0, 0.5]), np.array([3.0, 0.2, 1.0])
    step = jax.jit(lambda state, x: layer.apply(params, x, state=state, train=True)[1])
    for i in range(200):
        x = mu + sigma * np.random.default_rng(i).normal(size=(256, 3))
        state = step(state, jnp.asarray(x, jnp.float32))
    # The running mean averages ~19 batches of 256: its error is ~0.014 sigma; the start (0, 1) has decayed.
    np.testing.assert_array_less(np.abs(np.asarray(state["mean"]) - mu), 0.1 * sigma)
    np.testing.assert_array_less(np.abs(np.asarray(state["var"]) / sigma**2 - 1), 0.1)


def test_batchnorm_eval_mode_is_deterministic_per_example_and_keeps_the_state():
    layer, params, state = batchnorm_params_state((-1, 5, 4, 3))
    state = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
    y, same_state = layer.apply(params, IMAGES, state=state, train=False)
    jax.tree.map(np.testing.assert_array_equal, same_state, state)
    expected = (np.asarray(IMAGES) - np.array([1.0, 2.0, 3.0])) / np.sqrt(np.array([4.0, 1.0, 0.25]) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    first_alone, _ = layer.apply(params, IMAGES[:1], state=state, train=False)
    np.testing.assert_allclose(first_alone, y[:1], rtol=1e-6)
    traced, _ = jax.jit(lambda t: layer.apply(params, IMAGES, state=state, train=t))(False)
    np.testing.assert_allclose(traced, y, rtol=1e-6)


def test_stateless_layers_are_unchanged_and_stateful_ones_explain_themselves():
    mlp = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
    assert not mlp.stateful and mlp.init_state((-1, 3)) == {}
    _, params = mlp.init(jax.random.key(0), (-1, 3))
    assert mlp.apply(params, jnp.ones((2, 3))).shape == (2, 2)  # a bare array, no state
    model = stax.serial(stax.Dense(4), stax.BatchNorm(), stax.Relu())
    assert model.stateful
    _, params = model.init(jax.random.key(0), (-1, 3))
    with pytest.raises(ValueError, match="serial: a stateful layer needs state="):
        model.apply(params, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="BatchNorm: a stateful layer needs state="):
        stax.BatchNorm().apply(params["BatchNorm_1"], jnp.ones((2, 4)))
    with pytest.raises(NotImplementedError, match="BatchNorm: a stateful layer"):
        model.kernel(jnp.ones((2, 3)), None, "ntk")
    with pytest.raises(ValueError, match="BatchNorm: expected momentum"):
        stax.BatchNorm(momentum=1.0)


def test_state_flows_through_every_combinator_like_hand_composition():
    conv, bn1, bn2, bn3, dense = (stax.Conv(3, (3, 3), padding="SAME"), stax.BatchNorm(), stax.BatchNorm(),
                                  stax.BatchNorm(momentum=0.5), stax.Dense(3))
    model = stax.serial(conv, bn1, stax.FanOut(2), stax.parallel(bn2, stax.Identity()), stax.FanInSum(),
                        stax.repeat(stax.serial(dense, bn3), 2))
    shape = (-1, 5, 4, 3)
    _, params = model.init(jax.random.key(0), shape)
    state = model.init_state(shape)
    assert jax.tree.map(jnp.shape, state) == {
        "BatchNorm_1": {"mean": (3,), "var": (3,)},
        "parallel_3": {"BatchNorm_0": {"mean": (3,), "var": (3,)}},
        "repeat_5": {"BatchNorm_1": {"mean": (2, 3), "var": (2, 3)}},
    }
    y, new_state = model.apply(params, IMAGES, state=state, train=True)

    h = conv.apply(params["Conv_0"], IMAGES)
    h, s1 = bn1.apply(params["BatchNorm_1"], h, state=state["BatchNorm_1"])
    b, s2 = bn2.apply(params["parallel_3"]["BatchNorm_0"], h, state=state["parallel_3"]["BatchNorm_0"])
    h = b + h
    s3 = []
    for i in range(2):
        layer_params = jax.tree.map(lambda a: a[i], params["repeat_5"])
        h = dense.apply(layer_params["Dense_0"], h)
        h, s = bn3.apply(layer_params["BatchNorm_1"], h,
                         state=jax.tree.map(lambda a: a[i], state["repeat_5"]["BatchNorm_1"]))
        s3.append(s)
    np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-5)
    expected_state = {"BatchNorm_1": s1, "parallel_3": {"BatchNorm_0": s2},
                      "repeat_5": {"BatchNorm_1": jax.tree.map(lambda *a: jnp.stack(a), *s3)}}
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), new_state, expected_state)


MODEL = stax.serial(stax.Dense(16), stax.BatchNorm(momentum=0.9), stax.Relu(), stax.Dense(3))
Y = RNG.integers(0, 3, size=64).astype(np.int32)
X = (RNG.normal(size=(64, 4)) + 2.0 * np.eye(3, 4)[Y] + 5.0).astype(np.float32)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, -1) == labels)


def fit_kwargs(**changes):
    kwargs = dict(loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=4, batch_size=16,
                  eval_data=(X, Y), metrics={"accuracy": accuracy}, state=MODEL.init_state((-1, 4)))
    return {**kwargs, **changes}


def initial_params():
    return MODEL.init(jax.random.key(1), (-1, 4))[1]


def test_fit_carries_the_state_and_evaluates_with_running_statistics():
    frozen = train.fit(MODEL.apply, initial_params(), optax.sgd(0.0), (X, Y),
                       **fit_kwargs(num_epochs=20, batch_size=None))
    # Full batch, fixed weights: after k steps the running mean is (1 - 0.9^k) of the batch mean.
    hidden = np.asarray(stax.Dense(16).apply(initial_params()["Dense_0"], X), np.float64)
    decay = 0.9**20
    running = frozen.state.model_state["BatchNorm_1"]
    np.testing.assert_allclose(running["mean"], (1 - decay) * hidden.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(running["var"], decay + (1 - decay) * hidden.var(0), rtol=1e-4)
    result = train.fit(MODEL.apply, initial_params(), optax.adam(0.02), (X, Y), **fit_kwargs(num_epochs=20))
    logits, _ = MODEL.apply(result.state.params, X, state=result.state.model_state, train=False)
    np.testing.assert_allclose(result.history["eval_accuracy"][-1], accuracy(logits, Y), rtol=1e-6)
    assert result.history["eval_accuracy"][-1] > 0.8
    assert result.best_model_state is not None


def test_fit_with_state_resumes_exactly(tmp_path):
    full = train.fit(MODEL.apply, initial_params(), optax.adam(0.02), (X, Y), **fit_kwargs(num_epochs=4))
    path = tmp_path / "run.msgpack"
    train.fit(MODEL.apply, initial_params(), optax.adam(0.02), (X, Y), checkpoint_path=path, **fit_kwargs(num_epochs=2))
    resumed = train.fit(MODEL.apply, initial_params(), optax.adam(0.02), (X, Y), checkpoint_path=path, resume=True,
                        **fit_kwargs(num_epochs=4))
    for a, b in ((resumed.state.params, full.state.params), (resumed.state.model_state, full.state.model_state),
                 (resumed.best_model_state, full.best_model_state)):
        jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


def test_fit_with_state_data_parallel_equals_single_device():
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    single = train.fit(MODEL.apply, initial_params(), optax.adam(0.02), (X, Y), **fit_kwargs())
    parallel = train.fit(MODEL.apply, initial_params(), optax.adam(0.02), (X, Y), mesh=mesh, **fit_kwargs())
    for a, b in ((parallel.state.params, single.state.params), (parallel.state.model_state, single.state.model_state)):
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-5, atol=2e-6), a, b)
    # Per-device statistics (2 examples each) would differ from the global ones by far more.
    assert len(parallel.state.model_state["BatchNorm_1"]["mean"].sharding.device_set) == 8


def test_fit_batch_transform_is_applied_to_training_batches_only():
    plain = stax.serial(stax.Dense(3, b_std=1.0))
    _, params = plain.init(jax.random.key(0), (-1, 4))
    blank = lambda key, x, y: (jnp.zeros_like(x), y)
    result = train.fit(plain.apply, params, optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0),
                       num_epochs=3, batch_size=16, batch_transform=blank, eval_data=(X, Y))
    np.testing.assert_array_equal(result.state.params["Dense_0"]["W"], params["Dense_0"]["W"])  # no input signal
    assert not np.array_equal(result.state.params["Dense_0"]["b"], params["Dense_0"]["b"])
    flipped = train.fit(plain.apply, params, optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0),
                        num_epochs=3, batch_size=16, batch_transform=lambda key, x, y: (x, y))
    reference = train.fit(plain.apply, params, optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0),
                          num_epochs=3, batch_size=16)
    np.testing.assert_allclose(flipped.state.params["Dense_0"]["W"], reference.state.params["Dense_0"]["W"], rtol=1e-6)
    with pytest.raises(TypeError, match="fit: expected batch_transform"):
        train.fit(plain.apply, params, optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0),
                  num_epochs=1, batch_transform=3)


@pytest.mark.parametrize("which", ["train_data", "eval_data"])
def test_fit_names_non_finite_data_and_the_first_bad_index(which):
    plain = stax.serial(stax.Dense(3))
    _, params = plain.init(jax.random.key(0), (-1, 4))
    bad = X.copy()
    bad[5, 2] = np.nan
    bad[9, 0] = np.inf
    data = {"train_data": (X, Y), "eval_data": (X, Y), which: (bad, Y)}
    with pytest.raises(ValueError, match=rf"fit: expected finite {which}, but {which} x has 2 non-finite entries; "
                                         r"the first is x\[5, 2\] = nan"):
        train.fit(plain.apply, params, optax.sgd(0.1), data["train_data"], eval_data=data["eval_data"],
                  loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=1)


def test_fit_resume_from_a_corrupt_checkpoint_says_so(tmp_path):
    plain = stax.serial(stax.Dense(3))
    _, params = plain.init(jax.random.key(0), (-1, 4))
    path = tmp_path / "run.msgpack"
    path.write_bytes(b"\x00garbage" * 5)
    with pytest.raises(ValueError, match="fit: cannot resume from the checkpoint .*run.msgpack"):
        train.fit(plain.apply, params, optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0),
                  num_epochs=1, checkpoint_path=path, resume=True)


def test_weightnorm_is_g_v_over_norm_v_and_starts_as_the_wrapped_layer():
    dense = stax.Dense(5, b_std=0.1)
    wn = stax.WeightNorm(dense)
    _, wn_params = wn.init(jax.random.key(3), (-1, 4))
    _, dense_params = dense.init(jax.random.key(3), (-1, 4))
    x = jnp.asarray(RNG.normal(size=(7, 4)), jnp.float32)
    np.testing.assert_allclose(wn.apply(wn_params, x), dense.apply(dense_params, x), rtol=1e-5, atol=1e-6)
    g = jnp.arange(1.0, 6.0)
    v = wn_params["v"]
    W = np.asarray(v) * np.asarray(g) / np.linalg.norm(np.asarray(v), axis=0)
    changed = dict(wn_params, g=g)
    np.testing.assert_allclose(wn.apply(changed, x), dense.apply(dict(dense_params, W=jnp.asarray(W)), x), rtol=1e-5)
    scaled = dict(changed, v=3.7 * v)  # invariant to the scale of v
    np.testing.assert_allclose(wn.apply(scaled, x), wn.apply(changed, x), rtol=1e-5)
    conv = stax.WeightNorm(stax.Conv(4, (2, 2), dimension_numbers=("NCHW", "OIHW", "NCHW")))
    _, conv_params = conv.init(jax.random.key(0), (-1, 2, 5, 5))
    assert conv_params["g"].shape == (4,)
    with pytest.raises(TypeError, match="WeightNorm: expected a Dense, Conv or ConvTranspose layer, got ABRelu"):
        stax.WeightNorm(stax.Relu())
    with pytest.raises(NotImplementedError, match="WeightNorm"):
        wn.kernel(x, None, "nngp")


def test_inverted_dropout_equals_weight_scaling_at_inference_in_expectation():
    """Seeds: train with units kept with probability p, predict with weights scaled by p.
    Inverted dropout divides by p while training instead, so its expectation is the
    plain layer, and p times it is the expectation of the non-inverted net."""
    p, samples = 0.6, 20000
    dense = stax.Dense(3)
    _, params = dense.init(jax.random.key(0), (-1, 5))
    x = jnp.asarray(RNG.normal(size=(2, 5)), jnp.float32)
    dropout = stax.Dropout(p)
    keys = jax.random.split(jax.random.key(1), samples)
    inverted = jax.vmap(lambda k: dense.apply(params, dropout.apply({}, x, key=k)))(keys)
    plain_masks = jax.vmap(lambda k: jax.random.bernoulli(k, p, x.shape))(keys)
    non_inverted = jax.vmap(lambda m: dense.apply(params, jnp.where(m, x, 0.0)))(plain_masks)
    scaled_weights = dense.apply({"W": p * params["W"]}, x)
    standard_error = np.asarray(inverted.std(0)) / np.sqrt(samples)
    np.testing.assert_array_less(np.abs(np.asarray(inverted.mean(0) - dense.apply(params, x))), 4 * standard_error + 1e-6)
    np.testing.assert_array_less(np.abs(np.asarray(non_inverted.mean(0) - scaled_weights)), 4 * p * standard_error + 1e-6)
    np.testing.assert_array_equal(dropout.apply({}, x, key=keys[0], train=False), x)


def test_params_from_a_model_of_the_same_structure_apply_by_position():
    erf_net = stax.serial(stax.Dense(4), stax.Erf(), stax.Dense(2))
    relu_net = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
    _, params = erf_net.init(jax.random.key(0), (-1, 3))
    x = jnp.ones((2, 3))
    by_hand = stax.Dense(2).apply(params["Dense_2"], jax.nn.relu(stax.Dense(4).apply(params["Dense_0"], x)))
    np.testing.assert_allclose(relu_net.apply(params, x), by_hand, rtol=1e-6)
    as_tuple = (params["Dense_0"], (), params["Dense_2"])  # neural-tangents' positional params
    np.testing.assert_allclose(relu_net.apply(as_tuple, x), by_hand, rtol=1e-6)
    with pytest.raises(ValueError, match=r"serial: expected params with entries .* by position"):
        relu_net.apply({"Dense_0": params["Dense_0"]}, x)


def test_repeat_of_a_parameter_free_layer_and_repeat_zero_as_identity():
    x = jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)
    tanh3 = stax.repeat(stax.Tanh(), 3)
    _, params = tanh3.init(jax.random.key(0), (-1, 4))
    np.testing.assert_allclose(tanh3.apply(params, x), np.tanh(np.tanh(np.tanh(np.asarray(x)))), rtol=1e-6)
    identity = stax.repeat(stax.serial(stax.Dense(4), stax.Relu()), 0)
    shape, params = identity.init(jax.random.key(0), (-1, 4))
    assert shape == (-1, 4) and params == {}
    np.testing.assert_array_equal(identity.apply(params, x), x)
    net = stax.serial(stax.Dense(8, b_std=0.1), stax.repeat(stax.Relu(), 0))
    np.testing.assert_allclose(net.kernel(x, None, "nngp"), stax.Dense(8, b_std=0.1).kernel(x, None, "nngp"))


def test_normalisation_layers_refuse_masked_inputs_by_name():
    x = jnp.ones((2, 3)).at[0, 0].set(-1e3)
    batchnorm = stax.serial(stax.Dense(4), stax.BatchNorm())
    _, params = batchnorm.init(jax.random.key(0), (-1, 3))
    with pytest.raises(NotImplementedError, match="BatchNorm: masked inputs"):
        batchnorm.apply(params, x, state=batchnorm.init_state((-1, 3)), mask_constant=-1e3)
    layernorm = stax.serial(stax.Dense(4), stax.LayerNorm())
    with pytest.raises(NotImplementedError, match="LayerNorm: masked inputs"):
        layernorm.apply(layernorm.init(jax.random.key(0), (-1, 3))[1], x, mask_constant=-1e3)
