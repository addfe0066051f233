"""Checkpoints: bit-exact, atomic saves of any pytree (params, optimiser state, step, PRNG keys).

The tree is turned into a flax state dict and written with
``flax.serialization.msgpack_serialize`` (raw array bytes, so the round trip
is bit-exact; no pickle). Typed PRNG keys, which msgpack cannot hold, are
stored as their ``jax.random.key_data`` plus the name of their implementation
and rebuilt with ``jax.random.wrap_key_data``. A save writes a temporary file
in the same folder, flushes it to disk and renames it over the target
(``os.replace``, atomic on POSIX and Windows), so a crash mid-save leaves the
previous checkpoint intact. Written here because flax's own checkpointing
moved to orbax, whose asynchronous, directory-based API is more than a
single-file research checkpoint needs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

_KEY_DATA = "prng_key_data"
_KEY_IMPL = "prng_key_impl"


def _is_typed_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _encode_leaf(leaf):
    if _is_typed_key(leaf):
        return {_KEY_DATA: np.asarray(jax.random.key_data(leaf)), _KEY_IMPL: str(jax.random.key_impl(leaf))}
    if isinstance(leaf, jax.Array):
        return np.asarray(leaf)
    return leaf


def _is_encoded_key(node) -> bool:
    return isinstance(node, dict) and set(node) == {_KEY_DATA, _KEY_IMPL}


def _decode_keys(saved):
    """Rebuild typed keys inside a raw (nested dict) state dict."""
    if _is_encoded_key(saved):
        return jax.random.wrap_key_data(jnp.asarray(saved[_KEY_DATA]), impl=saved[_KEY_IMPL])
    if isinstance(saved, dict):
        return {k: _decode_keys(v) for k, v in saved.items()}
    return saved


def _encode_keys(saved):
    """Inverse of :func:`_decode_keys`: typed keys in a raw state dict back to their data."""
    if _is_typed_key(saved):
        return _encode_leaf(saved)
    if isinstance(saved, dict):
        return {k: _encode_keys(v) for k, v in saved.items()}
    return saved


def _restore_leaf(path, like, saved):
    where = jax.tree_util.keystr(path) or "<root>"
    if _is_typed_key(like):
        if not _is_encoded_key(saved):
            raise ValueError(f"restore_checkpoint: expected a PRNG key at {where}, got {type(saved).__name__}")
        like_data = jax.random.key_data(like)
        if saved[_KEY_DATA].shape != like_data.shape or saved[_KEY_IMPL] != str(jax.random.key_impl(like)):
            raise ValueError(
                f"restore_checkpoint: PRNG key at {where} does not match `like` "
                f"(saved {saved[_KEY_IMPL]} {saved[_KEY_DATA].shape}, expected "
                f"{jax.random.key_impl(like)} {like_data.shape})"
            )
        return jax.random.wrap_key_data(jnp.asarray(saved[_KEY_DATA]), impl=saved[_KEY_IMPL])
    if hasattr(like, "shape") and hasattr(like, "dtype"):
        saved = np.asarray(saved)
        if saved.shape != tuple(like.shape) or saved.dtype != like.dtype:
            raise ValueError(
                f"restore_checkpoint: array at {where} does not match `like`: saved "
                f"{saved.dtype}{list(saved.shape)}, expected {like.dtype}{list(like.shape)}"
            )
        return jnp.asarray(saved) if isinstance(like, jax.Array) else saved
    if isinstance(like, (bool, int, float)) and not isinstance(saved, type(like)):
        return type(like)(np.asarray(saved).item())
    return saved


def save_checkpoint(path, tree) -> Path:
    """Write ``tree`` (any pytree of arrays, scalars, typed or legacy PRNG keys) to ``path``
    atomically; returns the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"save_checkpoint: expected a file path, got the directory {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = serialization.msgpack_serialize(
        serialization.to_state_dict(jax.tree.map(_encode_leaf, tree))
    )
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def restore_checkpoint(path, like=None):
    """Read a checkpoint written by :func:`save_checkpoint`.

    With ``like`` (a tree of the saved structure: same containers, NamedTuples,
    shapes and dtypes) it returns that structure, with jax arrays where ``like``
    has them; mismatches raise a ``ValueError`` naming the offending entry.
    Without, it returns the raw flax state dict (nested dicts of numpy arrays;
    typed PRNG keys rebuilt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"restore_checkpoint: no checkpoint file at {str(path)!r}")
    saved = serialization.msgpack_restore(path.read_bytes())
    if like is None:
        return _decode_keys(saved)
    return restore_into(like, saved)


def _entries(state_dict, prefix=""):
    """The set of '/'-joined paths of a nested state dict (its leaves and empty nodes)."""
    if isinstance(state_dict, dict) and state_dict:
        return set().union(*(_entries(v, f"{prefix}/{k}") for k, v in state_dict.items()))
    return {prefix or "/"}


def restore_into(like, saved):
    """Give a raw saved state dict the structure of ``like`` (see :func:`restore_checkpoint`)."""
    encoded_like = jax.tree.map(_encode_leaf, like)
    saved = _encode_keys(saved)
    expected, found = _entries(serialization.to_state_dict(encoded_like)), _entries(saved)
    if expected != found:
        raise ValueError(
            "restore_checkpoint: the checkpoint does not have the structure of `like`: "
            f"missing {sorted(expected - found)[:5]}, unexpected {sorted(found - expected)[:5]}"
        )
    try:
        structured = serialization.from_state_dict(encoded_like, saved)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"restore_checkpoint: the checkpoint does not have the structure of `like`: {error}") from error
    return jax.tree_util.tree_map_with_path(_restore_leaf, like, structured)
