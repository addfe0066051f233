"""jaxdl.optim: every optimiser's trajectory against its seed rule written out by hand (numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import optim

RNG = np.random.default_rng(0)
A = np.diag([1.0, 3.0, 10.0]) + 0.1  # symmetric positive definite
B = np.array([1.0, -2.0, 0.5])
THETA0 = np.array([0.5, 1.0, -1.5])
STEPS = 6


def grad_np(theta):
    """Gradient of h(θ) = ½ θᵀAθ − bᵀθ."""
    return A @ theta - B


def loss_jax(theta):
    return 0.5 * theta @ jnp.asarray(A, theta.dtype) @ theta - jnp.asarray(B, theta.dtype) @ theta


def run_optax(optimizer, params, steps=STEPS, loss=loss_jax):
    """Iterates θ_1..θ_steps and the final state, stepping under jit."""
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    iterates = []
    for _ in range(steps):
        params, state = step(params, state)
        iterates.append(np.asarray(params, np.float64))
    return np.stack(iterates), state


def assert_trajectory(iterates, expected):
    np.testing.assert_allclose(iterates, np.stack(expected), rtol=2e-5, atol=2e-5)


def test_sgd_is_gradient_descent():
    eta, theta, expected = 0.05, THETA0.copy(), []
    for _ in range(STEPS):
        theta = theta - eta * grad_np(theta)
        expected.append(theta)
    assert_trajectory(run_optax(optim.sgd(eta), jnp.asarray(THETA0, jnp.float32))[0], expected)


def test_heavy_ball_with_a_schedule_matches_the_seed_rule():
    c, alpha, beta = 0.08, 0.75, 0.7
    theta_prev, theta, expected = THETA0.copy(), THETA0.copy(), []
    for t in range(STEPS):
        eta_t = c * (t + 1) ** (-alpha)
        theta, theta_prev = theta - eta_t * grad_np(theta) + beta * (theta - theta_prev), theta
        expected.append(theta)
    schedule = optim.robbins_monro(c, alpha)
    iterates, _ = run_optax(optim.heavy_ball(schedule, beta), jnp.asarray(THETA0, jnp.float32))
    assert_trajectory(iterates, expected)


def test_nesterov_holds_the_look_ahead_point_and_recovers_the_seed_iterate():
    eta, beta = 0.05, 0.8
    theta_prev, theta = THETA0.copy(), THETA0.copy()
    look_aheads, thetas = [], []
    for _ in range(STEPS):
        look_ahead = theta + beta * (theta - theta_prev)  # θ̃_{t+1}
        theta, theta_prev = look_ahead - eta * grad_np(look_ahead), theta
        thetas.append(theta)
        look_aheads.append(theta + beta * (theta - theta_prev))  # where the next gradient is taken
    iterates, state = run_optax(optim.nesterov(eta, beta), jnp.asarray(THETA0, jnp.float32))
    assert_trajectory(iterates, look_aheads)
    recovered = iterates[-1] - beta * np.asarray(state[1].trace)
    np.testing.assert_allclose(recovered, thetas[-1], rtol=2e-5, atol=2e-5)


def test_adagrad_matches_the_seed_rule():
    eta, eps = 0.3, 1e-7
    theta, nu, expected = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = grad_np(theta)
        nu = nu + g**2
        theta = theta - eta / np.sqrt(nu + eps) * g
        expected.append(theta)
    assert_trajectory(run_optax(optim.adagrad(eta, eps), jnp.asarray(THETA0, jnp.float32))[0], expected)


def test_rmsprop_matches_the_seed_rule():
    eta, rho, eps = 0.01, 0.9, 1e-8
    theta, nu, expected = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = grad_np(theta)
        nu = rho * nu + (1 - rho) * g**2
        theta = theta - eta / np.sqrt(nu + eps) * g
        expected.append(theta)
    assert_trajectory(run_optax(optim.rmsprop(eta, rho, eps), jnp.asarray(THETA0, jnp.float32))[0], expected)


def test_adam_matches_the_seed_rule_and_optax_adam():
    eta, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    theta, m, v, expected = THETA0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, STEPS + 1):
        g = grad_np(theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        theta = theta - eta * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        expected.append(theta)
    params = jnp.asarray(THETA0, jnp.float32)
    ours, _ = run_optax(optim.adam(eta), params)
    assert_trajectory(ours, expected)
    reference, _ = run_optax(optax.adam(eta), params)
    np.testing.assert_array_equal(ours, reference)


def newton_schulz_by_svd(matrix, steps=5, coeffs=(3.4445, -4.7750, 2.0315)):
    """Muon's orthogonalisation, on the singular values: X/‖X‖_F, then σ ← aσ + bσ³ + cσ⁵."""
    u, s, vt = np.linalg.svd(matrix / (np.linalg.norm(matrix) + 1e-8), full_matrices=False)
    a, b, c = coeffs
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return u @ np.diag(s) @ vt


