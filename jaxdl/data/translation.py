"""A synthetic "language pair" with a known answer: English number words → digits.

The seeds' machine-translation set-up (``p(y_{1:n} | x_{1:m})`` with an
encoder-decoder) needs a pair of languages; this one is generated, so every
translation is known exactly and exact-match accuracy is meaningful::

    "three hundred four thousand twenty"  →  "304020"

Source sentences are the words of :func:`number_to_words` (American style: no
"and", no hyphens: ``"twenty one"``), for the integers 0 … 999 999; the source
vocabulary is :data:`SOURCE_WORDS` behind a padding token. Targets are the
decimal digits followed by an end-of-sequence token. The alignment is not
one-to-one: "thousand" and "hundred" carry the positions of the digits, and
zeros (``"three thousand five"`` → ``"3005"``) have no word of their own, which
is what an attention-alignment figure makes visible.

:func:`number_pairs` draws the data set with a fixed seed: the number of digits
is uniform on 1 … 6 and the number uniform among those with that many digits
(so short numbers are not swamped by the 900 000 six-digit ones); the numbers
are distinct, and the test numbers are held out (none of them is a training
number). Token arrays are padded to fixed lengths: the source with ``PAD`` after
the words, the target with ``EOS`` after the digits (an encoder-decoder with
``eos_id = EOS`` ignores what follows the first ``EOS``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SOURCE_WORDS = ONES + TENS[2:] + ("hundred", "thousand")
MAX_VALUE = 999_999

PAD = "<pad>"
BOS, EOS = "<bos>", "<eos>"
#: Source tokens: 0 is padding, then the 29 words.
SOURCE_VOCAB = (PAD, *SOURCE_WORDS)
#: Target tokens: 0 is the decoder's start token, 1 the end of the sequence, then the digits 0 … 9.
TARGET_VOCAB = (BOS, EOS, *"0123456789")
PAD_ID, BOS_ID, EOS_ID = 0, 0, 1
#: Longest source ("seven hundred seventy seven thousand seven hundred seventy seven") and target (6 digits + EOS).
SOURCE_LENGTH, TARGET_LENGTH = 9, 7

_SOURCE_INDEX = {w: i for i, w in enumerate(SOURCE_VOCAB)}


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(TENS[n // 10])
        n %= 10
        if n:
            words.append(ONES[n])
    elif n or not words:
        words.append(ONES[n])
    return words


def number_to_words(n: int) -> str:
    """The English words of ``0 <= n <= 999 999``, e.g. ``number_to_words(304020)`` is
    ``"three hundred four thousand twenty"``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_VALUE:
        raise ValueError(f"number_to_words: expected an int in [0, {MAX_VALUE}], got {n!r}")
    n = int(n)
    thousands, rest = divmod(n, 1000)
    words = _below_thousand(thousands) + ["thousand"] if thousands else []
    if rest or not thousands:
        words += _below_thousand(rest)
    return " ".join(words)


def encode_source(sentence: str) -> np.ndarray:
    """The words of ``sentence`` as int32 source tokens, padded with ``PAD`` to :data:`SOURCE_LENGTH`."""
    if not isinstance(sentence, str):
        raise TypeError(f"encode_source: expected a str, got {type(sentence).__name__}")
    words = sentence.split()
    unknown = [w for w in words if w not in _SOURCE_INDEX or w == PAD]
    if unknown or not words or len(words) > SOURCE_LENGTH:
        raise ValueError(f"encode_source: expected 1 to {SOURCE_LENGTH} words of SOURCE_WORDS, got {sentence!r}")
    ids = [_SOURCE_INDEX[w] for w in words]
    return np.array(ids + [PAD_ID] * (SOURCE_LENGTH - len(ids)), np.int32)


def encode_target(digits: str) -> np.ndarray:
    """The digits of ``digits`` as int32 target tokens, followed by ``EOS`` up to :data:`TARGET_LENGTH`."""
    if not isinstance(digits, str) or not digits.isdigit() or len(digits) >= TARGET_LENGTH or not digits.isascii():
        raise ValueError(f"encode_target: expected 1 to {TARGET_LENGTH - 1} decimal digits, got {digits!r}")
    ids = [TARGET_VOCAB.index(d) for d in digits]
    return np.array(ids + [EOS_ID] * (TARGET_LENGTH - len(ids)), np.int32)


