"""Run the workloads of :mod:`jaxdl.bench.workloads`, time them, and report: JSON, markdown, bar chart.

For each workload :func:`run` measures

* the compile time (``jax.jit(step).lower(state, data).compile()``),
* the step time: ``rounds`` rounds of ``steps`` steps after ``warmup`` steps, each round
  closed by ``jax.block_until_ready``; the median over rounds, and the spread
  ``(max - min) / median``,
* the throughput (``items`` per second at the median step time),
* the FLOPs per step (:func:`jaxdl.bench.flops.step_flops`), the achieved FLOP/s, and the MFU
  against the dense-GEMM peak measured in the same run (times the device count when
  data-parallel) and against the vendor peak of the chip when it is in
  :data:`jaxdl.bench.peaks.VENDOR_PEAKS`,
* the peak memory: ``device.memory_stats()['peak_bytes_in_use']`` where the backend reports
  it (GPUs, TPUs), else the peak resident set size of the process (CPU); both are peaks since
  the process started, so they never decrease from one workload to the next. XLA's own
  estimate for the step alone (arguments + outputs + temporaries) is ``xla_memory_bytes``.

Data-parallel runs (``data_parallel=True``) place ``data`` on a one-axis mesh of all local
devices with ``NamedSharding(mesh, P('batch'))`` and replicate ``state``; XLA's SPMD
partitioner inserts the gradient all-reduce.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxdl
from jaxdl.bench.flops import step_flops
from jaxdl.bench.peaks import DTYPES, measure_gemm_peak, vendor_chip, vendor_peak
from jaxdl.bench.workloads import WORKLOADS
from jaxdl.experiments import report


def available_workloads() -> list[str]:
    """The workloads this version of jaxdl can build (``gpt`` needs ``jaxdl.models.gpt``)."""
    return [name for name, workload in WORKLOADS.items() if workload.available()]


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"bench: expected {name} to be a positive integer, got {value!r}")
    return int(value)


def _batches(names: list[str], batch, tiny: bool, num_devices: int, data_parallel: bool) -> dict[str, int]:
    """One batch size per workload from ``batch``: None (the defaults), one int, or one int per workload."""
    if batch is None:
        sizes = [WORKLOADS[n].tiny_batch if tiny else WORKLOADS[n].batch for n in names]
    elif isinstance(batch, (int, np.integer)) and not isinstance(batch, bool):
        sizes = [batch] * len(names)
    else:
        sizes = list(batch)
        if len(sizes) == 1:
            sizes = sizes * len(names)
        if len(sizes) != len(names):
            raise ValueError(f"bench: expected one batch size or one per workload ({len(names)}), "
                             f"got {len(sizes)}")
    sizes = [_check_positive("batch", b) for b in sizes]
    for name, size in zip(names, sizes):
        if data_parallel and size % num_devices:
            raise ValueError(f"bench: batch {size} of {name} is not divisible by the {num_devices} devices "
                             f"of the data-parallel run")
    return dict(zip(names, sizes))


def _peak_memory(devices) -> tuple[float | None, str]:
    stats = devices[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return float(max(d.memory_stats()["peak_bytes_in_use"] for d in devices)), "device peak_bytes_in_use"
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024), "process peak RSS"


def _place(prepared, mesh):
    """``state`` replicated and ``data`` split on its leading axis over ``mesh`` (or left as is)."""
    if mesh is None:
        return prepared.state, prepared.data, None
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec("batch"))
    state_sharding = jax.tree.map(lambda _: replicated, prepared.state)
    data_sharding = jax.tree.map(lambda _: split, prepared.data)
    state = jax.device_put(prepared.state, state_sharding)
    data = jax.device_put(prepared.data, data_sharding)
    return state, data, (state_sharding, data_sharding)


def _time_workload(name: str, prepared, mesh, steps: int, rounds: int, warmup: int) -> dict:
    state, data, shardings = _place(prepared, mesh)
    if shardings is None:
        jitted = jax.jit(prepared.step)
    else:
        out_shardings = shardings[0] if prepared.carries_state else None
        jitted = jax.jit(prepared.step, in_shardings=shardings, out_shardings=out_shardings)
    start = time.perf_counter()
    compiled = jitted.lower(state, data).compile()
    compile_s = time.perf_counter() - start
    flops = step_flops(compiled, prepared.step, state, data,
                       num_devices=1 if mesh is None else mesh.devices.size)
    ma = compiled.memory_analysis()
    xla_memory = None if ma is None else float(
        ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes - ma.alias_size_in_bytes)

    def run_steps(count, state):
        outputs = []
        for _ in range(count):
            if prepared.carries_state:
                state = compiled(state, data)
            else:
                outputs.append(compiled(state, data))
        jax.block_until_ready(state if prepared.carries_state else outputs)
        return state

    state = run_steps(warmup, state)
    round_times = []
    for _ in range(rounds):
        start = time.perf_counter()
        state = run_steps(steps, state)
        round_times.append((time.perf_counter() - start) / steps)
    for leaf in jax.tree.leaves(state):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise FloatingPointError(f"bench: the state of {name} became non-finite")
    return {"compile_s": compile_s, "round_step_s": round_times, "xla_memory_bytes": xla_memory, **flops}


def run(workloads=None, *, dtype: str = "float32", batch=None, steps: int = 10, rounds: int = 5,
        warmup: int = 2, data_parallel: bool = False, tiny: bool = False, gemm_n: int | None = None,
        show_progress: bool = True) -> dict:
    """Benchmark ``workloads`` (names; default: all available) and return the JSON record.

    Args:
      workloads: names from :data:`jaxdl.bench.WORKLOADS`, or ``None`` for all available.
      dtype: ``'float32'`` or ``'bfloat16'``: parameters, activations and inputs.
      batch: ``None`` (each workload's default), an int for all, or a list with one per workload.
      steps: steps per timed round. rounds: timed rounds. warmup: untimed steps first.
      data_parallel: split each batch over all local devices (``jax.sharding``).
      tiny: tiny models and batches (for tests; the numbers mean little).
      gemm_n: size of the square GEMM that measures the peak (default: 1024 on CPU, 8192 otherwise).

    Raises:
      ValueError: unknown or unavailable workload, bad dtype, non-positive sizes, or a batch
        not divisible by the device count of a data-parallel run.
    """
    names = available_workloads() if workloads is None else list(workloads)
    if not names:
        raise ValueError("bench: expected at least one workload")
    for name in names:
        if name not in WORKLOADS:
            raise ValueError(f"bench: unknown workload {name!r}; expected one of {', '.join(WORKLOADS)}")
        if not WORKLOADS[name].available():
            raise ValueError(f"bench: workload {name!r} needs jaxdl.models.{WORKLOADS[name].requires}, "
                             f"which this version of jaxdl lacks")
    if len(set(names)) != len(names):
        raise ValueError(f"bench: expected each workload once, got {names}")
    if dtype not in DTYPES:
        raise ValueError(f"bench: expected dtype in {DTYPES}, got {dtype!r}")
    steps, rounds = _check_positive("steps", steps), _check_positive("rounds", rounds)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"bench: expected warmup to be a non-negative integer, got {warmup!r}")
    devices = jax.local_devices()
    mesh = Mesh(np.array(devices), ("batch",)) if data_parallel else None
    used = devices if data_parallel else devices[:1]
    batches = _batches(names, batch, tiny, len(devices), data_parallel)

    kind = devices[0].device_kind
    gemm = measure_gemm_peak(dtype, n=(128 if tiny else None) if gemm_n is None else gemm_n,
                             repeats=2 if tiny else 5, device=devices[0])
    gemm_total = gemm["flops_per_s"] * len(used)
    vendor = vendor_peak(kind, dtype)
    vendor_total = None if vendor is None else vendor * len(used)
    record = {
        "jaxdl_version": jaxdl.__version__, "jax_version": jax.__version__, "backend": jax.default_backend(),
        "device_kind": kind, "device_count": len(used), "local_device_count": len(devices),
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
        "dtype": dtype, "data_parallel": data_parallel, "tiny": tiny, "steps": steps, "rounds": rounds,
        "warmup": warmup, "gemm_peak": {**gemm, "flops_per_s_all_devices": gemm_total},
        "vendor_chip": vendor_chip(kind), "vendor_peak_flops_per_s": vendor_total,
        "matmul_precision": str(jax.config.jax_default_matmul_precision), "workloads": {},
    }
    bar = report.progress(names, desc="jaxdl bench", total=len(names)) if show_progress else names
    for name in bar:
        if show_progress:
            bar.set_postfix_str(name)
        workload = WORKLOADS[name]
        prepared = workload.build(batches[name], jnp.dtype(dtype), tiny)
        timing = _time_workload(name, prepared, mesh, steps, rounds, warmup)
        median = statistics.median(timing["round_step_s"])
        flops = timing["flops"]
        achieved = flops / median
        memory, memory_source = _peak_memory(used)
        record["workloads"][name] = {
            "description": workload.description, "batch": batches[name], "unit": workload.unit,
            "items_per_step": prepared.items, "step_s_median": median,
            "step_s_min": min(timing["round_step_s"]), "step_s_max": max(timing["round_step_s"]),
            "step_s_spread": (max(timing["round_step_s"]) - min(timing["round_step_s"])) / median,
            "throughput_per_s": prepared.items / median, "flops_per_s": achieved,
            "mfu_gemm": achieved / gemm_total, "mfu_vendor": None if vendor_total is None else achieved / vendor_total,
            "peak_memory_bytes": memory, "memory_source": memory_source, **timing,
        }
    return record


def _si(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{prefix}"
    return f"{value:.{digits}g}"


def _milliseconds(seconds: float) -> str:
    milliseconds = 1e3 * seconds
    return f"{milliseconds:.0f}" if milliseconds >= 100 else f"{milliseconds:.3g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3g}%"


def markdown_table(record: dict) -> str:
    """The record as a markdown table, one row per workload, with a header line on the device."""
    gemm = record["gemm_peak"]
    lines = [
        f"{record['device_count']} x {record['device_kind']} ({record['backend']}), {record['dtype']}, "
        f"JAX {record['jax_version']}; measured GEMM peak {_si(gemm['flops_per_s_all_devices'])}FLOP/s "
        f"(n={gemm['n']}); vendor peak "
        + (f"{_si(record['vendor_peak_flops_per_s'])}FLOP/s ({record['vendor_chip']})"
           if record["vendor_peak_flops_per_s"] else "unknown for this device"),
        "",
        "| workload | batch | compile s | step ms (median, spread) | throughput /s | FLOP/step | FLOP/s "
        "| MFU vs GEMM | MFU vs vendor | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, w in record["workloads"].items():
        flop_note = "*" if w["flops_source"] != "xla" else ""
        lines.append(
            f"| {name} | {w['batch']} | {w['compile_s']:.2f} | {_milliseconds(w['step_s_median'])} "
            f"(±{100 * w['step_s_spread'] / 2:.0f}%) | {_si(w['throughput_per_s'])} {w['unit']} "
            f"| {_si(w['flops'])}{flop_note} | {_si(w['flops_per_s'])} | {_percent(w['mfu_gemm'])} "
            f"| {_percent(w['mfu_vendor'])} | {_si(w['peak_memory_bytes'])}B |")
    if any(w["flops_source"] != "xla" for w in record["workloads"].values()):
        lines += ["", "\\* matrix-product FLOPs from the jaxpr: XLA's cost analysis counts a loop body once"]
    return "\n".join(lines)


def compare(new: dict, old: dict) -> dict:
    """Per-workload ratios new / old of ``throughput_per_s``, ``step_s_median``, ``flops_per_s``
    and ``mfu_gemm`` for the workloads both records have (> 1 throughput: new is faster)."""
    for label, record in (("new", new), ("old", old)):
        if not isinstance(record, dict) or not isinstance(record.get("workloads"), dict):
            raise ValueError(f"bench: expected a jaxdl bench record as the {label} result, got {type(record).__name__}")
    ratios = {}
    for name in new["workloads"]:
        if name not in old["workloads"]:
            continue
        a, b = new["workloads"][name], old["workloads"][name]
        ratios[name] = {key: (a[key] / b[key] if b.get(key) else None)
                        for key in ("throughput_per_s", "step_s_median", "flops_per_s", "mfu_gemm")}
    return ratios


def compare_table(ratios: dict, new: dict, old: dict) -> str:
    """The ratios of :func:`compare` as a markdown table, with a note when the runs differ in setup."""
    lines = []
    for key in ("device_kind", "device_count", "dtype", "tiny"):
        if new.get(key) != old.get(key):
            lines.append(f"note: {key} differs: {new.get(key)} now, {old.get(key)} before")
    lines += ["| workload | throughput new/old | step time new/old | FLOP/s new/old | MFU (GEMM) new/old |",
              "|---|---:|---:|---:|---:|"]
    fmt = lambda v: "-" if v is None else f"{v:.3g}x"  # noqa: E731
    for name, r in ratios.items():
        lines.append(f"| {name} | {fmt(r['throughput_per_s'])} | {fmt(r['step_s_median'])} | "
                     f"{fmt(r['flops_per_s'])} | {fmt(r['mfu_gemm'])} |")
    return "\n".join(lines)


def load_record(path) -> dict:
    """A record written by :func:`write`; ``ValueError`` for a missing or malformed file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"bench: cannot read a benchmark record from {path}: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("workloads"), dict):
        raise ValueError(f"bench: {path} is not a jaxdl bench record (no 'workloads')")
    return record


def mfu_figure(record: dict):
    """A horizontal bar chart of the MFU of each workload against the measured GEMM peak
    (and the vendor peak when known)."""
    names = list(record["workloads"])
    fig, ax = report.new_figure(
        f"jaxdl bench: MFU per workload on {record['device_count']} x {record['device_kind']} "
        f"({record['dtype']})", fast=record["tiny"], figsize=(8, 1.2 + 0.45 * len(names)))
    y = np.arange(len(names))
    gemm = [100 * record["workloads"][n]["mfu_gemm"] for n in names]
    palette = report.colors(2)
    has_vendor = record["vendor_peak_flops_per_s"] is not None
    height = 0.4 if has_vendor else 0.7
    ax.barh(y - (height / 2 if has_vendor else 0), gemm, height, color=palette[0],
            label="vs dense GEMM measured in this run")
    if has_vendor:
        vendor = [100 * record["workloads"][n]["mfu_vendor"] for n in names]
        ax.barh(y + height / 2, vendor, height, color=palette[1], label=f"vs vendor peak ({record['vendor_chip']})")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("MFU (% of peak FLOP/s)")
    ax.set_ylabel("workload")
    report.legend_outside(ax)
    return fig


def write(record: dict, out_dir) -> tuple[Path, Path]:
    """Write ``OUT/bench.json`` and the MFU chart ``OUT/bench.png``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = report.write_json(out_dir, "bench", record)
    png_path = report.save_figure(mfu_figure(record), out_dir, "bench.png")
    return json_path, png_path


__all__ = ["available_workloads", "compare", "compare_table", "load_record", "markdown_table", "mfu_figure",
           "run", "write"]
