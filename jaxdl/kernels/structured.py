"""Structured derivatives: the empirical NTK of Dense/Conv weights without their Jacobian.

A weight ``W`` that enters ``f`` only through one product ``y = h W`` (a
``dot_general``) or one convolution ``y = conv(h, W)`` has the per-weight NTK
block (seed definition ``K_theta(x, x') = <grad_theta f(x), grad_theta f(x')>``)

    Theta_W(x1, x2) = (h1 h2^T) ⊙ (Δ1 Δ2^T),     Δ = ∂f/∂y,

summed over the positions ``u, v`` where ``W`` is applied (sequence steps,
image patches; for a convolution ``h`` is the matrix of input patches). So the
Jacobian ``∂f/∂W`` (``outputs x fan_in x fan_out`` numbers per example) is
never formed: one forward pass records ``h``, one reverse pass per output
gives ``Δ``, and an ``einsum`` (contraction order chosen by ``opt_einsum``)
combines them.

How the structure is found, with public JAX APIs only: ``jax.make_jaxpr``
traces ``f``; calls (``jit``) are inlined; a parameter leaf qualifies when its
only use, through shape-only or scalar-scaling steps (``reshape``,
``transpose``, ``convert_element_type``, ``neg``, ``mul``/``div`` by a scalar),
is one operand of a ``dot_general`` or the kernel of an ungrouped
``conv_general_dilated``. The traced program is then re-evaluated with
``Primitive.bind`` (as ``jax.extend.core.jaxpr_as_fun`` would) with a zero
perturbation ``eps`` added to each such product, so ``Δ = ∂f/∂eps``. Every
other leaf (biases, shared weights, weights inside loops or custom rules) is
handled by Jacobian contraction, so the result is exact for any ``f``.

Written by hand: JAX and its ecosystem have no structured-NTK routine
(neural-tangents' own relies on JAX internals that current JAX removed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core

_CALL_PRIMITIVES = ("jit", "pjit", "closed_call", "core_call", "checkpoint", "remat")
_SHAPE_ONLY = ("reshape", "transpose", "convert_element_type", "copy", "copy_p", "squeeze",
               "expand_dims")  # fmt: skip


@dataclasses.dataclass
class _Record:
    """One primitive application of the inlined program; ``ins`` are variable ids
    (int) or ``_Const`` values, ``outs`` ids or ``None`` for dropped outputs."""

    primitive: Any
    params: dict
    ins: list
    in_shapes: list
    outs: list
    out_shapes: list
    out_dtypes: list


@dataclasses.dataclass(frozen=True)
class _Const:
    value: Any


@dataclasses.dataclass
class _Program:
    records: list[_Record]
    in_ids: list[int]
    out_atoms: list  # ids or _Const
    const_env: dict[int, Any]


@dataclasses.dataclass(frozen=True)
class _Target:
    """A parameter leaf used once in a product: where, how, and its scaling steps."""

    leaf: int
    record: int
    kind: str  # "dot" or "conv"
    weight_position: int  # operand index of the weight in the product
    scale_steps: tuple[tuple[int, int, str], ...]  # (record, scalar operand position, op)


def _flatten_program(closed_jaxpr) -> _Program:
    """Inline all call primitives of a closed jaxpr into one flat list of records."""
    records: list[_Record] = []
    const_env: dict[int, Any] = {}
    counter = iter(range(1 << 62))

    def atom(env, var):
        if isinstance(var, jex_core.Literal):
            return _Const(var.val)
        return env[var]

    def visit(jaxpr, consts, in_atoms):
        env = {}
        for var, value in zip(jaxpr.constvars, consts):
            idx = next(counter)
            const_env[idx] = value
            env[var] = idx
        for var, a in zip(jaxpr.invars, in_atoms):
            env[var] = a
        for eqn in jaxpr.eqns:
            ins = [atom(env, v) for v in eqn.invars]
            inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
            if eqn.primitive.name in _CALL_PRIMITIVES and inner is not None:
                if isinstance(inner, jex_core.ClosedJaxpr):
                    outs = visit(inner.jaxpr, inner.consts, ins)
                else:
                    outs = visit(inner, [], ins)
                for var, a in zip(eqn.outvars, outs):
                    env[var] = a
                continue
            out_ids = []
            for var in eqn.outvars:
                if isinstance(var, jex_core.DropVar):
                    out_ids.append(None)
                else:
                    env[var] = next(counter)
                    out_ids.append(env[var])
            records.append(
                _Record(
                    eqn.primitive,
                    dict(eqn.params),
                    ins,
                    [tuple(np.shape(v.val)) if isinstance(v, jex_core.Literal) else tuple(v.aval.shape)
                     for v in eqn.invars],
                    out_ids,
                    [tuple(getattr(v.aval, "shape", ())) for v in eqn.outvars],
                    [getattr(v.aval, "dtype", None) for v in eqn.outvars],
                )
            )
        return [atom(env, v) for v in jaxpr.outvars]

    in_ids = [next(counter) for _ in closed_jaxpr.jaxpr.invars]
    out_atoms = visit(closed_jaxpr.jaxpr, closed_jaxpr.consts, in_ids)
    return _Program(records, in_ids, out_atoms, const_env)


def _find_targets(program: _Program, n_leaves: int) -> dict[int, _Target]:
    """Parameter leaves (by flat index) that enter ``f`` through exactly one product."""
    uses: dict[int, list[tuple[int, int]]] = {}
    for r, rec in enumerate(program.records):
        for pos, a in enumerate(rec.ins):
            if isinstance(a, int):
                uses.setdefault(a, []).append((r, pos))
    returned = {a for a in program.out_atoms if isinstance(a, int)}

    targets = {}
    for leaf in range(n_leaves):
        current = program.in_ids[leaf]
        steps = []
        while current not in returned and len(uses.get(current, ())) == 1:
            r, pos = uses[current][0]
            rec = program.records[r]
            name = rec.primitive.name
            other = 1 - pos
            if (name in _SHAPE_ONLY and rec.ins[0] == current and len(rec.outs) == 1
                    and jnp.issubdtype(rec.out_dtypes[0], jnp.inexact)):
                current = rec.outs[0]
            elif name == "neg":
                steps.append((r, -1, "neg"))
                current = rec.outs[0]
            elif name in ("mul", "div") and len(rec.ins) == 2 and rec.in_shapes[other] == () \
                    and rec.ins[other] != current and (name == "mul" or pos == 0):
                steps.append((r, other, name))
                current = rec.outs[0]
            elif name == "dot_general" and rec.ins[other] != current:
                targets[leaf] = _Target(leaf, r, "dot", pos, tuple(steps))
                break
            elif (name == "conv_general_dilated" and pos == 1 and rec.ins[0] != current
                  and rec.params["feature_group_count"] == 1 and rec.params["batch_group_count"] == 1):
                targets[leaf] = _Target(leaf, r, "conv", pos, tuple(steps))
                break
            else:
                break
    return targets


def _dot_layout(rec: _Record, weight_position: int):
    """Axes of the product's input ``h`` as (beta, c, u) and of its output as (beta, u, r)."""
    (lc, rc), (lb, rb) = rec.params["dimension_numbers"]
    lhs_ndim, rhs_ndim = len(rec.in_shapes[0]), len(rec.in_shapes[1])
    lf = [d for d in range(lhs_ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs_ndim) if d not in rc and d not in rb]
    nb = len(lb)
    lf_out = list(range(nb, nb + len(lf)))
    rf_out = list(range(nb + len(lf), nb + len(lf) + len(rf)))
    batch_out = list(range(nb))
    if weight_position == 1:  # h is lhs
        h_axes = (list(lb), list(lc), lf)
        y_axes = (batch_out, lf_out, rf_out)
    else:  # h is rhs
        h_axes = (list(rb), list(rc), rf)
        y_axes = (batch_out, rf_out, lf_out)
    return h_axes, y_axes


