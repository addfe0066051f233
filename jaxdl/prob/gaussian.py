"""Multivariate Gaussians: log-density, entropy, cross-entropy, KL (closed form), Jensen-Shannon
(Monte Carlo), marginals and conditionals of a joint Gaussian.

Formulas (standard; the seeds use them in "Gaussian processes" and "PAC-Bayes", where "the KL
term can be computed in closed form if prior and posterior are Gaussian"):

* ``log N(x; m, S) = -1/2 [(x - m)^T S^{-1} (x - m) + log det S + d log 2 pi]``;
* ``H(N(m, S)) = 1/2 log det(2 pi e S)``;
* ``KL(N0 || N1) = 1/2 [tr(S1^{-1} S0) + (m1 - m0)^T S1^{-1} (m1 - m0) - d + log det S1 - log det S0]``
  and ``H(N0, N1) = H(N0) + KL(N0 || N1)``; for diagonal covariances the sum over coordinates
  (:func:`kl_diag_gaussians`, the PAC-Bayes KL over network weights);
* ``JS`` of two Gaussians has no closed form (the mixture is not Gaussian):
  :func:`gaussian_js_divergence` estimates ``1/2 E_0[log p0/m] + 1/2 E_1[log p1/m]`` by sampling;
* partitioning ``x = (a, b)``: the marginal of ``a`` is ``N(m_a, S_aa)`` and
  ``a | b ~ N(m_a + S_ab S_bb^{-1} (b - m_b), S_aa - S_ab S_bb^{-1} S_ba)`` (the GP posterior
  is this conditional).

Covariances must be symmetric positive (semi-)definite: on concrete arrays a covariance that is
not symmetric, or has a negative eigenvalue, raises ``ValueError``; densities, entropies and KL
need it strictly positive definite. Linear algebra goes through Cholesky factors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_covariance",
    "gaussian_log_prob",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_cross_entropy",
    "gaussian_js_divergence",
    "kl_diag_gaussians",
    "marginal",
    "condition",
]


def check_covariance(fn: str, cov, *, strict: bool = True, rtol: float = 1e-6):
    """``cov`` as a float array after checking (concrete values only) that it is a square,
    symmetric, positive definite (``strict``) or semi-definite matrix."""
    cov = jnp.asarray(cov)
    if not jnp.issubdtype(cov.dtype, jnp.floating):
        cov = cov.astype(jnp.result_type(float))
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"{fn}: expected a square covariance matrix, got shape {cov.shape}")
    if isinstance(cov, jax.core.Tracer):
        return cov
    c = np.asarray(cov, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{fn}: expected a finite covariance matrix")
    scale = max(np.max(np.abs(c)), np.finfo(np.float64).tiny)
    if np.max(np.abs(c - c.T)) > rtol * scale * 10:
        raise ValueError(f"{fn}: expected a symmetric covariance matrix")
    smallest = np.linalg.eigvalsh(c).min()
    tol = rtol * scale * c.shape[0]
    if smallest < -tol or (strict and smallest <= tol * 1e-3):
        kind = "positive definite" if strict else "positive semi-definite"
        raise ValueError(f"{fn}: expected a {kind} covariance matrix, got smallest eigenvalue {smallest:.3g}")
    return cov


def _mean(fn, mean, d):
    mean = jnp.asarray(mean)
    if mean.shape != (d,):
        raise ValueError(f"{fn}: expected a mean of shape ({d},) to match the covariance, got {mean.shape}")
    return mean


def _chol_logdet(chol):
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))


def gaussian_log_prob(x, mean, cov):
    """``log N(x; mean, cov)`` for ``x`` of shape ``(..., d)``."""
    fn = "gaussian_log_prob"
    cov = check_covariance(fn, cov)
    d = cov.shape[0]
    mean = _mean(fn, mean, d)
    x = jnp.asarray(x)
    if x.shape[-1:] != (d,):
        raise ValueError(f"{fn}: expected x with last axis {d}, got shape {x.shape}")
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, (x.reshape(-1, d) - mean[None, :]).T, lower=True)
    quad = jnp.sum(z**2, axis=0).reshape(x.shape[:-1])
    return -0.5 * (quad + _chol_logdet(chol) + d * math.log(2 * math.pi))


def gaussian_entropy(mean, cov):
    """``H(N(mean, cov)) = 1/2 log det(2 pi e cov)`` in nats (the mean is checked, not used)."""
    cov = check_covariance("gaussian_entropy", cov)
    _mean("gaussian_entropy", mean, cov.shape[0])
    d = cov.shape[0]
    return 0.5 * (_chol_logdet(jnp.linalg.cholesky(cov)) + d * math.log(2 * math.pi * math.e))


def gaussian_kl(mean0, cov0, mean1, cov1):
    """``KL(N(mean0, cov0) || N(mean1, cov1))`` in closed form."""
    fn = "gaussian_kl"
    cov0, cov1 = check_covariance(fn, cov0), check_covariance(fn, cov1)
    if cov0.shape != cov1.shape:
        raise ValueError(f"{fn}: expected covariances of the same shape, got {cov0.shape} and {cov1.shape}")
    d = cov0.shape[0]
    mean0, mean1 = _mean(fn, mean0, d), _mean(fn, mean1, d)
    l0, l1 = jnp.linalg.cholesky(cov0), jnp.linalg.cholesky(cov1)
    solve = lambda b: jax.scipy.linalg.solve_triangular(l1, b, lower=True)  # noqa: E731
    trace = jnp.sum(solve(l0) ** 2)  # tr(S1^-1 S0) = ||L1^-1 L0||_F^2
    maha = jnp.sum(solve(mean1 - mean0) ** 2)
    return 0.5 * (trace + maha - d + _chol_logdet(l1) - _chol_logdet(l0))


def gaussian_cross_entropy(mean0, cov0, mean1, cov1):
    """``H(N0, N1) = -E_{N0}[log N1] = H(N0) + KL(N0 || N1)``."""
    return gaussian_entropy(mean0, cov0) + gaussian_kl(mean0, cov0, mean1, cov1)


def gaussian_js_divergence(mean0, cov0, mean1, cov1, key, num_samples: int = 20_000):
    """Monte Carlo ``JS(N0, N1)``: ``num_samples`` draws from each Gaussian, ``m = (p0 + p1)/2``.
    Returns ``(estimate, standard_error)``; the estimate is clipped to ``[0, log 2]``."""
    fn = "gaussian_js_divergence"
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"{fn}: expected num_samples to be an int >= 2, got {num_samples!r}")
    cov0, cov1 = check_covariance(fn, cov0), check_covariance(fn, cov1)
    d = cov0.shape[0]
    mean0, mean1 = _mean(fn, mean0, d), _mean(fn, mean1, d)
    k0, k1 = jax.random.split(key)
    terms = []
    for which, (k, m, c) in enumerate(((k0, mean0, cov0), (k1, mean1, cov1))):
        x = jax.random.multivariate_normal(k, m, c, (num_samples,), dtype=c.dtype)
        lp0, lp1 = gaussian_log_prob(x, mean0, cov0), gaussian_log_prob(x, mean1, cov1)
        log_m = jnp.logaddexp(lp0, lp1) - math.log(2.0)
        terms.append((lp1 if which else lp0) - log_m)
    values = 0.5 * (terms[0] + terms[1])  # paired draws: unbiased for JS
    estimate = jnp.clip(jnp.mean(values), 0.0, math.log(2.0))
    return estimate, jnp.std(values) / math.sqrt(num_samples)


def kl_diag_gaussians(mean_q, std_q, mean_p, std_p):
    """``KL(N(mean_q, diag std_q^2) || N(mean_p, diag std_p^2))`` summed over all coordinates.
    Arguments are arrays or matching pytrees (network weights); ``std_p`` may be a scalar."""
    fn = "kl_diag_gaussians"
    leaves_mq, tree = jax.tree_util.tree_flatten(mean_q)
    leaves_sq = tree.flatten_up_to(std_q)
    leaves_mp = tree.flatten_up_to(mean_p)
    scalar_prior = not isinstance(std_p, (dict, list, tuple)) and jnp.ndim(std_p) == 0
    leaves_sp = [std_p] * len(leaves_mq) if scalar_prior else tree.flatten_up_to(std_p)
    total = 0.0
    for mq, sq, mp, sp in zip(leaves_mq, leaves_sq, leaves_mp, leaves_sp):
        if not isinstance(sq, jax.core.Tracer) and np.any(np.asarray(sq) <= 0):
            raise ValueError(f"{fn}: expected positive standard deviations")
        ratio = (sq / sp) ** 2
        total = total + 0.5 * jnp.sum(ratio + ((mq - mp) / sp) ** 2 - 1.0 - jnp.log(ratio))
    return total


def _indices(fn, idx, d):
    idx = np.asarray(idx, dtype=int).reshape(-1)
    if idx.size == 0 or np.any(idx < 0) or np.any(idx >= d) or len(set(idx.tolist())) != idx.size:
        raise ValueError(f"{fn}: expected distinct indices in [0, {d}), got {idx.tolist()}")
    return idx


def marginal(mean, cov, idx):
    """The marginal ``N(mean[idx], cov[idx, idx])`` of the coordinates ``idx``."""
    fn = "marginal"
    cov = check_covariance(fn, cov, strict=False)
    mean = _mean(fn, mean, cov.shape[0])
    idx = _indices(fn, idx, cov.shape[0])
    return mean[idx], cov[np.ix_(idx, idx)]


def condition(mean, cov, observed_idx, observed_values):
    """The conditional of the other coordinates given ``x[observed_idx] = observed_values``.

    Returns ``(free_idx, cond_mean, cond_cov)`` with
    ``cond_mean = m_a + S_ab S_bb^{-1} (values - m_b)``, ``cond_cov = S_aa - S_ab S_bb^{-1} S_ba``.
    ``S_bb`` must be positive definite.
    """
    fn = "condition"
    cov = check_covariance(fn, cov, strict=False)
    d = cov.shape[0]
    mean = _mean(fn, mean, d)
    b = _indices(fn, observed_idx, d)
    a = np.setdiff1d(np.arange(d), b)
    if a.size == 0:
        raise ValueError(f"{fn}: every coordinate is observed; nothing is left to condition")
    values = jnp.asarray(observed_values, dtype=cov.dtype).reshape(-1)
    if values.shape != (b.size,):
        raise ValueError(f"{fn}: expected {b.size} observed values, got shape {jnp.shape(observed_values)}")
    s_bb = check_covariance(fn, cov[np.ix_(b, b)])
    s_ab = cov[np.ix_(a, b)]
    chol = jnp.linalg.cholesky(s_bb)
    gain = jax.scipy.linalg.cho_solve((chol, True), s_ab.T).T  # S_ab S_bb^{-1}
    cond_mean = mean[a] + gain @ (values - mean[b])
    cond_cov = cov[np.ix_(a, a)] - gain @ s_ab.T
    return a, cond_mean, 0.5 * (cond_cov + cond_cov.T)
