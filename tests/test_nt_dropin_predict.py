"""`jaxdl.predict` as a neural-tangents drop-in (issue 22, item 13), float64.

* N-d outputs with `trace_axes` beyond the last axis, including the batch axis
  and repeated axes (NT accepts `(0, 0, -3)`): a kernel `K` over the non-traced
  axes with `trace_axes` means the full kernel `K ⊗ I` over all output axes, so
  every prediction must equal the one made from that expanded kernel with
  `trace_axes=()` (built here by hand with `np.kron`).
* `gradient_descent_mse_ensemble` keyword arguments: pairs `(for x1, for x2)`
  given for train-train and test-test are recombined into `(test, train)` for the
  test-train kernel; the reference calls `kernel_fn` with the right pairs
  explicitly and uses `gp_inference` / `gradient_descent_mse`.
* `get` in upper case.
"""

import itertools
from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import predict

pytestmark = pytest.mark.usefixtures("x64")

N_TRAIN, N_TEST = 4, 4  # equal: with the batch axis traced, test i pairs with train i
Y_SHAPE = (N_TRAIN, 3, 2)
KK = namedtuple("KK", "nngp ntk")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _zip(k):
    """f[a1.., b1..] -> f[a1, b1, a2, b2, ...]."""
    half = k.ndim // 2
    return np.transpose(k, [i for pair in zip(range(half), range(half, 2 * half)) for i in pair])


def _kernels(traced, seed):
    """Small kernels over the non-traced axes (train-train, test-train, test-test) and
    the same kernels expanded by a Kronecker delta over the traced axes."""
    rng = np.random.default_rng(seed)
    free = [a for a in range(3) if a not in traced]
    shape = lambda n: (n,) + Y_SHAPE[1:]  # noqa: E731
    sizes = {"train": N_TRAIN, "test": N_TEST}
    feats = {name: rng.normal(size=[shape(n)[a] for a in free] + [7]) for name, n in sizes.items()}
    feats["test"] = feats["test"] + 0.5 * feats["train"]  # correlated test and train points

    def small(a, b):
        return _zip(np.tensordot(feats[a], feats[b], axes=(-1, -1)))

    def full(k_small, n1, n2):
        s1, s2 = shape(n1), shape(n2)
        k2d = np.asarray(k_small)
        h = k2d.ndim // 2
        k2d = np.transpose(k2d, list(range(0, 2 * h, 2)) + list(range(1, 2 * h, 2)))
        free1, free2 = [s1[a] for a in free], [s2[a] for a in free]
        k2d = k2d.reshape(int(np.prod(free1)), int(np.prod(free2)))
        t_shape = [s1[a] for a in traced]
        big = np.kron(k2d, np.eye(int(np.prod(t_shape))))  # axes: free..., traced...
        big = big.reshape(free1 + t_shape + free2 + t_shape)
        order = free + list(traced)
        perm = [order.index(a) for a in range(3)]
        return _zip(np.transpose(big, perm + [3 + p for p in perm]))

    out = {}
    for a, b in (("train", "train"), ("test", "train"), ("test", "test")):
        k = small(a, b)
        out[a + b] = (jnp.asarray(k), jnp.asarray(full(k, N_TRAIN, N_TRAIN)))
    return out


TRACE_AXES = [
    pytest.param(axes, id=str(axes), marks=() if axes in ((1, 2), (0, 0, -2)) else pytest.mark.slow)
    for axes in [(-1,), (1,), (1, 2), (0, 1), (0, -1), (0, 0, -2), (0, 1, 2), ()]
]  # default run: one case without and one with the batch axis traced


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-10)


def _traced_diagonal(cov_full, traced, n_lead=0):
    """The full covariance f[lead, m, m', a, a', b, b'] at traced indices (0, 0)."""
    index = [slice(None)] * cov_full.ndim
    for axis in traced:
        index[n_lead + 2 * axis] = index[n_lead + 2 * axis + 1] = 0
    return cov_full[tuple(index)]


