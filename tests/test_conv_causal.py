"""Causal and dilated convolutions in ``stax.Conv`` (the seeds' WaveNet layers):
forward pass against ``jax.lax``, causality by gradients, and the analytic
NNGP/NTK against a brute-force formula and Monte Carlo over wide networks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxdl.kernels as nt
from jaxdl import stax

RNG = np.random.default_rng(1)
DN1 = ("NAC", "AIO", "NAC")


@pytest.mark.parametrize("dilation", [1, 3])
def test_causal_output_at_t_does_not_depend_on_inputs_after_t(dilation):
    layer = stax.serial(
        stax.Conv(4, (3,), padding="CAUSAL", rhs_dilation=(dilation,), b_std=0.1), stax.Tanh(),
        stax.Conv(2, (2,), padding="CAUSAL", rhs_dilation=(2 * dilation,)),
    )  # fmt: skip
    x = jnp.asarray(RNG.normal(size=(1, 16, 3)), jnp.float32)
    out_shape, params = layer.init(jax.random.key(0), x.shape)
    assert out_shape == (1, 16, 2)  # output length = input length
    jac = jax.jacobian(lambda x: layer.apply(params, x)[0].sum(-1))(x)[:, 0]  # [t_out, t_in, C]
    influence = np.abs(np.asarray(jac)).sum(-1)
    assert np.all(np.triu(influence, 1) == 0)  # nothing after t
    assert np.all(np.diagonal(influence) > 0)  # the present input matters
    reach = 2 * dilation + 2 * dilation  # (3-1) d + (2-1) 2d
    t = 15
    assert influence[t, t - reach] > 0 and np.all(influence[t, : t - reach] == 0)


def test_causal_equals_left_padding_then_valid_lax_conv():
    x = jnp.asarray(RNG.normal(size=(2, 11, 3)), jnp.float32)
    w = jnp.asarray(RNG.normal(size=(3, 3, 5)), jnp.float32)
    layer = stax.Conv(5, (3,), padding="CAUSAL", rhs_dilation=(2,))
    padded = jnp.pad(x, ((0, 0), (4, 0), (0, 0)))  # d (k - 1) = 4 zeros before the signal
    ref = lax.conv_general_dilated(padded, w, (1,), "VALID", rhs_dilation=(2,), dimension_numbers=DN1) / math.sqrt(9)
    np.testing.assert_allclose(layer.apply({"W": w}, x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_dilated_conv_matches_lax_conv_general_dilated(padding):
    x = jnp.asarray(RNG.normal(size=(2, 9, 8, 2)), jnp.float32)
    w = jnp.asarray(RNG.normal(size=(2, 3, 2, 4)), jnp.float32)
    layer = stax.Conv(4, (2, 3), strides=(1, 2), padding=padding, rhs_dilation=(3, 2))
    out_shape, _ = layer.init(jax.random.key(0), x.shape)
    ref = lax.conv_general_dilated(
        x, w, (1, 2), padding, rhs_dilation=(3, 2), dimension_numbers=("NHWC", "HWIO", "NHWC")
    ) / math.sqrt(2 * 3 * 2)
    np.testing.assert_allclose(layer.apply({"W": w}, x), ref, rtol=1e-5, atol=1e-5)
    assert out_shape == ref.shape
    # the seeds' output size floor((x + 2p - d(k - 1) - 1)/s) + 1, VALID (p = 0)
    if padding == "VALID":
        assert ref.shape[1:3] == ((9 - 3 * 1 - 1) // 1 + 1, (8 - 2 * 2 - 1) // 2 + 1)


def test_bad_dilation_and_padding_raise_naming_the_layer():
    with pytest.raises(ValueError, match="^Conv: expected rhs_dilation"):
        stax.Conv(2, (3,), rhs_dilation=(1, 2))
    with pytest.raises(ValueError, match="^ConvTranspose: rhs_dilation is only supported by Conv"):
        stax.conv._conv("ConvTranspose", 2, (3,), None, "VALID", 1.0, None, None, "ntk", (1, 1), None, (2,))
    with pytest.raises(ValueError, match="^AvgPool: expected padding"):
        stax.AvgPool((2,), padding="CAUSAL")


def _brute_force_nngp(x, W_std, b_std, k, d, causal):
    """NNGP of one Conv layer from its definition: ``W_std^2 / (k C) sum_t x[u + d t] . x'[u + d t] + b_std^2``."""
    n, L, C = x.shape
    pad = d * (k - 1) if causal else 0
    xp = np.pad(x, ((0, 0), (pad, 0), (0, 0)))
    L_out = L + pad - d * (k - 1)
    out = np.zeros((n, n, L_out, L_out))
    for u in range(L_out):
        for v in range(L_out):
            s = sum(xp[:, u + d * t] @ xp[:, v + d * t].T for t in range(k))
            out[:, :, u, v] = W_std**2 * s / (k * C) + b_std**2
    return out


