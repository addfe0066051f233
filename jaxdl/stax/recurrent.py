"""Recurrent layers on sequences ``(batch, time, features)``: ``Embedding``,
``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional``.

Every time loop is one ``jax.lax.scan``, so back-propagation through time
(BPTT, the seeds' ``dL/dU = sum_t dL/dz_t dz_t/dU`` with the weights shared
across time steps) is ``jax.grad`` of the unrolled loop. The gates share fused matrices, so a
step does one input product ``x_t @ (features, k * hidden)`` and a single
recurrent ``(batch, hidden) @ (hidden, k * hidden)`` product (two for the GRU,
whose candidate reads the *reset* state ``r ⊙ h``); see :func:`_time_major` for
why the input product stays inside the step.

Seed formulas (row vectors in the code: ``h @ W`` is the seeds' ``W h``):

* Elman RNN (seeds: "Simple RNNs", ``z_t = φ(U z_{t-1} + V x_t)``, and
  "Recurrent Networks", ``F(h, x) = σ(W h + U x + b)``)::

      h_t = φ(W h_{t-1} + U x_t + b),   h_0 = 0 (or ``initial_state``)

* LSTM (seeds: "Gated Memory", ``C^t = σ(F x̃^t) ⊙ C^{t-1} + σ(I x̃^t) ⊙
  tanh(C̃ x̃^t)``, ``z^t = σ(O x̃^t) ⊙ tanh(C^t)``, ``x̃^t = [x_t, z_{t-1}]``;
  the same equations as the "Memory & Attention" chapter's input, forget and
  output gates ``i_t, f_t, o_t`` without peepholes; Hochreiter & Schmidhuber
  1997 with the forget gate of Gers et al. 2000)::

      i_t = σ(W_i x_t + U_i h_{t-1} + b_i)     input gate
      f_t = σ(W_f x_t + U_f h_{t-1} + b_f)     forget gate
      g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)  candidate cell
      o_t = σ(W_o x_t + U_o h_{t-1} + b_o)     output gate
      c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

  Two seeds write the output as ``σ(H x̃_t) ⊙ tanh(U z_t)`` with an extra
  matrix ``U`` on the cell; that variant is not implemented (``U = I`` gives
  the equations above, which the other seeds and the literature use).

* GRU (seeds: "Gated Memory"/"Gated memory units", ``z_t = (1 - Γ_u) ⊙
  z_{t-1} + Γ_u ⊙ z̃_t``, ``z̃_t = tanh(V[ℓ_t ⊙ z_{t-1}, x_t])``; Cho et al.
  2014, the reset gate applied *before* the recurrent product)::

      u_t = σ(W_u x_t + U_u h_{t-1} + b_u)             update gate
      r_t = σ(W_r x_t + U_r h_{t-1} + b_r)             reset gate
      h̃_t = tanh(W_c x_t + U_c (r_t ⊙ h_{t-1}) + b_c)  candidate
      h_t = (1 - u_t) ⊙ h_{t-1} + u_t ⊙ h̃_t

  (One seed writes ``σ ⊙ z_{t-1} + (1 - σ) ⊙ z̃_t``: the same family with the
  sign of the update gate's weights flipped.) The biases, which the seeds
  leave implicit, start at zero.

* Bidirectional RNNs (seeds: ``ŷ_t = Φ(W z_t + W̃ z̃_t)``, "do both ways and
  concatenate"): the layer on the input and a second copy, with its own
  params, on the time-reversed input, its output reversed back.

Parameters (row-vector layout, ``F`` input features, ``H`` hidden units):

* ``SimpleRNN``: ``{"W": (H, H), "U": (F, H), "b": (H,)}``. Under
  ``'ntk'`` (default, like ``Dense``) all are ``N(0, 1)`` and the layer
  computes ``φ(W_std/√H h W + U_std/√F x U + b_std b)``; under ``'standard'``
  they are drawn ``N(0, W_std²/H)``, ``N(0, U_std²/F)``, ``N(0, b_std²)`` and
  used as they are. ``"b"`` is present even when ``b_std = 0``.
* ``LSTM``/``GRU``: ``{"W_x": (F, kH), "W_h": (H, kH), "b": (kH,)}`` with the
  gate blocks in the order ``i, f, g, o`` (``k = 4``) resp. ``u, r, c``
  (``k = 3``). ``W_x ~ N(0, 1/F)`` (LeCun), ``W_h`` orthogonal (its rows are
  orthonormal, so no gate starts with exploding recurrent products), biases
  zero except the LSTM forget gate's, which is ``forget_bias`` (default 1, so
  the cell starts by remembering: Jozefowicz et al. 2015).

``apply_fn(params, x, *, initial_state=None, return_state=False)``: the
initial state is ``h_0`` of shape ``(batch, hidden)`` (for the LSTM the pair
``(h_0, c_0)``), zeros by default; with ``return_state=True`` the layer returns
``(output, final_state)``, which is what truncated BPTT carries from one
chunk to the next (:mod:`jaxdl.train.tbptt`). ``zero_state(layer, batch)``
builds the zero state of any of these layers.
Padding masks (``mask_constant=``, ``MaskedArray``) are not supported and
raise ``ValueError``: run sequences of equal length.

Infinite width: ``SimpleRNN``'s spec (kind ``"SimpleRNN"``, hyper ``hidden,
W_std, U_std, b_std, return_sequences, parameterization``, the activation as
its one child) is what the recurrent kernel rule reads; ``LSTM``, ``GRU``,
``Embedding`` and ``Bidirectional`` have no infinite-width kernel, and their
``kernel_fn`` raises ``NotImplementedError``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.stax import initializers
from jaxdl.stax.layer import (
    Layer,
    LayerSpec,
    check_array,
    check_choice,
    check_key,
    check_positive_int,
    check_shape,
    make_layer,
)
from jaxdl.stax.linear import PARAMETERIZATIONS, check_std
from jaxdl.stax.masking import MaskedArray

MERGES = ("concat", "sum")
RECURRENT_KINDS = ("SimpleRNN", "LSTM", "GRU")


# --- shared checks ---------------------------------------------------------------


def _sequence_shape(name: str, input_shape) -> tuple[int, int, int]:
    """``input_shape`` of a recurrent layer: ``(batch, time, features)`` with known features."""
    shape = check_shape(name, input_shape)
    if len(shape) != 3:
        raise ValueError(f"{name}: expected input_shape (batch, time, features), got {input_shape!r}")
    if shape[2] == -1:
        raise ValueError(f"{name}: expected the number of features to be known, got input_shape {input_shape!r}")
    return shape


def _refuse_masks(name: str, x, kwargs) -> None:
    """Padding masks are not supported: say so instead of ignoring ``mask_constant``."""
    if kwargs.get("mask_constant") is not None or isinstance(x, MaskedArray):
        raise ValueError(
            f"{name}: expected an unmasked input; masked inputs (mask_constant=, MaskedArray) are not "
            f"supported by the recurrent layers (run equal-length sequences, or read the state at each "
            f"sequence's own last step from return_sequences=True)"
        )


def _sequence(name: str, x, features: int, dtype) -> jax.Array:
    """An input of shape ``(batch, time, features)``, cast to the params' float dtype."""
    x = check_array(name, x)
    if x.ndim != 3:
        raise ValueError(f"{name}: expected an input of shape (batch, time, features), got shape {tuple(x.shape)}")
    if x.shape[2] != features:
        raise ValueError(f"{name}: expected {features} features on the last axis, got shape {tuple(x.shape)}")
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{name}: expected a real input, got dtype {x.dtype}")
    return x.astype(jnp.result_type(x.dtype, dtype))


