"""FLOP counts of a compiled step: XLA's cost analysis, and matrix-product FLOPs read off the jaxpr.

* :func:`xla_cost` returns what ``jax.jit(f).lower(*args).compile().cost_analysis()``
  reports: every floating-point operation of the optimised program (``2 m n k`` per
  ``m x k`` by ``k x n`` product, one per element of an elementwise op, ...). XLA counts
  the body of a ``while`` loop once, whatever its trip count, so for programs with loops
  (``lax.scan`` over time in recurrent networks, the leapfrog steps of HMC) it undercounts.
* :func:`matmul_flops` walks the jaxpr of ``f`` and adds up the FLOPs of its matrix
  products and convolutions (``2 x`` output elements ``x`` contraction size), multiplying
  the body of a ``lax.scan`` by its length. It ignores the elementwise work, which is small
  next to the products in the workloads of :mod:`jaxdl.bench`.

:func:`step_flops` picks the number ``jaxdl bench`` uses for FLOP/s and MFU: XLA's count
for a loop-free program, the larger of the two when the program loops.
"""

from __future__ import annotations

import math
from typing import Callable

import jax


def xla_cost(compiled) -> dict:
    """``{"flops", "bytes_accessed"}`` from a compiled executable's cost analysis (``nan`` when absent)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX versions: one dict per program
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    return {"flops": float(analysis.get("flops", math.nan)),
            "bytes_accessed": float(analysis.get("bytes accessed", math.nan))}


def has_while_loop(compiled) -> bool:
    """Whether the optimised HLO of ``compiled`` contains a ``while`` loop (counted once by XLA)."""
    return " while(" in compiled.as_text()


def _sub_jaxprs(params: dict):
    """The jaxprs nested in an equation's parameters (``pjit``, ``custom_vjp_call``, ``remat``, ...)."""
    for value in params.values():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if hasattr(item, "eqns"):
                yield item
            elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr


def _dot_flops(eqn) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs_shape = eqn.invars[0].aval.shape
    contraction = math.prod(lhs_shape[d] for d in lhs_contract)
    return 2 * math.prod(eqn.outvars[0].aval.shape) * contraction


def _conv_flops(eqn) -> int:
    rhs_shape = eqn.invars[1].aval.shape
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    per_output = math.prod(rhs_shape) // rhs_shape[out_feature_dim]  # in-features/group x window
    return 2 * math.prod(eqn.outvars[0].aval.shape) * per_output


def _jaxpr_matmul_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_matmul_flops(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":
            total += max(_jaxpr_matmul_flops(branch.jaxpr) for branch in eqn.params["branches"])
        else:  # while (trip count unknown: once), pjit, custom_jvp/vjp, remat, ...
            total += sum(_jaxpr_matmul_flops(sub) for sub in _sub_jaxprs(eqn.params))
    return total


def matmul_flops(f: Callable, *args) -> int:
    """FLOPs of the matrix products and convolutions of ``f(*args)``, scan bodies times their length.

    ``2 * prod(output shape) * contraction size`` per ``dot_general``; for a convolution the
    contraction is the input features per group times the window size.
    """
    return _jaxpr_matmul_flops(jax.make_jaxpr(f)(*args).jaxpr)


def step_flops(compiled, f: Callable, *args, num_devices: int = 1) -> dict:
    """The FLOPs of one step of ``f(*args)`` (compiled as ``compiled``) that ``jaxdl bench`` reports.

    A program partitioned over ``num_devices`` devices is costed per device by XLA; its
    count is multiplied by ``num_devices`` (replicated work, such as the optimiser update
    of data-parallel training, is then counted once per device, as it runs).

    Returns ``{"flops", "flops_xla", "flops_matmul", "flops_source", "bytes_accessed"}``:
    ``flops`` is XLA's count (``flops_source='xla'``) unless the program has a ``while``
    loop, whose body XLA counts once; then it is the larger of XLA's count and the
    jaxpr's matrix-product count with scan trip counts (``'jaxpr-matmul'``).
    """
    cost = xla_cost(compiled)
    cost["flops"] *= num_devices
    products = float(matmul_flops(f, *args))
    flops, source = cost["flops"], "xla"
    if has_while_loop(compiled) and not products <= flops:
        flops, source = products, "jaxpr-matmul"
    return {"flops": flops, "flops_xla": cost["flops"], "flops_matmul": products, "flops_source": source,
            "bytes_accessed": cost["bytes_accessed"]}


__all__ = ["has_while_loop", "matmul_flops", "step_flops", "xla_cost"]
