"""Masked inputs (issue 22, item 10): ``mask_constant`` in ``apply_fn`` and ``kernel_fn``.

Checked against references that do not use the masking code: the same network
run on the inputs with the masked positions removed (forward and kernel, where
the network only mixes positions through attention and global averaging), numpy
re-implementations of the output masks, and Monte Carlo estimates of the
kernels of the masked finite network (``unmask_fn(apply_fn)``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.stax.masking import MaskedArray, unmask

MASK = -1e3


def _inputs(key, shape, masked):
    """Normal inputs with the listed ``(example, position)`` pairs set to ``MASK``."""
    x = jax.random.normal(jax.random.key(key), shape)
    for i, t in masked:
        x = x.at[i, t].set(MASK)
    return x


# --- forward ----------------------------------------------------------------------


def test_apply_returns_masked_arrays_with_neural_tangents_masks():
    x = _inputs(0, (2, 6, 3), [(0, 4), (0, 5), (1, 0)])
    x = x.at[1, 2, 1].set(MASK)  # one masked channel: the position stays visible after Dense
    dense = stax.Dense(4, b_std=0.5)
    _, params = dense.init(jax.random.key(1), x.shape)
    out = dense.apply(params, x, mask_constant=MASK)
    assert isinstance(out, MaskedArray) and out.mask.shape == (2, 6, 1)
    expected_mask = np.zeros((2, 6, 1), bool)
    expected_mask[0, 4:] = expected_mask[1, 0] = True
    np.testing.assert_array_equal(out.mask, expected_mask)
    zeroed = np.where(np.asarray(x) == MASK, 0.0, np.asarray(x))
    np.testing.assert_allclose(out.masked_value, dense.apply(params, jnp.asarray(zeroed)), rtol=1e-6)
    assert np.all(np.asarray(unmask(out))[expected_mask[..., 0]] == 0)

    # Conv: an output is masked iff every input in its window is (padding counts as masked)
    conv = stax.Conv(2, (3,), padding="SAME")
    _, params = conv.init(jax.random.key(2), x.shape)
    mask = conv.apply(params, x, mask_constant=MASK).mask[..., 0]
    visible = np.pad(~np.all(np.asarray(x) == MASK, axis=-1), ((0, 0), (1, 1)))
    windows = np.stack([visible[:, t : t + 3].any(axis=1) for t in range(6)], axis=1)
    np.testing.assert_array_equal(mask, ~windows)

    # GlobalAvgPool averages over the visible positions only
    pooled = stax.GlobalAvgPool().apply({}, out, mask_constant=MASK)
    values = np.asarray(out.masked_value)
    means = [values[i][~expected_mask[i, :, 0]].mean(axis=0) for i in range(2)]
    np.testing.assert_allclose(unmask(pooled), np.stack(means), rtol=1e-5)


def test_fan_in_masks_follow_neural_tangents():
    a = MaskedArray(jnp.ones((1, 3, 1)), jnp.array([[[True], [False], [True]]]))
    b = MaskedArray(jnp.ones((1, 3, 1)), jnp.array([[[True], [True], [False]]]))
    np.testing.assert_array_equal(stax.FanInSum().apply({}, [a, b]).mask[0, :, 0], [True, False, False])
    np.testing.assert_array_equal(stax.FanInProd().apply({}, [a, b]).mask[0, :, 0], [True, True, True])
    concat = stax.FanInConcat(axis=1).apply({}, [a, b])
    np.testing.assert_array_equal(concat.mask[0, :, 0], [True, False, True, True, True, False])
    assert [m.mask.shape for m in stax.FanOut(2).apply({}, a)] == [(1, 3, 1)] * 2


def _attention_net():
    return stax.serial(
        stax.Dense(16, W_std=1.4, b_std=0.2), stax.Relu(),
        stax.GlobalSelfAttention(16, 16, 16, 2, b_std=0.1), stax.Erf(),
        stax.Dense(16, W_std=1.3), stax.GlobalAvgPool(), stax.Dense(2),
    )  # fmt: skip


def test_masked_forward_equals_forward_on_inputs_without_the_masked_positions():
    x = _inputs(0, (2, 7, 3), [(0, 1), (0, 5), (1, 6)])
    model = _attention_net()
    _, params = model.init(jax.random.key(3), x.shape)
    out = unmask(model.apply(params, x, mask_constant=MASK))
    for i, kept in enumerate([[0, 2, 3, 4, 6], [0, 1, 2, 3, 4, 5]]):
        alone = model.apply(params, x[i : i + 1, jnp.array(kept)])
        np.testing.assert_allclose(out[i], alone[0], rtol=2e-5, atol=2e-6)
    jitted = jax.jit(lambda p, x: unmask(model.apply(p, x, mask_constant=MASK)))(params, x)
    np.testing.assert_allclose(jitted, out, rtol=2e-5, atol=2e-6)


def test_layers_without_masking_support_say_so():
    x = _inputs(0, (2, 4, 3), [(0, 1)])
    with pytest.raises(NotImplementedError, match="^MaxPool: masked inputs"):
        stax.MaxPool((2,)).apply({}, x, mask_constant=MASK)
    conv = stax.ConvTranspose(2, (2,))
    _, params = conv.init(jax.random.key(0), x.shape)
    with pytest.raises(NotImplementedError, match="^ConvTranspose: masked inputs"):
        conv.apply(params, x, mask_constant=MASK)
    with jax.enable_x64(True):
        norm = stax.serial(stax.Dense(4), stax.LayerNorm())
        with pytest.raises(NotImplementedError, match="^LayerNorm: masked inputs"):
            norm.kernel(x, None, "nngp", mask_constant=MASK)


# --- kernel -----------------------------------------------------------------------


@pytest.mark.parametrize("mask_constant", [MASK, float("nan")])
def test_masked_kernel_equals_kernel_of_inputs_without_the_masked_positions(mask_constant):
    """Position-wise layers, attention (masked keys excluded) and global averaging
    (over visible positions) make masking a position the same as deleting it."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(4), (3, 6, 3))
        hidden = [(0, 1), (0, 4), (1, 0), (1, 5), (2, 2), (2, 3)]  # two positions per example
        masked = x
        for i, t in hidden:
            masked = masked.at[i, t].set(mask_constant)
        kept = jnp.stack([x[i, jnp.array([t for t in range(6) if (i, t) not in hidden])] for i in range(3)])
        model = _attention_net()
        got = model.kernel(masked, None, ("nngp", "ntk"), mask_constant=mask_constant)
        want = model.kernel(kept, None, ("nngp", "ntk"))
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-10, atol=1e-12)
        got12 = model.kernel(masked[:2], masked[2:], "ntk", mask_constant=mask_constant)
        np.testing.assert_allclose(got12, want.ntk[:2, 2:], rtol=1e-10, atol=1e-12)


