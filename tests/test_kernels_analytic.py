"""Independent checks of jaxdl's analytic kernels (no neural-tangents involved).

* ReLU and Erf networks against hand-written numpy closed forms (arc-cosine and
  arcsine kernels, NNGP and NTK recursions of the seeds);
* every elementwise rule's E[phi phi] and E[phi' phi'] against scipy adaptive
  2-D quadrature (this also states the accuracy of the Tanh/Sigmoid/Softplus/Elu
  quadrature);
* Monte Carlo averages over wide finite networks built from the stax forward layers;
* float32 positive semi-definiteness at depth 100, finite values and gradients for
  identical, zero and collinear inputs, ``get`` semantics, error messages.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

import jaxdl.kernels as nt
from jaxdl import stax
from jaxdl.kernels import elementwise_rules

KEY = jax.random.key(0)


# --- closed forms (numpy, written from the formulas) -----------------------------


def _relu_mlp_reference(x1, x2, depth, W_std, b_std):
    """NNGP/NTK of depth x [Dense, Relu] + Dense (ntk parameterization), arc-cosine kernel."""
    d = x1.shape[1]
    q1 = W_std**2 * np.sum(x1**2, 1) / d + b_std**2
    q2 = W_std**2 * np.sum(x2**2, 1) / d + b_std**2
    k = W_std**2 * x1 @ x2.T / d + b_std**2
    ntk = k.copy()
    for _ in range(depth):
        norm = np.sqrt(np.outer(q1, q2))
        theta = np.arccos(np.clip(k / norm, -1, 1))
        k_new = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
        k_dot = (np.pi - theta) / (2 * np.pi)
        k = W_std**2 * k_new + b_std**2
        ntk = k + W_std**2 * k_dot * ntk
        q1, q2 = W_std**2 * q1 / 2 + b_std**2, W_std**2 * q2 / 2 + b_std**2
    return k, ntk


def _erf_mlp_reference(x1, x2, depth, W_std, b_std):
    """The same with Erf (Williams' arcsine kernel)."""
    d = x1.shape[1]
    q1 = W_std**2 * np.sum(x1**2, 1) / d + b_std**2
    q2 = W_std**2 * np.sum(x2**2, 1) / d + b_std**2
    k = W_std**2 * x1 @ x2.T / d + b_std**2
    ntk = k.copy()
    for _ in range(depth):
        denom = np.outer(1 + 2 * q1, 1 + 2 * q2)
        k_new = 2 / np.pi * np.arcsin(2 * k / np.sqrt(denom))
        k_dot = 4 / np.pi / np.sqrt(denom - 4 * k**2)
        k = W_std**2 * k_new + b_std**2
        ntk = k + W_std**2 * k_dot * ntk
        q1 = W_std**2 * 2 / np.pi * np.arcsin(2 * q1 / (1 + 2 * q1)) + b_std**2
        q2 = W_std**2 * 2 / np.pi * np.arcsin(2 * q2 / (1 + 2 * q2)) + b_std**2
    return k, ntk


@pytest.mark.parametrize("act, reference", [(stax.Relu, _relu_mlp_reference), (stax.Erf, _erf_mlp_reference)])
def test_mlp_matches_hand_written_closed_form(act, reference):
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(5, 7)), rng.normal(size=(4, 7))
    W_std, b_std, depth = 1.4, 0.3, 3
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(16, W_std, b_std), act()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std, b_std))
    with jax.enable_x64(True):
        out = kernel_fn(jnp.asarray(x1), jnp.asarray(x2), ("nngp", "ntk"))
        nngp_ref, ntk_ref = reference(x1, x2, depth, W_std, b_std)
        np.testing.assert_allclose(out.nngp, nngp_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out.ntk, ntk_ref, rtol=1e-10, atol=1e-12)


# --- every elementwise rule against 2-D quadrature -----------------------------------

