"""Kernel rules of the elementwise nonlinearities.

For a nonlinearity ``phi`` and pre-activations ``(u, v)`` jointly Gaussian with
variances ``q1, q2`` and covariance ``c``, each rule returns the NNGP entry
``E[phi(u) phi(v)]`` and the NTK factor ``E[phi'(u) phi'(v)]`` (seed recursion
``Theta' = K' + E[phi' phi'] Theta``). Closed forms:

* ABRelu (ReLU, leaky ReLU, Abs): arc-cosine kernel of degree 1 (Cho & Saul),
  ``s/(2 pi) * ((a-b)^2 sin(t) + (pi (a^2+b^2) - (a-b)^2 t) cos(t))`` with
  ``s = sqrt(q1 q2)``, ``cos(t) = c / s``; factor ``(a^2+b^2)/2 - (a-b)^2 t/(2 pi)``.
* Erf: Williams' arcsine kernel ``2/pi * arcsin(2c / sqrt((1+2q1)(1+2q2)))``.
* Gelu (Tsuchida et al.), Sin/Cos, Rbf, Exp, Gaussian, Sign, Monomial,
  RectifiedMonomial (arc-cosine kernels of degree n), Polynomial and Hermite
  (Mehler / Hermite expansions), ExpNormalized.
* Elementwise: a user ``nngp_fn``, NTK factor by autodiff in ``c``.
* ElementwiseNumerical: Gauss-Hermite quadrature (neural-tangents' scheme).
* Tanh, Sigmoid, Softplus, Elu (no closed form): :mod:`jaxdl.kernels.quadrature`.

Everything is written so that zero variances, identical and collinear inputs
give finite values and finite gradients (``safe_sqrt`` and clipped cosines).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.kernels import quadrature
from jaxdl.kernels.numerics import arctan2, safe_divide, safe_sqrt, straight_through


def cosine_and_angle(c, q1, q2):
    """``(s, cos t, sin t, t)`` for the angle ``t`` between two Gaussian inputs.

    ``s = sqrt(q1 q2)``; the cosine is clipped to [-1, 1] (derivatives are those of
    the unclipped ``c / s``: the clip only removes rounding error); for a zero
    variance the angle is pi/2 (the inputs are orthogonal), as in neural-tangents.
    """
    s = safe_sqrt(q1) * safe_sqrt(q2)  # roots of the (small) variance arrays, then broadcast
    cos = safe_divide(c, s)
    cos = straight_through(jnp.clip(cos, -1.0, 1.0), cos)
    sin = safe_sqrt((1.0 - cos) * (1.0 + cos))
    angle = arctan2(sin, cos)
    return s, cos, sin, angle


@dataclasses.dataclass(frozen=True)
class ElementwiseRule:
    """``cross(c, q1, q2, need_dot) -> (E[phi phi], E[phi' phi'] or None)``;
    ``scale``/``shift`` apply ``a^2 K + c^2`` afterwards (output affine map)."""


    name: str
    cross: Callable
    scale: float = 1.0
    shift: float = 0.0
    self_covariance: Callable | None = None  # overrides ``cross`` for cov1/cov2 (NT's Sign)


# --- closed forms -----------------------------------------------------------------


def ab_relu(a: float, b: float, do_stabilize: bool = False) -> ElementwiseRule:
    del do_stabilize  # the rule below is scale-free, hence always stable
    a, b = float(a), float(b)
    gap = (a - b) ** 2 / (2 * math.pi)
    mean_sq = (a**2 + b**2) / 2

    def cross(c, q1, q2, need_dot):
        s, cos, sin, angle = cosine_and_angle(c, q1, q2)
        dot = mean_sq - gap * angle
        value = s * (gap * sin + dot * cos)
        return value, dot if need_dot else None

    return ElementwiseRule("ABRelu", cross)


def erf(a: float, b: float, c: float) -> ElementwiseRule:
    b2 = float(b) ** 2

    def cross(cov, q1, q2, need_dot):
        cov, q1, q2 = b2 * cov, b2 * q1, b2 * q2
        root = safe_sqrt((1 + 2 * q1) * (1 + 2 * q2) - 4 * cov**2)
        value = (2 / math.pi) * arctan2(2 * cov, root)
        dot = None
        if need_dot:
            dot = b2 * (4 / math.pi) / root  # root >= 1: (1+2q1)(1+2q2) - 4c^2 >= 1
        return value, dot

    return ElementwiseRule("Erf", cross, scale=float(a) ** 2, shift=float(c) ** 2)


def gelu(approximate: bool = False) -> ElementwiseRule:
    del approximate  # only affects the finite-width apply_fn

    def cross(c, q1, q2, need_dot):
        prod = q1 * q2
        prod_plus_1 = (q1 + 1) * (q2 + 1)
        delta_sq = prod_plus_1 - c**2
        delta = safe_sqrt(delta_sq)
        angle = arctan2(c, delta)
        value = ((c**2 + prod * delta_sq) / (prod_plus_1 * delta) + c * angle) / (2 * math.pi)
        value = value + 0.25 * c
        dot = None
        if need_dot:
            first = (1 / delta_sq + (1 - prod) / prod_plus_1 + 1) * c / delta / (2 * math.pi)
            dot = first + 0.25 + angle / (2 * math.pi)
        return value, dot

    return ElementwiseRule("Gelu", cross)


def sin(a: float, b: float, c: float) -> ElementwiseRule:
    a, b, c = float(a), float(b), float(c)

    def cross(cov, q1, q2, need_dot):
        half_sum = (q1 + q2) / 2
        s1 = jnp.exp(b**2 * (cov - half_sum))
        s2 = jnp.exp(-(b**2) * (cov + half_sum)) * math.cos(2 * c)
        value = a**2 / 2 * (s1 - s2)
        return value, (a**2 / 2 * b**2 * (s1 + s2)) if need_dot else None

    return ElementwiseRule("Sin", cross)


def gabor() -> ElementwiseRule:
    """``exp(-x^2) sin(x)``: a Gaussian integral of a product of exponentials and sines."""

    def cross(c, q1, q2, need_dot):
        total, prod = q1 + q2, q1 * q2
        det = 4 * (prod - c**2)
        denom = 2 * total + det + 1
        exp_left = jnp.exp(-(total + det + 2 * c) / (2 * denom))
        exp_right = jnp.exp(2 * c / denom)
        dot = None
        if need_dot:
            shared = 1 + 2 * total + 4 * (c**2 + prod)
            cross_term = 4 * c * (det + 3 * total + 2)
            dot = exp_left * ((shared - cross_term) + exp_right * (shared + cross_term)) / denom**2.5 / 2
        return exp_left * (exp_right - 1) / (2 * safe_sqrt(denom)), dot

    return ElementwiseRule("Gabor", cross)


def rbf(gamma: float) -> ElementwiseRule:
    gamma = float(gamma)

    def cross(c, q1, q2, need_dot):
        value = jnp.exp(gamma * (2 * c - q1 - q2))
        return value, (2 * gamma * value) if need_dot else None

    return ElementwiseRule("Rbf", cross)


def sign() -> ElementwiseRule:
    def cross(c, q1, q2, need_dot):
        _, _, _, angle = cosine_and_angle(c, q1, q2)
        value = 1 - 2 * angle / math.pi
        # Zero variance: sign(0) = 0, so every covariance with it vanishes.
        value = jnp.where((q1 == 0) | (q2 == 0), 0.0, value)
        return value, (jnp.zeros_like(value)) if need_dot else None

    return ElementwiseRule("Sign", cross, self_covariance=_sign_self_covariance)


def _sign_self_covariance(cov):
    """neural-tangents' ``cov1`` rule for Sign: 1 wherever the covariance is nonzero."""
    return jnp.where(cov == 0.0, 0.0, 1.0)


