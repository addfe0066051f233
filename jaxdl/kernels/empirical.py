"""Empirical (finite-width) kernels of any ``f(params, x, **kwargs)``, neural-tangents' API.

Seed definitions (lecture notes, "Neural tangent kernel"):

* empirical NNGP ``K(x1, x2) = f(x1) f(x2)^T``;
* empirical NTK ``Theta(x1, x2) = J(x1) J(x2)^T``, ``J = ∂f/∂theta``, the kernel of
  the linearised network ``f_lin(theta) = f(theta_0) + J (theta - theta_0)``
  (:func:`linearize`, :func:`taylor_expand`).

Kernels follow neural-tangents' layout: for outputs ``f[N, X, Y, ...]`` the
kernel is ``f[N1, N2, X1, X2, ...]``; an axis in ``trace_axes`` is summed over
its pair and divided by its size (averaged); an axis in ``diagonal_axes``
keeps only equal indices and appears once. Outputs that are pytrees give a
kernel per output leaf (no cross terms), as in NT.

Three NTK implementations (``NtkImplementation``), all exact:

* ``JACOBIAN_CONTRACTION``: materialise ``J`` per parameter and contract;
* ``NTK_VECTOR_PRODUCTS``: ``Theta v = J (J^T v)`` for the basis vectors ``v``,
  never storing ``J``;
* ``STRUCTURED_DERIVATIVES``: Dense/Conv weights use ``(h1 h2^T) ⊙ (Δ1 Δ2^T)``
  (:mod:`jaxdl.kernels.structured`), everything else Jacobian contraction.

``AUTO`` uses structured derivatives: they fall back leaf by leaf to Jacobian
contraction, so they are exact for every ``f``, and cost at most one extra
trace of ``f`` over contraction. Should the re-traced program not be
differentiable (staging can turn an op into a form without a reverse rule),
the whole kernel is computed by Jacobian contraction (``STRUCTURED_DERIVATIVES``
says so in a warning).

``vmap_axes`` (NT semantics): ``None`` treats ``f`` as a function of the whole
batch (always correct); otherwise it declares that examples are independent
along the given axes, so the derivatives are taken per example under
``jax.vmap`` (much faster). It is a triple ``(in_axes, out_axes, kwargs_axes)``
or a single value used as both ``in_axes`` and ``out_axes``; ``in_axes`` is an
int or a pytree prefix of ``x`` (per input leaf; ``None`` = shared by all
examples), ``out_axes`` an int or a pytree prefix of ``f(x)`` (per output
leaf), ``kwargs_axes`` a dict from keyword names to such axes.

Zero-size outputs give empty kernels; a trace over an axis of size 0 is the
empty sum, 0. Repeated axes in ``trace_axes``/``diagonal_axes`` count once.

Written by hand: JAX offers the derivatives but no kernel assembly with NT's
trace/diagonal conventions, and neural-tangents does not run on current JAX.
"""

from __future__ import annotations

import enum
import functools
import math
import operator
import warnings
from collections import namedtuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.kernels import structured
from jaxdl.kernels.kernel import canonical_get

_OUT_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_KERNEL_NAMES = ("nngp", "ntk")
_HIGHEST = jax.lax.Precision.HIGHEST  # full float32 products on accelerators too


class NtkImplementation(enum.IntEnum):
    """How :func:`empirical_ntk_fn` computes the NTK (values as in neural-tangents)."""

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3


# --- axes and labels ------------------------------------------------------------


def _canonical_axes(name: str, axes, ndim: int) -> tuple[int, ...]:
    if isinstance(axes, int):
        axes = (axes,)
    axes = tuple(axes)
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"{name}: expected a tuple of ints for the axes, got {axes!r}")
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"{name}: axes {axes} do not fit an output of rank {ndim}")
    return tuple(sorted({a % ndim for a in axes}))  # repeated axes count once, as in NT