_ACTIVATIONS = {
    "Relu": (elementwise_rules.ab_relu(0, 1), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "LeakyRelu": (elementwise_rules.ab_relu(0.2, 1), lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1, 0.2)),
    "Abs": (elementwise_rules.ab_relu(-1, 1), np.abs, np.sign),
    "Erf": (elementwise_rules.erf(1.0, 0.8, 0.0), lambda x: special.erf(0.8 * x), lambda x: 0.8 * 2 / math.sqrt(math.pi) * np.exp(-0.64 * x**2)),
    "Gelu": (elementwise_rules.gelu(), lambda x: x * special.ndtr(x), lambda x: special.ndtr(x) + x * np.exp(-x**2 / 2) / math.sqrt(2 * math.pi)),
    "Sin": (elementwise_rules.sin(1.0, 1.3, 0.4), lambda x: np.sin(1.3 * x + 0.4), lambda x: 1.3 * np.cos(1.3 * x + 0.4)),
    "Rbf": (elementwise_rules.rbf(0.7), lambda x: math.sqrt(2) * np.sin(math.sqrt(1.4) * x + math.pi / 4), lambda x: math.sqrt(2.8) * np.cos(math.sqrt(1.4) * x + math.pi / 4)),
    "Exp": (elementwise_rules.exp(1.0, 0.5), lambda x: np.exp(0.5 * x), lambda x: 0.5 * np.exp(0.5 * x)),
    "Gaussian": (elementwise_rules.gaussian(1.0, -0.7), lambda x: np.exp(-0.7 * x**2), lambda x: -1.4 * x * np.exp(-0.7 * x**2)),
    "Gabor": (elementwise_rules.gabor(), lambda x: np.exp(-x**2) * np.sin(x), lambda x: np.exp(-x**2) * (np.cos(x) - 2 * x * np.sin(x))),
    "Monomial3": (elementwise_rules.monomial(3), lambda x: x**3, lambda x: 3 * x**2),
    "RectifiedMonomial2": (elementwise_rules.rectified_monomial(2), lambda x: np.maximum(x, 0) ** 2, lambda x: 2 * np.maximum(x, 0)),
    "RectifiedMonomial4": (elementwise_rules.rectified_monomial(4), lambda x: np.maximum(x, 0) ** 4, lambda x: 4 * np.maximum(x, 0) ** 3),
    "Polynomial": (elementwise_rules.polynomial([0.3, -1.0, 0.5, 0.2]), lambda x: 0.3 - x + 0.5 * x**2 + 0.2 * x**3, lambda x: -1 + x + 0.6 * x**2),
    "Tanh": (elementwise_rules.numerical_activation("Tanh"), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "Sigmoid": (elementwise_rules.numerical_activation("Sigmoid"), special.expit, lambda x: special.expit(x) * (1 - special.expit(x))),
    "Softplus": (elementwise_rules.numerical_activation("Softplus"), lambda x: np.logaddexp(0, x), special.expit),
    "Elu": (elementwise_rules.numerical_activation("Elu", alpha=1.3), lambda x: np.where(x > 0, x, 1.3 * np.expm1(np.minimum(x, 0))), lambda x: np.where(x > 0, 1.0, 1.3 * np.exp(np.minimum(x, 0)))),
}
# (q1, q2, correlation) points: generic, negative, nearly collinear, collinear, large variance.
_POINTS = [(0.7, 1.3, 0.4), (1.1, 0.6, -0.7), (2.0, 2.0, 0.999), (1.5, 1.5, 1.0), (4.0, 3.0, 0.3)]


def _gaussian_expectation(f, g, q1, q2, rho):
    """E[f(u) g(v)] by scipy adaptive quadrature (split at 0 for kinks)."""
    s1, s2 = math.sqrt(q1), math.sqrt(q2)
    cond = math.sqrt(max(1 - rho**2, 0.0))
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    if cond < 1e-12:
        inner = lambda z: float(f(s1 * z) * g(s2 * z)) * phi(z)
        return sum(integrate.quad(inner, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)[0] for a, b in ((-14, 0), (0, 14)))

    def outer(z):
        m = s2 * rho * z
        h = lambda w: float(g(m + s2 * cond * w)) * phi(w)
        brk = -m / (s2 * cond)
        parts = [(-14, brk), (brk, 14)] if -14 < brk < 14 else [(-14, 14)]
        return float(f(s1 * z)) * phi(z) * sum(integrate.quad(h, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)[0] for a, b in parts)

    return sum(integrate.quad(outer, a, b, epsabs=1e-12, epsrel=1e-11, limit=200)[0] for a, b in ((-14, 0), (0, 14)))


# Absolute tolerance per activation: closed forms are exact; the quadrature rules are accurate
# to the stated figure (see jaxdl/kernels/quadrature.py) for variances up to 4.
_TOLERANCE = {"Tanh": 1e-7, "Sigmoid": 1e-7, "Softplus": 1e-7, "Elu": 1e-7}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_ACTIVATIONS))
def test_elementwise_rule_matches_quadrature(name):
    rule, f, df = _ACTIVATIONS[name]
    tol = _TOLERANCE.get(name, 1e-8)
    with jax.enable_x64(True):
        for q1, q2, rho in _POINTS:
            c = rho * math.sqrt(q1 * q2)
            value, dot = rule.cross(jnp.asarray(c), jnp.asarray(q1), jnp.asarray(q2), True)
            value = rule.scale * float(value) + rule.shift
            want = _gaussian_expectation(f, f, q1, q2, rho)
            want_dot = _gaussian_expectation(df, df, q1, q2, rho)
            scale = max(1.0, abs(want))
            assert abs(value - want) <= tol * scale, (name, q1, q2, rho, value, want)
            assert abs(rule.scale * float(dot) - want_dot) <= tol * max(1.0, abs(want_dot)), (name, q1, q2, rho)


