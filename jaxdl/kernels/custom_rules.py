"""Kernel rule of layers written with ``@stax.layer`` (spec kind ``"Custom"``).

The user's ``kernel_fn`` maps a ``Kernel`` to a ``Kernel`` in neural-tangents'
presentation (spatial axes reversed when ``is_reversed``), so the rule converts
jaxdl's natural-order kernel to that presentation, calls it, and converts the
result back; the output shapes come from the layer's ``init_fn`` (traced
abstractly), as neural-tangents infers them from the finite layer.
"""

from __future__ import annotations

import inspect

import jax

from jaxdl.kernels.kernel import Kernel


def _presented(k: Kernel) -> Kernel:
    return k.reverse().replace(is_reversed=True) if k.is_reversed else k


def _natural(k: Kernel) -> Kernel:
    return k.reverse().replace(is_reversed=True) if k.is_reversed else k


def _output_shape(init_fn, shape):
    shapes = []

    def run(key):
        out_shape, params = init_fn(key, shape)
        shapes.append(tuple(out_shape))
        return params

    jax.eval_shape(run, jax.random.key(0))
    return shapes[0]


def _accepts(fn, name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == name for p in parameters)


def custom(hyper, k, ctx):
    kernel_fn = hyper["kernel_fn"]
    kwargs = {"pattern": ctx.get("pattern", (None, None))} if _accepts(kernel_fn, "pattern") else {}
    if isinstance(k, Kernel):
        out = kernel_fn(_presented(k), **kwargs)
        if not isinstance(out, Kernel):
            raise TypeError(f"{hyper['name']}: expected kernel_fn to return a Kernel, got {type(out).__name__}")
        return _natural(out).replace(
            shape1=_output_shape(hyper["init_fn"], k.shape1), shape2=_output_shape(hyper["init_fn"], k.shape2)
        )
    out = kernel_fn([_presented(ki) for ki in k], **kwargs)
    return [_natural(o) for o in out] if isinstance(out, (list, tuple)) else _natural(out)


RULES = {"Custom": custom}