def _kernel_labels(name, shape1, shape2, trace_axes, diagonal_axes, batch_axis=None):
    """einsum labels of the two outputs (array layout) and of the kernel.

    Array layout: the natural order of the output axes, or, when ``batch_axis``
    is given (per-example derivatives), the batch axis first then the others.
    Returns ``(labels1, labels2, labels_out, trace_size)``.
    """
    ndim = len(shape1)
    if len(shape2) != ndim:
        raise ValueError(f"{name}: f(x1) and f(x2) have different ranks: {shape1} and {shape2}")
    trace = _canonical_axes(name, trace_axes, ndim)
    diagonal = _canonical_axes(name, diagonal_axes, ndim)
    if set(trace) & set(diagonal):
        raise ValueError(f"{name}: an axis cannot be in both trace_axes {trace_axes} and "
                         f"diagonal_axes {diagonal_axes}")
    letters = iter(_OUT_LETTERS)
    l1, l2, out = [], [], []
    for axis in range(ndim):
        a = next(letters)
        if axis in trace or axis in diagonal:
            if shape1[axis] != shape2[axis]:
                raise ValueError(
                    f"{name}: f(x1) and f(x2) must agree on traced/diagonal axis {axis}, "
                    f"got shapes {shape1} and {shape2}"
                )
            b = a
            if axis in diagonal:
                out.append(a)
        else:
            b = next(letters)
            out += [a, b]
        l1.append(a)
        l2.append(b)
    if batch_axis is not None:
        order = [batch_axis] + [a for a in range(ndim) if a != batch_axis]
        l1, l2 = [l1[a] for a in order], [l2[a] for a in order]
    # An average over traced axes; over an empty axis it is the empty sum, 0 (no 0/0).
    size = max(math.prod(shape1[a] for a in trace), 1)
    return "".join(l1), "".join(l2), "".join(out), size


# --- calling f ---------------------------------------------------------------------


def _split_kwargs(kwargs: dict, x2_given: bool):
    """NT's rule: a pair ``(v1, v2)`` splits between the inputs; an ``rng``/``key``
    is folded for ``x2`` so that the two batches see independent randomness."""
    kwargs1, kwargs2 = {}, {}
    for k, v in kwargs.items():
        if isinstance(v, tuple) and len(v) == 2:
            kwargs1[k], kwargs2[k] = v
        elif k in ("rng", "key") and v is not None and x2_given:
            kwargs1[k], kwargs2[k] = v, jax.random.fold_in(v, 1)
        else:
            kwargs1[k] = kwargs2[k] = v
    return kwargs1, kwargs2


def _vmap_axes(name, vmap_axes):
    """``(in_axes, out_axes, kwargs_axes)`` or None (NT's reading: a triple, or one value
    for both ``in_axes`` and ``out_axes``). ``in_axes``/``out_axes`` are ints or pytree
    prefixes of ``x``/``f(x)`` with int (or, for inputs, None) leaves."""
    if vmap_axes is None:
        return None
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_axes, out_axes, kw_axes = vmap_axes
    else:
        in_axes, out_axes, kw_axes = vmap_axes, vmap_axes, {}
    if kw_axes is None:
        kw_axes = {}
    if not isinstance(kw_axes, dict):
        raise TypeError(f"{name}: expected the kwargs_axes of vmap_axes to be a dict, got {kw_axes!r}")
    for what, axes in (("in_axes", in_axes), ("out_axes", out_axes), ("kwargs_axes", kw_axes)):
        for axis in jax.tree.leaves(axes):
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
                raise TypeError(f"{name}: expected int (or None) leaves in the {what} of vmap_axes, "
                                f"got {vmap_axes!r}")
    return in_axes, out_axes, kw_axes


def _per_leaf_axes(name, what, axes, tree) -> list:
    """``axes`` (a pytree prefix of ``tree``) broadcast to one axis (or None) per leaf of ``tree``,
    made non-negative."""
    per_leaf = []

    def expand(axis, subtree):
        for leaf in jax.tree.leaves(subtree):
            if axis is not None and not -jnp.ndim(leaf) <= axis < jnp.ndim(leaf):
                raise ValueError(f"{name}: vmap_axes {what} axis {axis} does not fit a leaf of shape "
                                 f"{jnp.shape(leaf)}")
            per_leaf.append(None if axis is None else int(axis) % jnp.ndim(leaf))

    try:
        jax.tree.map(expand, axes, tree, is_leaf=lambda a: a is None)
    except (ValueError, TypeError) as error:
        if str(error).startswith(name):
            raise
        raise ValueError(f"{name}: vmap_axes {what} {axes!r} is not a prefix of the structure "
                         f"{jax.tree.structure(tree)}") from None
    return per_leaf


