"""Posterior checks: every sampler on Bayesian linear regression, where the posterior
is Gaussian in closed form.

Exact samplers (MH, HMC, MALA) must reproduce the exact posterior; the unadjusted
ones (ULA, SGLD, SGHMC) must reproduce the exact stationary law of their own
linear recursion on this Gaussian target (computed in numpy, minibatch noise by
enumerating every minibatch), which differs from the posterior by their
discretisation bias. Tolerances are 5 Monte Carlo standard errors, from the
effective sample size of each statistic.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import samplers

NUM_DATA, PRIOR_STD, NOISE_STD = 16, 1.0, 2.0
BATCH_SIZE = 4
Z = 5.0  # tolerance in standard errors


def _dataset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_DATA, 2)).astype(np.float32)
    x[:, 1] += 0.6 * x[:, 0]  # correlated features -> a correlated posterior
    y = (0.5 + x @ np.array([1.0, -2.0]) + NOISE_STD * rng.normal(size=NUM_DATA)).astype(np.float32)
    return x, y


X, Y = _dataset()
DESIGN = np.column_stack([np.ones(NUM_DATA), X]).astype(np.float64)  # columns (b, w0, w1)


def log_prior(params):
    return -0.5 * (jnp.sum(params["w"] ** 2) + params["b"] ** 2) / PRIOR_STD**2


def log_lik(params, datum):
    x, y = datum
    return -0.5 * (y - x @ params["w"] - params["b"]) ** 2 / NOISE_STD**2


def log_posterior(params):
    residual = Y - X @ params["w"] - params["b"]
    return log_prior(params) - 0.5 * jnp.sum(residual**2) / NOISE_STD**2


def exact_posterior():
    precision = np.eye(3) / PRIOR_STD**2 + DESIGN.T @ DESIGN / NOISE_STD**2
    cov = np.linalg.inv(precision)
    return cov @ DESIGN.T @ Y / NOISE_STD**2, cov


def _subsets():
    if BATCH_SIZE == NUM_DATA:
        return [np.arange(NUM_DATA)]
    return [np.array(s) for s in itertools.combinations(range(NUM_DATA), BATCH_SIZE)]


def _gradient_terms(subset):
    """``grad log p^(theta) = b_B - A_B theta`` for the minibatch ``subset``."""
    scale = NUM_DATA / len(subset) / NOISE_STD**2
    rows = DESIGN[subset]
    a = np.eye(3) / PRIOR_STD**2 + scale * rows.T @ rows
    b = scale * rows.T @ Y[subset]
    return a, b


def stationary_moments(recursions, noise_cov):
    """Mean and covariance of ``z' = M z + c + N(0, noise_cov)``, ``(M, c)`` uniform over ``recursions``."""
    ms = np.array([m for m, _ in recursions])
    cs = np.array([c for _, c in recursions])
    dim = ms.shape[1]
    mean = np.linalg.solve(np.eye(dim) - ms.mean(0), cs.mean(0))
    w = np.einsum("kij,j->ki", ms, mean) + cs - mean
    kron = np.mean([np.kron(m, m) for m in ms], axis=0)
    source = noise_cov + np.einsum("ki,kj->ij", w, w) / len(ms)
    cov = np.linalg.solve(np.eye(dim * dim) - kron, source.ravel()).reshape(dim, dim)
    return mean, cov


def ula_reference(step_size):
    a, b = _gradient_terms(np.arange(NUM_DATA))
    return stationary_moments([(np.eye(3) - step_size * a, step_size * b)], 2 * step_size * np.eye(3))


def sgld_reference(step_size):
    recursions = []
    for subset in _subsets():
        a, b = _gradient_terms(subset)
        recursions.append((np.eye(3) - step_size * a, step_size * b))
    return stationary_moments(recursions, 2 * step_size * np.eye(3))


def sghmc_reference(step_size, friction):
    recursions = []
    eye, zero = np.eye(3), np.zeros((3, 3))
    for subset in _subsets():
        a, b = _gradient_terms(subset)
        m = np.block([[eye, step_size * eye], [-step_size * a, (1 - step_size * friction) * eye]])
        recursions.append((m, np.concatenate([np.zeros(3), step_size * b])))
    noise = np.block([[zero, zero], [zero, 2 * friction * step_size * eye]])
    mean, cov = stationary_moments(recursions, noise)
    return mean[:3], cov[:3, :3]


def run_chains(algorithm, num_chains, num_draws, burn_in, thin=1, seed=0):
    """Draws ``f[chains, draws, 3]`` (columns b, w0, w1), chains started at exact posterior draws."""
    mean, cov = exact_posterior()
    rng = np.random.default_rng(seed)
    start = rng.multivariate_normal(mean, cov, size=num_chains).astype(np.float32)
    positions = {"b": jnp.asarray(start[:, 0]), "w": jnp.asarray(start[:, 1:])}
    keys = jax.random.split(jax.random.key(seed), num_chains)

    def chain(key, position):
        states, _ = samplers.sample(algorithm, key, position, burn_in + num_draws, thin=thin)
        return states.position

    draws = jax.jit(jax.vmap(chain))(keys, positions)
    draws = np.concatenate([np.asarray(draws["b"])[..., None], np.asarray(draws["w"])], axis=-1)
    return draws[:, burn_in:].astype(np.float64)


