"""The memorisation experiment: label randomisation and epochs-to-fit against brute force, one
tiny training run that memorises pure noise, the figure and summary from a fake result; the fast
run end to end (train accuracy 100 % for every fraction, test at chance for 100 % random labels,
epochs to fit growing with the fraction) behind the slow marker."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.data import load_digits
from jaxdl.experiments import memorization as mem
from jaxdl.experiments import report


def test_randomize_labels_replaces_the_stated_share():
    labels = jnp.arange(1000) % 10
    for fraction in (0.0, 0.2, 0.5, 1.0):
        noisy, replaced = mem.randomize_labels(jax.random.key(0), labels, fraction)
        assert int(replaced.sum()) == round(fraction * 1000)
        np.testing.assert_array_equal(noisy[~replaced], labels[~replaced])  # the others are untouched
        if fraction == 1.0:  # uniform random classes agree with the truth about 1 time in 10
            assert 0.07 < float(jnp.mean(noisy == labels)) < 0.13
            assert set(np.unique(noisy).tolist()) == set(range(10))
    with pytest.raises(ValueError, match="^randomize_labels: expected fraction in"):
        mem.randomize_labels(jax.random.key(0), labels, 1.5)


def test_epochs_to_fit_is_the_first_perfect_epoch():
    assert mem.epochs_to_fit([0.5, 0.9, 1.0, 0.99, 1.0]) == 3
    assert mem.epochs_to_fit([0.5, 0.9]) is None


def test_a_tiny_mlp_memorises_random_labels():
    d = load_digits(seed=0, num_train=60)
    settings = dict(mem.settings_for(True, 0), width=256, max_epochs=60, batch_size=20, learning_rate=1e-2, patience=3)
    run = mem.train_one(jax.random.key(0), jnp.asarray(d.x_train), jnp.asarray(d.y_train), jnp.asarray(d.x_test),
                        jnp.asarray(d.y_test), settings, 1.0)
    assert run["train_accuracy"] == 1.0 and run["epochs_to_fit"] is not None
    assert run["labels_changed"] > 0.8
    assert run["test_accuracy"] < 0.25  # pure noise teaches nothing (chance 0.1)


def fake_results(fast=True):
    table = [{"random_fraction": f, "labels_changed": 0.9 * f, "epochs_to_fit": e, "train_accuracy": 1.0,
              "test_accuracy": t} for f, e, t in ((0.0, 4, 0.95), (0.2, 9, 0.85), (0.5, 14, 0.6), (1.0, 20, 0.1))]
    runs = [dict(row, train_accuracy_history=list(np.linspace(0.2, 1, row["epochs_to_fit"]))) for row in table]
    return {"dataset": "sklearn-digits", "num_train": 300, "model": "mlp((512,), 10)", "fast": fast,
            "table": table, "runs": runs, "chance_accuracy": 0.1}


def test_figure_and_summary_from_a_fake_result():
    for fast in (True, False):
        assert report.figure_problems(mem.figure(fake_results(fast)), fast=fast) == []
    assert mem.summary(fake_results())["100% random labels"] == "train 1.000, test 0.100, fit at epoch 20"


@pytest.mark.slow
def test_fast_run_memorises_every_fraction(tmp_path):
    results = mem.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "memorization.json").read_text())
    assert (tmp_path / "memorization.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits" and saved["interrupted"] is False
    table = saved["table"]
    assert [row["random_fraction"] for row in table] == [0.0, 0.2, 0.5, 1.0]
    assert all(row["train_accuracy"] == 1.0 for row in table)
    assert table[0]["test_accuracy"] > 0.85 and table[-1]["test_accuracy"] < 0.2
    epochs = [row["epochs_to_fit"] for row in table]
    assert epochs[0] < epochs[-1] and epochs == sorted(epochs), epochs
    assert results["table"] == table
    assert report.figure_problems(mem.figure(saved), fast=True) == []
