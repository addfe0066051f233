"""The sequence-memory experiment: the vanishing-gradient fact it measures (SimpleRNN's state
Jacobian at initialisation falls with T far faster than the LRU's), the chunked Jacobian
against closed forms and direct Jacobians, and (slow: about 30 CPU-s of compilation) a tiny
configuration end to end: JSON, figure, keys, and the same fact read from the output."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import experiments
from jaxdl.data import copy_first_token
from jaxdl.experiments import report, sequence_memory
from jaxdl.stax.lru import eigenvalues
from jaxdl.stax.recurrent import GRU, LSTM

TINY = {  # two models (the physics check's pair) and two spans, a few steps each
    "models": ["simple_rnn", "lru"],
    "T": [16, 32],
    "train_steps": 3,
    "batch_size": 8,
    "num_train_sequences": 32,
    "num_test_sequences": 16,
    "hidden": {"simple_rnn": 8, "lstm": 6, "gru": 6, "lru": 6},
    "lru_d_state": 6,
    "grad_inputs": 2,
    "digits_steps": 2,
    "digits_batch_size": 8,
    "digits_num_train": 64,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("sequence-memory")
    results = sequence_memory.run(out_dir, fast=True, seed=0, overrides=TINY)
    return out_dir, results


@pytest.mark.slow
def test_tiny_run_writes_json_and_a_clean_figure_with_every_model_and_T(tiny_run):
    out_dir, results = tiny_run
    saved = json.loads((out_dir / "sequence-memory.json").read_text())
    assert (out_dir / "sequence-memory.png").stat().st_size > 0
    assert saved["interrupted"] is False and saved["fast"] is True
    assert saved["datasets"]["sequential_digits"] == "sklearn-digits-sequential"
    assert saved["datasets"]["copy"].startswith("copy-first-token")
    assert saved["T"] == [16, 32] and saved["models"] == ["simple_rnn", "lru"]
    assert set(saved["copy"]) == {"simple_rnn", "lru"} == set(saved["sequential_digits"]["accuracy"])
    for model, per_T in saved["copy"].items():
        assert set(per_T) == {"16", "32"}
        for T, cell in per_T.items():
            assert 0.0 <= cell["accuracy"] <= 1.0
            assert cell["log10_grad_norm"] == pytest.approx(results["copy"][model][T]["log10_grad_norm"])
            assert cell["grad_norm"] == pytest.approx(10 ** cell["log10_grad_norm"], rel=1e-6)
        assert saved["timings"]["copy_train_seconds"][model]["32"] > 0
    assert saved["sequential_digits"]["num_test"] == 450
    assert set(saved["timings"]) >= {"copy_train_seconds", "grad_norm_seconds", "digits_train_seconds"}
    assert report.figure_problems(sequence_memory.figure(saved), fast=True) == []
    assert report.figure_problems(sequence_memory.figure({**saved, "fast": False}), fast=False) == []
    assert any("SimpleRNN" in line for line in sequence_memory.summary(saved))


@pytest.mark.slow
def test_simple_rnn_gradient_vanishes_with_T_faster_than_the_lru_in_the_output(tiny_run):
    """At initialisation (before any training) log10 σ_max(∂s_T/∂s_0) drops between T = 16 and
    T = 32 by more for the SimpleRNN than for the LRU, whose |λ| start in [0.99, 0.9999]."""
    _, results = tiny_run
    drop = {m: results["copy"][m]["16"]["log10_grad_norm"] - results["copy"][m]["32"]["log10_grad_norm"]
            for m in ("simple_rnn", "lru")}  # fmt: skip
    assert 0 < drop["lru"] < 16 * -np.log10(0.99) + 1e-6  # 16 more steps at |λ| >= 0.99
    assert drop["simple_rnn"] > drop["lru"] + 0.5, drop


def test_at_init_the_simple_rnn_gradient_vanishes_exponentially_and_the_lru_gradient_does_not():
    """The experiment's models at their initialisation (full-run sizes), on copy-first-token
    inputs: log10 σ_max(∂s_T/∂s_0) of the SimpleRNN falls by orders of magnitude from T = 16 to
    T = 64, the LRU's by at most 48 steps at |λ| >= 0.99."""
    settings = sequence_memory.settings_for(False, 0)
    drop = {}
    for model in ("simple_rnn", "lru"):
        net = sequence_memory.build(model, 8, settings)
        _, params = net.init(jax.random.key(0), (-1, 1, 9))
        (layer_params,) = [v for k, v in params.items() if k.endswith("_0")]
        norms = {}
        for T in (16, 64):
            x, _ = copy_first_token(2, T, 8, jax.random.key(T))
            norms[T] = np.mean(sequence_memory.log10_state_jacobian_norms(model, layer_params, x, chunk=16))
        drop[model] = norms[16] - norms[64]
    assert 0 < drop["lru"] < 48 * -np.log10(0.99)
    assert drop["simple_rnn"] > 1.0 + drop["lru"], drop


