"""Linear latent-variable models: PCA, linear and denoising autoencoders, factor analysis, PPCA.

Seed formulas implemented here (lecture notes in ``seeds/``):

* optimal linear compression (seed 003, §9.1): for centred data ``X = U Σ V^T`` the
  two-layer linear autoencoder ``x ↦ z = C x ↦ x̂ = D z`` minimising
  ``1/(2k) Σ_i ||x_i − D C x_i||²`` is solved by ``C = U_m^T``, ``D = U_m``: the
  decoder spans the top-``m`` principal subspace (:func:`pca`,
  :func:`linear_autoencoder`; :func:`principal_angles` measures how far a learnt
  decoder is from it);
* the denoising autoencoder (seed 003, §9.1): ``min E_x E_η ℓ(x, (H∘G)(x + η))``
  with ``η ~ N(0, σ² I)`` (:func:`denoising_loss`);
* linear factor analysis (seeds 001 §19.2, 003 §9.2): ``z ~ N(0, I)``,
  ``x = μ + W z + η``, ``η ~ N(0, Σ)``, ``Σ = diag(σ_1², …, σ_n²)``, so that
  ``x ~ N(μ, W W^T + Σ)``; posterior mean ``W^T (W W^T + Σ)^{-1} (x − μ)`` and
  covariance ``I − W^T (W W^T + Σ)^{-1} W`` (:func:`posterior`); maximum
  likelihood by EM (:func:`factor_analysis`);
* probabilistic PCA (seed 001 §19.2, Tipping & Bishop 1999): ``Σ = σ² I``, the
  maximum-likelihood columns are ``w_i = ρ_i u_i`` with
  ``ρ_i = max(0, sqrt(λ_i − σ²))`` and ``σ²`` the mean of the discarded
  eigenvalues (:func:`ppca`, closed form).

Every model is a :class:`LinearGaussian` ``(mean, W, noise_var)`` whose exact
log-likelihood is :func:`log_likelihood` (a Cholesky factor of ``W W^T + Σ``).
Written by hand because none of optax/flax/chex has these models; scikit-learn
(``PCA``, ``FactorAnalysis``) is the reference in the tests, not a dependency of
the code.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import stax

_LOG_2PI = float(np.log(2 * np.pi))


class PCA(NamedTuple):
    """Principal components: ``components`` is ``f[m, n]`` (rows = unit eigenvectors of the
    sample covariance, largest first), ``variances`` ``f[n]`` all its eigenvalues
    (descending), ``mean`` ``f[n]``."""

    mean: jax.Array
    components: jax.Array
    variances: jax.Array

    def encode(self, x):
        """Codes ``z = C (x − mean)`` with ``C = U_m^T``."""
        return (x - self.mean) @ self.components.T

    def decode(self, z):
        """Reconstructions ``D z + mean`` with ``D = U_m``."""
        return z @ self.components + self.mean


class LinearGaussian(NamedTuple):
    """The factor-analysis / PPCA model ``x ~ N(mean, W W^T + diag(noise_var))``;
    ``W`` is ``f[n, m]``, ``noise_var`` ``f[n]`` (all equal for PPCA)."""

    mean: jax.Array
    W: jax.Array
    noise_var: jax.Array

    @property
    def covariance(self):
        return self.W @ self.W.T + jnp.diag(self.noise_var)


def _check_data(name: str, x, num_components: int | None = None) -> jax.Array:
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected data of shape (num_examples >= 2, num_features), got {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = jnp.asarray(x, jnp.result_type(float))
    x = jnp.asarray(x)
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name}: data contains NaN or inf")
    if num_components is not None:
        if isinstance(num_components, bool) or not isinstance(num_components, (int, np.integer)):
            raise TypeError(f"{name}: expected num_components to be an int, got {num_components!r}")
        if not 0 < num_components < x.shape[1]:
            raise ValueError(
                f"{name}: expected 0 < num_components < num_features = {x.shape[1]}, got {num_components}"
            )
    return x


def _covariance(x, ddof: int):
    centred = x - jnp.mean(x, axis=0)
    return centred.T @ centred / (x.shape[0] - ddof)


def pca(x, num_components: int, *, ddof: int = 0) -> PCA:
    """PCA of ``x`` (``f[k, n]``) by an eigendecomposition of its sample covariance
    ``X^T X / (k − ddof)`` (``ddof=1``: scikit-learn's ``explained_variance_``)."""
    return _pca("pca", x, num_components, ddof)


def _pca(name, x, num_components, ddof):
    x = _check_data(name, x, num_components)
    values, vectors = jnp.linalg.eigh(_covariance(x, ddof))
    values, vectors = values[::-1], vectors[:, ::-1]
    # a sign convention, so that results are reproducible: largest |entry| of each component positive
    signs = jnp.sign(vectors[jnp.argmax(jnp.abs(vectors), axis=0), jnp.arange(vectors.shape[1])])
    vectors = vectors * jnp.where(signs == 0, 1.0, signs)
    return PCA(jnp.mean(x, axis=0), vectors[:, :num_components].T, jnp.maximum(values, 0.0))


def ppca(x, num_components: int, *, ddof: int = 0) -> LinearGaussian:
    """Probabilistic PCA in closed form (Tipping–Bishop; seed 001 §19.2).

    ``σ²`` is the mean of the ``n − m`` discarded covariance eigenvalues and
    ``W = U_m diag(sqrt(max(λ_i − σ², 0)))``. ``ddof=0`` is the maximum-likelihood
    estimate; ``ddof=1`` is the model whose likelihood scikit-learn's ``PCA(m).score``
    reports.
    """
    model = _pca("ppca", x, num_components, ddof)
    noise = jnp.mean(model.variances[num_components:])
    noise = jnp.maximum(noise, jnp.finfo(noise.dtype).tiny)  # data exactly in an m-dim subspace
    rho = jnp.sqrt(jnp.maximum(model.variances[:num_components] - noise, 0.0))
    W = model.components.T * rho
    return LinearGaussian(model.mean, W, jnp.full(model.mean.shape[0], noise))


def log_likelihood(model: LinearGaussian, x) -> jax.Array:
    """Exact ``log N(x; mean, W W^T + diag(noise_var))`` per example (``f[k]``, nats)."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != model.mean.shape[0]:
        raise ValueError(
            f"log_likelihood: expected data of shape (k, {model.mean.shape[0]}), got {tuple(x.shape)}"
        )
    chol = jnp.linalg.cholesky(model.covariance)
    if not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError("log_likelihood: the model covariance W W^T + diag(noise_var) is not positive definite")
    white = jax.scipy.linalg.solve_triangular(chol, (x - model.mean).T, lower=True)
    log_det = 2 * jnp.sum(jnp.log(jnp.diag(chol)))
    return -0.5 * (jnp.sum(white**2, axis=0) + log_det + x.shape[1] * _LOG_2PI)


def posterior(model: LinearGaussian, x):
    """``(mean f[k, m], covariance f[m, m])`` of ``p(z | x)`` (seed 001 §19.2)."""
    gain = jnp.linalg.solve(model.covariance, model.W).T  # W^T (W W^T + Σ)^{-1}
    return (x - model.mean) @ gain.T, jnp.eye(model.W.shape[1]) - gain @ model.W


def sample(model: LinearGaussian, key, num_samples: int) -> jax.Array:
    """``x = mean + W z + η`` for ``num_samples`` draws."""
    z_key, noise_key = jax.random.split(key)
    n, m = model.W.shape
    z = jax.random.normal(z_key, (num_samples, m), model.W.dtype)
    noise = jax.random.normal(noise_key, (num_samples, n), model.W.dtype) * jnp.sqrt(model.noise_var)
    return model.mean + z @ model.W.T + noise


def _gaussian_mean_log_likelihood(cov, S):
    """Average log-likelihood of centred data with sample covariance ``S`` under ``N(0, cov)``."""
    chol = jnp.linalg.cholesky(cov)
    log_det = 2 * jnp.sum(jnp.log(jnp.diag(chol)))
    trace = jnp.trace(jax.scipy.linalg.cho_solve((chol, True), S))
    return -0.5 * (S.shape[0] * _LOG_2PI + log_det + trace)


def factor_analysis(x, num_components: int, *, num_iters: int = 500, key=None, min_noise_var: float = 1e-6):
    """Factor analysis fitted by EM (seeds 001 §19.2, 003 §9.2).

    With ``S`` the sample covariance (``1/k``) and ``Σ = diag(ψ)``, each iteration is

    * E-step: ``β = W^T (W W^T + Σ)^{-1}``, so ``E[z|x] = β (x − μ)`` and
      ``E[z z^T|x] = I − β W + β (x − μ)(x − μ)^T β^T``;
    * M-step: ``W ← S β^T (I − β W + β S β^T)^{-1}``, ``ψ ← diag(S − W β S)``
      (floored at ``min_noise_var``).

    EM never decreases the likelihood. ``W`` starts from the PPCA solution (or from
    small Gaussian noise when ``key`` is given). Returns ``(model, history)`` with
    ``history`` the average training log-likelihood (nats per example) before each
    iteration and after the last (``num_iters + 1`` values).
    """
    x = _check_data("factor_analysis", x, num_components)
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"factor_analysis: expected num_iters to be a positive int, got {num_iters!r}")
    if not min_noise_var > 0:
        raise ValueError(f"factor_analysis: expected min_noise_var > 0, got {min_noise_var!r}")
    mean = jnp.mean(x, axis=0)
    S = _covariance(x, 0)
    start = ppca(x, num_components)  # (x was checked above)
    W = start.W if key is None else 0.1 * jax.random.normal(key, start.W.shape, x.dtype)
    psi = jnp.maximum(jnp.diag(S), min_noise_var)
    m = num_components

    def step(carry, _):
        W, psi = carry
        cov = W @ W.T + jnp.diag(psi)
        beta = jnp.linalg.solve(cov, W).T
        Ezz = jnp.eye(m) - beta @ W + beta @ S @ beta.T
        W_new = jnp.linalg.solve(Ezz.T, (S @ beta.T).T).T
        psi_new = jnp.maximum(jnp.diag(S - W_new @ beta @ S), min_noise_var)
        return (W_new, psi_new), _gaussian_mean_log_likelihood(cov, S)

    (W, psi), history = jax.jit(lambda c: jax.lax.scan(step, c, None, length=num_iters))((W, psi))
    final = _gaussian_mean_log_likelihood(W @ W.T + jnp.diag(psi), S)
    model = LinearGaussian(mean, W, psi)
    if not bool(jnp.isfinite(final)):
        raise ValueError("factor_analysis: EM produced a non-finite likelihood; raise min_noise_var")
    return model, jnp.append(history, final)


# --- autoencoders --------------------------------------------------------------------------------


def linear_autoencoder(num_features: int, num_components: int):
    """The seeds' two-layer linear autoencoder ``x ↦ D C x`` as a stax triple
    (``Dense`` encoder ``C`` then ``Dense`` decoder ``D``, no biases: centre the data).
    The decoder's column space is ``params["Dense_1"]["W"].T``'s (see
    :func:`decoder_basis`)."""
    for name, value in (("num_features", num_features), ("num_components", num_components)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"linear_autoencoder: expected {name} to be a positive int, got {value!r}")
    if num_components >= num_features:
        raise ValueError(
            f"linear_autoencoder: expected num_components < num_features, got {num_components} >= {num_features}"
        )
    return stax.serial(stax.Dense(num_components, b_std=None, parameterization="standard"),
                       stax.Dense(num_features, b_std=None, parameterization="standard"))  # fmt: skip


def decoder_basis(params) -> jax.Array:
    """The decoder's columns ``f[n, m]`` of a :func:`linear_autoencoder`."""
    return params["Dense_1"]["W"].T


def reconstruction_loss(apply_fn, params, x):
    """``1/(2k) Σ_i ||x_i − x̂_i||²`` (seed 003 §9.1)."""
    return 0.5 * jnp.mean(jnp.sum((x - apply_fn(params, x)) ** 2, axis=-1))


def denoising_loss(apply_fn, params, x, key, noise_std: float):
    """The denoising autoencoder's objective ``E_η 1/(2k) Σ_i ||x_i − (H∘G)(x_i + η_i)||²``
    with ``η ~ N(0, noise_std² I)`` (one noise draw per example; seed 003 §9.1)."""
    if not noise_std >= 0:
        raise ValueError(f"denoising_loss: expected noise_std >= 0, got {noise_std!r}")
    noisy = x + noise_std * jax.random.normal(key, x.shape, x.dtype)
    return 0.5 * jnp.mean(jnp.sum((x - apply_fn(params, noisy)) ** 2, axis=-1))


def fit_autoencoder(model, x, key, *, num_steps: int = 2000, learning_rate: float = 1e-2, noise_std: float = 0.0):
    """Train a stax autoencoder ``model`` on ``x`` by full-batch Adam (cosine-decayed
    learning rate) on :func:`reconstruction_loss` (``noise_std > 0``: :func:`denoising_loss`,
    fresh noise every step). Returns ``(params, losses)``."""
    x = _check_data("fit_autoencoder", x)
    init_key, noise_key = jax.random.split(key)
    _, params = model.init(init_key, x.shape)
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.01))

    def loss(params, step_key):
        if noise_std > 0:
            return denoising_loss(model.apply, params, x, step_key, noise_std)
        return reconstruction_loss(model.apply, params, x)

    def step(carry, step_key):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params, step_key)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

    keys = jax.random.split(noise_key, num_steps)
    (params, _), losses = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params, optimizer.init(params)))
    return params, losses


def principal_angles(A, B) -> jax.Array:
    """Principal angles (radians, ascending) between the column spaces of ``A`` ``f[n, p]``
    and ``B`` ``f[n, q]``: ``arccos`` of the singular values of ``Q_A^T Q_B``."""
    A, B = jnp.asarray(A), jnp.asarray(B)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"principal_angles: expected matrices with equal row counts, got {A.shape} and {B.shape}")
    Qa, _ = jnp.linalg.qr(A)
    Qb, _ = jnp.linalg.qr(B)
    cosines = jnp.linalg.svd(Qa.T @ Qb, compute_uv=False)
    return jnp.sort(jnp.arccos(jnp.clip(cosines, -1.0, 1.0)))