def exp(a: float, b: float) -> ElementwiseRule:
    b2 = float(b) ** 2
    if float(a) == 0.0:  # the layer is identically 0: so is its kernel, even where exp(·) overflows
        b2 = 0.0

    def cross(c, q1, q2, need_dot):
        value = jnp.exp(b2 * ((q1 + q2) / 2 + c))
        return value, (b2 * value) if need_dot else None

    return ElementwiseRule("Exp", cross, scale=float(a) ** 2)


def gaussian(a: float, b: float) -> ElementwiseRule:
    b = float(b)

    def cross(c, q1, q2, need_dot):
        det = safe_sqrt((1 - 2 * b * q1) * (1 - 2 * b * q2) - 4 * b**2 * c**2)
        value = 1 / det
        return value, (4 * b**2 * c / det**3) if need_dot else None

    return ElementwiseRule("Gaussian", cross, scale=float(a) ** 2)


def exp_normalized(gamma: float = 1.0, shift: float = -1.0, do_clip: bool = False):
    gamma, shift = float(gamma), float(shift)

    def cross(c, q1, q2, need_dot):
        s = jnp.sqrt(jnp.maximum(q1 * q2, 1e-30))
        ratio = c / s
        if do_clip:
            ratio = jnp.clip(ratio, -1, 1)
        e = jnp.exp(gamma * (ratio + shift))
        return s * e, (gamma * e) if need_dot else None

    return ElementwiseRule("ExpNormalized", cross)


