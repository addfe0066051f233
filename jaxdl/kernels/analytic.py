"""Analytic infinite-width kernels: interpret a stax spec tree as a ``Kernel -> Kernel`` map.

Every stax layer's ``kernel_fn`` lands here (``kernel_fn_from_spec``). The
returned function has neural-tangents' signature and semantics::

    kernel_fn(x1_or_kernel, x2=None, get=None, *, diagonal_batch=None,
              diagonal_spatial=None, batch_axis=None, channel_axis=None, pattern=None)

Seed formulas: the NNGP recursion ``K^{l+1} = W_std^2 E[phi(u) phi(v)] + b_std^2``
and the NTK recursion ``Theta^{l+1} = K^{l+1} + W_std^2 E[phi'(u) phi'(v)] Theta^l``
(lecture notes, "Neural tangent kernel", "Gaussian processes"), applied layer by
layer; the per-layer rules live in :mod:`elementwise_rules`, :mod:`conv_rules` and
here (affine, pooling, normalisation, branching). The whole computation is one
``jax.jit``-compiled function per (network, static options); the NTK is only
computed when ``get`` asks for it. Masked inputs (``mask_constant``) follow
:mod:`masking_rules`.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxdl.kernels import (
    conv_rules,
    custom_rules,
    dot_general_rules,
    elementwise_rules,
    gnn_rules,
    indexing_rules,
    masking_rules,
    recurrent_rules,
    resize_rules,
)
from jaxdl.kernels.kernel import Kernel, canonical_get
from jaxdl.kernels.numerics import map_row_blocks, safe_sqrt, straight_through
from jaxdl.kernels.layout import (
    diagonal_pairs,
    pairwise,
    variance_pairs,
    variances,
    zip_axes,
)
from jaxdl.kernels.requirements import NO, Diagonal, conv_dimension_numbers, layer_requirements

_STATEFUL_OR_REPARAMETERISED = {
    "BatchNorm": "a stateful layer (batch statistics couple the examples); no infinite-width kernel",
    "WeightNorm": "the weight-normalised reparameterisation has no infinite-width kernel rule here",
}

_NO_CLOSED_FORM = {
    "Maxout": "Maxout",
    "Softmax": "Softmax",
    "MaxPool": "MaxPool",
}
_KERNEL_FIELDS = tuple(
    ("nngp", "ntk", "cov1", "cov2", "x1_is_x2", "is_gaussian", "is_reversed", "is_input",
     "diagonal_batch", "diagonal_spatial", "shape1", "shape2", "batch_axis", "channel_axis",
     "mask1", "mask2")
)  # fmt: skip


# --- public entry point ---------------------------------------------------------------

_CACHE: dict[int, tuple] = {}


def kernel_fn_from_spec(spec) -> Callable:
    """The analytic ``kernel_fn`` of the layer described by ``spec`` (cached per spec)."""
    hit = _CACHE.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    fn = AnalyticKernelFn(spec)
    _CACHE[id(spec)] = (spec, fn)
    return fn


class AnalyticKernelFn:
    """Callable ``kernel_fn`` for one spec tree; compiles once per static configuration."""

    def __init__(self, spec):
        self.spec = spec
        self.name = f"{spec.kind}.kernel_fn"
        self._compiled: dict = {}

    def __call__(self, x1_or_kernel, x2=None, get=None, **kwargs):
        get = canonical_get(get)
        get_names = _check_get(self.name, get)
        pattern = kwargs.pop("pattern", None)
        mask_constant = kwargs.pop("mask_constant", None)
        user = {k: kwargs.pop(k, None) for k in ("diagonal_batch", "diagonal_spatial", "batch_axis", "channel_axis")}
        for ignored in ("key", "rng"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise TypeError(f"{self.name}: unexpected keyword arguments {sorted(kwargs)}")
        if mask_constant is not None and _all_kernels(x1_or_kernel):
            raise ValueError(f"{self.name}: mask_constant applies to input arrays; Kernels carry their own masks")
        pattern = _split_pattern(pattern)

        if _all_kernels(x1_or_kernel) and x2 is None:
            kernels = _map_tree(_to_natural, x1_or_kernel)
            run = self._get_compiled(("kernel",), lambda ks, p: self._propagate(ks, p))
            out = run(kernels, pattern)
        else:
            compute_ntk = get_names is None or "ntk" in get_names
            reqs = self._input_requirements(user)
            key = ("inputs", compute_ntk, tuple(sorted(reqs.items())), x2 is None, repr(mask_constant))

            def from_inputs(x1, x2, pattern):
                kernels = _map_pair(
                    lambda a, b: _masked_input_kernel(a, b, mask_constant, compute_ntk, self.name, reqs), x1, x2
                )
                return self._propagate(kernels, pattern)

            x1 = _map_tree(lambda x: _check_input(self.name, x), x1_or_kernel)
            x2 = None if x2 is None else _map_tree(lambda x: _check_input(self.name, x), x2)
            out = self._get_compiled(key, from_inputs)(x1, x2, pattern)
        out = _map_tree(_to_presented, out)
        return _select(out, get, get_names)

    def _get_compiled(self, key, fn):
        if key not in self._compiled:
            self._compiled[key] = jax.jit(fn)
        return self._compiled[key]

    def _propagate(self, kernels, pattern):
        out = apply_rule(self.spec, kernels, {"pattern": pattern})
        return masking_rules.remask(out)  # masked outputs are zeroed (neural-tangents' unmask_fn)

    def _input_requirements(self, user: dict) -> dict:
        reqs = layer_requirements(self.spec)
        diagonal_spatial = reqs.get("diagonal_spatial", False)
        if user["diagonal_spatial"] is not None:
            if user["diagonal_spatial"] and isinstance(diagonal_spatial, Diagonal) and diagonal_spatial.input == NO:
                raise ValueError(
                    f"{self.name}: diagonal_spatial=True was asked for, but the network needs "
                    f"full spatial covariances"
                )
            diagonal_spatial = bool(user["diagonal_spatial"])
        diagonal_batch = True if user["diagonal_batch"] is None else bool(user["diagonal_batch"])
        batch_axis = reqs.get("batch_axis", 0) if user["batch_axis"] is None else user["batch_axis"]
        channel_axis = reqs.get("channel_axis", -1) if user["channel_axis"] is None else user["channel_axis"]
        return {
            "diagonal_batch": diagonal_batch,
            "diagonal_spatial": bool(diagonal_spatial),
            "batch_axis": batch_axis,
            "channel_axis": channel_axis,
        }


def _split_pattern(pattern) -> tuple:
    """``(pattern1, pattern2)`` for x1 and x2: a pair is split, anything else is shared
    (neural-tangents' keyword-argument convention)."""
    if isinstance(pattern, (tuple, list)) and len(pattern) == 2:
        return tuple(pattern)
    return pattern, pattern


def _check_get(name: str, get):
    if get is None:
        return None
    names = (get,) if isinstance(get, str) else tuple(get)
    for g in names:
        if g not in _KERNEL_FIELDS:
            raise ValueError(f"{name}: expected `get` among {list(_KERNEL_FIELDS)}, got {g!r}")
    return names


def _select(out, get, names):
    if get is None:
        return out
    if isinstance(get, str):
        return _map_tree(lambda k: getattr(k, get), out)
    cls = collections.namedtuple("AnalyticKernel", names)
    return _map_tree(lambda k: cls(*(getattr(k, g) for g in names)), out)


def _all_kernels(x) -> bool:
    if isinstance(x, Kernel):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(_all_kernels(y) for y in x)
    return False


def _map_tree(fn, x):
    if isinstance(x, (list, tuple)) and not isinstance(x, Kernel):
        return type(x)(_map_tree(fn, y) for y in x)
    return fn(x)


def _map_pair(fn, x1, x2):
    if isinstance(x1, (list, tuple)):
        x2 = [None] * len(x1) if x2 is None else x2
        return type(x1)(_map_pair(fn, a, b) for a, b in zip(x1, x2))
    return fn(x1, x2)


def _check_input(name: str, x):
    if isinstance(x, Kernel):
        return x
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.number):
        raise TypeError(f"{name}: expected numeric input arrays, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(
            f"{name}: expected inputs of rank >= 2 (batch and feature axes), got shape {tuple(x.shape)}"
        )
    return x


