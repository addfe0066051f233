"""Kernel-level checks: detailed balance of Metropolis-Hastings on a discrete chain,
leapfrog energy conservation and reversibility, and the sampler API contract
(jit/vmap, key types, float64, pytrees, schedules, continuing chains, bad input)."""

import io
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import samplers

# ---------------------------------------------------------------------------
# Metropolis-Hastings on five states with an asymmetric proposal.

TARGET = np.array([1.0, 2.0, 3.0, 4.0, 10.0]) / 20.0
UP = 0.7  # proposal: i -> i+1 (mod 5) with probability 0.7, i -> i-1 with 0.3
NUM_STATES = len(TARGET)


def _proposal(hastings: bool) -> samplers.Proposal:
    def sample(key, state):
        step = jnp.where(jax.random.uniform(key) < UP, 1, -1)
        return (state + step) % NUM_STATES

    def log_prob(to, from_):
        return jnp.where((to - from_) % NUM_STATES == 1, jnp.log(UP), jnp.log(1 - UP))

    return samplers.Proposal(sample, log_prob if hastings else None)


def _exact_mh_matrix() -> np.ndarray:
    """Brute-force ``Pi(j | i) = q(j | i) min(1, pi_j q(i | j) / (pi_i q(j | i)))``."""
    q = np.zeros((NUM_STATES, NUM_STATES))
    for i in range(NUM_STATES):
        q[i, (i + 1) % NUM_STATES] += UP
        q[i, (i - 1) % NUM_STATES] += 1 - UP
    matrix = np.zeros_like(q)
    for i in range(NUM_STATES):
        for j in range(NUM_STATES):
            if i != j and q[i, j] > 0:
                matrix[i, j] = q[i, j] * min(1.0, TARGET[j] * q[j, i] / (TARGET[i] * q[i, j]))
        matrix[i, i] = 1 - matrix[i].sum()
    return matrix


def _empirical_matrix(hastings: bool, num_moves: int = 40_000):
    algorithm = samplers.mh(lambda i: jnp.log(jnp.asarray(TARGET))[i], proposal=_proposal(hastings))

    @jax.jit
    def moves_from(start, key):
        keys = jax.random.split(key, num_moves)
        state = algorithm.init(jnp.asarray(start, jnp.int32))
        new_states, _ = jax.vmap(algorithm.step, in_axes=(0, None))(keys, state)
        return jnp.bincount(new_states.position, length=NUM_STATES)

    keys = jax.random.split(jax.random.key(0), NUM_STATES)
    counts = np.stack([np.asarray(moves_from(i, keys[i])) for i in range(NUM_STATES)])
    return counts / num_moves


def test_mh_transition_matrix_satisfies_detailed_balance():
    estimate = _empirical_matrix(hastings=True)
    num_moves = 40_000
    exact = _exact_mh_matrix()
    se = np.sqrt(exact * (1 - exact) / num_moves) + 1e-12
    assert np.all(np.abs(estimate - exact) <= 5 * se + 1e-9)
    flow = TARGET[:, None] * estimate
    flow_se = TARGET[:, None] * np.sqrt(estimate * (1 - estimate) / num_moves)
    assert np.all(np.abs(flow - flow.T) <= 5 * np.hypot(flow_se, flow_se.T) + 1e-9)
    # The exact kernel leaves the target invariant.
    np.testing.assert_allclose(TARGET @ exact, TARGET, atol=1e-12)


def test_mh_without_hastings_correction_breaks_detailed_balance():
    estimate = _empirical_matrix(hastings=False)
    flow = TARGET[:, None] * estimate
    assert np.max(np.abs(flow - flow.T)) > 0.02  # far beyond the ~1e-3 Monte Carlo error


