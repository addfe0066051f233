"""Kernels at scale: compute a kernel matrix block by block, spread over devices.

``batch(kernel_fn, batch_size, device_count, store_on_device)`` (neural-tangents'
API) wraps any ``kernel_fn(x1, x2=None, *args, **kwargs)`` (analytic
``kernel_fn`` of ``jaxdl.stax`` returning arrays, namedtuples or a
:class:`~jaxdl.kernels.kernel.Kernel`; empirical and Monte Carlo kernel
functions; plain jnp code) and any ``kernel_fn(kernel, *args, **kwargs)`` that
consumes a ``Kernel`` (a layer's ``kernel_fn`` applied to a kernel). The
``n1 x n2`` kernel is cut into ``batch_size x batch_size`` blocks; rows of
``device_count`` consecutive blocks are computed at once, one block per device,
by ``jax.shard_map`` over a 1-D ``jax.sharding.Mesh`` (no ``pmap``). Blocks are
concatenated on device, or with ``store_on_device=False`` copied into
preallocated host (numpy) arrays as soon as they are ready, while the next
block is computed, so device memory holds only a few blocks.

Which axes to cut is read off the function itself: the inputs are cut along
their batch axis (axis 0, or the first axis along which cutting ``x1`` cuts
exactly one axis of the result, e.g. ``Dense(batch_axis=1)``), keyword
arguments given as pairs ``(v1, v2)`` (``pattern=(p1, p2)``) along axis 0 with
``x1`` and ``x2`` respectively. Tracing the function (``jax.eval_shape``) on
smaller blocks tells, for every output leaf, which of its axes follows the rows
of ``x1`` and which the rows of ``x2``: such leaves are tiled; a leaf that only
follows ``x1`` (``cov1``) or ``x2`` (``cov2``) is concatenated; a leaf whose
axis follows both at once (``diagonal_axes`` on the batch axis) is computed on
diagonal blocks only; leaves that follow neither are taken from one block.
When nothing needs cutting (``batch_size=0`` on one device, or blocks larger
than the inputs) or the result cannot be assembled from blocks (e.g. traced
over the batch axis), ``kernel_fn`` is called once on the whole inputs, so the
result always equals the unbatched one.

Row counts that are not a multiple of ``device_count * batch_size`` (column
counts not a multiple of ``batch_size``) are padded by repeating the last
input and the padding is cut off, so any size works. This assumes, as
neural-tangents does, that the kernel between two inputs does not depend on
the other inputs of the batch.

``jax.jit``, ``jax.grad`` and ``jax.jvp`` apply to the batched function (the
blocks are then kept on device whatever ``store_on_device`` says).

Multi-host: call ``jax.distributed.initialize()`` in every process first; the
mesh then spans ``jax.devices()`` of all hosts, every process passes the same
``x1``/``x2`` and runs the same ``batch``-ed call, and each ends with the whole
kernel (blocks are gathered with ``jax.experimental.multihost_utils``; with
``store_on_device=True`` onto the process's first local device). Tested with two
processes on one machine (``tests/test_multihost.py``).

Written by hand: JAX shards arrays but has no notion of kernel blocks.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.kernels.kernel import Kernel

_AXIS = "blocks"


def _check_int(name: str, value, minimum: int):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"batch: expected {name} to be an int >= {minimum}, got {value!r}")


def batch(kernel_fn: Callable, batch_size: int = 0, device_count: int = -1,
          store_on_device: bool = True) -> Callable:
    """Blockwise, multi-device version of ``kernel_fn`` with the same signature and results.

    Args:
      kernel_fn: ``kernel_fn(x1, x2=None, *args, **kwargs)`` or ``kernel_fn(kernel, *args, **kwargs)``.
      batch_size: rows/columns per block; 0 = one block of rows per device and all columns.
      device_count: devices to use; -1 = all (``jax.devices()``, every host's), 0 = the
        default device only (in a multi-process run, each process computes the whole
        kernel on its own first device), ``k`` = ``k`` devices taken in turn from each process.
      store_on_device: keep the assembled kernel on device; ``False`` streams the
        blocks into host memory (numpy arrays).
    """
    if not callable(kernel_fn):
        raise TypeError(f"batch: expected a kernel_fn, got {type(kernel_fn).__name__}")
    _check_int("batch_size", batch_size, 0)
    if isinstance(device_count, bool) or not isinstance(device_count, int) or device_count < -1:
        raise ValueError(f"batch: expected device_count -1, 0 or a positive int, got {device_count!r}")

    def batched_kernel_fn(x1_or_kernel, x2=None, *args, **kwargs):
        devices = _devices(device_count)
        tracing = any(isinstance(leaf, jax.core.Tracer)
                      for leaf in jax.tree.leaves((x1_or_kernel, x2, args, kwargs)))  # fmt: skip
        to_host = not store_on_device and not tracing
        for axis in _candidate_axes(x1_or_kernel):
            call = _Call.build(x1_or_kernel, x2, args, kwargs, axis)
            if call is None:
                continue
            rows = batch_size or math.ceil(call.n1 / len(devices))
            cols = batch_size or call.n2
            if rows >= call.n1 and cols >= call.n2:
                break  # one block holds everything
            plan = _plan(kernel_fn, call, tuple(devices), rows, cols)
            if plan is not None:
                return _run(plan, call, to_host)
        out = _whole(kernel_fn, x1_or_kernel, x2, args, kwargs)
        return jax.tree.map(_to_host, out) if to_host else out

    return batched_kernel_fn


def _devices(device_count: int):
    """``jax.devices()`` ordered round-robin over the processes, so that the first
    ``device_count`` of them include a device of every process where possible."""
    if device_count == 0:
        return jax.local_devices()[:1]
    devices = jax.devices()
    if device_count > len(devices):
        raise ValueError(f"batch: device_count={device_count} but only {len(devices)} devices exist")
    if device_count != -1 and device_count < jax.process_count():
        raise ValueError(f"batch: device_count={device_count} leaves some of the {jax.process_count()} "
                         "processes without a device; use -1, 0 (each process alone) or at least one per process")
    seen = collections.Counter()
    local_rank = []
    for device in devices:
        local_rank.append(seen[device.process_index])
        seen[device.process_index] += 1
    order = sorted(range(len(devices)), key=lambda k: (local_rank[k], devices[k].process_index))
    devices = [devices[k] for k in order]
    return devices if device_count == -1 else devices[:device_count]


# --- the call, cut into leaves with roles ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Role:
    """Which axis of an input leaf follows the rows of x1 (``row``) / of x2 (``col``)."""

    row: int | None = None
    col: int | None = None


def _candidate_axes(x1):
    """Input axes to try as the batch axis: 0 first, then the others."""
    if isinstance(x1, Kernel):
        return [None]
    leaves = jax.tree.leaves(x1)
    if not leaves or any(jnp.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError("batch: expected inputs with a leading batch axis")
    return list(range(min(jnp.ndim(leaf) for leaf in leaves)))


def _is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray))


def _size_along(tree, axis: int):
    """The common size of ``tree``'s leaves along ``axis``, or None if they disagree."""
    leaves = jax.tree.leaves(tree)
    if not leaves or any(jnp.ndim(leaf) <= axis for leaf in leaves):
        return None
    sizes = {jnp.shape(leaf)[axis] for leaf in leaves}
    return sizes.pop() if len(sizes) == 1 else None


@dataclasses.dataclass(frozen=True)
class _Spec:
    """The hashable part of a call: its structure, static leaves and the role of each array."""

    treedef: Any
    static: tuple
    is_array: tuple
    roles: tuple
    kernel_input: bool

    def call_args(self, arrays):
        it = iter(arrays)
        leaves = [next(it) if flag else leaf for leaf, flag in zip(self.static, self.is_array)]
        x1, x2, args, kwargs = jax.tree.unflatten(self.treedef, leaves)
        if self.kernel_input:  # a block of a kernel: its own sizes, and x1 is not x2
            n1, n2 = x1.nngp.shape[:2]
            x1 = x1.replace(shape1=_with_batch(x1.shape1, x1.batch_axis, n1),
                            shape2=_with_batch(x1.shape2, x1.batch_axis, n2))
            return (x1, *args), kwargs
        return (x1, x2, *args), kwargs


@dataclasses.dataclass(frozen=True)
class _Call:
    spec: _Spec
    arrays: list
    n1: int
    n2: int
    x2_is_none: bool

    @staticmethod
    def build(x1, x2, args, kwargs, axis):
        """The call with x1's rows and x2's rows as roles of its array leaves (None when
        ``axis`` is not a common batch axis of the inputs)."""
        if isinstance(x1, Kernel):
            if x2 is not None:
                raise ValueError("batch: a Kernel input takes no x2")
            return _Call._from_kernel(x1, args, kwargs)
        x2_is_none = x2 is None
        x2 = x1 if x2_is_none else x2
        n1, n2 = _size_along(x1, axis), _size_along(x2, axis)
        if n1 is None or n2 is None:
            if axis == 0:
                raise ValueError(f"batch: input leaves disagree on the batch size: "
                                 f"{sorted({jnp.shape(a)[0] for a in jax.tree.leaves((x1, x2))})}")
            return None
        roles_kwargs = {}
        kwargs = dict(kwargs)
        for key, value in kwargs.items():
            if isinstance(value, tuple) and len(value) == 2 and _is_array(value[0]) \
                    and (value[1] is None or _is_array(value[1])):
                v1, v2 = value[0], value[0] if value[1] is None else value[1]
                if jnp.ndim(v1) and jnp.ndim(v2) and v1.shape[0] == n1 and v2.shape[0] == n2:
                    kwargs[key] = (v1, v2)
                    roles_kwargs[key] = (_Role(row=0), _Role(col=0))
                    continue
            roles_kwargs[key] = jax.tree.map(lambda _: _Role(), value)
        call = (x1, x2, tuple(args), kwargs)
        roles = (jax.tree.map(lambda _: _Role(row=axis), x1), jax.tree.map(lambda _: _Role(col=axis), x2),
                 jax.tree.map(lambda _: _Role(), tuple(args)), roles_kwargs)  # fmt: skip
        return _Call._assemble(call, roles, n1, n2, x2_is_none, kernel_input=False)

    @staticmethod
    def _from_kernel(k: Kernel, args, kwargs):
        if not k.diagonal_batch:
            raise NotImplementedError("batch: kernels with diagonal_batch=False (cov1 over pairs of "
                                      "examples) cannot be cut into blocks, as in neural-tangents")
        x2_is_none = k.cov2 is None
        n1, n2 = k.nngp.shape[:2]
        pair = lambda a: _Role(0, 1) if a is not None and jnp.ndim(a) >= 2 else _Role()  # noqa: E731
        k = k.replace(cov2=k.cov1 if x2_is_none else k.cov2,
                      mask2=k.mask1 if k.mask2 is None else k.mask2,
                      x1_is_x2=jnp.asarray(False))  # fmt: skip
        role_k = k.replace(nngp=pair(k.nngp), ntk=None if k.ntk is None else pair(k.ntk),
                           cov1=None if k.cov1 is None else _Role(row=0),
                           cov2=None if k.cov2 is None else _Role(col=0), x1_is_x2=_Role(),
                           mask1=None if k.mask1 is None else _Role(row=k.batch_axis),
                           mask2=None if k.mask2 is None else _Role(col=k.batch_axis))  # fmt: skip
        call = (k, None, tuple(args), dict(kwargs))
        roles = (role_k, None, jax.tree.map(lambda _: _Role(), tuple(args)),
                 {key: jax.tree.map(lambda _: _Role(), v) for key, v in kwargs.items()})  # fmt: skip
        return _Call._assemble(call, roles, n1, n2, x2_is_none, kernel_input=True)

    @staticmethod
    def _assemble(call, roles, n1, n2, x2_is_none, kernel_input):
        leaves, treedef = jax.tree.flatten(call)
        role_leaves = jax.tree.leaves(roles, is_leaf=lambda r: isinstance(r, _Role))
        if len(role_leaves) != len(leaves):
            raise ValueError("batch: could not match the arguments' leaves to the inputs")  # a bug guard
        is_array = tuple(_is_array(leaf) for leaf in leaves)
        static = tuple(None if a else leaf for leaf, a in zip(leaves, is_array))
        arrays = [leaf for leaf, a in zip(leaves, is_array) if a]
        array_roles = tuple(r for r, a in zip(role_leaves, is_array) if a)
        spec = _Spec(treedef, static, is_array, array_roles, kernel_input)
        return _Call(spec, arrays, n1, n2, x2_is_none)


def _resize(shape, role: _Role, rows: int, cols: int):
    shape = list(shape)
    if role.row is not None:
        shape[role.row] = rows
    if role.col is not None:
        shape[role.col] = cols
    return tuple(shape)


def _pad(a, axis, n: int):
    """Repeat the last entry along ``axis`` until it has ``n`` entries."""
    extra = n - a.shape[axis]
    if extra <= 0:
        return a
    last = jax.lax.slice_in_dim(a, a.shape[axis] - 1, a.shape[axis], axis=axis)
    return jnp.concatenate([a, jnp.repeat(last, extra, axis=axis)], axis=axis)


def _pad_roles(a, role: _Role, n1: int, n2: int):
    if role.row is not None:
        a = _pad(a, role.row, n1)
    if role.col is not None:
        a = _pad(a, role.col, n2)
    return a


def _cut(a, role: _Role, i: int, rows: int, j: int, cols: int):
    if role.row is not None:
        a = jax.lax.slice_in_dim(a, i, i + rows, axis=role.row)
    if role.col is not None:
        a = jax.lax.slice_in_dim(a, j, j + cols, axis=role.col)
    return a


# --- the plan: output layout from traced shapes, and the compiled block function -----------


@dataclasses.dataclass(frozen=True)
class _Plan:
    rows: int  # rows per device
    cols: int
    devices: tuple
    paired: bool  # blocks (i, i) only, x2's rows sharded like x1's
    out_roles: tuple  # per output leaf: _Role of its axes following x1 / x2 rows
    out_treedef: Any
    out_shapes: tuple  # full-size (shape, dtype) per output leaf
    sharded: Callable
    mesh: Any
    in_specs: tuple

    def place(self, arrays):
        """Put concrete block inputs where the compiled function expects them (every
        process passes the same values; traced inputs are placed by the compiler)."""
        return [a if isinstance(a, jax.core.Tracer) else jax.device_put(a, NamedSharding(self.mesh, s))
                for a, s in zip(arrays, self.in_specs)]  # fmt: skip


def _plan(kernel_fn, call: _Call, devices, rows: int, cols: int):
    signature = tuple((tuple(a.shape), a.dtype) for a in call.arrays)
    key = (kernel_fn, call.spec, signature, call.n1, call.n2, devices, rows, cols)
    try:
        hash(key)
    except TypeError:  # an unhashable static argument: plan without the cache
        return _make_plan.__wrapped__(*key)
    return _make_plan(*key)


@functools.lru_cache(maxsize=128)
def _make_plan(kernel_fn, spec: _Spec, signature, n1, n2, devices, rows, cols):
    """How to cut the call into blocks, or None when its result cannot be assembled from blocks."""

    def call(*arrays):
        call_args, call_kwargs = spec.call_args(arrays)
        return kernel_fn(*call_args, **call_kwargs)

    def abstract(r, c):
        return [jax.ShapeDtypeStruct(_resize(shape, role, r, c), dtype)
                for (shape, dtype), role in zip(signature, spec.roles)]  # fmt: skip

    full = jax.eval_shape(call, *abstract(n1, n2))
    out_treedef = jax.tree.structure(full)
    full_leaves = jax.tree.leaves(full)
    rows = min(rows, n1)
    cols = min(cols, n2)
    layout = _layout(call, abstract, full_leaves, n1, n2, rows, cols)
    paired = False
    if layout is None and n1 == n2:  # e.g. diagonal_axes on the batch axis: blocks (i, i)
        rows = cols = min(rows, cols)
        layout = _paired_layout(call, abstract, full_leaves, n1, rows)
        paired = True
    if layout is None:
        return None
    n_devices = min(len(devices), math.ceil(n1 / rows))
    devices = devices[:n_devices]
    mesh = Mesh(np.array(devices), (_AXIS,))

    def spec_at(axis, ndim):
        parts = [None] * ndim
        if axis is not None:
            parts[axis] = _AXIS
        return P(*parts)

    in_specs = tuple(spec_at(role.row if role.row is not None else (role.col if paired else None), len(shape))
                     for (shape, _), role in zip(signature, spec.roles))  # fmt: skip
    out_specs = [spec_at(role.row, len(s.shape)) for role, s in zip(layout, full_leaves)]

    def flat_call(*arrays):
        return jax.tree.leaves(call(*arrays))

    sharded = jax.jit(jax.shard_map(flat_call, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                                    check_vma=False))  # fmt: skip
    out_shapes = tuple((tuple(s.shape), s.dtype) for s in full_leaves)
    return _Plan(rows, cols, devices, paired, tuple(layout), out_treedef, out_shapes, sharded, mesh, in_specs)


def _changed_axes(full, probe, n_full: int, n_probe: int):
    """Axes of an output leaf that went from ``n_full`` to ``n_probe``; None if the
    shapes changed in any other way."""
    if len(full.shape) != len(probe.shape):
        return None
    axes = []
    for axis, (a, b) in enumerate(zip(full.shape, probe.shape)):
        if a == b:
            continue
        if a != n_full or b != n_probe:
            return None
        axes.append(axis)
    return axes


def _probe(call, abstract, full_leaves, r, c):
    try:
        leaves = jax.tree.leaves(jax.eval_shape(call, *abstract(r, c)))
    except Exception:  # noqa: BLE001 - the function rejects blocks of this form
        return None
    return leaves if len(leaves) == len(full_leaves) else None


def _layout(call, abstract, full_leaves, n1, n2, rows, cols):
    """Per output leaf, a ``_Role``: the axis following x1's rows / x2's rows."""
    row_probe = _probe(call, abstract, full_leaves, rows, n2) if rows < n1 else None
    col_probe = _probe(call, abstract, full_leaves, n1, cols) if cols < n2 else None
    if (rows < n1 and row_probe is None) or (cols < n2 and col_probe is None):
        return None
    layout = []
    for k, full in enumerate(full_leaves):
        row_axes = [] if row_probe is None else _changed_axes(full, row_probe[k], n1, rows)
        col_axes = [] if col_probe is None else _changed_axes(full, col_probe[k], n2, cols)
        if row_axes is None or col_axes is None or len(row_axes) > 1 or len(col_axes) > 1 \
                or (row_axes and row_axes == col_axes):
            return None
        layout.append(_Role(row_axes[0] if row_axes else None, col_axes[0] if col_axes else None))
    split_rows = rows < n1 and any(role.row is not None for role in layout)
    split_cols = cols < n2 and any(role.col is not None for role in layout)
    if (rows < n1 and not split_rows) or (cols < n2 and not split_cols):
        return None  # the result does not follow the inputs' rows (e.g. traced over the batch)
    return layout


def _paired_layout(call, abstract, full_leaves, n, rows):
    probe = _probe(call, abstract, full_leaves, rows, rows)
    if probe is None:
        return None
    layout = []
    for full, small in zip(full_leaves, probe):
        axes = _changed_axes(full, small, n, rows)
        if axes is None or len(axes) > 1:
            return None
        layout.append(_Role(axes[0] if axes else None, axes[0] if axes else None))
    return layout if any(role.row is not None for role in layout) else None


# --- running the blocks --------------------------------------------------------------------


def _run(plan: _Plan, call: _Call, to_host: bool):
    rows_per_step = plan.rows * len(plan.devices)
    n1_padded = math.ceil(call.n1 / rows_per_step) * rows_per_step
    cols = rows_per_step if plan.paired else plan.cols
    n2_padded = n1_padded if plan.paired else math.ceil(call.n2 / cols) * cols
    arrays = [_pad_roles(a, role, n1_padded, n2_padded) for a, role in zip(call.arrays, call.spec.roles)]
    starts = [(i, i) for i in range(0, n1_padded, rows_per_step)] if plan.paired else \
        [(i, j) for i in range(0, n1_padded, rows_per_step) for j in range(0, n2_padded, cols)]
    store = _HostStore(plan) if to_host else _DeviceStore(plan)
    pending = None
    for i, j in starts:  # dispatch block k+1 before fetching block k
        block = [_cut(a, role, i, rows_per_step, j, cols) for a, role in zip(arrays, call.spec.roles)]
        out = plan.sharded(*plan.place(block))
        if pending is not None:
            store.add(*pending)
        pending = (i, j, out)
    store.add(*pending)
    result = jax.tree.unflatten(plan.out_treedef, store.leaves())
    if isinstance(result, Kernel) and call.x2_is_none:
        result = result.replace(cov2=None, x1_is_x2=jnp.asarray(True), mask2=None)
    return result


def _whole(kernel_fn, x1, x2, args, kwargs):
    """``kernel_fn`` on the whole inputs, compiled once per structure."""
    leaves, treedef = jax.tree.flatten((x1, x2, tuple(args), dict(kwargs)))
    is_array = tuple(_is_array(leaf) for leaf in leaves)
    static = tuple(None if a else leaf for leaf, a in zip(leaves, is_array))
    arrays = [leaf for leaf, a in zip(leaves, is_array) if a]
    key = (kernel_fn, treedef, static, is_array)
    try:
        hash(key)
        compiled = _compiled_whole(*key)
    except TypeError:
        compiled = _compiled_whole.__wrapped__(*key)
    return compiled(*arrays)


@functools.lru_cache(maxsize=128)
def _compiled_whole(kernel_fn, treedef, static, is_array):
    def call(*arrays):
        it = iter(arrays)
        x1, x2, args, kwargs = jax.tree.unflatten(
            treedef, [next(it) if flag else leaf for leaf, flag in zip(static, is_array)])
        if isinstance(x1, Kernel):
            return kernel_fn(x1, *args, **kwargs)
        return kernel_fn(x1, x2, *args, **kwargs)

    return jax.jit(call)


def _to_host(x) -> np.ndarray:
    """The whole of ``x`` in this process's memory. A block computed on several hosts'
    devices is gathered from all of them (a collective: every process calls it)."""
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class _Store:
    """Collects blocks ``(i, j, leaves)`` according to the plan's output roles."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.first = True

    def wanted(self, role: _Role, i: int, j: int, first: bool) -> bool:
        """Whether this block contributes to a leaf with this role."""
        if role.row is not None and role.col is not None:
            return True  # tiled, or paired (only diagonal blocks are computed)
        if role.row is not None:
            return j == 0
        if role.col is not None:
            return i == 0
        return first


class _DeviceStore(_Store):
    """Blocks moved to the first device as they arrive, concatenated at the end."""

    def __init__(self, plan):
        super().__init__(plan)
        self.blocks = [{} for _ in plan.out_roles]  # per leaf: {(i, j): block}
        self.device = jax.local_devices()[0]

    def fetch(self, x):
        if isinstance(x, jax.core.Tracer):
            return x
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = _to_host(x)
        return jax.device_put(x, self.device)

    def add(self, i, j, out):
        for k, (role, leaf) in enumerate(zip(self.plan.out_roles, out)):
            if self.wanted(role, i, j, self.first):
                self.blocks[k][(i, j)] = self.fetch(leaf)
        self.first = False

    def leaves(self):
        result = []
        for role, blocks, (shape, _) in zip(self.plan.out_roles, self.blocks, self.plan.out_shapes):
            if role.row is None and role.col is None:
                result.append(next(iter(blocks.values())))
                continue
            if self.plan.paired or role.col is None:
                leaf = jnp.concatenate([blocks[key] for key in sorted(blocks)], axis=role.row)
            elif role.row is None:
                leaf = jnp.concatenate([blocks[key] for key in sorted(blocks)], axis=role.col)
            else:
                row_starts = sorted({i for i, _ in blocks})
                col_starts = sorted({j for _, j in blocks})
                leaf = jnp.concatenate([jnp.concatenate([blocks[(i, j)] for j in col_starts], axis=role.col)
                                        for i in row_starts], axis=role.row)  # fmt: skip
            result.append(_trim(leaf, shape))
        return result


def _trim(leaf, shape):
    """Cut the padding off: the leaf's full-size shape."""
    index = tuple(slice(0, n) for n in shape)
    return leaf[index] if tuple(leaf.shape) != tuple(shape) else leaf


class _HostStore(_Store):
    """Blocks copied into host arrays of the final size, allocated once."""

    def __init__(self, plan):
        super().__init__(plan)
        self.buffers = [None] * len(plan.out_roles)

    def add(self, i, j, out):
        for k, (role, leaf, (shape, dtype)) in enumerate(zip(self.plan.out_roles, out, self.plan.out_shapes)):
            if not self.wanted(role, i, j, self.first):
                continue
            block = _to_host(leaf)
            if role.row is None and role.col is None:
                self.buffers[k] = block
                continue
            if self.buffers[k] is None:
                self.buffers[k] = np.empty(shape, block.dtype)
            target = [slice(None)] * len(shape)
            source = [slice(None)] * len(shape)
            for axis, start in ((role.row, i), (role.col, j)):
                if axis is None:
                    continue
                stop = min(start + block.shape[axis], shape[axis])
                target[axis] = slice(start, stop)
                source[axis] = slice(0, stop - start)
            self.buffers[k][tuple(target)] = block[tuple(source)]
        self.first = False

    def leaves(self):
        return self.buffers


def _with_batch(shape, axis, n):
    shape = list(shape)
    shape[axis] = n
    return tuple(shape)


def _block_fn(kernel_fn, devices, args, kwargs, x1, x2, rows_per_step: int, cols: int):
    """A ``(x1 rows, x2 cols) -> kernel block`` function, rows split over ``devices``
    (blocks of ``rows_per_step`` rows of ``x1`` and all of ``x2``; used to inspect sharding)."""
    call = _Call.build(x1, x2, args, kwargs, 0)
    rows = rows_per_step // len(devices)
    plan = _plan(kernel_fn, call, tuple(devices), rows, cols)
    if plan is None:
        raise ValueError("batch: this kernel_fn cannot be computed in blocks")

    def block_fn(a, b):
        block = _Call.build(a, b, args, kwargs, 0)
        return jax.tree.unflatten(plan.out_treedef, plan.sharded(*plan.place(block.arrays)))

    return block_fn