def _monte_carlo(model, x, mask_constant, n_samples, seed=0, ntk=False):
    """NNGP (and NTK) of ``unmask_fn(apply_fn)`` averaged over random parameters and
    output channels (outputs ``f[n, C]``)."""

    def outputs(params):
        return unmask(model.apply(params, x, mask_constant=mask_constant))

    def one(key):
        _, params = model.init(key, x.shape)
        y = outputs(params)
        nngp = y @ y.T / y.shape[1]
        if not ntk:
            return nngp, nngp
        jac = jax.jacrev(outputs)(params)  # leaves f[n, C, *param_shape]
        prod = sum(
            jnp.tensordot(j, j, axes=(tuple(range(2, j.ndim)), tuple(range(2, j.ndim))))
            for j in jax.tree.leaves(jac)
        )  # f[n, C, n, C]
        return nngp, jnp.einsum("icjc->ij", prod) / y.shape[1]

    keys = jax.random.split(jax.random.key(seed), n_samples)
    nngp, ntk_ = jax.lax.map(one, keys)
    return np.mean(np.asarray(nngp), axis=0), np.mean(np.asarray(ntk_), axis=0)


def _conv_net(width):
    return stax.serial(
        stax.Conv(width, (3,), padding="SAME", W_std=1.4, b_std=0.2), stax.Relu(),
        stax.AvgPool((2,), strides=(1,), padding="SAME"),
        stax.FanOut(2), stax.parallel(stax.Conv(width, (2,), padding="SAME"), stax.Dense(width, W_std=1.2)),
        stax.FanInSum(), stax.Erf(), stax.GlobalAvgPool(), stax.Dense(width),
    )  # fmt: skip