def _group(x, axes_groups):
    """Transpose ``x`` so that each group of axes is contiguous, then merge each group."""
    order = [a for group in axes_groups for a in group]
    x = jnp.transpose(x, order)
    sizes = [int(np.prod([x.shape[order.index(a)] for a in group], dtype=int)) for group in axes_groups]
    return x.reshape(sizes)


def _normalize_h(rec: _Record, target: _Target, h):
    """The input of the product as f[B, C, U] (batch-of-product, contracted, free)."""
    if target.kind == "dot":
        h_axes, _ = _dot_layout(rec, target.weight_position)
        return _group(h, h_axes)
    p = rec.params
    dn = p["dimension_numbers"]
    filter_shape = [rec.in_shapes[1][d] for d in dn.rhs_spec[2:]]
    patches = lax.conv_general_dilated_patches(
        h, filter_shape, p["window_strides"], p["padding"],
        lhs_dilation=p["lhs_dilation"], rhs_dilation=p["rhs_dilation"],
        dimension_numbers=dn, precision=lax.Precision.HIGHEST,
    )  # fmt: skip
    feature = dn.out_spec[1]
    others = [d for d in range(patches.ndim) if d != feature]
    return _group(patches, ([], [feature], others))


def _delta_groups(rec: _Record, target: _Target, y_ndim: int):
    """Axes (beta, u, r) of the product's output."""
    if target.kind == "dot":
        _, y_axes = _dot_layout(rec, target.weight_position)
        return y_axes
    feature = rec.params["dimension_numbers"].out_spec[1]
    return ([], [d for d in range(y_ndim) if d != feature], [feature])


def _bind(rec: _Record, invals):
    """Apply one recorded primitive, as ``jax.extend.core.jaxpr_as_fun`` does."""
    bind_params = rec.primitive.get_bind_params(rec.params)
    if isinstance(bind_params, tuple):  # older JAX: (subfuns, params)
        subfuns, bind_params = bind_params
        return rec.primitive.bind(*subfuns, *invals, **bind_params)
    return rec.primitive.bind(*invals, **bind_params)


def _read(env, a):
    return a.value if isinstance(a, _Const) else env[a]


