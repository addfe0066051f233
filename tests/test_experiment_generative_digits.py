"""The generative-digits experiment: its pieces by default (the bits/dim conversion, the
table, summary and figure from a small fake result), the fast run end to end behind the
slow marker."""

import json
import math

import numpy as np
import pytest

from jaxdl.experiments import generative_digits as gd
from jaxdl.experiments import report


def test_bits_conversion_gives_log2_17_for_the_uniform_density():
    # the uniform density on [0, 1]^64 has log-density 0: P(x) = 17^-64 exactly
    assert gd._bits(0.0) == pytest.approx(math.log2(17))
    # a density 2x higher everywhere saves exactly one bit per 64 dims
    assert gd._bits(math.log(2.0)) == pytest.approx(math.log2(17) - 1 / 64)


def _fake_results(fast=True):
    rng = np.random.default_rng(0)
    samples = rng.uniform(size=(16, 64)).tolist()
    units = {
        "linear": {"ppca_test_bits_per_dim": 2.1, "fa_test_bits_per_dim": 2.0, "autoencoder_max_principal_angle_deg": 0.5,
                   "autoencoder_loss_excess": 0.01,
                   "samples": samples, "train_seconds": 1.0},
        "vae": {"elbo_test_bits_per_dim": 1.9, "iwae_test_bits_per_dim": 1.8, "iwae_k": 16, "samples": samples, "train_seconds": 2.0},
        "dlgm": {"elbo_test_bits_per_dim": 1.85, "iwae_test_bits_per_dim": 1.75, "iwae_k": 16, "latent_dims": [16, 8],
                 "samples": samples, "train_seconds": 2.0},
        "realnvp": {"test_bits_per_dim": 1.7, "samples": samples, "train_seconds": 3.0},
        "made": {"test_bits_per_dim": 1.5, "samples": samples, "train_seconds": 4.0},
    }
    return {"fast": fast, "num_train": 1347, "num_test": 450, "uniform_bits_per_dim": math.log2(17),
            "bits_per_dim": gd.bits_table(units), "units": units, "missing": ["ddpm: test"]}


def test_table_summary_and_figure_from_a_fake_result():
    results = _fake_results()
    rows = {row["model"]: row for row in results["bits_per_dim"]}
    assert rows["MADE (17-way)"]["kind"].startswith("exact")
    assert all(rows[m]["kind"].startswith("bound") for m in ("PPCA", "VAE (ELBO)", "VAE (IWAE k=16)", "RealNVP",
                                                             "DLGM, 2 levels (ELBO)", "DLGM, 2 levels (IWAE k=16)"))
    lines = gd.summary(results)
    assert lines["RealNVP test bits/dim"].startswith("1.700") and "missing" in lines
    assert report.figure_problems(gd.figure(results), fast=True) == []
    assert report.figure_problems(gd.figure(_fake_results(fast=False)), fast=False) == []
    settings = gd.settings_for(True, 0)
    assert set(settings["epochs"]) == {"vae", "realnvp", "made", "ddpm"}
    assert gd.settings_for(False, 0)["epochs"]["vae"] > settings["epochs"]["vae"]


@pytest.mark.slow
def test_fast_run_writes_json_and_figure(tmp_path):
    results = gd.run(tmp_path, fast=True, seed=0)
    saved = json.loads((tmp_path / "generative-digits.json").read_text())
    assert (tmp_path / "generative-digits.png").stat().st_size > 0
    assert saved["dataset"] == "sklearn-digits" and saved["interrupted"] is False
    rows = {row["model"]: row["bits_per_dim"] for row in saved["bits_per_dim"]}
    for model, bits in rows.items():
        assert math.isfinite(bits) and bits > 0.3, (model, bits)
        if not model.startswith("DDPM"):  # a barely trained DDPM's variational bound is loose
            assert bits < math.log2(17) + 1, (model, bits)
    assert rows["MADE (17-way)"] < math.log2(17)  # beats uniform after 5 epochs
    assert rows["VAE (IWAE k=16)"] <= rows["VAE (ELBO)"] + 0.01  # IWAE is the tighter bound
    assert rows["DLGM, 2 levels (IWAE k=16)"] <= rows["DLGM, 2 levels (ELBO)"] + 0.01
    assert saved["units"]["linear"]["fa_em_monotone"] is True
    assert report.figure_problems(gd.figure(saved), fast=True) == []
    assert set(gd.summary(results)) >= {"uniform over 17 levels"}