class _Side:
    """``f`` on one input batch, as functions of the flat parameter leaves.

    ``chunk(leaves, inputs)``: the list of output leaves for one chunk (the
    whole batch, or one example with its batch axis removed when vmapped);
    ``inputs`` are the x leaves followed by the vmapped keyword arguments.
    """

    def __init__(self, name, f, params, x, kwargs, vmap):
        self.leaves, self.treedef = jax.tree.flatten(params)
        x_leaves, x_def = jax.tree.flatten(x)
        self.vmap = vmap
        in_axes, out_axes, kw_axes = vmap if vmap else (None, None, {})
        mapped_keys = [k for k in kwargs if k in kw_axes and kw_axes[k] is not None]
        fixed = {k: v for k, v in kwargs.items() if k not in mapped_keys}
        kw_leaves, kw_defs = [], []
        for k in mapped_keys:
            leaves, treedef = jax.tree.flatten(kwargs[k])
            kw_leaves.append(leaves)
            kw_defs.append(treedef)
        self.inputs = x_leaves + [leaf for leaves in kw_leaves for leaf in leaves]
        n_x = len(x_leaves)
        full_out = jax.eval_shape(lambda p: f(p, x, **kwargs), params)
        self.out_def = jax.tree.structure(full_out)
        self.full_shapes = [tuple(o.shape) for o in jax.tree.leaves(full_out)]
        if vmap:
            self.in_axes = _per_leaf_axes(name, "in_axes", in_axes, x)
            for k in mapped_keys:
                self.in_axes += _per_leaf_axes(name, f"kwargs_axes[{k!r}]", kw_axes[k], kwargs[k])
            sizes = {v.shape[a] for v, a in zip(self.inputs, self.in_axes) if a is not None}
            if len(sizes) != 1:
                raise ValueError(f"{name}: vmapped inputs disagree on the batch size (or none is "
                                 f"mapped): {sorted(sizes)}")
            self.batch_size = sizes.pop()
            self.fx_axes = _per_leaf_axes(name, "out_axes", out_axes, full_out)
            if any(a is None for a in self.fx_axes):
                raise ValueError(f"{name}: every output needs a vmap_axes out_axes axis, got {out_axes!r}")
            bad = [s for s, a in zip(self.full_shapes, self.fx_axes) if s[a] != self.batch_size]
            if bad:
                raise ValueError(f"{name}: outputs of shapes {bad} do not have the batch size "
                                 f"{self.batch_size} along their vmap_axes out_axes {out_axes!r}")
        else:
            self.in_axes = None

        def chunk(leaves, inputs):
            p = jax.tree.unflatten(self.treedef, leaves)
            if vmap:
                inputs = [v if a is None else jnp.expand_dims(v, a) for v, a in zip(inputs, self.in_axes)]
            xs = jax.tree.unflatten(x_def, inputs[:n_x])
            kw, start = dict(fixed), n_x
            for k, treedef in zip(mapped_keys, kw_defs):
                kw[k] = jax.tree.unflatten(treedef, inputs[start:start + treedef.num_leaves])
                start += treedef.num_leaves
            outs = jax.tree.leaves(f(p, xs, **kw))
            if vmap:
                outs = [jnp.squeeze(o, a) for o, a in zip(outs, self.fx_axes)]
            return outs

        self.chunk = chunk

    def per_chunk(self, fn):
        """``fn(inputs)`` over the whole batch, or vmapped over examples (outputs
        get a leading example axis)."""
        if self.vmap:
            return jax.vmap(fn, in_axes=(self.in_axes,))(self.inputs)
        return fn(self.inputs)

    def layout_shape(self, k: int) -> tuple[int, ...]:
        """Shape of output k in the array layout (batch axis first when vmapped)."""
        shape = self.full_shapes[k]
        if not self.vmap:
            return shape
        axis = self.fx_axes[k]
        return (shape[axis],) + shape[:axis] + shape[axis + 1:]

    def chunk_inputs_abstract(self):
        if self.vmap:
            return [jax.ShapeDtypeStruct(tuple(v.shape) if a is None else tuple(np.delete(v.shape, a)), v.dtype)
                    for v, a in zip(self.inputs, self.in_axes)]
        return [jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)) for v in self.inputs]


def _sides(name, f, x1, x2, params, kwargs, vmap):
    kwargs1, kwargs2 = _split_kwargs(kwargs, x2 is not None)
    side1 = _Side(name, f, params, x1, kwargs1, vmap)
    side2 = side1 if x2 is None else _Side(name, f, params, x2, kwargs2, vmap)
    if side2.out_def != side1.out_def:
        raise ValueError(f"{name}: f(x1) and f(x2) have different output structures")
    return side1, side2


