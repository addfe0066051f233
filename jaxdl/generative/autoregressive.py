"""Autoregressive density estimation: MADE, the masked autoencoder for distribution estimation.

Seed formula (seed 001 §19.6): any joint density factorises as
``p(x) = Π_i p(x_i | x_{<i})``; modelling each conditional with a network gives an
exact likelihood, and sampling is sequential over the dimensions.

MADE (Germain et al. 2015) computes all ``d`` conditionals in one pass of an MLP
whose weights are masked: every unit gets a degree, input ``i`` has degree
``order[i]`` (1..d), hidden units degrees in ``1..d−1``, and a connection from a
unit of degree ``a`` to a hidden unit of degree ``b`` is kept when ``b ≥ a``, to an
output of degree ``c`` when ``c > a``. So output ``i`` depends only on the inputs
that come before ``i`` in the order. Each output carries ``num_classes`` logits of
a categorical conditional (``num_classes = 2``: binary data; the bundled digits have
17 grey levels); :meth:`MADE.log_prob` is then the exact log-likelihood of discrete
data and :meth:`MADE.sample` draws ``x_1, x_2, …`` one at a time.

The masked layers are a small private helper, not a public stax layer: they have
no infinite-width kernel and are only meaningful inside MADE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def made_masks(order: np.ndarray, hidden: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """The connectivity masks ``f[fan_in, fan_out]`` of MADE's layers (input→hidden…→output),
    hidden degrees spread cyclically over ``1..d−1``."""
    d = order.shape[0]
    degrees = [order]
    for width in hidden:
        degrees.append((np.arange(width) % max(d - 1, 1)) + 1)
    masks = [(degrees[k + 1][None, :] >= degrees[k][:, None]).astype(np.float32) for k in range(len(hidden))]
    masks.append((order[None, :] > degrees[-1][:, None]).astype(np.float32))
    return masks


@dataclasses.dataclass(frozen=True)
class MADE:
    """A MADE over ``dim`` discrete variables with ``num_classes`` values each (see :func:`made`)."""

    dim: int
    num_classes: int
    hidden: tuple[int, ...]
    order: tuple[int, ...]

    @property
    def masks(self):
        return made_masks(np.asarray(self.order), self.hidden)

    def init(self, key) -> dict:
        """Params ``{"layer_k": {"W", "b"}}`` (He-scaled weights, zero biases)."""
        sizes = [self.dim, *self.hidden, self.dim]
        params = {}
        keys = jax.random.split(key, len(sizes) - 1)
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            extra = self.num_classes if k == len(sizes) - 2 else 1
            in_width = fan_in * (self.num_classes if k == 0 else 1)
            std = (2.0 / in_width) ** 0.5
            params[f"layer_{k}"] = {"W": std * jax.random.normal(keys[k], (in_width, fan_out * extra)),
                                    "b": jnp.zeros((fan_out * extra,))}  # fmt: skip
        return params

    def logits(self, params, x):
        """``f[..., dim, num_classes]``: logits of ``p(x_i | x_{<i})`` for every ``i``
        (``x`` holds integer values in ``[0, num_classes)``)."""
        x = self._check(x, "MADE.logits")
        masks = self.masks
        h = jax.nn.one_hot(x, self.num_classes, dtype=params["layer_0"]["W"].dtype)  # (..., dim, K)
        h = h.reshape(*x.shape[:-1], self.dim * self.num_classes)
        for k, mask in enumerate(masks):
            if k == 0:
                mask = np.repeat(mask, self.num_classes, axis=0)  # every class of input i has its degree
            if k == len(masks) - 1:
                mask = np.repeat(mask, self.num_classes, axis=1)
            layer = params[f"layer_{k}"]
            h = h @ (layer["W"] * mask) + layer["b"]
            if k < len(masks) - 1:
                h = jax.nn.relu(h)
        return h.reshape(*x.shape[:-1], self.dim, self.num_classes)

    def log_prob(self, params, x):
        """Exact ``log p(x) = Σ_i log p(x_i | x_{<i})`` per example (nats)."""
        x = self._check(x, "MADE.log_prob")
        log_p = jax.nn.log_softmax(self.logits(params, x), axis=-1)
        return jnp.sum(jnp.take_along_axis(log_p, x[..., None].astype(jnp.int32), axis=-1)[..., 0], axis=-1)

    def sample(self, params, key, num_samples: int):
        """``num_samples`` draws, sequentially: ``x_{order⁻¹(1)}`` first, then each next
        coordinate given the ones before it (``dim`` network passes)."""
        position = np.argsort(np.asarray(self.order))  # position[t] = the coordinate sampled t-th

        def step(x, inputs):
            t_key, coordinate = inputs
            logits = self.logits(params, x)[:, coordinate]
            value = jax.random.categorical(t_key, logits, axis=-1)
            return x.at[:, coordinate].set(value.astype(x.dtype)), None

        x0 = jnp.zeros((num_samples, self.dim), jnp.int32)
        x, _ = jax.lax.scan(step, x0, (jax.random.split(key, self.dim), jnp.asarray(position)))
        return x

    def _check(self, x, name):
        if not hasattr(x, "shape"):
            x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"{name}: expected an input of shape (..., {self.dim}), got {tuple(x.shape)}")
        if not (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)):
            raise TypeError(f"{name}: expected integer class values, got dtype {x.dtype}")
        return x.astype(jnp.int32) if jnp.issubdtype(x.dtype, jnp.floating) else x


def made(dim: int, hidden: Sequence[int] = (256,), num_classes: int = 2, order: Sequence[int] | None = None) -> MADE:
    """MADE for ``dim`` discrete variables with ``num_classes`` values; ``order`` is a
    permutation of ``1..dim`` giving each input's place in the autoregressive order
    (default: the natural order)."""
    for name, value in (("dim", dim), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "num_classes" else 1):
            raise ValueError(f"made: expected {name} to be an int >= {2 if name == 'num_classes' else 1}, got {value!r}")
    hidden = tuple(hidden)
    if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in hidden):
        raise ValueError(f"made: expected hidden to be a non-empty sequence of positive ints, got {hidden!r}")
    order = tuple(range(1, dim + 1)) if order is None else tuple(int(o) for o in order)
    if sorted(order) != list(range(1, dim + 1)):
        raise ValueError(f"made: expected order to be a permutation of 1..{dim}, got {order!r}")
    return MADE(dim, num_classes, hidden, order)
