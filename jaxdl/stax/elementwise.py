"""Elementwise nonlinearities (activation functions) as stax layers.

Every neural-tangents activation (same names, arguments and defaults) plus the
seeds' activations that neural-tangents lacks: ``Tanh``, ``Sigmoid`` (the
logistic function), ``Softplus`` ``log(1 + e^z)``, ``Elu``, ``Softmax`` and
``Maxout`` (the seeds' k-hinge ``max(w_1^T x + b_1, ..., w_k^T x + b_k)``,
applied to groups of ``k`` consecutive channels after a ``Dense(k * m)``).
GELU follows the seeds' ``z * Pr(Z <= z)``, ``Z ~ N(0, 1)``.

Layers that are reparameterisations of another share its spec, so the kernel
module knows one rule per family: ``Relu``/``LeakyRelu``/``Abs`` are
``ABRelu``; ``Sigmoid_like`` is ``Erf``; ``Cos`` is ``Sin`` with a phase shift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from jaxdl.stax.layer import (
    LayerSpec,
    check_array,
    check_positive_int,
    check_shape,
    make_layer,
)
from jaxdl.stax.masking import with_masking


def _elementwise(name: str, fn: Callable, spec: LayerSpec):
    def init_fn(key, input_shape):
        return check_shape(name, input_shape), {}

    def apply_fn(params, x, **kwargs):
        return fn(check_array(name, x, min_ndim=0))

    return with_masking(make_layer(name, init_fn, apply_fn, spec))


def _real_scalar(layer: str, key: str, value) -> float:
    """``value`` as a Python float, for any real scalar (bool, int, float, NumPy
    scalar, concrete 0-d array); TypeError for anything else."""
    if isinstance(value, (str, bytes)) or value is None or jnp.ndim(value) != 0:
        raise TypeError(f"{layer}: expected {key} to be a real scalar, got {value!r}")
    dtype = jnp.result_type(value)
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)) or jnp.iscomplexobj(value):
        raise TypeError(f"{layer}: expected {key} to be a real scalar, got {value!r}")
    return float(value)


def _check_real(layer: str, **values) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{layer}: expected {key} to be a real number, got {value!r}")
        if not math.isfinite(value):  # a NaN or infinite hyperparameter makes every output NaN
            raise ValueError(f"{layer}: expected {key} to be finite, got {value!r}")


def ABRelu(a: float, b: float, do_stabilize: bool = False):
    """``a * min(x, 0) + b * max(x, 0)``. ``do_stabilize`` only affects the kernel."""
    _check_real("ABRelu", a=a, b=b)
    return _abrelu("ABRelu", a, b, do_stabilize)


def _abrelu(name, a, b, do_stabilize):
    spec = LayerSpec("ABRelu", dict(a=a, b=b, do_stabilize=do_stabilize))
    return _elementwise(name, lambda x: a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0), spec)


def Relu(do_stabilize: bool = False):
    """``max(x, 0)``."""
    return _abrelu("Relu", 0.0, 1.0, do_stabilize)


def LeakyRelu(alpha: float, do_stabilize: bool = False):
    """``alpha * min(x, 0) + max(x, 0)``."""
    _check_real("LeakyRelu", alpha=alpha)
    return _abrelu("LeakyRelu", alpha, 1.0, do_stabilize)


def Abs(do_stabilize: bool = False):
    """``|x|``."""
    return _abrelu("Abs", -1.0, 1.0, do_stabilize)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """``a * erf(b * x) + c``."""
    _check_real("Erf", a=a, b=b, c=c)
    return _erf("Erf", a, b, c)


def _erf(name, a, b, c):
    return _elementwise(name, lambda x: a * erf(b * x) + c, LayerSpec("Erf", dict(a=a, b=b, c=c)))


def Sigmoid_like():
    """``0.5 * erf(x / 2.4020563531719796) + 0.5``, an erf fit of the logistic function."""
    return _erf("Sigmoid_like", 0.5, 1 / 2.4020563531719796, 0.5)


def Gelu(approximate: bool = False):
    """``x * Phi(x)`` (``approximate=True``: the tanh approximation, finite width only)."""
    spec = LayerSpec("Gelu", dict(approximate=approximate))
    return _elementwise("Gelu", lambda x: jax.nn.gelu(x, approximate=approximate), spec)


def Sign():
    """``sign(x)``."""
    return _elementwise("Sign", jnp.sign, LayerSpec("Sign"))


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """``a * sin(b * x + c)``."""
    _check_real("Sin", a=a, b=b, c=c)
    return _sin("Sin", a, b, c)


def _sin(name, a, b, c):
    return _elementwise(name, lambda x: a * jnp.sin(b * x + c), LayerSpec("Sin", dict(a=a, b=b, c=c)))


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """``a * cos(b * x + c)`` = ``a * sin(b * x + c + pi/2)``."""
    _check_real("Cos", a=a, b=b, c=c)
    return _sin("Cos", a, b, c + math.pi / 2)


def Rbf(gamma: float = 1.0):
    """``sqrt(2) * sin(sqrt(2 gamma) x + pi/4)``: its NNGP is the RBF kernel
    ``exp(-gamma |x - x'|^2 / d)``."""
    _check_real("Rbf", gamma=gamma)
    if gamma <= 0:
        raise ValueError(f"Rbf: expected gamma > 0, got {gamma!r}")
    fn = lambda x: math.sqrt(2) * jnp.sin(math.sqrt(2 * gamma) * x + math.pi / 4)  # noqa: E731
    return _elementwise("Rbf", fn, LayerSpec("Rbf", dict(gamma=gamma)))


def Exp(a: float = 1.0, b: float = 1.0):
    """``a * exp(b * x)``."""
    _check_real("Exp", a=a, b=b)
    return _elementwise("Exp", lambda x: a * jnp.exp(b * x), LayerSpec("Exp", dict(a=a, b=b)))


def Gaussian(a: float = 1.0, b: float = -1.0):
    """``a * exp(b * x**2)``."""
    _check_real("Gaussian", a=a, b=b)
    spec = LayerSpec("Gaussian", dict(a=a, b=b))
    return _elementwise("Gaussian", lambda x: a * jnp.exp(b * x**2), spec)


def _check_degree(layer: str, degree) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"{layer}: expected degree to be an int >= 0, got {degree!r}")
    return degree


