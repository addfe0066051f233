"""Interval bound propagation: sound (contains the outputs of random points and corners of
the box) for every supported layer family, exact for one affine layer (brute force over
the corners), consistent with PGD, and clear about unsupported layers."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import robust, stax

MODELS = {
    "mlp": (lambda: stax.serial(stax.Dense(8, b_std=0.1), stax.Relu(), stax.Dense(8, b_std=0.1), stax.Tanh(),
                                stax.Dense(3)), (5,)),
    "cnn": (lambda: stax.serial(stax.Conv(3, (3, 3), padding="SAME", b_std=0.1), stax.LeakyRelu(0.1),
                                stax.MaxPool((2, 2)), stax.Conv(2, (2, 2), b_std=0.1), stax.Sigmoid(),
                                stax.AvgPool((2, 2), padding="SAME"), stax.Flatten(), stax.Dense(3)), (6, 6, 1)),
    "branches": (lambda: stax.serial(stax.Dense(6), stax.FanOut(3),
                                     stax.parallel(stax.Erf(), stax.serial(stax.Dense(6), stax.Abs()), stax.Elu()),
                                     stax.FanInSum(), stax.FanOut(2), stax.parallel(stax.Gaussian(), stax.Softplus()),
                                     stax.FanInProd(), stax.FanOut(2), stax.parallel(stax.Monomial(2), stax.Identity()),
                                     stax.FanInConcat(), stax.Dense(3)), (4,)),
    "repeat": (lambda: stax.serial(stax.Dense(5), stax.repeat(stax.serial(stax.Dense(5, b_std=0.2), stax.Relu()), 3),
                                   stax.Identity(), stax.Dense(2)), (4,)),
    "pooling": (lambda: stax.serial(stax.Conv(2, (2, 2), b_std=0.1), stax.RectifiedMonomial(1), stax.SumPool((2, 2)),
                                    stax.GlobalAvgPool(), stax.Dropout(0.5, mode="test"), stax.Dense(2)), (5, 5, 1)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bounds_contain_the_outputs_of_random_points_and_corners(name):
    build, shape = MODELS[name]
    model = build()
    _, params = model.init(jax.random.key(0), (-1, *shape))
    x = jax.random.uniform(jax.random.key(1), (3, *shape))
    eps = 0.1
    lower, upper = jax.jit(lambda p, z: robust.ibp_bounds(model, p, z, eps, domain=(0.0, 1.0)))(params, x)
    assert np.all(np.asarray(lower) <= np.asarray(upper))
    box_lo, box_hi = jnp.clip(x - eps, 0, 1), jnp.clip(x + eps, 0, 1)
    u = jax.random.uniform(jax.random.key(2), (300, *x.shape))
    corners = jax.random.bernoulli(jax.random.key(3), 0.5, (100, *x.shape)).astype(x.dtype)
    points = box_lo + (box_hi - box_lo) * jnp.concatenate([u, corners])
    outputs = jax.jit(jax.vmap(model.apply, (None, 0)))(params, points)
    tol = 1e-5 * (1 + np.abs(np.asarray(outputs)).max())
    assert np.all(np.asarray(outputs) >= np.asarray(lower) - tol)
    assert np.all(np.asarray(outputs) <= np.asarray(upper) + tol)
    # not vacuous: the bounds are within a modest factor of the sampled spread
    spread = np.asarray(outputs.max(0) - outputs.min(0))
    assert np.all(np.asarray(upper - lower) <= 50 * spread + 1e-3)


def test_a_single_dense_layer_is_exact_by_brute_force_over_the_corners():
    model = stax.Dense(3, W_std=1.3, b_std=0.5)
    _, params = model.init(jax.random.key(0), (-1, 4))
    x = jax.random.normal(jax.random.key(1), (2, 4))
    eps = 0.2
    lower, upper = robust.ibp_bounds(model, params, x, eps)
    signs = jnp.array(list(itertools.product([-1.0, 1.0], repeat=4)))  # the 16 corners
    outputs = jax.vmap(lambda s: model.apply(params, x + eps * s))(signs)
    np.testing.assert_allclose(np.asarray(lower), np.asarray(outputs.min(0)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(upper), np.asarray(outputs.max(0)), atol=1e-5)


def test_a_single_conv_layer_is_exact_by_brute_force_over_the_corners():
    model = stax.Conv(2, (2, 2), padding="SAME", b_std=0.3, parameterization="standard")
    _, params = model.init(jax.random.key(0), (-1, 3, 3, 1))
    x = jax.random.normal(jax.random.key(1), (1, 3, 3, 1))
    eps = 0.1
    lower, upper = robust.ibp_bounds(model, params, x, eps)
    signs = jnp.array(list(itertools.product([-1.0, 1.0], repeat=9))).reshape(-1, 1, 3, 3, 1)  # 512 corners
    outputs = jax.vmap(lambda s: model.apply(params, x + eps * s))(signs)
    np.testing.assert_allclose(np.asarray(lower), np.asarray(outputs.min(0)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(upper), np.asarray(outputs.max(0)), atol=1e-5)


def test_elementwise_bounds_are_the_exact_image_of_the_interval():
    lower = jnp.array([[-2.0, -1.0, 0.5, -0.3]])
    upper = jnp.array([[-1.0, 2.0, 1.5, 0.1]])
    grid = jnp.linspace(0, 1, 2001)[:, None, None]
    points = jnp.concatenate([lower + (upper - lower) * grid, jnp.clip(0.0, lower, upper)[None]])  # with 0 if inside
    for layer in (stax.Relu(), stax.Abs(), stax.Elu(alpha=-0.5), stax.Gaussian(), stax.Monomial(2), stax.Tanh(),
                  stax.Erf(a=-1.0)):
        lo, hi = robust.interval_bounds(layer, {}, lower, upper)
        values = jax.vmap(lambda z: layer.apply({}, z))(points)
        np.testing.assert_allclose(np.asarray(lo), np.asarray(values.min(0)), atol=1e-6, err_msg=layer.name)
        np.testing.assert_allclose(np.asarray(hi), np.asarray(values.max(0)), atol=1e-6, err_msg=layer.name)


def test_certified_examples_resist_pgd_and_eps_zero_certifies_the_correct_ones():
    model, shape = MODELS["mlp"][0](), MODELS["mlp"][1]
    _, params = model.init(jax.random.key(4), (-1, *shape))
    x = jax.random.normal(jax.random.key(5), (200, *shape))
    y = jnp.argmax(model.apply(params, x), -1)
    y = jnp.where(jnp.arange(200) % 5 == 0, (y + 1) % 3, y)  # some wrong labels
    correct = np.asarray(jnp.argmax(model.apply(params, x), -1) == y)
    np.testing.assert_array_equal(np.asarray(robust.ibp_certified(model, params, x, y, 0.0)), correct)
    eps = 0.05
    certified = np.asarray(robust.ibp_certified(model, params, x, y, eps))
    assert 0 < certified.sum() < correct.sum()
    x_adv = robust.pgd(model.apply, params, x, y, jax.random.key(6), eps=eps, steps=30, loss="margin")
    assert np.all(np.asarray(jnp.argmax(model.apply(params, x_adv), -1) == y)[certified])
    assert float(robust.ibp_certified_accuracy(model, params, x, y, eps)) == pytest.approx(certified.mean())


def test_worst_case_logits_and_ibp_loss_at_zero_eps_are_the_clean_ones():
    model, shape = MODELS["cnn"][0](), MODELS["cnn"][1]
    _, params = model.init(jax.random.key(0), (-1, *shape))
    x = jax.random.uniform(jax.random.key(1), (4, *shape))
    y = jnp.array([0, 1, 2, 0])
    clean = jnp.mean(robust.cross_entropy(model.apply(params, x), y))
    np.testing.assert_allclose(float(robust.ibp_loss(model, params, x, y, 0.0)), float(clean), rtol=1e-5)
    assert float(robust.ibp_loss(model, params, x, y, 0.1)) > float(clean)


@pytest.mark.parametrize("layer, name", [(stax.LayerNorm(), "LayerNorm"), (stax.Gelu(), "Gelu"),
                                         (stax.Softmax(), "Softmax"), (stax.Sin(), "Sin")])
def test_unsupported_layers_are_named(layer, name):
    model = stax.serial(stax.Dense(3), layer, stax.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 4))
    with pytest.raises(ValueError, match=f"^ibp_bounds: unsupported layer {name}"):
        robust.ibp_bounds(model, params, jnp.ones((1, 4)), 0.1)


def test_bad_input_raises_clearly():
    model = stax.Dense(2)
    _, params = model.init(jax.random.key(0), (-1, 3))
    with pytest.raises(ValueError, match="^ibp_bounds: expected eps >= 0"):
        robust.ibp_bounds(model, params, jnp.ones((1, 3)), -0.1)
    with pytest.raises(TypeError, match="^ibp_bounds: expected a stax Layer"):
        robust.ibp_bounds(lambda p, x: x, params, jnp.ones((1, 3)), 0.1)
    with pytest.raises(ValueError, match="^ibp_bounds: expected lower and upper of one shape"):
        robust.interval_bounds(model, params, jnp.ones((1, 3)), jnp.ones((2, 3)))
