"""Transformer models built from :mod:`jaxdl.stax.transformer`: ``gpt`` (decoder-only
language model with sampling and a key/value cache), ``bert`` (encoder with the
masked-language-model objective), ``vit`` (vision transformer) and
``transformer`` (encoder-decoder for translation).

Seed formulas (the attention chapters):

* GPT (seeds: "Generative Pre-trained Transformers": the decoder part of the
  transformer, "trained with masked attention on next token prediction"): the
  causal factorisation ``P(x_1..x_T) = Π_t P(x_t | x_<t)`` (seeds: "Sequence
  Learning"), trained with the mean next-token cross-entropy
  (``models.causal_lm_loss``; in nats, divide by ``ln 2`` for bits).
* BERT (seeds: "mask 15% of the total words (80% mask, 10% random token, 10%
  unchanged)"; the Cloze task with left and right context): :func:`mlm_mask`
  selects each position with probability ``mask_prob``; a selected token becomes
  ``mask_id`` with probability 0.8, a uniformly random token of the vocabulary
  with 0.1 and stays unchanged with 0.1; :func:`mlm_loss` is the cross-entropy
  on the selected positions only.
* ViT (seeds: ``patch_t ∈ R^{p×p×c} ↦ x_t := V vec(patch_t) ∈ R^n``, ``V ∈
  R^{n×(cp²)}``, non-overlapping patches): the patch embedding is a convolution
  with a ``p × p`` filter and stride ``p`` (:func:`patch_embedding`, equal to the
  explicit reshape-and-matmul), a learned class token prepended, learned
  position embeddings, and the classifier on the class token's final state.
* Encoder-decoder (seeds: "Machine translation": the encoder applies MHSA to the
  input sequence, the decoder masked MHSA to the history and then
  cross-attention to the encoded input; MLP, layer normalisation, residuals),
  with the seeds' sinusoidal positional encoding.

Inputs: token ids ``(batch, time)`` of integers in ``[0, vocab)``; images
``(batch, height, width, channels)``. Eager calls check the ids and raise
``ValueError``; under ``jit`` an out-of-range id gives NaN logits
(``stax.Embedding``'s rule). Dropout (``dropout_rate``, the drop probability)
is active only when ``apply_fn`` gets ``key=``.

Generation (:func:`gpt_generate`): with ``use_cache=True`` the prompt is run
once to fill a fixed-size key/value cache (one per layer, ``context_length``
long), then each new token costs one query against the cache (a ``lax.scan``
of single-token steps): ``n`` tokens cost ``n`` attention steps of one query.
``use_cache=False`` re-runs the model on the whole (fixed-size) buffer for every
new token, the O(n²) recomputation; both give the same tokens (tested).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxdl.stax.layer import LayerSpec, check_array, check_choice, check_key, check_positive_int, check_shape, make_layer
from jaxdl.stax.recurrent import Embedding
from jaxdl.stax.transformer import (
    IMPLEMENTATIONS,
    PositionalEncoding,
    TransformerBlock,
    attention_cache,
    layer_norm,
)

LN_EPS = 1e-5


# --- shared pieces ---------------------------------------------------------------


def _check_bool(name: str, what: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected {what} to be a bool, got {value!r}")
    return value


def _check_rate(name: str, rate) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected dropout_rate (the drop probability) in [0, 1), got {rate!r}")
    return float(rate)


def _head_dim(name: str, d_model: int, num_heads: int) -> int:
    if d_model % num_heads:
        raise ValueError(f"{name}: expected d_model divisible by num_heads, got d_model={d_model}, num_heads={num_heads}")
    return d_model // num_heads


def _dense(key, fan_in: int, fan_out: int) -> dict:
    return {"W": jax.random.normal(key, (fan_in, fan_out)) / math.sqrt(fan_in), "b": jnp.zeros((fan_out,))}


def _affine(x, p):
    return x @ p["W"] + p["b"].reshape((1,) * (x.ndim - 1) + (-1,))


def _ln_params(dim: int) -> dict:
    return {"scale": jnp.ones((dim,)), "bias": jnp.zeros((dim,))}


def _token_ids(name: str, tokens, vocab: int | None = None) -> jax.Array:
    """Integer ids ``(batch, time)``; concrete ids are range-checked against ``vocab``."""
    tokens = check_array(name, tokens)
    if tokens.ndim != 2:
        raise ValueError(f"{name}: expected token ids of shape (batch, time), got shape {tuple(tokens.shape)}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"{name}: expected integer token ids, got dtype {tokens.dtype}")
    if vocab is not None:
        _check_ids(name, "token", tokens, vocab)
    return tokens


def _check_ids(name: str, what: str, tokens, vocab: int) -> None:
    """Out-of-range ids raise when they are concrete (under ``jit`` they give NaN rows)."""
    try:
        ids = np.asarray(tokens)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    if ids.size and np.issubdtype(ids.dtype, np.integer) and (ids.min() < 0 or ids.max() >= vocab):
        bad = ids[(ids < 0) | (ids >= vocab)].ravel()[0]
        raise ValueError(f"{name}: expected {what} ids in [0, {vocab}), got {int(bad)}")


def _check_length(name: str, what: str, length: int, context_length: int) -> None:
    if length > context_length:
        raise ValueError(f"{name}: expected {what} of at most context_length={context_length} tokens, got {length}")


def _blocks_init(keys, blocks, shape):
    return {f"block_{i}": block.init(k, shape)[1] for i, (block, k) in enumerate(zip(blocks, keys))}


def _run_blocks(blocks, params, h, *, key=None, train=None, mask=None, return_attention=False, cache=None):
    """The residual stream through every block; returns ``(h, per-layer extras)``
    (attention weights or new caches) or ``(h, None)``."""
    active = key is not None and train is not False
    keys = jax.random.split(key, len(blocks)) if active else [None] * len(blocks)
    extras = []
    for i, block in enumerate(blocks):
        kwargs = dict(mask=mask, key=keys[i], train=train)
        if cache is not None:
            h, new_cache = block.apply(params[f"block_{i}"], h, cache=cache[i], **kwargs)
            extras.append(new_cache)
        elif return_attention:
            h, weights = block.apply(params[f"block_{i}"], h, return_attention=True, **kwargs)
            extras.append(weights)
        else:
            h = block.apply(params[f"block_{i}"], h, **kwargs)
    return h, (tuple(extras) if extras else None)


# --- GPT -------------------------------------------------------------------------


def _blocks(name, *, causal, d_model, num_heads, num_layers, mlp_ratio, dropout_rate, pre_ln, implementation,
            cross_attention=False):  # fmt: skip
    """Check the hyperparameters every transformer model here shares and build its ``num_layers``
    ``TransformerBlock``s (``head_dim = d_model / num_heads``, MLP width ``mlp_ratio · d_model``).
    Returns ``(blocks, hyper)``, ``hyper`` the checked values as the spec records them."""
    hyper = dict(d_model=check_positive_int(name, "d_model", d_model),
                 num_heads=check_positive_int(name, "num_heads", num_heads),
                 num_layers=check_positive_int(name, "num_layers", num_layers),
                 mlp_ratio=check_positive_int(name, "mlp_ratio", mlp_ratio),
                 dropout_rate=_check_rate(name, dropout_rate), pre_ln=_check_bool(name, "pre_ln", pre_ln))  # fmt: skip
    implementation = check_choice(name, "implementation", implementation, IMPLEMENTATIONS)
    head_dim = _head_dim(name, hyper["d_model"], hyper["num_heads"])
    blocks = [
        TransformerBlock(hyper["num_heads"], head_dim, hyper["mlp_ratio"] * hyper["d_model"], pre_ln=hyper["pre_ln"],
                         dropout_rate=hyper["dropout_rate"], causal=causal, cross_attention=cross_attention,
                         implementation=implementation)  # fmt: skip
        for _ in range(hyper["num_layers"])
    ]
    return blocks, hyper


def _token_stack(name, *, causal, vocab_size, context_length, d_model, num_heads, num_layers, mlp_ratio,
                 dropout_rate, pre_ln, implementation):  # fmt: skip
    """What GPT and BERT share: Embedding → learned positions → ``num_layers`` blocks → final
    LayerNorm (pre-LN) → vocabulary head. Checks the hyperparameters and returns
    ``(init_fn, forward, spec)`` with ``forward(params, tokens, *, offset=0, **block_kwargs)
    -> (logits, extras)`` (``extras`` from :func:`_run_blocks`)."""
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    context_length = check_positive_int(name, "context_length", context_length)
    blocks, hyper = _blocks(name, causal=causal, d_model=d_model, num_heads=num_heads, num_layers=num_layers,
                            mlp_ratio=mlp_ratio, dropout_rate=dropout_rate, pre_ln=pre_ln,
                            implementation=implementation)  # fmt: skip
    d_model, pre_ln = hyper["d_model"], hyper["pre_ln"]
    embed = Embedding(vocab_size, d_model)
    pos = PositionalEncoding("learned", context_length)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = check_shape(name, input_shape)
        if len(shape) != 2:
            raise ValueError(f"{name}: expected input_shape (batch, time) of token ids, got {input_shape!r}")
        _check_length(name, "input_shape with sequences", shape[1], context_length)
        keys = jax.random.split(key, len(blocks) + 3)
        seq = (shape[0], context_length, d_model)
        params = {"embed": embed.init(keys[0], shape)[1], "pos": pos.init(keys[1], seq)[1]}
        params.update(_blocks_init(keys[3:], blocks, seq))
        params["ln_f"] = _ln_params(d_model)
        params["head"] = _dense(keys[2], d_model, vocab_size)
        return shape + (vocab_size,), params

    def forward(params, tokens, *, offset=0, **block_kwargs):
        tokens = _token_ids(name, tokens)
        _check_length(name, "sequences", tokens.shape[1], context_length)
        h = pos.apply(params["pos"], embed.apply(params["embed"], tokens), offset=offset)
        h, extras = _run_blocks(blocks, params, h, **block_kwargs)
        if pre_ln:
            h = layer_norm(h, params["ln_f"], LN_EPS)
        return _affine(h, params["head"]), extras

    spec = LayerSpec(name, dict(vocab_size=vocab_size, context_length=context_length, **hyper))
    return init_fn, forward, spec


def gpt(
    vocab_size: int,
    *,
    context_length: int,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    mlp_ratio: int = 4,
    dropout_rate: float = 0.0,
    pre_ln: bool = True,
    implementation: str = "xla",
):
    """A decoder-only transformer language model (GPT): ``(init_fn, apply_fn, kernel_fn)``.

    Token embedding (``N(0, 1)``) + learned position embedding (``N(0, 0.02²)``),
    ``num_layers`` causal ``TransformerBlock``s (``head_dim = d_model / num_heads``,
    MLP width ``mlp_ratio · d_model``), a final layer norm (pre-LN) and a linear
    read-out to ``vocab_size`` logits.

    ``init_fn(key, (-1, T))`` with ``T <= context_length``;
    ``apply_fn(params, tokens, *, key=None, train=None, cache=None, return_attention=False)``
    maps ``(B, T)`` ids to ``(B, T, vocab_size)`` logits; ``return_attention``
    adds a tuple (one per layer) of ``(B, heads, T, T)`` weights; ``cache`` (a tuple of
    per-layer :func:`~jaxdl.stax.transformer.attention_cache`) gives ``(logits, new_cache)``.
    Params: ``{"embed", "pos", "block_0", ..., "ln_f", "head"}``. No infinite-width kernel.
    """
    name = "GPT"
    init_fn, forward, spec = _token_stack(
        name, causal=True, vocab_size=vocab_size, context_length=context_length, d_model=d_model,
        num_heads=num_heads, num_layers=num_layers, mlp_ratio=mlp_ratio, dropout_rate=dropout_rate, pre_ln=pre_ln,
        implementation=implementation)  # fmt: skip

    def apply_fn(params, tokens, *, key=None, train=None, cache=None, return_attention=False, **kwargs):
        if cache is not None and (not isinstance(cache, tuple) or len(cache) != num_layers):
            raise ValueError(f"{name}: expected cache to be a tuple of {num_layers} attention caches, got {type(cache).__name__}")
        offset = 0 if cache is None else cache[0]["index"]
        logits, extras = forward(params, tokens, offset=offset, key=key, train=train,
                                 return_attention=return_attention, cache=cache)  # fmt: skip
        return logits if extras is None else (logits, extras)

    return make_layer(name, init_fn, apply_fn, spec)


def _gpt_shapes(params) -> tuple[int, int, int, int, int]:
    """``(vocab, context_length, num_layers, num_heads, head_dim)`` read from GPT params."""
    name = "gpt_generate"
    try:
        vocab = params["embed"]["E"].shape[0]
        context = params["pos"]["P"].shape[0]
        layers = sum(1 for k in params if k.startswith("block_"))
        _, _, heads, head_dim = params["block_0"]["attn"]["W_qkv"].shape
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"{name}: expected the params of models.gpt, got {type(params).__name__} ({error})") from None
    return vocab, context, layers, heads, head_dim


def _sample(logits, key, temperature: float, top_k: int | None):
    """Greedy (``temperature == 0``) or a draw from ``softmax(logits / temperature)``
    restricted to the ``top_k`` largest logits."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_k is not None:
        kth = lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _generate(apply_fn, params, prompt, key, num_new_tokens, temperature, top_k, use_cache):
    _, context, layers, heads, head_dim = _gpt_shapes(params)
    batch, length = prompt.shape
    prompt = prompt.astype(jnp.int32)
    if use_cache:
        dtype = params["head"]["W"].dtype
        cache = tuple(attention_cache(batch, context, heads, head_dim, dtype) for _ in range(layers))
        logits, cache = apply_fn(params, prompt, cache=cache)
        first = _sample(logits[:, -1], jax.random.fold_in(key, 0), temperature, top_k)

        def step(carry, i):
            cache, token = carry
            logits, cache = apply_fn(params, token[:, None], cache=cache)
            token = _sample(logits[:, 0], jax.random.fold_in(key, i), temperature, top_k)
            return (cache, token), token

        _, rest = lax.scan(step, (cache, first), jnp.arange(1, num_new_tokens))
        new = jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)
        return jnp.concatenate([prompt, new], axis=1)

    total = length + num_new_tokens
    buffer = jnp.zeros((batch, total), jnp.int32).at[:, :length].set(prompt)

    def recompute(buffer, i):  # causality: the zeros after position length + i - 1 do not matter
        logits = apply_fn(params, buffer)
        last = lax.dynamic_index_in_dim(logits, length + i - 1, axis=1, keepdims=False)
        token = _sample(last, jax.random.fold_in(key, i), temperature, top_k)
        return lax.dynamic_update_slice(buffer, token[:, None], (0, length + i)), None

    buffer, _ = lax.scan(recompute, buffer, jnp.arange(num_new_tokens))
    return buffer