def Monomial(degree: int):
    """``x ** degree``."""
    degree = _check_degree("Monomial", degree)
    spec = LayerSpec("Monomial", dict(degree=degree))
    return _elementwise("Monomial", lambda x: x**degree, spec)


def RectifiedMonomial(degree: int):
    """``(x >= 0) * x ** degree``: for ``degree = 0`` the unit step (0 for ``x < 0``,
    1 for ``x >= 0``), else ``max(x, 0) ** degree`` (derivative 1 at 0 for degree 1)."""
    degree = _check_degree("RectifiedMonomial", degree)
    spec = LayerSpec("RectifiedMonomial", dict(degree=degree))

    def fn(x):
        return jnp.where(x >= 0, x**degree, jnp.zeros_like(x))

    return _elementwise("RectifiedMonomial", fn, spec)


def Polynomial(coef: Sequence[float]):
    """``sum_i coef[i] * x**i``."""
    try:
        coef = tuple(float(c) for c in coef)
    except (TypeError, ValueError):
        raise TypeError(f"Polynomial: expected coef to be a sequence of real numbers, got {coef!r}") from None
    if not coef:
        raise ValueError("Polynomial: expected at least one coefficient, got none")
    _check_real("Polynomial", **{f"coef[{i}]": c for i, c in enumerate(coef)})

    def fn(x):
        dtype = jnp.result_type(x, 1.0)  # integer inputs: float coefficients, not truncated ones
        return jnp.polyval(jnp.asarray(coef[::-1], dtype=dtype), x.astype(dtype))

    return _elementwise("Polynomial", fn, LayerSpec("Polynomial", dict(coef=coef)))


