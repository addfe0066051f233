"""Monte Carlo estimates of the NNGP and NTK from finite networks (neural-tangents'
``monte_carlo_kernel_fn``, same signature and semantics).

Averages, over ``n`` independent initialisations ``params ~ init_fn``, the
empirical kernels of :func:`jaxdl.kernels.empirical.empirical_kernel_fn`: the
NNGP ``f(x1) f(x2)^T`` and the NTK ``J(x1) J(x2)^T`` (the seeds'
``K_theta(x, x') = <grad_theta f(x), grad_theta f(x')>``), traced and
diagonalised over the requested output axes. For wide networks the estimates
converge to the analytic kernels, which makes this the independent check of
:mod:`jaxdl.kernels.analytic`. Each sample is computed blockwise over devices
by :func:`jaxdl.kernels.batching.batch`, which reads the kernel's layout
(batch axis, ``diagonal_axes``/``trace_axes``) off the function, cuts keyword
pairs such as ``pattern=(p1, p2)`` with the inputs, and lets ``jax.jit``,
``jax.grad`` and ``jax.jvp`` through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import jax

from jaxdl.kernels.batching import batch
from jaxdl.kernels.empirical import NtkImplementation, empirical_kernel_fn
from jaxdl.kernels.kernel import canonical_get


def _sample_counts(n_samples) -> tuple[list[int], bool]:
    """``(sorted counts, whether to return a generator)``."""
    as_generator = not isinstance(n_samples, int)
    counts = [n_samples] if not as_generator else list(n_samples) if isinstance(n_samples, Iterable) else None
    if not counts or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in counts):
        raise ValueError(
            f"monte_carlo_kernel_fn: expected n_samples to be a positive int or an iterable of them, "
            f"got {n_samples!r}"
        )
    return sorted(set(counts)), as_generator


def _accepts_key(apply_fn: Callable) -> bool:
    """Whether ``apply_fn`` takes a ``key=`` keyword (stax apply_fns do, through ``**kwargs``)."""
    try:
        parameters = inspect.signature(apply_fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "key" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def monte_carlo_kernel_fn(
    init_fn: Callable,
    apply_fn: Callable,
    key: jax.Array,
    n_samples,
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    trace_axes=(-1,),
    diagonal_axes=(),
    vmap_axes=None,
    implementation=NtkImplementation.JACOBIAN_CONTRACTION,
) -> Callable:
    """``kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs)``: Monte Carlo NNGP/NTK.

    Sample ``i`` draws ``params`` from ``init_fn`` with the ``i``-th split of
    ``key`` and passes a second key to ``apply_fn`` as ``key=`` (for dropout) when
    ``apply_fn`` accepts that keyword.
    With an int ``n_samples`` the function returns the average over that many
    samples; with an iterable of ints it returns a generator yielding the
    running averages at those sample counts (neural-tangents' convention).
    ``get``: ``'nngp'``, ``'ntk'``, a tuple of them (namedtuple) or None (both).
    """
    counts, as_generator = _sample_counts(n_samples)
    empirical = empirical_kernel_fn(apply_fn, trace_axes, diagonal_axes, vmap_axes, implementation)
    pass_key = _accepts_key(apply_fn)

    def one_sample(x1, x2, sample_key, get, **apply_fn_kwargs):
        init_key, apply_key = jax.random.split(sample_key)
        _, params = init_fn(init_key, jax.tree.map(lambda x: x.shape, x1))
        if pass_key:
            apply_fn_kwargs = {"key": apply_key, **apply_fn_kwargs}
        return empirical(x1, x2, get, params, **apply_fn_kwargs)

    one_sample = batch(one_sample, batch_size, device_count, store_on_device)

    def running_averages(x1, x2, get, apply_fn_kwargs):
        total, sample_key = None, key
        for n in range(1, counts[-1] + 1):
            sample_key, this_key = jax.random.split(sample_key)
            sample = one_sample(x1, x2, this_key, get, **apply_fn_kwargs)
            total = sample if total is None else jax.tree.map(lambda a, b: a + b, total, sample)
            if n in counts:
                yield jax.tree.map(lambda a: a / n, total)

    def kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs):
        averages = running_averages(x1, x2, canonical_get(get), apply_fn_kwargs)
        if as_generator:
            return averages
        *_, last = averages
        return last

    return kernel_fn