def test_mh_long_chain_visits_states_in_proportion():
    algorithm = samplers.mh(lambda i: jnp.log(jnp.asarray(TARGET))[i], proposal=_proposal(True))
    states, info = samplers.sample(algorithm, jax.random.key(1), jnp.int32(0), 100_000)
    frequencies = np.bincount(np.asarray(states.position), minlength=NUM_STATES) / 100_000
    ess = float(samplers.effective_sample_size(np.asarray(states.position == 4, float)[None]))
    se = np.sqrt(TARGET[4] * (1 - TARGET[4]) / ess)
    assert abs(frequencies[4] - TARGET[4]) < 5 * se
    np.testing.assert_allclose(frequencies, TARGET, atol=0.02)
    assert 0.0 < float(info.acceptance_rate.mean()) < 1.0


# ---------------------------------------------------------------------------
# HMC: leapfrog energy error -> 0 like step_size**2, exact time reversibility.


def _banana(x):
    return -0.5 * x[0] ** 2 - 0.5 * (x[1] - 0.5 * x[0] ** 2) ** 2 - 0.1 * jnp.sum(x**4)


def _energy_error(step_size, num_steps):
    start_position = jnp.array([0.8, -0.3, 0.4], jnp.float64)
    momentum = jnp.array([0.5, 1.2, -0.7], jnp.float64)
    one_step = samplers.velocity_verlet(_banana, lambda p: p)
    logdensity, grad = jax.value_and_grad(_banana)(start_position)
    start = samplers.IntegratorState(start_position, momentum, logdensity, grad)
    end = jax.lax.fori_loop(0, num_steps, lambda _, s: one_step(s, step_size), start)

    def energy(state):
        return -state.logdensity + 0.5 * jnp.sum(state.momentum**2)

    return float(energy(end) - energy(start)), start, end, one_step


def test_leapfrog_energy_error_vanishes_quadratically():
    with jax.enable_x64(True):
        errors = [abs(_energy_error(1.0 / n, n)[0]) for n in (10, 20, 40, 80)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 4.0, rtol=0.15)
    assert errors[-1] < 1e-3


def test_leapfrog_is_time_reversible():
    with jax.enable_x64(True):
        _, start, end, one_step = _energy_error(0.1, 10)
        flipped = end._replace(momentum=-end.momentum)
        back = jax.lax.fori_loop(0, 10, lambda _, s: one_step(s, 0.1), flipped)
        np.testing.assert_allclose(back.position, start.position, atol=1e-12)
        np.testing.assert_allclose(-back.momentum, start.momentum, atol=1e-12)


def test_hmc_acceptance_tends_to_one_as_step_size_shrinks():
    step_sizes = jnp.array([0.4, 0.1, 0.025])

    def mean_acceptance(step_size):  # a traced step size: one compilation for all three
        algorithm = samplers.hmc(_banana, step_size, 10)
        _, info = samplers.sample(algorithm, jax.random.key(0), jnp.zeros(3), 300)
        return info.acceptance_rate.mean(), info.is_divergent.any()

    rates, divergent = jax.jit(jax.vmap(mean_acceptance))(step_sizes)
    assert not bool(divergent.any())
    assert rates[0] < rates[1] < rates[2]
    assert 1 - rates[2] < 2e-3


def test_hmc_flags_and_rejects_divergent_trajectories():
    algorithm = samplers.hmc(lambda x: -0.5 * 1e4 * jnp.sum(x**2), 1.0, 5)
    states, info = samplers.sample(algorithm, jax.random.key(0), jnp.ones(2), 20)
    assert bool(info.is_divergent.all())
    assert not bool(info.is_accepted.any())
    np.testing.assert_array_equal(states.position, np.ones((20, 2)))


# ---------------------------------------------------------------------------
# API contract.

LOGDENSITY = lambda p: -0.5 * jnp.sum(p["a"] ** 2) - 0.5 * jnp.sum((p["b"] - 1.0) ** 2)  # noqa: E731
POSITION = {"a": jnp.zeros(2), "b": jnp.zeros((2, 2))}
DATA = (jnp.linspace(-1.0, 1.0, 10), jnp.linspace(0.0, 2.0, 10))


def _loglik(p, datum):
    x, y = datum
    return -0.5 * (y - x * p["a"][0] - p["b"][0, 0]) ** 2


