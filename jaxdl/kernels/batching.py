"""Kernels at scale: compute a kernel matrix block by block, spread over devices.

``batch(kernel_fn, batch_size, device_count, store_on_device)`` (neural-tangents'
API) wraps any ``kernel_fn(x1, x2=None, *args, **kwargs)`` whose result has
the two batch axes first (analytic ``kernel_fn`` of ``jaxdl.stax``, returning
arrays, namedtuples or a :class:`~jaxdl.kernels.kernel.Kernel`; empirical
kernel functions ``(x1, x2, [get,] params)``). The ``n1 x n2`` kernel is cut into
``batch_size x batch_size`` blocks; rows of ``device_count`` consecutive blocks
are computed at once, one block per device, by ``jax.shard_map`` over a 1-D
``jax.sharding.Mesh`` (no ``pmap``). Blocks are concatenated on device, or
with ``store_on_device=False`` copied into a preallocated host (numpy) array as
soon as they are ready, while the next block is computed, so device memory
holds only a few blocks and the full matrix lives in host RAM.

Row counts that are not a multiple of ``device_count * batch_size`` (column
counts not a multiple of ``batch_size``) are padded by repeating the last
input and the padding is cut off, so any size works. This assumes, as
neural-tangents does, that the kernel between two inputs does not depend on
the other inputs of the batch.

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
import functools
import math
from collections.abc import Callable

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
      kernel_fn: ``kernel_fn(x1, x2=None, *args, **kwargs)``.
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

    def batched_kernel_fn(x1, x2=None, *args, **kwargs):
        devices = _devices(device_count)
        x2_is_none = x2 is None
        x2 = x1 if x2_is_none else x2
        n1, n2 = _batch_size(x1), _batch_size(x2)
        rows = batch_size or math.ceil(n1 / len(devices))
        cols = batch_size or n2
        rows_per_step = rows * len(devices)
        x1_padded = _pad(x1, math.ceil(n1 / rows_per_step) * rows_per_step)
        x2_padded = _pad(x2, math.ceil(n2 / cols) * cols)
        block_fn = _block_fn(kernel_fn, devices, args, kwargs, x1_padded, x2_padded, rows_per_step, cols)
        starts = [(i, j) for i in range(0, _batch_size(x1_padded), rows_per_step)
                  for j in range(0, _batch_size(x2_padded), cols)]  # fmt: skip
        store = _DeviceStore() if store_on_device else _HostStore(n1, n2)
        pending = None
        for i, j in starts:  # dispatch block k+1 before fetching block k
            out = block_fn(_slice(x1_padded, i, rows_per_step), _slice(x2_padded, j, cols))
            if pending is not None:
                store.add(*pending)
            pending = (i, j, out)
        store.add(*pending)
        return store.result(n1, n2, x2_is_none, rows_per_step, cols, len(devices))

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


def _batch_size(x) -> int:
    leaves = jax.tree.leaves(x)
    if not leaves or any(jnp.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError("batch: expected inputs with a leading batch axis")
    sizes = {leaf.shape[0] for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"batch: input leaves disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def _pad(x, n: int):
    """Repeat the last example until the batch has ``n`` examples."""

    def pad(a):
        extra = n - a.shape[0]
        if extra == 0:
            return a
        return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)])

    return jax.tree.map(pad, x)


def _slice(x, start: int, size: int):
    return jax.tree.map(lambda a: a[start:start + size], x)


def _block_fn(kernel_fn, devices, args, kwargs, x1, x2, rows_per_step: int, cols: int):
    """A ``(x1 rows, x2 cols) -> kernel block`` function, rows split over the devices.

    Array arguments are passed to the compiled function; everything else is static.
    The compiled function is cached, so repeated calls (a Monte Carlo loop over
    keys, a training loop) compile once.
    """
    leaves, treedef = jax.tree.flatten((args, kwargs))
    is_array = tuple(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves)
    arrays = [leaf for leaf, a in zip(leaves, is_array) if a]
    static = tuple(None if a else leaf for leaf, a in zip(leaves, is_array))
    local_rows = rows_per_step // len(devices)
    example = (_slice(x1, 0, local_rows), _slice(x2, 0, cols), *arrays)
    signature = tuple(jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), example))
    signature_treedef = jax.tree.structure(example)
    try:
        sharded, out_treedef, mesh = _compiled_block(
            kernel_fn, tuple(devices), treedef, static, is_array, signature_treedef, _hashable(signature))
    except TypeError:  # an unhashable static argument: build without the cache
        sharded, out_treedef, mesh = _compiled_block.__wrapped__(
            kernel_fn, tuple(devices), treedef, static, is_array, signature_treedef, _hashable(signature))
    row_sharding = NamedSharding(mesh, P(_AXIS))
    replicated = NamedSharding(mesh, P())
    arrays = [jax.device_put(a, replicated) for a in arrays]

    def block_fn(a, b):
        a = jax.device_put(a, row_sharding)
        b = jax.device_put(b, replicated)
        return jax.tree.unflatten(out_treedef, sharded(a, b, *arrays))

    return block_fn


def _hashable(signature):
    return tuple((tuple(s.shape), s.dtype) for s in jax.tree.leaves(signature))


@functools.lru_cache(maxsize=128)
def _compiled_block(kernel_fn, devices, treedef, static, is_array, signature_treedef, signature):
    def full_call(a, b, *array_leaves):
        call_args, call_kwargs = jax.tree.unflatten(treedef, _merge(static, is_array, array_leaves))
        return kernel_fn(a, b, *call_args, **call_kwargs)

    def call(a, b, *array_leaves):
        """kernel_fn on one device's rows, its output flattened (namedtuple classes of
        user kernel_fns may differ from call to call)."""
        return jax.tree.leaves(full_call(a, b, *array_leaves))

    example = jax.tree.unflatten(
        signature_treedef, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in signature])
    out_treedef = jax.tree.structure(jax.eval_shape(full_call, *example))
    shapes = jax.eval_shape(call, *example)
    mesh = Mesh(np.array(devices), (_AXIS,))
    out_specs = [P() if len(s.shape) == 0 else P(_AXIS) for s in shapes]
    in_specs = (P(_AXIS), P()) + (P(),) * (len(example) - 2)
    sharded = jax.jit(jax.shard_map(call, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                                    check_vma=False))  # fmt: skip
    return sharded, out_treedef, mesh


def _merge(leaves, is_array, arrays):
    it = iter(arrays)
    return [next(it) if flag else leaf for leaf, flag in zip(leaves, is_array)]


def _to_host(x) -> np.ndarray:
    """The whole of ``x`` in this process's memory. A block computed on several hosts'
    devices is gathered from all of them (a collective: every process calls it)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class _Blocks:
    """Collects blocks ``(i, j, out)``; the kernel arrays (batch axes first) are tiled,
    a ``Kernel``'s ``cov1`` is taken from the first block column and ``cov2`` from
    the first block row."""

    def __init__(self):
        self.first = None
        self.cov1, self.cov2 = [], []

    def add(self, i, j, out):
        if self.first is None:
            self.first = out
        if isinstance(out, Kernel):
            if not out.diagonal_batch:
                raise NotImplementedError("batch: kernels with diagonal_batch=False (cov1 over pairs of "
                                          "examples) cannot be assembled from blocks, as in neural-tangents")
            if j == 0 and out.cov1 is not None:
                self.cov1.append(self.fetch(out.cov1))
            if i == 0 and out.cov2 is not None:
                self.cov2.append(out.cov2)
            self.tile(i, j, {"nngp": out.nngp, "ntk": out.ntk})
        else:
            self.tile(i, j, out)

    def result(self, n1, n2, x2_is_none, rows_per_step, cols, n_devices):
        tiles = self.assemble(n1, n2)
        if not isinstance(self.first, Kernel):
            return tiles
        k = self.first
        cov1 = None if not self.cov1 else self.concat(self.cov1)[:n1]
        cov2 = None
        if not x2_is_none and self.cov2:
            # each device returned the same cov2 of the column block: keep one copy
            cov2 = self.concat([self.fetch(c)[: c.shape[0] // n_devices] for c in self.cov2])[:n2]
        shape1 = _with_batch(k.shape1, k.batch_axis, n1)
        shape2 = shape1 if x2_is_none else _with_batch(k.shape2, k.batch_axis, n2)
        x1_is_x2 = jnp.asarray(True) if x2_is_none else k.x1_is_x2
        return k.replace(nngp=tiles["nngp"], ntk=tiles["ntk"], cov1=cov1, cov2=cov2,
                         x1_is_x2=x1_is_x2, shape1=shape1, shape2=shape2)  # fmt: skip


def _with_batch(shape, axis, n):
    shape = list(shape)
    shape[axis] = n
    return tuple(shape)


def _is_block(leaf) -> bool:
    return leaf is not None and jnp.ndim(leaf) >= 2


class _DeviceStore(_Blocks):
    """Blocks gathered onto the first device as they arrive, so that assembling them
    is plain single-device work (no cross-device programs)."""

    def __init__(self):
        super().__init__()
        self.grid: dict[int, dict[int, object]] = {}
        self.device = jax.local_devices()[0]

    def fetch(self, x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = _to_host(x)
        return jax.device_put(x, self.device)

    def concat(self, parts):
        return jnp.concatenate(parts)

    def tile(self, i, j, out):
        self.grid.setdefault(i, {})[j] = jax.tree.map(self.fetch, out)

    def assemble(self, n1, n2):
        rows = [self.grid[i] for i in sorted(self.grid)]

        def join(*leaves_by_block):
            if not _is_block(leaves_by_block[0]):
                return leaves_by_block[0]
            it = iter(leaves_by_block)
            per_row = [[next(it) for _ in row] for row in rows]
            return jnp.concatenate([jnp.concatenate(r, axis=1) for r in per_row])[:n1, :n2]

        blocks = [row[j] for row in rows for j in sorted(row)]
        return jax.tree.map(join, *blocks, is_leaf=lambda x: x is None)


class _HostStore(_Blocks):
    """Blocks copied into host arrays of the final ``n1 x n2`` size, allocated once."""

    def __init__(self, n1: int, n2: int):
        super().__init__()
        self.n1, self.n2 = n1, n2
        self.buffers = None
        self.treedef = None

    def fetch(self, x):
        return _to_host(x)

    def concat(self, parts):
        return np.concatenate(parts)

    def tile(self, i, j, out):
        leaves, treedef = jax.tree.flatten(out, is_leaf=lambda x: x is None)
        if self.buffers is None:
            self.treedef, self.buffers = treedef, [None] * len(leaves)
        for index, leaf in enumerate(leaves):
            if not _is_block(leaf):
                self.buffers[index] = leaf
                continue
            block = _to_host(leaf)[: self.n1 - i, : self.n2 - j]
            if self.buffers[index] is None:
                self.buffers[index] = np.empty((self.n1, self.n2) + block.shape[2:], block.dtype)
            self.buffers[index][i:i + block.shape[0], j:j + block.shape[1]] = block

    def assemble(self, n1, n2):
        return jax.tree.unflatten(self.treedef, self.buffers)
