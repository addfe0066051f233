"""Analytic NNGP + NTK: jaxdl versus neural-tangents 0.6.5 (NT), same inputs, same machine, same run.

NT only imports in its pinned environment (``benchmarks/.legacy-env``, made by
``bash benchmarks/legacy_env.sh``), so each case runs NT in one subprocess
(``legacy_runner.run_legacy``) and jaxdl in another (this script with
``--worker``), so that the peak resident memory of each is measured the same
way. Both sides evaluate the same architecture expression on the same arrays,
``jax.jit(kernel_fn, static_argnames="get")``; time = best of ``--repeats``
calls after a warm-up call (compilation excluded), outputs blocked on, and best
over ``--rounds`` alternating NT/jaxdl process pairs (the load of a shared
machine drifts). The outputs are compared (max |jaxdl - NT| / max |NT| over
NNGP and NTK), and float32 outputs of both sides against NT in float64 on the
same inputs. Memory: each process's peak RSS (it includes the start-up
footprint of each side's JAX version, about 50 MiB larger for current JAX) and
the scratch memory of the compiled computation from XLA's buffer assignment.

    python benchmarks/kernels_vs_nt.py [--repeats 5] [--rounds 3] [--fast] [--json out.json]

Prints a markdown table with the ratio jaxdl / NT (< 1: jaxdl is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from legacy_runner import run_legacy  # noqa: E402

MLP = "stax.serial(*([stax.Dense(512, W_std=1.5, b_std=0.05), stax.{act}()] * 5), stax.Dense(1))"
CNN = (
    "stax.serial(stax.Conv(64, (3, 3), padding='SAME', W_std=1.5, b_std=0.05), stax.Relu(), "
    "stax.Conv(64, (3, 3), padding='SAME', W_std=1.5, b_std=0.05), stax.Relu(), stax.{readout}(), stax.Dense(1))"
)


def cases(fast: bool) -> list[dict]:
    n_mlp, n_cnn, n_gap = (500, 32, 8) if fast else (2000, 128, 32)
    return [
        dict(name=f"5x(Dense(512)+Relu), {n_mlp}x784", expr=MLP.format(act="Relu"), shape=(n_mlp, 784), x64=False),
        dict(name=f"5x(Dense(512)+Relu), {n_mlp}x784", expr=MLP.format(act="Relu"), shape=(n_mlp, 784), x64=True),
        dict(name=f"5x(Dense(512)+Erf), {n_mlp}x784", expr=MLP.format(act="Erf"), shape=(n_mlp, 784), x64=False),
        dict(name=f"5x(Dense(512)+Erf), {n_mlp}x784", expr=MLP.format(act="Erf"), shape=(n_mlp, 784), x64=True),
        dict(name=f"2x(Conv+Relu)+Flatten, {n_cnn}x8x8x3", expr=CNN.format(readout="Flatten"), shape=(n_cnn, 8, 8, 3),
             x64=False),
        dict(name=f"2x(Conv+Relu)+GlobalAvgPool, {n_gap}x8x8x3", expr=CNN.format(readout="GlobalAvgPool"),
             shape=(n_gap, 8, 8, 3), x64=False),
    ]  # fmt: skip


# The same code runs in both environments: `stax`, `jax`, `inputs`, `best_time`, `RESULT`.
# Besides the process's peak RSS (which includes each JAX version's own start-up
# footprint), XLA's buffer assignment tells how much scratch memory the compiled
# kernel computation needs.
SNIPPET = """
kernel_fn = jax.jit(({expr})[2], static_argnames="get")
x = jnp.asarray(inputs["x"])
_memory = kernel_fn.lower(x, None, get=("nngp", "ntk")).compile().memory_analysis()
RESULT["xla_temp_mib"] = _memory.temp_size_in_bytes / 2**20
RESULT["seconds"] = best_time(lambda: kernel_fn(x, None, get=("nngp", "ntk")), repeats={repeats}) if {repeats} else 0.0
out = kernel_fn(x, None, get=("nngp", "ntk"))
np.savez({out_path!r}, nngp=np.asarray(out.nngp), ntk=np.asarray(out.ntk))
"""

_WORKER_PRELUDE = """
import jax
jax.config.update("jax_enable_x64", {x64})
import jax.numpy as jnp
import numpy as np
from jaxdl import stax

with np.load({inputs_path!r}) as _data:
    inputs = {{key: _data[key] for key in _data.files}}


def best_time(fn, repeats=3):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


RESULT = {{}}
"""


def run_jaxdl(code: str, inputs: dict, x64: bool) -> dict:
    """Runs ``code`` in a fresh Python process with jaxdl (peak RSS comparable with NT's)."""
    with tempfile.TemporaryDirectory(prefix="kernels-vs-nt-") as tmp:
        inputs_path = pathlib.Path(tmp) / "inputs.npz"
        np.savez(inputs_path, **inputs)
        result_path = pathlib.Path(tmp) / "result.json"
        script = "import json, resource, time\n" + _WORKER_PRELUDE.format(x64=x64, inputs_path=str(inputs_path)) + code
        script += (
            "\nRESULT['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            f"open({str(result_path)!r}, 'w').write(json.dumps(RESULT))\n"
        )
        env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
        completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"kernels_vs_nt: the jaxdl worker failed:\n{completed.stderr[-4000:]}")
        return json.loads(result_path.read_text())


