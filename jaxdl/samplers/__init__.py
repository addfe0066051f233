"""Samplers for Bayesian deep learning, blackjax style.

Every sampler is built as ``alg = samplers.NAME(...)`` and used as
``state = alg.init(position)``, ``state, info = alg.step(key, state)``: pure,
jit-able and vmap-able functions over any position pytree, with NamedTuple states
and infos (``state.position`` is the sample).

* exact (Metropolis-corrected): :func:`mh`, :func:`hmc`, :func:`mala`;
* approximate (discretisation bias, no rejection): :func:`ula`, and the minibatch
  samplers :func:`sgld` and :func:`sghmc`;
* :func:`sample` runs a chain (``lax.scan``); :func:`effective_sample_size` and
  :func:`rhat` diagnose several;
* Bayesian deep learning helpers for stax models: :func:`log_prior_fn`,
  :func:`log_likelihood_fn`, :func:`log_posterior_fn`, :func:`posterior_predictive`,
  :func:`ensemble_weights`.
"""

from jaxdl.samplers.base import SamplingAlgorithm
from jaxdl.samplers.bayesian import (
    ensemble_weights,
    log_likelihood_fn,
    log_posterior_fn,
    log_prior_fn,
    posterior_predictive,
)
from jaxdl.samplers.diagnostics import effective_sample_size, rhat
from jaxdl.samplers.hmc import HMCInfo, HMCState, hmc
from jaxdl.samplers.integrators import IntegratorState, velocity_verlet
from jaxdl.samplers.langevin import LangevinState, MALAInfo, ULAInfo, mala, ula
from jaxdl.samplers.metrics import Metric, gaussian_euclidean
from jaxdl.samplers.mh import MHInfo, MHState, Proposal, mh, random_walk
from jaxdl.samplers.sample import sample
from jaxdl.samplers.sgmcmc import (
    SGHMCState,
    SGLDState,
    SGMCMCInfo,
    minibatch_logdensity_fn,
    sghmc,
    sgld,
)

__all__ = [
    "HMCInfo",
    "HMCState",
    "IntegratorState",
    "LangevinState",
    "MALAInfo",
    "MHInfo",
    "MHState",
    "Metric",
    "Proposal",
    "SGHMCState",
    "SGLDState",
    "SGMCMCInfo",
    "SamplingAlgorithm",
    "ULAInfo",
    "effective_sample_size",
    "ensemble_weights",
    "gaussian_euclidean",
    "hmc",
    "log_likelihood_fn",
    "log_posterior_fn",
    "log_prior_fn",
    "mala",
    "mh",
    "minibatch_logdensity_fn",
    "posterior_predictive",
    "random_walk",
    "rhat",
    "sample",
    "sghmc",
    "sgld",
    "ula",
    "velocity_verlet",
]
