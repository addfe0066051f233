"""Normalizing flows: RealNVP affine coupling, permutations, invertible 1x1 mixing.

Seed formulas (seed 001 §19.3):

* change of variables for a bijection ``f: z ↦ x`` from a base density ``p_z``:
  ``log p_x(x) = log p_z(f^{-1}(x)) + log |det ∂f^{-1}(x)/∂x|
  = log p_z(z) − log |det ∂f(z)/∂z|`` (:meth:`Flow.log_prob`);
* the RealNVP coupling layer: with a binary ``mask`` selecting the untouched part
  ``x_{1:d}``, ``y = mask ⊙ x + (1 − mask) ⊙ (x ⊙ exp(s(mask ⊙ x)) + t(mask ⊙ x))``,
  whose Jacobian is triangular with ``log |det| = Σ (1 − mask) ⊙ s``
  (:func:`affine_coupling`). ``s`` and ``t`` come from one stax MLP (the
  conditioner) whose last layer starts at zero, so every coupling starts as the
  identity; ``s = c · tanh(raw / c)`` keeps the scales bounded (``c = 3``). Only
  the kept coordinates enter the conditioner and only the moved ones' ``s, t`` leave
  it (the same function without the products by zero).

Between couplings the dimensions are mixed by a fixed permutation
(:func:`permutation`, :func:`reverse`) or a learnt invertible linear map
(:func:`invertible_1x1`, Glow's LU form ``W = P L (U + diag(exp(log_s)))`` with
``log |det W| = Σ log_s``). A bijector is a plain :class:`Bijector` of pure
functions; :func:`flow` chains them over a standard-normal base and
:func:`realnvp` builds the usual stack.

Written here rather than taken from distrax: distrax is the reference of
``benchmarks/flows_vs_distrax.py`` (same weights, same log-probabilities), but it
pulls in TensorFlow Probability, which the core package does not depend on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import stax

_LOG_2PI = float(np.log(2 * np.pi))
SCALE_BOUND = 3.0


@dataclasses.dataclass(frozen=True)
class Bijector:
    """An invertible map of vectors ``f[..., dim]``.

    * ``init(key, dim) -> params``;
    * ``forward(params, z) -> (x, log|det ∂x/∂z|)``, the log-determinant per example;
    * ``inverse(params, x) -> (z, log|det ∂z/∂x|)``.
    """

    name: str
    init: Callable
    forward: Callable
    inverse: Callable


def _check_mask(name: str, mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 1 or not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"{name}: expected a 1-D mask of zeros and ones, got {mask!r}")
    if mask.all() or not mask.any():
        raise ValueError(f"{name}: the mask must keep some dimensions and transform others, got {mask.tolist()}")
    return mask.astype(np.float32)


def alternating_mask(dim: int, parity: int = 0) -> np.ndarray:
    """``[1, 0, 1, 0, ...]`` (``parity=1``: ``[0, 1, 0, 1, ...]``) of length ``dim``."""
    return ((np.arange(dim) + parity) % 2 == 0).astype(np.float32)


def checkerboard_mask(height: int, width: int, parity: int = 0) -> np.ndarray:
    """A flattened ``height x width`` checkerboard (``(row + col + parity)`` even → 1)."""
    rows, cols = np.indices((height, width))
    return ((rows + cols + parity) % 2 == 0).astype(np.float32).ravel()


def conditioner(dim: int, hidden: Sequence[int]):
    """The stax MLP ``f[..., dim] -> f[..., 2 dim]`` giving ``(shift, raw log-scale)``."""
    layers = []
    for width in hidden:
        layers += [stax.Dense(width, W_std=2**0.5, b_std=0.0, parameterization="standard"), stax.Relu()]
    layers.append(stax.Dense(2 * dim, b_std=0.0, parameterization="standard"))
    return stax.serial(*layers)


def coupling_shift_and_log_scale(raw):
    """Split the conditioner's output ``f[..., 2 dim]`` into ``(shift, log_scale)`` with
    ``log_scale = c tanh(raw / c)``."""
    shift, raw_scale = jnp.split(raw, 2, axis=-1)
    return shift, SCALE_BOUND * jnp.tanh(raw_scale / SCALE_BOUND)


def _restrict_conditioner(params, first: str, last: str, rows: np.ndarray, cols: np.ndarray) -> dict:
    """The conditioner's params cut down to what the coupling actually uses: rows ``rows`` of
    the first Dense's ``W`` and columns ``cols`` of the last Dense's ``W`` and ``b``.

    Why: the coupling feeds the conditioner ``mask ⊙ x``, whose zeroed inputs add nothing to
    the first layer's ``x W``, and keeps only the moved coordinates' shift and log-scale, so
    half of the first layer's inputs and of the last layer's outputs are wasted work. stax
    ``Dense`` with ``parameterization="standard"`` computes ``x W + b`` without rescaling by
    the fan-in, so the network with the cut-down weights on the kept coordinates is exactly
    the same function restricted to the part used. The stored params keep their full shapes.
    """
    params = dict(params)
    params[first] = {**params[first], "W": params[first]["W"][rows]}
    params[last] = {**params[last], "W": params[last]["W"][:, cols], "b": params[last]["b"][..., cols]}
    return params


def affine_coupling(mask, hidden: Sequence[int] = (64, 64)) -> Bijector:
    """RealNVP's affine coupling layer (seed 001 §19.3) for ``mask`` (1 = passed through,
    0 = scaled and shifted by functions of the passed-through part).

    Computed on the two parts separately (same function, fewer FLOPs): one static permutation
    puts the coordinates in ``[kept, moved]`` order, the conditioner sees only the kept part and
    produces only the moved part's ``(shift, log_scale)`` (see :func:`_restrict_conditioner`),
    and the inverse permutation merges the two parts back into the original order.
    """
    mask = _check_mask("affine_coupling", mask)
    dim = mask.shape[0]
    net = conditioner(dim, tuple(hidden))
    kept, moved = np.flatnonzero(mask), np.flatnonzero(1 - mask)
    used_outputs = np.concatenate([moved, dim + moved])  # the moved coordinates' shift, raw log-scale
    split_order = np.concatenate([kept, moved])  # original order -> [kept part, moved part]
    merge_order = np.argsort(split_order)  # and back
    first, last = "Dense_0", f"Dense_{2 * len(hidden)}"

    def init(key, dim_):
        if dim_ != dim:
            raise ValueError(f"affine_coupling: built for dim {dim}, got dim {dim_}")
        _, params = net.init(key, (-1, dim))
        params[last] = jax.tree.map(jnp.zeros_like, params[last])  # start at the identity
        return params

    def shift_and_log_scale(params, kept_part):
        """``(shift, log_scale)`` of the moved coordinates, from the kept ones."""
        restricted = _restrict_conditioner(params, first, last, kept, used_outputs)
        return coupling_shift_and_log_scale(net.apply(restricted, kept_part))

    def split(x):
        """``(kept part, moved part)`` of ``x[..., dim]``."""
        x = x[..., split_order]
        return x[..., : len(kept)], x[..., len(kept) :]

    def merge(kept_part, moved_part):
        """The inverse of :func:`split`."""
        return jnp.concatenate([kept_part, moved_part], axis=-1)[..., merge_order]

    def forward(params, z):
        z = _check_input("affine_coupling", z, dim)
        kept_part, moved_part = split(z)
        shift, log_scale = shift_and_log_scale(params, kept_part)
        moved_part = moved_part * jnp.exp(log_scale) + shift
        return merge(kept_part, moved_part), jnp.sum(log_scale, axis=-1)

    def inverse(params, x):
        x = _check_input("affine_coupling", x, dim)
        kept_part, moved_part = split(x)
        shift, log_scale = shift_and_log_scale(params, kept_part)  # x's kept part == z's
        moved_part = (moved_part - shift) * jnp.exp(-log_scale)
        return merge(kept_part, moved_part), -jnp.sum(log_scale, axis=-1)

    return Bijector("affine_coupling", init, forward, inverse)


def permutation(perm) -> Bijector:
    """``x = z[..., perm]`` (log-determinant 0)."""
    perm = np.asarray(perm)
    if perm.ndim != 1 or sorted(perm.tolist()) != list(range(perm.shape[0])):
        raise ValueError(f"permutation: expected a permutation of 0..dim-1, got {perm!r}")
    inverse_perm = np.argsort(perm)
    dim = perm.shape[0]

    def init(key, dim_):
        if dim_ != dim:
            raise ValueError(f"permutation: built for dim {dim}, got dim {dim_}")
        return {}

    def forward(params, z):
        z = _check_input("permutation", z, dim)
        return z[..., perm], jnp.zeros(z.shape[:-1], z.dtype)

    def inverse(params, x):
        x = _check_input("permutation", x, dim)
        return x[..., inverse_perm], jnp.zeros(x.shape[:-1], x.dtype)

    return Bijector("permutation", init, forward, inverse)


def reverse(dim: int) -> Bijector:
    """The permutation that reverses the order of the ``dim`` coordinates."""
    return permutation(np.arange(dim)[::-1])


def invertible_1x1(dim: int, seed: int = 0) -> Bijector:
    """A learnt invertible linear map ``x = W z`` in Glow's LU form
    ``W = P L (U + diag(exp(log_s)))`` (``P`` a fixed random permutation drawn from
    ``seed``, ``L`` unit lower-, ``U`` strictly upper-triangular), so that
    ``log |det W| = Σ log_s``. Starts at ``W = P``."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"invertible_1x1: expected dim to be a positive int, got {dim!r}")
    P = np.eye(dim, dtype=np.float32)[np.random.default_rng(seed).permutation(dim)]
    lower = np.tril(np.ones((dim, dim), np.float32), -1)

    def init(key, dim_):
        if dim_ != dim:
            raise ValueError(f"invertible_1x1: built for dim {dim}, got dim {dim_}")
        return {"L": jnp.zeros((dim, dim)), "U": jnp.zeros((dim, dim)), "log_s": jnp.zeros((dim,))}

    def factors(params):
        L = params["L"] * lower + jnp.eye(dim, dtype=params["L"].dtype)
        U = params["U"] * lower.T + jnp.diag(jnp.exp(params["log_s"]))
        return L, U

    def weight(params):
        L, U = factors(params)
        return jnp.asarray(P, L.dtype) @ L @ U

    def forward(params, z):
        z = _check_input("invertible_1x1", z, dim)
        log_det = jnp.sum(params["log_s"])
        return z @ weight(params).T, jnp.broadcast_to(log_det, z.shape[:-1]).astype(z.dtype)

    def inverse(params, x):
        x = _check_input("invertible_1x1", x, dim)
        L, U = factors(params)
        y = (x @ jnp.asarray(P, x.dtype)).reshape(-1, dim).T  # P^T x, as columns
        y = jax.scipy.linalg.solve_triangular(L, y, lower=True, unit_diagonal=True)
        z = jax.scipy.linalg.solve_triangular(U, y, lower=False).T.reshape(x.shape)
        log_det = -jnp.sum(params["log_s"])
        return z, jnp.broadcast_to(log_det, x.shape[:-1]).astype(x.dtype)

    return Bijector("invertible_1x1", init, forward, inverse)


