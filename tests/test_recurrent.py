"""Recurrent layers (``jaxdl.stax.recurrent``) and truncated BPTT (``jaxdl.train.tbptt``).

Each numerical check compares against something computed another way: a plain
NumPy loop over time with the gate matrices cut out of the fused params,
Jacobians for causality, prefix/suffix runs for ``Bidirectional``, finite
differences for BPTT, and per-chunk gradients with constant carries for tBPTT.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from scipy.special import erf as np_erf

from jaxdl import stax
from jaxdl.train import make_tbptt_step, truncated_bptt_loss

B, T, F = 2, 6, 3


def _x(shape=(B, T, F), key=1, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(key), shape, dtype)


def _init(layer, shape=(-1, T, F), key=0):
    return layer.init(jax.random.key(key), shape)[1]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --- gate equations against a NumPy loop --------------------------------------


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_simple_rnn_matches_numpy_loop(parameterization):
    W_std, U_std, b_std, H = 1.3, 0.7, 0.4, 4
    layer = stax.SimpleRNN(H, stax.Erf(), W_std, U_std, b_std, return_sequences=True, parameterization=parameterization)
    params = _init(layer)
    x, h0 = _x(), np.asarray(_x((B, H), key=2))
    out = layer.apply(params, x, initial_state=h0)

    W, U, b = (np.asarray(params[k], np.float64) for k in ("W", "U", "b"))
    if parameterization == "ntk":
        W, U, b = W_std / np.sqrt(H) * W, U_std / np.sqrt(F) * U, b_std * b
    h, expected = h0.astype(np.float64), []
    for t in range(T):
        h = np_erf(h @ W + np.asarray(x[:, t], np.float64) @ U + b)
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=1e-5, atol=1e-5)


def test_lstm_matches_numpy_loop():
    H = 4
    layer = stax.LSTM(H, return_sequences=True)
    params = jax.tree.map(lambda a: a + 0.1 * _x(a.shape, key=5), _init(layer))  # nonzero biases everywhere
    x, h0, c0 = _x(), np.asarray(_x((B, H), key=2)), np.asarray(_x((B, H), key=3))
    (out, (h_T, c_T)) = layer.apply(params, x, initial_state=(h0, c0), return_state=True)

    W_x, W_h, b = (np.asarray(params[k], np.float64) for k in ("W_x", "W_h", "b"))
    block = {gate: slice(j * H, (j + 1) * H) for j, gate in enumerate("ifgo")}
    h, c, expected = h0.astype(np.float64), c0.astype(np.float64), []
    for t in range(T):
        x_t = np.asarray(x[:, t], np.float64)
        pre = {g: x_t @ W_x[:, s] + h @ W_h[:, s] + b[s] for g, s in block.items()}
        c = _sigmoid(pre["f"]) * c + _sigmoid(pre["i"]) * np.tanh(pre["g"])
        h = _sigmoid(pre["o"]) * np.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_T, h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c_T, c, rtol=1e-5, atol=1e-5)


def test_gru_matches_numpy_loop():
    H = 4
    layer = stax.GRU(H, return_sequences=True)
    params = jax.tree.map(lambda a: a + 0.1 * _x(a.shape, key=5), _init(layer))
    x, h0 = _x(), np.asarray(_x((B, H), key=2))
    out = layer.apply(params, x, initial_state=h0)

    W_x, W_h, b = (np.asarray(params[k], np.float64) for k in ("W_x", "W_h", "b"))
    u_, r_, c_ = (slice(j * H, (j + 1) * H) for j in range(3))
    h, expected = h0.astype(np.float64), []
    for t in range(T):
        x_t = np.asarray(x[:, t], np.float64)
        u = _sigmoid(x_t @ W_x[:, u_] + h @ W_h[:, u_] + b[u_])
        r = _sigmoid(x_t @ W_x[:, r_] + h @ W_h[:, r_] + b[r_])
        candidate = np.tanh(x_t @ W_x[:, c_] + (r * h) @ W_h[:, c_] + b[c_])
        h = (1 - u) * h + u * candidate
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=1e-5, atol=1e-5)


def test_gated_init_forget_bias_and_orthogonal_recurrent_weights():
    H = 5
    params = _init(stax.LSTM(H, forget_bias=1.0))
    np.testing.assert_array_equal(params["b"][H : 2 * H], np.ones(H))
    np.testing.assert_array_equal(np.delete(np.asarray(params["b"]), np.s_[H : 2 * H]), np.zeros(3 * H))
    for W_h in (params["W_h"], _init(stax.GRU(H))["W_h"]):
        np.testing.assert_allclose(W_h @ W_h.T, np.eye(H), atol=1e-5)  # orthonormal rows
    W_x = _init(stax.GRU(20), shape=(-1, T, 200))["W_x"]  # 12000 entries: std error of the variance 7e-5
    assert abs(float(jnp.var(W_x)) - 1 / 200) < 5e-4  # LeCun: variance 1/fan_in


# --- structure: causality, bidirectional, states ----------------------------------

UNIDIRECTIONAL = {
    "SimpleRNN": lambda: stax.SimpleRNN(4, b_std=0.3, return_sequences=True),
    "SimpleRNN_tanh_standard": lambda: stax.SimpleRNN(
        4, stax.Tanh(), return_sequences=True, parameterization="standard"
    ),
    "LSTM": lambda: stax.LSTM(4, return_sequences=True),
    "GRU": lambda: stax.GRU(4, return_sequences=True),
}


@pytest.mark.parametrize("name", sorted(UNIDIRECTIONAL))
def test_output_at_t_depends_only_on_inputs_up_to_t(name):
    layer = UNIDIRECTIONAL[name]()
    params = _init(layer)
    x = _x((1, T, F))
    jac = jax.jacobian(lambda x: layer.apply(params, x))(x)[0, :, :, 0, :, :]  # (t, H, s, F)
    influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))  # (t, s)
    future = np.triu(np.ones((T, T), bool), k=1)
    assert np.all(influence[future] == 0.0)
    assert np.all(influence[~future] > 0.0)


def test_embedding_is_a_lookup_and_causal():
    layer = stax.Embedding(7, 3)
    params = _init(layer, shape=(-1, 5))
    ids = jnp.array([[0, 6, 2, 2, 5], [1, 1, 3, 4, 0]])
    one_hot = np.eye(7)[np.asarray(ids)]
    np.testing.assert_allclose(layer.apply(params, ids), one_hot @ np.asarray(params["E"]), rtol=1e-6)
    changed = ids.at[:, 3:].set(6)
    np.testing.assert_array_equal(layer.apply(params, ids)[:, :3], layer.apply(params, changed)[:, :3])


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_is_forward_prefix_and_backward_suffix(merge):
    """Position t: the forward layer's last state on x[:, :t+1] and the backward
    layer's last state on the reversed suffix x[:, t:]."""
    inner = stax.GRU(3, return_sequences=True)
    layer = stax.Bidirectional(inner, merge=merge)
    params = _init(layer)
    x = _x()
    out = layer.apply(params, x)
    last = stax.GRU(3)  # same params, last state only
    for t in range(T):
        fwd = last.apply(params["forward"], x[:, : t + 1])
        bwd = last.apply(params["backward"], x[:, t:][:, ::-1])
        expected = jnp.concatenate([fwd, bwd], -1) if merge == "concat" else fwd + bwd
        np.testing.assert_allclose(out[:, t], expected, rtol=1e-5, atol=1e-6)
    assert out.shape == (B, T, 6 if merge == "concat" else 3)