def test_muon_matches_the_seed_rule_on_a_matrix():
    d_in, d_out, eta, beta = 3, 5, 0.02, 0.9
    target = RNG.normal(size=(d_in, d_out))
    w0 = RNG.normal(size=(d_in, d_out))

    def loss(params):
        return 0.5 * jnp.sum((params["W"] - jnp.asarray(target, params["W"].dtype)) ** 2)

    w, momentum, expected = w0.copy(), np.zeros_like(w0), []
    for _ in range(STEPS):
        momentum = beta * momentum + (w - target)
        w = w - eta * np.sqrt(d_out / d_in) * newton_schulz_by_svd(momentum)
        expected.append(w)
    state_params = {"W": jnp.asarray(w0, jnp.float32)}
    optimizer = optim.muon(eta, beta)
    state = optimizer.init(state_params)
    params = state_params
    for t in range(STEPS):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(params["W"], expected[t], rtol=1e-4, atol=1e-4)


def test_robbins_monro_schedule_and_its_conditions():
    schedule = optim.robbins_monro(0.5, 0.6)
    np.testing.assert_allclose([schedule(t) for t in range(4)], 0.5 * np.arange(1, 5) ** -0.6, rtol=1e-6)
    for alpha in (0.5, 1.2):
        with pytest.raises(ValueError, match="robbins_monro"):
            optim.robbins_monro(1.0, alpha)


def test_weight_decay_converges_to_the_shrunk_optimum():
    """GD on ½(θ−θ*)ᵀH(θ−θ*) with weight decay μ ends at (H + μI)⁻¹Hθ* (seeds)."""
    h = np.array([[2.0, 0.3], [0.3, 0.2]])
    theta_star, mu = np.array([1.0, -2.0]), 0.5

    def loss(theta):
        d = theta - jnp.asarray(theta_star, theta.dtype)
        return 0.5 * d @ jnp.asarray(h, theta.dtype) @ d

    optimizer = optax.chain(optim.weight_decay(mu), optim.sgd(0.3))
    iterates, _ = run_optax(optimizer, jnp.zeros(2), steps=400, loss=loss)
    np.testing.assert_allclose(iterates[-1], np.linalg.solve(h + mu * np.eye(2), h @ theta_star), atol=1e-5)


def test_l1_prox_is_ista_and_finds_the_lasso_solution():
    """½‖Qθ − y‖² + λ‖θ‖₁ with orthonormal Q has the closed form θ* = soft_threshold(Qᵀy, λ)."""
    q, _ = np.linalg.qr(RNG.normal(size=(8, 4)))
    y = q @ np.array([2.0, -0.3, 0.1, -1.5])  # Qᵀy has two entries below λ
    lam, eta = 0.7, 0.5

    def loss(theta):
        return 0.5 * jnp.sum((jnp.asarray(q, theta.dtype) @ theta - jnp.asarray(y, theta.dtype)) ** 2)

    theta, expected = np.zeros(4), []
    for _ in range(3):
        z = theta - eta * q.T @ (q @ theta - y)
        theta = np.sign(z) * np.maximum(np.abs(z) - eta * lam, 0.0)
        expected.append(theta)
    optimizer = optax.chain(optim.sgd(eta), optim.l1_prox(lam, eta))
    iterates, _ = run_optax(optimizer, jnp.zeros(4), steps=3, loss=loss)
    assert_trajectory(iterates, expected)
    iterates, _ = run_optax(optimizer, jnp.zeros(4), steps=60, loss=loss)
    closed_form = np.sign(q.T @ y) * np.maximum(np.abs(q.T @ y) - lam, 0.0)
    np.testing.assert_allclose(iterates[-1], closed_form, atol=1e-5)
    assert np.any(closed_form == 0.0) and np.all(iterates[-1][closed_form == 0.0] == 0.0)


def test_polyak_averaging_keeps_the_mean_of_the_iterates_on_a_pytree():
    eta = 0.05
    params = {"a": jnp.asarray(THETA0[:2], jnp.float32), "b": jnp.asarray(THETA0[2], jnp.float32)}

    def loss(p):
        return loss_jax(jnp.concatenate([p["a"], p["b"][None]]))

    optimizer = optim.polyak_averaging(optim.heavy_ball(eta, 0.5))
    state = optimizer.init(params)
    np.testing.assert_array_equal(optim.averaged_params(state)["a"], params["a"])
    visited = []
    for _ in range(STEPS):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        visited.append(np.concatenate([params["a"], params["b"][None]]))
    average = optim.averaged_params(state)
    np.testing.assert_allclose(
        np.concatenate([average["a"], average["b"][None]]), np.mean(visited, axis=0), rtol=1e-6, atol=1e-7
    )
    assert int(state.count) == STEPS


def bilinear_field(z):
    """The game ℓ(θ, φ) = θφ: F(θ, φ) = (∂_θ ℓ, −∂_φ ℓ) = (φ, −θ)."""
    return optim.minmax_vector_field(lambda theta, phi: theta * phi)(z)