@pytest.mark.parametrize("name", ["Relu", "Erf", "Gelu", "Tanh", "Elu"])
def test_elementwise_rule_matches_quadrature_fast(name):
    """One generic point per activation (the full grid is the slow test above)."""
    rule, f, df = _ACTIVATIONS[name]
    q1, q2, rho = _POINTS[0]
    with jax.enable_x64(True):
        value, dot = rule.cross(jnp.asarray(rho * math.sqrt(q1 * q2)), jnp.asarray(q1), jnp.asarray(q2), True)
        assert abs(rule.scale * float(value) + rule.shift - _gaussian_expectation(f, f, q1, q2, rho)) < 1e-7
        assert abs(rule.scale * float(dot) - _gaussian_expectation(df, df, q1, q2, rho)) < 1e-7


# --- Monte Carlo over wide finite networks -----------------------------------------


def _relative_error(estimate, exact):
    return float(jnp.max(jnp.abs(estimate - exact)) / jnp.max(jnp.abs(exact)))


def test_monte_carlo_mlp_nngp_and_ntk():
    x = jax.random.normal(KEY, (4, 6))
    hidden = [stax.Dense(1024, 1.5, 0.2), stax.Erf(), stax.Dense(1024, 1.5, 0.2), stax.Relu()]
    # NNGP: a wide readout averages over many i.i.d. outputs; NTK: one output suffices.
    init_fn, apply_fn, kernel_fn = stax.serial(*hidden, stax.Dense(2048, 1.2, 0.1))
    # Tolerances: a few Monte Carlo standard errors plus the O(1/width) bias, from the
    # spread over seeds (the exact checks are the closed forms and the NT fixtures).
    mc_nngp = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(1), 8)(x, None, "nngp")
    assert _relative_error(mc_nngp, kernel_fn(x, None, "nngp")) < 0.1
    init_fn, apply_fn, kernel_fn = stax.serial(*hidden, stax.Dense(1, 1.2, 0.1))
    mc_ntk = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(2), 4)(x, None, "ntk")
    assert _relative_error(mc_ntk, kernel_fn(x, None, "ntk")) < 0.1


