"""neural-tangents' option enums, accepted wherever the matching string is
(``stax.Conv(..., padding=stax.Padding.SAME)`` equals ``padding='SAME'``)."""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp


class Padding(enum.Enum):
    """Padding of convolutions and pooling: ``CIRCULAR`` (periodic), ``SAME`` (zeros), ``VALID`` (none)."""

    CIRCULAR = "CIRCULAR"
    SAME = "SAME"
    VALID = "VALID"


class PositionalEmbedding(enum.Enum):
    """Positional embeddings of ``GlobalSelfAttention``: none, added to, or concatenated with the inputs."""

    NONE = "NONE"
    SUM = "SUM"
    CONCAT = "CONCAT"


class AttentionMechanism(enum.Enum):
    """The map from query-key products to attention weights in ``GlobalSelfAttention``."""

    SOFTMAX = "SOFTMAX"
    IDENTITY = "IDENTITY"
    ABS = "ABS"
    RELU = "RELU"

    def fn(self):
        """The weight function itself (softmax over the last axis)."""
        return {
            "SOFTMAX": lambda g, axis=-1: jax.nn.softmax(g, axis=axis),
            "IDENTITY": lambda g: g,
            "ABS": jnp.abs,
            "RELU": jax.nn.relu,
        }[self.value]


class AggregateImplementation(enum.Enum):
    """``Aggregate``'s graph format: ``DENSE`` adjacency arrays or ``SPARSE`` edge lists."""

    DENSE = "DENSE"
    SPARSE = "SPARSE"
