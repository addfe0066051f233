"""Global self-attention, ``GlobalSelfAttention`` (neural-tangents' layer, same
arguments and defaults).

Every position attends to every other position of the same sample. For one head
``h`` with key/value projections of the flattened input ``x: f[T, C]``::

    K_h = x W_key[h],  Q_h = x W_query[h]  (Q_h = K_h when linear_scaling)
    A_h = mechanism(QK_std / (C * scale) * Q_h K_h^T),  scale = n_chan_key or sqrt(n_chan_key)
    head_h = A_h x W_value[h]
    out = concat_h(head_h) W_out * OV_std / sqrt(n_chan_val * n_heads * C_val) + b_std * b

with ``QK_std = W_query_std * W_key_std`` and ``OV_std = W_out_std * W_value_std``
(all weights standard normal: the NTK parameterization). ``linear_scaling=True``
ties queries to keys and scales by ``1/n_chan_key``, which makes the
infinite-width kernel tractable ("Infinite attention", Hron et al. 2020; seed
chapter on transformers / infinite-width limits). Positional embeddings
(``pos_emb_type='SUM'`` or ``'CONCAT'``) are learned standard-normal arrays,
optionally correlated across positions by ``pos_emb_decay_fn`` of the ``p``-norm
distance. The infinite-width kernel lives in :mod:`jaxdl.kernels.attention_rules`.

Params: ``{"W_query": f[H, C_k, n_chan_key]`` (only when not ``linear_scaling``),
``"W_key": f[H, C_k, n_chan_key], "W_value": f[H, C_v, n_chan_val],
"W_out": f[n_chan_val * H, n_chan_out], "b": f[..., n_chan_out, ...]`` (if
``b_std``), ``"pos_emb": f[1, ..., n_chan_pos_emb, ...]`` (if positional
embeddings)``}`` where ``C_k``/``C_v`` are the input channels, plus the
embedding channels when they are concatenated.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.stax.layer import (
    LayerSpec,
    check_array,
    check_choice,
    check_key,
    check_positive_int,
    check_shape,
    make_layer,
)
from jaxdl.stax.linear import check_std
from jaxdl.stax.masking import with_masking

ATTENTION_MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")
POSITIONAL_EMBEDDINGS = ("NONE", "SUM", "CONCAT")

_MECHANISM_FNS = {
    "SOFTMAX": lambda g: jax.nn.softmax(g, axis=-1),
    "IDENTITY": lambda g: g,
    "ABS": jnp.abs,
    "RELU": jax.nn.relu,
}


def positional_covariance(spatial_shape, p_norm: float, decay_fn: Callable | None) -> jax.Array:
    """Covariance of the positional embeddings across positions, zipped as
    ``f[X, X', Y, Y', ...]``: ``decay_fn(sum_axis |x - x'|^p)``, or the identity
    when ``decay_fn`` is None (independent embeddings per position)."""
    if decay_fn is None:
        size = math.prod(spatial_shape)
        eye = np.eye(size).reshape(tuple(spatial_shape) * 2)
        n = len(spatial_shape)
        return jnp.asarray(eye.transpose([a for i in range(n) for a in (i, n + i)]))
    distance = np.zeros((1,) * (2 * len(spatial_shape)))
    for axis, size in enumerate(spatial_shape):
        d = np.abs(np.arange(size)[:, None] - np.arange(size)[None, :]) ** p_norm
        shape = [1] * (2 * len(spatial_shape))
        shape[2 * axis : 2 * axis + 2] = [size, size]
        distance = distance + d.reshape(shape)
    return jnp.asarray(decay_fn(jnp.asarray(distance)))


def GlobalSelfAttention(
    n_chan_out: int,
    n_chan_key: int,
    n_chan_val: int,
    n_heads: int,
    linear_scaling: bool = True,
    W_key_std: float = 1.0,
    W_value_std: float = 1.0,
    W_query_std: float = 1.0,
    W_out_std: float = 1.0,
    b_std: float | None = None,
    attention_mechanism: str = "SOFTMAX",
    pos_emb_type: str = "NONE",
    pos_emb_p_norm: float = 2,
    pos_emb_decay_fn: Callable | None = None,
    n_chan_pos_emb: int | None = None,
    W_pos_emb_std: float = 1.0,
    val_pos_emb: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Global scaled dot-product self-attention over all non-batch, non-channel axes.

    Args:
      n_chan_out, n_chan_key, n_chan_val: channels of the output, keys/queries, values.
      n_heads: number of attention heads.
      linear_scaling: scale ``Q K^T`` by ``1/n_chan_key`` and tie queries to keys
        (the kernel has a closed form); ``False``: ``1/sqrt(n_chan_key)`` and
        independent queries (closed form only for ``attention_mechanism='IDENTITY'``).
      W_key_std, W_value_std, W_query_std, W_out_std, b_std: standard deviations.
      attention_mechanism: ``'SOFTMAX'``, ``'IDENTITY'``, ``'ABS'`` or ``'RELU'``.
      pos_emb_type: ``'NONE'``, ``'SUM'`` or ``'CONCAT'`` positional embeddings.
      pos_emb_p_norm, pos_emb_decay_fn: covariance ``decay_fn(|x - x'|_p^p)`` of the
        embeddings across positions (``None``: independent per position).
      n_chan_pos_emb: embedding channels (``None``: the input's).
      W_pos_emb_std: embedding standard deviation.
      val_pos_emb: also feed the embeddings to the values.
      batch_axis, channel_axis: axes of the batch and of the channels.
    """
    name = "GlobalSelfAttention"
    n_chan_out = check_positive_int(name, "n_chan_out", n_chan_out)
    n_chan_key = check_positive_int(name, "n_chan_key", n_chan_key)
    n_chan_val = check_positive_int(name, "n_chan_val", n_chan_val)
    n_heads = check_positive_int(name, "n_heads", n_heads)
    stds = {
        key: check_std(name, key, value)
        for key, value in dict(
            W_key_std=W_key_std, W_value_std=W_value_std, W_query_std=W_query_std,
            W_out_std=W_out_std, W_pos_emb_std=W_pos_emb_std,
        ).items()
    }  # fmt: skip
    b_std = check_std(name, "b_std", b_std, allow_none=True)
    attention_mechanism = check_choice(name, "attention_mechanism", attention_mechanism, ATTENTION_MECHANISMS)
    pos_emb_type = check_choice(name, "pos_emb_type", pos_emb_type, POSITIONAL_EMBEDDINGS)
    if n_chan_pos_emb is not None:
        n_chan_pos_emb = check_positive_int(name, "n_chan_pos_emb", n_chan_pos_emb)
    if pos_emb_decay_fn is not None and not callable(pos_emb_decay_fn):
        raise TypeError(f"{name}: expected pos_emb_decay_fn to be callable or None, got {pos_emb_decay_fn!r}")
    QK_std = stds["W_query_std"] * stds["W_key_std"]
    OV_std = stds["W_out_std"] * stds["W_value_std"]
    mechanism = _MECHANISM_FNS[attention_mechanism]

    def axes(ndim: int) -> tuple[int, int]:
        if ndim < 2 or not (-ndim <= batch_axis < ndim and -ndim <= channel_axis < ndim):
            raise ValueError(
                f"{name}: expected an input of rank >= 2 with batch_axis={batch_axis} and "
                f"channel_axis={channel_axis}, got rank {ndim}"
            )
        batch, channel = batch_axis % ndim, channel_axis % ndim
        if batch == channel:
            raise ValueError(f"{name}: batch_axis and channel_axis must differ, both are axis {batch}")
        return batch, channel

    def embedding_channels(n_chan_in: int) -> int:
        n = n_chan_in if n_chan_pos_emb is None else n_chan_pos_emb
        if pos_emb_type == "SUM" and n != n_chan_in:
            raise ValueError(
                f"{name}: pos_emb_type='SUM' adds embeddings to the inputs, so n_chan_pos_emb "
                f"must equal the {n_chan_in} input channels, got {n_chan_pos_emb}"
            )
        return n

    def init_fn(key, input_shape):
        key = check_key(name, key)
        input_shape = check_shape(name, input_shape)
        batch, channel = axes(len(input_shape))
        n_chan_in = input_shape[channel]
        if n_chan_in == -1:
            raise ValueError(f"{name}: the channel axis of input_shape must be known, got -1")
        output_shape = input_shape[:channel] + (n_chan_out,) + input_shape[channel + 1 :]
        key_q, key_k, key_v, key_o, key_b, key_pe = jax.random.split(key, 6)
        n_in_keys = n_in_values = n_chan_in
        params = {}
        if pos_emb_type != "NONE":
            n_emb = embedding_channels(n_chan_in)
            emb_shape = list(input_shape)
            emb_shape[channel], emb_shape[batch] = n_emb, 1
            if -1 in emb_shape:
                raise ValueError(f"{name}: positional embeddings need known spatial sizes, got {input_shape}")
            if pos_emb_type == "CONCAT":
                n_in_keys += n_emb
                n_in_values += n_emb if val_pos_emb else 0
            params["pos_emb"] = jax.random.normal(key_pe, tuple(emb_shape))
        if not linear_scaling:
            params["W_query"] = jax.random.normal(key_q, (n_heads, n_in_keys, n_chan_key))
        params["W_key"] = jax.random.normal(key_k, (n_heads, n_in_keys, n_chan_key))
        params["W_value"] = jax.random.normal(key_v, (n_heads, n_in_values, n_chan_val))
        params["W_out"] = jax.random.normal(key_o, (n_chan_val * n_heads, n_chan_out))
        if b_std is not None:
            b_shape = [1] * len(input_shape)
            b_shape[channel] = n_chan_out
            params["b"] = jax.random.normal(key_b, tuple(b_shape))
        return output_shape, params

    def embeddings(params, x, batch, channel):
        """The positional embeddings, correlated across positions by ``pos_emb_decay_fn``."""
        emb = params["pos_emb"]
        spatial_axes = tuple(i for i in range(x.ndim) if i not in (batch, channel))
        spatial_shape = tuple(x.shape[i] for i in spatial_axes)
        if tuple(emb.shape[i] for i in spatial_axes) != spatial_shape:
            raise ValueError(
                f"{name}: expected inputs with spatial shape {tuple(emb.shape[i] for i in spatial_axes)} "
                f"(that of the positional embeddings), got {spatial_shape}"
            )
        if pos_emb_decay_fn is not None:
            n = len(spatial_shape)
            covariance = positional_covariance(spatial_shape, pos_emb_p_norm, pos_emb_decay_fn)
            size = math.prod(spatial_shape)
            unzipped = jnp.transpose(covariance, list(range(0, 2 * n, 2)) + list(range(1, 2 * n, 2)))
            root = jnp.linalg.cholesky(unzipped.reshape(size, size)).reshape(spatial_shape * 2)
            emb = jnp.tensordot(root.astype(emb.dtype), emb, (tuple(range(n, 2 * n)), spatial_axes))
            emb = jnp.moveaxis(emb, tuple(range(n)), spatial_axes)
        return stds["W_pos_emb_std"] * emb

    def apply_fn(params, x, *, mask=None, **kwargs):
        """``mask``: the input's mask (see :mod:`jaxdl.stax.masking`): masked positions
        get no positional embedding and are never attended to."""
        x = check_array(name, x, min_ndim=2)
        batch, channel = axes(x.ndim)
        n_values_in = params["W_value"].shape[1]
        inputs_for_values = x
        if mask is not None:
            mask = jnp.all(jnp.broadcast_to(mask, x.shape), axis=channel, keepdims=True)
        if pos_emb_type != "NONE":
            emb = embeddings(params, x, batch, channel)
            if mask is not None:
                emb = jnp.where(mask, jnp.zeros((), emb.dtype), emb)
            if pos_emb_type == "SUM":
                x = x + emb
            else:
                emb = jnp.broadcast_to(emb, x.shape[:channel] + (emb.shape[channel],) + x.shape[channel + 1 :])
                x = jnp.concatenate([x, emb.astype(x.dtype)], axis=channel)
            if val_pos_emb:
                inputs_for_values = x
        if x.shape[channel] != params["W_key"].shape[1] or inputs_for_values.shape[channel] != n_values_in:
            raise ValueError(
                f"{name}: expected {params['W_key'].shape[1]} input channels (with embeddings) on axis "
                f"{channel_axis}, got input of shape {tuple(x.shape)}"
            )
        output_shape = x.shape[:channel] + (n_chan_out,) + x.shape[channel + 1 :]

        def tokens(a):  # f[n, T, C]
            a = jnp.moveaxis(a, (batch, channel), (0, -1))
            return a.reshape(a.shape[0], math.prod(a.shape[1:-1]), a.shape[-1])  # no -1: batch may be 0

        keys_in, values_in = tokens(x), tokens(inputs_for_values)
        keys = jnp.einsum("ntc,hck->hntk", keys_in, params["W_key"])
        queries = keys if linear_scaling else jnp.einsum("ntc,hck->hntk", keys_in, params["W_query"])
        values = jnp.einsum("ntc,hcv->hntv", values_in, params["W_value"])
        scale = keys_in.shape[-1] * (n_chan_key if linear_scaling else math.sqrt(n_chan_key))
        logits = QK_std / scale * jnp.einsum("hnsk,hntk->hnst", queries, keys)
        if mask is not None:  # masked keys: -inf logits for the softmax, zero weight otherwise
            key_mask = jnp.moveaxis(mask, (batch, channel), (0, -1)).reshape(1, x.shape[batch], 1, keys_in.shape[1])
            fill = jnp.finfo(logits.dtype).min if attention_mechanism == "SOFTMAX" else 0.0
            logits = jnp.where(key_mask, jnp.asarray(fill, logits.dtype), logits)
        weights = mechanism(logits)
        heads = jnp.einsum("hnst,hntv->nsvh", weights, values)  # concatenated value-major
        heads = heads.reshape(heads.shape[:2] + (heads.shape[2] * heads.shape[3],))
        out = heads @ params["W_out"] * (OV_std / math.sqrt(n_chan_val * n_heads * values_in.shape[-1]))
        spatial = tuple(output_shape[i] for i in range(x.ndim) if i not in (batch, channel))
        out = out.reshape((out.shape[0],) + spatial + (n_chan_out,))
        out = jnp.moveaxis(out, (0, -1), (batch, channel))
        if "b" in params:
            out = out + b_std * params["b"]
        return out

    spec = LayerSpec(
        name,
        dict(
            n_chan_out=n_chan_out, n_chan_key=n_chan_key, n_chan_val=n_chan_val, n_heads=n_heads,
            linear_scaling=bool(linear_scaling), QK_std=QK_std, OV_std=OV_std, b_std=b_std,
            attention_mechanism=attention_mechanism, pos_emb_type=pos_emb_type,
            pos_emb_p_norm=pos_emb_p_norm, pos_emb_decay_fn=pos_emb_decay_fn,
            n_chan_pos_emb=n_chan_pos_emb, W_pos_emb_std=stds["W_pos_emb_std"],
            val_pos_emb=bool(val_pos_emb), batch_axis=batch_axis, channel_axis=channel_axis,
        ),
    )  # fmt: skip
    return with_masking(make_layer(name, init_fn, apply_fn, spec))