def _to_natural(k: Kernel) -> Kernel:
    """An NT-presented kernel (possibly reversed) -> natural spatial order."""
    return k.reverse().replace(is_reversed=True) if k.is_reversed else k


def _to_presented(k: Kernel) -> Kernel:
    """Natural spatial order -> the order neural-tangents presents (reversed if flagged)."""
    return k.reverse().replace(is_reversed=True) if k.is_reversed else k


# --- the input kernel -------------------------------------------------------------------


def _masked_input_kernel(x1, x2, mask_constant, compute_ntk, name, reqs):
    """``input_kernel`` of the inputs with entries equal to ``mask_constant`` zeroed,
    carrying their position masks (see :mod:`jaxdl.kernels.masking_rules`)."""
    if mask_constant is None:
        return input_kernel(x1, x2, compute_ntk=compute_ntk, name=name, **reqs)
    mask1, x1 = masking_rules.input_mask(x1, mask_constant, reqs["batch_axis"], reqs["channel_axis"])
    mask2, x2 = (None, None) if x2 is None else masking_rules.input_mask(
        x2, mask_constant, reqs["batch_axis"], reqs["channel_axis"])
    k = input_kernel(x1, x2, compute_ntk=compute_ntk, name=name, **reqs)
    return k.replace(mask1=mask1, mask2=mask2)


