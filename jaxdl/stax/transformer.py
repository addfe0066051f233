"""Finite-width transformer layers on sequences ``(batch, time, features)``:
``MultiHeadAttention``, ``PositionalEncoding`` and ``TransformerBlock``.

Seed formulas (the attention chapters; row vectors, so the seeds' ``U_Q X`` is
``X W_Q`` here):

* Softmax attention (seeds: "Softmax attention", ``A = softmax(β QᵀK)``, ``β =
  1/√q``; "Self-attention", ``Ξ = softmax(Q Kᵀ / √d_k) V``)::

      Q = X W_Q,  K = S W_K,  V = S W_V,  Ξ_h = softmax(Q_h K_hᵀ / √d) V_h

  with ``S = X`` for self-attention and ``S`` another sequence for
  cross-attention (seeds: "Cross-attention", queries from the decoder, keys and
  values from the encoder states). Multi-head attention runs ``h`` heads in
  parallel and concatenates them along the features (seeds: "Multi-Headed
  Attention"), followed by the output projection ``W_O``. A causal mask restricts
  position ``t`` to keys ``s ≤ t`` (seeds: "Masked Attention, Decoder"); a padding
  mask removes keys. A masked logit is set to the dtype's most negative finite
  number, never ``-inf``, so a fully masked row gives uniform weights, not NaN.
* Sinusoidal positional encoding (seeds: ``p_tk = sin(t ω_k)`` for even ``k``,
  ``cos(t ω_k)`` for odd ``k``, ``ω_k = C^{k/d}``), with ``C = 1/base``,
  ``base = 10000`` and positions ``t = 0, 1, ...``. This is the seeds' formula
  literally: each feature ``k`` has its own frequency (Vaswani et al. share one
  frequency between features ``2i`` and ``2i+1``). ``kind='learned'`` adds a
  trained table ``P ~ N(0, W_std²)`` instead.
* Feature transformation (seeds: ``F_θ(Ξ) = (F_θ(ξ_1), ..., F_θ(ξ_T))``, an MLP
  applied to each token) with the GELU ``φ(z) = z Pr(Z ≤ z)`` (seeds: "GELU
  activation"; the exact erf form), residual connections and layer
  normalisation: the encoder/decoder block of the seeds' "Transformer
  architecture" and "Machine translation" sections.

Implementation. ``implementation='xla'`` (default) computes attention with
``jax.nn.dot_product_attention(..., implementation='xla')``; ``'auto'`` passes
``implementation=None`` so that JAX may pick the fused cuDNN kernel on a GPU
(it needs float16/bfloat16 inputs and supported shapes, and falls back to XLA
otherwise); ``'reference'`` is the explicit ``einsum``/``softmax`` path, which
is also used whenever the attention weights are requested
(``return_attention=True``), since the fused kernels do not return them, and
for float64 inputs, since ``jax.nn.dot_product_attention`` always takes the
softmax in float32.
Every path gives the same numbers up to rounding (tested).

Parameters (standard parameterization, weights ``N(0, 1/fan_in)``, biases 0):

* ``MultiHeadAttention``: ``{"W_qkv": f[D, 3, h, d], "b_qkv": f[3, h, d],
  "W_o": f[h, d, D_out], "b_o": f[D_out]}``. Self-attention does one fused
  ``X @ W_qkv`` product; cross-attention uses ``W_qkv[:, 0]`` on the queries
  and ``W_qkv[:, 1:]`` on the keys/values source, which must have ``D`` features.
* ``PositionalEncoding``: ``{}`` (sinusoidal) or ``{"P": f[max_length, D]}``.
* ``TransformerBlock``: ``{"ln_1", "attn", ["ln_cross", "cross_attn",] "ln_2", "mlp"}``
  with ``ln_* = {"scale", "bias"}`` and ``mlp = {"W_1", "b_1", "W_2", "b_2"}``.

Key/value cache (fast autoregressive decoding). ``apply_fn(params, x,
cache=cache)`` with ``cache = attention_cache(batch, length, num_heads,
head_dim)`` (a fixed-size buffer of keys and values and the write position
``index``) writes the keys/values of the ``T`` new tokens at ``index`` and
attends from the new queries to every cached position ``≤`` its own; it
returns ``(y, new_cache)`` with ``index + T``. Decoding one token then costs
one query against the cache instead of re-running the whole prefix.

Infinite width: these layers have no kernel rule; their ``kernel_fn`` raises
``NotImplementedError``. ``GlobalSelfAttention`` (:mod:`jaxdl.stax.attention`)
is the infinite-width counterpart of self-attention (Hron et al. 2020).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.stax.layer import (
    LayerSpec,
    check_array,
    check_choice,
    check_key,
    check_positive_int,
    check_shape,
    make_layer,
)

IMPLEMENTATIONS = ("xla", "auto", "reference")


# --- shared checks and helpers ---------------------------------------------------


def _check_bool(layer: str, what: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{layer}: expected {what} to be a bool, got {value!r}")
    return value


def _sequence_shape(layer: str, input_shape) -> tuple[int, ...]:
    shape = check_shape(layer, input_shape)
    if len(shape) != 3:
        raise ValueError(f"{layer}: expected input_shape (batch, time, features), got {input_shape!r}")
    if shape[2] == -1:
        raise ValueError(f"{layer}: expected the number of features to be known, got input_shape {input_shape!r}")
    return shape


def _sequence(layer: str, x, features: int, what: str = "an input") -> jax.Array:
    """A float array ``(batch, time, features)``."""
    x = check_array(layer, x)
    if x.ndim != 3:
        raise ValueError(f"{layer}: expected {what} of shape (batch, time, features), got shape {tuple(x.shape)}")
    if x.shape[2] != features:
        raise ValueError(f"{layer}: expected {what} with {features} features on the last axis, got shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{layer}: expected {what} of a real floating dtype, got dtype {x.dtype}")
    return x


def _concrete_int(value):
    """``int(value)`` when it is known outside of a trace, else None."""
    try:
        return int(np.asarray(value))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError, TypeError):
        return None


def _bias(b, ndim: int):
    """A bias reshaped to broadcast against an array of rank ``ndim`` explicitly."""
    return b.reshape((1,) * (ndim - b.ndim) + b.shape)


def _standardize_and_rsqrt(x, eps: float):
    """``((x - mean) / sqrt(var + eps), 1 / sqrt(var + eps))`` over the last axis (two-pass variance)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    r = lax.rsqrt(var + eps)
    return (x - mean) * r, r


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _standardize(x, eps: float):
    return _standardize_and_rsqrt(x, eps)[0]