def test_monte_carlo_standard_parameterization():
    x = jax.random.normal(KEY, (3, 5))
    hidden = [stax.Dense(1024, 1.3, 0.1, parameterization="standard"), stax.Relu()]
    init_fn, apply_fn, kernel_fn = stax.serial(*hidden, stax.Dense(2048, 1.3, 0.1, parameterization="standard"))
    mc_nngp = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(3), 8)(x, None, "nngp")
    assert _relative_error(mc_nngp, kernel_fn(x, None, "nngp")) < 0.12
    init_fn, apply_fn, kernel_fn = stax.serial(*hidden, stax.Dense(1, 1.3, 0.1, parameterization="standard"))
    mc_ntk = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(4), 8)(x, None, "ntk")
    assert _relative_error(mc_ntk, kernel_fn(x, None, "ntk")) < 0.12


@pytest.mark.parametrize("readout", ["flatten", "global_avg_pool"])
def test_monte_carlo_cnn_nngp(readout):
    x = jax.random.normal(KEY, (3, 5, 5, 2))
    pool = stax.Flatten() if readout == "flatten" else stax.GlobalAvgPool()
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Conv(256, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Relu(),
        stax.AvgPool((2, 2), padding="SAME") if readout != "flatten" else stax.Identity(),
        stax.Conv(256, (2, 2), padding="CIRCULAR", W_std=1.5), stax.Relu(), pool, stax.Dense(2048),
    )  # fmt: skip
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(5), 8)(x, None, "nngp")
    # 8 samples at width 256: the max-entry error is 0.03-0.08 over seeds (MC noise and
    # O(1/width) bias); a wrong rule (e.g. a missed pooling factor) is off by >= 20%.
    assert _relative_error(mc, kernel_fn(x, None, "nngp")) < 0.12


# --- numerical sturdiness ------------------------------------------------------------


def _min_eig_ratio(mat):
    eig = np.linalg.eigvalsh(np.asarray(mat, np.float64))
    return eig[0] / eig[-1]


@pytest.mark.parametrize("act", [stax.Relu, stax.Erf])
def test_float32_kernels_stay_psd_at_depth_100(act):
    x = jax.random.normal(KEY, (24, 10))
    x = x.at[1].set(x[0]).at[2].set(2.0 * x[0]).at[3].set(0.0)  # identical, collinear, zero rows
    W_std = math.sqrt(2.0) if act is stax.Relu else 1.5
    _, _, kernel_fn = stax.serial(stax.Dense(8, W_std, 0.05), stax.repeat(stax.serial(act(), stax.Dense(8, W_std, 0.05)), 100))
    out = kernel_fn(x, None, ("nngp", "ntk"))
    assert out.nngp.dtype == jnp.float32
    for mat in (out.nngp, out.ntk):
        assert np.all(np.isfinite(mat))
        assert _min_eig_ratio(mat) >= -1e-6
    # equal up to an ulp: the two are separate reductions, which XLA may order differently
    np.testing.assert_allclose(jnp.diagonal(out.nngp), kernel_fn(x, None, "cov1"), rtol=3e-7)


def test_degenerate_inputs_are_finite_with_finite_gradients():
    x = jnp.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -3.0]])
    _, _, kernel_fn = stax.serial(
        stax.Dense(8, 1.5), stax.Relu(), stax.Dense(8, 1.5), stax.Erf(), stax.Dense(8), stax.Sign(),
        stax.Dense(8), stax.Gelu(), stax.Dense(1),
    )  # fmt: skip
    out = kernel_fn(x, None, ("nngp", "ntk"))
    assert np.all(np.isfinite(out.nngp)) and np.all(np.isfinite(out.ntk))
    grad = jax.grad(lambda z: jnp.sum(kernel_fn(z, None, ("nngp", "ntk")).ntk))(x)
    assert np.all(np.isfinite(grad))
    grad2 = jax.grad(lambda z: jnp.sum(kernel_fn(z, x[::-1], "nngp")))(x)
    assert np.all(np.isfinite(grad2))


