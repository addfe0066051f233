"""ESS and R-hat against known answers: AR(1) chains (exact autocorrelation time),
independent and deliberately stuck chains, and a loop-by-loop numpy transcription
of Stan's estimators (scipy ranks, direct autocovariance sums)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxdl import samplers


def ar1_chains(phi, num_chains, num_draws, seed):
    """``x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t`` started in stationarity (unit variance)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(num_chains, num_draws)) * np.sqrt(1 - phi**2)
    x = np.empty((num_chains, num_draws))
    x[:, 0] = rng.normal(size=num_chains)
    for t in range(1, num_draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.mark.parametrize("phi", [0.0, 0.9, -0.5])
def test_ess_of_ar1_chains_matches_the_autocorrelation_time(phi):
    x = ar1_chains(phi, 4, 20_000, seed=1)
    exact = x.size * (1 - phi) / (1 + phi)  # N / tau with tau = (1 + phi) / (1 - phi)
    estimate = float(samplers.effective_sample_size(x))
    assert abs(estimate / exact - 1) < 0.12, (estimate, exact)


def _numpy_ess(x):
    """Stan's multi-chain ESS written out with loops (BDA3, Geyer's monotone sequence)."""
    m, n = x.shape
    acov = np.array(
        [[np.sum((c[: n - t] - c.mean()) * (c[t:] - c.mean())) / n for t in range(n)] for c in x]
    )
    chain_var = acov[:, 0] * n / (n - 1)
    w = chain_var.mean()
    var_plus = w * (n - 1) / n + np.var(x.mean(axis=1), ddof=1)
    rho = 1 - (w - acov.mean(axis=0)) / var_plus
    total, previous = 0.0, np.inf
    for k in range(n // 2):
        pair = rho[2 * k] + rho[2 * k + 1]
        if pair <= 0:
            break
        previous = min(previous, pair)
        total += previous
    tau = max(-1 + 2 * total, 1 / np.log10(m * n))
    return m * n / tau


def _numpy_rhat(x):
    """Rank-normalised split R-hat (Vehtari et al. 2021) with scipy ranks."""
    half = x.shape[1] // 2
    split = np.concatenate([x[:, :half], x[:, x.shape[1] - half :]])

    def basic(z):
        n = z.shape[1]
        w = np.var(z, axis=1, ddof=1).mean()
        return np.sqrt(((n - 1) / n * w + np.var(z.mean(axis=1), ddof=1)) / w)

    def normal_scores(z):
        ranks = stats.rankdata(z, method="average").reshape(z.shape)
        return stats.norm.ppf((ranks - 0.375) / (z.size + 0.25))

    folded = np.abs(split - np.median(split))
    return max(basic(normal_scores(split)), basic(normal_scores(folded)))


def test_diagnostics_agree_with_loop_transcriptions():
    rng = np.random.default_rng(0)
    x = ar1_chains(0.7, 3, 301, seed=2) + rng.normal(size=(3, 1)) * 0.3
    x[:, ::7] = np.round(x[:, ::7], 1)  # some ties for the ranks
    np.testing.assert_allclose(samplers.effective_sample_size(x), _numpy_ess(x), rtol=1e-4)
    np.testing.assert_allclose(samplers.rhat(x), _numpy_rhat(x), rtol=1e-4)


def test_rhat_is_one_for_mixed_chains_and_large_for_stuck_ones():
    rng = np.random.default_rng(3)
    mixed = rng.normal(size=(4, 2000))
    assert abs(float(samplers.rhat(mixed)) - 1) < 0.01
    shifted = mixed + np.array([0.0, 0.0, 0.0, 2.0])[:, None]  # one chain in another place
    assert float(samplers.rhat(shifted)) > 1.1
    scaled = mixed * np.array([1.0, 1.0, 1.0, 4.0])[:, None]  # same mean, wrong scale: tails see it
    assert float(samplers.rhat(scaled)) > 1.1
    drifting = np.cumsum(rng.normal(size=(4, 2000)), axis=1)  # random walks: the split catches them
    assert float(samplers.rhat(drifting)) > 1.1


def test_rhat_flags_hmc_chains_stuck_in_separate_modes():
    def bimodal(x):
        return jnp.logaddexp(-0.5 * jnp.sum((x - 6.0) ** 2), -0.5 * jnp.sum((x + 6.0) ** 2))

    algorithm = samplers.hmc(bimodal, 0.3, 5)
    starts = jnp.array([[6.0], [6.0], [-6.0], [-6.0]])
    keys = jax.random.split(jax.random.key(0), 4)
    draws = jax.vmap(lambda k, x: samplers.sample(algorithm, k, x, 1000)[0].position)(keys, starts)
    assert float(samplers.rhat(draws)[0]) > 1.1
    # Each pair of chains in one mode agrees with itself.
    assert abs(float(samplers.rhat(draws[:2])[0]) - 1) < 0.05


def test_diagnostics_handle_trailing_axes_and_jit():
    x = np.random.default_rng(4).normal(size=(2, 100, 3, 2))
    ess = jax.jit(samplers.effective_sample_size)(x)
    assert ess.shape == (3, 2)
    np.testing.assert_allclose(ess[1, 0], samplers.effective_sample_size(x[:, :, 1, 0]), rtol=1e-5)
    assert samplers.rhat(x).shape == (3, 2)
    with pytest.raises(ValueError, match="effective_sample_size: expected x of shape"):
        samplers.effective_sample_size(np.ones(10))
    with pytest.raises(ValueError, match="rhat: expected at least 4 draws"):
        samplers.rhat(np.ones((2, 3)))
