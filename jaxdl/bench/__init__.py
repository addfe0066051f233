"""``jaxdl.bench``: accelerator benchmarks of standard deep-learning workloads, with MFU.

``jaxdl bench [WORKLOAD ...]`` (or :func:`run` from Python) builds training steps of jaxdl's
models (MLP, LeNet-5, ResNet, LSTM, LRU, GPT), analytic and empirical NTK computations and an
HMC transition, and reports for each: compile time, step time (median and spread over timed
rounds), throughput, FLOPs per step from XLA's cost analysis, achieved FLOP/s, MFU against
the dense-GEMM peak measured in the same run and against the vendor peak of known
accelerators, and peak memory::

    from jaxdl import bench
    record = bench.run(["mlp", "empirical_ntk"], dtype="float32", steps=5)
    print(bench.markdown_table(record))

MFU = achieved FLOP/s / peak FLOP/s; see :mod:`jaxdl.bench.peaks` for the peaks and
:mod:`jaxdl.bench.flops` for how FLOPs are counted.
"""

from jaxdl.bench.flops import matmul_flops, step_flops, xla_cost
from jaxdl.bench.peaks import VENDOR_PEAKS, measure_gemm_peak, vendor_chip, vendor_peak
from jaxdl.bench.runner import (
    available_workloads,
    compare,
    compare_table,
    load_record,
    markdown_table,
    mfu_figure,
    run,
    write,
)
from jaxdl.bench.workloads import WORKLOADS, Prepared, Workload

__all__ = [
    "VENDOR_PEAKS", "WORKLOADS", "Prepared", "Workload", "available_workloads", "compare", "compare_table",
    "load_record", "markdown_table", "matmul_flops", "measure_gemm_peak", "mfu_figure", "run", "step_flops",
    "vendor_chip", "vendor_peak", "write", "xla_cost",
]  # fmt: skip
