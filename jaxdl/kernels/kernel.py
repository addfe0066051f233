"""The ``Kernel`` type: infinite-width NNGP and NTK covariances with their layout.

Seed formulas: the NNGP kernel recursion ``K^{l+1} = E[phi(u) phi(v)]`` over
``(u, v) ~ N(0, K^l)`` and the NTK recursion
``Theta^{l+1} = K^{l+1} + E[phi'(u) phi'(v)] Theta^l`` (lecture notes,
"Neural tangent kernel" / "Gaussian processes").

Layout (the neural-tangents convention, so that ``Kernel`` objects are
interchangeable with NT's):

* ``nngp``, ``ntk``: ``f[n1, n2, X, X', Y, Y', ...]`` with the spatial axes of
  both inputs interleaved ("zipped"), or ``f[n1, n2, X, Y, ...]`` when
  ``diagonal_spatial`` (only same-position covariances are stored);
* ``cov1``, ``cov2``: the same for one batch with itself, with one leading batch
  axis when ``diagonal_batch`` (only each sample's own covariance), two
  otherwise. ``cov2`` is ``None`` when ``x2`` is ``x1``.

jaxdl keeps the spatial axes in their natural order internally; ``is_reversed``
only records whether neural-tangents would present them reversed (it does after
an odd number of shared-weight convolutions), and the public ``kernel_fn``
applies that reversal once at its boundary. Written by hand because no library
provides an NT-compatible kernel container.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

_ARRAY_FIELDS = ("nngp", "ntk", "cov1", "cov2", "x1_is_x2", "mask1", "mask2")
_STATIC_FIELDS = (
    "is_gaussian",
    "is_reversed",
    "is_input",
    "diagonal_batch",
    "diagonal_spatial",
    "shape1",
    "shape2",
    "batch_axis",
    "channel_axis",
)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Infinite-width covariances of a layer's outputs (a pytree).

    Attributes:
      nngp: f[n1, n2, ...spatial] NNGP covariance between the two batches.
      ntk: f[n1, n2, ...spatial] neural tangent kernel, or ``None`` if not computed.
      cov1: f[n1, (n1,) ...spatial] covariance of the first batch with itself.
      cov2: f[n2, (n2,) ...spatial] the same for the second batch, ``None`` if x2 is x1.
      x1_is_x2: bool[] whether both batches are the same inputs.
      is_gaussian: outputs are mean-zero Gaussian given the inputs (after an affine layer).
      is_reversed: NT presents the spatial axes in reversed order.
      is_input: the kernel is the input layer's (kept for NT compatibility).
      diagonal_batch: ``cov1``/``cov2`` store only per-sample covariances.
      diagonal_spatial: only same-position covariances are stored.
      shape1, shape2: shapes of the (finite) activations of the two batches.
      batch_axis, channel_axis: positions of those axes in the activations.
      mask1, mask2: ``bool`` masks of the activations (``True``: masked; channel axis of
        size 1), or ``None`` without ``mask_constant`` (see :mod:`jaxdl.kernels.masking_rules`).
    """

    nngp: Any
    ntk: Any
    cov1: Any
    cov2: Any
    x1_is_x2: Any
    is_gaussian: bool
    is_reversed: bool
    is_input: bool
    diagonal_batch: bool
    diagonal_spatial: bool
    shape1: tuple[int, ...]
    shape2: tuple[int, ...]
    batch_axis: int
    channel_axis: int
    mask1: Any = None
    mask2: Any = None

    def replace(self, **changes) -> Kernel:
        return dataclasses.replace(self, **changes)

    def asdict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def reverse(self) -> Kernel:
        """Reverse the order of the spatial axes of every covariance array."""
        cov_batch_ndim = 1 if self.diagonal_batch else 2
        flip = lambda mat, batch_ndim: reverse_spatial(mat, batch_ndim, self.diagonal_spatial)
        return self.replace(
            nngp=flip(self.nngp, 2),
            ntk=flip(self.ntk, 2),
            cov1=flip(self.cov1, cov_batch_ndim),
            cov2=flip(self.cov2, cov_batch_ndim),
            is_reversed=not self.is_reversed,
        )


def canonical_get(get):
    """neural-tangents' ``get`` convention: names are case-insensitive.

    ``'NTK'`` -> ``'ntk'``; a tuple or list of names -> a tuple of lower-cased
    names (so namedtuple results have lower-case fields, as in NT); ``None``
    stays ``None``. Anything else is returned unchanged for the caller to reject.
    Every public function taking ``get`` calls this first.
    """
    if isinstance(get, str):
        return get.lower()
    if isinstance(get, (tuple, list)):
        return tuple(g.lower() if isinstance(g, str) else g for g in get)
    return get


def reverse_spatial(mat, batch_ndim: int, diagonal_spatial: bool):
    """Reverse the spatial axis order of one covariance array (pairs stay together)."""
    if mat is None or jnp.ndim(mat) <= batch_ndim:
        return mat
    group = 1 if diagonal_spatial else 2
    n_spatial = (mat.ndim - batch_ndim) // group
    order = list(range(batch_ndim))
    for s in reversed(range(n_spatial)):
        order += [batch_ndim + group * s + j for j in range(group)]
    return jnp.transpose(mat, order)


def _flatten(k: Kernel):
    children = tuple(getattr(k, name) for name in _ARRAY_FIELDS)
    aux = tuple(getattr(k, name) for name in _STATIC_FIELDS)
    return children, aux


def _unflatten(aux, children) -> Kernel:
    return Kernel(**dict(zip(_ARRAY_FIELDS, children)), **dict(zip(_STATIC_FIELDS, aux)))


jax.tree_util.register_pytree_node(Kernel, _flatten, _unflatten)