_generate_jit = jax.jit(_generate, static_argnums=(0, 4, 5, 6, 7))


def gpt_generate(apply_fn: Callable, params, prompt, num_new_tokens: int, key, *, temperature: float = 1.0,
                 top_k: int | None = None, use_cache: bool = True) -> jax.Array:
    """Continue ``prompt`` ``(B, P)`` by ``num_new_tokens`` sampled tokens: ``(B, P + n)``.

    ``temperature = 0`` is greedy decoding (argmax); ``top_k`` keeps the ``k`` most
    likely tokens. Token ``i`` of the continuation is drawn with
    ``jax.random.fold_in(key, i)``, so cached and uncached generation draw the same
    tokens. Needs ``P + n <= context_length`` (module docstring for the cache).
    """
    name = "gpt_generate"
    vocab, context, _, _, _ = _gpt_shapes(params)
    prompt = _token_ids(name, prompt, vocab)
    num_new_tokens = check_positive_int(name, "num_new_tokens", num_new_tokens)
    if prompt.shape[1] == 0:
        raise ValueError(f"{name}: expected a prompt of at least one token, got shape {tuple(prompt.shape)}")
    if prompt.shape[1] + num_new_tokens > context:
        raise ValueError(
            f"{name}: expected prompt length + num_new_tokens <= context_length={context}, "
            f"got {prompt.shape[1]} + {num_new_tokens}"
        )
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature < math.inf:
        raise ValueError(f"{name}: expected temperature to be a finite float >= 0, got {temperature!r}")
    if top_k is not None:
        top_k = check_positive_int(name, "top_k", top_k)
        if top_k > vocab:
            raise ValueError(f"{name}: expected top_k <= vocab_size={vocab}, got {top_k}")
    use_cache = _check_bool(name, "use_cache", use_cache)
    key = check_key(name, key)
    return _generate_jit(apply_fn, params, prompt, key, num_new_tokens, float(temperature), top_k, use_cache)


