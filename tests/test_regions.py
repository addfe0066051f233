"""Region bounds and grid counts against exact hyperplane-arrangement counts and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.theory.approximation import one_hidden_layer_apply, relu_interpolant, universal_approximation
from jaxdl.theory.regions import (
    count_linear_regions,
    layerwise_region_bound,
    line_arrangement_regions,
    linear_region_labels,
    montufar_bound,
    montufar_network,
    zaslavsky_bound,
)


def test_zaslavsky_bound_closed_forms():
    for m in range(12):
        assert zaslavsky_bound(m, 1) == m + 1  # m points cut a line into m + 1 pieces
        assert zaslavsky_bound(m, 2) == 1 + m + m * (m - 1) // 2
        assert zaslavsky_bound(m, m + 3) == 2**m  # fewer hyperplanes than dimensions: every sign pattern
    assert zaslavsky_bound(10, 3) == 1 + 10 + 45 + 120


def test_zaslavsky_matches_arrangement_geometry():
    rng = np.random.default_rng(0)
    for m in range(1, 9):
        normals = rng.normal(size=(m, 2))
        offsets = rng.normal(size=m)
        # a box large enough to hold every crossing sees all the regions
        assert line_arrangement_regions(normals, offsets, (-1e6, 1e6)) == zaslavsky_bound(m, 2)


def test_montufar_bound_values():
    assert montufar_bound(4, 2, 1) == zaslavsky_bound(4, 2) == 11
    assert montufar_bound(4, 2, 2) == 11 * 2**2
    assert montufar_bound(5, 2, 3) == zaslavsky_bound(5, 2) * 2**4  # floor(5/2) = 2
    assert montufar_bound(6, 3, 2) == (1 + 6 + 15 + 20) * 2**3
    for m, n, L in [(4, 2, 3), (8, 2, 4), (9, 3, 2), (2, 2, 5)]:
        assert montufar_bound(m, n, L) <= layerwise_region_bound(m, n, L)
    with pytest.raises(ValueError, match="montufar_bound.*m to be an int >= 2"):
        montufar_bound(1, 2, 2)
    with pytest.raises(ValueError, match="zaslavsky_bound.*n to be an int >= 1"):
        zaslavsky_bound(3, 0)


def tangent_line_network(m, seed=0):
    """A one-hidden-layer stax ReLU net whose kinks are m well-separated lines tangent to circles."""
    rng = np.random.default_rng(seed)
    angles = np.pi * (np.arange(m) + 0.2 * rng.random(m)) / m
    normals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    offsets = -rng.uniform(0.9, 1.1, m)
    init_fn, apply_fn, _ = stax.serial(stax.Dense(m, b_std=1.0), stax.Relu(), stax.Dense(1, b_std=1.0))
    _, params = init_fn(jax.random.key(seed), (-1, 2))
    params["Dense_0"]["W"] = jnp.asarray(normals.T * math.sqrt(2), jnp.float32)  # ntk: W_std / sqrt(fan_in)
    params["Dense_0"]["b"] = jnp.asarray(offsets.reshape(params["Dense_0"]["b"].shape), jnp.float32)
    params["Dense_2"]["W"] = jnp.asarray(rng.choice([-1.0, 1.0], (m, 1)) * rng.uniform(0.5, 1.5, (m, 1)), jnp.float32)
    return apply_fn, params, normals, offsets


@pytest.mark.parametrize("m, half_width", [(5, 2.0), (6, 6.0), (7, 2.5)])
def test_grid_count_equals_exact_arrangement_count(m, half_width):
    apply_fn, params, normals, offsets = tangent_line_network(m, seed=m)
    bounds = (-half_width, half_width)
    exact = line_arrangement_regions(normals, offsets, bounds)
    assert count_linear_regions(apply_fn, params, bounds, 300) == exact
    assert exact <= zaslavsky_bound(m, 2)


def test_all_regions_of_a_wide_box_reach_zaslavsky():
    apply_fn, params, normals, offsets = tangent_line_network(4, seed=4)
    assert line_arrangement_regions(normals, offsets, (-3.0, 3.0)) == zaslavsky_bound(4, 2)
    assert count_linear_regions(apply_fn, params, (-3.0, 3.0), 200) == zaslavsky_bound(4, 2)


def test_counts_affine_pieces_of_any_function():
    def apply_fn(params, x):
        return jnp.maximum(jnp.maximum(x[:, :1], 0.5 * x[:, 1:] + 0.1), params)  # 3 pieces, kinks off the grid

    assert count_linear_regions(apply_fn, 0.0, (-1.0, 1.0), 64) == 3
    assert count_linear_regions(lambda p, x: x @ p, jnp.ones((2, 3)), (-1.0, 1.0), 32) == 1
    # a curved function is affine on no piece: every grid column (fixed x0) is its own component
    labels = linear_region_labels(lambda p, x: p * x[:, :1] ** 2, 1.0, (-1.0, 1.0), 40)
    assert labels.max() + 1 == 40
    assert np.all(labels == labels[:, :1])


def test_deep_net_counts_stay_below_the_layerwise_bound():
    hidden = [stax.Dense(4, W_std=1.5, b_std=1.0), stax.Relu()]
    init_fn, apply_fn, _ = stax.serial(*hidden, *hidden, stax.Dense(1))
    _, params = init_fn(jax.random.key(3), (-1, 2))
    count = count_linear_regions(apply_fn, params, (-4.0, 4.0), 200)
    assert 1 < count <= layerwise_region_bound(4, 2, 2)
    # a depth-2 net folds its first layer's cells: more regions than that layer alone creates
    first_layer = {"Dense_0": params["Dense_0"], "Relu_1": {}}
    one_layer = stax.serial(stax.Dense(4, W_std=1.5, b_std=1.0), stax.Relu())
    assert count_linear_regions(one_layer.apply, first_layer, (-4.0, 4.0), 200) <= count


@pytest.mark.parametrize("m, L", [(3, 1), (4, 2), (4, 3)])
def test_montufar_construction_attains_the_bound(m, L):
    apply_fn, params = montufar_network(m, L)
    assert count_linear_regions(apply_fn, params, (0.0, 1.0), 400) == montufar_bound(m, 2, L)


def test_region_counting_rejects_bad_input():
    apply_fn, params, _, _ = tangent_line_network(3)
    with pytest.raises(ValueError, match="linear_region_labels.*lo < hi"):
        count_linear_regions(apply_fn, params, (1.0, -1.0), 10)
    with pytest.raises(ValueError, match="linear_region_labels.*resolution"):
        count_linear_regions(apply_fn, params, (-1.0, 1.0), 1)
    with pytest.raises(ValueError, match="linear_region_labels.*NaN"):
        count_linear_regions(lambda p, x: jnp.log(x), None, (-1.0, 1.0), 8)
    with pytest.raises(ValueError, match="line_arrangement_regions.*parallel"):
        line_arrangement_regions(np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([0.0, 1.0]), (-1, 1))


def test_relu_interpolant_is_piecewise_linear_interpolation():
    params = relu_interpolant(jnp.sin, 8, (0.0, np.pi))
    x = np.linspace(0, np.pi, 1001)
    nodes = np.linspace(0, np.pi, 9)
    network = one_hidden_layer_apply(params, x[:, None])[:, 0]
    np.testing.assert_allclose(network, np.interp(x, nodes, np.sin(nodes)), atol=1e-5)
    assert params["Dense_0"]["W"].shape == (1, 8)


def test_sup_error_decays_like_one_over_width_squared():
    widths = [3, 5, 9, 17, 33, 65]
    result = universal_approximation(jnp.sin, widths, (0.0, np.pi))
    errors = np.array(result["sup_errors"])
    h = np.pi / np.array(widths)
    # odd widths put a piece symmetric about pi/2, where the chord lies cos(h/2) below the peak 1
    np.testing.assert_allclose(errors, 1 - np.cos(h / 2), rtol=1e-3)
    assert np.all(errors <= h**2 / 8 + 1e-6)  # float32 rounding; the interpolation bound with |f''| <= 1
    np.testing.assert_allclose(errors[-2] / errors[-1], (65 / 33) ** 2, rtol=0.01)
    with pytest.raises(ValueError, match="relu_interpolant.*width"):
        relu_interpolant(jnp.sin, 0, (0.0, 1.0))