def input_kernel(x1, x2, *, diagonal_batch, diagonal_spatial, batch_axis, channel_axis, compute_ntk, name="kernel_fn"):
    """Empirical covariances of the inputs, ``x x'^T / n_features`` (NT's ``_inputs_to_kernel``).

    x1: f[n1, ..., C] (axes per ``batch_axis``/``channel_axis``); x2 likewise or None (= x1).
    """
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    shape1 = tuple(x1.shape)
    shape2 = shape1 if x2 is None else tuple(x2.shape)
    ndim = x1.ndim
    if x2 is not None and (x2.ndim != ndim or _drop(shape2, batch_axis % ndim) != _drop(shape1, batch_axis % ndim)):
        raise ValueError(f"{name}: x1 and x2 must agree except on the batch axis, got {shape1} and {shape2}")
    batch_axis %= ndim
    if channel_axis is None:
        flat = lambda x: None if x is None else jnp.moveaxis(x, batch_axis, 0).reshape((x.shape[batch_axis], -1))
        x1, x2 = flat(x1), flat(x2)
        batch_axis, channel_axis, diagonal_spatial = 0, 1, False
        shape1 = tuple(x1.shape)
        shape2 = shape1 if x2 is None else tuple(x2.shape)
    else:
        channel_axis %= ndim

    def canonical(x):
        return None if x is None else jnp.moveaxis(x.astype(dtype), (batch_axis, channel_axis), (0, -1))

    a, b = canonical(x1), canonical(x2)
    width = a.shape[-1]
    nngp = _cross_covariance(a, a if b is None else b, diagonal_spatial) / width
    if b is None:
        cov1 = _diagonal_batch(nngp, diagonal_spatial) if diagonal_batch else nngp
        cov2 = None
        x1_is_x2 = jnp.array(True)
    else:
        cov1 = _self_covariance(a, diagonal_batch, diagonal_spatial) / width
        cov2 = _self_covariance(b, diagonal_batch, diagonal_spatial) / width
        x1_is_x2 = jnp.array(False) if a.shape != b.shape else jnp.all(jnp.abs(a - b) < 1e-12)
    return Kernel(
        nngp=nngp,
        ntk=jnp.zeros((), dtype) if compute_ntk else None,
        cov1=cov1,
        cov2=cov2,
        x1_is_x2=x1_is_x2,
        is_gaussian=False,
        is_reversed=False,
        is_input=False,
        diagonal_batch=diagonal_batch,
        diagonal_spatial=diagonal_spatial,
        shape1=shape1,
        shape2=shape2,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )


def _drop(shape, axis):
    return shape[:axis] + shape[axis + 1 :]


def _cross_covariance(a, b, diagonal_spatial):
    """a: f[n1, S..., C], b: f[n2, S..., C] -> f[n1, n2, S, S', ...] (or f[n1, n2, S...])."""
    n_spatial = a.ndim - 2
    if diagonal_spatial:
        return jnp.einsum("i...c,j...c->ij...", a, b)
    out = jnp.tensordot(a, b, axes=(-1, -1))  # f[n1, S..., n2, S'...]
    out = jnp.moveaxis(out, 1 + n_spatial, 1)  # f[n1, n2, S..., S'...]
    return zip_axes(out, 2)


def _self_covariance(a, diagonal_batch, diagonal_spatial):
    if not diagonal_batch:
        return _cross_covariance(a, a, diagonal_spatial)
    if diagonal_spatial:
        return jnp.sum(a**2, axis=-1)
    out = jax.vmap(lambda x: jnp.tensordot(x, x, axes=(-1, -1)))(a)  # f[n, S..., S'...]
    return zip_axes(out, 1)


def _diagonal_batch(nngp, diagonal_spatial):
    del diagonal_spatial
    return jnp.moveaxis(jnp.diagonal(nngp, axis1=0, axis2=1), -1, 0)


# --- dispatch ---------------------------------------------------------------------------


def apply_rule(spec, k, ctx):
    """Propagate kernel(s) ``k`` through the layer ``spec``."""
    masked = spec.kind not in ("serial", "parallel", "repeat") and masking_rules.has_masks(k)
    if masked:  # the layer sees its masked inputs zeroed
        k = masking_rules.remask(k)
    out = _apply_layer_rule(spec, k, ctx)
    if spec.children and _lacks_apply_fn(spec):
        out = _keep_input_shapes(k, out)
    if masked:
        out = masking_rules.propagate(spec, k, out)
    return out


def _lacks_apply_fn(spec) -> bool:
    """Whether some layer in ``spec`` has a kernel but no finite-width ``apply_fn``."""
    if spec is None:
        return False
    if spec.kind == "ExpNormalized" or (spec.kind == "Elementwise" and spec.hyper.get("fn") is None):
        return True
    return any(_lacks_apply_fn(child) for child in spec.children)


def _keep_input_shapes(k_in, k_out):
    """neural-tangents infers a combinator's output shapes by running its ``apply_fn``;
    where that raises (a layer without one) it reports the *input* shapes instead."""
    if isinstance(k_in, Kernel) and isinstance(k_out, Kernel):
        return k_out.replace(shape1=k_in.shape1, shape2=k_in.shape2)
    if isinstance(k_in, (list, tuple)) and isinstance(k_out, (list, tuple)) and len(k_in) == len(k_out):
        return type(k_out)(_keep_input_shapes(a, b) for a, b in zip(k_in, k_out))
    return k_out


