"""Gaussian-process regression with any kernel, its log marginal likelihood, hyperparameter
fitting by gradient, and Neal's theorem measured.

Seed formulas (lecture notes, "Gaussian processes" and "GPs & infinite width"):

* ``f`` is a GP if every finite marginal ``(f(x_1), ..., f(x_s))`` is jointly normal with
  covariance ``k(x_i, x_j)``; RBF kernel ``k(x, x') = exp(-gamma ||x - x'||^2)``;
* posterior mean ``f*(x) = k(x)^T K^{-1} y`` and variance ``K(x, x) - k(x)^T K^{-1} k(x)``
  (with observation noise ``sigma^2``: ``K -> K + sigma^2 I``); the posterior itself comes from
  :func:`jaxdl.predict.gp_inference` (Gaussian conditioning, see :mod:`jaxdl.prob.gaussian`);
* log marginal likelihood (evidence) of ``y ~ N(0, K + sigma^2 I)``:
  ``-1/2 y^T (K + sigma^2 I)^{-1} y - 1/2 log det(K + sigma^2 I) - n/2 log 2 pi``, summed over
  the columns of ``y``; maximised over kernel hyperparameters by gradient ascent (optax Adam);
* Neal's theorem: a one-hidden-layer network with i.i.d. priors, ``f(x) = b + sum_j v_j phi(h_j(x))``
  with ``v_j ~ N(0, sigma_w^2 / m)``, tends to the GP with the NNGP kernel as ``m -> inf`` (CLT
  over the hidden units). :func:`neal_convergence` measures it: the sample covariance of the
  outputs against the analytic ``kernel_fn`` (for one hidden layer it equals the NNGP at every
  width, so this distance is Monte Carlo noise only), and what does change with width, the
  shape of the law of ``f(x)``: its excess kurtosis and Kolmogorov-Smirnov distance to normal. Given the
  hidden layer, ``f(x)`` is normal with variance ``V = sigma_b^2 + sigma_w^2/m sum_j phi_j^2``,
  so ``f(x)`` is a Gaussian scale mixture with excess kurtosis exactly
  ``3 Var V / (E V)^2 = 3 sigma_w^4 Var(phi^2) / (m (sigma_b^2 + sigma_w^2 E phi^2)^2)``, which
  goes to 0 like ``1/m`` (:func:`neal_excess_kurtosis`, by Gauss-Hermite quadrature).

Kernels are callables ``kernel(x1, x2) -> f[n1, n2]``; wrap a stax ``kernel_fn`` with
:func:`from_kernel_fn` to use the analytic NNGP or NTK.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import predict, stax

__all__ = [
    "rbf_kernel",
    "from_kernel_fn",
    "gp_posterior",
    "log_marginal_likelihood",
    "fit_hyperparameters",
    "neal_excess_kurtosis",
    "neal_convergence",
]


def rbf_kernel(x1, x2, lengthscale=1.0, variance=1.0):
    """``variance * exp(-||x - x'||^2 / (2 lengthscale^2))`` (the seeds' ``gamma = 1/(2 l^2)``)."""
    x1, x2 = jnp.atleast_2d(x1), jnp.atleast_2d(x2)
    sq = jnp.sum(x1**2, -1)[:, None] + jnp.sum(x2**2, -1)[None, :] - 2 * x1 @ x2.T
    return variance * jnp.exp(-jnp.maximum(sq, 0.0) / (2 * lengthscale**2))


def from_kernel_fn(kernel_fn, get: str = "nngp") -> Callable:
    """``kernel(x1, x2)`` from a stax ``kernel_fn`` (``'nngp'`` or ``'ntk'``), a 2-D matrix."""
    if get not in ("nngp", "ntk"):
        raise ValueError(f"from_kernel_fn: expected get 'nngp' or 'ntk', got {get!r}")
    return lambda x1, x2: kernel_fn(x1, x2, get)


def _matrix(fn, kernel, x1, x2):
    k = jnp.asarray(kernel(x1, x2))
    if k.shape != (len(x1), len(x2)):
        raise ValueError(f"{fn}: expected the kernel to return shape {(len(x1), len(x2))}, got {k.shape}")
    return k


def _targets(fn, y, n):
    y = jnp.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{fn}: expected y of shape ({n},) or ({n}, k), got {y.shape}")
    return y


def _noise(fn, noise_variance):
    if not isinstance(noise_variance, jax.core.Tracer) and not float(noise_variance) >= 0:
        raise ValueError(f"{fn}: expected noise_variance >= 0, got {noise_variance!r}")
    return noise_variance


def gp_posterior(kernel, x_train, y_train, x_test, noise_variance=1e-6):
    """Posterior of the latent ``f`` at ``x_test``: ``jaxdl.predict.Gaussian(mean, covariance)``,
    mean ``f[n_test, k]`` (``f[n_test]`` for 1-D ``y_train``), covariance ``f[n_test, n_test]``."""
    fn = "gp_posterior"
    noise_variance = _noise(fn, noise_variance)
    x_train, x_test = jnp.asarray(x_train), jnp.asarray(x_test)
    y = _targets(fn, y_train, len(x_train))
    k_dd = _matrix(fn, kernel, x_train, x_train)
    predict_fn = predict.gp_inference(k_dd, y, diag_reg=noise_variance, diag_reg_absolute_scale=True)
    out = predict_fn("nngp", _matrix(fn, kernel, x_test, x_train), _matrix(fn, kernel, x_test, x_test))
    mean = out.mean[:, 0] if jnp.ndim(y_train) == 1 else out.mean
    return predict.Gaussian(mean, out.covariance)


def log_marginal_likelihood(k_train_train, y_train, noise_variance):
    """``log N(y; 0, K + noise_variance I)``, summed over the columns of ``y``."""
    fn = "log_marginal_likelihood"
    noise_variance = _noise(fn, noise_variance)
    k = jnp.asarray(k_train_train)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{fn}: expected a square kernel matrix, got shape {k.shape}")
    n = k.shape[0]
    y = _targets(fn, y_train, n).astype(k.dtype)
    chol = jnp.linalg.cholesky(k + noise_variance * jnp.eye(n, dtype=k.dtype))
    if not isinstance(chol, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError(f"{fn}: K + noise_variance I is not positive definite; increase noise_variance")
    alpha = jax.scipy.linalg.cho_solve((chol, True), y)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    cols = y.shape[1]
    return -0.5 * jnp.sum(y * alpha) - 0.5 * cols * log_det - 0.5 * n * cols * math.log(2 * math.pi)


def fit_hyperparameters(kernel, params, x_train, y_train, *, num_steps: int = 200, learning_rate: float = 0.05):
    """Maximise the log marginal likelihood over ``params`` with Adam.

    Args:
      kernel: ``kernel(params, x1, x2) -> f[n1, n2]``, differentiable in ``params``.
      params: a dict of unconstrained hyperparameters; it must hold ``'log_noise_variance'``.
    Returns:
      ``(params, history)``: the fitted dict and the log marginal likelihood per step.
    """
    fn = "fit_hyperparameters"
    if not isinstance(params, dict) or "log_noise_variance" not in params:
        raise ValueError(f"{fn}: expected a dict of params with a 'log_noise_variance' entry")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"{fn}: expected num_steps to be an int >= 1, got {num_steps!r}")
    x_train = jnp.asarray(x_train)
    y = _targets(fn, y_train, len(x_train))

    def lml(p):
        return log_marginal_likelihood(kernel(p, x_train, x_train), y, jnp.exp(p["log_noise_variance"]))

    optimizer = optax.adam(learning_rate)

    @jax.jit
    def ascend(params):
        def step(carry, _):
            p, state = carry
            value, grad = jax.value_and_grad(lml)(p)
            updates, state = optimizer.update(jax.tree_util.tree_map(jnp.negative, grad), state, p)
            return (optax.apply_updates(p, updates), state), value

        (params, _), history = jax.lax.scan(step, (params, optimizer.init(params)), length=num_steps)
        return params, history

    params, history = ascend(jax.tree_util.tree_map(jnp.asarray, params))
    history = np.asarray(history, np.float64)
    bad = np.flatnonzero(~np.isfinite(history))
    if bad.size:
        raise FloatingPointError(f"{fn}: the log marginal likelihood became {history[bad[0]]} at step {bad[0]}")
    return params, history.tolist()


_ACTIVATIONS = {"erf": (stax.Erf, jax.scipy.special.erf), "relu": (stax.Relu, jax.nn.relu)}


def _one_hidden_layer(width, activation, w_std, b_std):
    layer, _ = _ACTIVATIONS[activation]
    return stax.serial(stax.Dense(width, W_std=w_std, b_std=b_std), layer(), stax.Dense(1, W_std=w_std, b_std=b_std))


def neal_excess_kurtosis(x, width: int, activation: str = "erf", w_std: float = 1.5, b_std: float = 0.1):
    """Exact excess kurtosis of ``f(x)`` for a one-hidden-layer net of ``width`` (see module doc),
    by 80-point Gauss-Hermite quadrature over the hidden pre-activation; one value per row of ``x``."""
    fn = "neal_excess_kurtosis"
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{fn}: expected activation in {sorted(_ACTIVATIONS)}, got {activation!r}")
    x = np.asarray(x, dtype=np.float64)
    phi = {"erf": lambda z: np.asarray(jax.scipy.special.erf(z)), "relu": lambda z: np.maximum(z, 0)}[activation]
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    q = w_std**2 * np.sum(x**2, -1) / x.shape[-1] + b_std**2  # hidden pre-activation variance
    values = phi(np.sqrt(q)[:, None] * nodes[None, :])
    m2 = (values**2) @ weights
    m4 = (values**4) @ weights
    return 3 * w_std**4 * (m4 - m2**2) / (width * (b_std**2 + w_std**2 * m2) ** 2)


def neal_convergence(x, widths, key, *, num_networks: int = 2000, activation: str = "erf",
                     w_std: float = 1.5, b_std: float = 0.1) -> dict:
    """Neal's theorem measured: outputs of ``num_networks`` random one-hidden-layer nets per width.

    Returns a dict of lists over ``widths``: ``kernel_error`` (relative Frobenius distance of
    the outputs' sample covariance to the analytic NNGP), ``excess_kurtosis`` (sample, averaged
    over the points of ``x``), ``predicted_excess_kurtosis`` (exact, :func:`neal_excess_kurtosis`)
    and ``ks_distance`` (Kolmogorov-Smirnov distance of the standardised outputs to N(0, 1)),
    plus the NNGP matrix.
    """
    fn = "neal_convergence"
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{fn}: expected activation in {sorted(_ACTIVATIONS)}, got {activation!r}")
    if not isinstance(num_networks, int) or num_networks < 10:
        raise ValueError(f"{fn}: expected num_networks to be an int >= 10, got {num_networks!r}")
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{fn}: expected x of shape (n, d), got {x.shape}")
    from scipy import stats

    nngp = np.asarray(_one_hidden_layer(1, activation, w_std, b_std)[2](x, x, "nngp"), dtype=np.float64)
    out = {"widths": [int(w) for w in widths], "nngp": nngp, "kernel_error": [], "excess_kurtosis": [],
           "predicted_excess_kurtosis": [], "ks_distance": []}
    for width, width_key in zip(out["widths"], jax.random.split(key, len(out["widths"]))):
        init_fn, apply_fn, _ = _one_hidden_layer(width, activation, w_std, b_std)
        keys = jax.random.split(width_key, num_networks)
        outputs = jax.lax.map(lambda k: apply_fn(init_fn(k, x.shape)[1], x)[:, 0], keys, batch_size=256)
        f = np.asarray(outputs, dtype=np.float64)  # [num_networks, n]
        cov = f.T @ f / num_networks  # the prior mean is 0
        out["kernel_error"].append(float(np.linalg.norm(cov - nngp) / np.linalg.norm(nngp)))
        z = f / np.sqrt(np.diag(nngp))
        out["excess_kurtosis"].append(float(np.mean(stats.kurtosis(f, axis=0, fisher=True))))
        out["predicted_excess_kurtosis"].append(float(np.mean(neal_excess_kurtosis(np.asarray(x), width,
                                                                                   activation, w_std, b_std))))
        out["ks_distance"].append(float(np.mean([stats.kstest(z[:, i], "norm").statistic for i in range(z.shape[1])])))
    return out