@_standardize.defjvp
def _standardize_jvp(eps, primals, tangents):
    """The exact derivative in closed form, ``dy = r dx - mean(r dx) - y mean(y r dx)``
    (``y = (x - mean) r``, ``r = 1/sqrt(var + eps)``, using ``mean(y) = 0``). Differentiating
    the two-pass formula op by op gives the same numbers up to rounding, but its
    transpose is a long chain of broadcasts and negations per layer norm that XLA
    fuses into, and duplicates along, the residual stream's gradient (a GPT step
    compiled to ~50 % more HLO instructions than flax's). Being a JVP it serves
    forward mode (``jax.jvp``, empirical NTKs) as well as reverse mode."""
    (x,), (dx,) = primals, tangents
    y, r = _standardize_and_rsqrt(x, eps)
    dxr = dx * r
    return y, dxr - jnp.mean(dxr, axis=-1, keepdims=True) - y * jnp.mean(y * dxr, axis=-1, keepdims=True)


def layer_norm(x, params, eps: float):
    """``scale ⊙ (x - mean) / sqrt(var + eps) + bias`` over the last axis."""
    y = _standardize(x, eps)
    return y * _bias(params["scale"], x.ndim) + _bias(params["bias"], x.ndim)


def _layer_norm_params(dim: int):
    return {"scale": jnp.ones((dim,)), "bias": jnp.zeros((dim,))}


