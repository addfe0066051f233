"""Interval bound propagation (IBP) through stax models: certified L∞ robustness.

The seeds name certified robustness by interval bound propagation (seed 000 §11.1,
"Certified robustness"). Given the box ``[l, u] = [x - ε, x + ε]`` (clipped to the
input domain), every layer maps a box to a box that contains the layer's outputs
for all inputs in it (Gowal et al. 2018):

* affine layers (``Dense``, ``Conv``, ``ConvLocal``): centre ``c = (u + l)/2`` and
  radius ``r = (u - l)/2`` go to ``f(c)`` and ``|W| r``; this is exact for one
  affine layer (each output's extremes are attained at a corner of the box);
* layers that are non-decreasing in every input (``AvgPool``, ``SumPool``,
  ``MaxPool``, ``GlobalAvgPool``, ``GlobalSumPool``, ``Flatten``, ``Identity``,
  ``Dropout`` at inference, and the ``FanInSum``/``FanInConcat`` merges) map ``l`` and
  ``u`` themselves;
* elementwise layers that are monotone on each half-line (``Relu``, ``LeakyRelu``,
  ``ABRelu``, ``Abs``, ``Elu``, ``Erf``, ``Sigmoid_like``, ``Tanh``, ``Sigmoid``,
  ``Softplus``, ``Sign``, ``Exp``, ``Gaussian``, ``Monomial``, ``RectifiedMonomial``)
  take the extremes of ``φ(l)``, ``φ(u)`` and ``φ(0)`` when ``0 ∈ [l, u]``;
* ``FanInProd`` multiplies intervals (min and max of the corner products);
  ``serial``/``repeat``/``parallel``/``FanOut`` route the boxes.

Any other layer raises a ``ValueError`` naming it. The walk over the model's
``LayerSpec`` tree follows :func:`jaxdl.theory.convolution.receptive_field`; layers are
rebuilt from their spec to reuse their own forward code.

From the output box: an example is certified when the lower bound of its true
logit exceeds the upper bounds of all others; IBP training minimises the
cross-entropy of the worst-case logits ``z_y = l_y``, ``z_j = u_j`` (an upper bound
of the robust cross-entropy).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp

from jaxdl import stax
from jaxdl.robust.attacks import check_eps, cross_entropy
from jaxdl.stax.combinators import child_params
from jaxdl.stax.layer import Layer, LayerSpec

AFFINE = ("Dense", "Conv", "ConvLocal")
MONOTONE = ("AvgPool", "SumPool", "MaxPool", "GlobalAvgPool", "GlobalSumPool", "Flatten", "Identity")
HALF_LINE_MONOTONE = ("ABRelu", "Elu", "Erf", "Tanh", "Sigmoid", "Softplus", "Sign", "Exp", "Gaussian",
                      "Monomial", "RectifiedMonomial")  # fmt: skip
SUPPORTED = AFFINE + MONOTONE + HALF_LINE_MONOTONE + (
    "Dropout", "serial", "repeat", "parallel", "FanOut", "FanInSum", "FanInConcat", "FanInProd")  # fmt: skip


def _rebuild(spec: LayerSpec) -> Layer:
    """The layer ``spec`` describes, rebuilt from its constructor and hyperparameters."""
    constructor = getattr(stax, spec.kind)
    accepted = inspect.signature(constructor).parameters
    return constructor(**{k: v for k, v in spec.hyper.items() if k in accepted})


def _unsupported(kind: str, why: str = ""):
    raise ValueError(
        f"ibp_bounds: unsupported layer {kind}{why}; interval bound propagation supports "
        f"{', '.join(sorted(SUPPORTED))}"
    )


def _affine(spec, params, lower, upper):
    layer = _rebuild(spec)
    if not isinstance(params, dict) or "W" not in params:
        raise ValueError(f"ibp_bounds: {spec.kind}: expected params with 'W', got {type(params).__name__}")
    centre = layer.apply(params, (upper + lower) / 2)
    radius = layer.apply({"W": jnp.abs(params["W"])}, (upper - lower) / 2)  # no bias: |W| r
    return centre - radius, centre + radius


def _elementwise(spec, lower, upper):
    fn = _rebuild(spec).apply
    f_lower, f_upper = fn({}, lower), fn({}, upper)
    f_zero = fn({}, jnp.clip(jnp.zeros_like(lower), lower, upper))  # φ at 0 if 0 is inside, else at an end
    return (jnp.minimum(jnp.minimum(f_lower, f_upper), f_zero),
            jnp.maximum(jnp.maximum(f_lower, f_upper), f_zero))  # fmt: skip


def _product(boxes):
    lower, upper = boxes[0]
    for l2, u2 in boxes[1:]:
        corners = jnp.stack([lower * l2, lower * u2, upper * l2, upper * u2])
        lower, upper = jnp.min(corners, axis=0), jnp.max(corners, axis=0)
    return lower, upper


def _walk(spec: LayerSpec | None, params, boxes: list):
    """The output boxes of ``spec`` for the input ``boxes`` (a list of ``(l, u)``)."""
    if spec is None:
        _unsupported("without a LayerSpec", " (a custom layer carries no spec)")
    kind = spec.kind
    if kind == "serial":
        names = [f"{child.kind if child else 'Layer'}_{i}" for i, child in enumerate(spec.children)]
        for child, child_p in zip(spec.children, child_params("ibp_bounds", params, names)):
            boxes = _walk(child, child_p, boxes)
        return boxes
    if kind == "repeat":
        for i in range(int(spec.hyper["n"])):
            boxes = _walk(spec.children[0], jax.tree.map(lambda a: a[i], params), boxes)
        return boxes
    if kind == "parallel":
        if len(boxes) != len(spec.children):
            raise ValueError(f"ibp_bounds: parallel: {len(spec.children)} layers but {len(boxes)} inputs")
        names = [f"{child.kind if child else 'Layer'}_{i}" for i, child in enumerate(spec.children)]
        return [_walk(c, p, [b])[0] for c, p, b in zip(spec.children, child_params("ibp_bounds", params, names), boxes)]
    if kind == "FanOut":
        return boxes * int(spec.hyper["num"])
    if kind == "FanInSum":
        return [(sum(l for l, _ in boxes), sum(u for _, u in boxes))]
    if kind == "FanInConcat":
        axis = spec.hyper.get("axis", -1)
        return [(jnp.concatenate([l for l, _ in boxes], axis), jnp.concatenate([u for _, u in boxes], axis))]
    if kind == "FanInProd":
        return [_product(boxes)]
    if len(boxes) != 1:
        raise ValueError(f"ibp_bounds: {kind} takes one input, got {len(boxes)} branches (missing FanIn?)")
    ((lower, upper),) = boxes
    if kind in AFFINE:
        return [_affine(spec, params, lower, upper)]
    if kind in ("Dropout", "Identity"):
        return boxes
    if kind in MONOTONE:
        layer = _rebuild(spec)
        return [(layer.apply({}, lower), layer.apply({}, upper))]
    if kind in HALF_LINE_MONOTONE:
        return [_elementwise(spec, lower, upper)]
    _unsupported(kind)


def interval_bounds(model, params, lower, upper):
    """Elementwise bounds ``(l_out, u_out)`` of ``model.apply(params, x)`` over every ``x``
    with ``lower <= x <= upper`` (a batch; for a ``parallel`` model, lists of boxes)."""
    spec = model.spec if isinstance(model, Layer) else model
    if not isinstance(spec, LayerSpec):
        raise TypeError(f"ibp_bounds: expected a stax Layer (or its LayerSpec), got {type(model).__name__}")
    single = not isinstance(lower, (list, tuple))
    boxes = [(lower, upper)] if single else list(zip(lower, upper))
    for l, u in boxes:
        if jnp.shape(l) != jnp.shape(u):
            raise ValueError(f"ibp_bounds: expected lower and upper of one shape, got {jnp.shape(l)} and {jnp.shape(u)}")
    out = _walk(spec, params, boxes)
    return out[0] if len(out) == 1 else (tuple(b[0] for b in out), tuple(b[1] for b in out))


def ibp_bounds(model, params, x, eps, *, domain=None):
    """Bounds of ``model``'s outputs over the L∞ ball ``‖x' - x‖_∞ <= eps`` (clipped to
    ``domain=(lo, hi)``), one box per example of the batch ``x``."""
    eps = check_eps("ibp_bounds", eps)
    x = jnp.asarray(x)
    lower, upper = x - eps, x + eps
    if domain is not None:
        lower, upper = jnp.clip(lower, *domain), jnp.clip(upper, *domain)
    return interval_bounds(model, params, lower, upper)


def worst_case_logits(lower, upper, y):
    """The logits that are worst for the label ``y`` inside the box: ``l_y`` for the true
    class, ``u_j`` for the others."""
    true = jax.nn.one_hot(y, lower.shape[-1], dtype=bool)
    return jnp.where(true, lower, upper)


def ibp_certified(model, params, x, y, eps, *, domain=None):
    """``bool[batch]``: IBP proves that no ``x'`` with ``‖x' - x‖_∞ <= eps`` (in the domain)
    changes the predicted class away from ``y``."""
    lower, upper = ibp_bounds(model, params, x, eps, domain=domain)
    true = jax.nn.one_hot(y, lower.shape[-1], dtype=bool)
    lower_true = jnp.sum(jnp.where(true, lower, 0.0), axis=-1)
    upper_others = jnp.max(jnp.where(true, -jnp.inf, upper), axis=-1)
    return lower_true > upper_others


def ibp_certified_accuracy(model, params, x, y, eps, *, domain=None) -> jax.Array:
    """Share of examples IBP certifies at radius ``eps``."""
    return jnp.mean(ibp_certified(model, params, x, y, eps, domain=domain))


def ibp_loss(model, params, x, y, eps, *, domain=None):
    """Mean cross-entropy of the worst-case logits (an upper bound of the robust loss)."""
    lower, upper = ibp_bounds(model, params, x, eps, domain=domain)
    return jnp.mean(cross_entropy(worst_case_logits(lower, upper, y), y))
