"""jaxdl.robust attacks: FGSM and DeepFool against the seeds' closed forms on linear
classifiers, PGD's constraints, strength, restarts, targeting, jit/vmap, the NTK
predictor's input gradient against finite differences, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import models, predict, robust, stax, train
from jaxdl.data import load_digits


def linear(params, x):
    W, b = params
    return x @ W + b


@pytest.fixture(scope="module")
def linear_problem():
    W = jax.random.normal(jax.random.key(0), (6, 4))
    b = jnp.array([0.2, -0.1, 0.0, 0.3])
    x = jax.random.uniform(jax.random.key(1), (16, 6))
    y = jnp.arange(16) % 4
    return (W, b), x, y


@pytest.fixture(scope="module")
def digits_mlp():
    """A small MLP trained for a few epochs on the digits (pixels in [0, 1])."""
    data = load_digits(seed=0, standardize=False)
    x, y = (np.asarray(data.x_train) / 16).astype(np.float32), np.asarray(data.y_train)
    x_test, y_test = (np.asarray(data.x_test) / 16).astype(np.float32), np.asarray(data.y_test)
    model = models.mlp((32,), 10, W_std=2**0.5, parameterization="standard", b_std=0.0)
    _, params = model.init(jax.random.key(0), (-1, 64))
    loss = lambda logits, labels: jnp.mean(robust.cross_entropy(logits, labels))
    result = train.fit(model.apply, params, optax.adam(3e-3), (x, y), loss_fn=loss, key=jax.random.key(1),
                       num_epochs=8, batch_size=64, progress=False)
    return model, result.state.params, x_test[:200], y_test[:200]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_on_a_linear_classifier_is_the_closed_form(linear_problem, norm):
    params, x, y = linear_problem
    eps = 0.07
    x_adv = robust.fgsm(linear, params, x, y, eps=eps, norm=norm)
    # ∇_x CE = W (softmax(f) - e_y), computed by hand in numpy
    logits = np.asarray(linear(params, x), np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(4)[np.asarray(y)]) @ np.asarray(params[0], np.float64).T
    if norm == "linf":
        expected = eps * np.sign(grad)
    else:
        expected = eps * grad / np.linalg.norm(grad, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(x_adv - x), expected, atol=1e-6)


def test_fgsm_on_a_binary_linear_score_is_the_seeds_minus_eps_sign_yw():
    w, b = jnp.array([0.5, -2.0, 1.0, 0.0]), 0.3
    x = jax.random.normal(jax.random.key(2), (8, 4))
    labels = jnp.array([0, 1, 1, 0, 1, 0, 0, 1])
    x_adv = robust.fgsm(lambda p, z: z @ p + b, w, x, labels, eps=0.2)
    y_pm = 2.0 * np.asarray(labels)[:, None] - 1.0  # labels as ±1
    np.testing.assert_allclose(np.asarray(x_adv - x), -0.2 * np.sign(y_pm * np.asarray(w)[None]), atol=1e-7)


def test_deepfool_on_a_binary_score_finds_the_seeds_minimal_l2_perturbation():
    w, b = jnp.array([1.0, -2.0, 0.5]), -0.4
    x = jax.random.normal(jax.random.key(3), (10, 3))
    x_adv = robust.deepfool(lambda p, z: z @ p + b, w, x, overshoot=0.0)
    score = np.asarray(x @ w + b)
    expected = -(score / float(w @ w))[:, None] * np.asarray(w)[None]  # δ* = -(wᵀx + b)/‖w‖² w
    np.testing.assert_allclose(np.asarray(x_adv - x), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(x_adv @ w + b), 0.0, atol=1e-5)  # on the boundary


def test_deepfool_on_two_affine_logits_is_the_seeds_eta_star_and_overshoot_crosses():
    W = jax.random.normal(jax.random.key(4), (5, 2))
    b = jnp.array([0.3, -0.2])
    x = jax.random.normal(jax.random.key(5), (12, 5))
    x_adv = robust.deepfool(linear, (W, b), x, overshoot=0.0)
    f = np.asarray(linear((W, b), x))
    one = f.argmax(1)  # the class of x ("1" in the seeds), the other is "2"
    two = 1 - one
    w1, w2 = np.asarray(W).T[one], np.asarray(W).T[two]
    gap = f[np.arange(12), one] - f[np.arange(12), two]
    eta = (gap / ((w2 - w1) ** 2).sum(1))[:, None] * (w2 - w1)  # η* = (f1 - f2)/‖w2 - w1‖² (w2 - w1)
    np.testing.assert_allclose(np.asarray(x_adv - x), eta, atol=1e-5)
    crossed = robust.deepfool(linear, (W, b), x)  # default overshoot 0.02
    assert np.all(np.asarray(jnp.argmax(linear((W, b), crossed), -1)) == two)


@pytest.mark.slow
def test_deepfool_multiclass_fools_a_trained_net_with_small_perturbations(digits_mlp):
    model, params, x, y = digits_mlp
    x_adv = robust.deepfool(model.apply, params, x, y)
    correct = np.asarray(jnp.argmax(model.apply(params, x), -1) == y)
    fooled = np.asarray(jnp.argmax(model.apply(params, x_adv), -1) != y)
    assert fooled[correct].mean() > 0.95
    # DeepFool's perturbation is no larger than the one PGD-L2 needs: PGD at DeepFool's median norm fools >= ~half
    median = float(np.median(np.linalg.norm(np.asarray(x_adv - x), axis=1)[correct]))
    x_pgd = robust.pgd(model.apply, params, x, y, jax.random.key(0), eps=1.5 * median, norm="l2", steps=30)
    assert np.mean(np.asarray(jnp.argmax(model.apply(params, x_pgd), -1) != y)[correct]) > 0.5


@pytest.mark.parametrize("norm, targeted", [("linf", False), ("l2", True)])
def test_pgd_iterates_stay_in_the_ball_and_the_domain(linear_problem, norm, targeted):
    params, x, y = linear_problem
    eps = 0.3 if norm == "linf" else 0.8
    for steps in (0, 2, 9):  # pgd with `steps` steps returns the steps-th iterate (same random start)
        for restarts in (1, 2):
            x_adv = robust.pgd(linear, params, x, y, jax.random.key(7), eps=eps, norm=norm, steps=steps,
                               restarts=restarts, targeted=targeted, domain=(0.0, 1.0), step_size=0.2)
            delta = np.asarray(x_adv - x)
            size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
            assert size.max() <= eps * (1 + 1e-5)
            assert np.asarray(x_adv).min() >= 0.0 and np.asarray(x_adv).max() <= 1.0


def test_pgd_with_a_step_size_schedule_and_standardised_domain(linear_problem):
    params, x, y = linear_problem
    lo, hi = -jnp.ones(6) * 0.5, jnp.linspace(0.8, 1.2, 6)  # per-feature bounds, as for standardised data
    schedule = optax.cosine_decay_schedule(0.1, 10)
    x_in = jnp.clip(x, lo, hi)
    x_adv = robust.pgd(linear, params, x_in, y, jax.random.key(0), eps=0.25, steps=10, step_size=schedule, domain=(lo, hi))
    assert np.all(np.asarray(x_adv) >= np.asarray(lo) - 1e-7) and np.all(np.asarray(x_adv) <= np.asarray(hi) + 1e-7)
    assert np.abs(np.asarray(x_adv - x_in)).max() <= 0.25 + 1e-6


def test_pgd_is_at_least_as_strong_as_fgsm_on_a_trained_net(digits_mlp):
    model, params, x, y = digits_mlp
    acc = lambda z: float(jnp.mean(jnp.argmax(model.apply(params, z), -1) == y))
    clean = acc(x)
    for eps in (0.05, 0.1):
        fgsm_acc = acc(robust.fgsm(model.apply, params, x, y, eps=eps, domain=(0.0, 1.0)))
        pgd_acc = acc(robust.pgd(model.apply, params, x, y, jax.random.key(1), eps=eps, steps=20, domain=(0.0, 1.0)))
        assert pgd_acc <= fgsm_acc <= clean
    assert clean > 0.85 and pgd_acc < clean - 0.2


def test_pgd_restarts_keep_the_strongest_per_example(digits_mlp):
    model, params, x, y = digits_mlp
    kw = dict(eps=0.04, steps=5, domain=(0.0, 1.0))
    single = robust.pgd(model.apply, params, x, y, jax.random.key(3), restarts=1, **kw)
    several = robust.pgd(model.apply, params, x, y, jax.random.key(3), restarts=4, **kw)  # its first run is `single`
    wrong = lambda z: np.asarray(jnp.argmax(model.apply(params, z), -1) != y)
    loss = lambda z: np.asarray(robust.cross_entropy(model.apply(params, z), y))
    assert np.all(wrong(several) >= wrong(single))  # never loses a success
    same = wrong(several) == wrong(single)
    assert np.all(loss(several)[same] >= loss(single)[same] - 1e-5)


def test_targeted_pgd_reaches_the_target_on_a_linear_classifier(linear_problem):
    params, x, y = linear_problem
    target = (y + 1) % 4
    x_adv = robust.pgd(linear, params, x, target, jax.random.key(0), eps=3.0, steps=40, targeted=True)
    assert np.mean(np.asarray(jnp.argmax(linear(params, x_adv), -1) == target)) == 1.0


def test_attacks_are_jittable_and_vmappable(linear_problem):
    params, x, y = linear_problem
    key = jax.random.key(5)
    kw = dict(eps=0.1, norm="l2", steps=3, restarts=2, domain=(0.0, 1.0))
    eager = robust.pgd(linear, params, x, y, key, **kw)
    jitted = jax.jit(lambda p, a, b, k: robust.pgd(linear, p, a, b, k, **kw))(params, x, y, key)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-6)
    chunks = jax.vmap(lambda a, b: robust.pgd(linear, params, a, b, key, **kw))(x.reshape(2, 8, 6), y.reshape(2, 8))
    for i in range(2):
        np.testing.assert_allclose(np.asarray(chunks[i]), np.asarray(robust.pgd(linear, params, x[8 * i: 8 * i + 8],
                                                                                 y[8 * i: 8 * i + 8], key, **kw)), atol=1e-6)
    jit_fool = jax.jit(lambda p, a: robust.deepfool(linear, p, a))(params, x)
    np.testing.assert_allclose(np.asarray(jit_fool), np.asarray(robust.deepfool(linear, params, x)), atol=1e-5)
    jit_fgsm = jax.vmap(lambda e: robust.fgsm(linear, params, x, y, eps=e))(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(np.asarray(jit_fgsm[1] - x), 2 * np.asarray(jit_fgsm[0] - x), atol=1e-6)


def test_pgd_against_the_ntk_predictor_uses_its_true_input_gradient():
    x_train = jax.random.uniform(jax.random.key(0), (30, 5))
    y_train = jax.nn.one_hot(jnp.arange(30) % 3, 3) - 1 / 3
    x_test = jax.random.uniform(jax.random.key(1), (6, 5))
    kernel_fn = stax.serial(stax.Dense(64, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(3, b_std=0.1)).kernel
    predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, diag_reg=1e-3)
    logits_fn = robust.predictor_logits(predict_fn, "ntk")
    labels = jnp.argmax(logits_fn(None, x_test), -1)
    margin = lambda z: jnp.sum(robust.margin_loss(logits_fn(None, z), labels))
    grad = jax.grad(margin)(x_test)
    assert np.all(np.isfinite(np.asarray(grad)))
    v = jax.random.normal(jax.random.key(2), x_test.shape)
    h = 1e-2
    finite_difference = (margin(x_test + h * v) - margin(x_test - h * v)) / (2 * h)
    np.testing.assert_allclose(float(jnp.vdot(grad, v)), float(finite_difference), rtol=2e-2, atol=2e-3)
    x_adv = robust.pgd(logits_fn, None, x_test, labels, jax.random.key(3), eps=0.5, steps=8, loss="margin")
    assert np.all(np.asarray(robust.margin_loss(logits_fn(None, x_adv), labels)) >
                  np.asarray(robust.margin_loss(logits_fn(None, x_test), labels)))


def test_bad_input_raises_clearly(linear_problem):
    params, x, y = linear_problem
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="^pgd: expected eps >= 0"):
        robust.pgd(linear, params, x, y, key, eps=-0.1)
    with pytest.raises(ValueError, match="^fgsm: expected norm to be one of"):
        robust.fgsm(linear, params, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="^pgd: expected norm"):
        robust.pgd(linear, params, x, y, key, eps=0.1, norm=3)
    with pytest.raises(ValueError, match="^pgd: expected restarts"):
        robust.pgd(linear, params, x, y, key, eps=0.1, restarts=0)
    with pytest.raises(ValueError, match="^pgd: expected domain lo <= hi"):
        robust.pgd(linear, params, x, y, key, eps=0.1, domain=(1.0, 0.0))
    with pytest.raises(ValueError, match="^pgd: expected loss"):
        robust.pgd(linear, params, x, y, key, eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="^deepfool: expected max_iter"):
        robust.deepfool(linear, params, x, max_iter=0)
    with pytest.raises(ValueError, match="^fgsm: expected labels for the 16 examples"):
        robust.fgsm(linear, params, x, y[:3], eps=0.1)
    with pytest.raises(TypeError, match="^pgd: expected a PRNG key"):
        robust.pgd(linear, params, x, y, None, eps=0.1)
    with pytest.raises(TypeError, match="^pgd: expected logits_fn"):
        robust.pgd("model", params, x, y, key, eps=0.1)
