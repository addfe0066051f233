"""jaxdl.theory.regularization: the seeds' weight-decay shrinkage lambda/(lambda + mu)
per Hessian eigendirection, against the exact minimiser of the regularised quadratic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.theory import regularization as R

RNG = np.random.default_rng(4)


def _spd(d, eigenvalues):
    Q, _ = np.linalg.qr(RNG.normal(size=(d, d)))
    return Q @ np.diag(eigenvalues) @ Q.T, Q


def test_minimizer_equals_the_exact_solution_of_the_regularised_quadratic():
    with jax.enable_x64(True):
        lam = np.array([1e-3, 0.05, 0.5, 2.0, 40.0])
        H, _ = _spd(5, lam)
        theta_star, mu = RNG.normal(size=5), 0.4
        shrunk = np.asarray(R.weight_decay_minimizer(jnp.asarray(H), jnp.asarray(theta_star), mu))
        # exact: argmin 1/2 (t - t*)^T H (t - t*) + mu/2 |t|^2  <=>  (H + mu I) t = H t*
        exact = np.linalg.solve(H + mu * np.eye(5), H @ theta_star)
        np.testing.assert_allclose(shrunk, exact, rtol=1e-10, atol=1e-12)
        # and the gradient of the regularised objective vanishes there
        objective = lambda t: 0.5 * (t - theta_star) @ H @ (t - theta_star) + 0.5 * mu * t @ t
        assert np.abs(jax.grad(objective)(jnp.asarray(shrunk))).max() < 1e-12


def test_components_shrink_by_lambda_over_lambda_plus_mu():
    with jax.enable_x64(True):
        lam = np.array([1e-4, 0.1, 1.0, 10.0, 1e4])
        H, _ = _spd(5, lam)
        mu = 1.0
        eigenvalues, Q, factors = R.weight_decay_shrinkage(jnp.asarray(H), mu)
        np.testing.assert_allclose(eigenvalues, lam, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(factors, lam / (lam + mu), rtol=1e-8)
        theta_star = RNG.normal(size=5)
        shrunk = R.weight_decay_minimizer(jnp.asarray(H), jnp.asarray(theta_star), mu)
        ratio = np.asarray(Q.T @ shrunk) / np.asarray(Q.T @ theta_star)
        np.testing.assert_allclose(ratio, lam / (lam + mu), rtol=1e-6)
        assert ratio[0] < 1e-3 and ratio[-1] > 0.999  # flat directions vanish, steep ones survive


def test_minimizer_from_a_loss_function_and_a_pytree():
    with jax.enable_x64(True):
        A = RNG.normal(size=(20, 3))
        b = RNG.normal(size=20)
        loss = lambda p: 0.5 * jnp.sum((A @ jnp.concatenate([p["w"], p["b"]]) - b) ** 2)
        theta = np.linalg.lstsq(A, b, rcond=None)[0]
        theta_star = {"w": jnp.asarray(theta[:2]), "b": jnp.asarray(theta[2:])}
        mu = 3.0
        shrunk = R.weight_decay_minimizer(loss, theta_star, mu)
        ridge = np.linalg.solve(A.T @ A + mu * np.eye(3), A.T @ b)  # exact: the loss is quadratic
        np.testing.assert_allclose(np.concatenate([shrunk["w"], shrunk["b"]]), ridge, rtol=1e-10)


def test_mu_zero_and_bad_inputs():
    H, _ = _spd(3, [0.0, 1.0, 2.0])
    theta = jnp.asarray([1.0, 2.0, 3.0])
    np.testing.assert_allclose(R.weight_decay_minimizer(jnp.asarray(H), theta, 0.0), theta, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="^weight_decay_shrinkage: the Hessian has a negative eigenvalue"):
        R.weight_decay_shrinkage(jnp.asarray(_spd(3, [-1.0, 1.0, 2.0])[0]), 0.1)
    with pytest.raises(ValueError, match="^weight_decay_minimizer: expected a finite weight decay"):
        R.weight_decay_minimizer(jnp.asarray(H), theta, -1.0)
    with pytest.raises(ValueError, match="^weight_decay_minimizer: expected a Hessian of shape"):
        R.weight_decay_minimizer(jnp.eye(2), theta, 1.0)
    with pytest.raises(ValueError, match="^weight_decay_shrinkage: expected a symmetric Hessian"):
        R.weight_decay_shrinkage(jnp.asarray([[1.0, 2.0], [0.0, 1.0]]), 1.0)