def attention_cache(batch: int, length: int, num_heads: int, head_dim: int, dtype=jnp.float32) -> dict:
    """An empty key/value cache for one ``MultiHeadAttention`` layer: ``{"k", "v":
    zeros (batch, length, num_heads, head_dim), "index": 0}``."""
    name = "attention_cache"
    shape = tuple(check_positive_int(name, n, v) for n, v in
                  (("batch", batch), ("length", length), ("num_heads", num_heads), ("head_dim", head_dim)))
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype), "index": jnp.zeros((), jnp.int32)}


def _check_cache(layer: str, cache, batch: int, heads: int, head_dim: int, new: int):
    if not isinstance(cache, dict) or set(cache) != {"k", "v", "index"}:
        raise ValueError(f"{layer}: expected cache to be a dict with entries k, v, index (attention_cache), got {cache!r:.80}")
    k, v = cache["k"], cache["v"]
    if k.ndim != 4 or k.shape != v.shape or k.shape[0] != batch or k.shape[2:] != (heads, head_dim):
        raise ValueError(
            f"{layer}: expected cache k and v of shape ({batch}, length, {heads}, {head_dim}), "
            f"got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    index = _concrete_int(cache["index"])
    if index is not None and not 0 <= index <= k.shape[1] - new:
        raise ValueError(
            f"{layer}: expected the cache to have room for {new} new positions, "
            f"got index {index} in a cache of length {k.shape[1]}"
        )


def _check_mask(layer: str, mask, batch: int, tq: int, tk: int):
    """A user mask ``(B, Tk)`` (key padding) or ``(B, Tq, Tk)`` as a boolean ``(B|1, 1, Tq|1, Tk)``."""
    mask = check_array(layer, mask)
    if not (mask.dtype == jnp.bool_ or jnp.issubdtype(mask.dtype, jnp.integer)):
        raise TypeError(f"{layer}: expected a boolean mask (True = attend), got dtype {mask.dtype}")
    ok_batch = mask.ndim >= 1 and mask.shape[0] in (1, batch)
    if mask.ndim == 2 and ok_batch and mask.shape[1] == tk:
        return (mask != 0)[:, None, None, :]
    if mask.ndim == 3 and ok_batch and mask.shape[1:] == (tq, tk):
        return (mask != 0)[:, None, :, :]
    raise ValueError(
        f"{layer}: expected a mask of shape ({batch}, {tk}) (key padding) or ({batch}, {tq}, {tk}), "
        f"got shape {tuple(mask.shape)}"
    )


def dot_product_attention(q, k, v, mask=None, *, causal: bool = False, implementation: str = "xla",
                          return_weights: bool = False):
    """``softmax(q kᵀ / √d) v`` per head for ``q: (B, Tq, h, d)``, ``k, v: (B, Tk, h, d)``.

    ``mask``: boolean, broadcastable to ``(B, h, Tq, Tk)``, True = attend;
    ``causal``: query ``t`` sees keys ``s ≤ t`` (needs ``Tq == Tk``). Returns
    ``(B, Tq, h, d)``, and the weights ``(B, h, Tq, Tk)`` with ``return_weights``
    (always through the reference path).
    """
    tq, tk = q.shape[1], k.shape[1]
    if causal:
        tri = jnp.tril(jnp.ones((tq, tk), bool))[None, None]
    # jax.nn.dot_product_attention always takes the softmax in float32: float64 stays exact on the reference path
    if implementation != "reference" and not return_weights and q.dtype != jnp.float64:
        return jax.nn.dot_product_attention(
            q, k, v, mask=mask, is_causal=causal, implementation="xla" if implementation == "xla" else None
        )
    if causal:
        mask = tri if mask is None else mask & tri
    compute = jnp.promote_types(q.dtype, jnp.float32)  # softmax in >= float32, as the fused kernels do
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(compute) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(compute).min)
    weights = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)
    return (out, weights.astype(q.dtype)) if return_weights else out


# --- MultiHeadAttention -----------------------------------------------------------


