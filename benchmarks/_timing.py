"""Timing shared by the benchmarks that compare jaxdl with a peer in one process."""

from __future__ import annotations

import statistics
import time

import jax


def median_times(functions: dict, args: dict, rounds: int) -> dict:
    """Compile each of ``functions`` (name -> jitted fn, called as ``fn(*args[name])``), then
    ``rounds`` rounds calling each once in turn, so that a burst of load on the machine hits
    all of them alike; median seconds per call, by name."""
    for name, fn in functions.items():
        jax.block_until_ready(fn(*args[name]))
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args[name]))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