def test_bidirectional_last_states_and_params_per_direction():
    layer = stax.Bidirectional(stax.LSTM(3))
    params = _init(layer)
    assert not np.allclose(params["forward"]["W_x"], params["backward"]["W_x"])
    x = _x()
    out, (state_f, state_b) = layer.apply(params, x, return_state=True)
    np.testing.assert_allclose(out[:, :3], stax.LSTM(3).apply(params["forward"], x), rtol=1e-6)
    np.testing.assert_allclose(out[:, 3:], stax.LSTM(3).apply(params["backward"], x[:, ::-1]), rtol=1e-6)
    np.testing.assert_allclose(out[:, 3:], state_b[0], rtol=1e-6)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_initial_state_continues_a_split_sequence(kind):
    """Running x[:, :3] then x[:, 3:] from the returned state = running all of x."""
    layer = getattr(stax, kind)(4, return_sequences=True)
    params = _init(layer)
    x = _x()
    whole, whole_state = layer.apply(params, x, return_state=True)
    first, state = layer.apply(params, x[:, :3], return_state=True)
    second, end_state = layer.apply(params, x[:, 3:], initial_state=state, return_state=True)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), end_state, whole_state)
    # The default initial state is zero, and a nonzero one changes the output.
    zero = stax.zero_state(layer, B)
    np.testing.assert_allclose(layer.apply(params, x, initial_state=zero), whole, rtol=1e-6)
    assert not np.allclose(second, whole[:, :3])


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_last_state_is_last_step_of_sequence(kind):
    seq, last = getattr(stax, kind)(4, return_sequences=True), getattr(stax, kind)(4)
    params = _init(seq)
    jax.tree.map(np.testing.assert_array_equal, params, _init(last))
    x = _x()
    assert seq.init(jax.random.key(0), (-1, T, F))[0] == (-1, T, 4)
    assert last.init(jax.random.key(0), (-1, T, F))[0] == (-1, 4)
    np.testing.assert_allclose(last.apply(params, x), seq.apply(params, x)[:, -1], rtol=1e-6)