def hermite(degree: int) -> ElementwiseRule:
    """Normalised probabilists' Hermite polynomial of unit-variance inputs (Mehler)."""

    def cross(c, q1, q2, need_dot):
        dot = None
        if need_dot:
            dot = jnp.zeros_like(c) if degree == 0 else degree * c ** (degree - 1)
        return c**degree, dot

    return ElementwiseRule("Hermite", cross)


def _monomial_moment(c, prod, degree: int):
    """``E[u^n v^n]`` for Gaussian ``(u, v)`` with covariance ``c``, ``prod = q1 q2`` (Isserlis)."""
    if degree == -1:
        return jnp.zeros_like(c)
    if degree == 0:
        return jnp.ones_like(c)
    if degree == 1:
        return c
    if degree == 2:
        return 2 * c**2 + prod
    if degree == 3:
        return 6 * c**3 + 9 * c * prod
    if degree == 4:
        return 3 * (8 * c**4 + 3 * prod * (8 * c**2 + prod))
    if degree == 5:
        return 15 * c * (8 * c**4 + 5 * prod * (8 * c**2 + 3 * prod))
    raise NotImplementedError(f"Monomial: degree must be in 0..5, got {degree}")


def monomial(degree: int) -> ElementwiseRule:
    if degree not in range(6):
        raise NotImplementedError(f"Monomial: degree must be in 0..5, got {degree}")

    def cross(c, q1, q2, need_dot):
        prod = q1 * q2
        value = _monomial_moment(c, prod, degree)
        dot = degree**2 * _monomial_moment(c, prod, degree - 1) if need_dot else None
        return value, dot

    return ElementwiseRule("Monomial", cross)


def _arc_cosine_j(degree: int, angle, sin, cos):
    """Cho & Saul's ``J_n(t)``: ``E[relu(u)^n relu(v)^n] = s^n J_n(t) / (2 pi)``."""
    rest = math.pi - angle
    if degree == 0:
        return rest
    if degree == 1:
        return sin + rest * cos
    if degree == 2:
        return 3 * sin * cos + rest * (1 + 2 * cos**2)
    if degree == 3:
        return 4 * sin**3 + 15 * sin * cos**2 + rest * (9 * sin**2 * cos + 15 * cos**3)
    # General degree: J_n = n^2 * int_t^pi J_{n-1}(r) sin(r) dr (Price's theorem),
    # integrated with Gauss-Legendre on [t, pi] (the integrand is a smooth
    # trigonometric polynomial times (pi - r), so 32 nodes are exact to rounding).
    nodes, weights = np.polynomial.legendre.leggauss(32)
    nodes, weights = (a.reshape((1,) * jnp.ndim(angle) + (-1,)) for a in (nodes, weights))  # explicit ranks
    half = (math.pi - angle) / 2
    r = angle[..., None] + half[..., None] * (nodes + 1)
    inner = _arc_cosine_j(degree - 1, r, jnp.sin(r), jnp.cos(r)) * jnp.sin(r)
    return degree**2 * half * jnp.sum(weights * inner, axis=-1)


def rectified_monomial(degree: int) -> ElementwiseRule:
    if degree < 0:
        raise NotImplementedError(f"RectifiedMonomial: degree must be >= 0, got {degree}")

    def cross(c, q1, q2, need_dot):
        s, cos, sin_, angle = cosine_and_angle(c, q1, q2)
        value = s**degree * _arc_cosine_j(degree, angle, sin_, cos) / (2 * math.pi)
        dot = None
        if need_dot:
            if degree == 0:
                dot = jnp.zeros_like(value)
            else:
                j_prev = _arc_cosine_j(degree - 1, angle, sin_, cos)
                dot = degree**2 * s ** (degree - 1) * j_prev / (2 * math.pi)
        return value, dot

    return ElementwiseRule("RectifiedMonomial", cross)


