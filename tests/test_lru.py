"""The linear recurrent unit (jaxdl.stax.LRU) and the deep LRU model.

Checked against independent references: a plain numpy complex loop of the
recurrence, the other evaluation mode, finite differences, the closed-form
distributions of the initial eigenvalues (Kolmogorov-Smirnov), linearity and
causality by construction, and a least-squares baseline for the learning test.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from jaxdl import models, stax
from jaxdl.stax import lru
from jaxdl.stax.layer import output_shape


def _params(key, d_in=3, d_state=6, d_out=4, dtype=jnp.float32, **options):
    """LRU params with every entry perturbed away from its initial value (random params)."""
    with jax.enable_x64(dtype == jnp.float64):
        _, params = stax.LRU(d_state, d_out, r_min=0.6, r_max=0.99, **options).init(key, (-1, 5, d_in))
        keys = jax.random.split(jax.random.fold_in(key, 1), len(params))
        params = {k: v + 0.1 * jax.random.normal(kk, v.shape, v.dtype) for (k, v), kk in zip(sorted(params.items()), keys)}
        return {k: v.astype(dtype) for k, v in params.items()}


def _numpy_lru(params, x):
    """The recurrence h_t = λ h_{t-1} + γ (x_t B), y_t = Re(h_t C) + x_t D, in complex128 numpy."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    lam = np.exp(-np.exp(p["nu"]) + 1j * np.exp(p["theta"]))
    gamma = np.exp(p["gamma_log"])
    B = p["B_re"] + 1j * p["B_im"]
    C = p["C_re"] + 1j * p["C_im"]
    x = np.asarray(x, np.float64)
    h = np.zeros((x.shape[0], lam.shape[0]), complex)
    ys = []
    for t in range(x.shape[1]):
        h = lam * h + gamma * (x[:, t] @ B)
        ys.append((h @ C).real + x[:, t] @ p["D"])
    return np.stack(ys, axis=1)


def test_parallel_equals_sequential_float32():
    params = _params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 300, 3))
    parallel, h_par = lru.lru_sequence(params, x, mode="parallel")
    sequential, h_seq = lru.lru_sequence(params, x, mode="sequential")
    assert float(jnp.abs(parallel).max()) > 0.5  # not trivially small
    np.testing.assert_allclose(parallel, sequential, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_par, h_seq, rtol=1e-5, atol=1e-5)


