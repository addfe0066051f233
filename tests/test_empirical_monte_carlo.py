"""Monte Carlo validation of the analytic kernels with the empirical ones.

`monte_carlo_kernels` is the test helper: it averages the empirical NNGP and
NTK (``jaxdl.kernels.empirical``, structured derivatives) of ``n_samples``
independently initialised finite networks, and returns the mean and the
standard error of each entry. The analytic infinite-width ``kernel_fn`` must
lie within 3 standard errors plus an O(1/width) finite-width bias allowance
of the estimate (with 32 networks of width 512 and 256 traced outputs this
catches a 10-15% error in any analytic kernel).
"""

import jax
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.kernels.empirical import empirical_kernel_fn


def monte_carlo_kernels(init_fn, apply_fn, x1, x2, n_samples: int, key, trace_axes=(-1,)):
    """Mean and standard error over initialisations of the empirical NNGP and NTK.

    Returns ``{"nngp": (mean, stderr), "ntk": (mean, stderr)}``; x1: f[n1, ...], x2: f[n2, ...].
    """
    kernel_fn = empirical_kernel_fn(apply_fn, trace_axes=trace_axes, vmap_axes=0)

    @jax.jit
    def one(sample_key):
        _, params = init_fn(sample_key, x1.shape)
        return kernel_fn(x1, x2, ("nngp", "ntk"), params)

    samples = [one(k) for k in jax.random.split(key, n_samples)]
    out = {}
    for name in ("nngp", "ntk"):
        stack = np.stack([np.asarray(getattr(s, name)) for s in samples])
        out[name] = (stack.mean(0), stack.std(0, ddof=1) / np.sqrt(n_samples))
    return out


OUT = 256  # i.i.d. readout units, averaged by trace_axes=(-1,): 256x less readout variance
MODELS = {
    "relu": lambda w: stax.serial(stax.Dense(w, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(w, W_std=1.5, b_std=0.1),
                                  stax.Relu(), stax.Dense(OUT, W_std=1.5, b_std=0.1)),
    "erf": lambda w: stax.serial(stax.Dense(w, W_std=1.2, b_std=0.2), stax.Erf(), stax.Dense(OUT, W_std=1.2)),
    "conv": lambda w: stax.serial(stax.Conv(w, (2, 2), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                                  stax.Flatten(), stax.Dense(OUT, W_std=1.4)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MODELS))
def test_analytic_kernels_within_monte_carlo_error(name):
    width, n_samples = 512, 32
    conv = name == "conv"
    shape = (3, 3, 3, 2) if conv else (3, 5)
    x1 = jax.random.normal(jax.random.key(0), shape)
    x2 = jax.random.normal(jax.random.key(1), (2,) + shape[1:])
    init_fn, apply_fn, kernel_fn = MODELS[name](width)
    estimates = monte_carlo_kernels(init_fn, apply_fn, x1, x2, n_samples, jax.random.key(2))
    exact = kernel_fn(x1, x2, ("nngp", "ntk"))
    for kind in ("nngp", "ntk"):
        mean, stderr = estimates[kind]
        expected = np.asarray(getattr(exact, kind))
        bias = 5.0 / width * np.abs(expected).max()  # the O(1/width) finite-width bias of the mean
        assert np.all(np.abs(mean - expected) <= 3 * stderr + bias), (kind, mean, expected, stderr)