def _labels_per_output(name, side1, side2, trace_axes, diagonal_axes):
    labels = []
    for k, (s1, s2) in enumerate(zip(side1.full_shapes, side2.full_shapes)):
        batch_axis = side1.fx_axes[k] if side1.vmap else None
        labels.append(_kernel_labels(name, s1, s2, trace_axes, diagonal_axes, batch_axis))
    return labels


# --- NNGP ---------------------------------------------------------------------------


def empirical_nngp_fn(f: Callable, trace_axes=(-1,), diagonal_axes=(), vmap_axes=None) -> Callable:
    """``nngp_fn(x1, x2, params, **kwargs)``: the empirical NNGP ``f(x1) f(x2)^T``.

    Shape: ``zip(f(x1).shape, f(x2).shape)`` without the traced axes, with
    diagonal axes once (see the module docstring). ``vmap_axes`` (as in
    :func:`empirical_ntk_fn`; not an NT argument of this function) evaluates
    ``f`` example by example under ``jax.vmap``; the result is the same.
    """
    name = "empirical_nngp_fn"
    _check_callable(name, f)
    vmap = _vmap_axes(name, vmap_axes)

    def nngp_fn(x1, x2, params, **apply_fn_kwargs):
        if vmap is not None:
            side1, side2 = _sides(name, f, x1, x2, params, apply_fn_kwargs, vmap)
            labels = _labels_per_output(name, side1, side2, trace_axes, diagonal_axes)
            outputs = lambda side: side.per_chunk(lambda inputs: side.chunk(side.leaves, inputs))  # noqa: E731
            out1 = outputs(side1)
            out2 = out1 if side2 is side1 else outputs(side2)
            kernels = [jnp.einsum(f"{l1},{l2}->{lo}", o1, o2, precision=_HIGHEST) / size
                       for o1, o2, (l1, l2, lo, size) in zip(out1, out2, labels)]  # fmt: skip
            return jax.tree.unflatten(side1.out_def, kernels)
        kwargs1, kwargs2 = _split_kwargs(apply_fn_kwargs, x2 is not None)
        out1 = f(params, x1, **kwargs1)
        out2 = out1 if x2 is None else f(params, x2, **kwargs2)

        def contract(o1, o2):
            l1, l2, lo, size = _kernel_labels(name, o1.shape, o2.shape, trace_axes, diagonal_axes)
            return jnp.einsum(f"{l1},{l2}->{lo}", o1, o2, precision=_HIGHEST) / size

        return jax.tree.map(contract, out1, out2)

    return nngp_fn


# --- NTK ------------------------------------------------------------------------------


def _jacobian_contraction(name, f, trace_axes, diagonal_axes, vmap):
    def ntk_fn(x1, x2, params, **apply_fn_kwargs):
        side1, side2 = _sides(name, f, x1, x2, params, apply_fn_kwargs, vmap)
        labels = _labels_per_output(name, side1, side2, trace_axes, diagonal_axes)

        def jacobians(side):
            return side.per_chunk(lambda inputs: jax.jacrev(side.chunk)(side.leaves, inputs))

        j1 = jacobians(side1)
        j2 = j1 if side2 is side1 else jacobians(side2)
        kernels = []
        for k, (l1, l2, lo, size) in enumerate(labels):
            n1, n2 = len(l1), len(l2)
            terms = [
                jnp.einsum(f"{l1}z,{l2}z->{lo}", _flat_tail(a, n1), _flat_tail(b, n2), precision=_HIGHEST)
                for a, b in zip(j1[k], j2[k])
            ]  # fmt: skip
            kernels.append(_sum(terms, labels[k], side1, side2, k) / size)
        return jax.tree.unflatten(side1.out_def, kernels)

    return ntk_fn


def _flat_tail(a, n: int):
    """Merge the axes after the first ``n`` (the parameter axes) into one; explicit sizes,
    so zero-size outputs work (a -1 cannot be inferred from an empty array)."""
    return a.reshape(a.shape[:n] + (math.prod(a.shape[n:]),))


def _sum(terms, labels, side1, side2, k):
    """Sum of the per-parameter blocks; a zero kernel of the right shape when f has no parameters."""
    if terms:
        return functools.reduce(operator.add, terms)
    l1, l2, lo, _ = labels
    zeros1, zeros2 = jnp.zeros(side1.layout_shape(k)), jnp.zeros(side2.layout_shape(k))
    return jnp.einsum(f"{l1},{l2}->{lo}", zeros1, zeros2)


