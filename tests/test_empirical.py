"""Empirical kernels, structured derivatives, linearize / taylor_expand (float64).

References: a brute-force NTK ``J J^T`` from the flattened Jacobian
(``jax.flatten_util.ravel_pytree`` + ``jax.jacfwd``, forward mode, so
independent of the reverse-mode code under test) reduced with numpy, the
outer-product definition of the NNGP, exact Taylor polynomials of
polynomials, and agreement of the three NTK implementations.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxdl import stax
from jaxdl.kernels import structured
from jaxdl.kernels.empirical import (
    NtkImplementation,
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
    empirical_ntk_vp_fn,
    linearize,
    taylor_expand,
)

IMPLEMENTATIONS = list(NtkImplementation)


def _brute_force_ntk(f, params, x1, x2, trace_axes, diagonal_axes, jit=True):
    """NT's definition, with numpy: full J J^T, then trace (averaged) / diagonal."""
    flat, unravel = ravel_pytree(params)
    jacobian = lambda p, x: jax.jacfwd(lambda q: f(unravel(q), x))(p)
    jacobian = jax.jit(jacobian) if jit else jacobian
    j1, j2 = np.asarray(jacobian(flat, x1)), np.asarray(jacobian(flat, x2))
    full = np.tensordot(j1, j2, (-1, -1))  # [out1..., out2...]
    ndim = j1.ndim - 1
    trace = sorted(a % ndim for a in trace_axes)
    diag = sorted(a % ndim for a in diagonal_axes)
    letters = "abcdefghijklmnop"
    l1, l2, out = [], [], []
    for axis in range(ndim):
        a, b = letters[2 * axis], letters[2 * axis + 1]
        if axis in trace or axis in diag:
            b = a
            if axis in diag:
                out.append(a)
        else:
            out += [a, b]
        l1.append(a)
        l2.append(b)
    size = np.prod([j1.shape[a] for a in trace]) if trace else 1
    return np.einsum(f"{''.join(l1)}{''.join(l2)}->{''.join(out)}", full) / size


def _mlp():
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(6, W_std=1.3, b_std=0.2), stax.Erf(), stax.Dense(5, b_std=0.1), stax.Relu(),
        stax.Dense(3, parameterization="standard", b_std=0.3),
    )  # fmt: skip
    _, params = init_fn(jax.random.key(1), (-1, 4))
    k1, k2 = jax.random.split(jax.random.key(2))
    return apply_fn, params, jax.random.normal(k1, (5, 4)), jax.random.normal(k2, (3, 4))


def _cnn():
    init_fn, apply_fn, _ = stax.serial(
        stax.Conv(3, (2, 2), strides=(2, 1), padding="SAME", b_std=0.1), stax.Relu(),
        stax.Conv(2, (3, 2), padding="VALID"), stax.Flatten(),
        stax.Dense(3, b_std=0.2),
    )  # fmt: skip
    _, params = init_fn(jax.random.key(3), (-1, 6, 5, 2))
    k1, k2 = jax.random.split(jax.random.key(4))
    return apply_fn, params, jax.random.normal(k1, (3, 6, 5, 2)), jax.random.normal(k2, (2, 6, 5, 2))


