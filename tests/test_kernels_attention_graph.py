"""Infinite-width kernels of ``GlobalSelfAttention`` and ``Aggregate`` without
neural-tangents: numpy closed forms written from the formulas, dense-vs-sparse
agreement, and Monte Carlo averages over wide finite networks built from the
forward layers (tests/test_kernels_vs_nt.py compares with the NT fixtures).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdl.kernels as nt
from jaxdl import stax

KEY = jax.random.key(0)


def _relative_error(estimate, exact):
    return float(jnp.max(jnp.abs(estimate - exact)) / jnp.max(jnp.abs(exact)))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- closed forms ----------------------------------------------------------------------


def test_attention_after_dense_matches_numpy_closed_form():
    """nngp[i, j] = OV^2 G_i K_ij G_j^T + b^2 with G_i = softmax(QK^2 K_ii) and
    K_ij = W^2 x_i x_j^T / C + b^2 the Dense layer's covariance (positions x positions)."""
    x1, x2 = jax.random.normal(KEY, (3, 5, 4)), jax.random.normal(jax.random.key(1), (2, 5, 4))
    W, b, QK, OV, b_att = 1.3, 0.2, 1.1 * 0.9, 1.2 * 0.8, 0.3
    layer = stax.serial(
        stax.Dense(8, W, b),
        stax.GlobalSelfAttention(8, 8, 8, 2, W_query_std=1.1, W_key_std=0.9, W_out_std=1.2, W_value_std=0.8, b_std=b_att),
    )
    with jax.enable_x64(True):
        out = layer.kernel(jnp.asarray(x1, jnp.float64), jnp.asarray(x2, jnp.float64), ("nngp", "ntk"))
    a1, a2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    cov = lambda u, v: W**2 * u @ v.T / 4 + b**2  # noqa: E731
    G1 = [_softmax(QK * cov(u, u)) for u in a1]
    G2 = [_softmax(QK * cov(v, v)) for v in a2]
    nngp = np.array([[OV**2 * G1[i] @ cov(a1[i], a2[j]) @ G2[j].T + b_att**2 for j in range(2)] for i in range(3)])
    # NTK: the Dense layer's NTK (= its NNGP) pushed through the same map, plus the
    # value and output weights' contributions 2 (nngp - b^2) (keys/queries vanish in the limit).
    ntk = nngp + 2 * (nngp - b_att**2)
    np.testing.assert_allclose(out.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(out.ntk, ntk, rtol=1e-12)


def _adjacency_from_edges(edges, vertices):
    A = np.zeros((edges.shape[0], vertices, vertices))
    for n in range(edges.shape[0]):
        for tail, head in edges[n]:
            if head >= 0:
                A[n, tail, head] += 1
    return A


@pytest.mark.parametrize("implementation", ["DENSE", "SPARSE"])
def test_aggregate_kernel_is_adjacency_sandwich(implementation):
    """nngp_out[i, j] = A1[i]^T nngp_in[i, j] A2[j] over the vertex axis, checked with
    numpy loops on the kernel of the layers before (x1 only and x1 != x2)."""
    x1, x2 = jax.random.normal(KEY, (3, 6, 2)), jax.random.normal(jax.random.key(1), (2, 6, 2))
    e1 = np.asarray(jax.random.randint(jax.random.key(2), (3, 9, 2), 0, 6))
    e2 = np.asarray(jax.random.randint(jax.random.key(3), (2, 9, 2), 0, 6))
    A1, A2 = _adjacency_from_edges(e1, 6), _adjacency_from_edges(e2, 6)
    p1, p2 = (e1, e2) if implementation == "SPARSE" else (A1, A2)
    before = stax.serial(stax.Dense(8, 1.3, 0.1), stax.Relu(), stax.Dense(8, 1.2))
    model = stax.serial(before, stax.Aggregate(implementation=implementation))
    with jax.enable_x64(True):
        x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
        inner = before.kernel(x1, x2, ("nngp", "ntk"))
        out = model.kernel(x1, x2, ("nngp", "ntk"), pattern=(jnp.asarray(p1), jnp.asarray(p2)))
        inner_11 = before.kernel(x1, None, ("nngp", "cov1"))
        out_11 = model.kernel(x1, None, ("nngp", "cov1"), pattern=jnp.asarray(p1))
    for name in ("nngp", "ntk"):
        K = np.asarray(getattr(inner, name))
        ref = np.array([[A1[i].T @ K[i, j] @ A2[j] for j in range(2)] for i in range(3)])
        np.testing.assert_allclose(getattr(out, name), ref, rtol=1e-12, atol=1e-12)
    cov1 = np.array([A1[i].T @ np.asarray(inner_11.cov1)[i] @ A1[i] for i in range(3)])
    np.testing.assert_allclose(out_11.cov1, cov1, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(out_11.nngp)[np.arange(3), np.arange(3)], out_11.cov1)


def test_aggregate_without_pattern_is_identity_and_half_pattern_raises():
    x = jax.random.normal(KEY, (3, 5, 2))
    model = stax.serial(stax.Dense(4), stax.Aggregate())
    np.testing.assert_array_equal(model.kernel(x, None, "nngp"), stax.Dense(4).kernel(x, None, "nngp"))
    with pytest.raises(NotImplementedError, match="Aggregate: "):
        model.kernel(x, x, "nngp", pattern=(jnp.ones((3, 5, 5)), None))
    with pytest.raises(ValueError, match="Aggregate: expected a dense pattern of shape"):
        model.kernel(x, None, "nngp", pattern=jnp.ones((3, 4, 4)))


def test_attention_kernel_is_finite_for_identical_and_zero_inputs_with_gradients():
    x = jax.random.normal(KEY, (4, 5, 3))
    x = x.at[1].set(x[0]).at[2].set(0.0)
    _, _, kernel_fn = stax.serial(
        stax.Dense(8, 1.2, 0.1), stax.GlobalSelfAttention(8, 8, 8, 2), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1)
    )
    out = kernel_fn(x, None, ("nngp", "ntk"))
    assert np.all(np.isfinite(out.nngp)) and np.all(np.isfinite(out.ntk))
    np.testing.assert_allclose(out.nngp[0], out.nngp[1], rtol=1e-6)
    grad = jax.grad(lambda z: jnp.sum(kernel_fn(z, None, "ntk")))(x)
    assert np.all(np.isfinite(grad))