def test_extragradient_converges_where_gradient_descent_ascent_diverges():
    eta, steps = 0.2, 100
    z_eg = z_gda = (jnp.float32(1.0), jnp.float32(1.0))
    for _ in range(steps):
        z_eg = optim.extragradient(bilinear_field, z_eg, eta)
        z_gda = jax.tree.map(lambda p, d: p - eta * d, z_gda, bilinear_field(z_gda))
    norm = lambda z: float(np.hypot(*z))
    # closed forms: EG multiplies ‖z‖ by √((1−η²)² + η²) < 1, GDA by √(1 + η²) > 1
    np.testing.assert_allclose(norm(z_eg), np.sqrt(2) * ((1 - eta**2) ** 2 + eta**2) ** (steps / 2), rtol=1e-4)
    np.testing.assert_allclose(norm(z_gda), np.sqrt(2) * (1 + eta**2) ** (steps / 2), rtol=1e-4)
    assert norm(z_eg) < 0.3 < 5.0 < norm(z_gda)


def test_optimistic_gradient_descent_matches_its_rule_and_converges_on_the_bilinear_game():
    """z_{t+1} = z_t − η(2F(z_t) − F(z_{t−1})), with F(z_{−1}) = F(z_0)."""
    eta, steps = 0.2, 200
    optimizer = optim.optimistic_gradient_descent(eta)
    z = (jnp.float32(1.0), jnp.float32(1.0))
    state = optimizer.init(z)
    field = lambda v: np.array([v[1], -v[0]])
    hand = np.array([1.0, 1.0])
    previous = field(hand)
    for _ in range(steps):
        updates, state = optimizer.update(bilinear_field(z), state, z)
        z = optax.apply_updates(z, updates)
        current = field(hand)
        hand, previous = hand - eta * (2 * current - previous), current
    np.testing.assert_allclose(np.array(z), hand, atol=1e-5)
    assert np.linalg.norm(hand) < 0.05


def test_newton_step_solves_a_quadratic_and_matches_logistic_newton():
    with jax.enable_x64(True):
        params = {"x": jnp.zeros(2, jnp.float64), "y": jnp.zeros((), jnp.float64)}
        one_step = optim.newton_step(lambda p: loss_jax(jnp.concatenate([p["x"], p["y"][None]])), params)
        np.testing.assert_allclose(
            np.concatenate([one_step["x"], one_step["y"][None]]), np.linalg.solve(A, B), rtol=1e-10
        )
        x = RNG.normal(size=(30, 3))
        labels = (RNG.random(30) < 0.5).astype(float)
        w = RNG.normal(size=3) * 0.1

        def logistic(w):
            logits = jnp.asarray(x) @ w
            return jnp.mean(jnp.logaddexp(0.0, logits) - jnp.asarray(labels) * logits)

        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - labels) / 30
        hessian = x.T @ (x * (p * (1 - p))[:, None]) / 30
        np.testing.assert_allclose(
            optim.newton_step(logistic, jnp.asarray(w)), w - np.linalg.solve(hessian, gradient), rtol=1e-10
        )


def test_newton_step_refuses_a_singular_hessian():
    with pytest.raises(ValueError, match="newton_step.*damping"):
        optim.newton_step(lambda p: jnp.sum(p[:1] ** 2), jnp.ones(2))
    damped = optim.newton_step(lambda p: jnp.sum(p[:1] ** 2), jnp.ones(2), damping=1.0)
    assert np.all(np.isfinite(damped))


def test_float64_is_kept():
    with jax.enable_x64(True):
        iterates, _ = run_optax(optim.adam(0.1), jnp.asarray(THETA0, jnp.float64))
        params = {"W": jnp.ones((3, 4), jnp.float64)}
        updates, _ = optim.muon(0.1).update(params, optim.muon(0.1).init(params), params)
        assert updates["W"].dtype == jnp.float64
    assert iterates.dtype == np.float64


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: optim.sgd(-0.1), "sgd"),
        (lambda: optim.heavy_ball(0.1, 1.0), "heavy_ball.*beta"),
        (lambda: optim.nesterov(0.1, -0.2), "nesterov.*beta"),
        (lambda: optim.adam(0.1, b2=1.5), "adam.*b2"),
        (lambda: optim.muon(0.1, ns_steps=0), "muon.*ns_steps"),
        (lambda: optim.weight_decay(-1.0), "weight_decay"),
        (lambda: optim.extragradient(bilinear_field, (1.0, 1.0), 0.0), "extragradient"),
        (lambda: optim.l1_prox(0.1, 0.1).update(jnp.ones(2), optim.l1_prox(0.1, 0.1).init(None)), "l1_prox.*params"),
    ],
)
def test_bad_input_names_the_function(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_wrong_types_raise_type_errors():
    with pytest.raises(TypeError, match="polyak_averaging"):
        optim.polyak_averaging(lambda g: g)
    with pytest.raises(TypeError, match="sgd"):
        optim.sgd("fast")
    with pytest.raises(TypeError, match="averaged_params"):
        optim.averaged_params(optax.sgd(0.1).init(jnp.ones(2)))