def _jnp_models():
    """Plain functions exercising the structure finder: weights on the left of a
    product, scaled/transposed/reshaped weights, a shared weight, a multi-axis output,
    an NCHW dilated convolution, a jitted inner function."""
    keys = jax.random.split(jax.random.key(5), 8)
    x1 = jax.random.normal(keys[0], (4, 3))
    x2 = jax.random.normal(keys[1], (2, 3))

    def left_product(p, x):
        h = jnp.tanh(p["W"] @ x.T)  # weight as lhs
        return (-(2.0 * p["V"]).T @ h).T / 3.0

    def shared(p, x):
        h = jnp.sin(x @ p["W"])
        return h @ p["W"].T @ p["U"]  # W used twice: Jacobian-contraction fallback

    def reshaped(p, x):
        w = p["W"].reshape(3, 4)
        h = jax.jit(jnp.tanh)(x @ w)
        return jnp.einsum("nd,dkc->nkc", h, p["V"])

    def conv_nchw(p, x):
        img = x.reshape(x.shape[0], 1, 3, 1) * jnp.ones((1, 2, 1, 4))
        y = lax.conv_general_dilated(img, p["K"], (1, 2), [(1, 0), (2, 1)], lhs_dilation=(2, 1),
                                     rhs_dilation=(1, 2), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jnp.cos(y).reshape(y.shape[0], -1) @ p["U"]

    conv_features = 3 * 5 * 3  # O x H x W of the convolution's output
    params = {
        "left_product": {"W": jax.random.normal(keys[2], (5, 3)), "V": jax.random.normal(keys[3], (5, 2))},
        "shared": {"W": jax.random.normal(keys[2], (3, 4)), "U": jax.random.normal(keys[4], (3, 2))},
        "reshaped": {"W": jax.random.normal(keys[5], (12,)), "V": jax.random.normal(keys[6], (4, 3, 2))},
        "conv_nchw": {"K": jax.random.normal(keys[7], (3, 2, 2, 2)),
                      "U": jax.random.normal(keys[4], (conv_features, 2)) / 4},
    }
    fns = {"left_product": left_product, "shared": shared, "reshaped": reshaped, "conv_nchw": conv_nchw}
    return {name: (fns[name], params[name], x1, x2) for name in fns}


@functools.cache
def _models():
    """float32 models (tests cast to float64 where they need it)."""
    models = {"mlp": _mlp(), "cnn": _cnn(), **_jnp_models()}
    return jax.tree.map(lambda a: a.astype(jnp.float32) if hasattr(a, "astype") else a, models)


AXES = [((), ()), ((-1,), (0,)), ((-1,), ()), ((), (-1,))]
MODELS = ["mlp", "cnn", "left_product", "shared", "reshaped", "conv_nchw"]
# Default run: AUTO, full blocks (plus one traced/diagonal variant on two models; the
# fixtures cover every implementation and axis variant);
# `-m slow` runs every implementation on every variant.
GRID = [
    pytest.param(model, axes, impl, id=f"{model}-trace{axes[0]}-diag{axes[1]}-{impl.name}",
                 marks=() if impl == NtkImplementation.AUTO and (axes == AXES[0] or (
                     axes == AXES[1] and model in ("mlp", "conv_nchw"))) else pytest.mark.slow)
    for model in MODELS for axes in AXES for impl in IMPLEMENTATIONS
]  # fmt: skip


@pytest.mark.parametrize("model, axes, implementation", GRID)
def test_ntk_equals_brute_force(model, axes, implementation):
    trace_axes, diagonal_axes = axes
    with jax.enable_x64(True):
        fn, params, x1, x2 = _models()[model]
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
        if 0 in diagonal_axes:
            x2 = x1 + 0.5
        expected = _brute_force_ntk(fn, params, x1, x2, trace_axes, diagonal_axes)
        for vmap_axes in (None, 0):
            ntk_fn = jax.jit(empirical_ntk_fn(fn, trace_axes, diagonal_axes, vmap_axes, implementation))
            got = np.asarray(ntk_fn(x1, x2, params))
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10,
                                       err_msg=f"vmap_axes={vmap_axes}")


@pytest.mark.filterwarnings("ignore:empirical_ntk_fn. structured derivatives failed")
def test_pooling_model_is_exact_under_every_implementation():
    """AvgPool after a Conv: whether or not the re-traced program differentiates,
    every implementation returns the brute-force NTK."""
    with jax.enable_x64(True):
        init_fn, apply_fn, _ = stax.serial(stax.Conv(2, (2, 2)), stax.Relu(), stax.AvgPool((2, 2)),
                                           stax.Flatten(), stax.Dense(2))  # fmt: skip
        _, params = init_fn(jax.random.key(0), (-1, 3, 3, 1))
        x1 = jax.random.normal(jax.random.key(1), (2, 3, 3, 1), jnp.float64)
        x2 = jax.random.normal(jax.random.key(2), (2, 3, 3, 1), jnp.float64)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        expected = _brute_force_ntk(apply_fn, params, x1, x2, (), (), jit=False)  # see report
        got = empirical_ntk_fn(apply_fn, (), (), 0, NtkImplementation.AUTO)(x1, x2, params)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_structure_is_found_for_dense_and_conv_weights():
    """The stax MLP's and CNN's weights (not biases) and the plain functions' product
    weights use structured derivatives; the shared weight does not."""
    expected = {"mlp": 3, "cnn": 3, "left_product": 2, "shared": 1, "reshaped": 2, "conv_nchw": 2}
    for name, (fn, params, x1, _) in _models().items():
        leaves, treedef = jax.tree.flatten(params)

        def flat(ls, xs, fn=fn, treedef=treedef):
            return jax.tree.leaves(fn(jax.tree.unflatten(treedef, ls), xs[0]))

        plan = structured.analyze(flat, leaves, [x1])
        assert len(plan.targets) == expected[name], name