def _apply_layer_rule(spec, k, ctx):
    kind = spec.kind
    if kind in _NO_CLOSED_FORM:
        raise NotImplementedError(f"{kind}: no closed-form infinite-width kernel; use a Monte Carlo estimate")
    if kind in _STATEFUL_OR_REPARAMETERISED:
        raise NotImplementedError(f"{kind}: {_STATEFUL_OR_REPARAMETERISED[kind]}")
    if kind == "serial":
        for child in spec.children:
            k = apply_rule(child, k, ctx)
        return k
    if kind == "parallel":
        if not isinstance(k, (list, tuple)) or len(k) != len(spec.children):
            raise ValueError(f"parallel: expected {len(spec.children)} input kernels, got {k!r:.80}")
        return type(k)(apply_rule(c, ki, ctx) for c, ki in zip(spec.children, k))
    if kind == "repeat":
        return _repeat(spec, k, ctx)
    if kind == "FanOut":
        return [k] * int(spec.hyper["num"])
    if kind in ("FanInSum", "FanInProd", "FanInConcat"):
        return _fan_in(spec, k)
    if kind == "Custom":
        return custom_rules.custom(spec.hyper, k, ctx)
    if isinstance(k, (list, tuple)):
        raise ValueError(f"{kind}: expected one input kernel, got a list of {len(k)} (missing FanIn layer?)")
    _check_axes(spec, k)
    if kind in elementwise_rules.ELEMENTWISE_KINDS:
        return _elementwise(spec, k)
    rule = _RULES.get(kind) or _LAYER_FAMILY_RULES.get(kind)
    if masking_rules.has_masks(k):
        rule = masking_rules.MASKED_RULES.get(kind, rule)
    if rule is None:
        from jaxdl.kernels import attention_rules

        rule = attention_rules.RULES.get(kind)
    if rule is None:
        raise NotImplementedError(f"{kind}: no infinite-width kernel rule")
    return rule(spec.hyper, k, {**ctx, "children": spec.children})  # e.g. SimpleRNN's activation


def _check_axes(spec, k: Kernel):
    reqs = layer_requirements(spec)
    ndim = len(k.shape1)
    for name in ("batch_axis", "channel_axis"):
        want = reqs.get(name)
        if want is not None and getattr(k, name) != want % ndim:
            raise ValueError(
                f"{spec.kind}: requires {name} == {want % ndim}, but its input has {name} == {getattr(k, name)}"
            )
    diag = reqs.get("diagonal_spatial")
    if k.diagonal_spatial and isinstance(diag, Diagonal) and diag.input == NO:
        raise ValueError(f"{spec.kind}: requires full spatial covariances, got diagonal_spatial=True")


def _repeat(spec, k, ctx):
    n = int(spec.hyper["n"])
    if n == 0:
        return k
    child = spec.children[0]
    k = apply_rule(child, k, ctx)
    if n == 1:
        return k
    step = lambda kk: apply_rule(child, kk, ctx)
    if jax.tree_util.tree_structure(jax.eval_shape(step, k)) != jax.tree_util.tree_structure(k):
        for _ in range(n - 1):  # metadata changes (e.g. a single Conv flips is_reversed)
            k = step(k)
        return k
    k, _ = jax.lax.scan(lambda kk, _: (step(kk), None), k, None, length=n - 1)
    return k


# --- elementwise ------------------------------------------------------------------------


def _elementwise(spec, k: Kernel) -> Kernel:
    if not k.is_gaussian:
        raise ValueError(
            f"{spec.kind}: the input to a nonlinearity must be Gaussian, i.e. a Dense/Conv "
            f"(or other random affine) layer is required before it"
        )
    rule = elementwise_rules.rule_from_spec(spec.kind, spec.hyper)
    pairs = variance_pairs(k)
    x1_is_x2 = k.cov2 is None and rule.self_covariance is None  # keep nngp[i, i] == cov1[i]

    def covariance(cov, q1, q2):
        return _output_affine(rule.cross(_snap_correlation(cov, q1, q2), q1, q2, False)[0], rule.scale, rule.shift)

    def self_covariance(cov, which):
        if cov is None:
            return None
        if rule.self_covariance is not None:
            return _output_affine(rule.self_covariance(cov), rule.scale, rule.shift)
        return map_row_blocks(covariance, cov, *pairs[which])

    cov1 = self_covariance(k.cov1, "cov1") if k.diagonal_batch or not x1_is_x2 else None
    cov2 = self_covariance(k.cov2, "cov2")
    on_diagonal = cov1[:, None] if x1_is_x2 and k.diagonal_batch else None
    rows, cols = _batch_indices(k.nngp.shape) if on_diagonal is not None else (None, None)

    def nngp_and_ntk(nngp, q1, q2, ntk, rows, cols, on_diagonal):
        nngp, dot = rule.cross(_snap_correlation(nngp, q1, q2), q1, q2, ntk is not None)
        nngp = _output_affine(nngp, rule.scale, rule.shift)
        if on_diagonal is not None:
            nngp = jnp.where(rows == cols, on_diagonal, nngp)
        return nngp, None if ntk is None else rule.scale * ntk * dot

    nngp, ntk = map_row_blocks(nngp_and_ntk, k.nngp, *pairs["nngp"], k.ntk, rows, cols, on_diagonal,
                               overwrite=(0, 3))
    if cov1 is None:
        cov1 = nngp
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


def _batch_indices(shape):
    """Row and column indices ``(i[n1, 1, 1...], j[1, n2, 1...])`` of a kernel's batch axes."""
    ones = (1,) * (len(shape) - 2)
    return (jnp.arange(shape[0]).reshape((shape[0], 1) + ones),
            jnp.arange(shape[1]).reshape((1, shape[1]) + ones))  # fmt: skip


