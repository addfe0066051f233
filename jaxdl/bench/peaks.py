"""Peak FLOP/s of an accelerator: the vendor's number and the dense-GEMM rate measured here.

MFU (model FLOP utilisation) is achieved FLOP/s divided by a peak. ``jaxdl bench``
reports it against two peaks:

* :func:`measure_gemm_peak`: the best rate of an ``n x n`` by ``n x n`` matrix product
  (``2 n^3`` FLOPs) on one device in the same run, the practical ceiling of that device
  (and the only one there is on a CPU);
* :func:`vendor_peak`: the dense (no structured sparsity) tensor-core / matrix-unit peak of
  one chip from the vendor's spec sheet, for the accelerators in :data:`VENDOR_PEAKS`.

Sources of :data:`VENDOR_PEAKS` (TFLOP/s per chip, dense; the sheets print the 2:4-sparse
figure, twice the dense one, with an asterisk):

* NVIDIA A100 Tensor Core GPU datasheet: TF32 156, BF16 312 (SXM and PCIe alike).
* NVIDIA H100 Tensor Core GPU datasheet and the NVIDIA H100 (Hopper) architecture whitepaper,
  which prints the dense figures: SXM TF32 494.7 (989 sparse), BF16 989.4 (1979 sparse);
  PCIe TF32 378 (756 sparse), BF16 756.5 (1513 sparse).
* NVIDIA H200 Tensor Core GPU datasheet (SXM): TF32 494.7 (989 sparse), BF16 989.4 (1979 sparse).
* Google Cloud TPU documentation, system architecture pages: TPU v4 275, v5e 197, v5p 459
  BF16 TFLOP/s per chip.

``float32`` entries are the rate at which float32 matrix products run under JAX's default
precision: TF32 tensor cores on these NVIDIA GPUs, one bfloat16 pass on TPUs (so the TPU
float32 entry equals its bfloat16 one). With ``jax_default_matmul_precision='highest'`` the
real ceiling is lower and the MFU against these numbers reads low.
"""

from __future__ import annotations

import time

import jax
import numpy as np

#: Dense peak TFLOP/s per chip: ``{name: {dtype: tflops}}`` (see the module docstring for sources).
VENDOR_PEAKS: dict[str, dict[str, float]] = {
    "NVIDIA A100": {"float32": 156.0, "bfloat16": 312.0},
    "NVIDIA H100 SXM": {"float32": 494.7, "bfloat16": 989.4},
    "NVIDIA H100 PCIe": {"float32": 378.0, "bfloat16": 756.5},
    "NVIDIA H200": {"float32": 494.7, "bfloat16": 989.4},
    "TPU v4": {"float32": 275.0, "bfloat16": 275.0},
    "TPU v5e": {"float32": 197.0, "bfloat16": 197.0},
    "TPU v5p": {"float32": 459.0, "bfloat16": 459.0},
}

DTYPES = ("float32", "bfloat16")


def vendor_chip(device_kind: str) -> str | None:
    """The :data:`VENDOR_PEAKS` entry for a JAX ``device.device_kind`` string, or ``None``.

    ``'NVIDIA H100 80GB HBM3'`` is the SXM part, ``'NVIDIA H100 PCIe'`` the PCIe one;
    ``'TPU v5 lite'`` is v5e and ``'TPU v5'`` / ``'TPU v5p'`` is v5p.
    """
    kind = device_kind.lower()
    if "a100" in kind:
        return "NVIDIA A100"
    if "h100" in kind:
        return "NVIDIA H100 PCIe" if "pcie" in kind else "NVIDIA H100 SXM"
    if "h200" in kind:
        return "NVIDIA H200"
    if "tpu" in kind:
        if "v4" in kind:
            return "TPU v4"
        if "v5 lite" in kind or "v5e" in kind or "v5lite" in kind:
            return "TPU v5e"
        if "v5" in kind:
            return "TPU v5p"
    return None


def vendor_peak(device_kind: str, dtype: str) -> float | None:
    """Dense peak FLOP/s of one chip of ``device_kind`` in ``dtype``; ``None`` when unknown (CPUs)."""
    if dtype not in DTYPES:
        raise ValueError(f"vendor_peak: expected dtype in {DTYPES}, got {dtype!r}")
    chip = vendor_chip(device_kind)
    return None if chip is None else VENDOR_PEAKS[chip][dtype] * 1e12


def measure_gemm_peak(dtype: str = "float32", n: int | None = None, repeats: int = 5,
                      device: jax.Device | None = None) -> dict:
    """The best FLOP/s of an ``n x n`` matrix product in ``dtype`` on ``device`` (default: the first).

    ``n`` defaults to 1024 on a CPU and 8192 on an accelerator. Each of ``repeats`` rounds
    times a chain of products (enough for about 0.1 s); the best round counts, as a peak should.
    Returns ``{"n", "flops_per_s", "seconds_per_gemm"}``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"measure_gemm_peak: expected dtype in {DTYPES}, got {dtype!r}")
    device = device or jax.devices()[0]
    if n is None:
        n = 1024 if device.platform == "cpu" else 8192
    if n < 1 or repeats < 1:
        raise ValueError(f"measure_gemm_peak: expected n >= 1 and repeats >= 1, got n={n}, repeats={repeats}")
    keys = jax.random.split(jax.random.key(0))
    a, b = (jax.device_put((jax.random.normal(k, (n, n)) / np.sqrt(n)).astype(dtype), device) for k in keys)

    @jax.jit
    def chain(a, b, count):
        # count products in a loop; each result feeds the next so none is skipped
        return jax.lax.fori_loop(0, count, lambda _, x: (x @ b).astype(dtype), a)

    jax.block_until_ready(chain(a, b, 1))
    start = time.perf_counter()
    jax.block_until_ready(chain(a, b, 1))
    one = max(time.perf_counter() - start, 1e-6)
    count = int(max(1, min(1000, 0.1 / one)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(chain(a, b, count))
        best = min(best, (time.perf_counter() - start) / count)
    return {"n": n, "flops_per_s": 2.0 * n**3 / best, "seconds_per_gemm": best}


__all__ = ["DTYPES", "VENDOR_PEAKS", "measure_gemm_peak", "vendor_chip", "vendor_peak"]
