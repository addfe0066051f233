"""One process of the two-process tests (tests/test_multihost.py).

Usage: python multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.json

Joins the run with ``jax.distributed.initialize`` on localhost, then
* computes kernels with ``batch`` over the devices of all processes and,
  independently, with the unbatched ``kernel_fn`` on this process alone;
* trains with ``train.fit`` data-parallel over a mesh of all processes' devices
  and, independently, on this process's default device alone;
and writes the largest difference per case (float64) to ``OUT.json``.
"""

import json
import sys

import jax

process_id, num_processes, port, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
                           process_id=process_id, initialization_timeout=60)
jax.config.update("jax_enable_x64", True)

import dataclasses  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import optax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

from jaxdl import stax, train  # noqa: E402
from jaxdl.kernels.batching import _block_fn, batch  # noqa: E402
from jaxdl.kernels.empirical import empirical_ntk_fn  # noqa: E402
from jaxdl.kernels.kernel import Kernel  # noqa: E402


def max_difference(batched, expected) -> float:
    if isinstance(expected, Kernel):
        pairs = [(getattr(batched, f.name), getattr(expected, f.name)) for f in dataclasses.fields(Kernel)]
        pairs = [(a, b) for a, b in pairs if isinstance(b, (jax.Array, np.ndarray))]
    else:
        pairs = list(zip(jax.tree.leaves(batched), jax.tree.leaves(expected), strict=True))
    return max(float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float)))) for a, b in pairs)


x1 = jax.random.normal(jax.random.key(0), (21, 5), jnp.float64)
x2 = jax.random.normal(jax.random.key(1), (10, 5), jnp.float64)
init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(16, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(3))
_, params = init_fn(jax.random.key(2), x1.shape)
params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
ntk_fn = empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0)

results = {
    "process_count": jax.process_count(),
    "device_count": jax.device_count(),
    "processes_in_block": sorted({d.process_index for d in
                                  _block_fn(lambda a, b: a @ b.T, jax.devices(), (), {}, x1, x2, 8, 10)(
                                      x1[:8], x2).sharding.device_set}),
}
for batch_size, device_count, store_on_device in [(0, -1, True), (4, -1, False), (3, 3, True),
                                                  (5, 2, False), (0, 0, True)]:
    name = f"{batch_size}-{device_count}-{store_on_device}"
    batched = batch(kernel_fn, batch_size, device_count, store_on_device)
    for second, label in ((None, "x2=None"), (x2, "x2")):
        results[f"Kernel {name} {label}"] = max_difference(batched(x1, second), kernel_fn(x1, second))
        results[f"ntk {name} {label}"] = max_difference(batched(x1, second, "ntk"), kernel_fn(x1, second, "ntk"))
    results[f"empirical {name}"] = max_difference(
        batch(ntk_fn, batch_size, device_count, store_on_device)(x1, x2, params), ntk_fn(x1, x2, params))


def whole(x) -> np.ndarray:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True) if not x.is_fully_addressable else x)


y = jnp.sin(x1[:, :3])
mse = lambda outputs, targets: jnp.mean((outputs - targets) ** 2)  # noqa: E731
fits = [train.fit(apply_fn, params, optax.adam(1e-2), (x1[:20], y[:20]), loss_fn=mse, key=jax.random.key(3),
                  num_epochs=4, batch_size=8, eval_data=(x2, y[:10]), progress=False, mesh=mesh)
        for mesh in (Mesh(np.array(jax.devices()), ("data",)), None)]  # fmt: skip
results["fit params"] = max(float(np.max(np.abs(whole(a) - np.asarray(b))))
                            for a, b in zip(jax.tree.leaves(fits[0].state.params), jax.tree.leaves(fits[1].state.params)))
results["fit eval_loss"] = float(np.max(np.abs(np.subtract(fits[0].history["eval_loss"], fits[1].history["eval_loss"]))))
results["fit params sharded over"] = sorted({d.process_index for leaf in jax.tree.leaves(fits[0].state.params)
                                             for d in leaf.sharding.device_set})

with open(out_path, "w") as f:
    json.dump(results, f)
