"""Robust training through train.fit's train_objective hook: the hook reproduces plain
training exactly, the objectives reduce to the clean loss where they must, adversarial
training raises PGD accuracy on the digits far above the standard model's, and bad
input raises."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import models, robust, stax, train
from jaxdl.data import load_digits


def ce(logits, y):
    return jnp.mean(robust.cross_entropy(logits, y))


@pytest.fixture(scope="module")
def digits():
    data = load_digits(seed=0, standardize=False)
    scale = lambda x: (np.asarray(x) / 16).astype(np.float32)
    return scale(data.x_train), np.asarray(data.y_train), scale(data.x_test), np.asarray(data.y_test)


def small_model(width=32):
    return models.mlp((width,), 10, W_std=2**0.5, parameterization="standard", b_std=0.0)


def test_train_objective_hook_reproduces_plain_training(digits):
    x, y = digits[0][:256], digits[1][:256]
    model = small_model()
    _, params = model.init(jax.random.key(0), (-1, 64))
    kw = dict(loss_fn=ce, key=jax.random.key(1), num_epochs=2, batch_size=64, progress=False)
    plain = train.fit(model.apply, params, optax.adam(1e-2), (x, y), **kw)
    hooked = train.fit(model.apply, params, optax.adam(1e-2), (x, y),
                       train_objective=lambda p, xb, yb, key: ce(model.apply(p, xb), yb), **kw)
    for a, b in zip(jax.tree.leaves(plain.state.params), jax.tree.leaves(hooked.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(plain.history["train_loss"], hooked.history["train_loss"], rtol=1e-6)


def test_objectives_reduce_to_the_clean_loss(digits):
    x, y = jnp.asarray(digits[0][:32]), jnp.asarray(digits[1][:32])
    model = small_model()
    _, params = model.init(jax.random.key(0), (-1, 64))
    clean = float(ce(model.apply(params, x), y))
    key = jax.random.key(2)
    at_zero = [robust.adversarial_objective(model.apply, eps=0.0), robust.trades_objective(model.apply, eps=0.1, beta=0.0),
               robust.ibp_objective(model, eps=0.0), robust.trades_objective(model.apply, eps=0.0, beta=6.0)]
    for objective in at_zero:
        np.testing.assert_allclose(float(objective(params, x, y, key)), clean, rtol=1e-5)
    # positive budgets: the adversarial, TRADES and IBP losses exceed the clean one
    for objective in (robust.adversarial_objective(model.apply, eps=0.1, domain=(0.0, 1.0)),
                      robust.trades_objective(model.apply, eps=0.1, domain=(0.0, 1.0)),
                      robust.ibp_objective(model, eps=0.05, domain=(0.0, 1.0))):
        assert float(objective(params, x, y, key)) > clean
    # the gradient does not flow through the attack: it is the gradient at the fixed adversarial inputs
    objective = robust.adversarial_objective(model.apply, eps=0.1, steps=3, domain=(0.0, 1.0))
    x_adv = robust.pgd(model.apply, params, x, y, key, eps=0.1, steps=3, domain=(0.0, 1.0))
    g_obj = jax.grad(objective)(params, x, y, key)
    g_fixed = jax.grad(lambda p: ce(model.apply(p, x_adv), y))(params)
    for a, b in zip(jax.tree.leaves(g_obj), jax.tree.leaves(g_fixed)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # about 60 s on two loaded cores
def test_adversarial_training_raises_pgd_accuracy_well_above_the_standard_models(digits):
    x, y, x_test, y_test = digits
    x_test, y_test = x_test[:200], y_test[:200]
    model = small_model(64)
    _, params = model.init(jax.random.key(0), (-1, 64))
    eps, domain = 0.1, (0.0, 1.0)
    kw = dict(loss_fn=ce, key=jax.random.key(1), num_epochs=10, batch_size=64, progress=False)
    standard = train.fit(model.apply, params, optax.adam(3e-3), (x, y), **kw).state.params
    robust_objective = robust.adversarial_objective(model.apply, eps=eps, steps=5, domain=domain)
    adversarial = train.fit(model.apply, params, optax.adam(3e-3), (x, y), train_objective=robust_objective, **kw).state.params

    def pgd_accuracy(p):
        x_adv = robust.pgd(model.apply, p, x_test, y_test, jax.random.key(2), eps=eps, steps=10, domain=domain)
        return float(robust.accuracy(model.apply, p, x_adv, y_test))

    assert float(robust.accuracy(model.apply, adversarial, x_test, y_test)) > 0.8
    assert pgd_accuracy(adversarial) > pgd_accuracy(standard) + 0.2


def test_bad_input_raises_clearly(digits):
    model = small_model()
    with pytest.raises(ValueError, match="^adversarial_objective: expected eps >= 0"):
        robust.adversarial_objective(model.apply, eps=-1.0)
    with pytest.raises(ValueError, match="^trades_objective: expected norm"):
        robust.trades_objective(model.apply, eps=0.1, norm="l0")
    with pytest.raises(ValueError, match="^ibp_objective: expected kappa in"):
        robust.ibp_objective(model, eps=0.1, kappa=2.0)
    stateful = stax.serial(stax.Dense(4), stax.BatchNorm(), stax.Dense(2))
    _, params = stateful.init(jax.random.key(0), (-1, 3))
    with pytest.raises(TypeError, match="^fit: expected train_objective"):
        train.fit(stateful.apply, params, optax.sgd(0.1), (jnp.ones((4, 3)), jnp.zeros(4, jnp.int32)), loss_fn=ce,
                  key=jax.random.key(0), num_epochs=1, state=stateful.init_state((-1, 3)),
                  train_objective=lambda p, x, y, k: 0.0, progress=False)