def test_lru_state_jacobian_norm_is_max_abs_eigenvalue_to_the_T():
    """The LRU is linear: ∂h_T/∂h_0 = diag(λ^T), so σ_max = max_j |λ_j|^T (T steps after step 0),
    whatever the input; the chunked product must reproduce it."""
    settings = {**sequence_memory.settings_for(True, 0), "hidden": {"lru": 5}, "lru_d_state": 7}
    net = sequence_memory.build("lru", 3, settings)
    _, params = net.init(jax.random.key(1), (-1, 33, 4))
    layer_params = params["LRU_0"]
    x = np.asarray(jax.random.normal(jax.random.key(2), (3, 33, 4)), np.float32)
    got = sequence_memory.log10_state_jacobian_norms("lru", layer_params, x, chunk=16)
    expected = 32 * np.log10(np.max(np.abs(np.asarray(eigenvalues(layer_params)))))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_simple_rnn_state_jacobian_matches_the_seeds_product_of_step_jacobians():
    """σ_max of ∂h_T/∂h_0 against the seeds' product ``prod_j Phi_j U`` written out in numpy
    (row-vector layout under 'ntk' with b_std = 0: h_t = tanh(h_{t-1} W / sqrt(H) + x_t U / sqrt(F)))."""
    settings = {**sequence_memory.settings_for(True, 0), "hidden": {"simple_rnn": 6}}
    net = sequence_memory.build("simple_rnn", 3, settings)
    _, params = net.init(jax.random.key(3), (-1, 17, 4))
    p = {k: np.asarray(v, np.float64) for k, v in params["SimpleRNN_0"].items()}
    x = np.asarray(jax.random.normal(jax.random.key(4), (2, 17, 4)), np.float32)
    got = sequence_memory.log10_state_jacobian_norms("simple_rnn", params["SimpleRNN_0"], x, chunk=8)
    H, F = p["W"].shape[0], p["U"].shape[0]
    for n in range(2):
        h = np.zeros(H)
        jacobian = np.eye(H)
        for t in range(17):
            h_new = np.tanh(h @ p["W"] / np.sqrt(H) + x[n, t] @ p["U"] / np.sqrt(F))
            if t > 0:  # ∂h_t/∂h_{t-1} = Phi_t W^T / sqrt(H) in column convention
                jacobian = (np.diag(1 - h_new**2) @ p["W"].T / np.sqrt(H)) @ jacobian
            h = h_new
        expected = np.log10(np.linalg.svd(jacobian, compute_uv=False)[0])
        assert got[n] == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_gated_state_jacobian_product_matches_one_jacobian_of_the_whole_span(model):
    """The chunked, rescaled product against ``jax.jacfwd`` of the layer over all T steps at once
    (LSTM: the state is (h, c))."""
    settings = {**sequence_memory.settings_for(True, 0), "hidden": {model: 5}}
    net = sequence_memory.build(model, 3, settings)
    _, params = net.init(jax.random.key(5), (-1, 9, 4))
    layer_params = params[f"{'LSTM' if model == 'lstm' else 'GRU'}_0"]
    x = np.asarray(jax.random.normal(jax.random.key(6), (1, 9, 4)), np.float32)
    got = sequence_memory.log10_state_jacobian_norms(model, layer_params, x, chunk=3)
    apply_fn = (LSTM(5) if model == "lstm" else GRU(5)).apply
    _, s0 = apply_fn(layer_params, x[:, :1], return_state=True)

    def final(s):
        state = (s[None, :5], s[None, 5:]) if model == "lstm" else s[None]
        _, last = apply_fn(layer_params, x[:, 1:], initial_state=state, return_state=True)
        return jnp.concatenate([last[0][0], last[1][0]]) if model == "lstm" else last[0]

    start = jnp.concatenate([s0[0][0], s0[1][0]]) if model == "lstm" else s0[0]
    jacobian = np.asarray(jax.jacfwd(final)(start), np.float64)
    assert got[0] == pytest.approx(np.log10(np.linalg.svd(jacobian, compute_uv=False)[0]), abs=1e-4)


def test_the_experiment_is_discovered_and_rejects_unknown_overrides(tmp_path):
    assert experiments.available()["sequence-memory"] is sequence_memory
    with pytest.raises(ValueError, match="sequence-memory: unknown settings"):
        sequence_memory.run(tmp_path, fast=True, overrides={"no_such_setting": 1})
