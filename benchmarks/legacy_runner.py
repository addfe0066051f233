"""Run code inside the pinned neural-tangents environment and get JSON back.

neural-tangents 0.6.5 (NT) only imports in `benchmarks/.legacy-env` (made by
`benchmarks/legacy_env.sh`), so a benchmark that compares jaxdl with NT in
one run calls NT in a subprocess:

    from legacy_runner import run_legacy
    result = run_legacy('''
    from neural_tangents import stax
    _, _, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(1))
    RESULT["seconds"] = best_time(lambda: kernel_fn(inputs["x"], None, ("nngp", "ntk")))
    ''', inputs={"x": x})

The snippet runs with `jax`, `jnp`, `np`, `nt`, `stax`, a dict `inputs` of the
arrays passed in, a function `best_time(fn, repeats=3)` (seconds of the
fastest call after one warm-up call, outputs blocked on) and a dict `RESULT`
to fill with JSON-able values.  `run_legacy` returns `RESULT` plus
`peak_rss_mib` (the subprocess's peak resident memory) and `wall_seconds`
(the snippet's wall time, warm-up and compilation included).

Runs with the standard library and numpy only, so the main environment can
import it.  `python benchmarks/legacy_runner.py` runs the demo timings.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

LEGACY_PYTHON = pathlib.Path(__file__).resolve().parent / ".legacy-env" / "bin" / "python"
_MARKER = "__LEGACY_RUNNER_RESULT__"

_PRELUDE = """
import json, resource, sys, time
import jax
jax.config.update("jax_enable_x64", {x64})
import jax.numpy as jnp
import numpy as np
import neural_tangents as nt
from neural_tangents import stax

with np.load({inputs_path!r}, allow_pickle=False) as _data:
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
_start = time.perf_counter()
"""

_EPILOGUE = """
RESULT["wall_seconds"] = time.perf_counter() - _start
RESULT["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
RESULT["jax_version"] = jax.__version__
RESULT["neural_tangents_version"] = nt.__version__
print({marker!r} + json.dumps(RESULT))
"""


def run_legacy(code: str, *, inputs: dict | None = None, x64: bool = False, timeout: float = 600.0,
               env: dict | None = None) -> dict:
    """Runs `code` in the legacy NT environment and returns its `RESULT` dict.

    Args:
      code: Python statements (dedented automatically) that fill `RESULT`.
      inputs: arrays handed to the snippet as the dict `inputs`.
      x64: whether the snippet runs with `jax_enable_x64`.
      timeout: seconds before the subprocess is killed.
      env: environment variables for the subprocess (default: this process's,
        without XLA_FLAGS, so the test suite's virtual devices do not leak in).

    Raises:
      FileNotFoundError: the legacy environment has not been created.
      RuntimeError: the snippet failed; the message carries its stderr.
    """
    if not LEGACY_PYTHON.exists():
        raise FileNotFoundError(f"run_legacy: expected the NT environment at {LEGACY_PYTHON}; "
                                "create it with `bash benchmarks/legacy_env.sh`")
    if not isinstance(code, str):
        raise TypeError(f"run_legacy: expected the code as a str, got {type(code).__name__}")
    if env is None:
        env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    with tempfile.TemporaryDirectory(prefix="legacy-runner-") as tmp:
        inputs_path = pathlib.Path(tmp) / "inputs.npz"
        np.savez(inputs_path, **{key: np.asarray(value) for key, value in (inputs or {}).items()})
        script = (_PRELUDE.format(x64=bool(x64), inputs_path=str(inputs_path))
                  + textwrap.dedent(code) + _EPILOGUE.format(marker=_MARKER))
        script_path = pathlib.Path(tmp) / "snippet.py"
        script_path.write_text(script)
        completed = subprocess.run([str(LEGACY_PYTHON), "-W", "ignore", str(script_path)], capture_output=True,
                                   text=True, timeout=timeout, env=env, check=False)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(_MARKER):
            return json.loads(line[len(_MARKER):])
    raise RuntimeError(f"run_legacy: the snippet exited with code {completed.returncode} without a result;\n"
                       f"stderr (tail):\n{completed.stderr[-4000:]}")


DEMO_MLP = """
x = inputs["x"]
_, _, kernel_fn = stax.serial(*([stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu()] * 5), stax.Dense(1))
kernel_fn = jax.jit(kernel_fn, static_argnames="get")
RESULT["seconds"] = best_time(lambda: kernel_fn(x, None, get=("nngp", "ntk")))
RESULT["shape"] = list(kernel_fn(x, None, get="ntk").shape)
"""

DEMO_CNN = """
x = inputs["x"]
readout = stax.Flatten() if {readout!r} == "flatten" else stax.GlobalAvgPool()
_, _, kernel_fn = stax.serial(
    stax.Conv(64, (3, 3), padding="SAME", W_std=1.5, b_std=0.05), stax.Relu(),
    stax.Conv(64, (3, 3), padding="SAME", W_std=1.5, b_std=0.05), stax.Relu(),
    readout, stax.Dense(1))
kernel_fn = jax.jit(kernel_fn, static_argnames="get")
RESULT["seconds"] = best_time(lambda: kernel_fn(x, None, get=("nngp", "ntk")))
RESULT["shape"] = list(kernel_fn(x, None, get="ntk").shape)
"""


def demo(n_mlp: int = 2000, n_cnn: int = 128, n_gap: int = 32, x64: bool = False) -> list[dict]:
    """Times NT's NNGP+NTK of a 5-layer ReLU MLP and of two 2-layer CNNs.

    GlobalAvgPool needs the full spatial covariance, `n^2 (H W)^2` entries
    propagated through the convolutions (41 s per call at n=128 on 2 cores),
    hence its smaller default batch.
    """
    rng = np.random.default_rng(0)
    runs = [
        (f"mlp 5x(Dense+Relu) on {n_mlp}x784", DEMO_MLP, rng.standard_normal((n_mlp, 784))),
        (f"cnn 2x(Conv+Relu)+Flatten on {n_cnn}x8x8x3", DEMO_CNN.format(readout="flatten"),
         rng.standard_normal((n_cnn, 8, 8, 3))),
        (f"cnn 2x(Conv+Relu)+GlobalAvgPool on {n_gap}x8x8x3", DEMO_CNN.format(readout="gap"),
         rng.standard_normal((n_gap, 8, 8, 3))),
    ]
    results = []
    for name, code, x in runs:
        result = run_legacy(code, inputs={"x": x}, x64=x64)
        result["name"] = name
        result["dtype"] = "float64" if x64 else "float32"
        print(f"{name} [{result['dtype']}]: {result['seconds']:.3f} s per call (best of 3, jit),"
              f" {result['wall_seconds']:.1f} s wall incl. compile, peak RSS {result['peak_rss_mib']:.0f} MiB,"
              f" kernel shape {result['shape']}", flush=True)
        results.append(result)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Time neural-tangents in the legacy environment (demo).")
    parser.add_argument("--n-mlp", type=int, default=2000)
    parser.add_argument("--n-cnn", type=int, default=128, help="batch of the Flatten CNN")
    parser.add_argument("--n-gap", type=int, default=32, help="batch of the GlobalAvgPool CNN")
    parser.add_argument("--x64", action="store_true")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = demo(args.n_mlp, args.n_cnn, args.n_gap, args.x64)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
