"""The translation experiment (number words -> digits) and the attention weights of models.seq2seq
that its alignment figure draws: Seq2Seq.attention against a hand computation, its causality, the
experiment's pieces on small fakes, and (slow) the fast run end to end."""

import json

import jax
import numpy as np
import pytest

from jaxdl import models
from jaxdl.data import translation as data
from jaxdl.experiments import report, translation
from jaxdl.stax.recurrent import GRU, LSTM, Embedding


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_seq2seq_attention_is_the_additive_softmax_and_causal(cell):
    src_vocab, tgt_vocab, embed, hidden, att = 7, 5, 6, 8, 5
    model = models.seq2seq(src_vocab, tgt_vocab, cell=cell, embed_dim=embed, hidden=hidden, attention_dim=att, bos_id=0)
    params = model.init(jax.random.key(1))
    src = jax.random.randint(jax.random.key(2), (3, 6), 0, src_vocab)
    tgt_in = jax.random.randint(jax.random.key(3), (3, 4), 0, tgt_vocab)
    weights = np.asarray(model.attention(params, src, tgt_in))
    assert weights.shape == (3, 4, 6)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    # Row 0 by hand: z_0 = tanh(W_s ζ_m + b_s); a_0j = softmax_j(v . tanh(W_q z_0 + W_k ζ_j)).
    rnn = GRU if cell == "gru" else LSTM
    zeta = rnn(hidden, return_sequences=True).apply(params["encoder"], Embedding(src_vocab, embed).apply(params["src_embed"], src))
    zeta = np.asarray(zeta, np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in params["attention"].items()}
    z0 = np.tanh(zeta[:, -1] @ np.asarray(params["bridge"]["W"]) + np.asarray(params["bridge"]["b"]))
    scores = np.tanh(zeta @ p["W_k"] + (z0 @ p["W_q"])[:, None, :]) @ p["v"]
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights[:, 0], expected, rtol=1e-4, atol=1e-6)
    # Row i depends on tgt_in[:, :i] only: change token 2, rows 0..2 stay, row 3 moves.
    changed = np.asarray(model.attention(params, src, tgt_in.at[:, 2].set((tgt_in[:, 2] + 1) % tgt_vocab)))
    np.testing.assert_allclose(changed[:, :3], weights[:, :3], rtol=1e-6, atol=1e-7)
    assert np.max(np.abs(changed[:, 3] - weights[:, 3])) > 1e-6
    # Bad input: a token id outside the vocabulary, or a batch mismatch.
    with pytest.raises(ValueError, match="^seq2seq: "):
        model.attention(params, src, tgt_in.at[0, 0].set(tgt_vocab))
    with pytest.raises(ValueError, match="^seq2seq: "):
        model.attention(params, src, tgt_in[:2])


class _Oracle:
    """A stand-in model whose greedy output is given."""

    def __init__(self, outputs):
        self.outputs = outputs

    def greedy(self, params, src, max_len):
        assert max_len == data.TARGET_LENGTH
        return self.outputs[src[:, 0]]  # the test passes the row index as the first source token


def test_exact_match_counts_whole_sequences_and_example_picks():
    pairs = data.number_pairs(50, 30, seed=0)
    src = np.zeros_like(pairs.src_test)
    src[:, 0] = np.arange(30)
    wrong = pairs.tgt_test.copy()
    wrong[3, -1] = 5  # a digit after the EOS padding: not an exact match
    wrong[7, 0] = (wrong[7, 0] % 10) + 2  # the first digit changed
    hits = translation.exact_match(_Oracle(wrong), None, src, pairs.tgt_test, batch=7)
    assert hits.tolist() == [i not in (3, 7) for i in range(30)]
    picks = translation.example_indices(pairs.numbers_test, 2)
    first, second = (str(pairs.numbers_test[i]) for i in picks)
    assert len(first) == 6 and "0" in first and len(second) == 4


def fake_results(fast):
    runs = {}
    for k, name in enumerate(translation.MODELS):
        examples = []
        for number in (304020, 7005):
            n, m = data.TARGET_LENGTH, data.SOURCE_LENGTH
            weights = np.random.default_rng(k).dirichlet(np.ones(m), size=n)
            examples.append({"index": 0, "number": number, "attention": weights.tolist(), "predicted": str(number)})
        runs[name] = {
            "num_params": 1000 + k, "test_exact_match": 0.5 + 0.1 * k, "train_seconds": 3.0,
            "test_exact_match_by_digits": {str(d): d / 6 for d in range(1, 7)},
            "history": {"step": [10, 20], "test_exact_match": [0.1, 0.5 + 0.1 * k], "seconds": [1, 2], "train_loss": [1, 0.5]},
            "examples": examples,
        }  # fmt: skip
    return {"fast": fast, "num_train": 100, "num_test": 30, "source_length": data.SOURCE_LENGTH,
            "test_exact_match": {n: runs[n]["test_exact_match"] for n in runs},
            "num_params": {n: runs[n]["num_params"] for n in runs}, "runs": runs}  # fmt: skip


def test_figure_and_summary_from_a_small_fake_result():
    fast = True  # the full-run title differs only by the fast-mode note, which figure_problems checks
    results = fake_results(fast)
    assert report.figure_problems(translation.figure(results), fast=fast) == []
    lines = translation.summary(results)
    assert lines["transformer test exact match (1001 params)"] == "0.6000"


@pytest.mark.slow
def test_fast_run_writes_json_and_figure(tmp_path):
    results = translation.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "translation.json").read_text())
    assert (tmp_path / "translation.png").stat().st_size > 0
    assert saved["interrupted"] is False and saved["dataset"] == "number-words-to-digits"
    assert (saved["num_train"], saved["num_test"]) == (3000, 500)
    for name in translation.MODELS:
        run = saved["runs"][name]
        assert saved["test_exact_match"][name] == pytest.approx(results["test_exact_match"][name])
        assert run["test_exact_match"] == pytest.approx(run["history"]["test_exact_match"][-1])
        for example in run["examples"]:
            weights = np.asarray(example["attention"])
            assert weights.shape == (data.TARGET_LENGTH, data.SOURCE_LENGTH)
            np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-4)
        assert run["history"]["train_loss"][-1] < run["history"]["train_loss"][0]
    assert max(saved["test_exact_match"].values()) > 0.2  # a guess at 6 digits is right with p ~ 1e-6
    assert report.figure_problems(translation.figure(saved), fast=True) == []


@pytest.mark.slow
def test_full_run_both_models_translate_99_percent_of_held_out_numbers(tmp_path):
    translation.run(tmp_path, fast=False, seed=0)  # measured: seq2seq 1.000, transformer 0.999
    saved = json.loads((tmp_path / "translation.json").read_text())
    assert (saved["num_train"], saved["num_test"]) == (20000, 2000)
    assert min(saved["test_exact_match"].values()) >= 0.99
    assert report.figure_problems(translation.figure(saved), fast=False) == []