def _logprior(p):
    return LOGDENSITY(p)


ALGORITHMS = {
    "mh": lambda: samplers.mh(LOGDENSITY, 0.5),
    "hmc": lambda: samplers.hmc(LOGDENSITY, 0.3, 3),
    "mala": lambda: samplers.mala(LOGDENSITY, 0.3),
    "ula": lambda: samplers.ula(LOGDENSITY, 0.1),
    "sgld": lambda: samplers.sgld(_logprior, _loglik, DATA, 4, 0.01),
    "sghmc": lambda: samplers.sghmc(_logprior, _loglik, DATA, 4, 0.05, 1.0),
}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_step_is_pure_jittable_and_vmappable(name):
    algorithm = ALGORITHMS[name]()
    step = jax.jit(algorithm.step)
    state = algorithm.init(POSITION)
    key = jax.random.key(3)
    first, first_info = step(key, state)
    again, again_info = step(key, state)  # same key, same state: same result
    for a, b in zip(jax.tree.leaves((first, first_info)), jax.tree.leaves((again, again_info))):
        np.testing.assert_array_equal(a, b)
    other, _ = step(jax.random.key(4), state)
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    assert not np.allclose(flat(other), flat(first))
    # Legacy uint32 keys work too, and vmap over chains.
    legacy_keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states = jax.vmap(algorithm.init)(jax.tree.map(lambda x: jnp.stack([x] * 3), POSITION))
    new_states, _ = jax.jit(jax.vmap(algorithm.step))(legacy_keys, states)
    assert jax.tree.map(jnp.shape, new_states.position) == {"a": (3, 2), "b": (3, 2, 2)}
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(new_states.position))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_float64_positions_stay_float64(name):
    with jax.enable_x64(True):
        algorithm = ALGORITHMS[name]()
        position = jax.tree.map(lambda x: x.astype(jnp.float64), POSITION)
        state, info = jax.jit(algorithm.step)(jax.random.key(0), algorithm.init(position))
        assert {x.dtype for x in jax.tree.leaves(state.position)} == {jnp.dtype("float64")}
        assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves((state, info)))


def test_sample_thins_and_continues_chains():
    algorithm = samplers.sghmc(_logprior, _loglik, DATA, 4, 0.05, 1.0)
    states, infos = samplers.sample(algorithm, jax.random.key(0), POSITION, 7, thin=3)
    assert states.position["b"].shape == (7, 2, 2)
    np.testing.assert_array_equal(states.count, 3 * np.arange(1, 8))
    assert infos.step_size.shape == (7,)
    # Continuing from a state keeps its momentum: the first move is theta + eta * v.
    last = jax.tree.map(lambda x: x[-1], states)
    assert float(jnp.abs(last.momentum["a"]).sum()) > 0
    more, _ = samplers.sample(algorithm, jax.random.key(1), last, 4)
    np.testing.assert_allclose(
        more.position["a"][0], last.position["a"] + 0.05 * last.momentum["a"], rtol=1e-6
    )



def test_sample_progress_bar_reports_without_changing_draws():
    algorithm = samplers.mala(LOGDENSITY, 0.3)
    plain, _ = samplers.sample(algorithm, jax.random.key(0), POSITION, 50)
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        shown, _ = samplers.sample(algorithm, jax.random.key(0), POSITION, 50, progress=True)
    np.testing.assert_allclose(shown.position["a"], plain.position["a"], rtol=1e-6)
    assert "sampling" in stream.getvalue()


def test_sgld_follows_an_optax_schedule():
    schedule = optax.exponential_decay(0.01, transition_steps=10, decay_rate=0.5)
    algorithm = samplers.sgld(_logprior, _loglik, DATA, 4, schedule)
    states, infos = samplers.sample(algorithm, jax.random.key(0), POSITION, 30)
    np.testing.assert_allclose(infos.step_size, schedule(jnp.arange(30)), rtol=1e-6)
    np.testing.assert_array_equal(states.count, np.arange(1, 31))