def _snap_correlation(c, q1, q2):
    """Project ``c`` onto ``|c| <= sqrt(q1 q2)`` and snap correlations within a few
    ulps of +-1 to exactly +-1.

    Identical inputs sit on an *unstable* fixed point of chaotic-phase recursions
    (e.g. Erf with W_std > ~1.3): a rounding error of one ulp grows geometrically
    with depth and breaks positive semi-definiteness. Snapping keeps identical and
    collinear inputs exactly collinear; the change is below the dtype's resolution.
    Derivatives are those of ``c`` (``straight_through``): differentiating the snap
    would give ``sqrt(q1 q2)``'s second derivatives on the kernel diagonal.
    """
    s = safe_sqrt(q1) * safe_sqrt(q2)  # roots of the (small) variance arrays, then broadcast
    tol = 64 * jnp.finfo(c.dtype).eps
    return straight_through(jnp.where(jnp.abs(c) >= (1 - tol) * s, jnp.sign(c) * s, c), c)


def _output_affine(mat, scale, shift):
    if mat is None:
        return None
    if scale != 1.0:
        mat = scale * mat
    if shift != 0.0:
        mat = mat + shift
    return mat


# --- affine layers ----------------------------------------------------------------------


def _affine(mat, W_std, b_std):
    if mat is None:
        return None
    mat = W_std**2 * mat
    return mat if b_std is None else mat + b_std**2


def _no_custom_init(kind, hyper):
    if hyper.get("W_init") is not None:
        raise NotImplementedError(f"{kind}: no analytic kernel for a custom W_init")


def _dense(hyper, k: Kernel, ctx) -> Kernel:
    _no_custom_init("Dense", hyper)
    W_std, b_std = hyper.get("W_std", 1.0), hyper.get("b_std")
    channel = hyper.get("channel_axis", -1) % len(k.shape1)
    parameterization = hyper.get("parameterization", "ntk").lower()
    s = tuple(hyper.get("s", (1, 1)))
    ntk = k.ntk
    if parameterization == "ntk":
        nngp = _affine(k.nngp, W_std, b_std)
        if ntk is not None:
            ntk = nngp + W_std**2 * ntk
        width = hyper["out_dim"]
    else:
        if ntk is not None:
            ntk = k.shape1[channel] / s[0] * k.nngp + W_std**2 * ntk
            if b_std is not None:
                ntk = ntk + 1.0
        nngp = _affine(k.nngp, W_std, b_std)
        width = hyper["out_dim"] * s[1]
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=_affine(k.cov1, W_std, b_std),
        cov2=_affine(k.cov2, W_std, b_std),
        is_gaussian=True,
        is_input=False,
        shape1=_set(k.shape1, channel, width),
        shape2=_set(k.shape2, channel, width),
    )


def _set(shape, axis, value):
    shape = list(shape)
    shape[axis] = value
    return tuple(shape)


def _identity(hyper, k, ctx):
    return k


def _dropout(hyper, k: Kernel, ctx) -> Kernel:
    if hyper.get("mode", "train") == "test":
        return k
    factor = 1.0 / hyper["rate"]
    cov1 = _scale_diagonal(k.cov1, factor, k.diagonal_batch, k.diagonal_spatial)
    cov2 = _scale_diagonal(k.cov2, factor, k.diagonal_batch, k.diagonal_spatial)
    cross_factor = jnp.where(k.x1_is_x2, factor, 1.0)
    nngp = _scale_diagonal(k.nngp, cross_factor, False, k.diagonal_spatial)
    ntk = _scale_diagonal(k.ntk, cross_factor, False, k.diagonal_spatial)
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


def _scale_diagonal(mat, factor, diagonal_batch: bool, diagonal_spatial: bool):
    """Multiply the (sample, position) == (sample', position') entries by ``factor``."""
    if mat is None or mat.ndim == 0:
        return mat
    batch_ndim = 1 if diagonal_batch else 2
    if not diagonal_batch and mat.shape[0] != mat.shape[1]:
        return mat
    mask = jnp.ones((), bool)
    if not diagonal_batch:
        mask = mask & _eye_mask(mat.shape, 0, 1)
    if not diagonal_spatial:
        for axis in range(batch_ndim, mat.ndim, 2):
            mask = mask & _eye_mask(mat.shape, axis, axis + 1)
    return jnp.where(mask, factor * mat, mat)


def _eye_mask(shape, a1, a2):
    idx = [1] * len(shape)
    idx1, idx2 = list(idx), list(idx)
    idx1[a1], idx2[a2] = shape[a1], shape[a2]
    return jnp.arange(shape[a1]).reshape(idx1) == jnp.arange(shape[a2]).reshape(idx2)


def _layer_norm(hyper, k: Kernel, ctx) -> Kernel:
    if not k.is_gaussian:
        raise NotImplementedError("LayerNorm: only implemented for Gaussian inputs (after an affine layer)")
    ndim = len(k.shape1)
    axis = hyper.get("axis", -1)
    axes = sorted({a % ndim for a in ((axis,) if isinstance(axis, int) else axis)})
    channel, batch = hyper.get("channel_axis", -1) % ndim, hyper.get("batch_axis", 0) % ndim
    if channel not in axes:
        raise ValueError(f"LayerNorm: normalising over the channel axis {channel} is needed, got axis={axis}")
    spatial = [i for i in range(ndim) if i not in (channel, batch)]
    kernel_axes = tuple(([0] if batch in axes else []) + [1 + spatial.index(a) for a in axes if a in spatial])
    eps = hyper.get("eps", 1e-12)

    def mean_variance(cov):
        if cov is None:
            return None
        var = variances(cov, k.diagonal_batch, k.diagonal_spatial) + eps
        return jnp.mean(var, axis=kernel_axes, keepdims=True) if kernel_axes else var

    v1, v2 = mean_variance(k.cov1), mean_variance(k.cov2)
    pair_spatial = not k.diagonal_spatial
    root12 = jnp.sqrt(pairwise(v1, v1 if v2 is None else v2, True, pair_spatial))
    root11 = jnp.sqrt(pairwise(v1, v1, not k.diagonal_batch, pair_spatial))
    cov2 = None if v2 is None else k.cov2 / jnp.sqrt(pairwise(v2, v2, not k.diagonal_batch, pair_spatial))
    ntk = None if k.ntk is None else k.ntk / root12
    return k.replace(nngp=k.nngp / root12, ntk=ntk, cov1=k.cov1 / root11, cov2=cov2)