def Hermite(degree: int):
    """Normalised probabilists' Hermite polynomial ``He_n(x) / sqrt(n!)`` (``n >= 0``),
    so that ``E[h_n(Z)^2] = 1`` for ``Z ~ N(0, 1)``; computed by the three-term
    recurrence ``He_{k+1} = x He_k - k He_{k-1}``.

    Its kernel assumes unit-variance inputs (as in neural-tangents).
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"Hermite: expected degree to be an int >= 0, got {degree!r}")

    def fn(x):
        previous, current = jnp.zeros_like(x), jnp.ones_like(x)
        for k in range(degree):
            previous, current = current, x * current - k * previous
        return current / math.sqrt(math.factorial(degree))

    return _elementwise("Hermite", fn, LayerSpec("Hermite", dict(degree=degree)))


def Gabor():
    """The Gabor function ``exp(-x**2) * sin(x)``."""
    return _elementwise("Gabor", lambda x: jnp.exp(-(x**2)) * jnp.sin(x), LayerSpec("Gabor"))


def ExpNormalized(gamma: float = 1.0, shift: float = -1.0, do_clip: bool = False):
    """The normalised Gaussian kernel ``|x||x'| exp(gamma (cos(x, x') + shift))`` of
    neural-tangents: an infinite-width layer only (``apply_fn`` raises).

    As in neural-tangents, ``gamma`` and ``shift`` may be any real scalar: Python
    bools and ints (``True`` is 1), NumPy scalars or 0-d arrays; ``do_clip`` is
    read for its truth value.
    """
    gamma = _real_scalar("ExpNormalized", "gamma", gamma)
    shift = _real_scalar("ExpNormalized", "shift", shift)
    do_clip = bool(do_clip)

    def fn(x):
        raise NotImplementedError("ExpNormalized: has no finite-width apply_fn, only a kernel_fn")

    spec = LayerSpec("ExpNormalized", dict(gamma=gamma, shift=shift, do_clip=do_clip))
    return _elementwise("ExpNormalized", fn, spec)


def Elementwise(fn: Callable | None = None, nngp_fn: Callable | None = None, d_nngp_fn: Callable | None = None):
    """A custom activation ``fn`` with its dual ``nngp_fn(cov12, var1, var2) = E[fn(u) fn(v)]``.

    ``d_nngp_fn`` (the same expectation for ``fn'``) defaults to the derivative of
    ``nngp_fn`` in ``cov12``, taken by autodiff.
    """
    if fn is None and nngp_fn is None:
        raise ValueError("Elementwise: expected fn or nngp_fn, got neither")
    for key, value in (("fn", fn), ("nngp_fn", nngp_fn), ("d_nngp_fn", d_nngp_fn)):
        if value is not None and not callable(value):
            raise TypeError(f"Elementwise: expected {key} to be callable, got {value!r}")
    name = "Elementwise"

    def apply(x):
        if fn is None:
            raise NotImplementedError(f"{name}: no finite-width fn was given, only nngp_fn")
        return fn(x)

    spec = LayerSpec(name, dict(fn=fn, nngp_fn=nngp_fn, d_nngp_fn=d_nngp_fn))
    return _elementwise(name, apply, spec)


def ElementwiseNumerical(fn: Callable, deg: int, df: Callable | None = None):
    """A custom activation ``fn`` whose kernel is computed by ``deg``-point
    Gauss-Hermite quadrature (``df``: its derivative, else autodiff)."""
    if not callable(fn):
        raise TypeError(f"ElementwiseNumerical: expected fn to be callable, got {fn!r}")
    deg = check_positive_int("ElementwiseNumerical", "deg", deg)
    spec = LayerSpec("ElementwiseNumerical", dict(fn=fn, deg=deg, df=df))
    return _elementwise("ElementwiseNumerical", fn, spec)


# --- the seeds' activations that neural-tangents lacks ---------------------------


def Tanh():
    """``tanh(x)``."""
    return _elementwise("Tanh", jnp.tanh, LayerSpec("Tanh"))


def Sigmoid():
    """The logistic function ``1 / (1 + exp(-x))``."""
    # jax.nn.sigmoid refuses integer arrays: promote them to the default float first.
    return _elementwise("Sigmoid", lambda x: jax.nn.sigmoid(x.astype(jnp.result_type(x, 1.0))), LayerSpec("Sigmoid"))


def Softplus():
    """``log(1 + exp(x))``, computed stably."""
    return _elementwise("Softplus", jax.nn.softplus, LayerSpec("Softplus"))


def Elu(alpha: float = 1.0):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    _check_real("Elu", alpha=alpha)
    return _elementwise("Elu", lambda x: jax.nn.elu(x, alpha), LayerSpec("Elu", dict(alpha=alpha)))


def Softmax(axis: int = -1):
    """``softmax`` along ``axis`` (the channel axis by default)."""
    name = "Softmax"

    def init_fn(key, input_shape):
        return check_shape(name, input_shape), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"{name}: expected an input with axes {axis}, got shape {tuple(x.shape)}")
        return jax.nn.softmax(x, axis=axis)

    return with_masking(make_layer(name, init_fn, apply_fn, LayerSpec(name, dict(axis=axis))))


def Maxout(num_pieces: int, channel_axis: int = -1):
    """The k-hinge / maxout unit: the max over groups of ``num_pieces`` consecutive
    channels, so ``C`` input channels give ``C / num_pieces`` outputs."""
    name = "Maxout"
    num_pieces = check_positive_int(name, "num_pieces", num_pieces)

    def out_channels(shape) -> int:
        if not -len(shape) <= channel_axis < len(shape):
            raise ValueError(
                f"{name}: channel_axis={channel_axis} does not fit an input of shape {tuple(shape)}"
            )
        channels = shape[channel_axis]
        if channels % num_pieces:
            raise ValueError(
                f"{name}: expected the channel count to be a multiple of num_pieces={num_pieces}, "
                f"got shape {tuple(shape)}"
            )
        return channels // num_pieces

    def init_fn(key, input_shape):
        input_shape = list(check_shape(name, input_shape))
        input_shape[channel_axis] = out_channels(input_shape)
        return tuple(input_shape), {}

    def apply_fn(params, x, **kwargs):
        x = check_array(name, x)
        groups = out_channels(x.shape)
        x = jnp.moveaxis(x, channel_axis, -1)
        x = x.reshape(x.shape[:-1] + (groups, num_pieces)).max(axis=-1)
        return jnp.moveaxis(x, -1, channel_axis)

    spec = LayerSpec(name, dict(num_pieces=num_pieces, channel_axis=channel_axis))
    return with_masking(make_layer(name, init_fn, apply_fn, spec))
