"""Normalizing flows against brute force: log_prob = change of variables with the
Jacobian determinant from jax.jacfwd + slogdet, inverse(forward(z)) = z, the density
integrates to one (2-D quadrature), samples carry their own log-density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.generative import flows


def _randomised(flow, key, scale=0.3):
    """Parameters moved away from the identity start (the couplings' last layer is zero)."""
    params = flow.init(key)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    return jax.tree.unflatten(tree, [l + scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)])


@pytest.mark.parametrize("mixing", [pytest.param("reverse", marks=pytest.mark.slow), "1x1"])
def test_log_prob_is_change_of_variables_with_brute_force_jacobian(mixing):
    with jax.enable_x64(True):
        flow = flows.realnvp(5, num_couplings=3, hidden=(8,), mixing=mixing)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), _randomised(flow, jax.random.key(0)))
        x = jax.random.normal(jax.random.key(1), (4, 5), jnp.float64)
        log_prob = flow.log_prob(params, x)
        inv = lambda v: flow.inverse(params, v[None])[0][0]
        fwd = lambda v: flow.forward(params, v[None])[0][0]
        _, log_abs_det = jnp.linalg.slogdet(jax.vmap(jax.jacfwd(inv))(x))  # brute-force Jacobians
        z = jax.vmap(inv)(x)
        expected = -0.5 * jnp.sum(z**2, -1) - 2.5 * np.log(2 * np.pi) + log_abs_det
        np.testing.assert_allclose(log_prob, expected, atol=1e-10)
        _, forward_log_det = jnp.linalg.slogdet(jax.vmap(jax.jacfwd(fwd))(z))
        np.testing.assert_allclose(flow.forward(params, z)[1], forward_log_det, atol=1e-10)
        assert float(jnp.min(jnp.abs(log_abs_det))) > 0.1  # far from volume-preserving: the check can fail


def test_inverse_of_forward_is_identity_for_every_bijector():
    with jax.enable_x64(True):
        z = jax.random.normal(jax.random.key(2), (6, 4), jnp.float64)
        for bij in (flows.affine_coupling(flows.alternating_mask(4), (8,)), flows.reverse(4),
                    flows.permutation([2, 0, 3, 1]), flows.invertible_1x1(4, seed=3)):
            f = flows.flow([bij], 4)
            params = jax.tree.map(lambda a: a.astype(jnp.float64), _randomised(f, jax.random.key(3), 0.5))
            x, log_det = f.forward(params, z)
            back, inv_log_det = f.inverse(params, x)
            np.testing.assert_allclose(back, z, atol=1e-12, err_msg=bij.name)
            np.testing.assert_allclose(log_det, -inv_log_det, atol=1e-12, err_msg=bij.name)
            assert not np.allclose(x, z) or bij.name == "permutation"


def _numpy_masked_coupling(layers, mask, x, inverse=False):
    """The seed's formula with the full conditioner on ``mask ⊙ x`` (numpy, float64):
    ``y = mask⊙x + (1−mask)⊙(x⊙exp(s) + t)``, ``log|det| = Σ (1−mask)⊙s``; the inverse
    ``x = mask⊙y + (1−mask)⊙((y − t)⊙exp(−s))`` (``s, t`` of ``mask⊙y = mask⊙x``)."""
    h = mask * x
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        h = np.maximum(h, 0) if i < len(layers) - 1 else h
    dim = mask.shape[0]
    t, s = h[:, :dim], 3.0 * np.tanh(h[:, dim:] / 3.0)
    if inverse:
        return mask * x + (1 - mask) * ((x - t) * np.exp(-s)), -np.sum((1 - mask) * s, -1)
    return mask * x + (1 - mask) * (x * np.exp(s) + t), np.sum((1 - mask) * s, -1)


@pytest.mark.parametrize("mask, hidden", [(flows.alternating_mask(6, 1), (8,)),
                                          ([0, 1, 1, 0, 1, 0, 0], (8, 5)), ([1, 0, 0, 1, 0], ())])  # fmt: skip
def test_coupling_on_the_kept_part_equals_the_plain_masked_formula(mask, hidden):
    mask = np.asarray(mask, np.float64)
    dim = mask.shape[0]
    with jax.enable_x64(True):
        f = flows.flow([flows.affine_coupling(mask, hidden)], dim)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), _randomised(f, jax.random.key(6), 0.7))
        coupling = params["0_affine_coupling"]
        names = [f"Dense_{2 * i}" for i in range(len(hidden) + 1)]
        widths = [dim, *hidden, 2 * dim]
        assert [coupling[n]["W"].shape for n in names] == list(zip(widths[:-1], widths[1:]))  # full shapes kept
        layers = [(np.asarray(coupling[n]["W"]), np.asarray(coupling[n]["b"])) for n in names]
        x = np.asarray(jax.random.normal(jax.random.key(7), (5, dim), jnp.float64))
        for inverse, apply in ((False, f.forward), (True, f.inverse)):
            y, log_det = jax.jit(apply)(params, jnp.asarray(x))
            expected_y, expected_log_det = _numpy_masked_coupling(layers, mask, x, inverse)
            np.testing.assert_allclose(y, expected_y, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(log_det, expected_log_det, rtol=1e-12, atol=1e-12)
            assert np.min(np.abs(expected_log_det)) > 1e-2  # the moved part really is scaled
            np.testing.assert_array_equal(np.asarray(y)[:, mask == 1], x[:, mask == 1])


@pytest.mark.slow
def test_density_integrates_to_one_and_samples_match_log_prob():
    flow = flows.realnvp(2, num_couplings=4, hidden=(16,), mixing="1x1")
    params = _randomised(flow, jax.random.key(4), 0.1)
    grid = np.linspace(-12, 12, 401)
    xx, yy = np.meshgrid(grid, grid)
    points = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
    mass = float(jnp.sum(jnp.exp(flow.log_prob(params, points))) * (grid[1] - grid[0]) ** 2)
    x, log_prob = flow.sample_and_log_prob(params, jax.random.key(5), 20000)
    inside = float(jnp.mean(jnp.all(jnp.abs(x) <= 12, axis=-1)))  # Monte Carlo mass of the square
    assert 0.9 < inside < 0.999  # a genuinely non-Gaussian, heavy-tailed flow
    assert mass == pytest.approx(inside, abs=0.01)
    np.testing.assert_allclose(log_prob[:64], flow.log_prob(params, x[:64]), atol=1e-3)


def test_masks_and_bad_input():
    np.testing.assert_array_equal(flows.checkerboard_mask(2, 3), [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(flows.alternating_mask(3, 1), [0, 1, 0])
    with pytest.raises(ValueError, match="^affine_coupling:"):
        flows.affine_coupling([1, 1, 1])
    with pytest.raises(ValueError, match="^permutation:"):
        flows.permutation([0, 0, 1])
    flow = flows.realnvp(3, num_couplings=2, hidden=(4,))
    with pytest.raises(ValueError, match="^Flow.inverse:"):
        flow.log_prob(flow.init(jax.random.key(0)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="^realnvp:"):
        flows.realnvp(3, mixing="shuffle")