def _flatten(hyper, k: Kernel, ctx) -> Kernel:
    batch_out = hyper.get("batch_axis_out", 0)
    if batch_out not in (0, 1, -1, -2):
        raise ValueError(f"Flatten: batch_axis_out must be 0 or 1, got {batch_out}")
    batch_out = 0 if batch_out in (0, -2) else 1

    def trace(mat, batch_ndim):
        if mat is None or mat.ndim <= batch_ndim:
            return mat
        if not k.diagonal_spatial:
            mat = diagonal_pairs(mat, batch_ndim)
        return jnp.mean(mat, axis=tuple(range(batch_ndim, mat.ndim)))

    cov_batch = 1 if k.diagonal_batch else 2
    batch_in = hyper.get("batch_axis", 0)

    def out_shape(shape):
        n = shape[batch_in]
        rest = math.prod(_drop(shape, batch_in % len(shape)))
        return (n, rest) if batch_out == 0 else (rest, n)

    return k.replace(
        nngp=trace(k.nngp, 2),
        ntk=trace(k.ntk, 2),
        cov1=trace(k.cov1, cov_batch),
        cov2=trace(k.cov2, cov_batch),
        is_gaussian=False,
        is_reversed=False,
        batch_axis=batch_out,
        channel_axis=1 - batch_out,
        diagonal_spatial=False,
        shape1=out_shape(k.shape1),
        shape2=out_shape(k.shape2),
    )


def _global_pool(average: bool):
    def rule(hyper, k: Kernel, ctx) -> Kernel:
        ndim = len(k.shape1)
        batch, channel = hyper.get("batch_axis", 0) % ndim, hyper.get("channel_axis", -1) % ndim

        def pool(mat, batch_ndim):
            if mat is None or mat.ndim <= batch_ndim:
                return mat
            axes = tuple(range(batch_ndim, mat.ndim))
            if not average:
                return jnp.sum(mat, axes)
            out = jnp.mean(mat, axes)
            if k.diagonal_spatial:  # the (zero) off-diagonal pairs count in the average
                out = out / math.prod(mat.shape[batch_ndim:])
            return out

        cov_batch = 1 if k.diagonal_batch else 2
        batch_first = batch < channel
        shape = lambda s: (s[batch], s[channel]) if batch_first else (s[channel], s[batch])
        return k.replace(
            nngp=pool(k.nngp, 2),
            ntk=pool(k.ntk, 2),
            cov1=pool(k.cov1, cov_batch),
            cov2=pool(k.cov2, cov_batch),
            batch_axis=0 if batch_first else 1,
            channel_axis=1 if batch_first else 0,
            is_reversed=False,
            shape1=shape(k.shape1),
            shape2=shape(k.shape2),
        )

    return rule


def _pool(kind):
    def rule(hyper, k: Kernel, ctx) -> Kernel:
        window = tuple(hyper["window_shape"])
        strides = tuple(hyper.get("strides") or (1,) * len(window))
        padding = hyper.get("padding", "VALID")
        average = kind == "AvgPool"
        normalize_edges = hyper.get("normalize_edges", False) if average else False

        def pool(mat, batch_ndim):
            return conv_rules.pool_covariance(
                mat, batch_ndim, k.diagonal_spatial, window, strides, padding, average, normalize_edges
            )

        cov_batch = 1 if k.diagonal_batch else 2
        ba, ca = hyper.get("batch_axis", 0), hyper.get("channel_axis", -1)
        return k.replace(
            nngp=pool(k.nngp, 2),
            ntk=pool(k.ntk, 2),
            cov1=pool(k.cov1, cov_batch),
            cov2=pool(k.cov2, cov_batch),
            shape1=conv_rules.pool_output_shape(k.shape1, window, strides, padding, ba, ca),
            shape2=conv_rules.pool_output_shape(k.shape2, window, strides, padding, ba, ca),
        )

    return rule


