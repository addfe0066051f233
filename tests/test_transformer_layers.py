"""``MultiHeadAttention``, ``PositionalEncoding`` and ``TransformerBlock`` against
independent numpy implementations of the seeds' formulas (float64), plus the
structural properties (permutation equivariance, cache = full recomputation) and
the clear errors. The layer matrix (shape, jit, vmap, grads, float64) is in
test_stax_layers.py via tests/layer_registry.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from jaxdl import stax
from jaxdl.stax.transformer import attention_cache, layer_norm, sinusoidal_encoding


def _np_attention(params, x, kv, mask):
    """Multi-head ``softmax(Q Kᵀ/√d) V`` then ``W_O``, one (batch, head) at a time;
    ``mask[b, t, s]`` False removes key ``s`` (a fully masked row averages uniformly)."""
    W, b = np.asarray(params["W_qkv"]), np.asarray(params["b_qkv"])
    q = np.einsum("btd,dhk->bthk", x, W[:, 0]) + b[0]
    k = np.einsum("bsd,dhk->bshk", kv, W[:, 1]) + b[1]
    v = np.einsum("bsd,dhk->bshk", kv, W[:, 2]) + b[2]
    out = np.zeros(q.shape)
    for i in range(q.shape[0]):
        for h in range(q.shape[2]):
            logits = q[i, :, h] @ k[i, :, h].T / math.sqrt(q.shape[-1])
            logits = np.where(mask[i], logits, -np.inf)
            for t in range(logits.shape[0]):
                row = logits[t]
                a = np.ones_like(row) / row.size if np.all(np.isinf(row)) else np.exp(row - row.max())
                out[i, t, h] = (a / a.sum()) @ v[i, :, h]
    return np.einsum("bthk,hko->bto", out, np.asarray(params["W_o"])) + np.asarray(params["b_o"])


def _with_random_biases(params, key):
    keys = jax.random.split(key, 2)
    return dict(params, b_qkv=jax.random.normal(keys[0], params["b_qkv"].shape),
                b_o=jax.random.normal(keys[1], params["b_o"].shape))


@pytest.mark.parametrize("implementation", ["xla", "reference"])
def test_attention_matches_numpy_softmax_reference(implementation):
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), 4)
        B, T, S, D = 2, 5, 4, 6
        x = jax.random.normal(keys[0], (B, T, D))
        kv = jax.random.normal(keys[1], (B, S, D))
        # causal self-attention with a key-padding mask (the last two keys of example 1 are padding)
        causal = stax.MultiHeadAttention(2, 3, causal=True, implementation=implementation)
        params = _with_random_biases(causal.init(keys[2], (-1, T, D))[1], keys[3])
        padding = np.ones((B, T), bool)
        padding[1, -2:] = False
        expected = _np_attention(params, np.asarray(x), np.asarray(x), np.tril(np.ones((T, T), bool))[None] & padding[:, None, :])
        np.testing.assert_allclose(causal.apply(params, x, mask=jnp.asarray(padding)), expected, rtol=1e-10, atol=1e-10)
        # cross-attention with a full (B, T, S) mask, and the weights returned
        cross = stax.MultiHeadAttention(2, 3, out_dim=3, implementation=implementation)
        params = _with_random_biases(cross.init(keys[2], (-1, T, D))[1], keys[3])
        mask = np.array(jax.random.bernoulli(keys[3], 0.7, (B, T, S)))
        mask[0, 0] = False  # a fully masked query: uniform weights, no NaN
        y = cross.apply(params, x, kv=kv, mask=jnp.asarray(mask))
        np.testing.assert_allclose(y, _np_attention(params, np.asarray(x), np.asarray(kv), mask), rtol=1e-10, atol=1e-10)
        y_ref, weights = cross.apply(params, x, kv=kv, mask=jnp.asarray(mask), return_attention=True)
        np.testing.assert_allclose(y_ref, y, rtol=1e-10, atol=1e-10)
        assert weights.shape == (B, 2, T, S)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(weights[0, :, 0], 1.0 / S, rtol=1e-12)
        w = np.asarray(weights)
        masked_out = ~np.broadcast_to(mask[:, None], w.shape) & np.broadcast_to(mask.any(-1)[:, None, :, None], w.shape)
        assert masked_out.any() and np.all(w[masked_out] < 1e-300)


def test_self_attention_without_positions_is_permutation_equivariant():
    layer = stax.MultiHeadAttention(2, 4)
    _, params = layer.init(jax.random.key(0), (-1, 6, 5))
    x = jax.random.normal(jax.random.key(1), (2, 6, 5))
    perm = np.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_allclose(layer.apply(params, x[:, perm]), layer.apply(params, x)[:, perm], rtol=1e-5, atol=1e-5)
    # a causal layer is not: the first position's output then sees only itself
    causal = stax.MultiHeadAttention(2, 4, causal=True)
    assert not np.allclose(causal.apply(params, x[:, perm]), causal.apply(params, x)[:, perm], atol=1e-3)


def test_cached_decoding_equals_the_full_causal_pass():
    layer = stax.TransformerBlock(2, 3, 8, causal=True)
    _, params = layer.init(jax.random.key(0), (-1, 7, 6))
    x = jax.random.normal(jax.random.key(1), (2, 7, 6))
    full = layer.apply(params, x)
    step = jax.jit(lambda params, x, cache: layer.apply(params, x, cache=cache))
    cache = attention_cache(2, 9, 2, 3)  # longer than needed: the unused tail stays masked
    y_prefix, cache = step(params, x[:, :3], cache)
    steps = [y_prefix]
    for t in range(3, 7):
        y, cache = step(params, x[:, t : t + 1], cache)
        steps.append(y)
    assert int(cache["index"]) == 7
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-5)


def test_sinusoidal_encoding_matches_the_seed_formula():
    # seeds: p_tk = sin(t ω_k) for even k, cos(t ω_k) for odd k, ω_k = C^{k/d}, C = 1/10000
    T, d = 11, 6
    expected = np.empty((T, d))
    for t in range(T):
        for k in range(d):
            omega = (1.0 / 10000.0) ** (k / d)
            expected[t, k] = math.sin(t * omega) if k % 2 == 0 else math.cos(t * omega)
    np.testing.assert_allclose(sinusoidal_encoding(T, d), expected, rtol=1e-14, atol=1e-14)
    layer = stax.PositionalEncoding("sinusoidal", max_length=16)
    _, params = layer.init(jax.random.key(0), (-1, T, d))
    x = jax.random.normal(jax.random.key(1), (2, T, d))
    np.testing.assert_allclose(layer.apply(params, x) - x, np.broadcast_to(expected, (2, T, d)), atol=1e-6)
    np.testing.assert_allclose(layer.apply(params, x[:, :4], offset=5) - x[:, :4], np.broadcast_to(expected[5:9], (2, 4, d)), atol=1e-6)


def _np_layer_norm(x, p, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def _np_mlp(x, p):
    h = x @ np.asarray(p["W_1"]) + np.asarray(p["b_1"])
    h = h * 0.5 * (1.0 + erf(h / math.sqrt(2.0)))  # GELU φ(z) = z Pr(Z ≤ z)
    return h @ np.asarray(p["W_2"]) + np.asarray(p["b_2"])


@pytest.mark.parametrize("pre_ln", [True, False])
def test_transformer_block_matches_numpy_composition(pre_ln):
    with jax.enable_x64(True):
        B, T, D = 2, 4, 6
        block = stax.TransformerBlock(2, 3, 7, pre_ln=pre_ln, causal=True)
        _, params = block.init(jax.random.key(0), (-1, T, D))
        params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(9), a.shape), params)
        x = np.asarray(jax.random.normal(jax.random.key(1), (B, T, D)))
        causal = np.broadcast_to(np.tril(np.ones((T, T), bool)), (B, T, T))
        attn = lambda h: _np_attention(params["attn"], h, h, causal)
        if pre_ln:
            h = x + attn(_np_layer_norm(x, params["ln_1"]))
            expected = h + _np_mlp(_np_layer_norm(h, params["ln_2"]), params["mlp"])
        else:
            h = _np_layer_norm(x + attn(x), params["ln_1"])
            expected = _np_layer_norm(h + _np_mlp(h, params["mlp"]), params["ln_2"])
        np.testing.assert_allclose(block.apply(params, jnp.asarray(x)), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_layer_norm_derivatives_match_finite_differences(eps):
    # layer_norm has a hand-written JVP (closed form); reverse mode transposes it
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), 5)
        x = np.asarray(3.0 + 2.0 * jax.random.normal(keys[0], (2, 3, 5)))
        p = {"scale": jax.random.normal(keys[1], (5,)), "bias": jax.random.normal(keys[2], (5,))}
        ct, t = np.asarray(jax.random.normal(keys[3], x.shape)), np.asarray(jax.random.normal(keys[4], x.shape))
        h = 1e-6
        np.testing.assert_allclose(layer_norm(jnp.asarray(x), p, eps), _np_layer_norm(x, p, eps), rtol=1e-12, atol=1e-12)
        # forward mode: the directional derivative along t
        fd_jvp = (_np_layer_norm(x + h * t, p, eps) - _np_layer_norm(x - h * t, p, eps)) / (2 * h)
        jvp = jax.jvp(lambda z: layer_norm(z, p, eps), (jnp.asarray(x),), (jnp.asarray(t),))[1]
        np.testing.assert_allclose(jvp, fd_jvp, rtol=1e-6, atol=1e-7)
        # reverse mode: the gradient of <ct, layer_norm(x)>, one coordinate at a time
        fd_grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            e = np.zeros_like(x)
            e[i] = h
            fd_grad[i] = np.sum((_np_layer_norm(x + e, p, eps) - _np_layer_norm(x - e, p, eps)) * ct) / (2 * h)
        grad = jax.grad(lambda z: jnp.sum(layer_norm(z, p, eps) * ct))(jnp.asarray(x))
        np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-7)
        # second order (forward over reverse) is the rule differentiated again: symmetric Hessian
        hess = jax.hessian(lambda z: jnp.sum(jnp.sin(layer_norm(z, p, eps)) * ct[0, 0]))(jnp.asarray(x[0, 0]))
        np.testing.assert_allclose(hess, hess.T, rtol=1e-10, atol=1e-12)


def test_dropout_only_with_a_key():
    block = stax.TransformerBlock(2, 2, 8, dropout_rate=0.5)
    _, params = block.init(jax.random.key(0), (-1, 5, 4))
    x = jax.random.normal(jax.random.key(1), (3, 5, 4))
    apply = jax.jit(block.apply, static_argnames="train")
    plain = apply(params, x)
    a = apply(params, x, key=jax.random.key(2))
    b = apply(params, x, key=jax.random.key(3))
    assert not np.allclose(a, plain) and not np.allclose(a, b)
    np.testing.assert_allclose(apply(params, x, key=jax.random.key(2)), a)
    np.testing.assert_allclose(apply(params, x, key=jax.random.key(2), train=False), plain)


def test_bad_inputs_raise_clearly():
    mha = stax.MultiHeadAttention(2, 3, causal=True)
    _, params = mha.init(jax.random.key(0), (-1, 5, 4))
    x = jnp.ones((2, 5, 4))
    with pytest.raises(ValueError, match=r"^MultiHeadAttention: expected a mask of shape \(2, 5\)"):
        mha.apply(params, x, mask=jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match="^MultiHeadAttention: expected a mask"):
        mha.apply(params, x, mask=jnp.ones((2, 1, 5, 5), bool))
    with pytest.raises(TypeError, match="^MultiHeadAttention: expected a boolean mask"):
        mha.apply(params, x, mask=jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="^MultiHeadAttention: expected an input with 4 features"):
        mha.apply(params, jnp.ones((2, 5, 3)))
    with pytest.raises(TypeError, match="^MultiHeadAttention: expected an input of a real floating dtype"):
        mha.apply(params, jnp.ones((2, 5, 4), jnp.int32))
    with pytest.raises(ValueError, match="^MultiHeadAttention: expected kv=None with causal=True"):
        mha.apply(params, x, kv=x)
    with pytest.raises(ValueError, match="^MultiHeadAttention: expected the cache to have room for 5"):
        mha.apply(params, x, cache=attention_cache(2, 4, 2, 3))
    cross = stax.MultiHeadAttention(2, 3)
    with pytest.raises(ValueError, match="^MultiHeadAttention: expected kv with 4 features"):
        cross.apply(params, x, kv=jnp.ones((2, 3, 5)))
    pos = stax.PositionalEncoding("learned", max_length=4)
    with pytest.raises(ValueError, match="^PositionalEncoding: expected a sequence of at most max_length=4"):
        pos.init(jax.random.key(0), (-1, 5, 3))
    _, p = pos.init(jax.random.key(0), (-1, 4, 3))
    with pytest.raises(ValueError, match="^PositionalEncoding: expected a sequence of at most max_length=4"):
        pos.apply(p, jnp.ones((1, 5, 3)))
    with pytest.raises(ValueError, match="^PositionalEncoding: expected offset"):
        pos.apply(p, jnp.ones((1, 2, 3)), offset=3)
    with pytest.raises(ValueError, match="^PositionalEncoding: expected kind"):
        stax.PositionalEncoding("rotary")
    with pytest.raises(ValueError, match="^TransformerBlock: expected dropout_rate"):
        stax.TransformerBlock(2, 2, 4, dropout_rate=1.0)
    block = stax.TransformerBlock(2, 2, 4, cross_attention=True)
    _, pb = block.init(jax.random.key(0), (-1, 5, 4))
    with pytest.raises(ValueError, match="^TransformerBlock: expected kv="):
        block.apply(pb, x)
    with pytest.raises(NotImplementedError, match="^MultiHeadAttention"):
        mha.kernel(x, None, "nngp")
