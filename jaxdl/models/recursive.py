"""Recursive neural networks: one composition function shared by every inner node of a tree.

The seeds' recursive networks (lecture notes, "Recursive Networks"): where a
recurrent network runs along a chain, ``h^t = F(h^{t−1}, x^t)``, a recursive
network runs bottom-up over a (parse) tree and computes each inner node from its
two children with the same learned composition ``F: R^d × R^d → R^d``,

    p = φ(W [c_left; c_right] + b),        W ∈ R^{d×2d}, b ∈ R^d,

so the depth is ``O(log n)`` for a balanced tree of ``n`` leaves.

A tree is given as an index array, which keeps the whole computation one
``jax.lax.scan`` (jit-able, vmap-able over trees of the same shape):

* node ids ``0 … L−1`` are the leaves, in the order of the rows of ``leaves``;
* inner node ``i`` (``0 ≤ i < I``) has id ``L + i`` and children
  ``children[i] = (left, right)``, ids of nodes computed before it
  (``left, right < L + i``: topological order); the root is the last one.

``recursive_net(dim)`` returns ``RecursiveNet(init, apply)``::

    net = recursive_net(4)
    params = net.init(jax.random.key(0))              # {"W": (4, 8), "b": (4,)}
    nodes = net.apply(params, leaves, children)      # (L + I, 4); nodes[-1] is the root
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.stax.layer import check_choice, check_key, check_positive_int
from jaxdl.stax.linear import check_std

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "identity": lambda z: z}


class RecursiveNet(NamedTuple):
    """``init(key) -> params`` and ``apply(params, leaves, children) -> node vectors``."""

    init: object
    apply: object


def check_tree(name: str, num_leaves: int, children) -> jax.Array:
    """``children`` as an int32 ``(I, 2)`` array; when it is concrete, its ids are checked to be in topological order."""
    if not hasattr(children, "shape"):
        children = np.asarray(children)
    if children.ndim != 2 or children.shape[-1] != 2:
        raise ValueError(f"{name}: expected children of shape (num_inner, 2), got shape {tuple(children.shape)}")
    if not jnp.issubdtype(children.dtype, jnp.integer):
        raise TypeError(f"{name}: expected integer children ids, got dtype {children.dtype}")
    if children.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one inner node, got an empty children array")
    try:
        ids = np.asarray(children)
    except jax.errors.TracerArrayConversionError:  # under jit: the order cannot be checked
        ids = None
    if ids is not None:
        limit = num_leaves + np.arange(ids.shape[0])[:, None]
        if (ids < 0).any() or (ids >= limit).any():
            raise ValueError(
                f"{name}: children[i] must name nodes computed before inner node i "
                f"(0 <= id < {num_leaves} + i: leaves first, then inner nodes in topological order)"
            )
    return jnp.asarray(children, dtype=jnp.int32)


def recursive_net(dim: int, *, activation: str = "tanh", W_std: float = 1.0, b_std: float = 0.0) -> RecursiveNet:
    """A recursive network with composition ``p = φ(W [c_left; c_right] + b)`` on ``dim``-vectors.

    ``init(key)`` draws ``W ~ N(0, W_std² / (2·dim))`` (fan-in scaling) and
    ``b ~ N(0, b_std²)``. ``apply(params, leaves, children)`` takes leaf vectors
    ``(L, dim)`` and the tree (see the module docstring) and returns every
    node's vector ``(L + I, dim)``: the leaves unchanged, then the inner nodes
    bottom-up; the root is row ``-1``. ``activation``: one of ``tanh``,
    ``relu``, ``sigmoid``, ``identity``.
    """
    name = "recursive_net"
    dim = check_positive_int(name, "dim", dim)
    phi = ACTIVATIONS[check_choice(name, "activation", activation, tuple(ACTIVATIONS))]
    W_std = check_std(name, "W_std", W_std)
    b_std = check_std(name, "b_std", b_std)

    def init(key):
        key = check_key(name, key)
        k_w, k_b = jax.random.split(key)
        return {
            "W": W_std / np.sqrt(2 * dim) * jax.random.normal(k_w, (dim, 2 * dim)),
            "b": b_std * jax.random.normal(k_b, (dim,)),
        }

    def apply(params, leaves, children):
        leaves = jnp.asarray(leaves)
        if leaves.ndim != 2 or leaves.shape[1] != dim:
            raise ValueError(f"{name}: expected leaves of shape (num_leaves, {dim}), got shape {tuple(leaves.shape)}")
        num_leaves = leaves.shape[0]
        children = check_tree(name, num_leaves, children)
        num_inner = children.shape[0]
        dtype = jnp.result_type(leaves.dtype, params["W"].dtype)
        nodes = jnp.concatenate([leaves.astype(dtype), jnp.zeros((num_inner, dim), dtype)], axis=0)

        def compose(nodes, step):
            i, (left, right) = step
            pair = jnp.concatenate([nodes[left], nodes[right]])
            parent = phi(params["W"] @ pair + params["b"])
            return nodes.at[num_leaves + i].set(parent.astype(dtype)), None

        nodes, _ = jax.lax.scan(compose, nodes, (jnp.arange(num_inner), (children[:, 0], children[:, 1])))
        return nodes

    return RecursiveNet(init, apply)