def test_jit_x2_none_and_pytree_outputs():
    with jax.enable_x64(True):
        fn, params, x1, _ = _mlp()
        two_heads = lambda p, x: {"logits": fn(p, x), "square": fn(p, x) ** 2}
        ntk_fn = jax.jit(empirical_ntk_fn(two_heads, trace_axes=(), vmap_axes=0))
        result = ntk_fn(x1, None, params)
        for head in ("logits", "square"):
            single = lambda p, x, head=head: two_heads(p, x)[head]
            expected = _brute_force_ntk(single, params, x1, x1, (), ())
            np.testing.assert_allclose(result[head], expected, rtol=1e-10, atol=1e-10)


def test_keyword_arguments_reach_f():
    with jax.enable_x64(True):
        fn, params, x1, x2 = _mlp()
        scaled = lambda p, x, scale=1.0: scale * fn(p, x)
        for implementation in (NtkImplementation.AUTO, NtkImplementation.NTK_VECTOR_PRODUCTS):
            ntk_fn = jax.jit(empirical_ntk_fn(scaled, implementation=implementation))
            base = ntk_fn(x1, x2, params)
            np.testing.assert_allclose(ntk_fn(x1, x2, params, scale=3.0), 9 * base, rtol=1e-12)


def test_nngp_is_output_outer_product():
    with jax.enable_x64(True):
        fn, params, x1, x2 = _cnn()
        f1, f2 = np.asarray(fn(params, x1)), np.asarray(fn(params, x2))
        np.testing.assert_allclose(empirical_nngp_fn(fn)(x1, x2, params), f1 @ f2.T / f1.shape[1],
                                   rtol=1e-12)  # fmt: skip
        full = empirical_nngp_fn(fn, trace_axes=())(x1, x2, params)
        np.testing.assert_allclose(full, np.einsum("ik,jl->ijkl", f1, f2), rtol=1e-12)


def test_kernel_fn_get_variants():
    with jax.enable_x64(True):
        fn, params, x1, x2 = _mlp()
        kernel_fn = jax.jit(empirical_kernel_fn(fn), static_argnums=2)
        both = kernel_fn(x1, x2, None, params)
        assert both._fields == ("nngp", "ntk")
        np.testing.assert_allclose(kernel_fn(x1, x2, "ntk", params), both.ntk)
        np.testing.assert_allclose(kernel_fn(x1, x2, ("nngp",), params).nngp, both.nngp)
        with pytest.raises(ValueError, match="empirical_kernel_fn"):
            kernel_fn(x1, x2, "cov1", params)


def test_ntk_vector_product_equals_ntk_times_vector():
    with jax.enable_x64(True):
        fn, params, x1, x2 = _mlp()
        cotangents = jax.random.normal(jax.random.key(7), fn(params, x2).shape, jnp.float64)
        ntk = jax.jit(empirical_ntk_fn(fn, trace_axes=(), vmap_axes=0))(x1, x2, params)  # [n1, n2, k1, k2]
        expected = np.einsum("ijkl,jl->ik", ntk, cotangents)
        ntk_vp_fn = jax.jit(empirical_ntk_vp_fn(fn, x1, x2, params))
        np.testing.assert_allclose(ntk_vp_fn(cotangents), expected, rtol=1e-10)