def polynomial(coef) -> ElementwiseRule:
    """``sum_k coef[k] x^k``: Hermite expansion ``sum_l s_l(q1) s_l(q2) c^l``.

    ``s_l(q) = sum_i coef[2i+l] (2i+l)! / (2^i i! sqrt(l!)) q^i`` (so that
    ``p(sqrt(q) z) = sum_l s_l(q) q^(l/2) He_l(z) / sqrt(l!)``); writing the
    expansion in ``c`` instead of the correlation needs no division by the variances.
    """
    coef = [float(x) for x in np.asarray(coef, dtype=float).ravel()]
    degree = len(coef)

    def s_l(q, order):
        total = jnp.zeros_like(q)
        for i in range((degree - 1 - order) // 2 + 1):
            k = 2 * i + order
            if k < degree and coef[k] != 0.0:
                weight = math.factorial(k) / (2**i * math.factorial(i) * math.sqrt(math.factorial(order)))
                total = total + coef[k] * weight * q**i
        return total

    def cross(c, q1, q2, need_dot):
        value = jnp.zeros(jnp.broadcast_shapes(c.shape, q1.shape, q2.shape), c.dtype)
        dot = jnp.zeros_like(value) if need_dot else None
        for order in range(degree):
            weight = s_l(q1, order) * s_l(q2, order)
            value = value + weight * c**order
            if need_dot and order >= 1:
                dot = dot + order * weight * c ** (order - 1)
        return value, dot

    return ElementwiseRule("Polynomial", cross)


def elementwise(fn=None, nngp_fn=None, d_nngp_fn=None) -> ElementwiseRule:
    if nngp_fn is None:
        raise NotImplementedError("Elementwise: kernel_fn needs `nngp_fn`, got None")
    nngp_vec = jnp.vectorize(nngp_fn)
    d_vec = jnp.vectorize(d_nngp_fn if d_nngp_fn is not None else jax.grad(nngp_fn))

    def cross(c, q1, q2, need_dot):
        dot = d_vec(c, q1, q2) if need_dot else None
        return nngp_vec(c, q1, q2), dot

    return ElementwiseRule("Elementwise", cross)


def elementwise_numerical(fn, deg: int, df=None) -> ElementwiseRule:
    if deg < 1:
        raise ValueError(f"ElementwiseNumerical: expected deg >= 1, got {deg}")
    d_fn = df if df is not None else jnp.vectorize(jax.grad(fn))

    def cross(c, q1, q2, need_dot):
        value = quadrature.gauss_hermite_2d(fn, fn, c, q1, q2, deg)
        dot = quadrature.gauss_hermite_2d(d_fn, d_fn, c, q1, q2, deg) if need_dot else None
        return value, dot

    return ElementwiseRule("ElementwiseNumerical", cross)


def numerical_activation(name: str, **hyper) -> ElementwiseRule:
    """Tanh, Sigmoid, Softplus, Elu: quadrature (see :mod:`jaxdl.kernels.quadrature`)."""

    def cross(c, q1, q2, need_dot):
        return quadrature.activation_kernel(name, c, q1, q2, need_dot, **hyper)

    return ElementwiseRule(name, cross)


def rule_from_spec(kind: str, hyper: dict) -> ElementwiseRule:
    """The rule of one elementwise layer spec."""
    h = dict(hyper)
    if kind == "ABRelu":
        return ab_relu(h["a"], h["b"], h.get("do_stabilize", False))
    if kind == "Erf":
        return erf(h.get("a", 1.0), h.get("b", 1.0), h.get("c", 0.0))
    if kind == "Gelu":
        return gelu(h.get("approximate", False))
    if kind == "Sin":
        return sin(h.get("a", 1.0), h.get("b", 1.0), h.get("c", 0.0))
    if kind == "Cos":
        return sin(h.get("a", 1.0), h.get("b", 1.0), h.get("c", 0.0) + math.pi / 2)
    if kind == "Gabor":
        return gabor()
    if kind == "Rbf":
        return rbf(h.get("gamma", 1.0))
    if kind == "Sign":
        return sign()
    if kind == "Exp":
        return exp(h.get("a", 1.0), h.get("b", 1.0))
    if kind == "Gaussian":
        return gaussian(h.get("a", 1.0), h.get("b", -1.0))
    if kind == "ExpNormalized":
        return exp_normalized(h.get("gamma", 1.0), h.get("shift", -1.0), h.get("do_clip", False))
    if kind == "Hermite":
        return hermite(h["degree"])
    if kind == "Monomial":
        return monomial(h["degree"])
    if kind == "RectifiedMonomial":
        return rectified_monomial(h["degree"])
    if kind == "Polynomial":
        return polynomial(h["coef"])
    if kind == "Elementwise":
        return elementwise(h.get("fn"), h.get("nngp_fn"), h.get("d_nngp_fn"))
    if kind == "ElementwiseNumerical":
        return elementwise_numerical(h["fn"], h["deg"], h.get("df"))
    if kind in ("Tanh", "Sigmoid", "Softplus"):
        return numerical_activation(kind)
    if kind == "Elu":
        return numerical_activation("Elu", alpha=h.get("alpha", 1.0))
    raise KeyError(kind)


ELEMENTWISE_KINDS = frozenset(
    {
        "ABRelu", "Erf", "Gabor", "Gelu", "Sin", "Cos", "Rbf", "Sign", "Exp", "Gaussian",
        "ExpNormalized", "Hermite", "Monomial", "RectifiedMonomial", "Polynomial",
        "Elementwise", "ElementwiseNumerical", "Tanh", "Sigmoid", "Softplus", "Elu",
    }
)
