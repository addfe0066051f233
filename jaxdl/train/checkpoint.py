"""Checkpoints: bit-exact, atomic, verified saves of any pytree (params, optimiser
state, step, PRNG keys).

The tree is turned into a flax state dict and serialised with
``flax.serialization.msgpack_serialize`` (raw array bytes, so the round trip
is bit-exact; no pickle). Typed PRNG keys, which msgpack cannot hold, are
stored as their ``jax.random.key_data`` plus the name of their implementation
and rebuilt with ``jax.random.wrap_key_data``.

File format (version 1): a 52-byte header, then the msgpack payload::

    magic      8 bytes   b"JAXDLCKP"
    version    4 bytes   little-endian uint32, 1
    length     8 bytes   little-endian uint64, payload size in bytes
    sha256    32 bytes   SHA-256 digest of the payload

``restore_checkpoint`` verifies all four before it parses anything, so a
truncated, corrupted, foreign or empty file raises :class:`CheckpointError`
(a ``ValueError``) naming ``restore_checkpoint``, the path and what is wrong,
instead of loading garbage or failing inside msgpack.

A save writes a temporary file in the same folder (created with mode 0o666
less the umask, like any new file), flushes it to disk and renames it over the
target (``os.replace``, atomic on POSIX and Windows), so a crash mid-save leaves
the previous checkpoint intact. Written here because flax's own checkpointing
moved to orbax, whose asynchronous, directory-based API is more than a
single-file research checkpoint needs.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

_KEY_DATA = "prng_key_data"
_KEY_IMPL = "prng_key_impl"

MAGIC = b"JAXDLCKP"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ32s")  # magic, version, payload length, sha256 of the payload


class CheckpointError(ValueError):
    """A checkpoint file that cannot be restored (truncated, corrupted, not a jaxdl
    checkpoint, or not of the structure asked for). A ``ValueError``, so callers
    catching ``ValueError`` catch it; the message starts with ``restore_checkpoint:``."""


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
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # os.open with mode 0o666 applies the umask, as for any new file (mkstemp would give 0o600).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(header)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _read_payload(path: Path) -> bytes:
    """The verified payload of the checkpoint at ``path``; raises :class:`CheckpointError`."""
    data = path.read_bytes()

    def fail(what: str):
        return CheckpointError(f"restore_checkpoint: {str(path)!r} {what}")

    if not data:
        raise fail("is empty (0 bytes): not a jaxdl checkpoint, or its save never completed")
    if not data.startswith(MAGIC[: len(data)]):  # a short prefix of the magic is a truncation
        raise fail(
            f"is not a jaxdl checkpoint: it starts with {data[:8]!r}, not the {MAGIC!r} header "
            "(checkpoints from before the verified format 1 cannot be read)"
        )
    if len(data) < _HEADER.size:
        raise fail(f"is truncated: {len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    _, version, length, digest = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise fail(
            f"has format version {version}, but this jaxdl reads version {FORMAT_VERSION} "
            "(corrupted, or written by another jaxdl version)"
        )
    payload = data[_HEADER.size :]
    if len(payload) < length:
        raise fail(f"is truncated: the header announces {length} payload bytes, the file holds {len(payload)}")
    if len(payload) > length:
        raise fail(
            f"is corrupted: the header announces {length} payload bytes, the file holds "
            f"{len(payload)} (trailing bytes)"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise fail("is corrupted: the SHA-256 of its payload does not match the one in its header")
    return payload


def restore_checkpoint(path, like=None):
    """Read a checkpoint written by :func:`save_checkpoint`.

    With ``like`` (a tree of the saved structure: same containers, NamedTuples,
    shapes and dtypes) it returns that structure, with jax arrays where ``like``
    has them; mismatches raise a ``ValueError`` naming the offending entry.
    Without, it returns the raw flax state dict (nested dicts of numpy arrays;
    typed PRNG keys rebuilt).

    Raises:
      FileNotFoundError: no file at ``path``.
      CheckpointError: (a ``ValueError``) the file is empty, truncated, corrupted
        (its SHA-256 does not match), not a jaxdl checkpoint, or not of the
        structure of ``like``; the message names the path and the cause.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"restore_checkpoint: no checkpoint file at {str(path)!r}")
    payload = _read_payload(path)
    try:
        saved = serialization.msgpack_restore(payload)
    except Exception as error:  # msgpack raises several types; the checksum matched, so a writer bug
        raise CheckpointError(
            f"restore_checkpoint: {str(path)!r} is corrupted: its verified payload is not "
            f"valid msgpack ({type(error).__name__}: {error})"
        ) from error
    if like is None:
        return _decode_keys(saved)
    return restore_into(like, saved, path=path)


def _entries(state_dict, prefix=""):
    """The set of '/'-joined paths of a nested state dict (its leaves and empty nodes)."""
    if isinstance(state_dict, dict) and state_dict:
        return set().union(*(_entries(v, f"{prefix}/{k}") for k, v in state_dict.items()))
    return {prefix or "/"}


def restore_into(like, saved, *, path=None):
    """Give a raw saved state dict the structure of ``like`` (see :func:`restore_checkpoint`).

    Raises :class:`CheckpointError` naming the first mismatching entry (and
    ``path``, the file ``saved`` came from, when given)."""
    source = "the checkpoint" if path is None else f"the checkpoint {str(path)!r}"
    encoded_like = jax.tree.map(_encode_leaf, like)
    saved = _encode_keys(saved)
    expected, found = _entries(serialization.to_state_dict(encoded_like)), _entries(saved)
    if expected != found:
        raise CheckpointError(
            f"restore_checkpoint: {source} does not have the structure of `like`: "
            f"missing {sorted(expected - found)[:5]}, unexpected {sorted(found - expected)[:5]}"
        )
    try:
        structured = serialization.from_state_dict(encoded_like, saved)
        return jax.tree_util.tree_map_with_path(_restore_leaf, like, structured)
    except (ValueError, KeyError, TypeError) as error:
        message = str(error).removeprefix("restore_checkpoint: ")
        raise CheckpointError(
            f"restore_checkpoint: {source} does not have the structure of `like`: {message}"
        ) from error