def test_linearize_and_taylor_expand_are_exact_on_polynomials():
    """For a cubic in the parameters, the degree-3 expansion is exact, the linear one
    equals f + J dp (J by forward differences of f at tiny steps is avoided: the
    quadratic term of the degree-2 expansion is checked against the exact Hessian)."""
    with jax.enable_x64(True):
        f = lambda p, x: (p["a"] ** 3) * x + p["b"] * p["a"] * x**2
        params = {"a": jnp.array(0.7), "b": jnp.array(-1.2)}
        new = {"a": jnp.array(1.1), "b": jnp.array(0.4)}
        x = jnp.linspace(-1.0, 1.0, 5)
        da, db = 0.4, 1.6
        a, b = 0.7, -1.2
        np.testing.assert_allclose(taylor_expand(f, params, 3)(new, x), f(new, x), rtol=1e-12)
        linear = f(params, x) + (3 * a**2 * da) * x + (b * da + a * db) * x**2
        np.testing.assert_allclose(linearize(f, params)(new, x), linear, rtol=1e-12)
        np.testing.assert_allclose(taylor_expand(f, params, 1)(new, x), linear, rtol=1e-12)
        quadratic = linear + 0.5 * (6 * a * da**2 * x + 2 * da * db * x**2)
        np.testing.assert_allclose(taylor_expand(f, params, 2)(new, x), quadratic, rtol=1e-12)
        np.testing.assert_allclose(taylor_expand(f, params, 0)(new, x), f(params, x), rtol=1e-12)


def test_float32_default_and_no_warnings():
    fn, params, x1, x2 = _mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ntk = jax.jit(empirical_ntk_fn(fn, vmap_axes=0))(x1, x2, params)
    assert ntk.dtype == jnp.float32 and ntk.shape == (5, 3)
    reference = jax.jit(empirical_ntk_fn(fn, implementation=1))(x1, x2, params)
    np.testing.assert_allclose(ntk, reference, rtol=1e-4, atol=1e-5)


def test_bad_input_raises_clearly():
    fn, params, x1, x2 = _mlp()
    with pytest.raises(TypeError, match="empirical_ntk_fn"):
        empirical_ntk_fn("not a function")
    with pytest.raises(ValueError, match="empirical_ntk_fn: expected implementation"):
        empirical_ntk_fn(fn, implementation=7)
    with pytest.raises(TypeError, match="vmap_axes"):
        empirical_ntk_fn(fn, vmap_axes="batch")
    with pytest.raises(ValueError, match="do not fit an output of rank 2"):
        empirical_ntk_fn(fn, trace_axes=(3,))(x1, x2, params)
    with pytest.raises(ValueError, match="both trace_axes"):
        empirical_nngp_fn(fn, trace_axes=(-1,), diagonal_axes=(1,))(x1, x2, params)
    with pytest.raises(ValueError, match="must agree on traced/diagonal axis 0"):
        empirical_ntk_fn(fn, diagonal_axes=(0,))(x1, x2, params)
    with pytest.raises(ValueError, match="taylor_expand"):
        taylor_expand(fn, params, -1)


# --- neural-tangents drop-in (issue 22): zero-size outputs, pytree vmap_axes ------------------


def _biased(out_features):
    """f(x) = tanh(x W + b)[:, :out_features]: a weight (structured) and a bias (Jacobian)."""
    params = {"w": jax.random.normal(jax.random.key(3), (3, 4), jnp.float64),
              "b": jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float64)}  # fmt: skip

    def f(p, x):
        return jnp.tanh(x @ p["w"] + p["b"])[:, :out_features]

    return f, params


@pytest.mark.parametrize("vmap_axes, implementation", [
    pytest.param(v, i, marks=() if v is None or i == 1 else pytest.mark.slow)
    for v in (None, 0) for i in IMPLEMENTATIONS
])  # fmt: skip
def test_zero_size_outputs_give_empty_kernels(implementation, vmap_axes):
    with jax.enable_x64(True):
        x1 = jax.random.normal(jax.random.key(0), (5, 3), jnp.float64)
        x2 = jax.random.normal(jax.random.key(1), (2, 3), jnp.float64)
        f, params = _biased(0)  # outputs f[n, 0]
        for trace_axes, shape in (((), (5, 2, 0, 0)), ((-1,), (5, 2))):
            ntk = empirical_ntk_fn(f, trace_axes, (), vmap_axes, implementation)(x1, x2, params)
            assert ntk.shape == shape
            # a trace over an empty axis is the empty sum: 0, not 0/0
            np.testing.assert_array_equal(np.asarray(ntk), np.zeros(shape))
        f, params = _biased(4)  # no examples: f[0, 4]
        empty = x1[:0]
        ntk = empirical_ntk_fn(f, (), (), vmap_axes, implementation)(empty, x2, params)
        assert ntk.shape == (0, 2, 4, 4)
        kernels = empirical_kernel_fn(f, (-1,), (), vmap_axes, implementation)(empty, None, None, params)
        assert kernels.nngp.shape == kernels.ntk.shape == (0, 0)