def _state(name: str, state, batch: int, hidden: int, dtype, what: str = "initial_state") -> jax.Array:
    """One hidden-state array: ``(batch, hidden)`` or ``(hidden,)`` (shared by the batch);
    zeros when ``state`` is None."""
    if state is None:
        return jnp.zeros((batch, hidden), dtype)
    if not hasattr(state, "shape"):
        if isinstance(state, (list, tuple)):
            raise TypeError(
                f"{name}: expected {what} to be an array of shape ({batch}, {hidden}), got a {type(state).__name__}"
            )
        state = jnp.asarray(state)
    if tuple(state.shape) not in ((batch, hidden), (hidden,)):
        raise ValueError(f"{name}: expected {what} of shape ({batch}, {hidden}), got shape {tuple(state.shape)}")
    return jnp.broadcast_to(state.astype(dtype), (batch, hidden))


def _check_recurrent_weight(name: str, W, hidden: int, gates: int) -> None:
    """The recurrent weight in params must fit the layer's ``hidden`` (params of another layer would not)."""
    if tuple(W.shape) != (hidden, gates * hidden):
        raise ValueError(
            f"{name}: expected a recurrent weight of shape {(hidden, gates * hidden)} in params, got {tuple(W.shape)}"
        )


def _check_bool(name: str, what: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected {what} to be a bool, got {value!r}")
    return bool(value)


def _check_activation(name: str, activation) -> Layer:
    """An elementwise stax layer (``stax.Erf()``, ``stax.Tanh()``, ``stax.Relu()``, ...)."""
    from jaxdl.kernels.elementwise_rules import ELEMENTWISE_KINDS

    if not isinstance(activation, Layer) or activation.spec is None or activation.spec.kind not in ELEMENTWISE_KINDS:
        raise TypeError(
            f"{name}: expected activation to be an elementwise stax layer such as stax.Erf() or stax.Tanh(), "
            f"got {activation!r}"
        )
    return activation


def _float_dtype():
    """The default float dtype (float64 under ``jax.enable_x64``)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _scan_outputs(step, carry, inputs, return_sequences: bool):
    """Run ``step(carry, x_t) -> (carry, h_t)`` over time: ``(outputs, final carry)``,
    the outputs ``(batch, time, H)`` kept only when asked (else None)."""
    if return_sequences:
        carry, outputs = lax.scan(step, carry, inputs)
        return jnp.swapaxes(outputs, 0, 1), carry  # (time, batch, H) -> (batch, time, H)
    carry, _ = lax.scan(lambda c, x_t: (step(c, x_t)[0], None), carry, inputs)
    return None, carry


def _time_major(x):
    """``(batch, time, features)`` -> ``(time, batch, features)``, the axis ``lax.scan`` walks.

    The input projection ``x_t W + b`` is computed inside the step, not for all steps
    up front: measured on CPU, hoisting it out of the loop made forward+backward 1.7x
    slower (the backward pass of the big time-major product), and flax does the same."""
    return jnp.swapaxes(x, 0, 1)


# The time loops, compiled once per layer configuration and shape: eager calls
# reuse the compiled loop (an eager ``lax.scan`` would recompile on every call),
# and inside a user's ``jit`` they are inlined.


@functools.partial(jax.jit, static_argnames=("phi", "scales", "return_sequences"))
def _elman_loop(W, U, b, x, h0, *, phi, scales, return_sequences):
    """``h_t = φ(h_{t-1} W + x_t U + b)`` with ``W, U, b`` multiplied by ``scales``."""
    W_scale, U_scale, b_scale = scales
    W = W_scale * W

    U, b = U_scale * U, b_scale * b

    def step(h, x_t):
        h = phi({}, h @ W + x_t @ U + b[None, :])
        return h, h

    return _scan_outputs(step, h0, _time_major(x), return_sequences)


@functools.partial(jax.jit, static_argnames=("return_sequences",))
def _lstm_loop(W_x, W_h, b, x, h0, c0, *, return_sequences):
    """The LSTM cell over time, gate blocks ``i, f, g, o``."""

    def step(carry, x_t):
        h, c = carry
        i, f, g, o = jnp.split(x_t @ W_x + h @ W_h + b[None, :], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    return _scan_outputs(step, (h0, c0), _time_major(x), return_sequences)


@functools.partial(jax.jit, static_argnames=("return_sequences",))
def _gru_loop(W_x, W_h, b, x, h0, *, return_sequences):
    """The GRU cell over time, gate blocks ``u, r, c``; the candidate reads ``r ⊙ h``."""
    hidden = h0.shape[-1]
    W_gates, W_cand = W_h[:, : 2 * hidden], W_h[:, 2 * hidden :]  # u, r fused

    def step(h, x_t):
        x_u, x_r, x_c = jnp.split(x_t @ W_x + b[None, :], 3, axis=-1)
        h_u, h_r = jnp.split(h @ W_gates, 2, axis=-1)
        u = jax.nn.sigmoid(x_u + h_u)
        r = jax.nn.sigmoid(x_r + h_r)
        candidate = jnp.tanh(x_c + (r * h) @ W_cand)
        h = (1 - u) * h + u * candidate
        return h, h

    return _scan_outputs(step, h0, _time_major(x), return_sequences)


@functools.partial(jax.jit, static_argnames=("features", "hidden", "gates"))
def _gated_params(key, bias, *, features, hidden, gates):
    """LeCun-normal input weights, orthogonal recurrent weights, ``bias``."""
    k_x, k_h = jax.random.split(key)
    dtype = bias.dtype
    return {
        "W_x": initializers.lecun_normal()(k_x, (features, gates * hidden), dtype),
        "W_h": initializers.orthogonal()(k_h, (hidden, gates * hidden), dtype),
        "b": bias,
    }


# --- Embedding -------------------------------------------------------------------


def Embedding(vocab_size: int, dim: int, W_std: float = 1.0):
    """Token ids ``(batch, time)`` -> vectors ``(batch, time, dim)``: row ``id`` of a
    table ``E ~ N(0, W_std**2)`` of shape ``(vocab_size, dim)``.

    The ids must be integers in ``[0, vocab_size)``. Eager calls check the values
    and raise ``ValueError``; under ``jit``/``vmap`` they cannot be inspected, and an
    out-of-range id gives a row of NaN (never a silently clamped, wrong row).

    Params: ``{"E": f[vocab_size, dim]}``.
    """
    name = "Embedding"
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    dim = check_positive_int(name, "dim", dim)
    W_std = check_std(name, "W_std", W_std)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = check_shape(name, input_shape)
        if len(shape) != 2:
            raise ValueError(f"{name}: expected input_shape (batch, time) of token ids, got {input_shape!r}")
        return shape + (dim,), {"E": W_std * jax.random.normal(key, (vocab_size, dim))}

    def apply_fn(params, ids, **kwargs):
        _refuse_masks(name, ids, kwargs)
        ids = check_array(name, ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"{name}: expected integer token ids, got dtype {ids.dtype}")
        if ids.ndim != 2:
            raise ValueError(f"{name}: expected token ids of shape (batch, time), got shape {tuple(ids.shape)}")
        E = params["E"]
        if E.shape[0] != vocab_size:
            raise ValueError(f"{name}: expected params['E'] with {vocab_size} rows, got shape {tuple(E.shape)}")
        try:
            concrete = np.asarray(ids)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            concrete = None  # traced: out-of-range ids become NaN rows below
        if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() >= vocab_size):
            bad = concrete[(concrete < 0) | (concrete >= vocab_size)].ravel()[0]
            raise ValueError(f"{name}: expected token ids in [0, {vocab_size}), got {int(bad)}")
        return jnp.take(E, ids, axis=0, mode="fill", fill_value=jnp.nan)

    spec = LayerSpec(name, dict(vocab_size=vocab_size, dim=dim, W_std=W_std))
    return make_layer(name, init_fn, apply_fn, spec)


# --- SimpleRNN -------------------------------------------------------------------


def SimpleRNN(
    hidden: int,
    activation: Layer | None = None,
    W_std: float = 1.0,
    U_std: float = 1.0,
    b_std: float = 0.0,
    return_sequences: bool = False,
    parameterization: str = "ntk",
):
    """Elman RNN ``h_t = φ(W h_{t-1} + U x_t + b)`` over ``(batch, time, features)``.

    Args:
      hidden: number of hidden units ``H``.
      activation: an elementwise stax layer for ``φ``; default ``stax.Erf()``
        (tanh-shaped, with a closed-form infinite-width kernel; ``stax.Tanh()``,
        ``stax.Relu()``, ... work too).
      W_std, U_std, b_std: standard deviations of the recurrent weights, the input
        weights and the bias (before the ``1/√fan_in`` scaling, as in ``Dense``).
      return_sequences: ``True``: every ``h_t``, shape ``(batch, time, H)``;
        ``False``: the last state ``h_T``, shape ``(batch, H)``.
      parameterization: ``'ntk'`` or ``'standard'`` (module docstring).

    ``apply_fn(params, x, initial_state=None, return_state=False)``.
    """
    name = "SimpleRNN"
    hidden = check_positive_int(name, "hidden", hidden)
    if activation is None:
        from jaxdl.stax.elementwise import Erf

        activation = Erf()
    activation = _check_activation(name, activation)
    W_std, U_std, b_std = (check_std(name, n, v) for n, v in (("W_std", W_std), ("U_std", U_std), ("b_std", b_std)))
    return_sequences = _check_bool(name, "return_sequences", return_sequences)
    parameterization = check_choice(name, "parameterization", parameterization, PARAMETERIZATIONS)
    phi = activation.apply

    def init_fn(key, input_shape):
        key = check_key(name, key)
        batch, time, features = _sequence_shape(name, input_shape)
        kW, kU, kb = jax.random.split(key, 3)
        W = jax.random.normal(kW, (hidden, hidden))
        U = jax.random.normal(kU, (features, hidden))
        b = jax.random.normal(kb, (hidden,))
        if parameterization == "standard":
            W, U, b = W_std / math.sqrt(hidden) * W, U_std / math.sqrt(features) * U, b_std * b
        out_shape = (batch, time, hidden) if return_sequences else (batch, hidden)
        return out_shape, {"W": W, "U": U, "b": b}

    def apply_fn(params, x, *, initial_state=None, return_state=False, **kwargs):
        _refuse_masks(name, x, kwargs)
        W, U, b = params["W"], params["U"], params["b"]
        _check_recurrent_weight(name, W, hidden, 1)
        x = _sequence(name, x, U.shape[0], W.dtype)
        h0 = _state(name, initial_state, x.shape[0], hidden, x.dtype)
        scales = (1.0, 1.0, 1.0)
        if parameterization == "ntk":
            scales = (W_std / math.sqrt(hidden), U_std / math.sqrt(U.shape[0]), b_std)
        hs, h_last = _elman_loop(W, U, b, x, h0, phi=phi, scales=scales, return_sequences=return_sequences)
        out = hs if return_sequences else h_last
        return (out, h_last) if return_state else out

    spec = LayerSpec(
        name,
        hyper={
            "hidden": hidden,
            "W_std": W_std,
            "U_std": U_std,
            "b_std": b_std,
            "return_sequences": return_sequences,
            "parameterization": parameterization,
        },
        children=(activation.spec,),
    )
    return make_layer(name, init_fn, apply_fn, spec)


# --- LSTM and GRU ----------------------------------------------------------------


def _gated_init(name: str, hidden: int, gates: int, bias):
    """``init_fn`` of a gated layer: LeCun-normal input weights, orthogonal recurrent
    weights, the given bias vector."""

    def init_fn(key, input_shape, return_sequences: bool):
        key = check_key(name, key)
        batch, time, features = _sequence_shape(name, input_shape)
        params = _gated_params(key, jnp.asarray(bias, _float_dtype()), features=features, hidden=hidden, gates=gates)
        out_shape = (batch, time, hidden) if return_sequences else (batch, hidden)
        return out_shape, params

    return init_fn


def LSTM(hidden: int, return_sequences: bool = False, forget_bias: float = 1.0):
    """Long short-term memory (module docstring: gate equations, params, init).

    Args:
      hidden: number of hidden units ``H`` (the cell has ``H`` units too).
      return_sequences: every ``h_t`` ``(batch, time, H)`` or the last ``h_T`` ``(batch, H)``.
      forget_bias: initial bias of the forget gate (1: start by remembering).

    ``apply_fn(params, x, initial_state=(h_0, c_0), return_state=False)``; the
    returned state is the pair ``(h_T, c_T)``.
    """
    name = "LSTM"
    hidden = check_positive_int(name, "hidden", hidden)
    return_sequences = _check_bool(name, "return_sequences", return_sequences)
    if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)) or not math.isfinite(forget_bias):
        raise ValueError(f"{name}: expected forget_bias to be a finite float, got {forget_bias!r}")
    forget_bias = float(forget_bias)
    bias = np.zeros(4 * hidden)
    bias[hidden : 2 * hidden] = forget_bias  # gate order i, f, g, o
    init = _gated_init(name, hidden, 4, bias)

    def init_fn(key, input_shape):
        return init(key, input_shape, return_sequences)

    def apply_fn(params, x, *, initial_state=None, return_state=False, **kwargs):
        _refuse_masks(name, x, kwargs)
        W_x, W_h, b = params["W_x"], params["W_h"], params["b"]
        _check_recurrent_weight(name, W_h, hidden, 4)
        x = _sequence(name, x, W_x.shape[0], W_x.dtype)
        if initial_state is None:
            initial_state = (None, None)
        elif not (isinstance(initial_state, (tuple, list)) and len(initial_state) == 2):
            got = type(initial_state).__name__
            raise TypeError(f"{name}: expected initial_state to be a pair (h_0, c_0), got {got}")
        batch = x.shape[0]
        h0 = _state(name, initial_state[0], batch, hidden, x.dtype, "initial_state[0] (h_0)")
        c0 = _state(name, initial_state[1], batch, hidden, x.dtype, "initial_state[1] (c_0)")

        hs, state = _lstm_loop(W_x, W_h, b, x, h0, c0, return_sequences=return_sequences)
        out = hs if return_sequences else state[0]
        return (out, state) if return_state else out

    spec = LayerSpec(name, {"hidden": hidden, "return_sequences": return_sequences, "forget_bias": forget_bias})
    return make_layer(name, init_fn, apply_fn, spec)


def GRU(hidden: int, return_sequences: bool = False):
    """Gated recurrent unit (module docstring: gate equations, params, init).

    Args:
      hidden: number of hidden units ``H``.
      return_sequences: every ``h_t`` ``(batch, time, H)`` or the last ``h_T`` ``(batch, H)``.

    ``apply_fn(params, x, initial_state=h_0, return_state=False)``.
    """
    name = "GRU"
    hidden = check_positive_int(name, "hidden", hidden)
    return_sequences = _check_bool(name, "return_sequences", return_sequences)
    init = _gated_init(name, hidden, 3, np.zeros(3 * hidden))

    def init_fn(key, input_shape):
        return init(key, input_shape, return_sequences)

    def apply_fn(params, x, *, initial_state=None, return_state=False, **kwargs):
        _refuse_masks(name, x, kwargs)
        W_x, W_h, b = params["W_x"], params["W_h"], params["b"]
        _check_recurrent_weight(name, W_h, hidden, 3)
        x = _sequence(name, x, W_x.shape[0], W_x.dtype)
        h0 = _state(name, initial_state, x.shape[0], hidden, x.dtype)
        hs, h_last = _gru_loop(W_x, W_h, b, x, h0, return_sequences=return_sequences)
        out = hs if return_sequences else h_last
        return (out, h_last) if return_state else out

    spec = LayerSpec(name, {"hidden": hidden, "return_sequences": return_sequences})
    return make_layer(name, init_fn, apply_fn, spec)


# --- Bidirectional ---------------------------------------------------------------


def Bidirectional(layer: Layer, merge: str = "concat"):
    """``layer`` run forward and, with its own params, on the time-reversed input.

    The backward copy's output is reversed back in time, so position ``t`` of both
    halves describes input position ``t`` (the forward half summarises ``x_1..x_t``,
    the backward half ``x_t..x_T``). For a layer returning only its last state,
    the halves are the two final states (of ``x_T`` forward and of ``x_1`` backward).

    Args:
      layer: a recurrent layer (or any stateless layer) on ``(batch, time, features)``.
      merge: ``'concat'`` (features of both halves, ``2 H``) or ``'sum'``.

    Params: ``{"forward": ..., "backward": ...}``. ``apply_fn(params, x,
    initial_state=(forward_state, backward_state))``.
    """
    name = "Bidirectional"
    if not isinstance(layer, Layer):
        raise TypeError(f"{name}: expected a stax layer, got {layer!r}")
    if layer.stateful:
        raise TypeError(f"{name}: expected a stateless layer, got the stateful {layer.name}")
    merge = check_choice(name, "merge", merge, MERGES)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = check_shape(name, input_shape)
        if len(shape) != 3:
            raise ValueError(f"{name}: expected input_shape (batch, time, features), got {input_shape!r}")
        k_f, k_b = jax.random.split(key)
        out_shape, forward = layer.init(k_f, shape)
        _, backward = layer.init(k_b, shape)
        if merge == "concat":
            out_shape = tuple(out_shape[:-1]) + (-1 if out_shape[-1] == -1 else 2 * out_shape[-1],)
        return tuple(out_shape), {"forward": forward, "backward": backward}

    def apply_fn(params, x, *, initial_state=None, return_state=False, **kwargs):
        _refuse_masks(name, x, kwargs)
        x = check_array(name, x)
        if x.ndim != 3:
            raise ValueError(f"{name}: expected an input of shape (batch, time, features), got shape {tuple(x.shape)}")
        if initial_state is None:
            states = ({}, {})
        elif isinstance(initial_state, (tuple, list)) and len(initial_state) == 2:
            states = ({"initial_state": initial_state[0]}, {"initial_state": initial_state[1]})
        else:
            raise TypeError(f"{name}: expected initial_state to be a pair (forward_state, backward_state)")
        if return_state:
            if getattr(layer.spec, "kind", None) not in RECURRENT_KINDS:
                raise TypeError(f"{name}: return_state needs a SimpleRNN, LSTM or GRU inside, got {layer.name}")
            kwargs = dict(kwargs, return_state=True)
        forward = layer.apply(params["forward"], x, **states[0], **kwargs)
        backward = layer.apply(params["backward"], jnp.flip(x, axis=1), **states[1], **kwargs)
        if return_state:
            (forward, forward_state), (backward, backward_state) = forward, backward
        if backward.ndim == 3:
            backward = jnp.flip(backward, axis=1)
        out = jnp.concatenate([forward, backward], axis=-1) if merge == "concat" else forward + backward
        return (out, (forward_state, backward_state)) if return_state else out

    spec = LayerSpec(name, {"merge": merge}, children=(layer.spec,))
    return make_layer(name, init_fn, apply_fn, spec)


# --- states ----------------------------------------------------------------------


def zero_state(layer: Layer, batch: int, dtype=None):
    """The zero initial state of a ``SimpleRNN``/``GRU`` (``(batch, hidden)``), an
    ``LSTM`` (the pair ``(h, c)``) or a ``Bidirectional`` of them (a pair of those):
    the carry to start truncated BPTT with."""
    batch = check_positive_int("zero_state", "batch", batch)
    return _zero_state(getattr(layer, "spec", None), layer, batch, _float_dtype() if dtype is None else dtype)


def _zero_state(spec, layer, batch: int, dtype):
    kind = getattr(spec, "kind", None)
    if kind in ("SimpleRNN", "GRU"):
        return jnp.zeros((batch, spec.hyper["hidden"]), dtype)
    if kind == "LSTM":
        zeros = jnp.zeros((batch, spec.hyper["hidden"]), dtype)
        return (zeros, zeros)
    if kind == "Bidirectional":
        one = _zero_state(spec.children[0], layer, batch, dtype)
        return (one, one)
    raise TypeError(f"zero_state: expected a SimpleRNN, LSTM, GRU or Bidirectional layer, got {layer!r}")


__all__ = ["Bidirectional", "Embedding", "GRU", "LSTM", "SimpleRNN", "zero_state"]