def check_moments(draws, ref_mean, ref_cov, max_std_tolerance):
    """Means and variances along the coordinates and the principal axes of ``ref_cov``
    agree within ``Z`` standard errors; the test resolves stds to ``max_std_tolerance``."""
    _, axes = np.linalg.eigh(ref_cov)
    directions = np.concatenate([np.eye(3), axes.T])
    for direction in directions:
        projected = draws @ direction
        mean, var = direction @ ref_mean, direction @ ref_cov @ direction
        ess = float(samplers.effective_sample_size(projected))
        mean_se = np.sqrt(var / ess)
        assert abs(projected.mean() - mean) < Z * mean_se, (projected.mean(), mean, mean_se)
        squared = (projected - mean) ** 2
        var_se = squared.std() / np.sqrt(float(samplers.effective_sample_size(squared)))
        std_tolerance = 0.5 * Z * var_se / var  # relative error of the std
        assert std_tolerance < max_std_tolerance, std_tolerance
        assert abs(np.sqrt(squared.mean() / var) - 1) < std_tolerance, (
            np.sqrt(squared.mean()),
            np.sqrt(var),
            std_tolerance,
        )


EXACT = {
    "mh": lambda: samplers.mh(log_posterior, 0.9),
    "hmc": lambda: samplers.hmc(log_posterior, 0.3, 4),
    "hmc-jitter-dense-mass": lambda: samplers.hmc(
        log_posterior, 0.8, 3, inverse_mass_matrix=exact_posterior()[1], jitter=0.2
    ),
    "hmc-diagonal-mass": lambda: samplers.hmc(
        log_posterior, 0.45, 5, inverse_mass_matrix=np.diag(exact_posterior()[1]), jitter=0.1
    ),
    "mala": lambda: samplers.mala(log_posterior, 0.12),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_samplers_match_closed_form_posterior(name):
    num_draws = {"mh": 20_000, "mala": 8_000}.get(name, 4_000)
    draws = run_chains(EXACT[name](), num_chains=16, num_draws=num_draws, burn_in=100)
    mean, cov = exact_posterior()
    check_moments(draws, mean, cov, max_std_tolerance=0.04)


ULA_STEP, SGLD_STEP, SGHMC_STEP, FRICTION = 0.06, 0.03, 0.08, 2.0

APPROXIMATE = {
    "ula": (lambda: samplers.ula(log_posterior, ULA_STEP), lambda: ula_reference(ULA_STEP)),
    "sgld": (
        lambda: samplers.sgld(log_prior, log_lik, (X, Y), BATCH_SIZE, SGLD_STEP),
        lambda: sgld_reference(SGLD_STEP),
    ),
    "sghmc": (
        lambda: samplers.sghmc(log_prior, log_lik, (X, Y), BATCH_SIZE, SGHMC_STEP, FRICTION),
        lambda: sghmc_reference(SGHMC_STEP, FRICTION),
    ),
}


@pytest.mark.parametrize("name", sorted(APPROXIMATE))
def test_unadjusted_samplers_match_their_stationary_law(name):
    make, reference = APPROXIMATE[name]
    ref_mean, ref_cov = reference()
    draws = run_chains(make(), num_chains=16, num_draws=12_000, burn_in=300)
    check_moments(draws, ref_mean, ref_cov, max_std_tolerance=0.04)
    # The test resolves the discretisation bias: the reference is not the posterior.
    exact_cov = exact_posterior()[1]
    inflation = np.sqrt(np.diag(ref_cov) / np.diag(exact_cov)) - 1
    assert np.max(np.abs(inflation)) > 0.05, inflation


def test_stationary_reference_reduces_to_closed_forms():
    mean, cov = exact_posterior()
    a = np.linalg.inv(cov)
    ula_mean, ula_cov = ula_reference(ULA_STEP)
    np.testing.assert_allclose(ula_mean, mean, rtol=1e-10)
    np.testing.assert_allclose(ula_cov, np.linalg.inv(a - ULA_STEP * a @ a / 2), rtol=1e-10)
    # Vanishing steps remove the bias of every scheme.
    np.testing.assert_allclose(sgld_reference(1e-5)[1], cov, rtol=1e-3)
    np.testing.assert_allclose(sghmc_reference(1e-4, FRICTION)[1], cov, rtol=2e-3)
    np.testing.assert_allclose(sghmc_reference(1e-4, FRICTION)[0], mean, rtol=1e-8)
