"""Kernels at scale: a 20000 x 20000 NNGP + NTK with `jaxdl.kernels.batching.batch`.

The analytic kernel of a 3-layer ReLU network (784 -> 512 -> 512 -> 10, the
sizes only matter for finite networks) on 784-dimensional inputs, computed in
`batch_size x batch_size` blocks streamed into host memory
(`store_on_device=False`), on all local devices. Reports wall time, peak
resident memory (ru_maxrss of this process) and a spot check of one block
against the unbatched kernel_fn.

    /work/venv/bin/python benchmarks/kernels_at_scale.py            # n = 20000
    /work/venv/bin/python benchmarks/kernels_at_scale.py --n 4000   # quick

Multi-host: run the same command on every host after
`jax.distributed.initialize()` (see the module docstring of
jaxdl/kernels/batching.py); every process ends with the full kernel.
"""

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import stax
from jaxdl.kernels.batching import batch


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=2500)
    parser.add_argument("--out", type=str, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    _, _, kernel_fn = stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu(),
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu(),
        stax.Dense(10, W_std=1.5, b_std=0.05),
    )  # fmt: skip
    x = np.asarray(jax.random.normal(jax.random.key(0), (args.n, 784), jnp.float32))
    rss_before = peak_rss_gib()

    batched = batch(kernel_fn, batch_size=args.batch_size, store_on_device=False)
    start = time.perf_counter()
    kernels = batched(x, None, ("nngp", "ntk"))
    seconds = time.perf_counter() - start
    peak = peak_rss_gib()

    rows = slice(args.n - 300, args.n)  # spot check the last rows against the first columns
    reference = kernel_fn(x[rows], x[:300], ("nngp", "ntk"))
    spot_error = max(
        float(np.max(np.abs(np.asarray(getattr(kernels, g))[rows, :300] - np.asarray(getattr(reference, g)))))
        for g in ("nngp", "ntk")
    )
    result = {
        "n": args.n,
        "batch_size": args.batch_size,
        "devices": jax.device_count(),
        "platform": jax.default_backend(),
        "shape": list(kernels.ntk.shape),
        "dtype": str(kernels.ntk.dtype),
        "host_bytes_of_kernels": int(kernels.nngp.nbytes + kernels.ntk.nbytes),
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak, 3),
        "peak_rss_before_gib": round(rss_before, 3),
        "max_abs_error_vs_unbatched_block": spot_error,
    }
    print("| n | batch | devices | kernels on host (GiB) | time (s) | peak RSS (GiB) | spot error |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.n} | {args.batch_size} | {result['devices']} | "
          f"{result['host_bytes_of_kernels'] / 2**30:.2f} | {result['seconds']} | "
          f"{result['peak_rss_gib']} | {spot_error:.1e} |")  # fmt: skip
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