def test_masked_kernel_matches_monte_carlo_of_the_masked_network():
    with jax.enable_x64(True):
        x = _inputs(5, (3, 6, 2), [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (1, 5)])
        nngp = _conv_net(1).kernel(x, None, "nngp", mask_constant=MASK)
        mc, _ = _monte_carlo(_conv_net(256), x, MASK, 48)
        scale = np.max(np.abs(nngp))
        assert np.max(np.abs(nngp - mc)) < 0.04 * scale  # measured 0.009
        # ... a test that can tell masking from zero-filling the masked entries (0.198 apart)
        plain = _conv_net(1).kernel(jnp.where(x == MASK, 0.0, x), None, "nngp")
        assert np.max(np.abs(nngp - plain)) > 0.15 * scale


@pytest.mark.slow
def test_masked_ntk_matches_monte_carlo_of_the_masked_network():
    """NTK (and NNGP) of a masked conv net against the empirical NTK of wide finite ones.
    (Attention is left to the exact removal test above: at feasible widths its
    finite-width error is ~18% at width 128 and ~6% at 512 even without masks.)"""
    with jax.enable_x64(True):
        x = _inputs(5, (3, 6, 2), [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (1, 5)])
        k = _conv_net(1).kernel(x, None, ("nngp", "ntk"), mask_constant=MASK)
        nngp, ntk = _monte_carlo(_conv_net(128), x, MASK, 32, seed=2, ntk=True)
        assert np.max(np.abs(k.nngp - nngp)) < 0.05 * np.max(np.abs(k.nngp))
        assert np.max(np.abs(k.ntk - ntk)) < 0.05 * np.max(np.abs(k.ntk))


@pytest.mark.slow
def test_masked_graph_kernel_equals_kernel_of_the_graph_without_the_masked_vertices():
    """Aggregate sums zeroed (masked) predecessors, so masking a vertex is deleting it
    and its edges, through position-wise layers and a global sum; forward and kernel."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(8), (3, 5, 2))
        hidden = {0: 4, 1: 0, 2: 2}
        pattern = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (3, 5, 5)) * np.random.default_rng(1).binomial(1, 0.6, (3, 5, 5)))
        masked = jnp.stack([x[i].at[t].set(MASK) for i, t in hidden.items()])
        kept = [jnp.array([v for v in range(5) if v != t]) for t in hidden.values()]
        x_kept = jnp.stack([x[i, kept[i]] for i in range(3)])
        pattern_kept = jnp.stack([pattern[i][kept[i]][:, kept[i]] for i in range(3)])
        graph = stax.serial(stax.Dense(8, b_std=0.1), stax.Relu(), stax.Aggregate(), stax.Dense(8, b_std=0.2),
                            stax.Erf(), stax.Aggregate(), stax.GlobalSumPool(), stax.Dense(2))
        got = graph.kernel(masked, None, ("nngp", "ntk"), mask_constant=MASK, pattern=(pattern, pattern))
        want = graph.kernel(x_kept, None, ("nngp", "ntk"), pattern=(pattern_kept, pattern_kept))
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-10, atol=1e-12)
        _, params = graph.init(jax.random.key(0), x.shape)
        out = unmask(graph.apply(params, masked, mask_constant=MASK, pattern=pattern))
        np.testing.assert_allclose(out, graph.apply(params, x_kept, pattern=pattern_kept), rtol=1e-10, atol=1e-12)


def test_masked_kernel_carries_masks_and_zeroes_masked_outputs():
    with jax.enable_x64(True):
        x = _inputs(7, (2, 5, 2), [(0, 2), (1, 0), (1, 1)])
        model = stax.serial(stax.Dense(4, b_std=0.3), stax.Sin(), stax.Conv(3, (2,)))
        k = model.kernel(x, None, mask_constant=MASK)
        np.testing.assert_array_equal(k.mask1[..., 0], [[False] * 4, [True, False, False, False]])
        # covariances of masked outputs are zero (unmask_fn zeroes them), the rest are not
        cov = np.asarray(k.cov1)  # f[n, T, T']
        assert np.all(cov[1, 0, :] == 0) and np.all(cov[1, :, 0] == 0)
        assert np.all(np.abs(np.diagonal(cov[0])) > 0)
        with pytest.raises(ValueError, match="mask_constant applies to input arrays"):
            stax.Relu().kernel(k, mask_constant=MASK)
