"""The ``jaxdl bench`` subcommand: its options (:func:`add_arguments`) and what it does (:func:`main`)."""

from __future__ import annotations

import argparse
import sys

from jaxdl.bench.peaks import DTYPES
from jaxdl.bench.workloads import WORKLOADS

DESCRIPTION = ("Benchmark standard workloads on the devices JAX sees: compile time, step time, throughput, "
               "FLOPs (XLA cost analysis), FLOP/s, MFU against a dense GEMM measured in the same run and "
               "against the vendor peak, peak memory. Writes OUT/bench.json and OUT/bench.png (MFU chart) "
               "and prints a markdown table.")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``jaxdl bench`` to ``parser``."""
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                        help=f"workloads to run (default: all available): {', '.join(WORKLOADS)}")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="parameter, activation and input dtype (default: float32)")
    parser.add_argument("--batch", type=int, nargs="+", metavar="N",
                        help="batch size: one for every workload or one per workload named (default: "
                             "each workload's own)")
    parser.add_argument("--steps", type=int, default=10, metavar="N", help="steps per timed round (default: 10)")
    parser.add_argument("--rounds", type=int, default=5, metavar="N",
                        help="timed rounds; the step time is their median (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed steps first (default: 2)")
    parser.add_argument("--out", metavar="DIR", default="runs", help="output directory (default: runs)")
    parser.add_argument("--compare", metavar="OLD.json", help="print per-workload ratios against an earlier record")
    parser.add_argument("--data-parallel", action="store_true",
                        help="split each batch over all local devices (jax.sharding, one mesh axis)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and batches, a smoke test")
    parser.add_argument("--gemm-n", type=int, metavar="N",
                        help="size of the square GEMM that measures the peak (default: 1024 on CPU, 8192 else)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``jaxdl bench`` with parsed ``args``; 0 done, 2 bad arguments, 130 interrupted."""
    from jaxdl.bench import runner  # imports JAX: only when the command runs

    try:
        old = runner.load_record(args.compare) if args.compare else None
        record = runner.run(args.workloads or None, dtype=args.dtype, batch=args.batch, steps=args.steps,
                            rounds=args.rounds, warmup=args.warmup, data_parallel=args.data_parallel,
                            tiny=args.tiny, gemm_n=args.gemm_n)
        json_path, png_path = runner.write(record, args.out)
    except KeyboardInterrupt:
        print("jaxdl: bench interrupted; nothing saved", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        print(f"jaxdl: {error}", file=sys.stderr)
        return 2
    print(runner.markdown_table(record))
    if old is not None:
        print()
        print(f"compared with {args.compare}:")
        print(runner.compare_table(runner.compare(record, old), record, old))
    print(f"results written to {json_path} and {png_path}")
    return 0