def _two_input_two_output():
    """f((xa, xb, shared)) with per-example rows xa[i], columns xb[:, i] and an input
    shared by all examples; outputs {"rows": f[n, 4], "cols": f[4, n]}; an optional
    per-example ``scale`` keyword."""
    params = {"w": jax.random.normal(jax.random.key(3), (3, 4), jnp.float64),
              "v": jax.random.normal(jax.random.key(4), (2, 4), jnp.float64),
              "b": jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float64)}  # fmt: skip

    def f(p, x, scale=None):
        xa, xb, shared = x
        h = jnp.tanh(xa @ p["w"] + xb.T @ p["v"] + p["b"] * shared)
        if scale is not None:
            h = h * scale[:, None]
        return {"rows": h, "cols": (h**2).T}

    def inputs(seed, n):
        keys = jax.random.split(jax.random.key(seed), 3)
        return (jax.random.normal(keys[0], (n, 3), jnp.float64), jax.random.normal(keys[1], (2, n), jnp.float64),
                jax.random.normal(keys[2], (4,), jnp.float64))  # fmt: skip

    return f, params, inputs(10, 5), inputs(11, 3)


@pytest.mark.parametrize("implementation", [
    pytest.param(i, marks=() if i == 3 else pytest.mark.slow) for i in IMPLEMENTATIONS
])  # fmt: skip
def test_pytree_vmap_axes_equal_unvmapped_kernels(implementation):
    with jax.enable_x64(True):
        f, params, x1, x2 = _two_input_two_output()
        s1, s2 = jnp.arange(1.0, 6.0), jnp.arange(2.0, 5.0)
        vmap_axes = ((0, 1, None), {"rows": 0, "cols": 1}, {"scale": 0})
        for trace_axes, diagonal_axes in (((), ()), ((), (0,))):
            second = x1 if diagonal_axes else x2
            kwargs = dict(scale=(s1, s1) if diagonal_axes else (s1, s2))
            want = empirical_ntk_fn(f, trace_axes, diagonal_axes, None, implementation)(x1, second, params, **kwargs)
            got = empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation)(
                x1, second, params, **kwargs)
            assert got["rows"].shape == want["rows"].shape and got["cols"].shape == want["cols"].shape
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-12)
        # empirical_kernel_fn and empirical_nngp_fn take the same vmap_axes
        want = empirical_kernel_fn(f, (), (), None, implementation)(x1, x2, ("nngp", "ntk"), params, scale=(s1, s2))
        got = empirical_kernel_fn(f, (), (), vmap_axes, implementation)(x1, x2, ("NNGP", "NTK"), params,
                                                                       scale=(s1, s2))  # fmt: skip
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        nngp = empirical_nngp_fn(f, (), (), vmap_axes)(x1, x2, params, scale=(s1, s2))
        np.testing.assert_allclose(nngp["cols"], want.nngp["cols"], rtol=1e-12)


def test_vmap_axes_that_do_not_fit_raise_clearly():
    with jax.enable_x64(True):
        f, params, x1, x2 = _two_input_two_output()
        with pytest.raises(ValueError, match="empirical_ntk_fn: .*out_axes"):  # "cols" has 4 rows, not 5
            empirical_ntk_fn(f, (), (), ((0, 1, None), 0, {}))(x1, x2, params)
        with pytest.raises(ValueError, match="empirical_ntk_fn: vmap_axes in_axes"):
            empirical_ntk_fn(f, (), (), ((0, 1), {"rows": 0, "cols": 1}, {}))(x1, x2, params)
        with pytest.raises(TypeError, match="empirical_ntk_fn: expected int"):
            empirical_ntk_fn(f, vmap_axes=((0, 1.5, None), 0, {}))