def _vector_products(name, f, trace_axes, diagonal_axes, vmap):
    def ntk_fn(x1, x2, params, **apply_fn_kwargs):
        side1, side2 = _sides(name, f, x1, x2, params, apply_fn_kwargs, vmap)
        labels = _labels_per_output(name, side1, side2, trace_axes, diagonal_axes)
        leaves = side1.leaves

        def pair_kernel(inputs1, inputs2):
            """[out1_k..., out2_k...] for each output k (cross-output blocks dropped)."""
            f1 = lambda p: side1.chunk(p, inputs1)
            f2 = lambda p: side2.chunk(p, inputs2)
            outs2, pullback = jax.vjp(f2, leaves)
            outs1 = jax.eval_shape(f1, leaves)
            result = []
            for k, o2 in enumerate(outs2):

                def column(ct):
                    cts = [jnp.zeros_like(o) for o in outs2]
                    cts[k] = ct.reshape(o2.shape)
                    (tangent,) = pullback(cts)
                    return jax.jvp(f1, (leaves,), (tangent,))[1][k]

                cols = jax.vmap(column)(jnp.eye(o2.size, dtype=o2.dtype))  # [out2, out1...]
                cols = cols.reshape(o2.shape + outs1[k].shape)
                n2 = o2.ndim
                result.append(jnp.moveaxis(cols, tuple(range(n2)), tuple(range(-n2, 0))))
            return result

        if not vmap:
            blocks = pair_kernel(side1.inputs, side2.inputs)
            layout = [(l1 + l2) for l1, l2, _, _ in labels]
        else:
            blocks, layout = _vmapped_pairs(pair_kernel, side1, side2, labels)
        kernels = [
            jnp.einsum(f"{lay}->{lo}", b) / size
            for b, lay, (_, _, lo, size) in zip(blocks, layout, labels)
        ]
        return jax.tree.unflatten(side1.out_def, kernels)

    return ntk_fn


def _vmapped_pairs(pair_kernel, side1, side2, labels):
    """Per-example-pair blocks; a batch axis that is traced/diagonal pairs examples i with i
    (outputs may differ in this, e.g. a diagonal axis that is the batch axis of one only)."""
    zipped_per_output = [l1[0] == l2[0] for l1, l2, _, _ in labels]
    in_axes1, in_axes2 = side1.in_axes, side2.in_axes
    computed = {}
    if any(zipped_per_output):  # examples i with i
        computed[True] = jax.vmap(pair_kernel, in_axes=(in_axes1, in_axes2))(side1.inputs, side2.inputs)
    if not all(zipped_per_output):  # all pairs i, j
        inner = jax.vmap(pair_kernel, in_axes=(None, in_axes2))
        computed[False] = jax.vmap(inner, in_axes=(in_axes1, None))(side1.inputs, side2.inputs)
    blocks = [computed[zipped][k] for k, zipped in enumerate(zipped_per_output)]
    layout = [l1[0] + l1[1:] + l2[1:] if zipped else l1[0] + l2[0] + l1[1:] + l2[1:]
              for (l1, l2, _, _), zipped in zip(labels, zipped_per_output)]  # fmt: skip
    return blocks, layout


def _structured_derivatives(name, f, trace_axes, diagonal_axes, vmap, warn_on_fallback: bool):
    contraction = _jacobian_contraction(name, f, trace_axes, diagonal_axes, vmap)

    def ntk_fn(x1, x2, params, **apply_fn_kwargs):
        side1, side2 = _sides(name, f, x1, x2, params, apply_fn_kwargs, vmap)
        labels = _labels_per_output(name, side1, side2, trace_axes, diagonal_axes)
        try:
            return _structured_ntk(side1, side2, labels)
        except Exception as error:  # noqa: BLE001 - the re-traced program is not differentiable
            # Staging f with jax.make_jaxpr can turn an op into a form JAX cannot
            # reverse-differentiate (e.g. a reduce_window whose init value became a
            # tracer); Jacobian contraction differentiates f itself.
            if warn_on_fallback:
                warnings.warn(f"{name}: structured derivatives failed ({type(error).__name__}: "
                              f"{error}); using Jacobian contraction", RuntimeWarning, stacklevel=2)
            return contraction(x1, x2, params, **apply_fn_kwargs)

    return ntk_fn


