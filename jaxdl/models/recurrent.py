"""Recurrent models of the seeds' sequence chapters: classifiers, language models and
an attention encoder-decoder.

* :func:`rnn_classifier`: [Embedding →] recurrent layers (``SimpleRNN``, ``LSTM``,
  ``GRU`` or ``LRU``) → read-out of the last step (or the mean over time) →
  ``Dense(num_classes)``; a stax layer.
* :func:`rnn_lm`: Embedding → recurrent layers returning every step → ``Dense(V)``,
  the logits of ``p(y_{t+1} | y_1..y_t)``; a stax layer. :func:`causal_lm_loss`
  is its next-token cross-entropy.
* :func:`seq2seq`: the seeds' "Sequence learning" encoder-decoder with attention,
  ``p(y_{1:n} | x_{1:m}) = Π_i p(y_i | y_{1:i−1}, x_{1:m})``. The encoder RNN maps
  ``x_1..x_m ↦ ζ_1..ζ_m``; at step ``i`` the decoder attends to all of them,

      a_{ij} = softmax_j(MLP([z_{i−1}, ζ_j])),   c_i = Σ_j a_{ij} ζ_j,

  with the additive (Bahdanau et al. 2015) MLP ``vᵀ tanh(W_q z_{i−1} + W_k ζ_j)``;
  then ``z_i = cell(z_{i−1}, [E y_{i−1}; c_i])`` (a GRU or LSTM, the gate
  equations of :mod:`jaxdl.stax.recurrent`) and ``p(y_i | …) =
  softmax(W_o [z_i; c_i] + b_o)``. ``z_0 = tanh(W_s ζ_m + b_s)`` bridges the
  encoder's last state. Training uses teacher forcing (the true ``y_{i−1}`` is
  fed back); decoding is greedy or by beam search.

The encoder-decoder is not a single stax layer (it reads two sequences and
decodes step by step), so it is a small functional object::

    model = seq2seq(src_vocab=10, tgt_vocab=10, bos_id=0)
    params = model.init(jax.random.key(0))
    logits = model.apply(params, src, tgt_in)        # teacher forcing: (batch, n, tgt_vocab)
    loss = model.loss(params, src, tgt)              # tgt_in = [BOS, tgt[:, :-1]]
    tokens = model.greedy(params, src, max_len)      # (batch, max_len)
    tokens, scores = model.beam_search(params, src, beam_width, max_len)
                                                     # (batch, beam, max_len), (batch, beam) best first
    log_p = model.sequence_log_prob(params, src, tgt)  # log p(tgt | src), (batch,)
    a = model.attention(params, src, tgt_in)         # the weights a_ij under teacher forcing: (batch, n, m)

With ``eos_id`` set, a hypothesis that emits ``EOS`` is finished: it keeps its
score and is padded with ``EOS`` (and :meth:`Seq2Seq.sequence_log_prob` ignores
what follows the first ``EOS``).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import stax
from jaxdl.models._common import positive_ints
from jaxdl.stax.layer import check_array, check_choice, check_key, check_positive_int
from jaxdl.stax.linear import check_std
from jaxdl.stax.lru import LRU
from jaxdl.stax.recurrent import GRU, LSTM, Bidirectional, Embedding, SimpleRNN

CELLS = ("rnn", "lstm", "gru", "lru")
READOUTS = ("last", "mean")


def _recurrent_layer(name: str, cell: str, hidden: int, return_sequences: bool, lru_options: dict):
    if cell == "rnn":
        return SimpleRNN(hidden, return_sequences=return_sequences)
    if cell == "lstm":
        return LSTM(hidden, return_sequences=return_sequences)
    if cell == "gru":
        return GRU(hidden, return_sequences=return_sequences)
    # The LRU is linear in time: a position-wise nonlinearity follows it.
    return stax.serial(LRU(hidden, hidden, **lru_options), stax.Gelu())


def _stack(name, cell, hidden, bidirectional, last_returns_sequence, lru_options):
    """The recurrent layers: all but the last return every step."""
    layers = []
    for i, h in enumerate(hidden):
        sequences = last_returns_sequence or i < len(hidden) - 1
        layer = _recurrent_layer(name, cell, h, sequences, lru_options)
        layers.append(Bidirectional(layer) if bidirectional else layer)
    return layers


def _check_bool(name: str, what: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected {what} to be a bool, got {value!r}")
    return value


def rnn_classifier(
    num_classes: int,
    *,
    cell: str = "lstm",
    hidden=(64,),
    vocab_size: int | None = None,
    embed_dim: int = 32,
    bidirectional: bool = False,
    readout: str = "last",
    lru_r_min: float = 0.0,
    lru_r_max: float = 1.0,
):
    """A sequence classifier: ``(batch, time, features)`` floats (or ``(batch, time)`` token ids
    when ``vocab_size`` is given) → logits ``(batch, num_classes)``.

    ``[Embedding(vocab_size, embed_dim)] → [cell(h)] for h in hidden → read-out → Dense(num_classes)``.

    Args:
      cell: ``'rnn'`` (Elman), ``'lstm'``, ``'gru'`` or ``'lru'`` (each LRU layer is
        ``LRU(h, h, r_min=lru_r_min, r_max=lru_r_max)`` followed by a GELU).
      hidden: units per recurrent layer (an int for one layer).
      bidirectional: wrap every recurrent layer in ``Bidirectional`` (features doubled).
      readout: ``'last'`` (the state after the last step) or ``'mean'`` (the average over time).
    """
    name = "rnn_classifier"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    cell = check_choice(name, "cell", cell, CELLS)
    hidden = (check_positive_int(name, "hidden", hidden),) if isinstance(hidden, int) else positive_ints(name, "hidden", hidden)
    readout = check_choice(name, "readout", readout, READOUTS)
    bidirectional = _check_bool(name, "bidirectional", bidirectional)
    if cell == "lru" and bidirectional and readout == "last":
        raise ValueError(f"{name}: a bidirectional LRU has no single last state; use readout='mean'")
    layers = []
    if vocab_size is not None:
        layers.append(Embedding(check_positive_int(name, "vocab_size", vocab_size), check_positive_int(name, "embed_dim", embed_dim)))
    whole_sequence = readout == "mean" or cell == "lru"
    layers += _stack(name, cell, hidden, bidirectional, whole_sequence, dict(r_min=lru_r_min, r_max=lru_r_max))
    if readout == "mean":
        layers.append(stax.GlobalAvgPool())
    elif cell == "lru":
        layers.append(stax.Index(stax.Slice[:, -1]))
    layers.append(stax.Dense(num_classes))
    return stax.serial(*layers)


def rnn_lm(
    vocab_size: int,
    *,
    cell: str = "lstm",
    embed_dim: int = 32,
    hidden=(128,),
    W_std: float = 0.1,
    lru_r_min: float = 0.0,
    lru_r_max: float = 1.0,
):
    """A causal language model: token ids ``(batch, time)`` → next-token logits ``(batch, time, vocab_size)``.

    ``Embedding(vocab_size, embed_dim) → [cell(h), every step] for h in hidden → Dense(vocab_size)``.
    The read-out is drawn small (``parameterization='standard'``, weights
    ``N(0, W_std²/fan_in)``, ``W_std = 0.1``), so the model starts close to the
    uniform prediction: the loss at initialisation is ``≈ log(vocab_size)``.
    Every layer is causal, so ``logits[:, t]`` depends on ``tokens[:, :t+1]`` only;
    train it with :func:`causal_lm_loss` (or :func:`lm_cross_entropy` on the
    windows of :func:`jaxdl.data.text.batch_windows`).
    """
    name = "rnn_lm"
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    embed_dim = check_positive_int(name, "embed_dim", embed_dim)
    cell = check_choice(name, "cell", cell, CELLS)
    hidden = (check_positive_int(name, "hidden", hidden),) if isinstance(hidden, int) else positive_ints(name, "hidden", hidden)
    W_std = check_std(name, "W_std", W_std)
    layers = [Embedding(vocab_size, embed_dim)]
    layers += _stack(name, cell, hidden, False, True, dict(r_min=lru_r_min, r_max=lru_r_max))
    layers.append(stax.Dense(vocab_size, W_std=W_std, b_std=0.0, parameterization="standard"))
    return stax.serial(*layers)


def lm_cross_entropy(logits, targets) -> jax.Array:
    """Mean cross-entropy ``−log softmax(logits)[target]`` over every position; logits ``(..., V)``, integer targets ``(...)``."""
    logits = jnp.asarray(logits)
    targets = jnp.asarray(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"lm_cross_entropy: expected targets of shape {logits.shape[:-1]}, got {targets.shape}")
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise TypeError(f"lm_cross_entropy: expected integer targets, got dtype {targets.dtype}")
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))


def causal_lm_loss(apply_fn: Callable, params, tokens) -> jax.Array:
    """Next-token cross-entropy of a language model on ``tokens`` ``(batch, time)``:
    the model reads ``tokens[:, :-1]`` and is scored on ``tokens[:, 1:]``."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"causal_lm_loss: expected tokens of shape (batch, time >= 2), got {tokens.shape}")
    return lm_cross_entropy(apply_fn(params, tokens[:, :-1]), tokens[:, 1:])


