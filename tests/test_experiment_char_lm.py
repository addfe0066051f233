"""The char-lm experiment (GPT vs LSTM vs LRU on Shakespeare): the smoothed baselines against a
brute-force count, the evaluator on a model of known bits per character, the recurrent sampling
loop on a deterministic model, the figure and summary from a small fake result, and (slow) the
fast and full runs end to end."""

import json
import math
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.data import text
from jaxdl.experiments import char_lm, report


def test_add_one_baselines_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    V = 5
    train = rng.integers(0, V, 300)
    train[::3] = 0  # not uniform, so the models differ
    val = rng.integers(0, V, 80)
    unigram, bigram = Counter(train.tolist()), Counter(zip(train[:-1].tolist(), train[1:].tolist()))
    firsts = Counter(train[:-1].tolist())
    expected_uni = -sum(math.log2((unigram[c] + 1) / (len(train) + V)) for c in val.tolist()) / len(val)
    expected_bi = -sum(math.log2((bigram[(a, b)] + 1) / (firsts[a] + V))
                       for a, b in zip(val[:-1].tolist(), val[1:].tolist())) / (len(val) - 1)  # fmt: skip
    assert char_lm.unigram_bpc(train, val, V) == pytest.approx(expected_uni, rel=1e-12)
    assert char_lm.bigram_bpc(train, val, V) == pytest.approx(expected_bi, rel=1e-12)
    # A text where each token fixes the next: the bigram knows it, the unigram does not.
    cycle = np.tile(np.arange(V), 200)
    assert char_lm.bigram_bpc(cycle, cycle[:50], V) < 0.05 < math.log2(V) - 0.01 < char_lm.unigram_bpc(cycle, cycle[:50], V)


def test_val_windows_and_the_evaluator_on_a_uniform_model():
    val = np.arange(100)
    windows = char_lm.val_windows(val, 9, None)
    assert windows.shape == (10, 10) and windows.dtype == np.int32
    np.testing.assert_array_equal(windows.ravel(), val)
    assert char_lm.val_windows(val, 9, 3).shape == (3, 10)
    V = 7

    def uniform(params, tokens):  # the same logits everywhere: log2(V) bits per character
        return jnp.zeros(tokens.shape + (V,)) + params

    bpc = char_lm.make_evaluator(uniform, batch=4)(jnp.float32(0.3), (windows % V).astype(np.int32))
    assert bpc == pytest.approx(math.log2(V), rel=1e-6)


def test_sample_causal_follows_a_deterministic_model_and_keeps_the_prompt():
    V = 6

    def successor(params, tokens):  # a causal model sure that token t + 1 is (token t + 1) mod V
        return 50.0 * jax.nn.one_hot((tokens + 1) % V, V)

    out = char_lm.sample_causal(successor, None, [4, 1], 9, jax.random.key(0), temperature=0.7)
    assert out.tolist() == [4, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="^sample_causal: "):
        char_lm.sample_causal(successor, None, [], 3, jax.random.key(0))


def test_the_corpus_split_is_what_the_json_names():
    corpus = text.load_corpus("shakespeare")
    train, val = text.train_val_split(np.arange(len(corpus)), char_lm.VAL_FRACTION)
    assert (len(train), len(val)) == (707_148, 78_572)
    assert set(char_lm.PROMPT) <= set(corpus)


def fake_results(fast):
    runs = {}
    for k, name in enumerate(char_lm.MODELS):
        runs[name] = {"val_bpc": 2.0 + 0.3 * k, "num_params": 1000 * (k + 1), "train_seconds": 10.0 * (k + 1),
                      "val_characters": 640,
                      "history": {"step": [0, 50, 100], "seconds": [0.0, 5.0, 9.0], "val_bpc": [6.3, 3.0, 2.0 + 0.3 * k]}}  # fmt: skip
    return {"fast": fast, "num_train_chars": 900, "num_val_chars": 100, "unigram_bpc": 4.7, "bigram_bpc": 3.6,
            "val_bpc": {n: r["val_bpc"] for n, r in runs.items()}, "num_params": {n: r["num_params"] for n, r in runs.items()},
            "samples": {n: "Lear.\nThou art" for n in runs}, "runs": runs}  # fmt: skip


def test_figure_and_summary_from_a_small_fake_result():
    fast = True  # the full-run title differs only by the fast-mode note, which figure_problems checks
    results = fake_results(fast)
    assert report.figure_problems(char_lm.figure(results), fast=fast) == []
    lines = char_lm.summary(results)
    assert lines["baselines: unigram / bigram bpc (add-one)"] == "4.700 / 3.600"
    assert lines["lstm val bpc (2000 params)"] == "2.300"


def check_outputs(out_dir, results):
    saved = json.loads((out_dir / "char-lm.json").read_text())
    assert (out_dir / "char-lm.png").stat().st_size > 0
    assert saved["interrupted"] is False and saved["dataset"] == "shakespeare" and saved["vocab_size"] == 76
    assert (saved["num_train_chars"], saved["num_val_chars"]) == (707_148, 78_572)
    assert 4.0 < saved["unigram_bpc"] < 5.0 and 3.0 < saved["bigram_bpc"] < saved["unigram_bpc"] - 0.5
    for name in char_lm.MODELS:
        run = saved["runs"][name]
        assert saved["val_bpc"][name] == pytest.approx(results["val_bpc"][name])
        assert run["history"]["val_bpc"][0] > math.log2(76) - 0.5  # near-uniform at initialisation
        assert run["history"]["val_bpc"][-1] < run["history"]["val_bpc"][0] - 2.0
        assert np.all(np.diff(run["history"]["seconds"]) > 0)
        assert saved["samples"][name].startswith(char_lm.PROMPT) and len(saved["samples"][name]) > 40
    assert report.figure_problems(char_lm.figure(saved), fast=saved["fast"]) == []
    return saved


@pytest.mark.slow
def test_fast_run_writes_json_and_figure(tmp_path):
    saved = check_outputs(tmp_path, char_lm.run(tmp_path, fast=True, seed=0))
    assert max(saved["val_bpc"].values()) < saved["unigram_bpc"]


@pytest.mark.slow
def test_full_run_gpt_beats_the_bigram_clearly(tmp_path):
    saved = check_outputs(tmp_path, char_lm.run(tmp_path, fast=False, seed=0))
    assert saved["val_bpc"]["gpt"] < saved["bigram_bpc"] - 0.5