def _conv(kind):
    def rule(hyper, k: Kernel, ctx) -> Kernel:
        _no_custom_init(kind, hyper)
        filter_shape = tuple(hyper["filter_shape"])
        n_spatial = len(filter_shape)
        lhs_spec, rhs_spec, out_spec = conv_dimension_numbers(hyper, n_spatial)
        strides = tuple(hyper.get("strides") or (1,) * n_spatial)
        padding = hyper.get("padding", "VALID")
        W_std, b_std = hyper.get("W_std", 1.0), hyper.get("b_std")
        parameterization = hyper.get("parameterization", "ntk").lower()
        s = tuple(hyper.get("s", (1, 1)))
        shared = kind != "ConvLocal"

        input_spec = [c for c in lhs_spec if c not in "NC"]
        conv_spec = [c for c in rhs_spec if c not in "IO"]
        filter_k = tuple(filter_shape[conv_spec.index(c)] for c in input_spec)
        strides_k = tuple(strides[conv_spec.index(c)] for c in input_spec)
        dilation = tuple(hyper.get("rhs_dilation") or (1,) * n_spatial)
        dilation_k = tuple(dilation[conv_spec.index(c)] for c in input_spec)
        covariance = {
            "Conv": conv_rules.conv_covariance,
            "ConvTranspose": conv_rules.conv_transpose_covariance,
            "ConvLocal": conv_rules.conv_local_covariance,
        }[kind]

        def unscaled(mat, batch_ndim):
            if kind == "Conv":
                return covariance(mat, batch_ndim, k.diagonal_spatial, filter_k, strides_k, padding, dilation_k)
            return covariance(mat, batch_ndim, k.diagonal_spatial, filter_k, strides_k, padding)

        def shift(mat, value, batch_ndim):
            if mat is None or value is None:
                return mat
            if k.diagonal_spatial or shared:
                return mat + value
            mask = jnp.ones((), bool)
            for axis in range(batch_ndim, mat.ndim, 2):
                mask = mask & _eye_mask(mat.shape, axis, axis + 1)
            return jnp.where(mask, mat + value, mat)

        b_sq = None if b_std is None else b_std**2

        def conv(mat, batch_ndim):
            out = unscaled(mat, batch_ndim)
            return None if out is None else shift(W_std**2 * out, b_sq, batch_ndim)

        cov_batch = 1 if k.diagonal_batch else 2
        ntk = k.ntk
        if parameterization == "ntk":
            nngp = conv(k.nngp, 2)
            if ntk is not None:
                ntk = W_std**2 * unscaled(ntk, 2) + nngp
        else:
            nngp_unscaled = unscaled(k.nngp, 2)
            if ntk is not None:
                fan_in = k.shape1[lhs_spec.index("C")] * math.prod(filter_shape)
                ntk = fan_in / s[0] * nngp_unscaled + W_std**2 * unscaled(ntk, 2)
                if b_std is not None:
                    ntk = shift(ntk, 1.0, 2)
            nngp = shift(W_std**2 * nngp_unscaled, b_sq, 2)

        is_reversed = k.is_reversed
        if shared and not k.diagonal_spatial:
            is_reversed = not is_reversed
        out = k.replace(
            nngp=nngp,
            ntk=ntk,
            cov1=conv(k.cov1, cov_batch),
            cov2=conv(k.cov2, cov_batch),
            is_gaussian=True,
            is_input=False,
            is_reversed=is_reversed,
            batch_axis=out_spec.index("N"),
            channel_axis=out_spec.index("C"),
            shape1=conv_rules.conv_output_shape(kind, hyper, k.shape1),
            shape2=conv_rules.conv_output_shape(kind, hyper, k.shape2),
        )
        out_kernel_spec = [c for c in out_spec if c not in "NC"]
        permutation = tuple(out_kernel_spec.index(c) for c in input_spec)
        if permutation != tuple(range(n_spatial)):
            out = _permute_like_nt(out, permutation)
        return out

    return rule


def _permute_like_nt(k: Kernel, permutation) -> Kernel:
    """Apply NT's ``Kernel.transpose(permutation)``, which NT applies to its presented
    (possibly reversed) arrays, to our natural-order arrays."""
    n = len(permutation)
    order = list(permutation)
    if k.is_reversed:  # natural -> presented, permute, presented -> natural
        flip = list(range(n))[::-1]
        order = [flip[i] for i in order]
        order = [order[i] for i in flip]
    cov_batch = 1 if k.diagonal_batch else 2

    def permute(mat, batch_ndim):
        if mat is None or mat.ndim <= batch_ndim:
            return mat
        group = 1 if k.diagonal_spatial else 2
        axes = list(range(batch_ndim))
        for s in order:
            axes += [batch_ndim + group * s + j for j in range(group)]
        return jnp.transpose(mat, axes)

    return k.replace(
        nngp=permute(k.nngp, 2), ntk=permute(k.ntk, 2), cov1=permute(k.cov1, cov_batch), cov2=permute(k.cov2, cov_batch)
    )


# --- branching --------------------------------------------------------------------------


