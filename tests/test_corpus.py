"""The embedded character corpus (jaxdl.data.text): the shipped bytes, the vocabulary,
encode/decode, the train/validation split and LM windows."""

import gzip
import hashlib
import importlib.resources

import jax
import numpy as np
import pytest

from jaxdl.data import text as T


def test_shipped_corpus_size_and_checksum():
    # Independent of load_corpus: read and hash the packaged file directly.
    raw = gzip.decompress(importlib.resources.files("jaxdl.data").joinpath("corpus", "shakespeare.txt.gz").read_bytes())
    assert len(raw) == 785_720
    assert hashlib.sha256(raw).hexdigest() == "ded0e8d70eb5a6e11bc3dc1f880d9f7c886a6a542be1bfcc2dae4ea371fcb212"
    s = T.load_corpus("shakespeare")
    assert s == raw.decode("ascii") and len(s) == T.CORPORA["shakespeare"].num_chars
    # The six plays, in order, and no Project Gutenberg boilerplate left.
    titles = ["HAMLET, PRINCE OF DENMARK", "MACBETH", "ROMEO AND JULIET", "THE TEMPEST", "JULIUS CAESAR", "THE TRAGEDY OF KING LEAR"]
    positions = [s.find(t + "\n\nby William Shakespeare") for t in titles]
    assert all(p >= 0 for p in positions) and positions == sorted(positions) and positions[0] == 0
    assert "gutenberg" not in s.lower() and "etext" not in s.lower()
    assert s.endswith("\n") and "To be, or not to be" in s


def test_load_corpus_rejects_unknown_name():
    with pytest.raises(ValueError, match="^load_corpus: "):
        T.load_corpus("milton")


def test_vocab_and_round_trip():
    s = T.load_corpus()
    vocab = T.char_vocab(s)
    assert len(vocab) == 76 and list(vocab.chars) == sorted(set(s))
    tokens = T.encode(s, vocab)
    assert tokens.dtype == np.int32 and tokens.shape == (len(s),)
    # Against a plain per-character lookup on a slice, then the whole text back.
    piece = s[10_000:10_500]
    assert T.encode(piece, vocab).tolist() == [vocab.chars.index(c) for c in piece]
    assert T.decode(tokens, vocab) == s
    assert T.decode(T.encode("Hamlet.\n", vocab), vocab) == "Hamlet.\n"


def test_encode_decode_reject_bad_input():
    vocab = T.char_vocab("abc")
    with pytest.raises(ValueError, match="^encode: "):
        T.encode("abd", vocab)
    with pytest.raises(ValueError, match="^decode: "):
        T.decode([0, 3], vocab)
    with pytest.raises(ValueError, match="^decode: "):
        T.decode(np.zeros((2, 2), np.int32), vocab)
    with pytest.raises(ValueError, match="^char_vocab: "):
        T.char_vocab("")


def test_split_is_deterministic_contiguous_and_disjoint():
    tokens = np.arange(1000, dtype=np.int32)  # distinct ids make overlap visible
    train, val = T.train_val_split(tokens, val_fraction=0.1)
    train2, val2 = T.train_val_split(tokens, val_fraction=0.1)
    np.testing.assert_array_equal(train, train2)
    np.testing.assert_array_equal(val, val2)
    assert len(train) == 900 and len(val) == 100
    assert not set(train.tolist()) & set(val.tolist())
    np.testing.assert_array_equal(np.concatenate([train, val]), tokens)
    with pytest.raises(ValueError, match="^train_val_split: "):
        T.train_val_split(tokens, val_fraction=1.0)


def test_batch_windows_are_next_token_shifted_slices():
    tokens = np.arange(50, dtype=np.int32)
    x, y = T.batch_windows(tokens, seq_len=7, batch_size=16, key=jax.random.key(3))
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape == (16, 7)
    for row_x, row_y in zip(x, y):
        start = row_x[0]
        np.testing.assert_array_equal(row_x, tokens[start : start + 7])
        np.testing.assert_array_equal(row_y, tokens[start + 1 : start + 8])
    assert x[:, 0].max() <= 50 - 8
    with pytest.raises(ValueError, match="^batch_windows: "):
        T.batch_windows(tokens[:5], seq_len=7, batch_size=2, key=jax.random.key(0))
