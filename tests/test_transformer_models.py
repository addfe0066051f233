"""``models.gpt`` / ``gpt_generate`` / ``bert`` / ``mlm_mask`` / ``vit`` / ``transformer``:
causality, cached = uncached generation, the 15 % and 80/10/10 masking rule,
the patch embedding against the explicit reshape-and-matmul, the encoder-decoder's
consistency, a tiny GPT that learns a repeating sequence, and the clear errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import models
from jaxdl.stax.transformer import attention_cache

VOCAB, CONTEXT = 13, 10


@pytest.fixture(scope="module")
def small_gpt():
    init_fn, apply_fn, _ = models.gpt(VOCAB, context_length=CONTEXT, d_model=8, num_heads=2, num_layers=2)
    _, params = init_fn(jax.random.key(0), (-1, CONTEXT))
    return apply_fn, params, jax.jit(apply_fn)


def test_gpt_logits_at_t_do_not_depend_on_later_tokens(small_gpt):
    _, params, forward = small_gpt
    tokens = jax.random.randint(jax.random.key(1), (3, CONTEXT), 0, VOCAB)
    base = forward(params, tokens)
    for t in (0, 4, 8):
        changed = tokens.at[:, t + 1 :].set((tokens[:, t + 1 :] + 1 + jnp.arange(CONTEXT - t - 1)) % VOCAB)
        logits = forward(params, changed)
        np.testing.assert_allclose(logits[:, : t + 1], base[:, : t + 1], rtol=1e-6, atol=1e-6)
        assert not np.allclose(logits[:, t + 1 :], base[:, t + 1 :], atol=1e-3)  # later positions do see them


def test_cached_step_logits_equal_the_full_pass(small_gpt):
    apply_fn, params, forward = small_gpt
    step = jax.jit(lambda params, tokens, cache: apply_fn(params, tokens, cache=cache))
    tokens = jax.random.randint(jax.random.key(2), (3, CONTEXT), 0, VOCAB)
    cache = tuple(attention_cache(3, CONTEXT, 2, 4) for _ in range(2))
    logits, cache = step(params, tokens[:, :4], cache)
    steps = [logits]
    for t in range(4, CONTEXT):
        logits, cache = step(params, tokens[:, t : t + 1], cache)
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), forward(params, tokens), rtol=1e-5, atol=1e-5)


def test_cached_generation_equals_full_recomputation(small_gpt):
    apply_fn, params, forward = small_gpt
    prompt = jax.random.randint(jax.random.key(3), (3, 3), 0, VOCAB)
    key = jax.random.key(4)
    greedy = models.gpt_generate(apply_fn, params, prompt, 7, key, temperature=0.0)
    np.testing.assert_array_equal(greedy, models.gpt_generate(apply_fn, params, prompt, 7, key, temperature=0.0, use_cache=False))
    np.testing.assert_array_equal(greedy[:, :3], prompt)
    # greedy = the argmax of the full model's logits at every step
    logits = forward(params, greedy)
    np.testing.assert_array_equal(greedy[:, 3:], jnp.argmax(logits[:, 2:-1], axis=-1))
    sampled = models.gpt_generate(apply_fn, params, prompt, 7, key, temperature=2.0, top_k=4)
    np.testing.assert_array_equal(
        sampled, models.gpt_generate(apply_fn, params, prompt, 7, key, temperature=2.0, top_k=4, use_cache=False))
    assert not np.array_equal(sampled, greedy)
    # every sampled token is among the 4 most likely under the full model
    logits = forward(params, sampled)
    top4 = jax.lax.top_k(logits[:, 2:-1], 4)[1]
    assert np.all(np.any(top4 == sampled[:, 3:, None], axis=-1))


def test_mlm_masking_frequencies():
    vocab, mask_id = 50, 49
    tokens = jax.random.randint(jax.random.key(5), (400, 100), 0, vocab - 1)  # never mask_id
    masked, targets, weights = models.mlm_mask(jax.random.key(6), tokens, mask_id=mask_id, vocab_size=vocab)
    tokens, masked, selected = np.asarray(tokens), np.asarray(masked), np.asarray(weights) == 1.0
    np.testing.assert_array_equal(targets, tokens)
    np.testing.assert_array_equal(masked[~selected], tokens[~selected])  # unselected: untouched

    def within(count, n, p):  # 5 binomial standard deviations
        assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p)), (count, n, p)

    n = tokens.size
    within(selected.sum(), n, 0.15)
    m = selected.sum()
    to_mask = (masked[selected] == mask_id).sum()
    kept = (masked[selected] == tokens[selected]).sum()
    # the 10 % random tokens hit mask_id or the original token with probability 1/vocab each
    within(to_mask, m, 0.8 + 0.1 / vocab)
    within(kept, m, 0.1 + 0.1 / vocab)
    within(m - to_mask - kept, m, 0.1 * (vocab - 2) / vocab)


def test_mlm_loss_is_cross_entropy_on_selected_positions():
    init_fn, apply_fn, _ = models.bert(11, context_length=6, d_model=8, num_heads=2, num_layers=1)
    _, params = init_fn(jax.random.key(0), (-1, 6))
    apply_fn = jax.jit(apply_fn)
    tokens = jax.random.randint(jax.random.key(1), (4, 6), 0, 10)
    key = jax.random.key(2)
    loss = models.mlm_loss(apply_fn, params, key, tokens, mask_id=10, vocab_size=11, mask_prob=0.3)
    masked, targets, weights = models.mlm_mask(key, tokens, mask_id=10, vocab_size=11, mask_prob=0.3)
    logits = np.asarray(apply_fn(params, masked), np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, np.asarray(targets)[..., None], -1)[..., 0]
    w = np.asarray(weights)
    assert w.sum() > 0
    np.testing.assert_allclose(loss, (w * nll).sum() / w.sum(), rtol=1e-5)


def test_vit_patch_embedding_equals_reshape_and_matmul():
    B, H, W, C, p, D = 2, 4, 6, 3, 2, 5
    images = jax.random.normal(jax.random.key(0), (B, H, W, C))
    kernel = jax.random.normal(jax.random.key(1), (p, p, C, D))
    bias = jax.random.normal(jax.random.key(2), (D,))
    x = np.asarray(images).reshape(B, H // p, p, W // p, p, C).transpose(0, 1, 3, 2, 4, 5)
    patches = x.reshape(B, (H // p) * (W // p), p * p * C)  # vec(patch_t), row-major over the patch grid
    expected = patches @ np.asarray(kernel).reshape(p * p * C, D) + np.asarray(bias)  # x_t = V vec(patch_t)
    np.testing.assert_allclose(models.patch_embedding(images, kernel, bias, p), expected, rtol=1e-5, atol=1e-5)
    init_fn, apply_fn, _ = models.vit(4, patch_size=p, d_model=8, num_heads=2, num_layers=1)
    out_shape, params = init_fn(jax.random.key(3), (-1, H, W, C))
    logits, attention = jax.jit(apply_fn, static_argnames="return_attention")(params, images, return_attention=True)
    assert out_shape == (-1, 4) and logits.shape == (B, 4)
    assert len(attention) == 1 and attention[0].shape == (B, 2, 7, 7)  # 6 patches + the class token
    np.testing.assert_allclose(attention[0].sum(-1), 1.0, rtol=1e-5)


def test_encoder_decoder_is_consistent():
    model = models.transformer(7, 9, context_length=8, d_model=8, num_heads=2, num_layers=1, bos_id=0)
    params = model.init(jax.random.key(0))
    src = jax.random.randint(jax.random.key(1), (3, 5), 0, 7)
    out = model.greedy(params, src, 6)
    tgt_in = jnp.concatenate([jnp.zeros((3, 1), out.dtype), out[:, :-1]], axis=1)
    log_probs = model.apply(params, src, tgt_in)
    np.testing.assert_array_equal(out, jnp.argmax(log_probs, axis=-1))  # greedy = teacher-forced argmax on itself
    np.testing.assert_allclose(jnp.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    picked = jnp.take_along_axis(log_probs, out[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(model.sequence_log_prob(params, src, out), picked.sum(1), rtol=1e-5)
    # the decoder is causal: changing the last input token leaves the earlier outputs alone
    changed = model.apply(params, src, tgt_in.at[:, -1].set((tgt_in[:, -1] + 1) % 9))
    np.testing.assert_allclose(changed[:, :-1], log_probs[:, :-1], rtol=1e-5, atol=1e-6)
    weights = model.attention(params, src, tgt_in)
    assert weights.shape == (3, 6, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow  # about 5 s on an idle laptop, a minute on a loaded one
def test_tiny_gpt_learns_a_repeating_sequence():
    init_fn, apply_fn, _ = models.gpt(5, context_length=12, d_model=16, num_heads=2, num_layers=1)
    _, params = init_fn(jax.random.key(0), (-1, 12))
    tokens = jnp.tile(jnp.array([[0, 1, 2, 3, 4, 2]]), (4, 2))
    optimizer = optax.adam(1e-2)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(models.causal_lm_loss, argnums=1)(apply_fn, params, tokens)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for _ in range(60):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    assert losses[0] > 1.0 and losses[-1] < 0.05, losses[::10]


def test_bad_inputs_raise_clearly(small_gpt):
    apply_fn, params, _ = small_gpt
    with pytest.raises(ValueError, match=f"^GPT: expected sequences of at most context_length={CONTEXT}"):
        apply_fn(params, jnp.zeros((1, CONTEXT + 1), jnp.int32))
    with pytest.raises(ValueError, match=rf"^Embedding: expected token ids in \[0, {VOCAB}\)"):
        apply_fn(params, jnp.full((1, 3), VOCAB, jnp.int32))
    with pytest.raises(TypeError, match="^GPT: expected integer token ids"):
        apply_fn(params, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="^gpt_generate: expected prompt length"):
        models.gpt_generate(apply_fn, params, jnp.zeros((1, 4), jnp.int32), CONTEXT - 3, jax.random.key(0))
    with pytest.raises(ValueError, match=rf"^gpt_generate: expected token ids in \[0, {VOCAB}\)"):
        models.gpt_generate(apply_fn, params, jnp.full((1, 2), -1, jnp.int32), 2, jax.random.key(0))
    with pytest.raises(ValueError, match="^gpt_generate: expected the params of models.gpt"):
        models.gpt_generate(apply_fn, {"W": jnp.ones(2)}, jnp.zeros((1, 2), jnp.int32), 2, jax.random.key(0))
    with pytest.raises(ValueError, match="^GPT: expected d_model divisible by num_heads"):
        models.gpt(5, context_length=4, d_model=6, num_heads=4)
    with pytest.raises(NotImplementedError, match="^GPT"):
        models.gpt(5, context_length=4, d_model=4, num_heads=2).kernel(jnp.ones((2, 3)), None, "ntk")
    with pytest.raises(ValueError, match="^mlm_mask: expected mask_id"):
        models.mlm_mask(jax.random.key(0), jnp.zeros((2, 6), jnp.int32), mask_id=11, vocab_size=11)
    init_fn, vit_apply, _ = models.vit(3, patch_size=2, d_model=4, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match="^ViT: expected height and width divisible by patch_size=2"):
        init_fn(jax.random.key(0), (-1, 5, 4, 1))
    _, vit_params = init_fn(jax.random.key(0), (-1, 4, 4, 1))
    with pytest.raises(ValueError, match="^ViT: expected images whose 2x2 patches number 4"):
        vit_apply(vit_params, jnp.ones((1, 6, 4, 1)))
    model = models.transformer(5, 6, context_length=4, d_model=4, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match="^transformer: expected src of at most context_length=4"):
        model.apply(model.init(jax.random.key(0)), jnp.zeros((1, 5), jnp.int32), jnp.zeros((1, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"^transformer: expected tgt_in ids in \[0, 6\)"):
        model.apply(model.init(jax.random.key(0)), jnp.zeros((1, 3), jnp.int32), jnp.full((1, 2), 6, jnp.int32))
