"""Flax bridge: numerical equivalence both ways, and the empirical NTK of a flax CNN
equals that of the same network in jaxdl.stax with copied weights (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from jaxdl import stax
from jaxdl.interop.flax import from_linen, from_nnx, to_linen, to_nnx
from jaxdl.kernels.empirical import empirical_ntk_fn


def _stax_mlp():
    return stax.serial(stax.Dense(8, b_std=0.1), stax.Relu(), stax.Dense(3))


def test_stax_as_linen_matches_stax():
    model = _stax_mlp()
    x = jax.random.normal(jax.random.key(0), (4, 5))
    module = to_linen(model)
    variables = module.init(jax.random.key(1), x)
    params = variables["params"]["stax"]
    np.testing.assert_allclose(module.apply(variables, x), model.apply(params, x), rtol=1e-5, atol=1e-6)
    _, reference = model.init(jax.random.key(1), x.shape)  # flax may split the key differently
    assert jax.tree.structure(params) == jax.tree.structure(reference)
    # legacy keys and jit
    variables = module.init(jax.random.PRNGKey(2), x)
    jitted = jax.jit(module.apply)(variables, x)
    np.testing.assert_allclose(jitted, model.apply(variables["params"]["stax"], x), rtol=1e-5, atol=1e-6)


def test_stax_as_nnx_matches_stax_and_trains():
    model = _stax_mlp()
    x = jax.random.normal(jax.random.key(0), (4, 5))
    module = to_nnx(model, x.shape, rngs=nnx.Rngs(params=3))
    np.testing.assert_allclose(module(x), model.apply(module.stax.get_value(), x), rtol=1e-5, atol=1e-6)
    # gradients flow through nnx.grad to the stax parameters
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(module)
    expected = jax.grad(lambda p: jnp.sum(model.apply(p, x) ** 2))(module.stax.get_value())
    np.testing.assert_allclose(grads.stax.get_value()["Dense_0"]["W"], expected["Dense_0"]["W"], rtol=1e-5)


def test_linen_and_nnx_round_trips():
    x = jax.random.normal(jax.random.key(0), (4, 5))
    mlp = linen.Sequential([linen.Dense(7), linen.tanh, linen.Dense(2)])
    init_fn, apply_fn = from_linen(mlp)
    out_shape, params = init_fn(jax.random.key(4), (-1, 5))
    assert out_shape == (-1, 2)
    np.testing.assert_allclose(apply_fn(params, x), mlp.apply({"params": params}, x), rtol=1e-5, atol=1e-6)

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(5, 6, rngs=rngs)
            self.b = nnx.Linear(6, 2, rngs=rngs)

        def __call__(self, x):
            return self.b(jnp.sin(self.a(x)))

    net = Net(nnx.Rngs(0))
    apply_nnx, nnx_params = from_nnx(net)
    np.testing.assert_allclose(jax.jit(apply_nnx)(nnx_params, x), net(x), rtol=1e-5, atol=1e-6)
    # and back: a jaxdl stax model -> nnx -> (apply_fn, params)
    stax_model = _stax_mlp()
    wrapped = to_nnx(stax_model, x.shape, rngs=nnx.Rngs(params=5))
    apply_back, params_back = from_nnx(wrapped)
    np.testing.assert_allclose(apply_back(params_back, x), stax_model.apply(wrapped.stax.get_value(), x), rtol=1e-5, atol=1e-6)


class FlaxCNN(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.Conv(4, (3, 3), padding="SAME")(x)
        x = linen.relu(x)
        x = linen.Conv(3, (2, 2), padding="VALID")(x)
        x = linen.relu(x)
        x = x.reshape(x.shape[0], -1)
        return linen.Dense(2)(x)


def _copied_stax_cnn(flax_params):
    """The same CNN in stax ('standard' parameterization: y = x W + b), weights copied."""
    model = stax.serial(
        stax.Conv(4, (3, 3), padding="SAME", parameterization="standard", b_std=1.0), stax.Relu(),
        stax.Conv(3, (2, 2), padding="VALID", parameterization="standard", b_std=1.0), stax.Relu(),
        stax.Flatten(), stax.Dense(2, parameterization="standard", b_std=1.0),
    )  # fmt: skip
    _, template = model.init(jax.random.key(0), (-1, 6, 5, 2))
    names = {"Conv_0": "Conv_0", "Conv_2": "Conv_1", "Dense_5": "Dense_0"}
    params = {}
    for stax_name, leaf in template.items():
        if stax_name in names:
            source = flax_params[names[stax_name]]
            params[stax_name] = {"W": source["kernel"], "b": source["bias"].reshape(leaf["b"].shape)}
        else:
            params[stax_name] = leaf
    return model, params


@pytest.mark.slow
def test_flax_cnn_ntk_equals_stax_cnn_ntk():
    with jax.enable_x64(True):
        x1 = jax.random.normal(jax.random.key(0), (3, 6, 5, 2), jnp.float64)
        x2 = jax.random.normal(jax.random.key(1), (2, 6, 5, 2), jnp.float64)
        cnn = FlaxCNN()
        flax_params = cnn.init(jax.random.key(2), x1)["params"]
        flax_params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(3), a.shape), flax_params)
        model, stax_params = _copied_stax_cnn(flax_params)
        _, flax_apply = from_linen(cnn)
        np.testing.assert_allclose(flax_apply(flax_params, x1), model.apply(stax_params, x1), rtol=1e-12)
        flax_ntk = jax.jit(empirical_ntk_fn(flax_apply, (), vmap_axes=0))(x1, x2, flax_params)
        stax_ntk = jax.jit(empirical_ntk_fn(model.apply, (), vmap_axes=0))(x1, x2, stax_params)
        assert flax_ntk.shape == (3, 2, 2, 2)
        np.testing.assert_allclose(flax_ntk, stax_ntk, rtol=1e-10, atol=1e-12)


def test_bad_input_raises_clearly():
    with pytest.raises(TypeError, match="to_linen: expected a stax model"):
        to_linen(42)
    with pytest.raises(TypeError, match="from_linen: expected a flax.linen.Module"):
        from_linen(lambda x: x)
    with pytest.raises(TypeError, match="from_nnx: expected a flax.nnx.Module"):
        from_nnx(_stax_mlp())
    with pytest.raises(TypeError, match="to_nnx: expected rngs"):
        to_nnx(_stax_mlp(), (1, 5), rngs=0)
    init_fn, _ = from_linen(linen.BatchNorm(use_running_average=False))
    with pytest.raises(ValueError, match="state collections"):
        init_fn(jax.random.key(0), (2, 3))


def test_stateful_stax_model_as_linen_follows_flax_batch_stats_pattern():
    model = stax.serial(stax.Dense(6), stax.BatchNorm(momentum=0.8), stax.Relu(), stax.Dense(2))
    module = to_linen(model)
    x = jax.random.normal(jax.random.key(1), (9, 4)) * 3.0 + 1.0
    variables = module.init(jax.random.key(0), x)
    assert set(variables) == {"params", "batch_stats"}
    params, state = variables["params"]["stax"], variables["batch_stats"]["stax"]
    jax.tree.map(np.testing.assert_array_equal, state, model.init_state(x.shape))  # init leaves the stats alone
    y, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    y_stax, state_stax = model.apply(params, x, state=state, train=True)
    np.testing.assert_allclose(y, y_stax, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), updates["batch_stats"]["stax"], state_stax)
    evaluated = module.apply({"params": variables["params"], "batch_stats": updates["batch_stats"]}, x)
    np.testing.assert_allclose(evaluated, model.apply(params, x, state=state_stax, train=False)[0], rtol=1e-6)
