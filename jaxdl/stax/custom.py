"""Writing your own layer the neural-tangents way: the ``layer``, ``requires`` and
``supports_masking`` decorators and the ``Bool``/``Diagonal`` requirement algebra.

In neural-tangents a layer is a function returning ``(init_fn, apply_fn,
kernel_fn[, mask_fn])`` where ``kernel_fn`` maps a ``Kernel`` to a ``Kernel``;
``@layer`` makes its ``kernel_fn`` accept input arrays as well. The same code
runs here::

    @stax.layer
    @stax.supports_masking(remask_kernel=False)
    def Scale(c):
        init_fn = lambda key, shape: (shape, ())
        apply_fn = lambda params, x, **kwargs: c * x

        @stax.requires(diagonal_spatial=stax.Diagonal())
        def kernel_fn(k, **kwargs):
            return k.replace(nngp=c**2 * k.nngp, cov1=c**2 * k.cov1, ...)

        return init_fn, apply_fn, kernel_fn

The result is a jaxdl ``Layer`` whose spec has kind ``"Custom"``; its kernel
rule (:mod:`jaxdl.kernels.custom_rules`) hands the user's ``kernel_fn`` the
``Kernel`` in neural-tangents' presentation. ``requires`` states the input
kernel the layer needs (``batch_axis``, ``channel_axis``, ``diagonal_spatial``
as a ``Diagonal``), folded with the other layers' needs exactly like the
built-in layers' (:mod:`jaxdl.kernels.requirements`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable

from jaxdl.kernels.requirements import Diagonal
from jaxdl.stax.layer import Layer, LayerSpec, make_layer
from jaxdl.stax.masking import with_masking

_REQUIREMENTS = "_jaxdl_requirements"
_MASKING = "_jaxdl_masking"


class Bool(enum.IntEnum):
    """Three-valued logic of ``Diagonal``: ``NO`` < ``MAYBE`` < ``YES``; ``&`` is ``min``."""

    NO = 0
    MAYBE = 1
    YES = 2

    def __and__(self, other) -> Bool:
        return Bool(min(int(self), int(other)))

    __rand__ = __and__


def requires(**requirements):
    """Decorator for a ``kernel_fn``: the input kernel it needs, e.g.
    ``requires(batch_axis=0, channel_axis=-1, diagonal_spatial=Diagonal(input=Bool.NO))``."""
    allowed = {"batch_axis", "channel_axis", "diagonal_spatial", "diagonal_batch", "use_dropout"}
    unknown = set(requirements) - allowed
    if unknown:
        raise TypeError(f"requires: unexpected requirements {sorted(unknown)}; expected some of {sorted(allowed)}")

    def decorate(kernel_fn: Callable) -> Callable:
        @functools.wraps(kernel_fn)
        def with_requirements(k, **kwargs):
            return kernel_fn(k, **kwargs)

        setattr(with_requirements, _REQUIREMENTS, dict(requirements))
        return with_requirements

    return decorate


def supports_masking(remask_kernel: bool):
    """Decorator (below ``@layer``) for a layer function returning
    ``(init_fn, apply_fn, kernel_fn[, mask_fn])`` whose ``apply_fn`` takes the input
    mask as ``mask=``: the layer then accepts ``mask_constant``. ``mask_fn(mask,
    input_shape)`` maps input to output masks (default: unchanged). jaxdl zeroes the
    covariances of masked positions after every masked layer, so ``remask_kernel``
    is accepted for compatibility and needs no action."""
    del remask_kernel

    def decorate(layer_fn: Callable) -> Callable:
        @functools.wraps(layer_fn)
        def masked_layer_fn(*args, **kwargs):
            fns = tuple(layer_fn(*args, **kwargs))
            if len(fns) not in (3, 4):
                raise ValueError(
                    f"supports_masking: expected (init_fn, apply_fn, kernel_fn[, mask_fn]), got {len(fns)} functions"
                )
            mask_fn = fns[3] if len(fns) == 4 else (lambda mask, input_shape: mask)
            return _MaskedFns(fns[:3], mask_fn)

        return masked_layer_fn

    return decorate


class _MaskedFns(tuple):
    """``(init_fn, apply_fn, kernel_fn)`` that also carries a ``mask_fn``."""

    def __new__(cls, fns, mask_fn):
        out = super().__new__(cls, fns)
        out.mask_fn = mask_fn
        return out


def _spatial_requirement(value):
    if value is None or isinstance(value, Diagonal):
        return value
    return Diagonal(input=Bool.YES if value else Bool.NO)


def layer(layer_fn: Callable) -> Callable:
    """Decorator: turn a function returning ``(init_fn, apply_fn, kernel_fn)`` with a
    ``Kernel -> Kernel`` ``kernel_fn`` into a stax layer constructor (a ``Layer``
    whose ``kernel_fn`` takes inputs or kernels, like every built-in layer)."""
    name = layer_fn.__name__

    @functools.wraps(layer_fn)
    def build(*args, **kwargs) -> Layer:
        fns = layer_fn(*args, **kwargs)
        if isinstance(fns, Layer):
            return fns
        masked = fns.mask_fn if isinstance(fns, _MaskedFns) else None
        fns = tuple(fns)
        if len(fns) != 3 or not all(callable(f) for f in fns):
            raise TypeError(f"{name}: expected the layer function to return (init_fn, apply_fn, kernel_fn), got {fns!r}")
        init_fn, apply_fn, kernel_fn = fns
        requirements = dict(getattr(kernel_fn, _REQUIREMENTS, {}))
        if "diagonal_spatial" in requirements:
            requirements["diagonal_spatial"] = _spatial_requirement(requirements["diagonal_spatial"])
        hyper = dict(name=name, init_fn=init_fn, kernel_fn=kernel_fn, requirements=requirements, mask_fn=masked)
        spec = LayerSpec("Custom", hyper)
        built = make_layer(name, init_fn, apply_fn, spec)
        return with_masking(built) if masked is not None else built

    return build


__all__ = ["Bool", "Diagonal", "layer", "requires", "supports_masking"]