def test_two_lstms_stack_through_serial():
    model = stax.serial(stax.Embedding(10, 3), stax.LSTM(5, return_sequences=True), stax.LSTM(4), stax.Dense(2))
    out_shape, params = model.init(jax.random.key(0), (-1, T))
    assert out_shape == (-1, 2)
    ids = jax.random.randint(jax.random.key(1), (B, T), 0, 10)
    out = model.apply(params, ids)
    p = [params[k] for k in ("Embedding_0", "LSTM_1", "LSTM_2", "Dense_3")]
    by_hand = stax.Dense(2).apply(
        p[3], stax.LSTM(4).apply(p[2], stax.LSTM(5, True).apply(p[1], stax.Embedding(10, 3).apply(p[0], ids)))
    )
    np.testing.assert_allclose(out, by_hand, rtol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, ids) ** 2))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


# --- BPTT gradients ----------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: stax.SimpleRNN(3, stax.Tanh(), W_std=1.5, b_std=0.2, return_sequences=True),
        lambda: stax.LSTM(3, return_sequences=True),
        lambda: stax.GRU(3),
    ],
    ids=["SimpleRNN", "LSTM", "GRU"],
)
def test_bptt_gradients_match_finite_differences(build):
    with jax.enable_x64(True):
        layer = build()
        params = _init(layer, shape=(-1, 5, 2))
        x = _x((2, 5, 2), dtype=jnp.float64)
        h0 = 0.5 * _x((2, 3), key=4, dtype=jnp.float64)
        state = (h0, -h0) if layer.name == "LSTM" else h0

        def loss(params, x, state):
            return jnp.sum(jnp.sin(layer.apply(params, x, initial_state=state)))

        check_grads(loss, (params, x, state), order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)


# --- truncated BPTT -----------------------------------------------------------

H_TB = 4


def _tbptt_model():
    """A GRU reading a scalar stream and a linear read-out at every step."""
    rnn = stax.GRU(H_TB, return_sequences=True)
    head = stax.Dense(1)
    params = {"rnn": _init(rnn, shape=(-1, T, 1)), "head": head.init(jax.random.key(3), (-1, T, H_TB))[1]}

    def chunk_loss(params, carry, x, y):
        seq, carry = rnn.apply(params["rnn"], x, initial_state=carry, return_state=True)
        return jnp.mean((head.apply(params["head"], seq) - y) ** 2), carry

    return rnn, params, chunk_loss


def _stream(length, key=7):
    x = jax.random.normal(jax.random.key(key), (B, length, 1))
    y = jnp.concatenate([jnp.zeros((B, 2, 1)), x[:, :-2]], axis=1)  # target: the input 2 steps ago
    return x, y


def test_tbptt_with_one_chunk_is_full_bptt():
    rnn, params, chunk_loss = _tbptt_model()
    x, y = _stream(12)
    carry = stax.zero_state(rnn, B)
    full = jax.grad(lambda p: chunk_loss(p, carry, x, y)[0])(params)
    truncated = jax.grad(lambda p: truncated_bptt_loss(chunk_loss, p, x, y, carry, 12)[0])(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), truncated, full)