# --- BERT ------------------------------------------------------------------------


def bert(
    vocab_size: int,
    *,
    context_length: int,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    mlp_ratio: int = 4,
    dropout_rate: float = 0.0,
    pre_ln: bool = True,
    implementation: str = "xla",
):
    """A transformer encoder with a masked-language-model head (BERT).

    As :func:`gpt` but with bidirectional (non-causal) attention;
    ``apply_fn(params, tokens, *, mask=None, key=None, train=None, return_attention=False)``
    gives MLM logits ``(B, T, vocab_size)``; ``mask`` ``(B, T)`` marks the real
    tokens (True) against padding. Train with :func:`mlm_loss`.
    """
    name = "BERT"
    init_fn, forward, spec = _token_stack(
        name, causal=False, vocab_size=vocab_size, context_length=context_length, d_model=d_model,
        num_heads=num_heads, num_layers=num_layers, mlp_ratio=mlp_ratio, dropout_rate=dropout_rate, pre_ln=pre_ln,
        implementation=implementation)  # fmt: skip

    def apply_fn(params, tokens, *, mask=None, key=None, train=None, return_attention=False, **kwargs):
        logits, weights = forward(params, tokens, key=key, train=train, mask=mask, return_attention=return_attention)
        return (logits, weights) if return_attention else logits

    return make_layer(name, init_fn, apply_fn, spec)