def _fan_in(spec, ks) -> Kernel:
    kind = spec.kind
    if not isinstance(ks, (list, tuple)) or not ks:
        raise ValueError(f"{kind}: expected a list of kernels (after FanOut/parallel), got {type(ks).__name__}")
    ks = list(ks)
    first = ks[0]
    for other in ks[1:]:
        if (other.diagonal_batch, other.diagonal_spatial, other.batch_axis, other.channel_axis) != (
            first.diagonal_batch, first.diagonal_spatial, first.batch_axis, first.channel_axis
        ):  # fmt: skip
            raise NotImplementedError(f"{kind}: all branches must have the same kernel layout")
    is_reversed = sum(k.is_reversed for k in ks) > len(ks) / 2
    base = dict(
        x1_is_x2=first.x1_is_x2, is_reversed=is_reversed, is_input=first.is_input,
        diagonal_batch=first.diagonal_batch, diagonal_spatial=first.diagonal_spatial,
        batch_axis=first.batch_axis, channel_axis=first.channel_axis, mask1=None, mask2=None,
    )  # fmt: skip
    if kind in ("FanInSum", "FanInProd"):
        if any(k.shape1 != first.shape1 or k.shape2 != first.shape2 for k in ks):
            raise ValueError(f"{kind}: all branches must have equal shapes, got {[k.shape1 for k in ks]}")
    if kind == "FanInSum":
        is_gaussian = all(k.is_gaussian for k in ks)
        if not is_gaussian and len(ks) != 1:
            raise NotImplementedError("FanInSum: only implemented for Gaussian (post-affine) branches")
        total = lambda mats: None if mats[0] is None else sum(mats[1:], mats[0])
        return Kernel(
            nngp=total([k.nngp for k in ks]), ntk=total([k.ntk for k in ks]),
            cov1=total([k.cov1 for k in ks]), cov2=total([k.cov2 for k in ks]),
            is_gaussian=is_gaussian, shape1=first.shape1, shape2=first.shape2, **base,
        )  # fmt: skip
    if kind == "FanInProd":
        nngp, ntk = ks[0].nngp, ks[0].ntk
        for k in ks[1:]:
            if ntk is not None:
                ntk = ntk * k.nngp + nngp * k.ntk
            nngp = nngp * k.nngp
        prod = lambda mats: None if any(m is None for m in mats) else math.prod(mats[1:], start=mats[0])
        return Kernel(
            nngp=nngp, ntk=ntk, cov1=prod([k.cov1 for k in ks]), cov2=prod([k.cov2 for k in ks]),
            is_gaussian=len(ks) == 1 and first.is_gaussian, shape1=first.shape1, shape2=first.shape2, **base,
        )  # fmt: skip
    return _fan_in_concat(spec, ks, base)


def _fan_in_concat(spec, ks, base) -> Kernel:
    first = ks[0]
    ndim = len(first.shape1)
    axis = spec.hyper.get("axis", -1) % ndim
    for k in ks:
        if _drop(k.shape1, axis) != _drop(first.shape1, axis) or _drop(k.shape2, axis) != _drop(first.shape2, axis):
            raise ValueError("FanInConcat: non-concatenated shapes must be equal")
    batch, channel = first.batch_axis, first.channel_axis
    if axis == channel:
        is_gaussian = False
    else:
        is_gaussian = all(k.is_gaussian for k in ks)
        if not is_gaussian:
            raise NotImplementedError("FanInConcat: along a non-channel axis only for Gaussian branches")
    spatial = [i for i in range(ndim) if i not in (batch, channel)]
    kernel_axis = -1 if axis == channel else 0 if axis == batch else 1 + spatial.index(axis)
    widths = [k.shape1[channel] for k in ks]

    def concat(mats, diagonal_batch):
        if mats[0] is None:
            return None
        if kernel_axis == -1:
            if all(w == widths[0] for w in widths):
                return sum(mats[1:], mats[0]) / len(mats)
            return sum(m * w for m, w in zip(mats, widths)) / sum(widths)
        if (kernel_axis == 0 and diagonal_batch) or (kernel_axis != 0 and first.diagonal_spatial):
            return jnp.concatenate(mats, kernel_axis + (0 if diagonal_batch else 1))
        pad_axis = max(0, 2 * kernel_axis - (1 if diagonal_batch else 0))
        rows = []
        for i, mat in enumerate(mats):
            pads = [(0, 0)] * mat.ndim
            pads[pad_axis] = (sum(m.shape[pad_axis] for m in mats[:i]), sum(m.shape[pad_axis] for m in mats[i + 1 :]))
            rows.append(jnp.pad(mat, pads))
        return jnp.concatenate(rows, pad_axis + 1)

    def joined(shapes):
        return _set(shapes[0], axis, sum(s[axis] for s in shapes))

    return Kernel(
        nngp=concat([k.nngp for k in ks], False), ntk=concat([k.ntk for k in ks], False),
        cov1=concat([k.cov1 for k in ks], first.diagonal_batch), cov2=concat([k.cov2 for k in ks], first.diagonal_batch),
        is_gaussian=is_gaussian, shape1=joined([k.shape1 for k in ks]), shape2=joined([k.shape2 for k in ks]), **base,
    )  # fmt: skip


_RULES = {
    "Dense": _dense,
    "Identity": _identity,
    "Dropout": _dropout,
    "LayerNorm": _layer_norm,
    "Flatten": _flatten,
    "GlobalAvgPool": _global_pool(average=True),
    "GlobalSumPool": _global_pool(average=False),
    "AvgPool": _pool("AvgPool"),
    "SumPool": _pool("SumPool"),
    "Conv": _conv("Conv"),
    "ConvTranspose": _conv("ConvTranspose"),
    "ConvLocal": _conv("ConvLocal"),
}

# Layer families with their own rule modules (jaxdl/stax/<family>.py -> <family>_rules.py).
_LAYER_FAMILY_RULES = {**dot_general_rules.RULES, **indexing_rules.RULES, **resize_rules.RULES, **recurrent_rules.RULES, **gnn_rules.RULES}
