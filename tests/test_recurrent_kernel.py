"""The infinite-width NNGP and NTK of ``SimpleRNN`` (:mod:`jaxdl.kernels.recurrent_rules`).

Checked against (1) Monte Carlo averages of the empirical kernels of wide finite
RNNs, with tolerances from the samples' own standard errors; (2) closed forms
built from the existing Dense/activation rules: one step is ``Dense -> phi``, and
two steps are the hand-unrolled network ``phi(W phi(U x_1 + b) + U' x_2 + b')``
(untied weights: at infinite width the shared weights' cross-step gradient terms
vanish, which the Monte Carlo tests confirm on the tied network).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.kernels.empirical import empirical_kernel_fn
from jaxdl.stax.recurrent import SimpleRNN

X1 = jax.random.normal(jax.random.key(0), (3, 4, 5))
X2 = jax.random.normal(jax.random.key(1), (2, 4, 5))
ACTIVATIONS = {"erf": (stax.Erf, 1.5), "relu": (stax.Relu, 1.0)}  # (activation, W_std)


def _rnn(activation: str, hidden=256, return_sequences=False, parameterization="ntk", W_std=None):
    act, default_W_std = ACTIVATIONS[activation]
    W_std = default_W_std if W_std is None else W_std
    return SimpleRNN(hidden, act(), W_std=W_std, U_std=0.9, b_std=0.3,
                     return_sequences=return_sequences, parameterization=parameterization)  # fmt: skip


def _samples(model, get, n_samples, key, chunk=32):
    """Per-initialisation empirical kernels ``f[n_samples, ...]`` (traced over the
    outputs), ``chunk`` initialisations at a time under ``vmap``."""
    empirical = empirical_kernel_fn(model.apply)

    def one(sample_key):
        _, params = model.init(sample_key, X1.shape)
        return empirical(X1, X2, get, params)

    chunk = min(chunk, n_samples)
    many = jax.jit(jax.vmap(one))
    keys = jax.random.split(key, n_samples).reshape(n_samples // chunk, chunk)
    return np.concatenate([np.asarray(many(k)) for k in keys])


def _check_monte_carlo(samples, exact, bias=0.01):
    """|MC mean - exact| <= 4 standard errors + the finite-width bias allowance ``bias``
    (relative to the kernel's scale). Returns the measured errors: the largest
    |error| / standard error, |error| / scale and standard error / scale."""
    exact = np.asarray(exact)
    mean = samples.mean(0)
    standard_error = samples.std(0, ddof=1) / np.sqrt(len(samples))
    scale = np.abs(exact).max()
    assert standard_error.max() < 0.02 * scale  # the check resolves a few percent of the kernel
    np.testing.assert_array_less(np.abs(mean - exact), 4 * standard_error + bias * scale)
    error = np.abs(mean - exact)
    return {"z": float((error / standard_error).max()), "error": float(error.max() / scale),
            "standard_error": float(standard_error.max() / scale)}  # fmt: skip


def _monte_carlo_case(activation, return_sequences, parameterization="ntk", hidden=256, n_nngp=256, n_ntk=128,
                      readout_nngp=False):  # fmt: skip
    """The kernels against wide finite RNNs: the NNGP of the layer's output (traced over
    its hidden units; Dense read-outs only add noise to that estimate) and the NTK of
    ``serial(SimpleRNN, Dense(1))``. At hidden=256 one initialisation's NNGP is off by
    ~12% of the kernel's scale and its NTK by ~15%, so 256 resp. 128 samples give
    standard errors below 1.5%; the finite-width bias, O(1/hidden), measured below
    0.7% (hidden 128...1024, 512-2048 samples), is allowed 1%.
    ``readout_nngp``: also check the NNGP of ``serial(SimpleRNN, Dense(128))``.
    """
    rnn = lambda: _rnn(activation, hidden, return_sequences, parameterization)
    readout = lambda n: stax.Dense(n, W_std=1.1, b_std=0.2, parameterization=parameterization)
    model = stax.serial(rnn(), readout(1))
    exact_rnn = rnn().kernel(X1, X2)
    exact = readout(1).kernel(exact_rnn)  # = model.kernel(X1, X2), without compiling the RNN twice
    n_time = X1.shape[1]
    want_shape = (3, 2, n_time, n_time) if return_sequences else (3, 2)
    assert exact.nngp.shape == exact.ntk.shape == want_shape
    keys = jax.random.split(jax.random.key(7), 3)
    out = {
        "nngp": _check_monte_carlo(_samples(rnn(), "nngp", n_nngp, keys[0]), exact_rnn.nngp),
        "ntk": _check_monte_carlo(_samples(model, "ntk", n_ntk, keys[1]), exact.ntk),
    }
    if readout_nngp:
        wide = stax.serial(rnn(), readout(128))
        out["readout_nngp"] = _check_monte_carlo(_samples(wide, "nngp", 4 * n_nngp, keys[2]), exact.nngp)
    return out


def test_kernels_match_monte_carlo_over_wide_rnns():
    _monte_carlo_case("erf", return_sequences=True)  # every (t, t') pair, off-diagonal ones included


@pytest.mark.slow
@pytest.mark.parametrize("activation, return_sequences", [("relu", False), ("relu", True), ("erf", False)])
def test_kernels_match_monte_carlo_other_activations_and_read_outs(activation, return_sequences):
    _monte_carlo_case(activation, return_sequences)


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("activation, return_sequences", [("erf", False), ("relu", True), ("erf", True)])
def test_kernels_match_monte_carlo_wider(activation, return_sequences, parameterization):
    _monte_carlo_case(activation, return_sequences, parameterization, hidden=512, n_nngp=256, n_ntk=256,
                      readout_nngp=True)  # fmt: skip


# --- closed forms from the existing rules ----------------------------------------------


def _assert_kernels_equal(got, want, rtol=1e-10):
    for name in ("nngp", "ntk", "cov1", "cov2"):
        a, b = getattr(got, name), getattr(want, name)
        if b is None:
            assert a is None, name
            continue
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("activation, parameterization", [
    ("erf", "ntk"), ("relu", "standard"),
    pytest.param("erf", "standard", marks=pytest.mark.slow), pytest.param("relu", "ntk", marks=pytest.mark.slow),
])  # fmt: skip
def test_one_step_is_dense_then_activation(activation, parameterization):
    act, _ = ACTIVATIONS[activation]
    pre = lambda: [stax.Dense(7, W_std=1.3, b_std=0.2, parameterization=parameterization), stax.Relu()]
    x1, x2 = X1[:, :1], X2[:, :1]
    with jax.enable_x64(True):
        x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
        rnn = _rnn(activation, 64, True, parameterization)
        dense = stax.Dense(64, W_std=0.9, b_std=0.3, parameterization=parameterization)
        # the RNN's input carries an NTK of its own (a layer before it)
        got = stax.serial(*pre(), rnn).kernel(x1, x2)
        want = stax.serial(*pre(), dense, act()).kernel(x1, x2, diagonal_spatial=False)
        assert got.nngp.shape == (3, 2, 1, 1)
        _assert_kernels_equal(got, want)


@pytest.mark.parametrize("activation, parameterization", [
    ("erf", "standard"), ("relu", "ntk"),
    pytest.param("erf", "ntk", marks=pytest.mark.slow), pytest.param("relu", "standard", marks=pytest.mark.slow),
])  # fmt: skip
def test_two_steps_are_the_unrolled_network(activation, parameterization):
    act, W_std = ACTIVATIONS[activation]
    p = parameterization
    step_one = stax.serial(stax.Dense(64, W_std=0.9, b_std=0.3, parameterization=p), act(),
                           stax.Dense(64, W_std=W_std, b_std=None, parameterization=p))  # fmt: skip
    step_two = stax.Dense(64, W_std=0.9, b_std=0.3, parameterization=p)
    unrolled = stax.serial(stax.parallel(step_one, step_two), stax.FanInSum(), act())
    with jax.enable_x64(True):
        x1, x2 = X1[:, :2].astype(jnp.float64), X2[:, :2].astype(jnp.float64)
        got = _rnn(activation, 64, False, p).kernel(x1, x2)
        want = unrolled.kernel([x1[:, 0], x1[:, 1]], [x2[:, 0], x2[:, 1]])
        _assert_kernels_equal(got, want)


# --- structure ------------------------------------------------------------------------


def test_jit_symmetry_and_positive_semidefiniteness_in_the_chaotic_phase():
    # Erf with W_std = 2.5 is chaotic: rounding errors grow along the recursion
    model = stax.serial(SimpleRNN(64, stax.Erf(), W_std=2.5, U_std=1.0, b_std=0.1, return_sequences=True),
                        stax.Dense(1))  # fmt: skip
    x = jax.random.normal(jax.random.key(3), (4, 12, 3))
    x = x.at[1].set(x[0]).at[2].set(2 * x[0])  # identical and collinear sequences
    with jax.enable_x64(True):
        x = x.astype(jnp.float64)
        eager = model.kernel(x)
        jitted = jax.jit(lambda a: model.kernel(a))(x)
        both = model.kernel(x, x)  # the x2-given path computes cov1 and cov2 separately
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(getattr(jitted, name), getattr(eager, name), rtol=1e-12)
        mat = np.asarray(getattr(eager, name)).transpose(0, 2, 1, 3).reshape(48, 48)  # (sample, time) pairs
        assert np.all(np.isfinite(mat))
        np.testing.assert_allclose(mat, mat.T, rtol=1e-12, atol=1e-14)
        assert np.linalg.eigvalsh(mat).min() >= -1e-9 * np.abs(mat).max()
        np.testing.assert_allclose(getattr(both, name), getattr(eager, name), rtol=1e-10)
    np.testing.assert_allclose(both.cov1, both.cov2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(eager.nngp)[0], np.asarray(eager.nngp)[1], rtol=1e-12)
    diagonal = jnp.moveaxis(jnp.diagonal(eager.nngp, axis1=0, axis2=1), -1, 0)
    np.testing.assert_array_equal(eager.cov1, diagonal)  # cov1 is exactly nngp's batch diagonal
    assert eager.cov1.shape == both.cov2.shape == (4, 12, 12) and eager.shape1 == (4, 12, 1)


# --- bad requests ---------------------------------------------------------------------


def test_diagonal_spatial_is_refused_naming_simple_rnn():
    rnn = _rnn("erf", 16, True)
    with pytest.raises(ValueError, match="SimpleRNN.kernel_fn: diagonal_spatial=True"):
        rnn.kernel(X1, X2, diagonal_spatial=True)
    diagonal_input = stax.Identity().kernel(X1, X2, diagonal_spatial=True)
    with pytest.raises(ValueError, match="SimpleRNN: requires full spatial covariances"):
        rnn.kernel(diagonal_input)


def test_inputs_without_a_time_axis_are_refused():
    with pytest.raises(ValueError, match=r"SimpleRNN: expected inputs of shape \(batch, time, features\)"):
        _rnn("relu", 16).kernel(X1[:, 0], X2[:, 0])


def test_masked_inputs_are_refused():
    x = X1.at[0, -1].set(0.0)
    with pytest.raises(NotImplementedError, match="SimpleRNN: no infinite-width kernel for masked inputs"):
        _rnn("erf", 16).kernel(x, None, "nngp", mask_constant=0.0)


def test_activation_without_a_kernel_rule_is_refused():
    from jaxdl.kernels.analytic import kernel_fn_from_spec

    spec = _rnn("erf", 16).spec
    bad = spec.__class__(spec.kind, spec.hyper, children=(stax.Softmax().spec,))
    with pytest.raises(NotImplementedError, match="SimpleRNN: no infinite-width kernel for the activation"):
        kernel_fn_from_spec(bad)(X1, None, "nngp")