def mlm_mask(key, tokens, *, mask_id: int, vocab_size: int, mask_prob: float = 0.15):
    """BERT's masking rule: ``(masked_tokens, targets, weights)``.

    Each position is selected with probability ``mask_prob``; a selected token is
    replaced by ``mask_id`` (probability 0.8), by a token drawn uniformly from
    ``[0, vocab_size)`` (0.1) or kept (0.1). ``targets`` are the original tokens,
    ``weights`` 1.0 at the selected positions and 0.0 elsewhere.
    """
    name = "mlm_mask"
    key = check_key(name, key)
    vocab_size = check_positive_int(name, "vocab_size", vocab_size)
    tokens = _token_ids(name, tokens, vocab_size)
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or not 0 <= mask_id < vocab_size:
        raise ValueError(f"{name}: expected mask_id to be an int in [0, {vocab_size}), got {mask_id!r}")
    if isinstance(mask_prob, bool) or not isinstance(mask_prob, (int, float)) or not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"{name}: expected mask_prob in (0, 1], got {mask_prob!r}")
    k_select, k_kind, k_random = jax.random.split(key, 3)
    selected = jax.random.bernoulli(k_select, mask_prob, tokens.shape)
    u = jax.random.uniform(k_kind, tokens.shape)
    random_tokens = jax.random.randint(k_random, tokens.shape, 0, vocab_size, tokens.dtype)
    masked = jnp.where(selected & (u < 0.8), jnp.asarray(mask_id, tokens.dtype), tokens)
    masked = jnp.where(selected & (u >= 0.8) & (u < 0.9), random_tokens, masked)
    return masked, tokens, selected.astype(jnp.float32)


