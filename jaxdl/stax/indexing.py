"""``Index``: basic numpy indexing ``x[idx]`` as a layer, and the ``Slice`` helper
that builds ``idx`` (``stax.Index(stax.Slice[::2, :4, 0, ...])``), as in
neural-tangents.

``idx`` holds ints, slices and at most one ``...``; an int removes its axis. In
the infinite-width kernel (:mod:`jaxdl.kernels.indexing_rules`) the channel axis
may only be kept whole (``:``) and the batch axis only sliced, never removed.
"""

from __future__ import annotations

import numpy as np

from jaxdl.stax.layer import LayerSpec, check_array, check_shape, make_layer
from jaxdl.stax.masking import with_masking


class _Slice:
    """``Slice[1, :, 2:8:3] == (1, slice(None), slice(2, 8, 3))``."""

    def __getitem__(self, idx):
        return idx

    def __repr__(self) -> str:
        return "Slice"


Slice = _Slice()


def canonical_index(layer: str, idx, ndim: int) -> tuple:
    """``idx`` as one int or slice per axis (``...`` expanded, missing axes ``:``)."""
    items = idx if isinstance(idx, tuple) else (idx,)
    for item in items:
        if not (item is Ellipsis or isinstance(item, slice) or (isinstance(item, (int, np.integer))
                                                                 and not isinstance(item, bool))):
            raise TypeError(f"{layer}: expected idx of ints, slices and '...', got {item!r} in {idx!r}")
    if sum(item is Ellipsis for item in items) > 1:
        raise ValueError(f"{layer}: expected at most one '...' in idx, got {idx!r}")
    if len(items) - (Ellipsis in items) > ndim:
        raise ValueError(f"{layer}: expected an input of rank >= {len(items) - (Ellipsis in items)} for idx {idx!r}, "
                         f"got rank {ndim}")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (ndim - len(items) + 1) + items[at + 1 :]
    return tuple(int(i) if not isinstance(i, slice) else i for i in items) + (slice(None),) * (ndim - len(items))


def sliced_shape(layer: str, shape, idx) -> tuple[int, ...]:
    """The shape of ``x[idx]`` for ``x`` of ``shape`` (``-1`` kept on axes indexed by ``:``)."""
    canonical = canonical_index(layer, idx, len(shape))
    out = []
    for size, item in zip(shape, canonical):
        if size == -1:
            if item != slice(None):
                raise ValueError(f"{layer}: expected a known size on an axis indexed by {item!r}, got -1 (axis of unknown size)")
            out.append(-1)
        elif isinstance(item, slice):
            out.append(len(range(*item.indices(size))))
        elif not -size <= item < size:
            raise ValueError(f"{layer}: expected index {item} within an axis of size {size}")
    return tuple(out)


def Index(idx, batch_axis: int = 0, channel_axis: int = -1):
    """``x -> x[idx]`` (basic indexing: ints, slices, ``...``; build ``idx`` with ``Slice``).

    Args:
      idx: e.g. ``Slice[:, 1:5, ::2]`` or ``(slice(None), 0)``.
      batch_axis, channel_axis: axes of the batch and the channels of the inputs.
    """
    name = "Index"
    canonical_index(name, idx, 64)  # type checks now; ranks are checked at call time

    def init_fn(key, input_shape):
        input_shape = check_shape(name, input_shape)
        return sliced_shape(name, input_shape, idx), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x, min_ndim=1)
        sliced_shape(name, tuple(x.shape), idx)
        return x[canonical_index(name, idx, x.ndim)]

    spec = LayerSpec(name, dict(idx=idx, batch_axis=batch_axis, channel_axis=channel_axis))
    return with_masking(make_layer(name, init_fn, apply_fn, spec))
