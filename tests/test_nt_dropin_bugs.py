"""neural-tangents drop-in bugs (issue 22, items 1, 6 and 11), each checked against
behaviour derived independently of the code under test.

* RectifiedMonomial: the forward pass is NT's ``(x >= 0) * x**degree`` (a step for
  degree 0), and the analytic NNGP/NTK agree with Monte Carlo estimates built from
  that forward pass (Gaussian pre-activations sampled directly, and wide random
  networks through ``monte_carlo_kernel_fn``).
* Second derivatives of ``kernel_fn`` through the kernel diagonal (the two inputs
  coincide): ``jax.hessian`` against central finite differences of ``jax.grad``,
  and the second-order Taylor remainder shrinking like eps^3 on and off the diagonal.
* ``get`` is case-insensitive; ``Conv`` with ``filter_shape=()`` is a Dense on the
  channel axis; ``ExpNormalized`` takes NT's argument types.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdl.kernels as nt
from jaxdl import stax

# --- item 1: RectifiedMonomial ------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_rectified_monomial_forward_is_nt_step_times_power(degree):
    _, apply_fn, _ = stax.RectifiedMonomial(degree)
    x = np.array([-3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 2.5], np.float32)
    expected = np.where(x >= 0, 1.0, 0.0) * x.astype(np.float64) ** degree
    np.testing.assert_allclose(np.asarray(apply_fn({}, jnp.asarray(x))), expected, rtol=1e-6)


def _dense_covariance(x, W_std, b_std):
    """Pre-activation covariance of Dense(W_std, b_std) on inputs x (closed form)."""
    return W_std**2 * x @ x.T / x.shape[1] + b_std**2


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_rectified_monomial_kernel_matches_monte_carlo_of_its_forward_pass(degree):
    """NNGP/NTK of Dense -> RectifiedMonomial -> Dense against sampled Gaussian
    pre-activations pushed through the layer's own apply_fn (and its derivative)."""
    W1, b1, W2, b2 = 1.3, 0.2, 0.9, 0.1
    layer = stax.RectifiedMonomial(degree)
    _, _, kernel_fn = stax.serial(stax.Dense(7, W1, b1), layer, stax.Dense(1, W2, b2))
    with jax.enable_x64(True):
        x1 = jax.random.normal(jax.random.key(1), (3, 4), jnp.float64)
        x2 = jax.random.normal(jax.random.key(2), (2, 4), jnp.float64)
        analytic = kernel_fn(x1, x2, ("nngp", "ntk"))
        self_analytic = kernel_fn(x1, None, "nngp")

        x = np.concatenate([np.asarray(x1), np.asarray(x2)])
        sigma = _dense_covariance(x, W1, b1)  # also the first layer's NTK
        n_samples = 200_000
        z = jax.random.normal(jax.random.key(3), (n_samples, len(x)), jnp.float64) @ np.linalg.cholesky(sigma).T
        phi = layer.apply({}, z)
        dphi = jax.jvp(lambda u: layer.apply({}, u), (z,), (jnp.ones_like(z),))[1]  # elementwise derivative

    def mean_and_error(a, b):
        products = np.asarray(a)[:, :, None] * np.asarray(b)[:, None, :]
        return products.mean(0), products.std(0) / math.sqrt(n_samples)

    e_phi, se_phi = mean_and_error(phi, phi)
    e_dphi, se_dphi = mean_and_error(dphi, dphi)
    nngp = W2**2 * e_phi + b2**2
    ntk = nngp + W2**2 * e_dphi * sigma
    se_ntk = W2**2 * np.sqrt(se_phi**2 + (se_dphi * sigma) ** 2)
    cross = np.s_[:3, 3:]
    tolerance = lambda se: 5 * se + 1e-9  # noqa: E731  (5 standard errors)
    assert np.all(np.abs(np.asarray(analytic.nngp) - nngp[cross]) <= tolerance(W2**2 * se_phi[cross]))
    assert np.all(np.abs(np.asarray(analytic.ntk) - ntk[cross]) <= tolerance(se_ntk[cross]))
    self_block = np.s_[:3, :3]
    assert np.all(np.abs(np.asarray(self_analytic) - nngp[self_block]) <= tolerance(W2**2 * se_phi[self_block]))
    if degree == 0:  # the step has derivative 0 almost everywhere: no hidden-layer NTK term
        np.testing.assert_array_equal(np.asarray(dphi), 0.0)
        np.testing.assert_allclose(analytic.ntk, analytic.nngp, rtol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_rectified_monomial_analytic_ntk_matches_wide_network_monte_carlo(degree):
    """monte_carlo_kernel_fn of a wide network (the NT user's check) agrees with kernel_fn."""
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(2048, W_std=1.2, b_std=0.1), stax.RectifiedMonomial(degree), stax.Dense(1, b_std=0.1)
    )
    x1 = jnp.cos(jax.random.normal(jax.random.key(4), (3, 2)))
    x2 = jnp.cos(jax.random.normal(jax.random.key(5), (2, 2)))
    mc_kernel_fn = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(6), 8, device_count=0)
    mc = mc_kernel_fn(x1, x2, "ntk")
    analytic = kernel_fn(x1, x2, "ntk")
    relative = float(jnp.linalg.norm(mc - analytic) / jnp.linalg.norm(analytic))
    assert relative < (0.05 if degree < 3 else 0.1), relative  # cubes: heavy-tailed products