# --- Monte Carlo over wide finite networks --------------------------------------------


def _attention_model(readout_width, mechanism="SOFTMAX", linear_scaling=True, heads=16):
    return stax.serial(
        stax.Dense(512, 1.2, 0.1),
        stax.GlobalSelfAttention(readout_width, 256, 64, heads, linear_scaling=linear_scaling,
                                 attention_mechanism=mechanism, W_key_std=1.5, b_std=0.1),
        stax.GlobalAvgPool(),
    )  # fmt: skip


# With 1/sqrt(d) scaling the attention weights stay random in the limit: the
# average over heads converges more slowly, hence more heads.
@pytest.mark.parametrize("mechanism,linear_scaling,heads", [
    ("SOFTMAX", True, 16), pytest.param("IDENTITY", False, 64, marks=pytest.mark.slow),
])
def test_monte_carlo_attention_nngp(mechanism, linear_scaling, heads):
    x = jax.random.normal(KEY, (3, 5, 3))
    init_fn, apply_fn, kernel_fn = _attention_model(1024, mechanism, linear_scaling, heads)
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(1), 16)(x, None, "nngp")
    assert _relative_error(mc, kernel_fn(x, None, "nngp")) < 0.08


@pytest.mark.slow
def test_monte_carlo_attention_ntk():
    x = jax.random.normal(KEY, (3, 5, 3))
    init_fn, apply_fn, kernel_fn = stax.serial(_attention_model(256), stax.Dense(1))
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(2), 16)(x, None, "ntk")
    assert _relative_error(mc, kernel_fn(x, None, "ntk")) < 0.1


def test_monte_carlo_graph_network_nngp():
    x = jax.random.normal(KEY, (3, 6, 2))
    A = jax.random.bernoulli(jax.random.key(1), 0.5, (3, 6, 6)).astype(jnp.float32)
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(1024, 1.3, 0.1), stax.Relu(), stax.Aggregate(), stax.Dense(1024, 1.3), stax.Relu(),
        stax.Aggregate(), stax.GlobalSumPool(), stax.Dense(2048),
    )  # fmt: skip

    def apply_with_graph(params, z):
        return apply_fn(params, z, pattern=A)

    # one block (device_count=0): the closed-over graph A covers the whole batch
    mc = nt.monte_carlo_kernel_fn(init_fn, apply_with_graph, jax.random.key(3), 8, device_count=0)(x, None, "nngp")
    assert _relative_error(mc, kernel_fn(x, None, "nngp", pattern=A)) < 0.06