@pytest.mark.parametrize("chunk_length", [4, 5])  # 12 = 3 * 4; 12 = 2 * 5 + 2 (a short last chunk)
def test_tbptt_gradient_is_sum_of_chunk_gradients_with_constant_carries(chunk_length):
    rnn, params, chunk_loss = _tbptt_model()
    x, y = _stream(12)
    carry0 = stax.zero_state(rnn, B)
    (loss, final), grads = jax.value_and_grad(
        lambda p: truncated_bptt_loss(chunk_loss, p, x, y, carry0, chunk_length), has_aux=True
    )(params)

    # By hand: a forward pass gives the carry entering each chunk (plain arrays, no
    # gradient path); each chunk's gradient treats it as a constant input.
    bounds = list(range(0, 12, chunk_length)) + [12]
    expected_grads = jax.tree.map(jnp.zeros_like, params)
    expected_loss, carry = 0.0, carry0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        xc, yc, c_in = x[:, start:stop], y[:, start:stop], np.asarray(carry)
        weight = (stop - start) / 12
        g = jax.grad(lambda p: chunk_loss(p, c_in, xc, yc)[0])(params)
        expected_grads = jax.tree.map(lambda a, b: a + weight * b, expected_grads, g)
        chunk_value, carry = chunk_loss(params, c_in, xc, yc)
        expected_loss += weight * chunk_value
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(final, carry, rtol=1e-5, atol=1e-7)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grads, expected_grads)
    # ... and truncation matters: the full-BPTT gradient of the same loss differs.
    full = jax.grad(lambda p: chunk_loss(p, carry0, x, y)[0])(params)
    assert not np.allclose(full["rnn"]["W_h"], grads["rnn"]["W_h"], rtol=1e-3)


def test_tbptt_step_with_gradient_clipping_learns_a_delayed_copy():
    """Windows of a long stream, the carry passed on, optax clipping + Adam: the
    model learns to output the input from 2 steps back."""
    rnn, params, chunk_loss = _tbptt_model()
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-2))
    step = make_tbptt_step(chunk_loss, optimizer, chunk_length=8)
    opt_state, carry = optimizer.init(params), stax.zero_state(rnn, B)
    x, y = _stream(16 * 150, key=11)
    losses = []
    for window in range(150):
        sl = slice(16 * window, 16 * (window + 1))
        params, opt_state, carry, loss = step(params, opt_state, carry, x[:, sl], y[:, sl])
        losses.append(float(loss))
    assert np.mean(losses[:10]) > 0.5  # the target has variance 1
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])


def test_tbptt_rejects_bad_arguments():
    rnn, params, chunk_loss = _tbptt_model()
    x, y = _stream(6)
    with pytest.raises(ValueError, match="^truncated_bptt_loss: expected chunk_length"):
        truncated_bptt_loss(chunk_loss, params, x, y, stax.zero_state(rnn, B), 0)
    with pytest.raises(ValueError, match="^truncated_bptt_loss: expected one time length"):
        truncated_bptt_loss(chunk_loss, params, x, y[:, :5], stax.zero_state(rnn, B), 2)
    with pytest.raises(TypeError, match="^make_tbptt_step: expected an optax"):
        make_tbptt_step(chunk_loss, "adam", 2)


# --- bad input and the kernel --------------------------------------------------