def decode_source(tokens) -> str:
    """The words of source tokens, padding dropped."""
    tokens = _ids("decode_source", tokens, len(SOURCE_VOCAB))
    return " ".join(SOURCE_VOCAB[i] for i in tokens if i != PAD_ID)


def decode_target(tokens) -> str:
    """The digits of target tokens up to the first ``EOS`` (a ``BOS`` inside the digits reads as ``"?"``)."""
    tokens = _ids("decode_target", tokens, len(TARGET_VOCAB))
    out = []
    for i in tokens:
        if i == EOS_ID:
            break
        out.append("?" if i == BOS_ID else TARGET_VOCAB[i])
    return "".join(out)


def _ids(name: str, tokens, size: int) -> list[int]:
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(f"{name}: expected a 1-D integer array of tokens, got dtype {tokens.dtype} and shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= size):
        raise ValueError(f"{name}: expected token ids in [0, {size}), got range [{tokens.min()}, {tokens.max()}]")
    return tokens.tolist()


class TranslationData(NamedTuple):
    """Number words → digits: int32 token arrays ``(count, SOURCE_LENGTH)`` and
    ``(count, TARGET_LENGTH)`` for training and test, and the numbers they encode."""

    src_train: np.ndarray
    tgt_train: np.ndarray
    src_test: np.ndarray
    tgt_test: np.ndarray
    numbers_train: np.ndarray
    numbers_test: np.ndarray
    name: str = "number-words-to-digits"


def draw_numbers(count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct integers in [0, 999 999]: digit count uniform on 1 … 6, then uniform
    among the numbers with that many digits, repeats dropped (deterministic in ``seed``). The
    short numbers run out: for a large ``count`` all 10 one-digit and 90 two-digit numbers are
    in, and the longer ones make up the rest."""
    name = "draw_numbers"
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 500_000:
        raise ValueError(f"{name}: expected count to be an int in [1, 500000], got {count!r}")
    rng = np.random.default_rng(seed)
    chosen: dict[int, None] = {}  # insertion-ordered set
    while len(chosen) < count:
        digits = rng.integers(1, 7, size=2 * count)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        values = low + np.floor(rng.random(2 * count) * (10**digits - low)).astype(np.int64)
        for v in values.tolist():
            chosen.setdefault(v)
            if len(chosen) == count:
                break
    return np.fromiter(chosen, np.int64, count)


def number_pairs(num_train: int, num_test: int, *, seed: int = 0) -> TranslationData:
    """The number-words → digits data set: ``num_train + num_test`` distinct numbers from
    :func:`draw_numbers`, split at random (seeded) into ``num_test`` held-out test numbers
    and ``num_train`` training numbers (so each digit count is shared in proportion: the
    ten one-digit numbers mostly land in training, not all in the test set)."""
    name = "number_pairs"
    for what, value in (("num_train", num_train), ("num_test", num_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: expected {what} to be a positive int, got {value!r}")
    numbers = draw_numbers(num_train + num_test, seed)
    src = np.stack([encode_source(number_to_words(n)) for n in numbers.tolist()])
    tgt = np.stack([encode_target(str(n)) for n in numbers.tolist()])
    order = np.random.default_rng([seed, 1]).permutation(len(numbers))
    test, train = order[:num_test], order[num_test:]
    return TranslationData(src[train], tgt[train], src[test], tgt[test], numbers[train], numbers[test])


__all__ = [
    "BOS_ID", "EOS_ID", "PAD_ID", "SOURCE_LENGTH", "SOURCE_VOCAB", "SOURCE_WORDS", "TARGET_LENGTH", "TARGET_VOCAB",
    "TranslationData", "decode_source", "decode_target", "draw_numbers", "encode_source", "encode_target",
    "number_pairs", "number_to_words",
]  # fmt: skip