def _project_qkv(x, W, b):
    """Queries, keys and values ``(B, T, h, d)`` of a self-attention input: one fused
    product ``x @ W_qkv`` whose output has the q/k/v axis in front, so that each of the
    three is a contiguous slice."""
    qkv = jnp.einsum("btd,dchk->cbthk", x, W) + b[:, None, None, :, :]
    return qkv[0], qkv[1], qkv[2]



def MultiHeadAttention(
    num_heads: int,
    head_dim: int,
    *,
    out_dim: int | None = None,
    causal: bool = False,
    implementation: str = "xla",
):
    """Multi-head scaled dot-product attention (module docstring for the formulas).

    Args:
      num_heads, head_dim: ``h`` heads of ``d`` features each.
      out_dim: features of the output; default the input's ``D`` (for residuals).
      causal: mask the future (decoder self-attention).
      implementation: ``'xla'``, ``'auto'`` (cuDNN where JAX can) or ``'reference'``.

    ``apply_fn(params, x, *, kv=None, mask=None, cache=None, return_attention=False)``:

    * ``x``: queries ``(B, T, D)``; ``kv``: the keys/values source ``(B, S, D)``
      for cross-attention (default ``x``: self-attention);
    * ``mask``: boolean, True = attend, shape ``(B, S)`` (padding of the keys) or
      ``(B, T, S)``; combined with the causal mask;
    * ``cache``: see the module docstring; returns ``(y, new_cache)``;
    * ``return_attention``: returns ``(y, weights)`` with weights ``(B, h, T, S)``.
    """
    name = "MultiHeadAttention"
    num_heads = check_positive_int(name, "num_heads", num_heads)
    head_dim = check_positive_int(name, "head_dim", head_dim)
    if out_dim is not None:
        out_dim = check_positive_int(name, "out_dim", out_dim)
    causal = _check_bool(name, "causal", causal)
    implementation = check_choice(name, "implementation", implementation, IMPLEMENTATIONS)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _sequence_shape(name, input_shape)
        features = shape[2]
        d_out = features if out_dim is None else out_dim
        k_qkv, k_o = jax.random.split(key)
        params = {
            "W_qkv": jax.random.normal(k_qkv, (features, 3, num_heads, head_dim)) / math.sqrt(features),
            "b_qkv": jnp.zeros((3, num_heads, head_dim)),
            "W_o": jax.random.normal(k_o, (num_heads, head_dim, d_out)) / math.sqrt(num_heads * head_dim),
            "b_o": jnp.zeros((d_out,)),
        }
        return shape[:2] + (d_out,), params

    def apply_fn(params, x, *, kv=None, mask=None, cache=None, return_attention=False, **kwargs):
        W, b = params["W_qkv"], params["b_qkv"]
        if W.ndim != 4 or W.shape[1:] != (3, num_heads, head_dim):
            raise ValueError(f"{name}: expected params['W_qkv'] of shape (D, 3, {num_heads}, {head_dim}), got {tuple(W.shape)}")
        x = _sequence(name, x, W.shape[0])
        dtype = jnp.result_type(x.dtype, W.dtype)
        x = x.astype(dtype)
        batch, tq = x.shape[:2]
        if kv is None:  # self-attention
            q, k, v = _project_qkv(x, W, b)
        else:
            if causal:
                raise ValueError(f"{name}: expected kv=None with causal=True (the causal mask is for self-attention)")
            if cache is not None:
                raise ValueError(f"{name}: expected kv=None with a cache (the cache is for self-attention)")
            kv = _sequence(name, kv, W.shape[0], "kv").astype(dtype)
            if kv.shape[0] != batch:
                raise ValueError(f"{name}: expected kv with batch size {batch}, got shape {tuple(kv.shape)}")
            q = jnp.einsum("btd,dhk->bthk", x, W[:, 0]) + _bias(b[0], 4)
            kv_proj = jnp.einsum("bsd,dchk->bschk", kv, W[:, 1:]) + _bias(b[1:], 5)
            k, v = kv_proj[:, :, 0], kv_proj[:, :, 1]
        if cache is not None and return_attention:
            raise ValueError(f"{name}: expected return_attention=False with a cache")
        full_mask, use_causal = None, causal
        if cache is not None:
            _check_cache(name, cache, batch, num_heads, head_dim, tq)
            index = jnp.asarray(cache["index"], jnp.int32)
            zero = jnp.zeros((), jnp.int32)
            k = lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (zero, index, zero, zero))
            v = lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (zero, index, zero, zero))
            cache = {"k": k, "v": v, "index": index + tq}
            k, v = k.astype(dtype), v.astype(dtype)
            key_pos = jnp.arange(k.shape[1])[None, :]
            query_pos = index + jnp.arange(tq)[:, None]
            visible = key_pos <= query_pos if causal else key_pos < index + tq
            full_mask, use_causal = visible[None, None], False
        if mask is not None:
            user = _check_mask(name, mask, batch, tq, k.shape[1])
            full_mask = user if full_mask is None else user & full_mask
        out = dot_product_attention(q, k, v, full_mask, causal=use_causal, implementation=implementation,
                                    return_weights=return_attention)
        if return_attention:
            out, weights = out
        y = jnp.einsum("bthk,hko->bto", out, params["W_o"]) + _bias(params["b_o"], 3)
        if cache is not None:
            return y, cache
        return (y, weights) if return_attention else y

    spec = LayerSpec(name, dict(num_heads=num_heads, head_dim=head_dim, out_dim=out_dim, causal=causal,
                                implementation=implementation))
    return make_layer(name, init_fn, apply_fn, spec)


