"""No silent NaN in the samplers: non-finite data, starting positions, log-densities
and gradients raise at construction/``init`` naming what is non-finite; a chain that
leaves the finite numbers is flagged divergent on the step that did it, and
``sample`` warns."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import samplers

X = np.linspace(-1.0, 1.0, 10).astype(np.float32)
Y = (2.0 * X).astype(np.float32)


def _loglik(p, datum):
    x, y = datum
    return -0.5 * (y - p * x) ** 2


def _logprior(p):
    return -0.5 * jnp.sum(p**2)


def _build(name, data, step_size=0.01, logprior=_logprior, loglik=_loglik):
    if name == "sgld":
        return samplers.sgld(logprior, loglik, data, 4, step_size)
    return samplers.sghmc(logprior, loglik, data, 4, step_size, 1.0 / (2 * step_size))


@pytest.mark.parametrize("name", ["sgld", "sghmc"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sgmcmc_rejects_non_finite_data_naming_array_and_index(name, bad):
    x = X.copy()
    x[3] = bad
    with pytest.raises(ValueError, match=rf"{name}: expected data to be finite, got {bad} in data\[0\] at index \(3,\)"):
        _build(name, (x, Y))
    y = Y.copy()
    y[7] = bad
    with pytest.raises(ValueError, match=rf"{name}: expected data to be finite, got {bad} in data\[1\] at index \(7,\)"):
        _build(name, (X, y))
    with pytest.raises(ValueError, match=r"data\['y'\] at index \(7,\)"):  # dict data: the key is named
        _build(name, {"x": X, "y": y}, loglik=lambda p, d: _loglik(p, (d["x"], d["y"])))


@pytest.mark.parametrize("name", ["sgld", "sghmc"])
def test_sgmcmc_init_names_what_is_non_finite(name):
    algorithm = _build(name, (X, Y))
    on_dict = _build(name, (X, Y), logprior=lambda p: _logprior(p["w"]), loglik=lambda p, d: _loglik(p["w"][0], d))
    on_dict.init({"w": jnp.array([0.0, 1.0])})
    with pytest.raises(ValueError, match=rf"{name}.init: expected the starting position to be finite, got nan in position\['w'\] at index \(1,\)"):
        on_dict.init({"w": jnp.array([0.0, jnp.nan])})
    # A finite position outside the prior's support: the log-density is named.
    outside = _build(name, (X, Y), logprior=lambda p: jnp.sum(jnp.log(p)))
    with pytest.raises(ValueError, match=rf"{name}.init: expected a starting position with finite log-density, got -inf at a finite position"):
        outside.init(jnp.array(0.0))
    # Finite log-density, non-finite gradient (sqrt(|p - x|) at p = x = 0).
    cusp = _build(name, (np.zeros(10, np.float32), Y), loglik=lambda p, d: -jnp.sqrt(jnp.abs(p - d[0])))
    with pytest.raises(ValueError, match=rf"{name}.init: expected a finite gradient of logprior_fn \+ loglik_fn at the starting position, got -?(nan|inf) in gradient at index \(\); start where"):
        cusp.init(jnp.array(0.0))
    # A sane start passes, also under jit/vmap (where nothing is checked on the host).
    state = algorithm.init(jnp.array(0.5))
    assert float(state.position) == 0.5
    jax.jit(algorithm.init)(jnp.array(jnp.nan))


def test_hmc_init_distinguishes_data_from_position():
    x = X.copy()
    x[2] = np.nan
    logdensity = lambda p: _logprior(p) + jnp.sum(_loglik(p, (x, Y)))  # noqa: E731
    with pytest.raises(ValueError, match="hmc.init: expected a starting position with finite log-density, got nan at a finite position; check the data"):
        samplers.hmc(logdensity, 0.1, 3).init(jnp.array(0.0))
    clean = lambda p: sum(_logprior(leaf) for leaf in jax.tree.leaves(p))  # noqa: E731
    samplers.hmc(clean, 0.1, 3).init((jnp.array(0.0), jnp.array(1.0)))
    with pytest.raises(ValueError, match=r"hmc.init: expected the starting position to be finite, got inf in position\[1\] at index \(\)"):
        samplers.hmc(clean, 0.1, 3).init((jnp.array(0.0), jnp.array(jnp.inf)))
    for name, build in [("mala", samplers.mala), ("ula", samplers.ula)]:
        with pytest.raises(ValueError, match=rf"{name}.init: expected a starting position with finite log-density, got nan at a finite position"):
            build(logdensity, 0.1).init(jnp.array(0.0))
    with pytest.raises(ValueError, match="mh.init: expected the starting position to be finite"):
        samplers.mh(clean, 0.1).init(jnp.array([jnp.nan]))


def test_log_posterior_fn_names_non_finite_data():
    apply_fn = lambda params, x: x @ params  # noqa: E731
    x = np.ones((5, 3), np.float32)
    x[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"log_posterior_fn: expected x to be finite, got inf in x at index \(4, 1\)"):
        samplers.log_posterior_fn(apply_fn, x, np.zeros(5), likelihood="gaussian")
    y = np.zeros(5)
    y[0] = np.nan
    with pytest.raises(ValueError, match=r"log_posterior_fn: expected y to be finite, got nan in y at index \(0,\)"):
        samplers.log_posterior_fn(apply_fn, np.ones((5, 3)), y, likelihood="gaussian")


@pytest.mark.parametrize("name", ["sgld", "sghmc"])
def test_blow_up_is_flagged_on_the_step_that_leaves_the_finite_numbers_and_warned(name):
    """A step size far beyond stability: |theta| grows geometrically until it overflows.

    The divergence flag must be set exactly on the transitions that start from a
    non-finite log-density estimate or end at a non-finite position (first the
    estimate -1e4 theta^2 / 2 overflows, later theta itself), and ``sample`` must
    warn naming the first non-finite draw.
    """
    steep = lambda p: -0.5 * 1e4 * jnp.sum(p**2)  # noqa: E731
    algorithm = _build(name, (X, Y), step_size=0.09, logprior=steep)
    with pytest.warns(RuntimeWarning) as record:
        states, infos = samplers.sample(algorithm, jax.random.key(0), jnp.array(0.1), 60)
    positions = np.asarray(states.position)
    bad = ~np.isfinite(positions)
    assert bad.any() and not bad[0], "the test needs a chain that overflows after a few steps"
    first_bad = int(np.argmax(bad))
    divergent = np.asarray(infos.is_divergent)
    expected = bad | ~np.isfinite(np.asarray(infos.logdensity_estimate))
    np.testing.assert_array_equal(divergent, expected)
    assert divergent[first_bad:].all()
    first_divergent = int(np.argmax(expected))
    messages = [str(w.message) for w in record]
    assert any(
        f"sample: the chain's position is non-finite from draw {first_bad} on" in m
        and f"first divergent transition is at draw {first_divergent}" in m
        for m in messages
    ), messages


def test_sample_is_quiet_for_a_healthy_chain_and_rejects_a_non_finite_state():
    algorithm = samplers.sgld(_logprior, _loglik, (X, Y), 4, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        states, infos = samplers.sample(algorithm, jax.random.key(0), jnp.array(0.0), 20)
    assert not np.asarray(infos.is_divergent).any()
    last = jax.tree.map(lambda leaf: leaf[-1], states)
    broken = last._replace(position=jnp.array(jnp.nan))
    with pytest.raises(ValueError, match="sample: expected the position of the state to continue from to be finite"):
        samplers.sample(algorithm, jax.random.key(1), broken, 3)


def test_thinned_divergence_flag_reports_any_of_the_inner_transitions():
    """Brute force: run the inner transitions one by one with the keys ``sample``
    derives and OR their flags per stored draw."""
    # Leapfrog on a unit Gaussian is unstable for eps > 2; the jitter puts about
    # half the transitions there.
    algorithm = samplers.hmc(lambda p: -0.5 * jnp.sum(p**2), 2.0, 8, jitter=0.5)
    num_samples, thin = 8, 4
    key = jax.random.key(5)
    _, infos = samplers.sample(algorithm, key, jnp.zeros(2), num_samples, thin=thin)
    state = algorithm.init(jnp.zeros(2))
    step = jax.jit(algorithm.step)
    expected, last_only = [], []
    for draw_key in jax.random.split(key, num_samples):
        flags = []
        for inner_key in jax.random.split(draw_key, thin):
            state, info = step(inner_key, state)
            flags.append(bool(info.is_divergent))
        expected.append(any(flags))
        last_only.append(flags[-1])
    np.testing.assert_array_equal(np.asarray(infos.is_divergent), expected)
    assert expected != last_only, "the test needs a block whose last transition is not divergent"
