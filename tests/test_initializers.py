"""jaxdl.stax.initializers: the seeds' variance formulas on conv kernels (receptive
field times channels), orthogonality Q^T Q = I, and named errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax
from jaxdl.stax import initializers as I


@pytest.mark.parametrize(
    "make,variance",
    [
        (I.lecun_normal, lambda n, m: 1 / n),
        (I.lecun_uniform, lambda n, m: 1 / n),
        (I.glorot_normal, lambda n, m: 2 / (n + m)),
        (I.glorot_uniform, lambda n, m: 2 / (n + m)),
        (I.he_normal, lambda n, m: 2 / n),
        (I.he_uniform, lambda n, m: 2 / n),
    ],
)
def test_conv_kernels_have_the_seeds_variance_with_receptive_field_fans(make, variance):
    shape = (3, 3, 40, 60)  # (*spatial, in, out)
    fan_in, fan_out = I.fans(shape)
    assert (fan_in, fan_out) == (9 * 40, 9 * 60)
    W = np.asarray(make()(jax.random.key(0), shape))
    expected = variance(fan_in, fan_out)
    assert abs(W.var() / expected - 1) < 5 * math.sqrt(2 / W.size)


def test_he_preserves_the_second_moment_through_relu_layers():
    # the seeds' motivation: with N(0, 2/n) weights E[z^2] stays constant through ReLU layers
    n, depth = 512, 6
    x = jax.random.normal(jax.random.key(1), (256, n))
    h = x
    keys = jax.random.split(jax.random.key(2), depth)
    for k in keys:
        h = jax.nn.relu(h) @ I.he_normal()(k, (n, n))
    ratio = float(jnp.mean(h**2) / jnp.mean(x**2))  # E[z^2] = n (2/n) E[relu(x)^2] = E[x^2]
    assert 0.7 < ratio < 1.4


@pytest.mark.parametrize("shape", [(64, 64), (64, 32), (32, 64), (3, 3, 8, 16)])
def test_orthogonal_satisfies_QtQ_identity(shape):
    W = np.asarray(I.orthogonal()(jax.random.key(3), shape), np.float64)
    M = W.reshape(-1, shape[-1])
    if M.shape[0] >= M.shape[1]:
        np.testing.assert_allclose(M.T @ M, np.eye(M.shape[1]), atol=1e-5)  # orthonormal columns
    else:
        np.testing.assert_allclose(M @ M.T, np.eye(M.shape[0]), atol=1e-5)  # orthonormal rows
    if shape == (64, 64):  # the seeds' normalisation W^T W = W W^T = m I is gain sqrt(m)
        S = np.asarray(I.orthogonal(gain=8.0)(jax.random.key(3), shape), np.float64)
        np.testing.assert_allclose(S.T @ S, 64 * np.eye(64), atol=1e-3)
        np.testing.assert_allclose(S @ S.T, 64 * np.eye(64), atol=1e-3)


def test_orthogonal_is_haar_distributed_on_average():
    # Haar-random orthogonal matrices have E[W_ij] = 0 and E[W_ij^2] = 1/m
    m = 16
    Ws = jax.vmap(lambda k: I.orthogonal()(k, (m, m)))(jax.random.split(jax.random.key(4), 400))
    second = np.asarray(jnp.mean(Ws**2, axis=0))  # per entry; sd of W_ij^2 ~ sqrt(2)/m
    assert np.abs(second * m - 1).max() < 5 * math.sqrt(2 / 400)  # every entry, not only on average
    assert np.abs(np.asarray(Ws.mean(0))).max() < 5 / math.sqrt(400 * m)


def test_initializers_plug_into_dense_and_name_themselves_in_errors():
    layer = stax.Dense(32, parameterization="standard", W_init=I.orthogonal())
    _, params = layer.init(jax.random.key(5), (1, 32))
    np.testing.assert_allclose(params["W"].T @ params["W"], np.eye(32), atol=1e-5)
    with pytest.raises(ValueError, match="^orthogonal: expected a weight shape"):
        I.orthogonal()(jax.random.key(0), (5,))
    with pytest.raises(ValueError, match="^he_normal: expected a weight shape"):
        I.he_normal()(jax.random.key(0), (4, 0))
    with pytest.raises(ValueError, match="^fans: expected a weight shape"):
        I.fans((3,))