def test_gradient_matches_finite_differences():
    x1 = jax.random.normal(KEY, (3, 4))
    x2 = jax.random.normal(jax.random.key(5), (2, 4))
    _, _, kernel_fn = stax.serial(stax.Dense(8, 1.3, 0.2), stax.Relu(), stax.Dense(8, 1.3), stax.Tanh(), stax.Dense(1))
    with jax.enable_x64(True):
        x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
        f = lambda z: jnp.sum(kernel_fn(z, x2, "ntk") ** 2)
        grad = jax.grad(f)(x1)
        eps = 1e-6
        direction = jax.random.normal(jax.random.key(6), x1.shape, jnp.float64)
        fd = (f(x1 + eps * direction) - f(x1 - eps * direction)) / (2 * eps)
        np.testing.assert_allclose(jnp.vdot(grad, direction), fd, rtol=1e-6)


# --- API semantics --------------------------------------------------------------------


def test_get_semantics_and_kernel_pytree():
    x1, x2 = jax.random.normal(KEY, (3, 4)), jax.random.normal(jax.random.key(1), (2, 4))
    _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    kernel = kernel_fn(x1, x2)
    assert isinstance(kernel, nt.Kernel) and kernel.ntk.shape == (3, 2) and kernel.cov2.shape == (2,)
    assert kernel_fn(x1, x2, "nngp").shape == (3, 2)
    pair = kernel_fn(x1, x2, ("ntk", "nngp"))
    assert pair._fields == ("ntk", "nngp")
    np.testing.assert_allclose(pair.ntk, kernel.ntk, rtol=1e-6)
    assert kernel_fn(x1, x2, ("nngp",)).nngp.shape == (3, 2)
    # The NTK is only computed when asked for.
    _, _, hidden_fn = stax.serial(stax.Dense(8), stax.Relu())
    assert hidden_fn(x1, x2, "cov1").shape == (3,)
    leaves = jax.tree.leaves(kernel)
    assert any(leaf.shape == (3, 2) for leaf in leaves)
    # A Kernel goes back in: the top layer's kernel_fn applied to a hidden kernel.
    _, _, top_fn = stax.Dense(1)
    np.testing.assert_allclose(top_fn(kernel_fn(x1, x2))[0].nngp if False else top_fn(hidden_fn(x1, x2)).nngp,
                               stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))[2](x1, x2, "nngp"), rtol=1e-6)
    with pytest.raises(ValueError, match="get"):
        kernel_fn(x1, x2, "bogus")


def test_x1_is_x2_ties_the_diagonal():
    x = jax.random.normal(KEY, (6, 5))
    _, _, kernel_fn = stax.serial(stax.Dense(8, 1.5, 0.1), stax.Erf(), stax.Dense(8), stax.Relu(), stax.Dense(1))
    kernel = kernel_fn(x)
    np.testing.assert_array_equal(jnp.diagonal(kernel.nngp), kernel.cov1)
    assert kernel.cov2 is None and bool(kernel.x1_is_x2)


WITHOUT_CLOSED_FORM = [
    stax.MaxPool((2, 2)),
    stax.Softmax(),
    stax.Maxout(2),
    stax.Dense(4, parameterization="standard", W_init=stax.initializers.he_normal()),
    stax.GlobalSelfAttention(4, 4, 4, 2, linear_scaling=False),  # softmax of 1/sqrt(d)-scaled logits
]


@pytest.mark.parametrize("layer", WITHOUT_CLOSED_FORM, ids=lambda layer: layer.spec.kind)
def test_layers_without_closed_form_raise(layer):
    x = jax.random.normal(KEY, (2, 4, 4, 3))
    _, _, kernel_fn = stax.serial(stax.Conv(4, (2, 2)), layer)
    with pytest.raises(NotImplementedError, match=f"^{layer.spec.kind}: "):
        kernel_fn(x, None, "nngp")
    with pytest.raises(NotImplementedError, match=f"^{layer.spec.kind}: "):  # the layer's own kernel_fn
        layer.kernel(x, None, ("nngp", "ntk"))


def test_bad_inputs_raise_clear_errors():
    _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu())
    with pytest.raises(ValueError, match="rank"):
        kernel_fn(jnp.ones(3))
    with pytest.raises(ValueError, match="agree"):
        kernel_fn(jnp.ones((3, 4)), jnp.ones((2, 5)))
    with pytest.raises(TypeError, match="unexpected"):
        kernel_fn(jnp.ones((3, 4)), None, "nngp", bogus=1)