def mlm_loss(apply_fn: Callable, params, key, tokens, *, mask_id: int, vocab_size: int, mask_prob: float = 0.15):
    """Masked-language-model loss: mean cross-entropy (nats) over the positions
    :func:`mlm_mask` selected (0 when none is selected)."""
    masked, targets, weights = mlm_mask(key, tokens, mask_id=mask_id, vocab_size=vocab_size, mask_prob=mask_prob)
    logits = apply_fn(params, masked)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    weights = weights.astype(ce.dtype)
    return jnp.sum(weights * ce) / jnp.maximum(jnp.sum(weights), 1.0)


# --- ViT -------------------------------------------------------------------------


def patch_embedding(images, W, b, patch_size: int):
    """Non-overlapping ``p × p`` patches, each mapped linearly to ``D`` features, as a
    convolution with filter ``W: (p, p, C, D)`` and stride ``p``: ``(B, H, W, C) ->
    (B, (H/p)(W/p), D)``, patches in row-major order."""
    p = patch_size
    out = lax.conv_general_dilated(images, W.astype(images.dtype), (p, p), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    out = out + b.reshape(1, 1, 1, -1).astype(out.dtype)
    return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


def vit(
    num_classes: int,
    *,
    patch_size: int = 4,
    d_model: int = 64,
    num_heads: int = 4,
    num_layers: int = 2,
    mlp_ratio: int = 2,
    dropout_rate: float = 0.0,
    pre_ln: bool = True,
    implementation: str = "xla",
):
    """A vision transformer: ``(init_fn, apply_fn, kernel_fn)`` on images ``(B, H, W, C)``.

    ``init_fn(key, (-1, H, W, C))`` needs ``H`` and ``W`` divisible by ``patch_size``;
    the ``N = HW/p²`` patch tokens follow a learned class token (token 0).
    ``apply_fn(params, images, *, key=None, train=None, return_attention=False)``
    gives logits ``(B, num_classes)``, with ``return_attention`` also a tuple (one
    per layer) of ``(B, heads, N+1, N+1)`` weights.
    Params: ``{"patch": {"W": (p, p, C, D), "b"}, "cls", "pos", "block_i", "ln_f", "head"}``.
    """
    name = "ViT"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    patch_size = check_positive_int(name, "patch_size", patch_size)
    blocks, hyper = _blocks(name, causal=False, d_model=d_model, num_heads=num_heads, num_layers=num_layers,
                            mlp_ratio=mlp_ratio, dropout_rate=dropout_rate, pre_ln=pre_ln,
                            implementation=implementation)  # fmt: skip
    d_model, num_layers, pre_ln = hyper["d_model"], hyper["num_layers"], hyper["pre_ln"]

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = check_shape(name, input_shape)
        if len(shape) != 4 or -1 in shape[1:]:
            raise ValueError(f"{name}: expected input_shape (batch, height, width, channels) with known sizes, got {input_shape!r}")
        _, height, width, channels = shape
        if height % patch_size or width % patch_size:
            raise ValueError(f"{name}: expected height and width divisible by patch_size={patch_size}, got {input_shape!r}")
        tokens = (height // patch_size) * (width // patch_size) + 1
        keys = jax.random.split(key, num_layers + 4)
        fan_in = patch_size * patch_size * channels
        params = {
            "patch": {
                "W": jax.random.normal(keys[0], (patch_size, patch_size, channels, d_model)) / math.sqrt(fan_in),
                "b": jnp.zeros((d_model,)),
            },
            "cls": 0.02 * jax.random.normal(keys[1], (d_model,)),
            "pos": PositionalEncoding("learned", tokens).init(keys[2], (shape[0], tokens, d_model))[1],
        }
        params.update(_blocks_init(keys[4:], blocks, (shape[0], tokens, d_model)))
        params["ln_f"] = _ln_params(d_model)
        params["head"] = _dense(keys[3], d_model, num_classes)
        return (shape[0], num_classes), params

    def apply_fn(params, images, *, key=None, train=None, return_attention=False, **kwargs):
        images = check_array(name, images)
        W = params["patch"]["W"]
        if images.ndim != 4:
            raise ValueError(f"{name}: expected images of shape (batch, height, width, channels), got shape {tuple(images.shape)}")
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise TypeError(f"{name}: expected images of a real floating dtype, got dtype {images.dtype}")
        if images.shape[3] != W.shape[2]:
            raise ValueError(f"{name}: expected images with {W.shape[2]} channels, got shape {tuple(images.shape)}")
        height, width = images.shape[1:3]
        tokens = params["pos"]["P"].shape[0]
        if height % patch_size or width % patch_size or (height // patch_size) * (width // patch_size) + 1 != tokens:
            raise ValueError(
                f"{name}: expected images whose {patch_size}x{patch_size} patches number {tokens - 1} "
                f"(as at init), got shape {tuple(images.shape)}"
            )
        images = images.astype(jnp.result_type(images.dtype, W.dtype))
        patches = patch_embedding(images, W, params["patch"]["b"], patch_size)
        cls = jnp.broadcast_to(params["cls"].astype(patches.dtype)[None, None, :], (patches.shape[0], 1, d_model))
        h = jnp.concatenate([cls, patches], axis=1)
        h = h + params["pos"]["P"][None].astype(h.dtype)
        h, weights = _run_blocks(blocks, params, h, key=key, train=train, return_attention=return_attention)
        if pre_ln:
            h = layer_norm(h, params["ln_f"], LN_EPS)
        logits = _affine(h[:, 0], params["head"])
        return (logits, weights) if return_attention else logits

    spec = LayerSpec(name, dict(num_classes=num_classes, patch_size=patch_size, **hyper))
    return make_layer(name, init_fn, apply_fn, spec)


# --- encoder-decoder ---------------------------------------------------------------


class Transformer(NamedTuple):
    """The functional encoder-decoder returned by :func:`transformer` (fields as
    ``models.Seq2Seq`` where they apply, plus ``attention``)."""

    init: Callable
    apply: Callable
    loss: Callable
    greedy: Callable
    sequence_log_prob: Callable
    attention: Callable
    config: dict


def transformer(
    src_vocab: int,
    tgt_vocab: int,
    *,
    context_length: int,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    mlp_ratio: int = 4,
    dropout_rate: float = 0.0,
    bos_id: int = 0,
    eos_id: int | None = None,
    pre_ln: bool = True,
    implementation: str = "xla",
) -> Transformer:
    """The encoder-decoder transformer for translation (module docstring).

    ``model.apply(params, src, tgt_in, key=None)`` gives next-token
    log-probabilities ``(B, n, tgt_vocab)`` (teacher forcing; log-softmaxed logits);
    ``model.loss(params, src, tgt, key=None)`` the mean NLL per target token with
    ``tgt_in = [bos, tgt[:-1]]`` (positions after the first ``eos_id`` count 0, as
    in ``Seq2Seq``); ``model.greedy(params, src, max_len)`` ``(B, max_len)``;
    ``model.sequence_log_prob(params, src, tgt)`` ``(B,)``;
    ``model.attention(params, src, tgt_in)`` the last decoder layer's
    cross-attention averaged over heads, ``(B, n, m)``. Source and target
    lengths are at most ``context_length``.
    """
    name = "transformer"
    src_vocab = check_positive_int(name, "src_vocab", src_vocab)
    tgt_vocab = check_positive_int(name, "tgt_vocab", tgt_vocab)
    context_length = check_positive_int(name, "context_length", context_length)
    block_args = dict(d_model=d_model, num_heads=num_heads, num_layers=num_layers, mlp_ratio=mlp_ratio,
                      dropout_rate=dropout_rate, pre_ln=pre_ln, implementation=implementation)  # fmt: skip
    encoder, hyper = _blocks(name, causal=False, **block_args)
    decoder, _ = _blocks(name, causal=True, cross_attention=True, **block_args)
    d_model, num_layers, pre_ln = hyper["d_model"], hyper["num_layers"], hyper["pre_ln"]
    for what, token in (("bos_id", bos_id), ("eos_id", eos_id)):
        if token is None and what == "eos_id":
            continue
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < tgt_vocab:
            raise ValueError(f"{name}: expected {what} to be an int in [0, {tgt_vocab}), got {token!r}")
    src_embed, tgt_embed = Embedding(src_vocab, d_model), Embedding(tgt_vocab, d_model)
    pos = PositionalEncoding("sinusoidal", context_length)
    config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, context_length=context_length, **hyper, bos_id=bos_id,
                  eos_id=eos_id)  # fmt: skip

    def init(key):
        key = check_key(name, key)
        keys = jax.random.split(key, 2 * num_layers + 3)
        seq = (-1, context_length, d_model)
        return {
            "src_embed": src_embed.init(keys[0], (-1, 1))[1],
            "tgt_embed": tgt_embed.init(keys[1], (-1, 1))[1],
            "encoder": {f"block_{i}": b.init(keys[3 + i], seq)[1] for i, b in enumerate(encoder)},
            "decoder": {f"block_{i}": b.init(keys[3 + num_layers + i], seq)[1] for i, b in enumerate(decoder)},
            "ln_enc": _ln_params(d_model),
            "ln_dec": _ln_params(d_model),
            "readout": _dense(keys[2], d_model, tgt_vocab),
        }

    def check_tokens(what: str, tokens, vocab: int):
        tokens = _token_ids(name, tokens)
        if tokens.shape[1] == 0:
            raise ValueError(f"{name}: expected {what} of shape (batch, length >= 1), got shape {tuple(tokens.shape)}")
        _check_length(name, what, tokens.shape[1], context_length)
        return tokens

    def split_keys(key):
        return [None, None] if key is None else list(jax.random.split(key))

    def encode(params, src, key=None):
        src = check_tokens("src", src, src_vocab)
        h = pos.apply({}, src_embed.apply(params["src_embed"], src))
        h, _ = _run_blocks(encoder, params["encoder"], h, key=key)
        return layer_norm(h, params["ln_enc"], LN_EPS) if pre_ln else h

    def decode(params, memory, tgt_in, key=None, return_attention=False):
        """Log-probabilities ``(B, n, V)`` (and the per-layer cross-attention weights)."""
        h = pos.apply({}, tgt_embed.apply(params["tgt_embed"], tgt_in))
        keys = jax.random.split(key, num_layers) if key is not None else [None] * num_layers
        cross = []
        for i, block in enumerate(decoder):
            p = params["decoder"][f"block_{i}"]
            if return_attention:
                h, (_, weights) = block.apply(p, h, kv=memory, key=keys[i], return_attention=True)
                cross.append(weights)
            else:
                h = block.apply(p, h, kv=memory, key=keys[i])
        if pre_ln:
            h = layer_norm(h, params["ln_dec"], LN_EPS)
        log_probs = jax.nn.log_softmax(_affine(h, params["readout"]), axis=-1)
        return (log_probs, cross) if return_attention else log_probs

    def apply(params, src, tgt_in, key=None):
        """Teacher forcing: log-probabilities ``(B, n, tgt_vocab)`` of the token after each of ``tgt_in``."""
        tgt_in = check_tokens("tgt_in", tgt_in, tgt_vocab)
        src = check_tokens("src", src, src_vocab)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"{name}: src and tgt_in have different batch sizes {src.shape[0]} and {tgt_in.shape[0]}")
        k_enc, k_dec = split_keys(key)
        return decode(params, encode(params, src, k_enc), tgt_in, k_dec)

    def shifted(tgt):
        bos = jnp.full((tgt.shape[0], 1), bos_id, tgt.dtype)
        return jnp.concatenate([bos, tgt[:, :-1]], axis=1)

    def token_log_probs(params, src, tgt, key=None):
        tgt = check_tokens("tgt", tgt, tgt_vocab)
        log_probs = apply(params, src, shifted(tgt), key)
        picked = jnp.take_along_axis(log_probs, tgt[..., None], axis=-1)[..., 0]
        if eos_id is None:
            return picked
        eos_before = jnp.cumsum(tgt == eos_id, axis=1) - (tgt == eos_id)
        return jnp.where(eos_before > 0, 0.0, picked)

    def loss(params, src, tgt, key=None):
        """Mean negative log-likelihood per target token (teacher forcing)."""
        return -jnp.mean(token_log_probs(params, src, tgt, key))

    def sequence_log_prob(params, src, tgt):
        """``log p(tgt | src)`` for each sequence of the batch, ``(B,)``."""
        return jnp.sum(token_log_probs(params, src, tgt), axis=1)

    def greedy(params, src, max_len: int):
        """The most probable next token at each step: ``(B, max_len)`` token ids
        (each step re-runs the decoder on the fixed-size prefix buffer)."""
        memory = encode(params, src)
        batch = memory.shape[0]
        tgt_in = jnp.full((batch, max_len), bos_id, jnp.int32)

        def body(carry, i):
            tgt_in, done = carry
            log_probs = decode(params, memory, tgt_in)
            token = jnp.argmax(lax.dynamic_index_in_dim(log_probs, i, axis=1, keepdims=False), axis=-1).astype(jnp.int32)
            if eos_id is not None:
                token = jnp.where(done, eos_id, token)
                done = done | (token == eos_id)
            # causality: position i + 1 of the buffer is only read from step i + 1 on
            tgt_in = lax.dynamic_update_slice(tgt_in, token[:, None], (0, jnp.minimum(i + 1, max_len - 1)))
            return (tgt_in, done), token

        _, tokens = lax.scan(body, (tgt_in, jnp.zeros((batch,), bool)), jnp.arange(max_len))
        return jnp.swapaxes(tokens, 0, 1)

    def attention(params, src, tgt_in):
        """Cross-attention of the last decoder layer, mean over heads: ``(B, n, m)``."""
        tgt_in = check_tokens("tgt_in", tgt_in, tgt_vocab)
        _, cross = decode(params, encode(params, src), tgt_in, return_attention=True)
        return jnp.mean(cross[-1], axis=1)

    def checked(fn, target: str | None = None):
        def wrapper(params, src, *args, **kwargs):
            _check_ids(name, "src", src, src_vocab)
            if target is not None:
                _check_ids(name, target, args[0] if args else kwargs[target], tgt_vocab)
            return fn(params, src, *args, **kwargs)

        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper

    def checked_greedy(params, src, max_len: int):
        max_len = check_positive_int(name, "max_len", max_len)
        _check_length(name, "max_len", max_len, context_length)
        return greedy_jit(params, src, max_len)

    greedy_jit = jax.jit(greedy, static_argnums=2)
    checked_greedy.__doc__ = greedy.__doc__
    return Transformer(
        init,
        checked(jax.jit(apply), "tgt_in"),
        checked(jax.jit(loss), "tgt"),
        checked(checked_greedy),
        checked(jax.jit(sequence_log_prob), "tgt"),
        checked(jax.jit(attention), "tgt_in"),
        config,
    )


__all__ = ["Transformer", "bert", "gpt", "gpt_generate", "mlm_loss", "mlm_mask", "patch_embedding", "transformer", "vit"]