@pytest.mark.parametrize("trace_axes", TRACE_AXES)
def test_traced_nd_outputs_equal_the_delta_expanded_kernel(trace_axes):
    traced = tuple(sorted({a % 3 for a in trace_axes}))
    kernels = _kernels(traced, seed=len(trace_axes) + 3 * sum(traced))
    rng = np.random.default_rng(1)
    y = jnp.asarray(rng.normal(size=Y_SHAPE))
    fx_train_0 = jnp.asarray(rng.normal(size=Y_SHAPE))
    fx_test_0 = jnp.asarray(rng.normal(size=(N_TEST,) + Y_SHAPE[1:]))
    (dd, dd_full), (td, td_full), (tt, tt_full) = kernels["traintrain"], kernels["testtrain"], kernels["testtest"]
    ts = jnp.arange(6.0).reshape(2, 3) / 4

    # closed-form MSE dynamics, finite and infinite time, train and test
    for t in (ts, None):
        got = predict.gradient_descent_mse(dd, y, diag_reg=1e-2, trace_axes=trace_axes)(t, fx_train_0, fx_test_0, td)
        want = predict.gradient_descent_mse(dd_full, y, diag_reg=1e-2, trace_axes=())(t, fx_train_0, fx_test_0,
                                                                                     td_full)  # fmt: skip
        t_shape = () if t is None else ts.shape
        assert got[1].shape == t_shape + fx_test_0.shape
        for a, b in zip(got, want):
            _close(a, b)

    # ODE dynamics with the MSE loss
    loss = lambda fx, y_hat: 0.5 * jnp.sum((fx - y_hat) ** 2)  # noqa: E731
    got = predict.gradient_descent(loss, dd, y, trace_axes=trace_axes)(ts[0], fx_train_0, fx_test_0, td)
    want = predict.gradient_descent(loss, dd_full, y, trace_axes=())(ts[0], fx_train_0, fx_test_0, td_full)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)

    # exact GP posterior: means and covariances (the covariance over the traced axes is I)
    got = predict.gp_inference(KK(dd, 2 * dd), y, 1e-2, trace_axes=trace_axes)(
        None, KK(td, 2 * td), KK(tt, 2 * tt))
    want = predict.gp_inference(KK(dd_full, 2 * dd_full), y, 1e-2, trace_axes=())(
        None, KK(td_full, 2 * td_full), KK(tt_full, 2 * tt_full))
    for g_got, g_want in zip(got, want):
        _close(g_got.mean, g_want.mean)
        _close(g_got.covariance, _traced_diagonal(g_want.covariance, traced))

    # the ensemble, from kernel functions returning the small / the expanded kernels
    def kernel_fn(which):
        def fn(x1, x2, get, **kwargs):
            key = "traintrain" if x1 is X_TRAIN else ("testtest" if x2 is None else "testtrain")
            k = kernels[key][which]
            return KK(k, 2 * k) if not isinstance(get, str) else (k if get == "nngp" else 2 * k)

        return fn

    for t in (None, ts):
        got = predict.gradient_descent_mse_ensemble(kernel_fn(0), X_TRAIN, y, diag_reg=1e-2,
                                                    trace_axes=trace_axes)(t, X_TEST, None, True)  # fmt: skip
        want = predict.gradient_descent_mse_ensemble(kernel_fn(1), X_TRAIN, y, diag_reg=1e-2,
                                                     trace_axes=())(t, X_TEST, None, True)  # fmt: skip
        n_lead = 0 if t is None else 2
        for g_got, g_want in zip(got, want):
            _close(g_got.mean, g_want.mean)
            _close(g_got.covariance, _traced_diagonal(g_want.covariance, traced, n_lead))


X_TRAIN = jnp.zeros((N_TRAIN, 1))
X_TEST = jnp.ones((N_TEST, 1))


