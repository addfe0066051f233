"""jaxdl.theory.bounds: shattering counts and VC dimensions against their known values, the VC
inequality, Rademacher Monte Carlo against exact enumeration and the closed form, every
PAC-Bayes bound against its formula, kl inversion against bisection, the PAC-Bayes objective."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.theory import bounds
from jaxdl.theory.capacity import cover_count

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("family, known", [(bounds.THRESHOLDS, 1), (bounds.INTERVALS, 2),
                                           (bounds.HALF_PLANES, 3), (bounds.RECTANGLES, 4)])
def test_vc_dimensions_are_the_known_values(family, known):
    estimate = bounds.vc_dimension(family, num_random_sets=8)
    assert estimate.dimension == known
    assert bounds.shatters(family, estimate.witness)


def test_growth_counts_are_the_known_values():
    for n in range(1, 7):
        x = RNG.permutation(n).astype(float)
        assert bounds.growth(bounds.THRESHOLDS, x) == n + 1
        assert bounds.growth(bounds.INTERVALS, x) == math.comb(n + 1, 2) + 1
        # points in general position in R^2: Cover's count with a bias, C(n, 3)
        assert bounds.growth(bounds.HALF_PLANES, RNG.normal(size=(n, 2))) == cover_count(n, 3)
    # rectangles: 4 points in a diamond are shattered, a 5th point in the middle breaks it
    diamond = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
    assert bounds.shatters(bounds.RECTANGLES, diamond)
    centre = np.vstack([diamond, [[0.0, 0.0]]])
    assert not bounds.shatters(bounds.RECTANGLES, centre)
    # centre in: all 16 corner subsets; centre out: only no corner or one (two corners' box holds it)
    assert bounds.growth(bounds.RECTANGLES, centre) == 16 + 5
    # three collinear points cannot be shattered by half-planes (the middle one cannot differ)
    assert bounds.growth(bounds.HALF_PLANES, np.array([[0.0, 0], [1, 1], [2, 2]])) == 6
    with pytest.raises(ValueError, match="^shatters: expected points of shape"):
        bounds.shatters(bounds.HALF_PLANES, np.zeros((3, 3)))
    with pytest.raises(TypeError, match="^vc_dimension: expected a ClassifierFamily"):
        bounds.vc_dimension(lambda x: x)


def test_vc_inequality_bound_inverts_the_tail_probability():
    n, d, delta = 1000, 5, 0.05
    eps = bounds.vc_generalization_bound(n, d, delta)
    assert bounds.vc_inequality_probability(n, eps, bounds.sauer_shelah(n, d)) == pytest.approx(delta, rel=1e-9)
    assert bounds.sauer_shelah(10, 3) == 1 + 10 + 45 + 120 and bounds.sauer_shelah(4, 7) == 16
    assert bounds.vc_generalization_bound(1347, 65, 0.025) > 1  # the pac-bayes experiment's VC bound: vacuous


def test_rademacher_monte_carlo_matches_exact_enumeration_and_closed_form():
    x = RNG.normal(size=(10, 3))
    sup = bounds.linear_class_sup(x, bound=2.0)
    mc, stderr = bounds.empirical_rademacher(sup, 10, jax.random.key(0), num_samples=5000)
    exact = bounds.rademacher_exact(sup, 10)
    assert abs(float(mc) - float(exact)) < 4 * float(stderr)
    closed = float(bounds.rademacher_linear_closed_form(x, bound=2.0))
    assert closed / math.sqrt(2) <= float(exact) <= closed  # Jensen above, Khintchine-Szarek below
    # orthogonal inputs: ||sum sigma_i x_i|| is the same for every sigma, the closed form is exact
    q, _ = np.linalg.qr(RNG.normal(size=(8, 8)))
    orthogonal = q * RNG.uniform(0.5, 2.0, size=(8, 1))
    mc, _ = bounds.empirical_rademacher(bounds.linear_class_sup(orthogonal, 1.5), 8, jax.random.key(1), 500)
    assert float(mc) == pytest.approx(float(bounds.rademacher_linear_closed_form(orthogonal, 1.5)), rel=1e-5)
    # a finite class: thresholds' labellings on 8 points, exact vs Massart's bound
    labels = np.array(sorted(bounds.labelings(bounds.THRESHOLDS, np.arange(8.0)))) * 2.0 - 1.0
    exact = float(bounds.rademacher_exact(bounds.finite_class_sup(labels), 8))
    brute = np.mean([np.max(labels @ s) / 8 for s in np.array(np.meshgrid(*[[-1, 1]] * 8)).reshape(8, -1).T])
    assert exact == pytest.approx(brute, rel=1e-6)
    assert exact <= float(bounds.massart_bound(labels))
    assert bounds.rademacher_generalization_bound(0.1, 0.05, 100, 0.05) == pytest.approx(
        0.1 + 0.1 + math.sqrt(math.log(20) / 200))


def bisection_kl_inverse(q, c):
    def kl(q, p):
        t = lambda a, b: (a * math.log(a / b) if b > 0 else math.inf) if a > 0 else 0.0  # noqa: E731
        return t(q, p) + t(1 - q, 1 - p)

    lo, hi = q, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kl(q, mid) <= c else (lo, mid)
    return lo


@pytest.mark.parametrize("q, c", [(0.0, 0.01), (0.05, 0.04), (0.3, 0.5), (0.7, 2.0), (0.02, 1e-5), (0.5, 0.0),
                                  (0.999, 0.1)])
def test_kl_inverse_matches_bisection(q, c):
    assert float(bounds.kl_inverse(q, c)) == pytest.approx(bisection_kl_inverse(q, c), abs=2e-6)


def test_pac_bayes_bounds_equal_their_formulas():
    risk, kl, n, delta = 0.05, 120.0, 2000, 0.025
    conf = kl + math.log(2 * math.sqrt(n) / delta)
    assert float(bounds.pac_bayes_seed_bound(risk, kl, n, delta)) == pytest.approx(
        risk + math.sqrt(2 / n * conf), rel=1e-6)
    assert float(bounds.mcallester_bound(risk, kl, n, delta)) == pytest.approx(
        risk + math.sqrt(conf / (2 * n)), rel=1e-6)
    assert float(bounds.seeger_bound(risk, kl, n, delta)) == pytest.approx(
        bisection_kl_inverse(risk, conf / n), abs=2e-6)
    c = 1.5
    assert float(bounds.catoni_bound(risk, kl, n, delta, c)) == pytest.approx(
        (1 - math.exp(-c * risk - (kl + math.log(1 / delta)) / n)) / (1 - math.exp(-c)), rel=1e-6)
    assert float(bounds.sample_convergence_bound(0.03, 500, 0.01)) == pytest.approx(
        bisection_kl_inverse(0.03, math.log(200) / 500), abs=2e-6)
    # kl (Seeger) <= McAllester (Pinsker) <= the seeds' form (twice McAllester's square root)
    assert float(bounds.seeger_bound(risk, kl, n, delta)) <= float(bounds.mcallester_bound(risk, kl, n, delta))
    with pytest.raises(ValueError, match="^mcallester_bound: expected 0 < delta < 1"):
        bounds.mcallester_bound(risk, kl, n, 1.5)
    with pytest.raises(ValueError, match="^seeger_bound: expected the empirical risk in"):
        bounds.seeger_bound(1.2, kl, n, delta)
    with pytest.raises(ValueError, match="^kl_inverse: expected c >= 0"):
        bounds.kl_inverse(0.1, -1.0)


def test_pac_bayes_objective_and_evaluation_on_a_tiny_network():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
    _, prior_mean = init_fn(jax.random.key(0), (-1, 3))
    x = jnp.asarray(RNG.normal(size=(40, 3)), jnp.float32)
    y = (x[:, 0] > 0).astype(jnp.float32)
    posterior = bounds.init_posterior(prior_mean, std=0.1)
    prior_log_std = jnp.log(0.1)
    # KL of q = N(w0, 0.1^2) to p = N(w0, 0.1^2) is 0; shift the mean by 0.1 everywhere: KL = P / 2
    num_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(prior_mean))
    shifted = bounds.GaussianPosterior(jax.tree_util.tree_map(lambda p: p + 0.1, prior_mean), posterior.log_std)
    assert float(bounds.posterior_kl(posterior, prior_mean, prior_log_std)) == pytest.approx(0.0, abs=1e-5)
    assert float(bounds.posterior_kl(shifted, prior_mean, prior_log_std)) == pytest.approx(num_params / 2, rel=1e-4)

    def loss(out, y):
        return jnp.mean((out[:, 0] - y) ** 2)

    objective = bounds.pac_bayes_objective(apply_fn, loss, prior_mean, 40, 0.05, form="seed")
    (value, (risk, kl)), grads = jax.jit(jax.value_and_grad(
        lambda q: objective(q, prior_log_std, jax.random.key(1), x, y), has_aux=True))(shifted)
    draw = bounds.sample_params(shifted, jax.random.split(jax.random.key(1), 1)[0])
    assert float(risk) == pytest.approx(float(loss(apply_fn(draw, x), y)), rel=1e-5)
    assert float(kl) == pytest.approx(num_params / 2, rel=1e-4)
    seeds_term = math.sqrt(2 / 40 * (float(kl) + math.log(2 * math.sqrt(40) / 0.05)))
    assert float(value) == pytest.approx(float(risk) + seeds_term, rel=1e-5)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))

    def errors(out, y):
        return (out[:, 0] > 0) != (y > 0.5)

    result = bounds.evaluate_pac_bayes_bound(apply_fn, errors, shifted, prior_mean, prior_log_std, x, y,
                                             jax.random.key(2), num_samples=50, batch_size=25)
    manual = float(jnp.mean(jax.vmap(lambda k: jnp.mean(errors(apply_fn(bounds.sample_params(shifted, k), x), y)))(
        jax.random.split(jax.random.key(2), 50))))
    assert result["mc_empirical_risk"] == pytest.approx(manual, abs=1e-6)
    assert result["mc_empirical_risk"] <= result["empirical_risk_bound"] <= result["seeger_bound"]
    assert result["seeger_bound"] <= result["mcallester_bound"] <= result["seed_bound"]