@pytest.mark.parametrize("causal", [True, False])
def test_analytic_nngp_of_a_dilated_conv_is_the_brute_force_formula(causal):
    with jax.enable_x64(True):
        x = RNG.normal(size=(3, 9, 2))
        layer = stax.Conv(5, (3,), padding="CAUSAL" if causal else "VALID", W_std=1.3, b_std=0.4, rhs_dilation=(2,))
        nngp = np.asarray(layer.kernel(jnp.asarray(x), None, "nngp"))
        np.testing.assert_allclose(nngp, _brute_force_nngp(x, 1.3, 0.4, 3, 2, causal), rtol=1e-10, atol=1e-12)


def _wavenet_trunk(width, out_chan):
    return stax.serial(
        stax.Conv(width, (2,), padding="CAUSAL", W_std=1.4, b_std=0.2),
        stax.Relu(),
        stax.Conv(width, (2,), padding="CAUSAL", rhs_dilation=(2,), W_std=1.4, b_std=0.2),
        stax.Relu(),
        stax.Conv(out_chan, (3,), padding="CAUSAL", rhs_dilation=(4,), W_std=1.4),
    )


@pytest.mark.slow
def test_analytic_kernel_of_a_causal_dilated_net_matches_monte_carlo():
    x = jnp.asarray(RNG.normal(size=(2, 10, 2)), jnp.float32)
    # NNGP: forward passes only, so wide outputs average over channels too.
    wide = _wavenet_trunk(256, 256)
    analytic = np.asarray(wide.kernel(x, None, "nngp"))
    mc = np.asarray(nt.monte_carlo_kernel_fn(wide.init, wide.apply, jax.random.key(4), 32)(x, None, "nngp"))
    assert analytic.shape == mc.shape == (2, 2, 10, 10)
    # Monte Carlo error ~ 1/sqrt(width * samples) relative to the diagonal scale
    assert np.abs(analytic - mc).max() / np.abs(analytic).max() < 0.05
    # NTK: one output channel keeps the Jacobians small; the hidden width still averages.
    narrow = _wavenet_trunk(256, 1)
    analytic = np.asarray(narrow.kernel(x, None, "ntk"))
    mc = np.asarray(nt.monte_carlo_kernel_fn(narrow.init, narrow.apply, jax.random.key(5), 32)(x, None, "ntk"))
    assert np.abs(analytic - mc).max() / np.abs(analytic).max() < 0.05
    # causality of the kernel: entries (t, t') only involve inputs up to max(t, t'),
    # so changing the last input time step leaves every entry before it unchanged
    nngp = np.asarray(wide.kernel(x, None, "nngp"))
    changed = np.asarray(wide.kernel(x.at[:, -1].add(3.0), None, "nngp"))
    np.testing.assert_allclose(changed[..., :-1, :-1], nngp[..., :-1, :-1], rtol=1e-5)
    assert np.abs(changed[..., -1, -1] - nngp[..., -1, -1]).max() > 1e-2