def _pattern_kernel_fn(x1, x2=None, get=None, pattern=None, scale=1.0):
    """A kernel that needs per-input keyword arguments: k(i, j) = p1_i p2_j exp(-|x1_i - x2_j|^2) * scale."""
    p1, p2 = pattern
    x2 = x1 if x2 is None else x2
    p2 = p1 if p2 is None else p2
    rbf = jnp.exp(-jnp.sum((x1[:, None] - x2[None]) ** 2, -1))
    nngp = scale * p1[:, None] * p2[None] * rbf
    out = KK(nngp, 3 * nngp + scale * rbf)
    if isinstance(get, str):
        return getattr(out, get.lower())
    return out


def test_ensemble_rebuilds_test_train_keyword_pairs():
    rng = np.random.default_rng(2)
    x_train, x_test = jnp.asarray(rng.normal(size=(6, 2))), jnp.asarray(rng.normal(size=(3, 2)))
    p_train, p_test = jnp.asarray(rng.uniform(1, 2, 6)), jnp.asarray(rng.uniform(1, 2, 3))
    y = jnp.asarray(rng.normal(size=(6, 2)))
    kw_dd = dict(pattern=(p_train, p_train), scale=1.5)
    kw_tt = dict(pattern=(p_test, p_test), scale=1.5)
    k_dd = _pattern_kernel_fn(x_train, None, None, **kw_dd)
    k_td = _pattern_kernel_fn(x_test, x_train, None, pattern=(p_test, p_train), scale=1.5)
    k_tt = _pattern_kernel_fn(x_test, None, None, **kw_tt)

    ensemble = predict.gradient_descent_mse_ensemble(_pattern_kernel_fn, x_train, y, diag_reg=1e-3, **kw_dd)
    got = ensemble(None, x_test, None, True, **kw_tt)
    want = predict.gp_inference(k_dd, y, diag_reg=1e-3)(None, k_td, k_tt.nngp)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        _close(a, b)
    for g, t in itertools.product(("nngp", "NTK"), (0.5, 2.0)):
        mse = predict.gradient_descent_mse(getattr(k_dd, g.lower()), y, diag_reg=1e-3)
        _close(ensemble(t, x_test, g, False, **kw_tt),
               mse(t, None, 0.0, getattr(k_td, g.lower())))


def test_ensemble_rejects_different_non_array_keyword_values():
    x = jnp.ones((3, 2))
    p = jnp.ones(3)
    ensemble = predict.gradient_descent_mse_ensemble(_pattern_kernel_fn, x, jnp.ones((3, 1)),
                                                     pattern=(p, p), scale=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="gradient_descent_mse_ensemble: keyword argument 'scale'"):
        ensemble(None, x, "nngp", pattern=(p, p), scale=2.0)


def test_get_is_case_insensitive():
    rng = np.random.default_rng(3)
    x_train, x_test = jnp.asarray(rng.normal(size=(5, 2))), jnp.asarray(rng.normal(size=(2, 2)))
    y = jnp.asarray(rng.normal(size=(5, 1)))
    p_train, p_test = jnp.ones(5), jnp.ones(2)
    ensemble = predict.gradient_descent_mse_ensemble(_pattern_kernel_fn, x_train, y, diag_reg=1e-3,
                                                     pattern=(p_train, p_train))  # fmt: skip
    for upper, lower in (("NTK", "ntk"), ("NNGP", "nngp")):
        _close(ensemble(1.0, x_test, upper, pattern=(p_test, p_test)),
               ensemble(1.0, x_test, lower, pattern=(p_test, p_test)))
    k_dd = _pattern_kernel_fn(x_train, None, None, pattern=(p_train, None))
    k_td = _pattern_kernel_fn(x_test, x_train, None, pattern=(p_test, p_train))
    gp = predict.gp_inference(k_dd, y, diag_reg=1e-3)
    _close(gp("NTKGP", k_td), gp("ntkgp", k_td))