def _evaluate(program: _Program, targets: dict[int, _Target], leaves, x_leaves, eps_list):
    """Run the program with ``eps`` added to each target product; returns
    ``(outputs, hs, scales)``, ``hs`` normalised to f[B, C, U]."""
    env = dict(program.const_env)
    for idx, value in zip(program.in_ids, list(leaves) + list(x_leaves)):
        env[idx] = value
    by_record = {t.record: (i, t) for i, t in enumerate(targets.values())}
    scale_of = {}
    for i, t in enumerate(targets.values()):
        for r, pos, op in t.scale_steps:
            scale_of[r] = (i, pos, op)
    hs = [None] * len(targets)
    scales = [jnp.ones((), dtype=jnp.result_type(float))] * len(targets)
    for r, rec in enumerate(program.records):
        invals = [_read(env, a) for a in rec.ins]
        out = _bind(rec, invals)
        outs = out if rec.primitive.multiple_results else [out]
        if r in by_record:
            i, t = by_record[r]
            hs[i] = _normalize_h(rec, t, invals[1 - t.weight_position])
            outs = [outs[0] + eps_list[i]]
        if r in scale_of:
            i, pos, op = scale_of[r]
            if op == "neg":
                scales[i] = -scales[i]
            elif op == "mul":
                scales[i] = scales[i] * invals[pos]
            else:
                scales[i] = scales[i] / invals[pos]
        for idx, value in zip(rec.outs, outs):
            if idx is not None:
                env[idx] = value
    return [_read(env, a) for a in program.out_atoms], hs, scales


@dataclasses.dataclass(frozen=True)
class StructuredPlan:
    """What the analysis of ``f`` found for one input shape."""

    program: _Program
    targets: dict[int, _Target]


def analyze(flat_f: Callable, leaves, x_leaves) -> StructuredPlan:
    """Trace ``flat_f(leaves, x_leaves) -> list of output arrays`` and find the
    parameter leaves with Dense/Conv structure."""
    closed = jax.make_jaxpr(flat_f)(list(leaves), list(x_leaves))
    program = _flatten_program(closed)
    return StructuredPlan(program, _find_targets(program, len(leaves)))


def restrict(plan: StructuredPlan, leaves: set[int]) -> StructuredPlan:
    return StructuredPlan(plan.program, {k: t for k, t in plan.targets.items() if k in leaves})


def signature(plan: StructuredPlan) -> dict[int, tuple]:
    """Per target leaf, what must agree between the two inputs' plans for the
    per-leaf blocks to be contracted: kind and the (B, C, R) sizes."""
    out = {}
    for leaf, t in plan.targets.items():
        rec = plan.program.records[t.record]
        y_shape = rec.out_shapes[0]
        beta, _, r_axes = _delta_groups(rec, t, len(y_shape))
        B = int(np.prod([y_shape[a] for a in beta], dtype=int))
        R = int(np.prod([y_shape[a] for a in r_axes], dtype=int))
        out[leaf] = (t.kind, B, R, rec.in_shapes[t.weight_position])
    return out


def derivatives(plan: StructuredPlan, leaves, x_leaves, n_out: int):
    """One chunk's ``(outputs, hs, scales, deltas, fallback_jacobians)``.

    ``deltas[k][i]``: f[*out_k.shape, B, U, R] = ∂out_k/∂y_i regrouped;
    ``fallback_jacobians[k][j]``: f[*out_k.shape, P_j] for every leaf j that is not
    a target (``None`` for targets).
    """
    targets = plan.targets
    fallback = [j for j in range(len(leaves)) if j not in targets]
    eps0 = [
        jnp.zeros(plan.program.records[t.record].out_shapes[0],
                  plan.program.records[t.record].out_dtypes[0])
        for t in targets.values()
    ]

    def g(eps_list, fallback_leaves):
        full = list(leaves)
        for j, value in zip(fallback, fallback_leaves):
            full[j] = value
        outs, hs, scales = _evaluate(plan.program, targets, full, x_leaves, eps_list)
        return outs, (outs, hs, scales)

    jac, (outs, hs, scales) = jax.jacrev(g, argnums=(0, 1), has_aux=True)(
        eps0, [leaves[j] for j in fallback]
    )
    d_eps = [jac_k[0] for jac_k in jac]
    d_fallback = [jac_k[1] for jac_k in jac]
    deltas, jacobians = [], []
    for k in range(n_out):
        out_ndim = outs[k].ndim
        per_target = []
        for i, t in enumerate(targets.values()):
            rec = plan.program.records[t.record]
            y_ndim = len(rec.out_shapes[0])
            groups = _delta_groups(rec, t, y_ndim)
            d = d_eps[k][i]
            lead = list(range(out_ndim))
            per_target.append(
                _group(d, [[a] for a in lead] + [[out_ndim + a for a in g_] for g_ in groups])
            )
        deltas.append(per_target)
        jac = [None] * len(leaves)
        for j, d in zip(fallback, d_fallback[k]):
            jac[j] = d.reshape(outs[k].shape + (int(np.prod(d.shape[outs[k].ndim:], dtype=int)),))
        jacobians.append(jac)
    return outs, hs, scales, deltas, jacobians
