"""The deep latent Gaussian model (seed 003 §9.3) against independent references.

* the top-down pass = a numpy implementation of h^L = W^L z^L, h^l = F^l(h^{l+1}) + W^l z^l;
* a linear-Gaussian DLGM is a Gaussian whose covariance follows the seeds' conditional
  law h^l | h^{l+1} ~ N(F^l(h^{l+1}), W^l W^lᵀ) level by level: ancestral samples match it
  (Monte Carlo), the ELBO equals log p(x) − KL(q || p(z|x)) with the exact Gaussian
  posterior (so ELBO <= log p(x), with equality only at q = posterior), and the IWAE
  bound grows with k towards log p(x);
* trained on Gaussian data, the two-level model reaches the Gaussian maximum likelihood.
The generic layer matrix runs on ``DeepLatentGaussian`` via tests/layer_registry.py."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import multivariate_normal

from jaxdl import stax
from jaxdl.generative import dlgm
from jaxdl.generative import vae as vae_lib

DIMS = (3, 2, 2)  # d_1, d_2, d_3
X_DIM = 5
SIGMA2 = np.array([0.3, 0.5, 0.2, 0.4, 0.6])
STANDARD = dict(parameterization="standard", b_std=0.1)


def _randomised(params, key, scale=0.7):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [scale * jax.random.normal(k, l.shape, jnp.float64) for l, k in zip(leaves, keys)])


def _dense(p):
    return np.asarray(p["W"]), np.asarray(p["b"]).reshape(-1)


def _linear_model():
    top_down = [stax.Dense(d, **STANDARD) for d in DIMS[:-1]]  # F^1: d_2 → d_1, F^2: d_3 → d_2
    return dlgm.dlgm(stax.Dense(2 * sum(DIMS), **STANDARD), DIMS, top_down, stax.Dense(X_DIM, **STANDARD))


def _linear_gaussian(params):
    """Mean and covariance of x by the seeds' level-by-level law, and the noise-space map
    x = A z + c + N(0, diag σ²) composed separately (its A Aᵀ + diag σ² must agree)."""
    dec = params["decoder"]
    W = [np.asarray(dec[f"W_{l + 1}"]) for l in range(len(DIMS))]
    F = [_dense(dec[f"F_{l + 1}"]) for l in range(len(DIMS) - 1)]
    B, b = _dense(dec["observation"])
    mean, cov = np.zeros(DIMS[-1]), W[-1] @ W[-1].T  # h^L ~ N(0, W^L W^Lᵀ)
    for l in reversed(range(len(DIMS) - 1)):  # h^l | h^{l+1} ~ N(F^l(h^{l+1}), W^l W^lᵀ)
        A_l, c_l = F[l][0].T, F[l][1]
        mean, cov = A_l @ mean + c_l, A_l @ cov @ A_l.T + W[l] @ W[l].T
    noise_var = np.exp(np.asarray(params["log_var"]))
    x_mean, x_cov = B.T @ mean + b, B.T @ cov @ B + np.diag(noise_var)
    # noise space: ∂x/∂z^l = Bᵀ A_1 ⋯ A_{l-1} W^l
    blocks, chain = [], B.T
    for l in range(len(DIMS)):
        blocks.append(chain @ W[l])
        if l < len(DIMS) - 1:
            chain = chain @ F[l][0].T
    return x_mean, x_cov, np.concatenate(blocks, axis=1), noise_var


def _setup():
    model = _linear_model()
    with jax.enable_x64(True):
        params = _randomised(model.init(jax.random.key(0), (-1, X_DIM)), jax.random.key(1))
        params["log_var"] = jnp.log(jnp.asarray(SIGMA2))
    # a recognition network near the exact posterior (a random one makes q so poor that the
    # Monte Carlo ELBO has a huge variance): its mean map and marginal variances, perturbed
    x_mean, _, A, noise_var = _linear_gaussian(params)
    post_cov = np.linalg.inv(np.eye(A.shape[1]) + A.T @ (A / noise_var[:, None]))
    mean_map = (A / noise_var[:, None]) @ post_cov
    rng = np.random.default_rng(0)
    mean_map = mean_map + 0.2 * rng.normal(size=mean_map.shape)
    W = np.concatenate([mean_map, np.zeros_like(mean_map)], axis=1)
    b = np.concatenate([-x_mean @ mean_map, np.log(np.diag(post_cov)) + 0.3 * rng.normal(size=A.shape[1])])
    params["encoder"] = {"W": jnp.asarray(W), "b": jnp.asarray(b)[None]}
    x = x_mean + rng.normal(size=(4, X_DIM)) * 1.5
    return model, params, x


def test_top_down_pass_equals_the_seeds_recursion():
    dims = (4, 3, 2)
    tanh_mlp = lambda d: stax.serial(stax.Dense(5, **STANDARD), stax.Tanh(), stax.Dense(d, **STANDARD))  # noqa: E731
    layer = dlgm.DeepLatentGaussian(dims, [tanh_mlp(4), tanh_mlp(3)], stax.serial(stax.Dense(6, **STANDARD), stax.Tanh()))
    with jax.enable_x64(True):
        _, params = layer.init(jax.random.key(0), (-1, sum(dims)))
        params = _randomised(params, jax.random.key(1))
        z = jax.random.normal(jax.random.key(2), (7, sum(dims)), jnp.float64)
        out, hidden = jax.jit(lambda p, z: layer.apply(p, z, return_hidden=True))(params, z)
        np.testing.assert_allclose(out, jax.jit(layer.apply)(params, z), rtol=1e-14)

    def mlp(p, x):
        W0, b0 = _dense(p["Dense_0"])
        W2, b2 = _dense(p["Dense_2"])
        return np.tanh(x @ W0 + b0) @ W2 + b2

    z = np.asarray(z)
    z1, z2, z3 = z[:, :4], z[:, 4:7], z[:, 7:]
    h3 = z3 @ np.asarray(params["W_3"]).T
    h2 = mlp(params["F_2"], h3) + z2 @ np.asarray(params["W_2"]).T
    h1 = mlp(params["F_1"], h2) + z1 @ np.asarray(params["W_1"]).T
    Wo, bo = _dense(params["observation"]["Dense_0"])
    expected_out = np.tanh(h1 @ Wo + bo)
    for got, want in zip(hidden, (h1, h2, h3)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, expected_out, rtol=1e-10, atol=1e-12)


def test_linear_model_is_the_gaussian_of_the_level_by_level_law():
    model, params, _ = _setup()
    x_mean, x_cov, A, noise_var = _linear_gaussian(params)
    np.testing.assert_allclose(A @ A.T + np.diag(noise_var), x_cov, rtol=1e-12, atol=1e-12)  # two derivations agree
    with jax.enable_x64(True):
        draws = np.asarray(model.sample(params, jax.random.key(3), 200_000, mean=False))
    n = draws.shape[0]
    sd = np.sqrt(np.diag(x_cov))
    assert np.all(np.abs(draws.mean(0) - x_mean) < 5 * sd / np.sqrt(n))
    # each covariance entry within 5 Monte Carlo standard errors, sqrt((Σ_ii Σ_jj + Σ_ij²) / n)
    se = np.sqrt((np.outer(np.diag(x_cov), np.diag(x_cov)) + x_cov**2) / n)
    assert np.all(np.abs(np.cov(draws.T) - x_cov) < 5 * se)


def _kl_diagonal_to_gaussian(mu_q, var_q, mu_p, cov_p):
    prec = np.linalg.inv(cov_p)
    d = mu_q.shape[-1]
    diff = mu_p - mu_q
    return 0.5 * (np.sum(np.diag(prec) * var_q, -1) + np.einsum("ni,ij,nj->n", diff, prec, diff) - d
                  + np.linalg.slogdet(cov_p)[1] - np.sum(np.log(var_q), -1))  # fmt: skip


def test_elbo_is_log_likelihood_minus_kl_to_the_exact_posterior():
    model, params, x = _setup()
    x_mean, x_cov, A, noise_var = _linear_gaussian(params)
    exact = multivariate_normal(x_mean, x_cov).logpdf(x)
    post_cov = np.linalg.inv(np.eye(A.shape[1]) + A.T @ (A / noise_var[:, None]))
    post_mean = (x - x_mean) @ (A / noise_var[:, None]) @ post_cov  # E[z|x] = Σ Aᵀ D⁻¹ (x − E x)
    n = 40_000
    with jax.enable_x64(True):
        mu_q, log_var_q = (np.asarray(a) for a in model.encode(params, jnp.asarray(x)))
        elbo = np.asarray(model.elbo(params, jnp.asarray(x), jax.random.key(4), num_samples=n))
        eps = jax.random.normal(jax.random.key(5), (n, *mu_q.shape), jnp.float64)
        spread = np.std(np.asarray(model.log_likelihood(params, jnp.asarray(x), mu_q + np.exp(0.5 * log_var_q) * eps)), 0)
    var_q = np.exp(log_var_q)
    kl_to_posterior = _kl_diagonal_to_gaussian(mu_q, var_q, post_mean, post_cov)
    assert np.all(kl_to_posterior > 0.05)  # the diagonal q cannot be the correlated posterior
    # the linear-Gaussian ELBO in closed form: E_q log N(x; A z + E x, D) − KL(q || N(0, I))
    closed_form = (multivariate_normal(np.zeros(X_DIM), np.diag(noise_var)).logpdf(x - x_mean - mu_q @ A.T)
                   - 0.5 * var_q @ np.sum(A**2 / noise_var[:, None], 0)
                   - 0.5 * np.sum(mu_q**2 + var_q - 1 - log_var_q, 1))  # fmt: skip
    np.testing.assert_allclose(closed_form, exact - kl_to_posterior, rtol=1e-10)  # ELBO = log p(x) − KL(q || p(z|x))
    assert np.all(np.abs(elbo - closed_form) < 5 * spread / np.sqrt(n))  # the Monte Carlo ELBO, within 5 SE
    assert np.all(elbo < exact)


def test_iwae_increases_with_k_towards_the_exact_log_likelihood():
    model, params, x = _setup()
    x_mean, x_cov, _, _ = _linear_gaussian(params)
    exact = multivariate_normal(x_mean, x_cov).logpdf(x)
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(5), 64)
        iwae = jax.jit(lambda key, k: model.iwae(params, jnp.asarray(x), key, k), static_argnums=1)
        bound = {k: np.mean(np.asarray(jax.vmap(lambda key, k=k: iwae(key, k))(keys)), axis=0) for k in (1, 8, 64)}
        big = np.asarray(iwae(jax.random.key(6), 20_000))
    assert np.all(bound[1] < bound[8]) and np.all(bound[8] < bound[64]) and np.all(bound[64] < exact)
    gap_1, gap_big = exact - bound[1], exact - big
    assert np.all(np.abs(gap_big) < 0.1 * gap_1)


STEPS = 800


@pytest.mark.slow
def test_two_level_model_trained_on_gaussian_data_reaches_maximum_likelihood():
    rng = np.random.default_rng(1)
    L = rng.normal(size=(4, 4))
    data = rng.normal(size=(1000, 4)) @ L.T + np.array([1.0, -2.0, 0.5, 0.0])
    mle = multivariate_normal(data.mean(0), np.cov(data.T, bias=True)).logpdf(data).mean()
    dims = (4, 2)
    model = dlgm.dlgm(stax.Dense(2 * sum(dims), **STANDARD), dims, [stax.Dense(4, **STANDARD)], stax.Dense(4, **STANDARD))
    params = model.init(jax.random.key(0), (-1, 4))
    optimiser = optax.adam(1e-2)
    x = jnp.asarray(data, jnp.float32)

    def step(params, state, key):
        loss, grads = jax.value_and_grad(lambda p: -jnp.mean(model.elbo(p, x, key, num_samples=4)))(params)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    def step_scanned(carry, key):
        params, state, _ = step(*carry, key)
        return (params, state), None

    (params, _), _ = jax.lax.scan(step_scanned, (params, optimiser.init(params)), jax.random.split(jax.random.key(1), STEPS))
    loss = -jnp.mean(model.elbo(params, x, jax.random.key(2), num_samples=64))
    params64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    dec = params64["decoder"]
    # the trained model's exact marginal: x = Bᵀ(W_1 z^1 + A(W_2 z^2) + c) + b + N(0, diag σ²)
    B, b = _dense(dec["observation"])
    A, c = _dense(dec["F_1"])
    J = np.concatenate([B.T @ dec["W_1"], B.T @ A.T @ dec["W_2"]], axis=1)
    fitted = multivariate_normal(B.T @ c + b, J @ J.T + np.diag(np.exp(params64["log_var"]))).logpdf(data).mean()
    assert fitted > mle - 0.03  # the Gaussian MLE bounds every Gaussian model from above
    assert -float(loss) < fitted + 0.02  # the ELBO (64 draws per example) stays below log p(x)


def test_bad_input_raises_clearly():
    dense = stax.Dense(2)
    with pytest.raises(TypeError, match="^DeepLatentGaussian: expected latent_dims"):
        dlgm.DeepLatentGaussian((), [], dense)
    with pytest.raises(ValueError, match="^DeepLatentGaussian: expected latent_dims to be positive"):
        dlgm.DeepLatentGaussian((2, 0), [dense], dense)
    with pytest.raises(ValueError, match="^DeepLatentGaussian: expected 1 top-down layers"):
        dlgm.DeepLatentGaussian((2, 3), [], dense)
    with pytest.raises(ValueError, match="^DeepLatentGaussian: expected stateless layers"):
        dlgm.DeepLatentGaussian((2, 3), [stax.serial(stax.Dense(2), stax.BatchNorm())], dense)
    layer = dlgm.DeepLatentGaussian((2, 3), [stax.Dense(4)], dense)  # F^1 must map 3 → 2
    with pytest.raises(ValueError, match=r"^DeepLatentGaussian: expected F\^1 to map \(\.\.\., 3\) to \(\.\.\., 2\)"):
        layer.init(jax.random.key(0), (-1, 5))
    layer = dlgm.DeepLatentGaussian((2, 3), [stax.Dense(2)], dense)
    with pytest.raises(ValueError, match=r"^DeepLatentGaussian: expected noise of shape \(\.\.\., 5\)"):
        layer.init(jax.random.key(0), (-1, 4))
    _, params = layer.init(jax.random.key(0), (-1, 5))
    with pytest.raises(ValueError, match=r"^DeepLatentGaussian: expected noise of shape \(\.\.\., 5\)"):
        layer.apply(params, jnp.ones((3, 6)))
    with pytest.raises(NotImplementedError, match="^DeepLatentGaussian: "):
        layer.kernel(jnp.ones((3, 5)), None, "nngp")
    model = dlgm.dlgm(stax.Dense(6), (2, 3), [stax.Dense(2)], stax.Dense(4))  # recognition needs 2 * 5 outputs
    with pytest.raises(ValueError, match="^VAE.init: the encoder must output 2 \\* latent_dim = 10"):
        model.init(jax.random.key(0), (-1, 4))
    assert isinstance(model, vae_lib.VAE) and model.latent_dim == 5
