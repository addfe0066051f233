"""neural-tangents 0.6.5's remaining public stax API in jaxdl (issue 22, item 7):
``DotGeneral``, ``Index``/``Slice``, ``ImageResize``, the option enums and the
``layer``/``requires``/``supports_masking`` decorators with ``Bool``/``Diagonal``.

Forward passes are checked against numpy references; kernels against the
closed form "linear map of the input covariance" computed independently in
numpy, and against Monte Carlo estimates over wide random networks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nt_fixtures
from jaxdl import stax

# neural_tangents.stax's public namespace in 0.6.5 (neural_tangents/stax.py).
NT_065_STAX = """
parallel serial repeat
ABRelu Abs Cos Elementwise ElementwiseNumerical Erf Exp ExpNormalized Gabor Gaussian Gelu Hermite LeakyRelu
Monomial Polynomial Rbf RectifiedMonomial Relu Sigmoid_like Sign Sin
Aggregate AvgPool Conv ConvLocal ConvTranspose Dense Identity Index DotGeneral Dropout Flatten GlobalAvgPool
GlobalSelfAttention GlobalSumPool ImageResize LayerNorm SumPool Slice
FanInConcat FanInProd FanInSum FanOut
AggregateImplementation AttentionMechanism Padding PositionalEmbedding
Bool Diagonal MaskedArray layer requires supports_masking unmask_fn
""".split()


def test_every_public_neural_tangents_stax_name_exists():
    missing = [name for name in NT_065_STAX if not hasattr(stax, name)]
    assert missing == []
    assert set(NT_065_STAX) <= set(stax.__all__)


# --- helpers ----------------------------------------------------------------------


def _normal(key, shape):
    """Standard normal inputs (float64 inside ``jax.enable_x64``, else float32)."""
    return jax.random.normal(jax.random.key(key), shape)


def _unzip(mat, batch_ndim):
    """``f[b..., X, X', Y, Y'] -> f[b..., X, Y, X', Y']`` (numpy)."""
    n = (mat.ndim - batch_ndim) // 2
    order = list(range(batch_ndim)) + [batch_ndim + 2 * s for s in range(n)] + [batch_ndim + 2 * s + 1 for s in range(n)]
    return np.transpose(mat, order)


def _zip(mat, batch_ndim):
    n = (mat.ndim - batch_ndim) // 2
    order = list(range(batch_ndim))
    for s in range(n):
        order += [batch_ndim + s, batch_ndim + n + s]
    return np.transpose(mat, order)


def _monte_carlo_nngp(layer, x1, x2, n_samples, seed=0):
    """``E[f(x1) f(x2)^T] / channels`` over random parameters (channels last),
    as ``f[n1, n2, S..., S'...]`` (unzipped)."""
    init_fn, apply_fn = layer.init, layer.apply

    def one(key):
        _, params = init_fn(key, x1.shape)
        y1, y2 = apply_fn(params, x1), apply_fn(params, x2)
        return jnp.tensordot(y1, y2, axes=(-1, -1)) / y1.shape[-1]

    keys = jax.random.split(jax.random.key(seed), n_samples)
    return np.mean(np.asarray(jax.lax.map(one, keys)), axis=0)


def _to_unzipped_nngp(nngp):
    """f[n1, n2, X, X', Y, Y'] -> f[n1, X, Y, n2, X', Y'] (the layout of a tensordot)."""
    nngp = _unzip(np.asarray(nngp), 2)
    n = (nngp.ndim - 2) // 2
    order = [0] + list(range(2, 2 + n)) + [1] + list(range(2 + n, 2 + 2 * n))
    return np.transpose(nngp, order)


# --- DotGeneral -------------------------------------------------------------------


def test_dot_general_forward_matches_lax_and_numpy():
    x = _normal(0, (3, 4, 5, 2))
    a = np.asarray(_normal(1, (4, 6)))
    layer = stax.DotGeneral(rhs=a, dimension_numbers=(((1,), (0,)), ((), ())))
    out_shape, params = layer.init(jax.random.key(0), (-1, 4, 5, 2))
    y = layer.apply(params, x)
    np.testing.assert_allclose(y, np.einsum("nhwc,hk->nwck", np.asarray(x), a), rtol=1e-5, atol=1e-6)
    assert out_shape == (-1, 5, 2, 6) and y.shape == (3, 5, 2, 6)
    left = stax.DotGeneral(lhs=a.T, dimension_numbers=(((1,), (1,)), ((), ())))
    np.testing.assert_allclose(left.apply({}, x), np.einsum("kh,nhwc->knwc", a.T, np.asarray(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stax.DotGeneral(rhs=2.0).apply({}, x), 2.0 * x)
    np.testing.assert_array_equal(stax.DotGeneral().apply({}, x), x)
    with pytest.raises(ValueError, match="^DotGeneral: expected at most one"):
        stax.DotGeneral(lhs=a, rhs=a)


@pytest.mark.parametrize("diagonal_spatial", [False, True])
def test_dot_general_kernel_is_the_linear_map_of_the_input_kernel(diagonal_spatial):
    """K_out = A K A^T over the mapped axes, computed here with numpy on the kernel
    of the network below the layer."""
    with jax.enable_x64(True):
        x1, x2 = _normal(0, (3, 4, 5, 2)), _normal(1, (2, 4, 5, 2))
        body = stax.serial(stax.Conv(3, (2, 2), padding="SAME", b_std=0.1), stax.Relu())
        a = np.asarray(_normal(2, (5, 3)))  # maps the W axis (size 5) to 3 new positions
        dot = stax.DotGeneral(rhs=a, dimension_numbers=(((2,), (0,)), ((), ())))
        model = stax.serial(body, dot)
        if diagonal_spatial:  # the W axis is contracted: the layer needs full spatial covariances
            with pytest.raises(ValueError, match="diagonal_spatial=True was asked for"):
                model.kernel(x1, x2, "nngp", diagonal_spatial=True)
            scaled = stax.serial(body, stax.DotGeneral(rhs=np.float64(1.7)))
            k_in = body.kernel(x1, x2, ("nngp", "ntk"), diagonal_spatial=True)
            k_out = scaled.kernel(x1, x2, ("nngp", "ntk"), diagonal_spatial=True)
            np.testing.assert_allclose(k_out.nngp, 1.7**2 * np.asarray(k_in.nngp), rtol=1e-12)
            np.testing.assert_allclose(k_out.ntk, 1.7**2 * np.asarray(k_in.ntk), rtol=1e-12)
            return
        k_in = body.kernel(x1, x2, ("nngp", "ntk", "cov1", "is_reversed"))
        k_out = model.kernel(x1, x2, ("nngp", "ntk", "cov1", "is_reversed"))
        assert k_in.is_reversed and not k_out.is_reversed
        for name in ("nngp", "ntk"):
            mat = np.transpose(np.asarray(getattr(k_in, name)), (0, 1, 4, 5, 2, 3))  # presented (W, H) -> (H, W)
            expected = np.einsum("ijhHwW,wv,WV->ijhHvV", mat, a, a)  # outputs (n, H, C, V): spatial (H, V)
            np.testing.assert_allclose(getattr(k_out, name), expected, rtol=1e-10, atol=1e-12)
        cov = np.transpose(np.asarray(k_in.cov1), (0, 3, 4, 1, 2))
        np.testing.assert_allclose(k_out.cov1, np.einsum("ihHwW,wv,WV->ihHvV", cov, a, a), rtol=1e-10)


@pytest.mark.slow
def test_dot_general_kernel_matches_monte_carlo():
    with jax.enable_x64(True):
        x1, x2 = _normal(3, (2, 4, 3)), _normal(4, (2, 4, 3))
        a = np.array([[1.0, 0.5], [-1.0, 0.0], [0.3, 2.0], [0.0, -0.7]])
        model = stax.serial(stax.Dense(256, W_std=1.3, b_std=0.2), stax.Erf(), stax.Dense(256),
                            stax.DotGeneral(lhs=a.T, dimension_numbers=(((1,), (1,)), ((), ()))))
        # lhs (2, 4) contracts the 4 positions: output (2 new positions, batch, channels)
        nngp = np.asarray(model.kernel(x1, x2, "nngp"))  # f[n1, n2, P, P']
        mc = _monte_carlo_nngp(model, x1, x2, 64)  # f[P, n1, P', n2]
        mc = np.transpose(mc, (1, 3, 0, 2))
        assert np.max(np.abs(nngp - mc)) < 0.05 * np.max(np.abs(nngp))


def test_dot_general_rejects_what_has_no_kernel():
    with jax.enable_x64(True):
        x = _normal(0, (3, 4, 2))
        body = stax.Dense(4)
        channel = stax.serial(body, stax.DotGeneral(rhs=np.ones(4), dimension_numbers=(((2,), (0,)), ((), ()))))
        with pytest.raises(ValueError, match="^DotGeneral: the channel axis"):
            channel.kernel(x, None, "nngp")
        over_batch = stax.serial(body, stax.DotGeneral(rhs=np.ones(3), dimension_numbers=(((0,), (0,)), ((), ()))))
        with pytest.raises(NotImplementedError, match="^DotGeneral: contracting the batch axis"):
            over_batch.kernel(x, None, "nngp")


# --- Index / Slice ----------------------------------------------------------------


def test_slice_helper_and_index_forward():
    assert stax.Slice[1, :, 2:8:3] == (1, slice(None), slice(2, 8, 3))
    assert stax.Slice[..., ::-1] == (Ellipsis, slice(None, None, -1))
    x = np.asarray(_normal(0, (4, 6, 5, 3)))
    for idx in (stax.Slice[::2, 1:5, 0], stax.Slice[:, ..., 1:3, :], stax.Slice[1:3], stax.Slice[:, -1, ::-2]):
        layer = stax.Index(idx)
        out_shape, _ = layer.init(jax.random.key(0), x.shape)
        np.testing.assert_array_equal(layer.apply({}, jnp.asarray(x)), x[idx])
        assert out_shape == x[idx].shape
    assert stax.Index(stax.Slice[:, 2]).init(jax.random.key(0), (-1, 6, 5, 3))[0] == (-1, 5, 3)
    with pytest.raises(ValueError, match="^Index: expected a known size"):
        stax.Index(stax.Slice[:2]).init(jax.random.key(0), (-1, 6, 5, 3))
    with pytest.raises(TypeError, match="^Index: expected idx of ints"):
        stax.Index(stax.Slice[None, 1])


@pytest.mark.parametrize("diagonal_spatial", [False, True])
def test_index_kernel_selects_entries_of_the_input_kernel(diagonal_spatial):
    with jax.enable_x64(True):
        x1, x2 = _normal(0, (4, 6, 5, 2)), _normal(1, (3, 6, 5, 2))
        body = stax.serial(stax.Conv(3, (2, 2), padding="SAME", b_std=0.1), stax.Relu(), stax.Conv(3, (1, 1)))
        idx = stax.Slice[1:4, 1:5:2, 3]
        model = stax.serial(body, stax.Index(idx))
        get = ("nngp", "ntk", "cov1", "cov2", "is_reversed", "shape1", "batch_axis", "channel_axis")
        k_in = body.kernel(x1, x2, get, diagonal_spatial=diagonal_spatial)
        k_out = model.kernel(x1, x2, get, diagonal_spatial=diagonal_spatial)
        assert not k_in.is_reversed  # two convolutions: natural order
        h, w = slice(1, 5, 2), 3
        if diagonal_spatial:
            np.testing.assert_array_equal(k_out.nngp, np.asarray(k_in.nngp)[1:4, 1:4, h, w])
            np.testing.assert_array_equal(k_out.cov1, np.asarray(k_in.cov1)[1:4, h, w])
        else:
            np.testing.assert_array_equal(k_out.nngp, np.asarray(k_in.nngp)[1:4, 1:4, h, h, w, w])
            np.testing.assert_array_equal(k_out.ntk, np.asarray(k_in.ntk)[1:4, 1:4, h, h, w, w])
            np.testing.assert_array_equal(k_out.cov2, np.asarray(k_in.cov2)[1:4, h, h, w, w])
        assert k_out.shape1 == (3, 2, 3) and (k_out.batch_axis, k_out.channel_axis) == (0, 2)


@pytest.mark.slow
def test_index_kernel_matches_monte_carlo():
    with jax.enable_x64(True):
        x1, x2 = _normal(2, (2, 5, 2)), _normal(3, (2, 5, 2))
        model = stax.serial(stax.Conv(256, (3,), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                            stax.Conv(256, (2,)), stax.Index(stax.Slice[:, ::2]))
        nngp = _to_unzipped_nngp(model.kernel(x1, x2, "nngp"))
        mc = _monte_carlo_nngp(model, x1, x2, 64)
        assert np.max(np.abs(nngp - mc)) < 0.05 * np.max(np.abs(nngp))


def test_index_kernel_refuses_the_channel_axis_and_integer_batch_indices():
    with jax.enable_x64(True):
        x1, x2 = _normal(2, (2, 5, 2)), _normal(3, (2, 5, 2))
        base = stax.Dense(3)
        with pytest.raises(NotImplementedError, match="^Index: indexing the channel axis"):
            stax.serial(base, stax.Index(stax.Slice[..., :2])).kernel(x1, x2, "nngp")
        with pytest.raises(NotImplementedError, match="^Index: an integer index"):
            stax.serial(base, stax.Index(stax.Slice[0])).kernel(x1, x2, "nngp")


# --- ImageResize ------------------------------------------------------------------


def _interpolation_matrix(n_in, n_out, method):
    """Rows: weights of the inputs in each output (half-pixel centres), upsampling."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    m = np.zeros((n_out, n_in))
    for i, c in enumerate(centres):
        if method == "nearest":
            m[i, min(int(np.floor(c + 0.5)), n_in - 1)] = 1.0
        else:
            c = np.clip(c, 0, n_in - 1)
            lo = int(np.floor(c))
            hi = min(lo + 1, n_in - 1)
            m[i, lo] += 1 - (c - lo)
            m[i, hi] += c - lo
    return m


@pytest.mark.parametrize("method", ["linear", "nearest"])
def test_image_resize_forward_matches_interpolation_matrices(method):
    x = np.asarray(_normal(0, (2, 4, 3, 2)))
    layer = stax.ImageResize((-1, 7, 5, -1), method)
    out_shape, _ = layer.init(jax.random.key(0), (-1, 4, 3, 2))
    mh, mw = _interpolation_matrix(4, 7, method), _interpolation_matrix(3, 5, method)
    np.testing.assert_allclose(layer.apply({}, jnp.asarray(x)), np.einsum("nhwc,Hh,Ww->nHWc", x, mh, mw),
                               rtol=1e-5, atol=1e-6)
    assert out_shape == (-1, 7, 5, 2)
    with pytest.raises(ValueError, match="^ImageResize: expected method"):
        stax.ImageResize((-1, 2, 2, -1), "bogus")


@pytest.mark.parametrize("method", ["linear", "nearest", "cubic"])
def test_image_resize_kernel_is_m_k_m_transposed(method):
    """After two convolutions (natural order): K_out = M_H M_W K M_W^T M_H^T."""
    with jax.enable_x64(True):
        x1, x2 = _normal(0, (3, 6, 5, 2)), _normal(1, (2, 6, 5, 2))
        body = stax.serial(stax.Conv(3, (2, 2), b_std=0.1), stax.Relu(), stax.Conv(3, (2, 2), padding="SAME"))
        shape = (-1, 9, 2, -1)  # H: 5 -> 9 (up), W: 4 -> 2 (down, antialiased)
        model = stax.serial(body, stax.ImageResize(shape, method))
        k_in = body.kernel(x1, x2, ("nngp", "ntk", "cov1"))
        k_out = model.kernel(x1, x2, ("nngp", "ntk", "cov1"))
        eye = lambda n, m: np.asarray(jax.image.resize(jnp.eye(n), (n, m), method)).T  # noqa: E731
        mh, mw = eye(5, 9), eye(4, 2)  # rows: outputs; jax.image.resize is linear in each axis
        for name in ("nngp", "ntk"):
            expected = np.einsum("ijaAbB,xa,XA,yb,YB->ijxXyY", np.asarray(getattr(k_in, name)), mh, mh, mw, mw)
            np.testing.assert_allclose(getattr(k_out, name), expected, rtol=1e-9, atol=1e-12)
        expected = np.einsum("iaAbB,xa,XA,yb,YB->ixXyY", np.asarray(k_in.cov1), mh, mh, mw, mw)
        np.testing.assert_allclose(k_out.cov1, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_image_resize_kernel_matches_monte_carlo():
    with jax.enable_x64(True):
        x1, x2 = _normal(5, (2, 4, 3)), _normal(6, (2, 4, 3))
        model = stax.serial(stax.Conv(256, (2,), padding="SAME", W_std=1.5, b_std=0.1), stax.Erf(),
                            stax.Conv(256, (1,)), stax.ImageResize((-1, 7, -1), "linear"))
        nngp = _to_unzipped_nngp(model.kernel(x1, x2, "nngp"))
        mc = _monte_carlo_nngp(model, x1, x2, 64)
        assert np.max(np.abs(nngp - mc)) < 0.05 * np.max(np.abs(nngp))


def test_image_resize_kernel_refuses_the_channel_axis():
    with jax.enable_x64(True):
        x1 = _normal(5, (2, 4, 3))
        with pytest.raises(ValueError, match="^ImageResize: resizing the channel axis"):
            stax.serial(stax.Dense(3), stax.ImageResize((-1, -1, 5), "linear")).kernel(x1, None, "nngp")


def test_image_resize_after_one_convolution_differs_from_neural_tangents_only_by_its_axis_mixup():
    """NT 0.6.5 resizes the covariance as it presents it (spatial axes reversed after
    an odd number of convolutions) to the target sizes in natural order: it resizes
    H's covariance to W's target and vice versa. jaxdl resizes the right axes. The
    fixture equals jax.image.resize of jaxdl's (correct) pre-resize kernel, presented,
    to NT's swapped target, which pins the difference to that mix-up."""
    cases = {c["name"]: c for c in nt_fixtures.load_cases("analytic_kernels", family="extras")}
    case = cases["image_resize"]
    with jax.enable_x64(True):
        x1, x2 = jnp.asarray(case["x1"]), jnp.asarray(case["x2"])
        body = stax.serial(stax.Conv(4, (2, 2)), stax.Relu())
        presented = body.kernel(x1, x2, ("nngp", "is_reversed"))
        assert presented.is_reversed  # (n1, n2, W, W', H, H')
        nt_rule = jax.image.resize(presented.nngp, (3, 2, 8, 8, 6, 6), "linear")
        np.testing.assert_allclose(nt_rule, case["outputs"]["nngp"], rtol=1e-9)
        ours = stax.serial(body, stax.ImageResize((-1, 8, 6, -1), "linear")).kernel(x1, x2, "nngp")
        assert ours.shape == (3, 2, 6, 6, 8, 8)  # presented (W', W', H', H') for H'=8, W'=6


# --- enums and custom layers -------------------------------------------------------


def test_enums_are_accepted_where_strings_are():
    with jax.enable_x64(True):
        x = _normal(0, (2, 5, 4, 2))
        a = stax.Conv(3, (2, 2), padding=stax.Padding.SAME).kernel(x, None, "nngp")
        b = stax.Conv(3, (2, 2), padding="SAME").kernel(x, None, "nngp")
        np.testing.assert_array_equal(a, b)
        att = dict(n_chan_out=3, n_chan_key=3, n_chan_val=3, n_heads=1)
        a = stax.GlobalSelfAttention(**att, attention_mechanism=stax.AttentionMechanism.RELU,
                                     pos_emb_type=stax.PositionalEmbedding.SUM).kernel(x, None, "nngp")
        b = stax.GlobalSelfAttention(**att, attention_mechanism="RELU", pos_emb_type="SUM").kernel(x, None, "nngp")
        np.testing.assert_array_equal(a, b)
        assert stax.Aggregate(implementation=stax.AggregateImplementation.SPARSE).spec.hyper["implementation"] == "SPARSE"
        np.testing.assert_array_equal(stax.AttentionMechanism.RELU.fn()(jnp.array([-1.0, 2.0])), [0.0, 2.0])
    assert stax.Bool.YES & stax.Bool.MAYBE == stax.Bool.MAYBE
    assert bool(stax.Diagonal(input=stax.Bool.YES, output=stax.Bool.MAYBE))


@stax.layer
@stax.supports_masking(remask_kernel=False)
def _Scale(c):
    """A user-written layer in neural-tangents' style: ``x -> c x``."""

    def init_fn(key, input_shape):
        return input_shape, ()

    def apply_fn(params, x, mask=None, **kwargs):
        return c * x

    @stax.requires(diagonal_spatial=stax.Diagonal())
    def kernel_fn(k, **kwargs):
        sq = c**2
        return k.replace(nngp=sq * k.nngp, ntk=None if k.ntk is None else sq * k.ntk, cov1=sq * k.cov1,
                         cov2=None if k.cov2 is None else sq * k.cov2)

    return init_fn, apply_fn, kernel_fn


@stax.layer
def _FlipTime():
    """Reverses the time axis; needs full spatial covariances (it reads the presented layout)."""

    def init_fn(key, input_shape):
        return input_shape, ()

    def apply_fn(params, x, **kwargs):
        return x[:, ::-1]

    @stax.requires(diagonal_spatial=stax.Diagonal(input=stax.Bool.NO))
    def kernel_fn(k, **kwargs):
        flip = lambda m, b: None if m is None or m.ndim == 0 else m[(slice(None),) * b + (slice(None, None, -1),) * 2]  # noqa: E731
        return k.replace(nngp=flip(k.nngp, 2), ntk=flip(k.ntk, 2), cov1=flip(k.cov1, 1), cov2=flip(k.cov2, 1))

    return init_fn, apply_fn, kernel_fn


def test_layer_decorator_makes_a_stax_layer_whose_kernel_takes_inputs():
    with jax.enable_x64(True):
        x1, x2 = _normal(0, (3, 5, 2)), _normal(1, (2, 5, 2))
        body = stax.serial(stax.Conv(4, (2,), padding="SAME", b_std=0.2), stax.Relu())
        plain = body.kernel(x1, x2, ("nngp", "ntk"))
        scaled = stax.serial(body, _Scale(1.5), stax.Dense(2)).kernel(x1, x2, ("nngp", "ntk"))
        reference = stax.serial(body, stax.DotGeneral(rhs=1.5), stax.Dense(2)).kernel(x1, x2, ("nngp", "ntk"))
        np.testing.assert_allclose(scaled.nngp, reference.nngp, rtol=1e-12)
        np.testing.assert_allclose(scaled.ntk, reference.ntk, rtol=1e-12)
        assert np.max(np.abs(np.asarray(plain.nngp) - scaled.nngp)) > 0.1
        layer = _Scale(2.0)
        np.testing.assert_allclose(layer.apply((), x1), 2 * x1)
        np.testing.assert_allclose(layer.kernel(x1, x2, "nngp"), 4 * stax.Identity().kernel(x1, x2, "nngp"))
        # a masked apply hands the user's apply_fn the mask and returns a MaskedArray
        masked = layer.apply((), x1.at[0, 0].set(-1.0), mask_constant=-1.0)
        assert isinstance(masked, stax.MaskedArray) and bool(masked.mask[0, 0, 0])


def test_requires_forces_full_spatial_covariances_and_the_presented_layout():
    with jax.enable_x64(True):
        x = _normal(2, (2, 4, 2))
        body = stax.serial(stax.Conv(3, (2,), padding="SAME"), stax.Relu())  # one conv: presented reversed
        flipped = stax.serial(body, _FlipTime(), stax.Flatten())
        reference = stax.serial(body, stax.Index(stax.Slice[:, ::-1]), stax.Flatten())
        np.testing.assert_allclose(flipped.kernel(x, None, "nngp"), reference.kernel(x, None, "nngp"), rtol=1e-12)
        with pytest.raises(ValueError, match="diagonal_spatial=True was asked for"):
            flipped.kernel(x, None, "nngp", diagonal_spatial=True)
        with pytest.raises(TypeError, match="^requires: unexpected requirements"):
            stax.requires(diagonal=True)