def _check_input(name: str, x, dim: int):
    if not hasattr(x, "shape"):
        x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[-1] != dim:
        raise ValueError(f"{name}: expected an input of shape (..., {dim}), got {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected a float input, got dtype {x.dtype}")
    return x


@dataclasses.dataclass(frozen=True)
class Flow:
    """A chain of bijectors over a standard-normal base: ``x = f_K ∘ … ∘ f_1 (z)``.

    ``params`` is a dict ``{"<index>_<bijector name>": params}``.
    """

    bijectors: tuple[Bijector, ...]
    dim: int

    def _names(self):
        return [f"{i}_{b.name}" for i, b in enumerate(self.bijectors)]

    def init(self, key) -> dict:
        keys = jax.random.split(key, len(self.bijectors))
        return {name: b.init(k, self.dim) for name, b, k in zip(self._names(), self.bijectors, keys)}

    def forward(self, params, z):
        """``(x, log|det ∂x/∂z|)``."""
        z = _check_input("Flow.forward", z, self.dim)
        total = jnp.zeros(z.shape[:-1], z.dtype)
        for name, b in zip(self._names(), self.bijectors):
            z, log_det = b.forward(params[name], z)
            total = total + log_det
        return z, total

    def inverse(self, params, x):
        """``(z, log|det ∂z/∂x|)``."""
        x = _check_input("Flow.inverse", x, self.dim)
        total = jnp.zeros(x.shape[:-1], x.dtype)
        for name, b in reversed(list(zip(self._names(), self.bijectors))):
            x, log_det = b.inverse(params[name], x)
            total = total + log_det
        return x, total

    def log_prob(self, params, x):
        """``log p_x(x) = log N(z; 0, I) + log|det ∂z/∂x|`` with ``z = f^{-1}(x)``, per example (nats)."""
        z, log_det = self.inverse(params, x)
        return _standard_normal_log_prob(z) + log_det

    def sample(self, params, key, num_samples: int, dtype=jnp.float32):
        """``num_samples`` draws ``f(z)``, ``z ~ N(0, I)``."""
        return self.sample_and_log_prob(params, key, num_samples, dtype)[0]

    def sample_and_log_prob(self, params, key, num_samples: int, dtype=jnp.float32):
        """Draws and their log-densities, from one forward pass:
        ``log p_x(x) = log N(z) − log|det ∂x/∂z|``."""
        z = jax.random.normal(key, (num_samples, self.dim), dtype)
        x, log_det = self.forward(params, z)
        return x, _standard_normal_log_prob(z) - log_det


