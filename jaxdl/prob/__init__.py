"""``jaxdl.prob``: the probability tools the theory chapters lean on.

* :mod:`~jaxdl.prob.divergences`: entropy, cross-entropy, KL and Jensen-Shannon of categorical
  distributions; the GAN optimum ``V(G, D*) = 2 JS - log 4``.
* :mod:`~jaxdl.prob.gaussian`: Gaussian log-density, entropy, KL in closed form, JS by Monte
  Carlo, marginals and conditionals of a joint Gaussian.
* :mod:`~jaxdl.prob.gp`: GP regression with any kernel (the analytic NNGP/NTK included), the log
  marginal likelihood and its maximisation, Neal's theorem measured.
"""

from jaxdl.prob.divergences import (
    LOG4,
    check_probabilities,
    cross_entropy,
    entropy,
    gan_optimal_value,
    gan_value,
    js_divergence,
    kl_divergence,
    optimal_discriminator,
)
from jaxdl.prob.gaussian import (
    check_covariance,
    condition,
    gaussian_cross_entropy,
    gaussian_entropy,
    gaussian_js_divergence,
    gaussian_kl,
    gaussian_log_prob,
    kl_diag_gaussians,
    marginal,
)
from jaxdl.prob.gp import (
    fit_hyperparameters,
    from_kernel_fn,
    gp_posterior,
    log_marginal_likelihood,
    neal_convergence,
    neal_excess_kurtosis,
    rbf_kernel,
)

__all__ = [
    "LOG4", "check_probabilities", "cross_entropy", "entropy", "gan_optimal_value", "gan_value",
    "js_divergence", "kl_divergence", "optimal_discriminator",
    "check_covariance", "condition", "gaussian_cross_entropy", "gaussian_entropy", "gaussian_js_divergence",
    "gaussian_kl", "gaussian_log_prob", "kl_diag_gaussians", "marginal",
    "fit_hyperparameters", "from_kernel_fn", "gp_posterior", "log_marginal_likelihood", "neal_convergence",
    "neal_excess_kurtosis", "rbf_kernel",
]  # fmt: skip
