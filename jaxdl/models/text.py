"""Models for text of the seeds' NLP chapter: a CNN for sentences and skip-gram word embeddings.

``text_cnn`` (seeds, "Conv. Nets for Natural Language" / "Convolutions in
Sequences, NLP": map the word sequence to its sentence matrix of embeddings,
convolve with filters covering 2, 3, 4 … words, pool each channel of variable
length to a single number, predict; Kim 2014): ::

    Embedding(V, d) → FanOut → [Conv(f, (w,)) → φ → max over time] for w in widths → concat → Dense(classes)

Skip-gram with negative sampling (seeds, "Skip-gram"): over the co-occurrence
set ``C_R = {(i, j): 1 ≤ |i − j| ≤ R}`` of a token sequence ``w``, maximise

    Σ_{(i,j) ∈ C_R} [ log σ(x_{w_i}ᵀ z_{w_j}) + k · E_{v ∼ p_n} log σ(−x_{w_i}ᵀ z_v) ],   p_n(v) ∝ p(v)^α,

the logistic-regression stand-in for the softmax ``log p(v|w) = x_vᵀ z_w − log Σ_u exp(x_uᵀ z_w)``
whose partition function is too costly. ``x`` are the word (centre)
embeddings, ``z`` the context embeddings; the ``k`` expectation is estimated with
``k`` samples from ``p_n`` (``α = 3/4``). :func:`skipgram_loss` is the negated
objective averaged over a batch of pairs, :func:`train_skipgram` fits it with
Adam, and :func:`nearest_neighbours` answers cosine-similarity queries.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, positive_ints
from jaxdl.stax.layer import LayerSpec, check_array, check_key, check_positive_int, check_shape, make_layer
from jaxdl.stax.recurrent import Embedding


def _max_over_time():
    """Max over the time axis of ``(batch, time, channels)``: one number per channel (finite width only)."""
    name = "MaxOverTime"

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"{name}: expected an input shape (batch, time, channels), got {input_shape!r}")
        return (input_shape[0], input_shape[2]), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, ndim=3)
        if x.shape[1] == 0:
            raise ValueError(f"{name}: expected at least one time step, got shape {tuple(x.shape)}")
        return jnp.max(x, axis=1)

    return make_layer(name, init_fn, apply_fn, LayerSpec(name))


def text_cnn(
    vocab_size: int,
    num_classes: int,
    *,
    embed_dim: int = 32,
    widths=(2, 3, 4),
    num_filters: int = 16,
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "standard",
):
    """A sentence CNN on integer tokens ``(batch, time)`` → logits ``(batch, num_classes)``.

    Each width ``w`` in ``widths`` is a bank of ``num_filters`` 1-D convolutions
    over ``w`` consecutive word embeddings (``VALID`` padding, so sentences need
    ``time ≥ max(widths)``), followed by ``activation`` and max-over-time
    pooling; the pooled features of all widths are concatenated
    (``len(widths) · num_filters`` of them) and read out by a ``Dense``.
    """
    name = "text_cnn"
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    num_classes = check_positive_int(name, "num_classes", num_classes)
    embed_dim = check_positive_int(name, "embed_dim", embed_dim)
    widths = positive_ints(name, "widths", widths)
    num_filters = check_positive_int(name, "num_filters", num_filters)
    affine = affine_options(name, W_std, b_std, parameterization)
    branches = [
        stax.serial(stax.Conv(num_filters, (w,), padding="VALID", **affine), make_activation(name, activation), _max_over_time())
        for w in widths
    ]
    return stax.serial(
        Embedding(vocab_size, embed_dim),
        stax.FanOut(len(widths)),
        stax.parallel(*branches),
        stax.FanInConcat(axis=-1),
        stax.Dense(num_classes, **affine),
    )


# --- skip-gram with negative sampling ------------------------------------------------


def _tokens_1d(name: str, tokens) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(f"{name}: expected a 1-D integer token array, got dtype {tokens.dtype} and shape {tokens.shape}")
    if tokens.size and tokens.min() < 0:
        raise ValueError(f"{name}: expected non-negative token ids, got minimum {tokens.min()}")
    return tokens


def skipgram_pairs(tokens, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(centre, context) = (w_i, w_j)`` with ``1 ≤ |i − j| ≤ window`` (the seeds' ``C_R``), as two int32 arrays."""
    name = "skipgram_pairs"
    tokens = _tokens_1d(name, tokens)
    window = check_positive_int(name, "window", window)
    centres, contexts = [], []
    for offset in range(1, window + 1):
        if offset >= len(tokens):
            break
        left, right = tokens[:-offset], tokens[offset:]
        centres += [left, right]
        contexts += [right, left]
    if not centres:
        raise ValueError(f"{name}: expected at least 2 tokens, got {len(tokens)}")
    return np.concatenate(centres).astype(np.int32), np.concatenate(contexts).astype(np.int32)


def init_skipgram(key, vocab_size: int, dim: int) -> dict:
    """Word embeddings ``x`` ~ U(−½/dim, ½/dim) and context embeddings ``z`` = 0 (word2vec's start), each ``(vocab_size, dim)``."""
    name = "init_skipgram"
    key = check_key(name, key)
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    dim = check_positive_int(name, "dim", dim)
    x = jax.random.uniform(key, (vocab_size, dim), minval=-0.5 / dim, maxval=0.5 / dim)
    return {"x": x, "z": jnp.zeros((vocab_size, dim))}