# --- PositionalEncoding -----------------------------------------------------------


def sinusoidal_encoding(length: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """The seeds' table ``p_tk = sin(t ω_k)`` (even ``k``) / ``cos(t ω_k)`` (odd ``k``),
    ``ω_k = base^{-k/dim}``, for ``t = 0..length-1``: float64 ``(length, dim)``."""
    t = np.arange(length, dtype=np.float64)[:, None]
    k = np.arange(dim)
    omega = base ** (-k / dim)
    angles = t * omega[None, :]
    return np.where(k % 2 == 0, np.sin(angles), np.cos(angles))


def PositionalEncoding(kind: str = "sinusoidal", max_length: int = 512, *, base: float = 10000.0,
                       W_std: float = 0.02):
    """Add position information ``x_t + p_t`` to a sequence ``(B, T, D)``, ``T ≤ max_length``.

    ``kind='sinusoidal'``: the seeds' fixed table (:func:`sinusoidal_encoding`);
    ``kind='learned'``: a trained table ``P ~ N(0, W_std²)`` of ``max_length`` rows.
    ``apply_fn(params, x, *, offset=0)`` adds rows ``offset .. offset+T-1`` (for
    decoding with a cache).
    """
    name = "PositionalEncoding"
    kind = check_choice(name, "kind", kind, ("sinusoidal", "learned"))
    max_length = check_positive_int(name, "max_length", max_length)
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not 1.0 < base < math.inf:
        raise ValueError(f"{name}: expected base to be a finite float > 1, got {base!r}")
    if isinstance(W_std, bool) or not isinstance(W_std, (int, float)) or not 0 <= W_std < math.inf:
        raise ValueError(f"{name}: expected W_std to be a finite float >= 0, got {W_std!r}")

    def check_length(length: int):
        if length > max_length:
            raise ValueError(f"{name}: expected a sequence of at most max_length={max_length} positions, got {length}")

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _sequence_shape(name, input_shape)
        check_length(shape[1])
        params = {"P": W_std * jax.random.normal(key, (max_length, shape[2]))} if kind == "learned" else {}
        return shape, params

    def apply_fn(params, x, *, offset=0, **kwargs):
        x = check_array(name, x)
        if x.ndim != 3:
            raise ValueError(f"{name}: expected an input of shape (batch, time, features), got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}: expected an input of a real floating dtype, got dtype {x.dtype}")
        length, dim = x.shape[1], x.shape[2]
        check_length(length)
        start = _concrete_int(offset)
        if start is not None and not 0 <= start <= max_length - length:
            raise ValueError(
                f"{name}: expected offset + length <= max_length={max_length}, got offset {start} and length {length}"
            )
        if kind == "learned":
            table = params["P"]
            if table.shape != (max_length, dim):
                raise ValueError(f"{name}: expected an input with {table.shape[1]} features, got shape {tuple(x.shape)}")
        else:
            table = jnp.asarray(sinusoidal_encoding(max_length, dim, base), jnp.result_type(x.dtype, jnp.float32))
        dtype = jnp.result_type(x.dtype, table.dtype)
        rows = lax.dynamic_slice_in_dim(table, jnp.asarray(offset, jnp.int32), length, axis=0)
        return x.astype(dtype) + rows[None].astype(dtype)

    spec = LayerSpec(name, dict(kind=kind, max_length=max_length, base=float(base), W_std=float(W_std)))
    return make_layer(name, init_fn, apply_fn, spec)


# --- TransformerBlock -------------------------------------------------------------


def _dropout(x, rate: float, key):
    """Inverted dropout with DROP probability ``rate`` (identity when ``key`` is None)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def TransformerBlock(
    num_heads: int,
    head_dim: int,
    mlp_dim: int,
    *,
    pre_ln: bool = True,
    dropout_rate: float = 0.0,
    causal: bool = False,
    cross_attention: bool = False,
    implementation: str = "xla",
    eps: float = 1e-5,
):
    """A transformer encoder block (or decoder block with ``causal``/``cross_attention``).

    Pre-LN (default; GPT-2, ViT)::

        x = x + Drop(SelfAttn(LN(x)));  [x = x + Drop(CrossAttn(LN(x), memory))];  x = x + Drop(MLP(LN(x)))

    Post-LN (the original transformer, BERT)::

        x = LN(x + Drop(SelfAttn(x)));  [x = LN(x + Drop(CrossAttn(x, memory)))];  x = LN(x + Drop(MLP(x)))

    with ``MLP(x) = GELU(x W_1 + b_1) W_2 + b_2`` (hidden width ``mlp_dim``).
    ``dropout_rate`` is the DROP probability (flax/PyTorch convention; ``stax.Dropout``'s
    ``rate`` is the keep probability). Dropout is active only when ``apply_fn`` gets
    a ``key`` (and not ``train=False``), as for ``stax.Dropout``.

    ``apply_fn(params, x, *, kv=None, mask=None, kv_mask=None, key=None, train=None,
    cache=None, return_attention=False)``: ``kv`` is the encoder output (required
    exactly when ``cross_attention``), ``mask`` the self-attention mask and
    ``kv_mask`` the cross-attention mask (shapes as in ``MultiHeadAttention``).
    Returns ``y``; ``(y, new_cache)`` with a cache (of the self-attention); with
    ``return_attention`` ``(y, self_weights)``, or ``(y, (self_weights,
    cross_weights))`` for a block with cross-attention.
    """
    name = "TransformerBlock"
    num_heads = check_positive_int(name, "num_heads", num_heads)
    head_dim = check_positive_int(name, "head_dim", head_dim)
    mlp_dim = check_positive_int(name, "mlp_dim", mlp_dim)
    pre_ln = _check_bool(name, "pre_ln", pre_ln)
    causal = _check_bool(name, "causal", causal)
    cross_attention = _check_bool(name, "cross_attention", cross_attention)
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"{name}: expected dropout_rate (the drop probability) in [0, 1), got {dropout_rate!r}")
    dropout_rate = float(dropout_rate)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps < math.inf:
        raise ValueError(f"{name}: expected eps to be a finite float > 0, got {eps!r}")
    implementation = check_choice(name, "implementation", implementation, IMPLEMENTATIONS)
    self_attn = MultiHeadAttention(num_heads, head_dim, causal=causal, implementation=implementation)
    cross_attn = MultiHeadAttention(num_heads, head_dim, implementation=implementation)

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = _sequence_shape(name, input_shape)
        dim = shape[2]
        k_attn, k_cross, k_1, k_2 = jax.random.split(key, 4)
        params = {"ln_1": _layer_norm_params(dim), "attn": self_attn.init(k_attn, shape)[1]}
        if cross_attention:
            params["ln_cross"] = _layer_norm_params(dim)
            params["cross_attn"] = cross_attn.init(k_cross, shape)[1]
        params["ln_2"] = _layer_norm_params(dim)
        params["mlp"] = {
            "W_1": jax.random.normal(k_1, (dim, mlp_dim)) / math.sqrt(dim),
            "b_1": jnp.zeros((mlp_dim,)),
            "W_2": jax.random.normal(k_2, (mlp_dim, dim)) / math.sqrt(mlp_dim),
            "b_2": jnp.zeros((dim,)),
        }
        return shape, params

    def sublayer(x, params_ln, fn, key):
        """One residual sub-layer, pre- or post-LN; ``fn`` returns ``(out, extra)``."""
        if pre_ln:
            out, extra = fn(layer_norm(x, params_ln, eps))
            return x + _dropout(out, dropout_rate, key), extra
        out, extra = fn(x)
        return layer_norm(x + _dropout(out, dropout_rate, key), params_ln, eps), extra

    def apply_fn(params, x, *, kv=None, mask=None, kv_mask=None, key=None, train=None, cache=None,
                 return_attention=False, **kwargs):
        dim = params["ln_1"]["scale"].shape[0]
        x = _sequence(name, x, dim)
        if cross_attention and kv is None:
            raise ValueError(f"{name}: expected kv= (the encoder output) for a block with cross_attention=True")
        if not cross_attention and kv is not None:
            raise ValueError(f"{name}: expected kv=None for a block without cross-attention (cross_attention=False)")
        if kv_mask is not None and not cross_attention:
            raise ValueError(f"{name}: expected kv_mask=None for a block without cross-attention")
        if cache is not None and return_attention:
            raise ValueError(f"{name}: expected return_attention=False with a cache")
        active = key is not None and train is not False and dropout_rate > 0.0
        keys = list(jax.random.split(check_key(name, key), 3)) if active else [None] * 3

        def attend(h):
            if cache is not None:
                return self_attn.apply(params["attn"], h, mask=mask, cache=cache)
            if return_attention:
                return self_attn.apply(params["attn"], h, mask=mask, return_attention=True)
            return self_attn.apply(params["attn"], h, mask=mask), None

        x, extra = sublayer(x, params["ln_1"], attend, keys[0])
        cross_weights = None
        if cross_attention:
            def cross(h):
                if return_attention:
                    return cross_attn.apply(params["cross_attn"], h, kv=kv, mask=kv_mask, return_attention=True)
                return cross_attn.apply(params["cross_attn"], h, kv=kv, mask=kv_mask), None

            x, cross_weights = sublayer(x, params["ln_cross"], cross, keys[1])

        def mlp(h):
            p = params["mlp"]
            hidden = jax.nn.gelu(h @ p["W_1"] + _bias(p["b_1"], 3), approximate=False)
            return hidden @ p["W_2"] + _bias(p["b_2"], 3), None

        x, _ = sublayer(x, params["ln_2"], mlp, keys[2])
        if cache is not None:
            return x, extra
        if return_attention:
            return x, ((extra, cross_weights) if cross_attention else extra)
        return x

    spec = LayerSpec(name, dict(num_heads=num_heads, head_dim=head_dim, mlp_dim=mlp_dim, pre_ln=pre_ln,
                                dropout_rate=dropout_rate, causal=causal, cross_attention=cross_attention,
                                implementation=implementation, eps=float(eps)))
    return make_layer(name, init_fn, apply_fn, spec)


__all__ = ["MultiHeadAttention", "PositionalEncoding", "TransformerBlock", "attention_cache", "dot_product_attention",
           "layer_norm", "sinusoidal_encoding"]  # fmt: skip
