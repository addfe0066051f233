"""MADE: the autoregressive property checked by differentiation and by perturbing
inputs (output i independent of inputs >= i), normalisation by brute force over all
2^8 binary vectors (and all 3^3 ternary ones), sequential samples with the model's
own marginals (exact enumeration)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.generative import autoregressive


def _randomised(model, key):
    params = model.init(key)
    return jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.fold_in(key, a.size), a.shape), params)


@pytest.mark.parametrize("order", [None, (3, 1, 4, 2, 6, 5, 8, 7)])
def test_output_i_depends_only_on_earlier_inputs(order):
    model = autoregressive.made(8, hidden=(16, 16), num_classes=2, order=order)
    params = _randomised(model, jax.random.key(0))
    rank = np.arange(1, 9) if order is None else np.asarray(order)
    # through the one-hot input: d logits_i / d onehot_j must vanish unless rank_j < rank_i
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, 8))

    def from_onehot(h):
        masks = model.masks
        out = h.reshape(-1)
        for k, mask in enumerate(masks):
            mask = np.repeat(mask, 2, axis=0) if k == 0 else mask
            mask = np.repeat(mask, 2, axis=1) if k == len(masks) - 1 else mask
            out = out @ (params[f"layer_{k}"]["W"] * mask) + params[f"layer_{k}"]["b"]
            out = jax.nn.relu(out) if k < len(masks) - 1 else out
        return out.reshape(8, 2)

    np.testing.assert_allclose(from_onehot(jax.nn.one_hot(x, 2)), model.logits(params, x), atol=1e-6)
    jac = jax.jacfwd(from_onehot)(jax.nn.one_hot(x, 2))  # (8, 2, 8, 2)
    dependence = np.asarray(jnp.any(jac != 0, axis=(1, 3)))
    allowed = rank[None, :] < rank[:, None]
    assert not np.any(dependence & ~allowed)
    assert dependence[allowed].mean() > 0.5  # the connections that may exist mostly do
    # and directly: flipping input j leaves the logits of every i with rank_i <= rank_j unchanged
    for j in range(8):
        flipped = x.at[j].set(1 - x[j])
        unchanged = rank <= rank[j]
        np.testing.assert_array_equal(model.logits(params, flipped)[unchanged], model.logits(params, x)[unchanged])


def test_probabilities_of_all_binary_and_ternary_vectors_sum_to_one():
    model = autoregressive.made(8, hidden=(32,), num_classes=2, order=(2, 1, 3, 5, 4, 8, 6, 7))
    params = _randomised(model, jax.random.key(1))
    every = jnp.asarray(list(itertools.product((0, 1), repeat=8)))
    assert float(jnp.sum(jnp.exp(model.log_prob(params, every)))) == pytest.approx(1.0, abs=1e-5)
    model3 = autoregressive.made(3, hidden=(8, 8), num_classes=3)
    params3 = _randomised(model3, jax.random.key(2))
    every3 = jnp.asarray(list(itertools.product((0, 1, 2), repeat=3)))
    assert float(jnp.sum(jnp.exp(model3.log_prob(params3, every3)))) == pytest.approx(1.0, abs=1e-5)


def test_sequential_samples_follow_the_model_distribution():
    model = autoregressive.made(3, hidden=(8,), num_classes=2, order=(3, 1, 2))
    params = _randomised(model, jax.random.key(3))
    every = jnp.asarray(list(itertools.product((0, 1), repeat=3)))
    probs = np.asarray(jnp.exp(model.log_prob(params, every)))
    draws = np.asarray(model.sample(params, jax.random.key(4), 20000))
    codes = draws @ np.array([4, 2, 1])
    freq = np.bincount(codes, minlength=8) / len(codes)
    np.testing.assert_allclose(freq, probs, atol=0.015)


def test_bad_input():
    with pytest.raises(ValueError, match="^made:"):
        autoregressive.made(4, order=(1, 2, 2, 4))
    with pytest.raises(ValueError, match="^made:"):
        autoregressive.made(4, num_classes=1)
    model = autoregressive.made(4)
    with pytest.raises(ValueError, match="^MADE.log_prob:"):
        model.log_prob(model.init(jax.random.key(0)), jnp.zeros((2, 5), jnp.int32))