def skipgram_loss(params, centres, contexts, negatives) -> jax.Array:
    """The negated skip-gram objective per pair, averaged over the batch:

    ``mean_b [ −log σ(x_{c_b}ᵀ z_{o_b}) − Σ_{s=1}^{k} log σ(−x_{c_b}ᵀ z_{n_{b,s}}) ]``

    for ``centres`` and ``contexts`` of shape ``(B,)`` and ``negatives`` of shape
    ``(B, k)`` (``k`` samples of the noise distribution per pair). ``log σ`` is
    evaluated stably (no overflow for large scores).
    """
    name = "skipgram_loss"
    centres, contexts, negatives = jnp.asarray(centres), jnp.asarray(contexts), jnp.asarray(negatives)
    if centres.ndim != 1 or contexts.shape != centres.shape:
        raise ValueError(f"{name}: expected centres and contexts of the same shape (B,), got {centres.shape} and {contexts.shape}")
    if negatives.ndim != 2 or negatives.shape[0] != centres.shape[0]:
        raise ValueError(f"{name}: expected negatives of shape (B, k) with B = {centres.shape[0]}, got {negatives.shape}")
    x = params["x"][centres]  # (B, d)
    positive = jnp.sum(x * params["z"][contexts], axis=-1)  # (B,)
    negative = jnp.einsum("bd,bkd->bk", x, params["z"][negatives])  # (B, k)
    per_pair = -jax.nn.log_sigmoid(positive) - jnp.sum(jax.nn.log_sigmoid(-negative), axis=-1)
    return jnp.mean(per_pair)


def noise_logits(tokens, vocab_size: int, alpha: float = 0.75) -> jax.Array:
    """Logits of the seeds' noise distribution ``p_n(v) ∝ p(v)^α`` (``−inf`` for words never seen)."""
    counts = np.bincount(_tokens_1d("noise_logits", tokens), minlength=vocab_size).astype(np.float64)
    with np.errstate(divide="ignore"):
        return jnp.asarray(alpha * np.log(counts), dtype=jnp.float32)


def train_skipgram(
    tokens,
    vocab_size: int,
    *,
    dim: int = 32,
    window: int = 2,
    num_negatives: int = 5,
    alpha: float = 0.75,
    steps: int = 1000,
    batch_size: int = 512,
    learning_rate: float = 0.01,
    key=None,
):
    """Fit skip-gram with negative sampling on the token sequence ``tokens``.

    Each step draws ``batch_size`` pairs uniformly from :func:`skipgram_pairs`
    and ``num_negatives`` noise words per pair from ``p_n ∝ p^α``, and takes an
    Adam step on :func:`skipgram_loss`. Returns ``(params, losses)``:
    ``params = {"x": word embeddings, "z": context embeddings}``, both
    ``(vocab_size, dim)``, and the per-step losses ``(steps,)``.
    """
    name = "train_skipgram"
    tokens = _tokens_1d(name, tokens)
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    if tokens.size and tokens.max() >= vocab_size:
        raise ValueError(f"{name}: token id {tokens.max()} is outside the vocabulary of size {vocab_size}")
    for arg, value in (("steps", steps), ("batch_size", batch_size), ("num_negatives", num_negatives)):
        check_positive_int(name, arg, value)
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"{name}: expected 0 <= alpha <= 1, got {alpha!r}")
    key = check_key(name, jax.random.key(0) if key is None else key)
    centres, contexts = (jnp.asarray(a) for a in skipgram_pairs(tokens, window))
    logits = noise_logits(tokens, vocab_size, alpha)
    key, init_key = jax.random.split(key)
    params = init_skipgram(init_key, vocab_size, dim)
    optimiser = optax.adam(learning_rate)

    def step(carry, step_key):
        params, opt_state = carry
        k_pairs, k_noise = jax.random.split(step_key)
        rows = jax.random.randint(k_pairs, (batch_size,), 0, centres.shape[0])
        negatives = jax.random.categorical(k_noise, logits, shape=(batch_size, num_negatives))
        loss, grads = jax.value_and_grad(skipgram_loss)(params, centres[rows], contexts[rows], negatives)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.jit(lambda p, ks: jax.lax.scan(step, (p, optimiser.init(p)), ks))(
        params, jax.random.split(key, steps)
    )
    return params, losses


def nearest_neighbours(embeddings, index: int, k: int = 5):
    """The ``k`` words closest to word ``index`` by cosine similarity (itself excluded):
    ``(indices, similarities)``, most similar first. Zero vectors have similarity 0."""
    name = "nearest_neighbours"
    embeddings = jnp.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"{name}: expected embeddings of shape (vocab_size, dim), got {embeddings.shape}")
    vocab_size = embeddings.shape[0]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < vocab_size:
        raise ValueError(f"{name}: expected index in [0, {vocab_size}), got {index!r}")
    k = check_positive_int(name, "k", k)
    if k >= vocab_size:
        raise ValueError(f"{name}: expected k < vocab_size = {vocab_size}, got {k}")
    norms = jnp.linalg.norm(embeddings, axis=-1)
    unit = embeddings / jnp.maximum(norms, jnp.finfo(embeddings.dtype).tiny)[:, None]
    similarity = unit @ unit[index]
    similarity = similarity.at[index].set(-jnp.inf)
    top, indices = jax.lax.top_k(similarity, k)
    return indices, top


__all__ = ["init_skipgram", "nearest_neighbours", "noise_logits", "skipgram_loss", "skipgram_pairs", "text_cnn", "train_skipgram"]
