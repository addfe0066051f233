"""jaxdl.train.losses: label smoothing (optax), the seeds' tempered cross-entropy and
the distillation gradient against its closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.train import losses as L

RNG = np.random.default_rng(2)
G = jnp.asarray(RNG.normal(size=(5, 4)) * 3, jnp.float32)  # student logits
F = jnp.asarray(RNG.normal(size=(5, 4)) * 3, jnp.float32)  # teacher logits
Y = jnp.asarray([0, 3, 1, 2, 3])


def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("T", [1.0, 4.0, 0.5])
def test_distillation_gradient_is_the_seeds_closed_form(T):
    grad = jax.grad(lambda g: L.distillation_loss(g, F, T).sum())(G)
    # seeds: d l / d G_y = (1/T) [softmax(F/T)_y - softmax(G/T)_y] for the log-likelihood l;
    # the loss is -l
    closed = (_softmax(G / T) - _softmax(F / T)) / T
    np.testing.assert_allclose(grad, closed, rtol=1e-5, atol=1e-6)
    # no gradient flows into the teacher
    assert np.all(jax.grad(lambda f: L.distillation_loss(G, f, T).sum())(F) == 0)


def test_tempered_cross_entropy_is_the_seeds_sum_negated():
    T = 3.0
    g = np.asarray(G, np.float64)
    seeds_l = np.sum(_softmax(F / T) * (g / T - np.log(np.exp(g / T).sum(-1, keepdims=True))), -1)
    np.testing.assert_allclose(L.tempered_cross_entropy(G, F, T), -seeds_l, rtol=1e-5)


def test_mixed_distillation_gradient_and_T_squared_scaling():
    T, q = 2.0, 0.3
    grad = jax.grad(lambda g: L.distillation_loss(g, F, T, q, Y).sum())(G)
    onehot = np.eye(4)[np.asarray(Y)]
    closed = q / T * (_softmax(G / T) - _softmax(F / T)) + (1 - q) * (_softmax(G) - onehot)
    np.testing.assert_allclose(grad, closed, rtol=1e-5, atol=1e-6)
    scaled = jax.grad(lambda g: L.distillation_loss(g, F, T, scale_by_T_squared=True).sum())(G)
    np.testing.assert_allclose(scaled, T * (_softmax(G / T) - _softmax(F / T)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="^distillation_loss: q=0.3 < 1 .*labels are required"):
        L.distillation_loss(G, F, T, q)


def test_distillation_minimum_is_the_teacher_and_extreme_logits_stay_finite():
    # the tempered cross-entropy is minimised (gradient 0) when the student equals the teacher
    assert np.abs(jax.grad(lambda g: L.distillation_loss(g, F, 2.0).sum())(F)).max() < 1e-6
    huge = jnp.asarray([[1e4, -1e4, 0.0]], jnp.float32)
    assert np.isfinite(L.distillation_loss(huge, -huge, 0.01)).all()
    assert np.isfinite(jax.grad(lambda g: L.distillation_loss(g, -huge, 0.01).sum())(huge)).all()
    with pytest.raises(ValueError, match="^tempered_cross_entropy: expected a finite temperature"):
        L.tempered_cross_entropy(G, F, 0.0)


def test_label_smoothing_is_optax_and_moves_the_optimum():
    smoothed = L.smooth_labels(Y, 0.1, 4)
    np.testing.assert_allclose(smoothed, 0.9 * np.eye(4)[np.asarray(Y)] + 0.1 / 4, rtol=1e-6)
    np.testing.assert_allclose(smoothed, optax.smooth_labels(jax.nn.one_hot(Y, 4), 0.1), rtol=1e-6)
    np.testing.assert_allclose(
        L.cross_entropy(G, Y, label_smoothing=0.1), optax.softmax_cross_entropy(G, smoothed), rtol=1e-6
    )
    # the smoothed loss is minimised by logits whose softmax equals the smoothed target
    target_logits = jnp.log(smoothed)
    assert np.abs(jax.grad(lambda z: L.cross_entropy(z, Y, 0.1).sum())(target_logits)).max() < 1e-6
    loss_fn = L.make_cross_entropy_loss(0.1)
    np.testing.assert_allclose(loss_fn(G, Y), L.cross_entropy(G, Y, 0.1).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="^smooth_labels: expected alpha"):
        L.smooth_labels(Y, 1.5, 4)


def test_make_distillation_loss_reads_packed_targets():
    T, q = 4.0, 0.5
    targets = L.distillation_targets(F, Y)
    assert targets.shape == (5, 2, 4)
    loss_fn = jax.jit(L.make_distillation_loss(T, q))
    np.testing.assert_allclose(loss_fn(G, targets), L.distillation_loss(G, F, T, q, Y).mean(), rtol=1e-6)
    np.testing.assert_allclose(L.make_distillation_loss(T)(G, F), L.distillation_loss(G, F, T).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="^make_distillation_loss: q=0.5 < 1"):
        L.make_distillation_loss(T, q)(G, F)
