"""VAE bounds against the exact marginal likelihood of the linear-Gaussian model
(N(b, W W^T + σ² I)): ELBO <= log p(x), equal with the closed-form optimal encoder; the
IWAE bound grows with k and stays below log p(x); reparameterised gradients match the
closed-form ELBO's; the Bernoulli likelihood normalises (quadrature over a 1-D latent)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import bernoulli, multivariate_normal

from jaxdl import stax
from jaxdl.generative import vae as vae_lib

N, M, SIGMA2 = 4, 2, 0.3


def _linear_vae():
    enc = stax.Dense(2 * M, b_std=0.0, parameterization="standard")
    dec = stax.Dense(N, b_std=0.0, parameterization="standard")
    return vae_lib.vae(enc, dec, M, "gaussian")


def _optimal_params(W, b):
    """Decoder x = W z + b with orthogonal columns of W, so the exact posterior is diagonal."""
    prec = np.diag(W.T @ W) + SIGMA2  # M = W^T W + σ² I (diagonal)
    We_mean = W / prec
    return {
        "decoder": {"W": jnp.asarray(W.T), "b": jnp.asarray(b)[None]},
        "encoder": {"W": jnp.asarray(np.concatenate([We_mean, np.zeros((N, M))], 1)),
                    "b": jnp.asarray(np.concatenate([-b @ We_mean, np.log(SIGMA2 / prec)]))[None]},
        "log_var": jnp.full(N, np.log(SIGMA2)),
    }


def _setup():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(N, M)))
    W = Q * np.array([2.0, 0.8])
    b = rng.normal(size=N)
    x = rng.normal(size=(5, N)) * 1.5 + b
    exact = multivariate_normal(b, W @ W.T + SIGMA2 * np.eye(N)).logpdf(x)
    return W, b, x, exact


def _closed_form_elbo(params, x):
    """E_q log N(x; W z + b, σ² I) − KL, exactly, for the linear-Gaussian VAE."""
    Wd, bd = np.asarray(params["decoder"]["W"]).T, np.asarray(params["decoder"]["b"])[0]
    out = x @ np.asarray(params["encoder"]["W"]) + np.asarray(params["encoder"]["b"])[0]
    mu, log_var = out[:, :M], out[:, M:]
    s2 = np.exp(np.asarray(params["log_var"]))
    resid = x - mu @ Wd.T - bd
    recon = -0.5 * np.sum(resid**2 / s2 + np.log(2 * np.pi * s2), 1) - 0.5 * np.exp(log_var) @ np.sum(Wd**2 / s2[:, None], 0)
    kl = 0.5 * np.sum(mu**2 + np.exp(log_var) - 1 - log_var, 1)
    return recon - kl


def test_elbo_and_iwae_equal_exact_log_likelihood_at_the_optimal_encoder():
    W, b, x, exact = _setup()
    model = _linear_vae()
    with jax.enable_x64(True):
        params = _optimal_params(W, b)
        np.testing.assert_allclose(_closed_form_elbo(params, x), exact, rtol=1e-10)
        for k, key in ((1, 0), (7, 1)):  # log p(x, z) - log q(z|x) = log p(x) for every z: zero variance
            np.testing.assert_allclose(model.iwae(params, jnp.asarray(x), jax.random.key(key), k), exact, rtol=1e-10)
        mc = model.elbo(params, jnp.asarray(x), jax.random.key(2), num_samples=20000)  # analytic KL: not zero variance
        np.testing.assert_allclose(mc, exact, rtol=3e-3, atol=0.03)


def _perturbed(params, scale=0.4):
    enc = params["encoder"]
    rng = np.random.default_rng(1)
    return {**params, "encoder": {"W": enc["W"] + scale * rng.normal(size=enc["W"].shape),
                                  "b": enc["b"] + scale * rng.normal(size=enc["b"].shape)}}


def test_elbo_is_below_exact_and_iwae_increases_with_k():
    W, b, x, exact = _setup()
    model = _linear_vae()
    with jax.enable_x64(True):
        params = _perturbed(_optimal_params(W, b))
        xj = jnp.asarray(x)
        closed = _closed_form_elbo(params, x)
        assert np.all(closed < exact - 0.05)
        mc = model.elbo(params, xj, jax.random.key(0), num_samples=20000)
        np.testing.assert_allclose(mc, closed, rtol=3e-3, atol=0.03)
        keys = jax.random.split(jax.random.key(1), 400)  # average each bound over 400 draws
        draws = [np.asarray(jax.vmap(lambda kk: model.iwae(params, xj, kk, k))(keys)) for k in (1, 8, 64)]
        bounds = [d.mean(0) for d in draws]
        standard_error = draws[0].std(0) / np.sqrt(len(keys))
        assert np.all(np.abs(bounds[0] - closed) < 4 * standard_error + 0.01)  # k = 1: unbiased ELBO
        assert np.all(bounds[0] < bounds[1]) and np.all(bounds[1] < bounds[2])
        assert np.all(bounds[2] <= exact + 0.01)
        assert np.all(exact - bounds[2] < 0.5 * (exact - closed))  # k = 64 closes most of the gap


def test_reparameterised_gradient_matches_closed_form_elbo_gradient():
    W, b, x, _ = _setup()
    model = _linear_vae()
    with jax.enable_x64(True):
        params = _perturbed(_optimal_params(W, b), 0.2)
        xj = jnp.asarray(x)
        mc = jax.grad(lambda p: jnp.sum(model.elbo({**params, "encoder": p}, xj, jax.random.key(3), num_samples=20000)))(params["encoder"])

        def closed(p):  # the same closed form as _closed_form_elbo, in jax
            Wd, bd = params["decoder"]["W"].T, params["decoder"]["b"][0]
            out = xj @ p["W"] + p["b"][0]
            mu, log_var = out[:, :M], out[:, M:]
            recon = -0.5 * jnp.sum((xj - mu @ Wd.T - bd) ** 2, 1) / SIGMA2 - 0.5 * jnp.exp(log_var) @ jnp.sum(Wd**2, 0) / SIGMA2
            return jnp.sum(recon - vae_lib.kl_to_standard_normal(mu, log_var))

        exact = jax.grad(closed)(params["encoder"])
        for name in ("W", "b"):
            err = np.linalg.norm(mc[name] - exact[name]) / np.linalg.norm(exact[name])
            assert err < 0.05, (name, err)


@pytest.mark.slow
def test_bernoulli_likelihood_normalises_and_bounds_hold_by_quadrature():
    enc = stax.serial(stax.Dense(8, b_std=0.5, parameterization="standard"), stax.Tanh(), stax.Dense(2, parameterization="standard", b_std=0.5))
    dec = stax.serial(stax.Dense(8, b_std=0.5, W_std=2.0, parameterization="standard"), stax.Tanh(), stax.Dense(3, parameterization="standard", b_std=0.5))
    model = vae_lib.vae(enc, dec, 1, "bernoulli")
    params = model.init(jax.random.key(0), (-1, 3))
    xs = jnp.asarray([[(i >> j) & 1 for j in range(3)] for i in range(8)], jnp.float32)
    z = jnp.linspace(-8, 8, 2001)[:, None]
    prior = jnp.exp(-0.5 * z[:, 0] ** 2) / jnp.sqrt(2 * jnp.pi)
    cond = jnp.exp(jax.vmap(lambda x: model.log_likelihood(params, jnp.broadcast_to(x, (2001, 3)), z))(xs))  # (8, 2001)
    marginal = jnp.sum(cond * prior, 1) * (z[1, 0] - z[0, 0])
    assert float(jnp.sum(marginal)) == pytest.approx(1.0, abs=1e-4)
    probs = model.decode(params, z[:1])[0]
    ref = np.sum(bernoulli(np.asarray(probs)).logpmf(np.asarray(xs[5])))
    assert float(model.log_likelihood(params, xs[5:6], z[:1])[0]) == pytest.approx(ref, abs=1e-5)
    elbo = jnp.mean(jax.vmap(lambda k: model.elbo(params, xs, k))(jax.random.split(jax.random.key(1), 300)), 0)
    iwae = jnp.mean(jax.vmap(lambda k: model.iwae(params, xs, k, 256))(jax.random.split(jax.random.key(2), 30)), 0)
    log_marginal = np.log(np.asarray(marginal))
    assert np.all(np.asarray(elbo) <= log_marginal + 0.02)
    assert np.all(np.asarray(iwae) <= log_marginal + 0.01)
    assert np.all(log_marginal - np.asarray(iwae) < 0.5 * (log_marginal - np.asarray(elbo)))
    assert np.max(log_marginal - np.asarray(iwae)) < 0.1


def test_beta_weighs_the_kl_term_and_bad_input():
    W, b, x, _ = _setup()
    model = _linear_vae()
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), _perturbed(_optimal_params(W, b)))
    xj = jnp.asarray(x, jnp.float32)
    key = jax.random.key(0)
    mean, log_var = model.encode(params, xj)
    kl = vae_lib.kl_to_standard_normal(mean, log_var)
    np.testing.assert_allclose(model.elbo(params, xj, key, beta=0.0) - model.elbo(params, xj, key, beta=4.0), 4 * kl, rtol=1e-5)
    # the closed-form KL against a Monte Carlo estimate E_q[log q - log p]
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, (50000, *mean.shape))
    log_q = -0.5 * jnp.sum((z - mean) ** 2 / jnp.exp(log_var) + log_var, -1)
    np.testing.assert_allclose(jnp.mean(log_q + 0.5 * jnp.sum(z**2, -1), 0), kl, rtol=0.03, atol=0.02)
    with pytest.raises(ValueError, match="^vae:"):
        vae_lib.vae(stax.Dense(2), stax.Dense(2), 1, "poisson")
    with pytest.raises(ValueError, match="^VAE.iwae:"):
        model.iwae(params, xj, key, 0)
    with pytest.raises(ValueError, match="^VAE.elbo:"):
        model.elbo(params, xj[0], key)