def test_parallel_equals_sequential_float64_and_a_numpy_loop():
    with jax.enable_x64(True):
        params = _params(jax.random.key(2), dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(3), (3, 50, 3), jnp.float64)
        parallel = lru.lru_sequence(params, x, mode="parallel")[0]
        sequential = lru.lru_sequence(params, x, mode="sequential")[0]
        assert parallel.dtype == jnp.float64
        np.testing.assert_allclose(parallel, sequential, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(parallel, _numpy_lru(params, x), rtol=1e-11, atol=1e-11)


def test_layer_matches_numpy_loop_in_both_modes():
    x = jax.random.normal(jax.random.key(4), (2, 20, 3))
    for mode in ("parallel", "sequential"):
        layer = stax.LRU(5, 2, r_min=0.3, mode=mode)
        _, params = layer.init(jax.random.key(5), x.shape)
        np.testing.assert_allclose(layer.apply(params, x), _numpy_lru(params, x), rtol=1e-4, atol=1e-4)


def test_linear_in_the_input():
    with jax.enable_x64(True):
        params = _params(jax.random.key(6), dtype=jnp.float64)
        x1, x2 = jax.random.normal(jax.random.key(7), (2, 2, 40, 3), jnp.float64)
        a, b = 1.7, -0.6
        for mode in ("parallel", "sequential"):
            f = lambda x: lru.lru_sequence(params, x, mode=mode)[0]
            np.testing.assert_allclose(f(a * x1 + b * x2), a * f(x1) + b * f(x2), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("distribution", ["uniform", "ring"])
def test_initial_eigenvalues_fill_the_ring_with_the_stated_law(distribution):
    r_min, r_max, max_phase = 0.4, 0.95, math.pi / 3
    layer = stax.LRU(64, r_min=r_min, r_max=r_max, max_phase=max_phase, radius_distribution=distribution)
    init = jax.jit(jax.vmap(lambda k: layer.init(k, (-1, 3, 2))[1]))
    params = init(jax.random.split(jax.random.key(8), 64))  # 4096 eigenvalues
    lam = np.asarray(jax.vmap(lru.eigenvalues)(params)).ravel()
    r, phase = np.abs(lam), np.angle(lam) % (2 * math.pi)
    assert r.min() >= r_min - 1e-6 and r.max() <= r_max + 1e-6
    assert phase.max() <= max_phase + 1e-5
    if distribution == "uniform":  # the seeds: r ~ Uni[r_min, r_max]
        cdf = lambda s: (s - r_min) / (r_max - r_min)
    else:  # uniform on the ring's area: P(|λ| <= s) = (s² - r_min²) / (r_max² - r_min²)
        cdf = lambda s: (s**2 - r_min**2) / (r_max**2 - r_min**2)
    assert stats.kstest(r, cdf).pvalue > 1e-3
    assert stats.kstest(phase, stats.uniform(0, max_phase).cdf).pvalue > 1e-3
    # the other law is rejected: the test can tell them apart
    other = (lambda s: (s - r_min) / (r_max - r_min)) if distribution == "ring" else (
        lambda s: (s**2 - r_min**2) / (r_max**2 - r_min**2))
    assert stats.kstest(r, other).pvalue < 1e-6
    # input normalisation γ = sqrt(1 - |λ|²)
    np.testing.assert_allclose(np.exp(np.asarray(params["gamma_log"])).ravel(), np.sqrt(1 - r**2), rtol=1e-4)


def test_default_ring_keeps_every_eigenvalue_strictly_inside_the_unit_disk():
    layer = stax.LRU(256)  # r ∈ [0, 1]: both edges are hit with probability 0, but must stay finite
    for seed in range(20):
        _, params = layer.init(jax.random.key(seed), (-1, 2, 1))
        assert all(bool(jnp.isfinite(v).all()) for v in params.values())
        r = jnp.abs(lru.eigenvalues(params))
        assert bool((r < 1).all()) and bool((r >= 0).all())


def test_modulus_below_one_for_any_real_parameters():
    key_nu, key_theta = jax.random.split(jax.random.key(9))
    extremes = jnp.array([-1e30, -1e4, -100.0, -30.0, 0.0, 10.0, 100.0, 1e4, 1e30])
    nu = jnp.concatenate([20 * jax.random.normal(key_nu, (1000,)), extremes, jnp.zeros(9)])
    theta = jnp.concatenate([30 * jax.random.normal(key_theta, (1000,)), jnp.zeros(9), extremes])
    params = {"nu": nu, "theta": theta}
    modulus = lru.modulus(params)
    assert bool(jnp.isfinite(modulus).all())
    assert bool((modulus <= 1).all())
    # strictly below 1 wherever 1 - exp(-exp(ν)) is representable (exp(ν) above the float32 ulp of 1)
    representable = jnp.exp(nu) > 1e-7
    assert bool((modulus[representable] < 1).all())
    # the complex eigenvalues have that modulus (up to rounding) and are finite
    lam = lru.eigenvalues(params)
    assert bool(jnp.isfinite(lam.real).all() and jnp.isfinite(lam.imag).all())
    np.testing.assert_allclose(jnp.abs(lam), modulus, rtol=3e-7, atol=1e-30)
    # the closed form |λ| = exp(-exp ν) (where it is not in the guarded region)
    plain = nu < 4
    np.testing.assert_allclose(modulus[plain], jnp.exp(-jnp.exp(nu[plain])), rtol=1e-5, atol=1e-30)
    grads = jax.grad(lambda p: jnp.sum(jnp.abs(lru.eigenvalues(p)) + jnp.real(lru.eigenvalues(p))))(params)
    assert all(bool(jnp.isfinite(g).all()) for g in grads.values())


def test_outputs_are_causal():
    params = _params(jax.random.key(10))
    x = jax.random.normal(jax.random.key(11), (2, 30, 3))
    t0 = 17
    x2 = x.at[:, t0:].add(jax.random.normal(jax.random.key(12), (2, 30 - t0, 3)))
    for mode in ("parallel", "sequential"):
        y, y2 = (lru.lru_sequence(params, v, mode=mode)[0] for v in (x, x2))
        np.testing.assert_array_equal(y[:, :t0], y2[:, :t0])
        assert float(jnp.abs(y[:, t0:] - y2[:, t0:]).min()) > 0


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_gradients_match_finite_differences(mode):
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        params = _params(jax.random.key(13), d_in=2, d_state=3, d_out=2, dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(14), (2, 12, 2), jnp.float64)

        def loss(params, x):
            return jnp.sum(jnp.sin(lru.lru_sequence(params, x, mode=mode)[0]))

        check_grads(loss, (params, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_step_reproduces_the_scan_and_continues_it():
    params = _params(jax.random.key(15))
    x = jax.random.normal(jax.random.key(16), (2, 25, 3))
    full, h_full = lru.lru_sequence(params, x)
    h = lru.initial_state(params, 2)
    ys = []
    step = jax.jit(lru.lru_step)
    for t in range(25):
        h, y = step(params, h, x[:, t])
        ys.append(y)
    np.testing.assert_allclose(jnp.stack(ys, 1), full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, h_full, rtol=1e-5, atol=1e-5)
    # a prompt of 10 steps in parallel mode, then the rest from its last state (h0=)
    for mode in ("parallel", "sequential"):
        _, h_prompt = lru.lru_sequence(params, x[:, :10], mode=mode)
        rest, _ = lru.lru_sequence(params, x[:, 10:], h0=h_prompt, mode=mode)
        np.testing.assert_allclose(rest, full[:, 10:], rtol=1e-5, atol=1e-5)


def test_empty_time_axis_and_bad_arguments():
    layer = stax.LRU(3, 2)
    _, params = layer.init(jax.random.key(18), (-1, 4, 2))
    assert layer.apply(params, jnp.zeros((2, 0, 2))).shape == (2, 0, 2)
    with pytest.raises(ValueError, match="^LRU: expected 2 features"):
        layer.apply(params, jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="^LRU: expected input of shape"):
        layer.init(jax.random.key(0), (2, 3))
    for bad in [dict(d_state=0), dict(d_state=3, r_min=0.9, r_max=0.5), dict(d_state=3, r_max=1.5),
                dict(d_state=3, max_phase=0.0), dict(d_state=3, mode="fast"),
                dict(d_state=3, radius_distribution="disk")]:
        with pytest.raises(ValueError, match="^LRU: expected"):
            stax.LRU(**bad)
    with pytest.raises(ValueError, match="^lru_step: expected h of shape"):
        lru.lru_step(params, jnp.zeros((2, 4), jnp.complex64), jnp.zeros((2, 2)))
    with pytest.raises(TypeError, match="^lru_sequence: expected LRU params"):
        lru.lru_sequence({"W": jnp.ones(2)}, jnp.zeros((1, 2, 2)))
    with pytest.raises(NotImplementedError, match="^LRU"):
        layer.kernel(jnp.ones((2, 4, 2)), None, "ntk")


def test_deep_lru_shapes_and_causality():
    x = jax.random.normal(jax.random.key(19), (2, 9, 3))
    for pooling, shape in [("mean", (2, 5)), ("last", (2, 5)), (None, (2, 9, 5))]:
        model = models.deep_lru(2, 6, 4, 5, pooling=pooling, r_min=0.5)
        assert output_shape(model, (-1, 9, 3)) == (-1,) + shape[1:]
        params = jax.eval_shape(lambda key: model.init(key, (-1, 9, 3))[1], jax.random.key(20))  # shapes only
        assert jax.eval_shape(model.apply, params, x).shape == shape
    params = jax.jit(lambda key: model.init(key, (-1, 9, 3))[1])(jax.random.key(20))
    x2 = x.at[:, 6:].set(0.0)
    y, y2 = jax.jit(jax.vmap(model.apply, (None, 0)))(params, jnp.stack([x, x2]))  # pooling=None: per-step
    np.testing.assert_allclose(y[:, :6], y2[:, :6], rtol=1e-6, atol=1e-6)
    assert float(jnp.abs(y[:, 6:] - y2[:, 6:]).max()) > 1e-3
    with pytest.raises(ValueError, match="^deep_lru: expected pooling"):
        models.deep_lru(1, 4, 4, 2, pooling="max")
    with pytest.raises(ValueError, match="^lru_block: expected dropout"):
        models.lru_block(4, 4, dropout=1.0)


def test_deep_lru_with_dropout_needs_a_key_and_is_off_at_evaluation():
    model = models.deep_lru(1, 4, 3, 2, dropout=0.5)
    _, params = model.init(jax.random.key(21), (-1, 5, 2))
    x = jax.random.normal(jax.random.key(22), (3, 5, 2))
    train = jax.jit(lambda key: model.apply(params, x, key=key))
    assert float(jnp.abs(train(jax.random.key(1)) - train(jax.random.key(2))).max()) > 0
    evaluate = jax.jit(lambda: model.apply(params, x, train=False))  # no key needed
    np.testing.assert_array_equal(evaluate(), evaluate())


@pytest.mark.slow
def test_deep_lru_learns_a_memory_task_that_a_memoryless_model_cannot():
    """Target y = Σ_k 0.8^k x_{T-1-k} (a decaying memory of the whole sequence), read at
    the last step. The best predictor that sees only the last input (least squares,
    closed form) keeps the variance of the rest, Σ_{1<=k<T} 0.64^k ≈ 1.77; the deep LRU
    must beat it by 10x and reduce its own initial loss by 10x. Plain optax on the real
    params (the complex B, C are stored as real and imaginary arrays)."""
    T, n = 12, 128
    x = jax.random.normal(jax.random.key(23), (n, T, 1))
    weights = 0.8 ** jnp.arange(T)[::-1]
    y = jnp.sum(x[..., 0] * weights, axis=1, keepdims=True)
    # memoryless baseline: least squares on [x_T, 1]
    features = np.concatenate([np.asarray(x[:, -1]), np.ones((n, 1))], axis=1)
    coef, *_ = np.linalg.lstsq(features, np.asarray(y), rcond=None)
    baseline = float(np.mean((features @ coef - np.asarray(y)) ** 2))
    assert baseline > 1.2

    model = models.deep_lru(1, 8, 8, 1, pooling="last", r_min=0.5, max_phase=math.pi / 4)
    _, params = model.init(jax.random.key(24), (-1, T, 1))
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(params))
    optimizer = optax.adam(1e-2)
    loss = lambda p: jnp.mean((model.apply(p, x) - y) ** 2)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=300)
        return params

    initial = float(loss(params))
    final = float(loss(train(params)))
    assert final < initial / 10, (initial, final)
    assert final < baseline / 10, (baseline, final)