# --- item 6: second derivatives through the kernel diagonal ------------------------

_SMOOTH = {"Erf": lambda: stax.Erf(1.2, 0.8, 0.1), "Gelu": stax.Gelu}


def _network(activation, depth):
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(3, W_std=1.4, b_std=0.3), activation()]
    return stax.serial(*layers, stax.Dense(1, W_std=0.9, b_std=0.2)).kernel


def _points():
    x = jax.random.normal(jax.random.key(10), (2, 4), jnp.float64)
    other = jax.random.normal(jax.random.key(11), (2, 4), jnp.float64)
    return x, other


def _scalar_kernels(kernel_fn, get):
    """Scalar functions of the first input batch ``a`` (evaluated at ``a = x``).

    ``x2_fixed``/``both``/``x2_none``: an entry where the two inputs coincide (the
    kernel diagonal), with x2 held fixed, x2 moving along, or x2 omitted;
    ``off_diagonal``: two different inputs.
    """
    x, other = _points()
    cases = {
        "x2_fixed": lambda a: kernel_fn(a, x, get)[0, 0],
        "both": lambda a: kernel_fn(a, a, get)[1, 1],
        "x2_none": lambda a: kernel_fn(a, None, get)[0, 0],
        "off_diagonal": lambda a: kernel_fn(a, other, get)[0, 1],
    }
    return x, cases


def _second_order_errors(f, x, h=1e-5, epsilons=(1e-2, 5e-3, 2.5e-3)):
    """(error of jax.hessian(f) against central differences of jax.grad(f), relative
    to max(1, max |hessian|): kernel entries are O(1); second-order Taylor
    remainders along a random direction)."""
    v = jax.random.normal(jax.random.key(12), x.shape, x.dtype)
    steps = h * jnp.eye(x.size, dtype=x.dtype).reshape((x.size,) + x.shape)
    eps = jnp.asarray(epsilons, x.dtype)

    @jax.jit  # one compilation for everything
    def evaluate(x):
        hessian = jax.hessian(f)(x).reshape(x.size, x.size)
        grads = jax.vmap(jax.grad(f))(jnp.concatenate([x + steps, x - steps])).reshape(2, x.size, x.size)
        slope = jnp.vdot(jax.grad(f)(x), v)
        curvature = jnp.vdot(v, jax.jvp(jax.grad(f), (x,), (v,))[1])
        values = jax.vmap(lambda e: f(x + e * v))(eps)
        remainders = jnp.abs(values - f(x) - eps * slope - eps**2 / 2 * curvature)
        return hessian, (grads[0] - grads[1]).T / (2 * h), remainders

    hessian, fd, remainders = (np.asarray(a) for a in evaluate(x))
    return np.abs(hessian - fd).max() / max(np.abs(hessian).max(), 1.0), remainders


def _cubic(remainders) -> bool:
    """Each halving of eps divides the remainder by ~8 (a wrong Hessian leaves ~4);
    a remainder at rounding level means the function is exactly quadratic there
    (e.g. an arc-cosine kernel's own diagonal, ``(a^2 + b^2)/2 * q``)."""
    if max(remainders) < 1e-13:
        return True
    return all(a / b > 6.5 for a, b in zip(remainders[:-1], remainders[1:]))