def _structured_ntk(side1, side2, labels):
    n_out = len(labels)
    plan1 = structured.analyze(side1.chunk, side1.leaves, side1.chunk_inputs_abstract())
    plan2 = plan1
    if side2 is not side1:
        plan2 = structured.analyze(side2.chunk, side2.leaves, side2.chunk_inputs_abstract())
        sig1, sig2 = structured.signature(plan1), structured.signature(plan2)
        common = {leaf for leaf in sig1 if sig2.get(leaf) == sig1[leaf]}
        plan1, plan2 = structured.restrict(plan1, common), structured.restrict(plan2, common)

    def derivatives(side, plan):
        return side.per_chunk(
            lambda inputs: structured.derivatives(plan, side.leaves, inputs, n_out)[1:]
        )

    d1 = derivatives(side1, plan1)
    d2 = d1 if side2 is side1 else derivatives(side2, plan2)
    return jax.tree.unflatten(
        side1.out_def,
        [_structured_kernel(k, labels, d1, d2, plan1, side1, side2) for k in range(n_out)],
    )


def _structured_kernel(k, labels, d1, d2, plan, side1, side2):
    l1, l2, lo, size = labels[k]
    hs1, scales1, deltas1, jac1 = d1
    hs2, scales2, deltas2, jac2 = d2
    e1, e2 = (l1[0], l2[0]) if side1.vmap else ("", "")
    n1, n2 = len(l1), len(l2)
    terms = []
    for i in range(len(plan.targets)):
        h1 = hs1[i] * _expand(scales1[i], hs1[i])
        h2 = hs2[i] * _expand(scales2[i], hs2[i])
        terms.append(
            jnp.einsum(
                f"{e1}bcu,{e2}bcv,{l1}bur,{l2}bvr->{lo}", h1, h2, deltas1[k][i], deltas2[k][i],
                optimize="optimal", precision=_HIGHEST,
            )
        )  # fmt: skip
    for a, b in zip(jac1[k], jac2[k]):
        if a is not None:
            terms.append(
                jnp.einsum(f"{l1}z,{l2}z->{lo}", _flat_tail(a, n1), _flat_tail(b, n2), precision=_HIGHEST)
            )  # fmt: skip
    return _sum(terms, labels[k], side1, side2, k) / size


def _expand(scale, h):
    """Broadcast a per-chunk scale (scalar, or f[n] when vmapped) against h."""
    return jnp.reshape(scale, jnp.shape(scale) + (1,) * (h.ndim - jnp.ndim(scale)))


_IMPLEMENTATIONS = {
    NtkImplementation.AUTO: functools.partial(_structured_derivatives, warn_on_fallback=False),
    NtkImplementation.JACOBIAN_CONTRACTION: _jacobian_contraction,
    NtkImplementation.NTK_VECTOR_PRODUCTS: _vector_products,
    NtkImplementation.STRUCTURED_DERIVATIVES: functools.partial(_structured_derivatives,
                                                                warn_on_fallback=True),
}


def _check_callable(name, f):
    if not callable(f):
        raise TypeError(f"{name}: expected f to be a callable f(params, x, **kwargs), got {type(f).__name__}")


def empirical_ntk_fn(
    f: Callable,
    trace_axes=(-1,),
    diagonal_axes=(),
    vmap_axes=None,
    implementation=NtkImplementation.AUTO,
) -> Callable:
    """``ntk_fn(x1, x2, params, **kwargs)``: the empirical NTK ``J(x1) J(x2)^T``.

    Args:
      f: ``f(params, x, **kwargs)`` (stax ``apply_fn``, flax ``module.apply``, any jnp code).
      trace_axes: output axes summed over their pair and averaged.
      diagonal_axes: output axes of which only the diagonal is kept.
      vmap_axes: ``None``, or the axes of independent examples: an int, a pytree of them,
        or ``(in_axes, out_axes, kwargs_axes)`` (see the module docstring).
      implementation: an :class:`NtkImplementation` (or its int value 0-3).

    Returns f[N1, N2, ...] with NT's layout; ``x2=None`` means ``x2 = x1``.
    """
    name = "empirical_ntk_fn"
    _check_callable(name, f)
    try:
        implementation = NtkImplementation(implementation)
    except ValueError:
        raise ValueError(f"{name}: expected implementation in {list(NtkImplementation)}, "
                         f"got {implementation!r}") from None
    vmap = _vmap_axes(name, vmap_axes)
    return _IMPLEMENTATIONS[implementation](name, f, trace_axes, diagonal_axes, vmap)