def _standard_normal_log_prob(z):
    return -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * z.shape[-1] * _LOG_2PI


def flow(bijectors: Sequence[Bijector], dim: int) -> Flow:
    """Chain ``bijectors`` (applied first to last in the forward direction ``z → x``)."""
    if not bijectors or not all(isinstance(b, Bijector) for b in bijectors):
        raise TypeError(f"flow: expected a non-empty sequence of Bijector, got {bijectors!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"flow: expected dim to be a positive int, got {dim!r}")
    return Flow(tuple(bijectors), dim)


def realnvp(dim: int, num_couplings: int = 4, hidden: Sequence[int] = (64, 64), mixing: str = "reverse",
            masks: Sequence | None = None) -> Flow:  # fmt: skip
    """RealNVP: ``num_couplings`` affine couplings with alternating masks (or ``masks``),
    separated by a mixing layer: ``"reverse"``, ``"1x1"`` (:func:`invertible_1x1`) or
    ``"none"``."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"realnvp: expected dim to be an int >= 2, got {dim!r}")
    if isinstance(num_couplings, bool) or not isinstance(num_couplings, int) or num_couplings < 1:
        raise ValueError(f"realnvp: expected num_couplings to be a positive int, got {num_couplings!r}")
    if mixing not in ("reverse", "1x1", "none"):
        raise ValueError(f"realnvp: expected mixing to be one of 'reverse', '1x1', 'none', got {mixing!r}")
    if masks is None:  # alternate the transformed half; an even-length reversal already swaps parities
        alternate = not (mixing == "reverse" and dim % 2 == 0)
        masks = [alternating_mask(dim, i % 2 if alternate else 0) for i in range(num_couplings)]
    if len(masks) != num_couplings:
        raise ValueError(f"realnvp: expected {num_couplings} masks, got {len(masks)}")
    bijectors = []
    for i, mask in enumerate(masks):
        bijectors.append(affine_coupling(mask, hidden))
        if i < num_couplings - 1 and mixing == "reverse":
            bijectors.append(reverse(dim))
        elif i < num_couplings - 1 and mixing == "1x1":
            bijectors.append(invertible_1x1(dim, seed=i))
    return flow(bijectors, dim)