def test_minibatch_estimate_is_unbiased_and_exact_on_full_batch():
    estimate = samplers.minibatch_logdensity_fn(_logprior, _loglik, DATA, 3)
    full = samplers.minibatch_logdensity_fn(_logprior, _loglik, DATA, 10)
    position = {"a": jnp.array([0.3, 0.0]), "b": jnp.full((2, 2), 0.2)}
    x, y = map(np.asarray, DATA)
    exact = -0.5 * (0.3**2 + 4 * 0.8**2) - 0.5 * np.sum((y - 0.3 * x - 0.2) ** 2)
    np.testing.assert_allclose(full(jax.random.key(0), position), exact, rtol=1e-5)
    keys = jax.random.split(jax.random.key(0), 20_000)
    draws = jax.jit(jax.vmap(estimate, in_axes=(0, None)))(keys, position)
    se = float(draws.std()) / np.sqrt(draws.shape[0])
    assert abs(float(draws.mean()) - exact) < 5 * se


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: samplers.hmc(LOGDENSITY, -0.1, 3), ValueError, "hmc: expected step_size > 0"),
        (lambda: samplers.hmc(LOGDENSITY, 0.1, 0), ValueError, "hmc: expected num_integration_steps > 0"),
        (lambda: samplers.hmc(LOGDENSITY, 0.1, 2.5), TypeError, "hmc: expected num_integration_steps"),
        (lambda: samplers.hmc(LOGDENSITY, 0.1, 3, jitter=1.5), ValueError, "hmc: expected 0 <= jitter"),
        (lambda: samplers.hmc("not a function", 0.1, 3), TypeError, "hmc: expected logdensity_fn"),
        (lambda: samplers.mh(LOGDENSITY), ValueError, "mh: expected exactly one of scale or proposal"),
        (lambda: samplers.mala(LOGDENSITY, float("nan")), ValueError, "mala: expected step_size"),
        (lambda: samplers.ula(LOGDENSITY, 0.0), ValueError, "ula: expected step_size"),
        (lambda: samplers.sgld(_logprior, _loglik, DATA, 11, 0.1), ValueError, "sgld: expected batch_size <="),
        (
            lambda: samplers.sgld(_logprior, _loglik, (jnp.ones(3), jnp.ones(4)), 2, 0.1),
            ValueError,
            "sgld: expected every array in data to share a leading data axis",
        ),
        (lambda: samplers.sghmc(_logprior, _loglik, DATA, 4, 0.5, 3.0), ValueError, "sghmc: expected step_size \\* friction < 1"),
        (
            lambda: samplers.sample(samplers.hmc(LOGDENSITY, 0.1, 3, inverse_mass_matrix=np.ones(5)), jax.random.key(0), POSITION, 2),
            ValueError,
            "hmc: inverse_mass_matrix has size 5 but the position has 6 scalars",
        ),
        (lambda: samplers.hmc(LOGDENSITY, 0.1, 3, inverse_mass_matrix=-np.ones(6)), ValueError, "hmc: expected a positive"),
        (lambda: samplers.hmc(lambda p: jnp.log(-1.0 + 0 * jnp.sum(p)), 0.1, 3).init(jnp.zeros(2)), ValueError, "hmc.init: expected a starting position with finite"),
        (lambda: samplers.mala(lambda p: p, 0.1).init(jnp.zeros(2)), TypeError, None),
        (lambda: samplers.sample("hmc", jax.random.key(0), POSITION, 3), TypeError, "sample: expected a SamplingAlgorithm"),
        (lambda: samplers.sample(samplers.mala(LOGDENSITY, 0.1), jax.random.key(0), POSITION, 0), ValueError, "sample: expected num_samples > 0"),
    ],
)
def test_bad_input_raises_clearly(build, error, match):
    if match is None:
        with pytest.raises((ValueError, TypeError)):
            build()
    else:
        with pytest.raises(error, match=match):
            build()
