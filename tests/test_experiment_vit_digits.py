"""The vit-digits experiment (ViT vs LeNet-5 on 8x8 digits): the class-token attention maps
(last layer and rollout) against an explicit computation, the figure and summary from a small
fake result, and (slow) the fast run end to end."""

import json

import jax
import numpy as np
import pytest

from jaxdl.experiments import report, vit_digits


def random_attention(rng, batch, heads, tokens):
    a = rng.random((batch, heads, tokens, tokens))
    return a / a.sum(-1, keepdims=True)


def test_class_token_attention_last_layer_and_rollout_by_hand():
    rng = np.random.default_rng(0)
    layers = [random_attention(rng, 2, 3, 5) for _ in range(3)]
    last, rollout = vit_digits.class_token_attention(layers)
    assert last.shape == rollout.shape == (2, 4)
    for b in range(2):
        np.testing.assert_allclose(last[b], np.mean([layers[-1][b, h, 0, 1:] for h in range(3)], axis=0))
        # Rollout, written out: R = Ā_3 Ā_2 Ā_1 with Ā = (mean_h A + I) / 2 (rows already sum to 1).
        bars = [(layer[b].mean(axis=0) + np.eye(5)) / 2 for layer in layers]
        R = bars[2] @ bars[1] @ bars[0]
        np.testing.assert_allclose(rollout[b], R[0, 1:], rtol=1e-12)
    # One layer: the rollout is half the last-layer attention on the patches.
    one_last, one_rollout = vit_digits.class_token_attention(layers[:1])
    np.testing.assert_allclose(one_rollout, 0.5 * one_last, rtol=1e-12)


def test_attention_maps_of_a_real_vit_are_shares_of_the_class_token():
    settings = vit_digits.settings_for(True, 0)
    settings["vit"].update(d_model=16, num_heads=2)  # small, quick to compile; the same 2x2 patches and layers
    init_fn, apply_fn, _ = vit_digits.build("vit", settings)
    _, params = init_fn(jax.random.key(0), (-1, 8, 8, 1))
    x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1))
    logits, weights = apply_fn(params, x, return_attention=True)
    assert logits.shape == (3, 10) and len(weights) == settings["vit"]["num_layers"]
    last, rollout = vit_digits.class_token_attention(weights)
    assert last.shape == rollout.shape == (3, 16)  # 2x2 patches of an 8x8 image
    cls_self = np.asarray(weights[-1]).mean(axis=1)[:, 0, 0]
    np.testing.assert_allclose(last.sum(-1) + cls_self, 1.0, rtol=1e-5)  # the class token's row is a distribution
    assert np.all(rollout > 0) and np.all(rollout.sum(-1) < 1.0)


def fake_results(fast):
    rng = np.random.default_rng(0)
    runs = {
        name: {"num_params": 100 * (k + 1), "test_accuracy": 0.9 + 0.05 * k, "test_accuracy_history": [0.5, 0.9 + 0.05 * k],
               "epoch": [1, 2], "train_seconds": 1.0}
        for k, name in enumerate(vit_digits.MODELS)
    }  # fmt: skip
    runs["vit"].update({
        "attention_grid": [4, 4], "examples": [0, 1], "example_predictions": [3, 1],
        "last_layer_attention": rng.random((2, 4, 4)).tolist(), "rollout_attention": rng.random((2, 4, 4)).tolist(),
        "mean_last_layer_attention": rng.random((4, 4)).tolist(), "mean_rollout_attention": rng.random((4, 4)).tolist(),
    })  # fmt: skip
    return {"fast": fast, "test_accuracy": {n: r["test_accuracy"] for n, r in runs.items()},
            "num_params": {n: r["num_params"] for n, r in runs.items()},
            "example_images": rng.random((2, 8, 8)).tolist(), "example_labels": [3, 1], "runs": runs}  # fmt: skip


def test_figure_and_summary_from_a_small_fake_result():
    fast = True  # the full-run title differs only by the fast-mode note, which figure_problems checks
    results = fake_results(fast)
    assert report.figure_problems(vit_digits.figure(results), fast=fast) == []
    assert vit_digits.summary(results)["lenet5 test accuracy (200 params)"] == "0.9500"


@pytest.mark.slow
def test_fast_run_writes_json_and_figure(tmp_path):
    results = vit_digits.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "vit-digits.json").read_text())
    assert (tmp_path / "vit-digits.png").stat().st_size > 0
    assert saved["interrupted"] is False and saved["dataset"] == "sklearn-digits"
    assert (saved["num_train"], saved["num_test"]) == (1347, 450)
    for name in vit_digits.MODELS:
        assert saved["test_accuracy"][name] == pytest.approx(results["test_accuracy"][name])
        assert saved["test_accuracy"][name] > 0.5  # chance is 0.1
    vit = saved["runs"]["vit"]
    assert np.shape(vit["rollout_attention"]) == (vit_digits.NUM_EXAMPLES, 4, 4)
    assert report.figure_problems(vit_digits.figure(saved), fast=True) == []


@pytest.mark.slow
def test_full_run_vit_and_lenet_accuracies(tmp_path):
    vit_digits.run(tmp_path, fast=False, seed=0)  # measured: ViT 0.911, LeNet-5 0.924
    saved = json.loads((tmp_path / "vit-digits.json").read_text())
    assert saved["test_accuracy"]["vit"] >= 0.88 and saved["test_accuracy"]["lenet5"] >= 0.9
    assert report.figure_problems(vit_digits.figure(saved), fast=False) == []