def max_relative_diff(ours: dict, theirs: dict) -> float:
    return max(
        float(np.max(np.abs(ours[name] - theirs[name])) / max(np.max(np.abs(theirs[name])), 1e-300))
        for name in ("nngp", "ntk")
    )


def _load(path: str) -> dict:
    with np.load(path) as data:
        return {key: data[key].astype(np.float64) for key in data.files}


def run_case(case: dict, repeats: int, rounds: int, seed: int = 0) -> dict:
    """Alternates NT and jaxdl processes ``rounds`` times (the machine's load drifts)
    and keeps each side's best time and largest peak memory. A float32 case is also
    computed once by NT in float64 on the same inputs, and both sides' float32
    kernels are compared with that reference."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case["shape"]).astype(np.float64 if case["x64"] else np.float32)
    seconds, peak, scratch = ({"nt": [], "jaxdl": []} for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="kernels-vs-nt-") as tmp:
        paths = {side: str(pathlib.Path(tmp) / f"{side}.npz") for side in ("nt", "jaxdl", "reference")}
        code = {side: SNIPPET.format(expr=case["expr"], repeats=repeats, out_path=paths[side]) for side in paths}
        for _ in range(rounds):
            for side, result in (
                ("nt", lambda: run_legacy(code["nt"], inputs={"x": x}, x64=case["x64"])),
                ("jaxdl", lambda: run_jaxdl(code["jaxdl"], {"x": x}, case["x64"])),
            ):
                result = result()
                seconds[side].append(result["seconds"])
                peak[side].append(result["peak_rss_mib"])
                scratch[side].append(result["xla_temp_mib"])
        outputs = {side: _load(paths[side]) for side in ("nt", "jaxdl")}
        row = {
            "case": case["name"],
            "dtype": "float64" if case["x64"] else "float32",
            "nt_seconds": min(seconds["nt"]),
            "jaxdl_seconds": min(seconds["jaxdl"]),
            "ratio": min(seconds["jaxdl"]) / min(seconds["nt"]),
            "max_rel_diff": max_relative_diff(outputs["jaxdl"], outputs["nt"]),
            "nt_peak_rss_mib": max(peak["nt"]),
            "jaxdl_peak_rss_mib": max(peak["jaxdl"]),
            "nt_xla_temp_mib": max(scratch["nt"]),
            "jaxdl_xla_temp_mib": max(scratch["jaxdl"]),
        }
        if not case["x64"]:
            reference_code = SNIPPET.format(expr=case["expr"], repeats=0, out_path=paths["reference"])
            run_legacy(reference_code, inputs={"x": x.astype(np.float64)}, x64=True)
            reference = _load(paths["reference"])
            row["nt_error_vs_float64"] = max_relative_diff(outputs["nt"], reference)
            row["jaxdl_error_vs_float64"] = max_relative_diff(outputs["jaxdl"], reference)
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| case (NNGP + NTK, x1 only) | dtype | NT s | jaxdl s | jaxdl/NT | max rel diff | "
        "float32 error vs float64: NT / jaxdl | peak RSS MiB: NT / jaxdl | XLA scratch MiB: NT / jaxdl |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        accuracy = "-"
        if "nt_error_vs_float64" in r:
            accuracy = f"{r['nt_error_vs_float64']:.1e} / {r['jaxdl_error_vs_float64']:.1e}"
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['nt_seconds']:.4f} | {r['jaxdl_seconds']:.4f} | {r['ratio']:.2f} | "
            f"{r['max_rel_diff']:.1e} | {accuracy} | {r['nt_peak_rss_mib']:.0f} / {r['jaxdl_peak_rss_mib']:.0f} | "
            f"{r['nt_xla_temp_mib']:.1f} / {r['jaxdl_xla_temp_mib']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per process (best is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating NT / jaxdl processes per case")
    parser.add_argument("--fast", action="store_true", help="smaller batches (a smoke run)")
    parser.add_argument("--only", help="run only cases whose name contains this text")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = []
    start = time.perf_counter()
    for case in cases(args.fast):
        if args.only and args.only not in case["name"]:
            continue
        rows.append(run_case(case, args.repeats, args.rounds))
        r = rows[-1]
        print(f"{r['case']} [{r['dtype']}]: NT {r['nt_seconds']:.4f} s, jaxdl {r['jaxdl_seconds']:.4f} s, "
              f"ratio {r['ratio']:.2f}, max rel diff {r['max_rel_diff']:.1e}", file=sys.stderr, flush=True)  # fmt: skip
    print(markdown(rows))
    print(f"\n({time.perf_counter() - start:.0f} s in all; best of {args.rounds} alternating processes x "
          f"{args.repeats} calls after a warm-up, {os.cpu_count()} CPUs, peak RSS of each side's own process)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
