"""Closed-form training dynamics of (linearised / infinitely wide) networks and GP inference.

The neural-tangents ``predict`` API (same names, arguments, conventions).
Seed formulas (lecture notes, "Neural tangent kernel" / "Gaussian processes"):

* gradient flow on ``L = ||f(X) - Y||^2 / (2 |Y|)`` with a constant kernel
  ``Theta``:
  ``f_t(X) = Y + e^{-Theta t / |Y|} (f_0(X) - Y)`` and on test points
  ``f_t(x) = f_0(x) + Theta(x, X) Theta^{-1} (I - e^{-Theta t / |Y|}) (Y - f_0(X))``
  (:func:`gradient_descent_mse`); ``|Y|`` is ``y_train.size``;
* the same averaged over random initialisations of an infinitely wide network,
  mean and covariance in terms of the NNGP ``K`` and NTK ``Theta``
  (:func:`gradient_descent_mse_ensemble`), and its ``t = inf`` limit;
* exact GP posterior ``mean = K_*X K^{-1} Y``, ``cov = K_** - K_*X K^{-1} K_X*``
  (:func:`gp_inference`, ``'nngp'``, ``'ntk'``, ``'ntkgp'``);
* gradient flow for any loss, optionally with momentum, integrated by an ODE
  solver (:func:`gradient_descent`); the largest stable step
  ``2 (1 + momentum) |Y| / lambda_max(Theta)`` (:func:`max_learning_rate`).

Conventions (NT's): times are in units of the learning rate
(``t_abs = learning_rate * t``); ``diag_reg`` adds ``diag_reg * trace(K)/n``
(or ``diag_reg`` if ``diag_reg_absolute_scale``) to the train-train diagonal;
kernels are ``f[n1, n2]`` or zipped ``f[n1, n2, a1, a2, ...]`` over the
non-traced output axes; ``trace_axes`` are the output axes the kernel is
constant-diagonal over (any of them, the batch axis included: the kernel then
has no batch axes; repeated axes count once). ``t=None`` means ``t = inf``.

Numerical hazards: eigenvalues ``<= 0`` (a singular kernel) contribute nothing
instead of ``0/0``; a Cholesky solve that fails (not positive definite) falls
back to an eigendecomposition pseudo-inverse and warns.

Written by hand: the formulas are specific to NTK theory; only ``jnp.linalg``,
``jax.scipy`` and ``jax.experimental.ode.odeint`` are used.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import namedtuple
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import ode

from jaxdl.kernels.kernel import canonical_get

__all__ = [
    "Gaussian",
    "ODEState",
    "gp_inference",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
]


class Gaussian(NamedTuple):
    """Predictive distribution: ``mean`` and ``covariance``."""

    mean: jax.Array
    covariance: jax.Array


class ODEState(NamedTuple):
    """State of :func:`gradient_descent`: outputs and (with momentum) their velocities."""

    fx_train: jax.Array | None = None
    fx_test: jax.Array | None = None
    qx_train: jax.Array | None = None
    qx_test: jax.Array | None = None


# --- helpers ---------------------------------------------------------------------------


def _check_kernel(name: str, k, y_train=None):
    """A train-train kernel: zipped ``f[a1, a1', a2, a2', ...]`` over the non-traced output
    axes (``f[n, n]`` usually; no batch axes when the batch axis is traced too)."""
    if not hasattr(k, "shape") or jnp.ndim(k) % 2:
        raise ValueError(f"{name}: expected a kernel f[n, n] or zipped f[n, n, a, a, ...], "
                         f"got shape {getattr(k, 'shape', type(k).__name__)}")
    if k.shape[::2] != k.shape[1::2]:
        raise ValueError(f"{name}: expected a square train-train kernel, got shape {k.shape}")
    if y_train is not None and jnp.ndim(y_train) == 0:
        raise ValueError(f"{name}: expected y_train with a batch axis, got shape {jnp.shape(y_train)}")


def _trace_axes(name, trace_axes, y_train, kernel):
    """Canonical negative trace axes of ``y_train``; checks the kernel matches the others."""
    ndim = y_train.ndim
    axes = (trace_axes,) if isinstance(trace_axes, int) else tuple(trace_axes)
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"{name}: trace_axes {trace_axes} do not fit y_train of shape {y_train.shape}")
    axes = tuple(sorted({a % ndim - ndim for a in axes}))
    non_traced = [y_train.shape[a] for a in range(-ndim, 0) if a not in axes]
    if kernel is not None and tuple(kernel.shape[::2]) != tuple(non_traced):
        raise ValueError(
            f"{name}: kernel of shape {kernel.shape} does not match y_train of shape "
            f"{y_train.shape} with trace_axes {trace_axes} (expected paired axes {non_traced})"
        )
    return axes


def _make_2d(k):
    """Zipped f[n1, n2, a1, a2, ...] -> f[n1 * a..., n2 * a...]."""
    order = tuple(range(0, k.ndim, 2)) + tuple(range(1, k.ndim, 2))
    k = jnp.transpose(k, order)
    half = k.ndim // 2
    return k.reshape(math.prod(k.shape[:half]), -1)


def _zip(x, n_lead: int = 0):
    """f[lead..., a1, a2, ..., b1, b2, ...] -> f[lead..., a1, b1, a2, b2, ...]."""
    half = (x.ndim - n_lead) // 2
    order = list(range(n_lead))
    for i in range(half):
        order += [n_lead + i, n_lead + half + i]
    return jnp.transpose(x, order)


def _regularize(k2d, diag_reg, absolute: bool):
    n = k2d.shape[0]
    scale = diag_reg if absolute else diag_reg * jnp.trace(k2d) / n
    return k2d + scale * jnp.eye(n, dtype=k2d.dtype)


def _to_rows(y, trace_axes):
    """y with trace axes moved last, flattened to f[rows, *trace_shape]."""
    last = tuple(range(-len(trace_axes), 0))
    y = jnp.moveaxis(y, trace_axes, last)
    return y.reshape((-1,) + y.shape[y.ndim - len(trace_axes):])


def _warn_fallback():
    warnings.warn(
        "jaxdl.predict: the regularised kernel is not numerically positive definite; "
        "solved with an eigendecomposition pseudo-inverse instead of Cholesky "
        "(consider diag_reg > 0)",
        RuntimeWarning,
        stacklevel=2,
    )


def _psd_solve(a, b):
    """``a^{-1} b`` for symmetric PSD ``a``: Cholesky, or (failing that) eigh pseudo-inverse."""
    chol = jnp.linalg.cholesky(a)
    x_chol = jax.scipy.linalg.cho_solve((chol, True), b)

    def pseudo_inverse():
        evals, evecs = jnp.linalg.eigh(a)
        cutoff = jnp.finfo(a.dtype).eps * a.shape[0] * jnp.max(jnp.abs(evals))
        inv = jnp.where(evals > cutoff, 1 / jnp.where(evals > cutoff, evals, 1), 0)
        return evecs @ (inv[:, None] * (evecs.T @ b))

    ok = jnp.all(jnp.isfinite(x_chol))
    try:
        concrete_ok = bool(ok)
    except jax.errors.ConcretizationTypeError:  # traced (under jit): decide on device
        def fallback(_):
            jax.debug.callback(_warn_fallback)
            return pseudo_inverse()

        return jax.lax.cond(ok, lambda _: x_chol, fallback, None)
    if concrete_ok:
        return x_chol
    _warn_fallback()
    return pseudo_inverse()


def _decay(evals, t, normalization):
    """``expm1(-max(lambda, 0) t / |Y|)``: f[T, N] for t: f[T, 1]."""
    return jnp.expm1(-jnp.maximum(evals, 0.0) * t / normalization)


def _decay_over_eval(evals, t, normalization):
    """``expm1(-lambda t / |Y|) / lambda``; 0 for eigenvalues <= 0 (no 0/0)."""
    positive = evals > 0
    return jnp.where(positive, _decay(evals, t, normalization) / jnp.where(positive, evals, 1.0), 0.0)


def _in_eigenbasis(evecs, coefficients, rows):
    """``V diag(c_t) V^T rows`` for every time: f[T, N, ...]."""
    return jnp.einsum("ji,ti,ki,k...->tj...", evecs, coefficients, evecs, rows)


def _check_prediction_inputs(name, fx_train_0, fx_test_0, k_test_train):
    if fx_train_0 is None and fx_test_0 is None:
        raise ValueError(f"{name}: both fx_train_0 and fx_test_0 are None, nothing to predict")
    if fx_test_0 is not None and k_test_train is None:
        raise ValueError(f"{name}: test predictions (fx_test_0 given) need k_test_train")


# --- gradient_descent_mse ---------------------------------------------------------------


def gradient_descent_mse(
    k_train_train,
    y_train,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes=(-1,),
):
    """Outputs of a linearised network trained by gradient flow on the MSE.

    Returns ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``
    giving ``fx_train_t`` (f[*t.shape, *y_train.shape]) and/or ``fx_test_t``.
    """
    name = "gradient_descent_mse"
    _check_kernel(name, k_train_train, y_train)
    y_train = jnp.asarray(y_train)
    trace_axes = _trace_axes(name, trace_axes, y_train, k_train_train)
    n_trace = len(trace_axes)
    last = tuple(range(-n_trace, 0))
    normalization = y_train.size
    k_paired = k_train_train.shape[1::2]  # n and the non-traced output axes

    @functools.cache
    def eigen():
        with jax.ensure_compile_time_eval():
            k2d = _regularize(_make_2d(k_train_train), diag_reg, diag_reg_absolute_scale)
            evals, evecs = jnp.linalg.eigh(k2d)
            return evals[None, :], evecs

    @functools.cache
    def regularized():
        with jax.ensure_compile_time_eval():
            return _regularize(_make_2d(k_train_train), diag_reg, diag_reg_absolute_scale)

    def predict_inf(fx_train_0, fx_test_0, k_test_train):
        fx_train_t = y_train.astype(k_train_train.dtype)
        if fx_test_0 is None:
            return fx_train_t
        residual = y_train if fx_train_0 is None else y_train - fx_train_0
        rows = _to_rows(jnp.broadcast_to(residual, y_train.shape), trace_axes)
        solved = _psd_solve(regularized(), rows.reshape(rows.shape[0], -1))
        solved = solved.reshape(k_paired + tuple(y_train.shape[a] for a in trace_axes))
        n_pair = len(k_paired)
        dfx_test = jnp.tensordot(k_test_train, solved, (tuple(range(1, 2 * n_pair, 2)),
                                                        tuple(range(n_pair))))
        dfx_test = jnp.moveaxis(dfx_test, last, trace_axes)
        fx_test_t = fx_test_0 + dfx_test
        return fx_test_t if fx_train_0 is None else (fx_train_t, fx_test_t)

    def predict_finite(t, fx_train_0, fx_test_0, k_test_train):
        t = jnp.asarray(t, dtype=k_train_train.dtype) * learning_rate
        t_shape = t.shape
        t = t.reshape(-1, 1)
        lead = tuple(range(len(t_shape)))
        residual = -y_train if fx_train_0 is None else fx_train_0 - y_train
        rows = _to_rows(jnp.broadcast_to(residual, y_train.shape), trace_axes)
        shape = t_shape + k_paired + tuple(y_train.shape[a] for a in trace_axes)
        evals, evecs = eigen()
        out = []
        if fx_train_0 is not None:
            dfx = _in_eigenbasis(evecs, _decay(evals, t, normalization), rows).reshape(shape)
            dfx = jnp.moveaxis(dfx, last, trace_axes)
            out.append(jnp.expand_dims(fx_train_0, lead) + dfx)
        if fx_test_0 is not None:
            weights = _in_eigenbasis(evecs, _decay_over_eval(evals, t, normalization), rows).reshape(shape)
            n_pair = len(k_paired)
            dfx = jnp.tensordot(k_test_train, weights,
                                (tuple(range(1, 2 * n_pair, 2)),
                                 tuple(range(len(t_shape), len(t_shape) + n_pair))))  # fmt: skip
            # [test paired..., t..., trace...] -> [t..., test..., trace in place]
            n_test = n_pair
            dfx = jnp.moveaxis(dfx, tuple(range(n_test, n_test + len(t_shape))), lead)
            dfx = jnp.moveaxis(dfx, last, trace_axes)
            out.append(jnp.expand_dims(fx_test_0, lead) + dfx)
        return out[0] if len(out) == 1 else tuple(out)

    def predict_fn(t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        _check_prediction_inputs(name, fx_train_0, fx_test_0, k_test_train)
        if t is None:
            return predict_inf(fx_train_0, fx_test_0, k_test_train)
        return predict_finite(t, fx_train_0, fx_test_0, k_test_train)

    return predict_fn


# --- gp_inference -------------------------------------------------------------------------


def _get(k, g: str):
    if hasattr(k, "shape"):
        return k
    value = getattr(k, g, None)
    if value is None:
        raise ValueError(f"gp_inference: the kernel has no {g!r} entry")
    return value


def _canonical_get(name, get, allowed):
    """``get`` as a tuple of lower-case names (NT accepts 'NTK', 'NNGP')."""
    get = canonical_get(get)
    names = allowed[:2] if get is None else ((get,) if isinstance(get, str) else tuple(get))
    for g in names:
        if g not in allowed:
            raise ValueError(f"{name}: expected get in {allowed}, got {g!r}")
    return names


def gp_inference(k_train_train, y_train, diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False,
                 trace_axes=(-1,)):
    """Exact GP posterior with the NNGP, the NTK, or the NTK-GP of Kernel objects.

    ``k_train_train``: an array or a namedtuple/``Kernel`` with ``nngp``/``ntk``.
    Returns ``predict_fn(get=None, k_test_train=None, k_test_test=None)``: means
    (train-set fit when ``k_test_train`` is None), or ``Gaussian(mean, covariance)``
    when ``k_test_test`` is given. The 'ntk' covariance is that of an ensemble of
    networks trained to convergence (Lee et al. 2019); 'ntkgp' the posterior of
    the GP with the NTK as prior covariance.
    """
    name = "gp_inference"
    y_train = jnp.asarray(y_train)
    first = k_train_train if hasattr(k_train_train, "shape") else next(
        v for v in (getattr(k_train_train, "nngp", None), getattr(k_train_train, "ntk", None))
        if v is not None
    )
    _check_kernel(name, first, y_train)
    trace_axes = _trace_axes(name, trace_axes, y_train, first)
    trace_shape = tuple(y_train.shape[a] for a in trace_axes)
    last = tuple(range(-len(trace_axes), 0))
    n_pair = first.ndim // 2

    @functools.cache
    def k2d(g):
        with jax.ensure_compile_time_eval():
            return _regularize(_make_2d(_get(k_train_train, g)), diag_reg, diag_reg_absolute_scale)

    def solve(g, b2d):
        return _psd_solve(k2d(g), b2d)

    @functools.cache
    def k_inv_y(g):
        with jax.ensure_compile_time_eval():
            rows = _to_rows(y_train, trace_axes)
            return solve(g, rows.reshape(rows.shape[0], -1))

    def predict_fn(get=None, k_test_train=None, k_test_test=None):
        names = _canonical_get(name, get, ("nngp", "ntk", "ntkgp"))
        out = {}
        for g in names:
            base = "ntk" if g == "ntkgp" else g
            if k_test_train is None:
                mean = y_train.astype(_get(k_train_train, base).dtype)
                if k_test_test is not None:
                    k_dd = _get(k_train_train, base)
                    out[g] = Gaussian(mean, jnp.zeros_like(k_dd))
                else:
                    out[g] = mean
                continue
            k_td = _get(k_test_train, base)
            test_paired = k_td.shape[::2]
            k_td2 = _make_2d(k_td)
            mean = (k_td2 @ k_inv_y(base)).reshape(test_paired + trace_shape)
            mean = jnp.moveaxis(mean, last, trace_axes)
            if k_test_test is None:
                out[g] = mean
                continue
            if g == "ntk" and (getattr(k_train_train, "nngp", None) is None
                               or getattr(k_test_train, "nngp", None) is None):
                raise ValueError(f"{name}: the 'ntk' posterior covariance needs both nngp and ntk "
                                 "in k_train_train and k_test_train")
            prior = "ntk" if g == "ntkgp" else "nngp"
            k_tt2 = _make_2d(_get(k_test_test, prior))
            k_td_prior_inv = solve(base, _make_2d(_get(k_test_train, prior)).T)  # K_dd^{-1} K_dt
            if g in ("nngp", "ntkgp"):
                cov = k_tt2 - k_td2 @ k_td_prior_inv
            else:
                term_1 = solve("ntk", k_td2.T)  # Theta_dd^{-1} Theta_dt
                cov = term_1.T @ _make_2d(_get(k_train_train, "nngp")) @ term_1
                term_2 = k_td2 @ k_td_prior_inv
                cov = k_tt2 + cov - term_2 - term_2.T
            cov = _zip(cov.reshape(test_paired * 2))
            out[g] = Gaussian(mean, cov)
        if isinstance(get, str):
            return out[names[0]]
        return namedtuple("Gaussians", names)(*(out[g] for g in names))

    return predict_fn


# --- gradient_descent_mse_ensemble ----------------------------------------------------------


def gradient_descent_mse_ensemble(
    kernel_fn,
    x_train,
    y_train,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes=(-1,),
    **kernel_fn_train_train_kwargs,
):
    """Mean and covariance of the outputs of an infinite ensemble of infinitely wide
    networks trained by gradient flow on the MSE, at any time ``t``.

    Returns ``predict_fn(t=None, x_test=None, get=None, compute_cov=False,
    **kernel_fn_test_test_kwargs)``: for each ``get`` in ``'nngp'`` (Bayesian
    training of the last layer only) / ``'ntk'`` the mean f[*t.shape, n_test, ...],
    or ``Gaussian(mean, covariance)`` if ``compute_cov``.

    Keyword arguments (NT's rule): ``kernel_fn_train_train_kwargs`` go to the
    train-train kernel as given and to the test-test kernel unless overridden
    by ``kernel_fn_test_test_kwargs``; for the test-train kernel a value given
    as a pair ``(for x1, for x2)`` in both (``pattern=(p, p)``) becomes
    ``(test value, train value)``, other arrays take the test value, and any
    other value must agree between the two.
    """
    name = "gradient_descent_mse_ensemble"
    y_train = jnp.asarray(y_train)
    if not callable(kernel_fn):
        raise TypeError(f"{name}: expected kernel_fn(x1, x2, get, **kwargs), got {type(kernel_fn).__name__}")
    trace_axes = _trace_axes(name, trace_axes, y_train, None)
    trace_shape = tuple(y_train.shape[a] for a in trace_axes)
    last = tuple(range(-len(trace_axes), 0))
    normalization = y_train.size
    y_rows = _to_rows(y_train, trace_axes)
    cache = {}

    def train_train(g):
        if g not in cache:
            with jax.ensure_compile_time_eval():
                cache[g] = kernel_fn(x_train, None, g, **kernel_fn_train_train_kwargs)
        return cache[g]

    @functools.cache
    def eigen(g):
        with jax.ensure_compile_time_eval():
            k2d = _regularize(_make_2d(train_train(g)), diag_reg, diag_reg_absolute_scale)
            evals, evecs = jnp.linalg.eigh(k2d)
            return evals[None, :], evecs

    def predict_fn(t=None, x_test=None, get=None, compute_cov: bool = False, **kernel_fn_test_test_kwargs):
        names = _canonical_get(name, get, ("nngp", "ntk"))
        needed = tuple(g for g in ("nngp", "ntk")
                       if g in names or (g == "nngp" and compute_cov))  # fmt: skip
        k_dd = {g: train_train(g) for g in needed}
        kwargs_td, kwargs_tt = _test_kwargs(name, kernel_fn_train_train_kwargs, kernel_fn_test_test_kwargs)
        k_td = None if x_test is None else {g: kernel_fn(x_test, x_train, g, **kwargs_td) for g in needed}
        nngp_tt = None
        if compute_cov and x_test is not None:
            nngp_tt = kernel_fn(x_test, None, "nngp", **kwargs_tt)

        if t is None:
            kernels = namedtuple("K", needed)(**k_dd)
            test = None if k_td is None else namedtuple("K", needed)(**k_td)
            gp = gp_inference(kernels, y_train, diag_reg, diag_reg_absolute_scale, trace_axes)
            if not compute_cov:
                result = gp(names, test, None)
            elif x_test is None:
                result = gp(names, None, k_dd["nngp"])
            else:
                result = gp(names, test, nngp_tt)
            return result[0] if isinstance(get, str) else result

        t = jnp.asarray(t) * learning_rate
        t_shape = t.shape
        t = t.reshape(-1, 1)
        out = {}
        for g in names:
            evals, evecs = eigen(g)
            reference = k_dd[g] if k_td is None else k_td[g]
            paired = reference.shape[::2]
            if k_td is None:
                mean = jnp.einsum("ji,ti,ki,k...->tj...", evecs, -_decay(evals, t, normalization),
                                  evecs, y_rows)
            else:
                ktd = _make_2d(k_td[g])
                mean = jnp.einsum("lj,ji,ti,ki,k...->tl...", ktd, evecs,
                                  -_decay_over_eval(evals, t, normalization), evecs, y_rows)
            mean = jnp.moveaxis(mean.reshape(t_shape + paired + trace_shape), last, trace_axes)
            if not compute_cov:
                out[g] = mean
                continue
            cov = _ensemble_covariance(g, evals, evecs, t, normalization, k_dd, k_td, nngp_tt)
            cov = _zip(cov.reshape(t_shape + paired * 2), len(t_shape))
            out[g] = Gaussian(mean, cov)
        if isinstance(get, str):
            return out[names[0]]
        return namedtuple("Gaussians", names)(*(out[g] for g in names))

    return predict_fn


def _is_pair(value) -> bool:
    return isinstance(value, tuple) and len(value) == 2


def _is_array_tree(value) -> bool:
    leaves = jax.tree.leaves(value)
    return bool(leaves) and all(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves)


def _test_kwargs(name, train_train: dict, test_test: dict):
    """Keyword arguments of the test-train and test-test kernels (NT's rule).

    Test-test: the train-train ones, overridden by ``test_test``. Test-train: a
    value given as a pair ``(for x1, for x2)`` in both becomes ``(test's x1 value,
    train's x1 value)``; another array value is the test one; any other value must
    be the same for train and test.
    """
    kwargs_td, kwargs_tt = dict(train_train), dict(train_train)
    for key, v_tt in test_test.items():
        kwargs_tt[key] = v_tt
        if key not in train_train:
            kwargs_td[key] = v_tt
            continue
        v_dd = train_train[key]
        if _is_array_tree(v_dd) and _is_array_tree(v_tt):
            kwargs_td[key] = (v_tt[0], v_dd[0]) if _is_pair(v_dd) and _is_pair(v_tt) else v_tt
        elif v_dd is v_tt or _same_value(v_dd, v_tt):
            kwargs_td[key] = v_tt
        else:
            raise ValueError(f"{name}: keyword argument {key!r} differs between the train-train "
                             f"({v_dd!r:.60}) and test-test ({v_tt!r:.60}) kernels; only arrays "
                             "(or (x1, x2) pairs of them) may differ")
    return kwargs_td, kwargs_tt


def _same_value(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values without a truth value for ==
        return False


def _ensemble_covariance(g, evals, evecs, t, normalization, k_dd, k_td, nngp_tt):
    """Covariance f[T, n, n] of the ensemble at times t (f[T, 1])."""
    nngp_dd = _make_2d(k_dd["nngp"])
    positive = jnp.maximum(evals, 0.0)
    if k_td is None:  # on the training set
        if g == "nngp":
            coefficient = positive * jnp.exp(-2 * positive * t / normalization)
            return jnp.einsum("ji,ti,ki->tjk", evecs, coefficient, evecs)
        decay = jnp.einsum("mi,ti,ki->tmk", evecs, jnp.exp(-positive * t / normalization), evecs)
        return jnp.einsum("tmk,kl,tnl->tmn", decay, nngp_dd, decay)
    ktd = _make_2d(k_td[g])
    nngp_tt2 = _make_2d(nngp_tt)[None]
    if g == "nngp":
        reduction = jnp.einsum("mj,ji,ti,ki,lk->tml", ktd, evecs,
                               -_decay_over_eval(evals, 2 * t, normalization), evecs, ktd)
        return nngp_tt2 - reduction
    weights = -_decay_over_eval(evals, t, normalization)
    term_1 = jnp.einsum("mi,ti,ki,lk->tml", evecs, weights, evecs, ktd)
    term_2 = jnp.einsum("mj,ji,ti,ki,lk->tml", ktd, evecs, weights, evecs, _make_2d(k_td["nngp"]))
    term_2 = term_2 + jnp.swapaxes(term_2, 1, 2)
    return jnp.einsum("tji,jk,tkl->til", term_1, nngp_dd, term_1) - term_2 + nngp_tt2


# --- gradient_descent (any loss) --------------------------------------------------------


def gradient_descent(loss, k_train_train, y_train, learning_rate: float = 1.0, momentum=None,
                     trace_axes=(-1,)):
    """Outputs of a linearised network trained by gradient flow (or momentum) on ``loss``.

    ``loss(fx, y_hat) -> scalar``. The ODE ``df/dt = -Theta grad_f L`` (with
    momentum: ``d^2f/dt^2 = -Theta grad_f L + (m - 1)/sqrt(lr) df/dt``, times
    in units of ``sqrt(lr)``) is integrated with ``jax.experimental.ode.odeint``.
    Returns ``predict_fn(t=None, fx_train_or_state_0=0., fx_test_0=None,
    k_test_train=None)``; pass an :class:`ODEState` to resume from a state.
    """
    name = "gradient_descent"
    if not callable(loss):
        raise TypeError(f"{name}: expected loss(fx, y_hat) -> scalar, got {type(loss).__name__}")
    _check_kernel(name, k_train_train, y_train)
    y_train = jnp.asarray(y_train)
    trace_axes = tuple(a % y_train.ndim for a in _trace_axes(name, trace_axes, y_train, k_train_train))
    non_traced = tuple(a for a in range(y_train.ndim) if a not in trace_axes)
    last = tuple(range(-len(trace_axes), 0))
    odd = tuple(range(1, k_train_train.ndim, 2))
    dtype = k_train_train.dtype
    grad_loss = jax.grad(lambda fx: loss(fx, y_train))
    if momentum is not None:
        learning_rate = learning_rate ** 0.5
        friction = (momentum - 1.0) / learning_rate

    def apply_kernel(k, g):
        return jnp.moveaxis(jnp.tensordot(k, g, (odd, non_traced)), last, trace_axes)

    def dynamics(k_test_train):
        def dstate_dt(state, _):
            g = grad_loss(state.fx_train)
            d_train = -apply_kernel(k_train_train, g)
            d_test = None if state.fx_test is None else -apply_kernel(k_test_train, g)
            if momentum is None:
                return ODEState(d_train, d_test)
            d_train = d_train + friction * state.qx_train
            if state.qx_test is not None:
                d_test = d_test + friction * state.qx_test
            return ODEState(state.qx_train, state.qx_test, d_train, d_test)

        return dstate_dt

    def test_shape(k_test_train):
        shape = list(k_test_train.shape[::2])
        for axis in trace_axes:
            shape.insert(axis, y_train.shape[axis])
        return tuple(shape)

    def initial_state(fx_train_or_state_0, fx_test_0, k_test_train):
        if isinstance(fx_train_or_state_0, ODEState):
            fx_train, fx_test, qx_train, qx_test = fx_train_or_state_0
        else:
            fx_train, fx_test, qx_train, qx_test = fx_train_or_state_0, fx_test_0, None, None
        fx_train = jnp.zeros(y_train.shape, dtype) if fx_train is None else \
            jnp.broadcast_to(jnp.asarray(fx_train, dtype), y_train.shape)
        if fx_test is not None:
            fx_test = jnp.broadcast_to(jnp.asarray(fx_test, dtype), test_shape(k_test_train))
        if momentum is None:
            if qx_train is not None or qx_test is not None:
                raise ValueError(f"{name}: got momentum state variables but momentum is None")
            return ODEState(fx_train, fx_test)
        qx_train = jnp.zeros(y_train.shape, dtype) if qx_train is None else \
            jnp.broadcast_to(qx_train, y_train.shape)
        if fx_test is not None:
            qx_test = jnp.zeros_like(fx_test) if qx_test is None else jnp.broadcast_to(qx_test, fx_test.shape)
        return ODEState(fx_train, fx_test, qx_train, qx_test)

    def predict_fn(t=None, fx_train_or_state_0=0.0, fx_test_0=None, k_test_train=None):
        is_state = isinstance(fx_train_or_state_0, ODEState)
        if is_state and fx_test_0 is not None:
            raise ValueError(f"{name}: fx_test_0 is part of the ODEState; pass fx_test_0=None")
        state_train = fx_train_or_state_0.fx_train if is_state else fx_train_or_state_0
        state_test = fx_train_or_state_0.fx_test if is_state else fx_test_0
        _check_prediction_inputs(name, state_train, state_test, k_test_train)
        t = jnp.asarray(jnp.inf if t is None else t, dtype) * learning_rate
        t_shape = t.shape
        t = t.reshape(-1)
        # odeint needs a strictly increasing grid starting at the initial time
        t0 = jnp.where(t[0] == 0, jnp.full((1,), -1e-24, dtype), jnp.zeros((1,), dtype))
        times = jnp.concatenate([t0, t])
        state_0 = initial_state(fx_train_or_state_0, fx_test_0, k_test_train)
        states = ode.odeint(dynamics(k_test_train), state_0, times)
        states = jax.tree.map(lambda x: x[1:].reshape(t_shape + x.shape[1:]), states)
        if is_state:
            return states
        if fx_test_0 is None:
            return states.fx_train
        if fx_train_or_state_0 is None:
            return states.fx_test
        return states.fx_train, states.fx_test

    return predict_fn


# --- max_learning_rate ---------------------------------------------------------------------


def max_learning_rate(ntk_train_train, y_train_size: int | None = None, momentum: float = 0.0,
                      eps: float = 1e-12) -> float:
    """Largest learning rate for which gradient descent on the MSE (loss normalised by
    ``y_train_size``, default ``n``) converges: ``2 (1 + momentum) y_train_size / lambda_max``."""
    name = "max_learning_rate"
    _check_kernel(name, ntk_train_train)
    k2d = _make_2d(ntk_train_train)
    factor = k2d.shape[0] if y_train_size is None else y_train_size
    max_eval = jnp.linalg.eigvalsh(k2d)[-1]
    return 2 * (1 + momentum) * factor / (max_eval + eps)
