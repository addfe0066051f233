"""Models on sets and point clouds: Deep Sets and PointNet, as stax triples.

Seeds (geometric chapter): the Deep Sets model ``f(x_1..x_M) = rho(sum_m
phi(x_m))`` (any invariant function decomposes this way) and its max-pooling
variant; the equivariant layer ``lambda I + gamma 1 1^T``
(``stax.PermEquivariant``); PointNet, "a Deep Sets architecture on
three-dimensional point clouds": a shared per-point MLP ``phi`` interleaved with
T-net blocks (a small PointNet predicting a ``d x d`` transform applied to every
point, canonicalising the cloud), max pooling, and an MLP ``rho`` head.

Inputs are sets ``f[batch, M, d]``; sets of different sizes are padded and
passed with ``apply_fn(params, x, mask=m)``, ``m: bool[batch, M]`` ``True``
for padding (the pooling layers ignore padding; the per-point layers act on
every point independently, so padding cannot leak into real points).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdl import stax
from jaxdl.models._common import affine_options, make_activation, positive_ints
from jaxdl.stax.gnn import node_features, padding_keep
from jaxdl.stax.layer import LayerSpec, check_choice, check_key, check_positive_int, check_shape, make_layer
from jaxdl.stax.sets import pool_set


def _per_point_mlp(model, widths, activation, affine):
    layers = []
    for width in widths:
        layers += [stax.Dense(width, **affine), make_activation(model, activation)]
    return layers


def deep_sets(
    num_classes: int,
    phi_widths=(64, 64),
    rho_widths=(64,),
    *,
    pooling: str = "sum",
    equivariant: bool = False,
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
):
    """Deep Sets ``rho(pool_m phi(x_m))``: ``phi`` = [Dense(w) → φ] per element
    (or [PermEquivariant(w) → φ] with ``equivariant=True``, Zaheer et al.'s
    equivariant Deep Sets), ``SetPool(pooling)`` (``'sum'`` as in the seeds,
    ``'mean'`` or ``'max'``), ``rho`` = [Dense(w) → φ] → Dense(``num_classes``).
    With Dense ``phi`` and sum/mean pooling it has an analytic NNGP/NTK."""
    name = "deep_sets"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    phi_widths = positive_ints(name, "phi_widths", phi_widths)
    rho_widths = positive_ints(name, "rho_widths", rho_widths, allow_empty=True)
    affine = affine_options(name, W_std, b_std, "ntk")
    layers = []
    for width in phi_widths:
        first = stax.PermEquivariant(width, W_std=W_std, b_std=b_std) if equivariant else stax.Dense(width, **affine)
        layers += [first, make_activation(name, activation)]
    layers.append(stax.SetPool(pooling))
    layers += _per_point_mlp(name, rho_widths, activation, affine)
    layers.append(stax.Dense(num_classes, **affine))
    return stax.serial(*layers)


def TNet(dim: int, widths=(64, 128), head=(64,), activation: str = "relu"):
    """PointNet's T-net: predicts a ``dim x dim`` matrix ``T`` from the whole set
    (per-point MLP ``widths``, masked max pooling, MLP ``head``, a linear map to
    ``dim^2`` entries added to the identity) and returns every point times it,
    ``x_m T``. Its last linear map starts at zero, so ``T = I`` at initialisation.
    Params: ``{"features": ..., "head": ..., "transform": {"W", "b"}}``."""
    name = "TNet"
    dim = check_positive_int(name, "dim", dim)
    widths = positive_ints(name, "widths", widths)
    head = positive_ints(name, "head", head, allow_empty=True)
    affine = affine_options(name, 2**0.5, 0.1, "ntk")
    features = stax.serial(*_per_point_mlp(name, widths, activation, affine))
    head_layers = stax.serial(*_per_point_mlp(name, head, activation, affine)) if head else stax.Identity()

    def init_fn(key, input_shape):
        key = check_key(name, key)
        shape = check_shape(name, input_shape)
        if len(shape) != 3 or shape[-1] != dim:
            raise ValueError(f"{name}: expected input_shape (batch, points, {dim}), got {shape!r}")
        k_features, k_head = jax.random.split(key)
        feature_shape, feature_params = features.init(k_features, shape)
        head_shape, head_params = head_layers.init(k_head, (shape[0], feature_shape[-1]))
        transform = {"W": jnp.zeros((head_shape[-1], dim * dim)), "b": jnp.zeros((dim * dim,))}
        return shape, {"features": feature_params, "head": head_params, "transform": transform}

    def apply_fn(params, x, *, mask=None, **kwargs):
        x = node_features(name, x)
        if x.shape[-1] != dim:
            raise ValueError(f"{name}: expected {dim} coordinates on the last axis, got shape {tuple(x.shape)}")
        keep = padding_keep(name, x, mask)
        pooled = pool_set(features.apply(params["features"], x), keep, "max")
        g = head_layers.apply(params["head"], pooled)
        W, b = params["transform"]["W"], params["transform"]["b"]
        T = jnp.eye(dim, dtype=x.dtype) + (g @ W.astype(x.dtype) / math.sqrt(W.shape[0]) + b).reshape(-1, dim, dim)
        return jnp.einsum("bmd,bde->bme", x, T)

    spec = LayerSpec(name, dict(dim=dim, widths=widths, head=head, activation=activation),
                     (features.spec, head_layers.spec))  # fmt: skip
    return make_layer(name, init_fn, apply_fn, spec)


def pointnet(
    num_classes: int,
    dim: int = 3,
    widths=(64, 128, 256),
    head=(128, 64),
    *,
    input_transform: bool = True,
    feature_transform: bool = False,
    activation: str = "relu",
    W_std: float = 2**0.5,
    b_std: float | None = 0.1,
):
    """PointNet classifier: [TNet(dim)] → shared per-point MLP ``widths`` (with a
    feature T-net after the first layer when ``feature_transform``) → max pooling
    over the points → MLP ``head`` → Dense(``num_classes``). Invariant to the
    order of the points; ``mask=`` marks padding points. (The original uses
    ``widths=(64, 128, 1024)``, ``head=(512, 256)``.)"""
    name = "pointnet"
    num_classes = check_positive_int(name, "num_classes", num_classes)
    dim = check_positive_int(name, "dim", dim)
    widths = positive_ints(name, "widths", widths)
    head = positive_ints(name, "head", head, allow_empty=True)
    affine = affine_options(name, W_std, b_std, "ntk")
    activation = check_choice(name, "activation", activation, ("relu", "tanh", "sigmoid", "erf", "gelu"))
    layers = [TNet(dim, activation=activation)] if input_transform else []
    for i, width in enumerate(widths):
        layers += [stax.Dense(width, **affine), make_activation(name, activation)]
        if i == 0 and feature_transform:
            layers.append(TNet(width, activation=activation))
    layers.append(stax.SetPool("max"))
    layers += _per_point_mlp(name, head, activation, affine)
    layers.append(stax.Dense(num_classes, **affine))
    return stax.serial(*layers)