_CASES = ["x2_fixed", "both", "x2_none", "off_diagonal"]


def _slow_unless(condition):
    return () if condition else (pytest.mark.slow,)


@pytest.mark.parametrize(
    "name,get,case",
    [pytest.param(n, g, c, marks=_slow_unless(g == "nngp" and c == "x2_fixed"))
     for n in sorted(_SMOOTH) for g in ("nngp", "ntk") for c in _CASES],  # fmt: skip
)
def test_smooth_kernel_second_derivatives_through_the_diagonal(name, get, case):
    """Erf and Gelu kernels are smooth in (c, q1, q2): Hessians agree with finite
    differences to 1e-6 and Taylor remainders are cubic, on and off the diagonal."""
    with jax.enable_x64(True):
        x, cases = _scalar_kernels(_network(_SMOOTH[name], depth=2), get)
        error, remainders = _second_order_errors(cases[case], x)
    assert error < 1e-6, error
    assert _cubic(remainders), remainders


_RELU_FAMILY = {"Relu": stax.Relu, "LeakyRelu": lambda: stax.LeakyRelu(0.2), "Abs": stax.Abs}


@pytest.mark.parametrize(
    "name,case",
    [pytest.param(n, c, marks=_slow_unless(n == "Relu" and c == "x2_fixed"))
     for n in sorted(_RELU_FAMILY) for c in _CASES],  # fmt: skip
)
def test_relu_family_nngp_second_derivatives_through_the_diagonal(name, case):
    """The arc-cosine NNGP is C^2 but not C^3 at correlation 1 (a |perpendicular|^3
    term): its Hessian exists on the diagonal and the Taylor remainder is cubic
    there too (finite differences of the gradient are only O(h) accurate: a looser
    tolerance; with x2 fixed the NNGP is c/2 plus that cubic term, a zero Hessian). Its NTK factor (pi - angle) has a kink at correlation 1, so the NTK
    is not differentiable on the diagonal: see the next test."""
    with jax.enable_x64(True):
        x, cases = _scalar_kernels(_network(_RELU_FAMILY[name], depth=1), "nngp")
        error, remainders = _second_order_errors(cases[case], x)
    assert error < 1e-4, error
    assert _cubic(remainders), remainders


@pytest.mark.slow
def test_relu_ntk_second_derivatives_off_the_diagonal():
    with jax.enable_x64(True):
        x, cases = _scalar_kernels(_network(stax.Relu, depth=1), "ntk")
        error, remainders = _second_order_errors(cases["off_diagonal"], x)
        grad = jax.grad(cases["x2_fixed"])(x)  # on the kink: still a finite (one-sided) gradient
    assert error < 1e-6, error
    assert _cubic(remainders), remainders
    assert np.all(np.isfinite(np.asarray(grad)))


# --- item 11: get, Conv(filter_shape=()), ExpNormalized -----------------------------


def test_analytic_kernel_fn_get_is_case_insensitive():
    _, _, kernel_fn = stax.serial(stax.Dense(4, b_std=0.1), stax.Erf(), stax.Dense(1))
    x1 = jax.random.normal(jax.random.key(20), (3, 5))
    x2 = jax.random.normal(jax.random.key(21), (2, 5))
    reference = kernel_fn(x1, x2)
    np.testing.assert_array_equal(kernel_fn(x1, x2, "NTK"), reference.ntk)
    np.testing.assert_array_equal(kernel_fn(x1, x2, "Nngp"), reference.nngp)
    both = kernel_fn(x1, x2, ("NNGP", "ntk"))
    assert both._fields == ("nngp", "ntk")
    np.testing.assert_array_equal(both.nngp, reference.nngp)
    np.testing.assert_array_equal(both.ntk, reference.ntk)
    with pytest.raises(ValueError, match="expected `get`"):
        kernel_fn(x1, x2, "NTKK")


