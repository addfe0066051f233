"""Forward passes of ``GlobalSelfAttention`` and ``Aggregate`` against numpy references.

The generic layer matrix (tests/test_stax_layers.py, entries in layer_registry.py)
covers shape, jit, vmap, gradients and float64 for attention; ``Aggregate`` needs
its ``pattern=`` keyword, so those properties are checked here. The numpy
references are written from the formulas (loops over heads, samples and edges);
tests/test_stax_vs_nt_forward.py compares both layers with neural-tangents.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax

KEY = jax.random.key(0)


# --- numpy references ------------------------------------------------------------------


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


_MECHANISMS = {"SOFTMAX": _softmax, "IDENTITY": lambda z: z, "ABS": np.abs, "RELU": lambda z: np.maximum(z, 0)}


def attention_reference(params, x, *, linear_scaling=True, mechanism="SOFTMAX", QK_std=1.0, OV_std=1.0,
                        b_std=None, pos_emb=None, val_pos_emb=False):
    """x: f[n, T, C] (channels last); pos_emb: None or ("SUM"|"CONCAT", f[T, E])."""
    x = np.asarray(x, np.float64)
    x_keys, x_values = x, x
    if pos_emb is not None:
        kind, emb = pos_emb
        emb = np.broadcast_to(emb, x.shape[:2] + emb.shape[-1:])
        x_keys = x + emb if kind == "SUM" else np.concatenate([x, emb], axis=-1)
        x_values = x_keys if val_pos_emb else x
    W_k = np.asarray(params["W_key"], np.float64)
    W_q = W_k if linear_scaling else np.asarray(params["W_query"], np.float64)
    W_v, W_o = np.asarray(params["W_value"], np.float64), np.asarray(params["W_out"], np.float64)
    n_heads, n_chan_in, n_chan_key = W_k.shape
    n_chan_val = W_v.shape[-1]
    scale = n_chan_in * (n_chan_key if linear_scaling else math.sqrt(n_chan_key))
    out = np.zeros(x.shape[:2] + (W_o.shape[-1],))
    for i in range(x.shape[0]):
        heads = np.zeros((x.shape[1], n_chan_val, n_heads))
        for h in range(n_heads):
            logits = QK_std / scale * (x_keys[i] @ W_q[h]) @ (x_keys[i] @ W_k[h]).T
            heads[:, :, h] = _MECHANISMS[mechanism](logits) @ (x_values[i] @ W_v[h])
        out[i] = heads.reshape(x.shape[1], -1) @ W_o
    out *= OV_std / math.sqrt(n_chan_val * n_heads * x_values.shape[-1])
    if b_std is not None:
        out = out + b_std * np.asarray(params["b"], np.float64).reshape(1, 1, -1)
    return out


def aggregate_dense_reference(x, adjacency):
    """out[n, w, c] = sum_v A[n, v, w] x[n, v, c] (x: f[n, V, C], A: f[n, V, V])."""
    out = np.zeros_like(x)
    for n in range(x.shape[0]):
        for v in range(x.shape[1]):
            for w in range(x.shape[1]):
                out[n, w] += adjacency[n, v, w] * x[n, v]
    return out


def aggregate_edges_reference(x, edges):
    """Every edge (tail, head) adds x[n, tail] to head; negative heads are padding."""
    out = np.zeros_like(x)
    for n in range(x.shape[0]):
        for tail, head in edges[n]:
            if head >= 0:
                out[n, head] += x[n, tail]
    return out


# --- GlobalSelfAttention -----------------------------------------------------------------


ATTENTION_CASES = {
    "softmax": dict(layer=dict(), ref=dict()),
    "relu_stds_bias": dict(
        layer=dict(W_key_std=1.3, W_query_std=0.9, W_value_std=0.8, W_out_std=1.2, b_std=0.3, attention_mechanism="RELU"),
        ref=dict(QK_std=1.3 * 0.9, OV_std=0.8 * 1.2, b_std=0.3, mechanism="RELU"),
    ),
    "sqrt_scaling_abs": dict(
        layer=dict(linear_scaling=False, attention_mechanism="ABS"), ref=dict(linear_scaling=False, mechanism="ABS")
    ),
    "sum_embeddings": dict(layer=dict(pos_emb_type="SUM", W_pos_emb_std=0.5), ref=dict(pos_emb="SUM")),
    "concat_embeddings_values": dict(
        layer=dict(pos_emb_type="CONCAT", n_chan_pos_emb=2, val_pos_emb=True), ref=dict(pos_emb="CONCAT", val_pos_emb=True)
    ),
}


@pytest.mark.parametrize("case", ATTENTION_CASES.values(), ids=ATTENTION_CASES.keys())
def test_attention_matches_numpy_reference(case):
    layer = stax.GlobalSelfAttention(5, 4, 3, 2, **case["layer"])
    x = jax.random.normal(KEY, (3, 7, 3))
    _, params = layer.init(jax.random.key(1), x.shape)
    ref = dict(case["ref"])
    if "pos_emb" in ref:
        emb = case["layer"].get("W_pos_emb_std", 1.0) * np.asarray(params["pos_emb"], np.float64)[0]
        ref["pos_emb"] = (ref["pos_emb"], emb)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        got = layer.apply(params64, jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(got, attention_reference(params, x, **ref), rtol=1e-10, atol=1e-12)


def test_attention_decayed_embeddings_are_correlated_by_the_cholesky_factor():
    decay = lambda d: jnp.exp(-d / 3)  # noqa: E731
    layer = stax.GlobalSelfAttention(4, 3, 3, 2, pos_emb_type="SUM", pos_emb_decay_fn=decay, pos_emb_p_norm=1)
    x = jax.random.normal(KEY, (2, 6, 3))
    _, params = layer.init(jax.random.key(1), x.shape)
    distance = np.abs(np.arange(6)[:, None] - np.arange(6)[None, :])
    root = np.linalg.cholesky(np.exp(-distance / 3))
    emb = root @ np.asarray(params["pos_emb"], np.float64)[0]
    with jax.enable_x64(True):
        got = layer.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params), jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(got, attention_reference(params, x, pos_emb=("SUM", emb)), rtol=1e-9, atol=1e-12)


def test_attention_is_permutation_equivariant_without_embeddings():
    layer = stax.GlobalSelfAttention(5, 4, 3, 2, b_std=0.2)
    x = jax.random.normal(KEY, (2, 6, 5, 3))  # 2-D positions
    _, params = layer.init(jax.random.key(1), x.shape)
    params_flat = {**params, "b": params["b"].reshape(1, 1, 5)}
    flat = x.reshape(2, 30, 3)
    perm = jax.random.permutation(jax.random.key(2), 30)
    out = layer.apply(params_flat, flat)
    np.testing.assert_allclose(layer.apply(params_flat, flat[:, perm]), out[:, perm], rtol=2e-5, atol=2e-6)
    # Attention over 2-D positions is attention over the flattened positions.
    np.testing.assert_allclose(layer.apply(params, x).reshape(2, 30, 5), out, rtol=2e-5, atol=2e-6)


def test_attention_bad_arguments_raise_with_the_layer_name():
    for make, message in [
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 0), "GlobalSelfAttention: expected n_heads"),
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 2, attention_mechanism="gelu"), "attention_mechanism"),
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 2, pos_emb_type="ROTARY"), "pos_emb_type"),
        (lambda: stax.GlobalSelfAttention(4, 4, 4, 2, W_key_std=-1.0), "W_key_std"),
    ]:
        with pytest.raises((ValueError, TypeError), match="GlobalSelfAttention: ") as error:
            make()
        assert message in str(error.value)
    layer = stax.GlobalSelfAttention(4, 4, 4, 2, pos_emb_type="SUM", n_chan_pos_emb=5)
    with pytest.raises(ValueError, match="GlobalSelfAttention: pos_emb_type='SUM'.*n_chan_pos_emb"):
        layer.init(KEY, (-1, 6, 3))
    _, params = stax.GlobalSelfAttention(4, 4, 4, 2, pos_emb_type="CONCAT").init(KEY, (-1, 6, 3))
    with pytest.raises(ValueError, match="GlobalSelfAttention: expected inputs with spatial shape"):
        stax.GlobalSelfAttention(4, 4, 4, 2, pos_emb_type="CONCAT").apply(params, jnp.ones((2, 5, 3)))


# --- Aggregate ----------------------------------------------------------------------------


def _graph(key, n, vertices):
    k1, k2 = jax.random.split(key)
    return jax.random.bernoulli(k1, 0.4, (n, vertices, vertices)) * jax.random.uniform(k2, (n, vertices, vertices))


def test_aggregate_dense_matches_numpy_reference():
    x = jax.random.normal(KEY, (3, 6, 4))
    A = _graph(jax.random.key(1), 3, 6)
    _, apply_fn, _ = stax.Aggregate()
    np.testing.assert_allclose(apply_fn({}, x, pattern=A), aggregate_dense_reference(np.asarray(x), np.asarray(A)),
                               rtol=1e-5, atol=1e-6)
    # pattern=None is the identity graph.
    np.testing.assert_array_equal(apply_fn({}, x), x)


def test_aggregate_over_two_axes_with_channels_first():
    x = jax.random.normal(KEY, (2, 3, 4, 5))  # N C H W
    A = _graph(jax.random.key(1), 2, 20).reshape(2, 4, 5, 4, 5)
    _, apply_fn, _ = stax.Aggregate(aggregate_axis=(2, 3), channel_axis=1)
    got = apply_fn({}, x, pattern=A)
    flat = np.asarray(x).reshape(2, 3, 20).transpose(0, 2, 1)
    ref = aggregate_dense_reference(flat, np.asarray(A).reshape(2, 20, 20)).transpose(0, 2, 1).reshape(x.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_aggregate_sparse_matches_edge_loop_and_dense():
    x = jax.random.normal(KEY, (3, 6, 4))
    edges = jax.random.randint(jax.random.key(1), (3, 10, 2), 0, 6)
    edges = edges.at[:, -2:, 1].set(-1)  # padding edges
    _, apply_sparse, _ = stax.Aggregate(implementation="SPARSE")
    got = apply_sparse({}, x, pattern=edges)
    np.testing.assert_allclose(got, aggregate_edges_reference(np.asarray(x), np.asarray(edges)), rtol=1e-5, atol=1e-6)
    adjacency = np.zeros((3, 6, 6))
    for n in range(3):
        for tail, head in np.asarray(edges[n]):
            if head >= 0:
                adjacency[n, tail, head] += 1
    _, apply_dense, _ = stax.Aggregate()
    np.testing.assert_allclose(got, apply_dense({}, x, pattern=jnp.asarray(adjacency, jnp.float32)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_aggregate_jit_vmap_grad_float64(implementation):
    x = jax.random.normal(KEY, (3, 6, 4))
    if implementation == "DENSE":
        pattern = _graph(jax.random.key(1), 3, 6)
    else:
        pattern = jax.random.randint(jax.random.key(1), (3, 9, 2), 0, 6)
    _, apply_fn, _ = stax.Aggregate(implementation=implementation)
    eager = apply_fn({}, x, pattern=pattern)
    np.testing.assert_allclose(jax.jit(apply_fn)({}, x, pattern=pattern), eager, rtol=1e-6, atol=1e-6)
    single = lambda xi, pi: apply_fn({}, xi[None], pattern=pi[None])[0]  # noqa: E731
    np.testing.assert_allclose(jax.vmap(single)(x, pattern), eager, rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda z: jnp.sum(jnp.tanh(apply_fn({}, z, pattern=pattern))))(x)
    assert np.all(np.isfinite(grad))
    with jax.enable_x64(True):
        pattern64 = pattern.astype(jnp.float64) if implementation == "DENSE" else pattern
        out = apply_fn({}, x.astype(jnp.float64), pattern=pattern64)
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(out, eager, rtol=1e-5, atol=1e-6)


def test_aggregate_bad_input_raises_with_the_layer_name():
    x = jnp.ones((3, 6, 4))
    _, apply_dense, _ = stax.Aggregate()
    with pytest.raises(ValueError, match="Aggregate: expected a dense pattern of shape"):
        apply_dense({}, x, pattern=jnp.ones((3, 5, 5)))
    _, apply_sparse, _ = stax.Aggregate(implementation="SPARSE")
    with pytest.raises(TypeError, match="Aggregate: expected an integer edge list"):
        apply_sparse({}, x, pattern=jnp.ones((3, 4, 2)))
    with pytest.raises(ValueError, match="Aggregate: expected a SPARSE pattern of shape"):
        apply_sparse({}, x, pattern=jnp.ones((3, 4, 3), jnp.int32))
    with pytest.raises(ValueError, match="Aggregate: expected a pattern for 3 samples"):
        apply_sparse({}, x, pattern=jnp.ones((2, 4, 2), jnp.int32))
    with pytest.raises(ValueError, match="Aggregate: expected aggregate_axis to avoid"):
        stax.Aggregate(aggregate_axis=2).init(KEY, (-1, 6, 4))
    with pytest.raises(ValueError, match="Aggregate: expected implementation"):
        stax.Aggregate(implementation="CSR")
    with pytest.raises(TypeError, match="Aggregate: expected an array"):
        apply_dense({}, [x, x], pattern=None)
