"""Generative models (issue 17): linear latent models, VAEs, normalizing flows, autoregressive
models, GANs, diffusion, score matching and NCE, as pure functions over stax triples.

Submodules: :mod:`~jaxdl.generative.linear` (PCA, linear/denoising autoencoders, factor
analysis, PPCA), :mod:`~jaxdl.generative.vae` (``vae.vae``: VAE, β-VAE, IWAE),
:mod:`~jaxdl.generative.dlgm` (the deep latent Gaussian model: stochastic layers at every
level), :mod:`~jaxdl.generative.flows` (RealNVP coupling, permutations, invertible 1x1),
:mod:`~jaxdl.generative.autoregressive` (MADE).
"""

from jaxdl.generative import autoregressive, dlgm, flows, linear, vae
from jaxdl.generative.autoregressive import made
from jaxdl.generative.flows import realnvp
from jaxdl.generative.linear import factor_analysis, linear_autoencoder, pca, ppca

# GANs, diffusion, score matching, NCE (H17b): use as modules, e.g. ``diffusion.ddim_sample``.
from jaxdl.generative import diffusion, gan, nce, score_matching  # noqa: E402
