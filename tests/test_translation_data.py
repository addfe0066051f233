"""The number-words → digits language pair (jaxdl.data.translation): the words read back
to the right number under an independent parser, the data set is deterministic, the test
numbers are held out, and bad input raises."""

import numpy as np
import pytest

from jaxdl.data import translation as tr

VALUES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
          "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}  # fmt: skip


def parse(sentence: str) -> int:
    """An independent reader of English number words (accumulate, multiply on 'hundred'/'thousand')."""
    total, current = 0, 0
    for word in sentence.split():
        if word == "hundred":
            current *= 100
        elif word == "thousand":
            total, current = total + current * 1000, 0
        else:
            current += VALUES[word]
    return total + current


def test_words_of_known_numbers():
    assert tr.number_to_words(0) == "zero"
    assert tr.number_to_words(17) == "seventeen"
    assert tr.number_to_words(40) == "forty"
    assert tr.number_to_words(3005) == "three thousand five"
    assert tr.number_to_words(110_000) == "one hundred ten thousand"
    assert tr.number_to_words(304_020) == "three hundred four thousand twenty"
    assert tr.number_to_words(999_999) == "nine hundred ninety nine thousand nine hundred ninety nine"


def test_words_read_back_to_the_number_and_fit_the_source_length():
    rng = np.random.default_rng(1)
    numbers = list(range(0, 2000)) + rng.integers(0, tr.MAX_VALUE + 1, 3000).tolist() + [tr.MAX_VALUE]
    for n in numbers:
        words = tr.number_to_words(n)
        assert parse(words) == n, words
        assert 1 <= len(words.split()) <= tr.SOURCE_LENGTH
        assert set(words.split()) <= set(tr.SOURCE_WORDS)
    assert len(tr.number_to_words(777_777).split()) == tr.SOURCE_LENGTH  # the longest sentence


def test_number_pairs_are_deterministic_distinct_held_out_and_correctly_encoded():
    data = tr.number_pairs(600, 200, seed=3)
    again = tr.number_pairs(600, 200, seed=3)
    for a, b in zip(data[:6], again[:6]):
        np.testing.assert_array_equal(a, b)
    assert data.src_train.shape == (600, tr.SOURCE_LENGTH) and data.tgt_test.shape == (200, tr.TARGET_LENGTH)
    assert data.src_train.dtype == np.int32 and data.tgt_train.dtype == np.int32
    every = np.concatenate([data.numbers_train, data.numbers_test])
    assert len(set(every.tolist())) == 800  # distinct, so no test number is a training number
    assert set(data.numbers_test.tolist()).isdisjoint(data.numbers_train.tolist())
    for src, tgt, n in zip(data.src_test, data.tgt_test, data.numbers_test):
        assert parse(tr.decode_source(src)) == n
        assert tr.decode_target(tgt) == str(n)
        assert tgt[len(str(n)):].tolist() == [tr.EOS_ID] * (tr.TARGET_LENGTH - len(str(n)))
    digits = np.array([len(str(n)) for n in every])
    counts = np.bincount(digits, minlength=7)[1:]
    # The digit count is uniform on 1..6 (about 145 draws each); the 10 one-digit numbers are all
    # drawn, the 90 two-digit ones mostly, and the rest (~ 800 - 10 - 70) share the other four counts.
    assert counts[0] == 10 and 50 <= counts[1] <= 90
    assert np.all((counts[2:] > 140) & (counts[2:] < 220)), counts
    assert not np.array_equal(tr.number_pairs(600, 200, seed=4).numbers_test, data.numbers_test)


def test_bad_input_raises_with_the_function_name():
    with pytest.raises(ValueError, match="^number_to_words: "):
        tr.number_to_words(1_000_000)
    with pytest.raises(ValueError, match="^number_to_words: "):
        tr.number_to_words(-1)
    with pytest.raises(ValueError, match="^encode_source: "):
        tr.encode_source("one zillion")
    with pytest.raises(TypeError, match="^encode_source: "):
        tr.encode_source(5)
    with pytest.raises(ValueError, match="^encode_target: "):
        tr.encode_target("12a")
    with pytest.raises(ValueError, match="^decode_target: "):
        tr.decode_target(np.array([2, 99]))
    with pytest.raises(ValueError, match="^number_pairs: "):
        tr.number_pairs(0, 10)
    with pytest.raises(ValueError, match="^draw_numbers: "):
        tr.draw_numbers(True)