def test_empirical_and_monte_carlo_get_is_case_insensitive():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
    x1 = jax.random.normal(jax.random.key(22), (3, 5))
    x2 = jax.random.normal(jax.random.key(23), (2, 5))
    _, params = init_fn(jax.random.key(24), x1.shape)
    empirical = nt.empirical_kernel_fn(apply_fn)
    np.testing.assert_allclose(empirical(x1, x2, "NTK", params), empirical(x1, x2, "ntk", params), rtol=1e-6)
    upper = empirical(x1, x2, ("NNGP", "NTK"), params)
    assert upper._fields == ("nngp", "ntk")
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(25), 2, device_count=0)
    np.testing.assert_allclose(mc(x1, x2, "NNGP"), mc(x1, x2, "nngp"), rtol=1e-6)
    batched = nt.batch(stax.serial(stax.Dense(4), stax.Relu()).kernel, batch_size=1, device_count=0)
    np.testing.assert_allclose(batched(x1, x2, "NTK"), batched(x1, x2, "ntk"), rtol=1e-6)


def test_predict_get_is_case_insensitive():
    _, _, kernel_fn = stax.serial(stax.Dense(4, b_std=0.1), stax.Relu(), stax.Dense(1))
    x_train = jax.random.normal(jax.random.key(26), (4, 3))
    y_train = jax.random.normal(jax.random.key(27), (4, 1))
    x_test = jax.random.normal(jax.random.key(28), (2, 3))
    predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, diag_reg=1e-3)
    np.testing.assert_allclose(predict_fn(1.0, x_test, "NTK"), predict_fn(1.0, x_test, "ntk"), rtol=1e-6)
    k_train_train = kernel_fn(x_train, None, "nngp")
    k_test_train = kernel_fn(x_test, x_train, "nngp")
    gp = nt.predict.gp_inference(k_train_train, y_train, diag_reg=1e-3)
    np.testing.assert_allclose(gp("NNGP", k_test_train), gp("nngp", k_test_train), rtol=1e-6)


@pytest.mark.parametrize("kind", ["Conv", "ConvTranspose", "ConvLocal"])
def test_conv_without_spatial_axes_is_a_dense_on_channels(kind):
    conv = getattr(stax, kind)
    x1 = jax.random.normal(jax.random.key(30), (3, 5))
    x2 = jax.random.normal(jax.random.key(31), (2, 5))
    layer = conv(4, (), W_std=1.3, b_std=0.2)
    out_shape, params = layer.init(jax.random.key(32), x1.shape)
    assert out_shape == (3, 4)
    # forward: NTK parameterisation of a dense map on the channel axis (closed form)
    expected = 1.3 / math.sqrt(5) * x1 @ params["W"].reshape(5, 4) + 0.2 * params["b"].reshape(1, 4)
    np.testing.assert_allclose(layer.apply(params, x1), expected, rtol=1e-5, atol=1e-6)
    # kernel: identical to the Dense network's
    _, _, k_conv = stax.serial(conv(4, (), W_std=1.3, b_std=0.2), stax.Relu(), conv(1, ()))
    _, _, k_dense = stax.serial(stax.Dense(4, W_std=1.3, b_std=0.2), stax.Relu(), stax.Dense(1))
    a, b = k_conv(x1, x2, ("nngp", "ntk")), k_dense(x1, x2, ("nngp", "ntk"))
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-6)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-6)


@pytest.mark.parametrize("shift", [True, False, 1, np.float32(0.5), jnp.asarray(-0.25), np.array(-1.0)])
def test_exp_normalized_takes_nt_argument_types(shift):
    """NT's own tests call ``ExpNormalized(gamma, do_clip)``, i.e. pass a bool as
    ``shift``; any real scalar works and means its float value."""
    gamma = 0.7
    _, _, kernel_fn = stax.serial(stax.Dense(3), stax.ExpNormalized(gamma, shift))
    x1 = jax.random.normal(jax.random.key(33), (3, 4))
    x2 = jax.random.normal(jax.random.key(34), (2, 4))
    # closed form: |x||x'| exp(gamma (cos(x, x') + shift)) of the Dense layer's covariances
    c = x1 @ x2.T / 4
    s = jnp.sqrt(jnp.sum(x1**2, 1)[:, None] * jnp.sum(x2**2, 1)[None, :]) / 4
    expected = s * jnp.exp(gamma * (c / s + float(shift)))
    np.testing.assert_allclose(kernel_fn(x1, x2, "nngp"), expected, rtol=1e-5)


@pytest.mark.parametrize("bad", ["1", None, np.ones(2), 1j])
def test_exp_normalized_rejects_non_scalars(bad):
    with pytest.raises(TypeError, match="^ExpNormalized: expected shift"):
        stax.ExpNormalized(1.0, bad)