@functools.lru_cache(maxsize=None)
def _empirical_kernel_type(names: tuple[str, ...]):
    """One namedtuple class per ``get``, so results of separate calls share a pytree structure."""
    return namedtuple("EmpiricalKernel", names)


def empirical_kernel_fn(
    f: Callable,
    trace_axes=(-1,),
    diagonal_axes=(),
    vmap_axes=None,
    implementation=NtkImplementation.AUTO,
) -> Callable:
    """``kernel_fn(x1, x2, get, params, **kwargs)`` for ``get`` in ``'nngp'``, ``'ntk'``,
    a tuple of them (an ``EmpiricalKernel`` namedtuple) or ``None`` (both)."""
    fns = {
        "nngp": empirical_nngp_fn(f, trace_axes, diagonal_axes, vmap_axes),
        "ntk": empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation),
    }

    def kernel_fn(x1, x2=None, get=None, params=None, **apply_fn_kwargs):
        if params is None:
            raise TypeError("empirical_kernel_fn: kernel_fn needs params, got None")
        get = canonical_get(get)  # NT accepts 'NTK', 'NNGP'
        names = _KERNEL_NAMES if get is None else ((get,) if isinstance(get, str) else tuple(get))
        for g in names:
            if g not in fns:
                raise ValueError(f"empirical_kernel_fn: expected get in {_KERNEL_NAMES}, got {g!r}")
        values = {g: fns[g](x1, x2, params, **apply_fn_kwargs) for g in names}
        if isinstance(get, str):
            return values[get]
        return _empirical_kernel_type(names)(*(values[g] for g in names))

    return kernel_fn


def empirical_ntk_vp_fn(f: Callable, x1, x2, params, **apply_fn_kwargs) -> Callable:
    """``ntk_vp_fn(cotangents) = Theta(x1, x2) @ cotangents`` without forming Theta.

    ``cotangents`` has the shape/structure of ``f(params, x2)``; the result that
    of ``f(params, x1)`` (full kernel, nothing traced), cost ~ one vjp + one jvp.
    """
    _check_callable("empirical_ntk_vp_fn", f)
    kwargs1, kwargs2 = _split_kwargs(apply_fn_kwargs, x2 is not None)
    x2_, kwargs2 = (x1, kwargs1) if x2 is None else (x2, kwargs2)

    def ntk_vp_fn(cotangents):
        _, pullback = jax.vjp(lambda p: f(p, x2_, **kwargs2), params)
        (tangent,) = pullback(cotangents)
        return jax.jvp(lambda p: f(p, x1, **kwargs1), (params,), (tangent,))[1]

    return ntk_vp_fn


# --- Taylor expansions -------------------------------------------------------------------


def linearize(f: Callable, params) -> Callable:
    """``f_lin(p, *args, **kwargs) = f(params) + J(params) (p - params)``."""
    _check_callable("linearize", f)

    def f_lin(p, *args, **kwargs):
        dparams = jax.tree.map(operator.sub, p, params)
        value, tangent = jax.jvp(lambda q: f(q, *args, **kwargs), (params,), (dparams,))
        return jax.tree.map(operator.add, value, tangent)

    return f_lin


def taylor_expand(f: Callable, params, degree: int) -> Callable:
    """``f_tayl(p, ...)``: the Taylor polynomial of ``f`` around ``params`` of order ``degree``,
    ``sum_k D^k f(params)[dp, ..., dp] / k!`` with ``dp = p - params``."""
    _check_callable("taylor_expand", f)
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"taylor_expand: expected a non-negative int degree, got {degree!r}")

    def f_tayl(p, *args, **kwargs):
        dparams = jax.tree.map(operator.sub, p, params)
        g = lambda q: f(q, *args, **kwargs)
        # terms[k] = D^k f(params)[dp]^k, by nesting jvps
        derivative, total = g, g(params)
        for k in range(1, degree + 1):
            derivative = functools.partial(_directional, derivative, dparams)
            total = jax.tree.map(lambda t, d: t + d / math.factorial(k), total, derivative(params))
        return total

    return f_tayl


def _directional(g, direction, q):
    return jax.jvp(g, (q,), (direction,))[1]