# --- encoder-decoder with attention -------------------------------------------------


def _affine(x, p):
    """``x W + b`` with ``b`` broadcast explicitly (no implicit rank promotion)."""
    return x @ p["W"] + p["b"].reshape((1,) * (x.ndim - 1) + (-1,))


def _dense_init(key, fan_in: int, fan_out: int, bias: bool = True):
    params = {"W": jax.random.normal(key, (fan_in, fan_out)) / math.sqrt(fan_in)}
    if bias:
        params["b"] = jnp.zeros((fan_out,))
    return params


class Seq2Seq(NamedTuple):
    """The functional encoder-decoder returned by :func:`seq2seq` (see the module docstring)."""

    init: Callable
    apply: Callable
    loss: Callable
    greedy: Callable
    beam_search: Callable
    sequence_log_prob: Callable
    config: dict
    attention: Callable


def seq2seq(
    src_vocab: int,
    tgt_vocab: int,
    *,
    cell: str = "gru",
    embed_dim: int = 32,
    hidden: int = 64,
    attention_dim: int = 64,
    bidirectional_encoder: bool = False,
    bos_id: int = 0,
    eos_id: int | None = None,
) -> Seq2Seq:
    """A GRU or LSTM encoder-decoder with additive attention (see the module docstring).

    Args:
      src_vocab, tgt_vocab: vocabulary sizes; token ids are ints in ``[0, vocab)``.
      cell: ``'gru'`` or ``'lstm'``, for the encoder and the decoder.
      embed_dim, hidden, attention_dim: embedding size, RNN state size, attention MLP size.
      bidirectional_encoder: encode with a ``Bidirectional`` RNN (``ζ_j`` has ``2·hidden`` features).
      bos_id: the target token fed to the decoder at the first step.
      eos_id: ``None`` (every output has exactly ``max_len`` tokens) or the
        end-of-sequence token that finishes a hypothesis.

    Params: ``{"src_embed", "encoder", "bridge", "tgt_embed", "decoder", "attention", "readout"}``.
    """
    name = "seq2seq"
    src_vocab = check_positive_int(name, "src_vocab", src_vocab)
    tgt_vocab = check_positive_int(name, "tgt_vocab", tgt_vocab)
    cell = check_choice(name, "cell", cell, ("gru", "lstm"))
    embed_dim = check_positive_int(name, "embed_dim", embed_dim)
    hidden = check_positive_int(name, "hidden", hidden)
    attention_dim = check_positive_int(name, "attention_dim", attention_dim)
    bidirectional_encoder = _check_bool(name, "bidirectional_encoder", bidirectional_encoder)
    for what, token in (("bos_id", bos_id), ("eos_id", eos_id)):
        if token is None and what == "eos_id":
            continue
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < tgt_vocab:
            raise ValueError(f"{name}: expected {what} to be an int in [0, {tgt_vocab}), got {token!r}")

    rnn = GRU if cell == "gru" else LSTM
    src_embed, tgt_embed = Embedding(src_vocab, embed_dim), Embedding(tgt_vocab, embed_dim)
    encoder = rnn(hidden, return_sequences=True)
    if bidirectional_encoder:
        encoder = Bidirectional(encoder)
    enc_dim = 2 * hidden if bidirectional_encoder else hidden
    decoder = rnn(hidden)  # one step at a time: input (batch, 1, embed_dim + enc_dim)
    config = dict(
        src_vocab=src_vocab, tgt_vocab=tgt_vocab, cell=cell, embed_dim=embed_dim, hidden=hidden,
        attention_dim=attention_dim, bidirectional_encoder=bidirectional_encoder, bos_id=bos_id, eos_id=eos_id,
    )  # fmt: skip

    def init(key):
        key = check_key(name, key)
        keys = jax.random.split(key, 8)
        _, p_src = src_embed.init(keys[0], (-1, 1))
        _, p_tgt = tgt_embed.init(keys[1], (-1, 1))
        _, p_enc = encoder.init(keys[2], (-1, 1, embed_dim))
        _, p_dec = decoder.init(keys[3], (-1, 1, embed_dim + enc_dim))
        return {
            "src_embed": p_src,
            "encoder": p_enc,
            "bridge": _dense_init(keys[4], enc_dim, hidden),
            "tgt_embed": p_tgt,
            "decoder": p_dec,
            "attention": {
                "W_q": _dense_init(keys[5], hidden, attention_dim, bias=False)["W"],
                "W_k": _dense_init(keys[6], enc_dim, attention_dim, bias=False)["W"],
                "v": jax.random.normal(keys[7], (attention_dim,)) / math.sqrt(attention_dim),
            },
            "readout": _dense_init(jax.random.fold_in(key, 8), hidden + enc_dim, tgt_vocab),
        }

    def check_tokens(what: str, tokens, vocab: int):
        tokens = check_array(name, tokens)
        if tokens.ndim != 2 or tokens.shape[1] == 0:
            raise ValueError(f"{name}: expected {what} of shape (batch, length >= 1), got shape {tuple(tokens.shape)}")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise TypeError(f"{name}: expected integer {what}, got dtype {tokens.dtype}")
        return tokens

    def encode(params, src):
        """``(ζ, keys, z_0)``: encoder states ``(B, m, enc_dim)``, their attention keys ``ζ W_k``, the decoder's start state."""
        src = check_tokens("src", src, src_vocab)
        annotations = encoder.apply(params["encoder"], src_embed.apply(params["src_embed"], src))
        if bidirectional_encoder:  # the forward half's last state and the backward half's first
            summary = jnp.concatenate([annotations[:, -1, :hidden], annotations[:, 0, hidden:]], axis=-1)
        else:
            summary = annotations[:, -1]
        h0 = jnp.tanh(_affine(summary, params["bridge"]))
        state = (h0, jnp.zeros_like(h0)) if cell == "lstm" else h0
        return annotations, annotations @ params["attention"]["W_k"], state

    def attend(params, keys, state):
        """The attention weights ``a_{ij} = softmax_j(vᵀ tanh(W_q z_{i−1} + W_k ζ_j))``, ``(B, m)``."""
        z_prev = state[0] if cell == "lstm" else state
        query = z_prev @ params["attention"]["W_q"]  # (B, A)
        scores = jnp.tanh(keys + query[:, None, :]) @ params["attention"]["v"]  # (B, m)
        return jax.nn.softmax(scores, axis=-1)

    def step(params, annotations, keys, state, prev_token):
        """One decoder step: attention on ``z_{i−1}``, the cell update, the output log-probabilities."""
        weights = attend(params, keys, state)
        context = jnp.einsum("bm,bmd->bd", weights, annotations)  # c_i
        embedded = tgt_embed.apply(params["tgt_embed"], prev_token[:, None])[:, 0]
        cell_in = jnp.concatenate([embedded, context], axis=-1)[:, None, :]
        z, state = decoder.apply(params["decoder"], cell_in, initial_state=state, return_state=True)
        logits = _affine(jnp.concatenate([z, context], axis=-1), params["readout"])
        return state, jax.nn.log_softmax(logits, axis=-1)

    def apply(params, src, tgt_in):
        """Teacher forcing: log-probabilities ``(B, n, tgt_vocab)`` of the next token after each of ``tgt_in``."""
        tgt_in = check_tokens("tgt_in", tgt_in, tgt_vocab)
        src = check_tokens("src", src, src_vocab)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"{name}: src and tgt_in have different batch sizes {src.shape[0]} and {tgt_in.shape[0]}")
        annotations, keys, state = encode(params, src)

        def body(state, token):
            return step(params, annotations, keys, state, token)

        _, log_probs = jax.lax.scan(body, state, jnp.swapaxes(tgt_in, 0, 1))
        return jnp.swapaxes(log_probs, 0, 1)

    def attention(params, src, tgt_in):
        """Teacher forcing: the attention weights ``a_{ij}`` of decoder step ``i`` over source
        position ``j``, ``(B, n, m)`` (each row sums to 1); row ``i`` depends on ``tgt_in[:, :i]`` only."""
        tgt_in = check_tokens("tgt_in", tgt_in, tgt_vocab)
        src = check_tokens("src", src, src_vocab)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"{name}: src and tgt_in have different batch sizes {src.shape[0]} and {tgt_in.shape[0]}")
        annotations, keys, state = encode(params, src)

        def body(state, token):
            weights = attend(params, keys, state)
            state, _ = step(params, annotations, keys, state, token)
            return state, weights

        _, weights = jax.lax.scan(body, state, jnp.swapaxes(tgt_in, 0, 1))
        return jnp.swapaxes(weights, 0, 1)

    def shifted(tgt):
        bos = jnp.full((tgt.shape[0], 1), bos_id, tgt.dtype)
        return jnp.concatenate([bos, tgt[:, :-1]], axis=1)

    def token_log_probs(params, src, tgt):
        """``log p(y_i | y_{<i}, x)`` for every target position, ``(B, n)``, zero after the first EOS."""
        tgt = check_tokens("tgt", tgt, tgt_vocab)
        log_probs = apply(params, src, shifted(tgt))
        picked = jnp.take_along_axis(log_probs, tgt[..., None], axis=-1)[..., 0]
        if eos_id is None:
            return picked
        eos_before = jnp.cumsum(tgt == eos_id, axis=1) - (tgt == eos_id)  # EOS strictly before position i
        return jnp.where(eos_before > 0, 0.0, picked)

    def loss(params, src, tgt):
        """Mean negative log-likelihood per target token (teacher forcing)."""
        return -jnp.mean(token_log_probs(params, src, tgt))

    def sequence_log_prob(params, src, tgt):
        """``log p(tgt | src)`` for each sequence of the batch, ``(B,)``."""
        return jnp.sum(token_log_probs(params, src, tgt), axis=1)

    def check_len(max_len):
        return check_positive_int(name, "max_len", max_len)

    def greedy(params, src, max_len: int):
        """The most probable next token at each step: ``(B, max_len)`` token ids."""
        max_len = check_len(max_len)
        annotations, keys, state = encode(params, src)
        batch = annotations.shape[0]

        def body(carry, _):
            state, prev, done = carry
            state, log_probs = step(params, annotations, keys, state, prev)
            token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
            if eos_id is not None:
                token = jnp.where(done, eos_id, token)
                done = done | (token == eos_id)
            return (state, token, done), token

        start = (state, jnp.full((batch,), bos_id, jnp.int32), jnp.zeros((batch,), bool))
        _, tokens = jax.lax.scan(body, start, None, length=max_len)
        return jnp.swapaxes(tokens, 0, 1)

    def beam_search(params, src, beam_width: int, max_len: int):
        """The ``beam_width`` best hypotheses by total log-probability.

        At each step every live hypothesis is extended by every token and the
        ``beam_width`` best extensions are kept (a finished hypothesis, one that
        emitted ``eos_id``, can only be extended by ``EOS`` at no cost). Returns
        ``(tokens, scores)``: ``(B, beam_width, max_len)`` and ``(B, beam_width)``,
        best first. With ``beam_width = 1`` this is :func:`greedy`; with
        ``beam_width ≥ tgt_vocab^(max_len−1)`` it is exhaustive search.
        """
        beam_width = check_positive_int(name, "beam_width", beam_width)
        max_len = check_len(max_len)
        annotations, keys, state = encode(params, src)
        batch, K, V = annotations.shape[0], beam_width, tgt_vocab
        tile = lambda a: jnp.repeat(a, K, axis=0)  # (B, ...) -> (B*K, ...), beams of an example adjacent
        annotations, keys = tile(annotations), tile(keys)
        state = jax.tree_util.tree_map(tile, state)
        # Only beam 0 is live at the start, so the first step does not pick K copies of one token.
        scores = jnp.tile(jnp.where(jnp.arange(K) == 0, 0.0, -jnp.inf)[None, :], (batch, 1)).astype(annotations.dtype)
        history = jnp.zeros((batch, K, max_len), jnp.int32)
        prev = jnp.full((batch * K,), bos_id, jnp.int32)
        done = jnp.zeros((batch, K), bool)
        eos_only = None if eos_id is None else jnp.where(jnp.arange(V) == eos_id, 0.0, -jnp.inf).astype(annotations.dtype)

        def body(carry, t):
            state, prev, scores, history, done = carry
            state, log_probs = step(params, annotations, keys, state, prev)
            log_probs = log_probs.reshape(batch, K, V)
            if eos_id is not None:
                log_probs = jnp.where(done[..., None], eos_only[None, None, :], log_probs)
            candidates = (scores[..., None] + log_probs).reshape(batch, K * V)
            scores, flat = jax.lax.top_k(candidates, K)
            parent, token = flat // V, (flat % V).astype(jnp.int32)
            rows = (jnp.arange(batch)[:, None] * K + parent).reshape(-1)
            state = jax.tree_util.tree_map(lambda s: s[rows], state)
            history = jnp.take_along_axis(history, parent[..., None], axis=1).at[:, :, t].set(token)
            if eos_id is not None:
                done = jnp.take_along_axis(done, parent, axis=1) | (token == eos_id)
            return (state, token.reshape(-1), scores, history, done), None

        (_, _, scores, history, _), _ = jax.lax.scan(body, (state, prev, scores, history, done), jnp.arange(max_len))
        return history, scores

    def check_ids(what: str, tokens, vocab: int):
        """Out-of-range token ids raise here when they are concrete (under ``jit`` they give NaN rows)."""
        try:
            ids = np.asarray(tokens)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            return
        if ids.size and np.issubdtype(ids.dtype, np.integer) and (ids.min() < 0 or ids.max() >= vocab):
            raise ValueError(f"{name}: expected {what} ids in [0, {vocab}), got range [{ids.min()}, {ids.max()}]")

    def checked(fn, target: str | None = None):
        """``fn(params, src, tgt_or_arg, ...)``, compiled once per model and shape (eager calls
        would re-trace every scan), after the concrete id checks."""

        def wrapper(params, src, *args, **kwargs):
            check_ids("src", src, src_vocab)
            if target is not None:
                check_ids(target, args[0] if args else kwargs[target], tgt_vocab)
            return fn(params, src, *args, **kwargs)

        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper

    return Seq2Seq(
        init,
        checked(jax.jit(apply), "tgt_in"),
        checked(jax.jit(loss), "tgt"),
        checked(jax.jit(greedy, static_argnums=2)),
        checked(jax.jit(beam_search, static_argnums=(2, 3))),
        checked(jax.jit(sequence_log_prob), "tgt"),
        config,
        checked(jax.jit(attention), "tgt_in"),
    )


__all__ = ["Seq2Seq", "causal_lm_loss", "lm_cross_entropy", "rnn_classifier", "rnn_lm", "seq2seq"]
