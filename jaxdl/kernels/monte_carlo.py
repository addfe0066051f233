"""Monte Carlo estimates of the NNGP and NTK from finite networks (neural-tangents'
``monte_carlo_kernel_fn``).

Averages, over ``n_samples`` independent initialisations, the empirical NNGP
``f(x1) f(x2)^T / n_out`` and the empirical NTK ``J(x1) J(x2)^T / n_out``
(``J`` = Jacobian of the outputs in the parameters; seed definition of the NTK
``K_theta(x, x') = <grad_theta f(x), grad_theta f(x')>``), both traced over
the output (``trace_axes=(-1,)``). The independent check of the analytic
kernels: for wide networks the estimates converge to them. Written by hand as
no library computes these averages for a stax ``(init_fn, apply_fn)`` pair.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp


def _empirical(apply_fn, params, x1, x2, want_ntk: bool):
    """One initialisation's ``(nngp, ntk)``: f32[n1, n2] each (output axis traced)."""
    f1, f2 = apply_fn(params, x1), apply_fn(params, x2)
    n_out = f1.shape[-1]
    nngp = f1.reshape(f1.shape[0], -1) @ f2.reshape(f2.shape[0], -1).T / n_out
    if not want_ntk:
        return nngp, None
    jac1 = jax.jacrev(lambda p: apply_fn(p, x1))(params)
    jac2 = jax.jacrev(lambda p: apply_fn(p, x2))(params)

    def contract(a, b):
        a = a.reshape(a.shape[0], n_out, -1)
        b = b.reshape(b.shape[0], n_out, -1)
        return jnp.einsum("iop,jop->ij", a, b)

    parts = jax.tree.leaves(jax.tree.map(contract, jac1, jac2))
    return nngp, sum(parts[1:], parts[0]) / n_out


def monte_carlo_kernel_fn(init_fn, apply_fn, key, n_samples: int, trace_axes=(-1,)):
    """``kernel_fn(x1, x2=None, get=None)`` returning Monte Carlo NNGP/NTK estimates.

    x1: f[n1, ...], x2: f[n2, ...]; outputs f[n1, n2] (2-D outputs, traced over the last axis).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples <= 0:
        raise ValueError(f"monte_carlo_kernel_fn: expected a positive int n_samples, got {n_samples!r}")
    if tuple(trace_axes) != (-1,):
        raise NotImplementedError(f"monte_carlo_kernel_fn: only trace_axes=(-1,) is supported, got {trace_axes}")

    def kernel_fn(x1, x2=None, get=None):
        x2 = x1 if x2 is None else x2
        names = ("nngp", "ntk") if get is None else ((get,) if isinstance(get, str) else tuple(get))
        for name in names:
            if name not in ("nngp", "ntk"):
                raise ValueError(f"monte_carlo_kernel_fn: expected get in ('nngp', 'ntk'), got {name!r}")
        want_ntk = "ntk" in names

        @jax.jit
        def one_sample(sample_key):
            _, params = init_fn(sample_key, x1.shape)
            return _empirical(apply_fn, params, x1, x2, want_ntk)

        totals = None
        for sample_key in jax.random.split(key, n_samples):
            sample = one_sample(sample_key)
            totals = sample if totals is None else jax.tree.map(jnp.add, totals, sample)
        nngp, ntk = jax.tree.map(lambda t: t / n_samples, totals)
        values = {"nngp": nngp, "ntk": ntk}
        if isinstance(get, str):
            return values[get]
        cls = collections.namedtuple("MonteCarloKernel", names)
        return cls(*(values[n] for n in names))

    return kernel_fn
