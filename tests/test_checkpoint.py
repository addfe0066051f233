"""Checkpoints cannot silently load garbage: the header (magic, format version,
payload length, SHA-256) is checked against an independent hashlib computation, and
every damaged file (empty, truncated anywhere, flipped bytes, random bytes, a
checkpoint of another structure) raises one CheckpointError naming
``restore_checkpoint``, the path and the cause. Files get the umask's permissions."""

import hashlib
import os
import re
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from jaxdl import train
from jaxdl.train.checkpoint import CheckpointError, restore_into

RNG = np.random.default_rng(0)
HEADER_SIZE = 52


def small_tree():
    return {
        "params": {"W": jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32), "b": jnp.zeros(3)},
        "step": jnp.int32(7),
        "key": jax.random.key(1),
        "epoch": 2,
    }


def _saved(tmp_path, name="ckpt.msgpack"):
    tree = small_tree()
    path = train.save_checkpoint(tmp_path / name, tree)
    return tree, path, path.read_bytes()


def _fails(path, like, cause):
    """Restoring ``path`` raises a CheckpointError naming the function, the path and ``cause``."""
    pattern = rf"^restore_checkpoint: .*{re.escape(str(path))}.*{cause}"
    with pytest.raises(CheckpointError, match=pattern) as info:
        train.restore_checkpoint(path, like=like)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_header_is_magic_version_length_and_sha256_of_the_payload(tmp_path):
    tree, path, data = _saved(tmp_path)
    magic, version, length, digest = struct.unpack("<8sIQ32s", data[:HEADER_SIZE])
    payload = data[HEADER_SIZE:]
    assert (magic, version, length) == (b"JAXDLCKP", 1, len(payload))
    assert digest == hashlib.sha256(payload).digest()
    raw = serialization.msgpack_restore(payload)  # the payload is plain flax msgpack
    np.testing.assert_array_equal(raw["params"]["W"], np.asarray(tree["params"]["W"]))
    back = train.restore_checkpoint(path, like=tree)
    np.testing.assert_array_equal(back["params"]["W"], tree["params"]["W"])
    assert int(back["step"]) == 7 and back["epoch"] == 2


def test_empty_file(tmp_path):
    tree, path, _ = _saved(tmp_path)
    path.write_bytes(b"")
    _fails(path, tree, "is empty")
    _fails(path, None, "is empty")


def test_truncation_at_any_offset_is_reported(tmp_path):
    tree, path, data = _saved(tmp_path)
    offsets = [1, 4, 8, 9, 12, 20, 51, 52, 53, len(data) // 2, len(data) - 1]
    for offset in offsets:
        path.write_bytes(data[:offset])
        _fails(path, tree, "is truncated")


def test_every_flipped_byte_is_detected(tmp_path):
    """Every byte, one at a time, plus 64 at once (the issue's reproduction, which
    used to load with 17 changed parameters)."""
    tree, path, data = _saved(tmp_path)
    positions = range(len(data))
    causes = "is corrupted|is truncated|is not a jaxdl checkpoint|has format version"
    for position in positions:
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        _fails(path, tree, f"({causes})")
    damaged = bytearray(data)
    for position in RNG.choice(np.arange(HEADER_SIZE, len(data)), size=64, replace=False):
        damaged[position] ^= 0x5A
    path.write_bytes(bytes(damaged))
    message = _fails(path, None, "is corrupted")
    assert "SHA-256" in message


def test_random_bytes_and_foreign_files_are_not_jaxdl_checkpoints(tmp_path):
    tree, path, data = _saved(tmp_path)
    for content in [
        RNG.integers(0, 256, size=1000, dtype=np.uint8).tobytes(),
        b"\x00garbage" * 5,
        b"hello, world\n",
        data[HEADER_SIZE:],  # a bare msgpack payload, as written before format 1
    ]:
        path.write_bytes(content)
        _fails(path, tree, "is not a jaxdl checkpoint")


def test_trailing_bytes_and_future_versions(tmp_path):
    tree, path, data = _saved(tmp_path)
    path.write_bytes(data + b"\x00")
    _fails(path, tree, "is corrupted: the header announces")
    path.write_bytes(data[:8] + struct.pack("<I", 2) + data[12:])
    _fails(path, tree, "has format version 2, but this jaxdl reads version 1")


def test_a_checkpoint_of_another_structure_names_path_and_entry(tmp_path):
    tree, path, _ = _saved(tmp_path)
    other = dict(tree, params={"W": jnp.zeros((4, 3)), "c": jnp.zeros(3)})
    _fails(path, other, r"does not have the structure of `like`: missing \['/params/c'\]")
    reshaped = dict(tree, params={"W": jnp.zeros((3, 4)), "b": jnp.zeros(3)})
    _fails(path, reshaped, r"does not have the structure of `like`: array at \['params'\]\['W'\]")
    retyped = dict(tree, step=jnp.float32(7))
    _fails(path, retyped, r"array at \['step'\] does not match")
    raw = train.restore_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"^restore_checkpoint: the checkpoint does not have the structure"):
        restore_into(other, raw)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="restore_checkpoint: no checkpoint file"):
        train.restore_checkpoint(tmp_path / "nothing.msgpack")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_get_the_usual_permissions_and_no_temporary_is_left(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = train.save_checkpoint(tmp_path / "ckpt.msgpack", small_tree())
        train.save_checkpoint(path, small_tree())  # overwrite: same rules
        reference = tmp_path / "reference"
        reference.write_bytes(b"")  # a file created the ordinary way
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask) == (reference.stat().st_mode & 0o777)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.msgpack", "reference"]