def test_bad_inputs_raise_naming_the_layer():
    rnn = stax.SimpleRNN(4)
    params = _init(rnn)
    with pytest.raises(ValueError, match=r"^SimpleRNN: expected an input of shape \(batch, time, features\)"):
        rnn.apply(params, _x((B, F)))
    with pytest.raises(ValueError, match="^SimpleRNN: expected 3 features"):
        rnn.apply(params, _x((B, T, 2)))
    with pytest.raises(ValueError, match=r"^SimpleRNN: expected initial_state of shape \(2, 4\)"):
        rnn.apply(params, _x(), initial_state=jnp.zeros((B, 5)))
    with pytest.raises(TypeError, match="^SimpleRNN: expected activation to be an elementwise stax layer"):
        stax.SimpleRNN(4, activation=stax.Dense(3))
    with pytest.raises(TypeError, match="^SimpleRNN: expected activation"):
        stax.SimpleRNN(4, activation=jnp.tanh)
    with pytest.raises(ValueError, match="^SimpleRNN: expected parameterization"):
        stax.SimpleRNN(4, parameterization="bogus")
    with pytest.raises(ValueError, match=r"^LSTM: expected input_shape \(batch, time, features\)"):
        stax.LSTM(3).init(jax.random.key(0), (-1, F))
    with pytest.raises(TypeError, match=r"^LSTM: expected initial_state to be a pair \(h_0, c_0\)"):
        stax.LSTM(3).apply(_init(stax.LSTM(3)), _x(), initial_state=jnp.zeros((B, 3)))
    with pytest.raises(ValueError, match="^GRU: expected hidden to be a positive int"):
        stax.GRU(0)
    with pytest.raises(TypeError, match="^GRU: expected return_sequences to be a bool"):
        stax.GRU(3, return_sequences="yes")
    with pytest.raises(ValueError, match="^Bidirectional: expected merge"):
        stax.Bidirectional(stax.GRU(3), merge="max")
    with pytest.raises(TypeError, match="^Bidirectional: expected a stax layer"):
        stax.Bidirectional("GRU")
    with pytest.raises(TypeError, match="^zero_state: expected a SimpleRNN, LSTM, GRU or Bidirectional"):
        stax.zero_state(stax.Dense(3), B)
    with pytest.raises(ValueError, match="^LSTM: expected an unmasked input"):
        stax.serial(stax.Dense(3), stax.LSTM(3)).apply(
            stax.serial(stax.Dense(3), stax.LSTM(3)).init(jax.random.key(0), (-1, T, F))[1], _x(), mask_constant=0.0
        )
    with pytest.raises(ValueError, match=r"^GRU: expected a recurrent weight of shape \(4, 12\)"):
        stax.GRU(4).apply(_init(stax.GRU(3)), _x())
    with pytest.raises(ValueError, match="^SimpleRNN: expected an unmasked input"):
        rnn.apply(params, _x(), mask_constant=0.0)


def test_embedding_rejects_floats_and_out_of_range_ids():
    layer = stax.Embedding(5, 2)
    params = _init(layer, shape=(-1, 3))
    with pytest.raises(TypeError, match="^Embedding: expected integer token ids, got dtype float32"):
        layer.apply(params, jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^Embedding: expected token ids in \[0, 5\), got 5"):
        layer.apply(params, jnp.array([[0, 5, 1]]))
    with pytest.raises(ValueError, match=r"^Embedding: expected token ids in \[0, 5\), got -1"):
        layer.apply(params, jnp.array([[-1, 0, 1]]))
    with pytest.raises(ValueError, match=r"^Embedding: expected token ids of shape \(batch, time\)"):
        layer.apply(params, jnp.array([0, 1]))
    # Under jit the values cannot be checked: an out-of-range id gives NaN, never a wrong row.
    out = jax.jit(layer.apply)(params, jnp.array([[0, 5, 1]]))
    assert np.isnan(out[0, 1]).all() and np.isfinite(out[0, [0, 2]]).all()


@pytest.mark.parametrize("build", [lambda: stax.LSTM(3), lambda: stax.GRU(3), lambda: stax.Bidirectional(stax.GRU(3))])
def test_gated_layers_have_no_infinite_width_kernel(build):
    layer = build()
    with pytest.raises(NotImplementedError, match=f"^{layer.name}: no infinite-width kernel rule"):
        layer.kernel(_x(), None, "nngp")


def test_simple_rnn_spec_is_the_documented_format():
    layer = stax.SimpleRNN(7, stax.Tanh(), W_std=1.5, U_std=0.5, b_std=0.1, return_sequences=True)
    assert layer.spec == stax.LayerSpec(
        "SimpleRNN",
        hyper={"hidden": 7, "W_std": 1.5, "U_std": 0.5, "b_std": 0.1, "return_sequences": True,
               "parameterization": "ntk"},
        children=(stax.Tanh().spec,),
    )  # fmt: skip
    assert stax.SimpleRNN(3).spec.children == (stax.Erf().spec,)
