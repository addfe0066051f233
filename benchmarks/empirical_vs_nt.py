"""Empirical NTK: jaxdl vs neural-tangents 0.6.5, side by side in one run.

Full logit blocks (``trace_axes=()``, kernel ``f[n, n, 10, 10]``), float32,
everything under ``jax.jit``, time of one call after a warm-up call (compile
excluded):

* MLP 784-512-512-10 (ReLU, biases) on 64 inputs;
* small CNN: Conv(32, 3x3, SAME)-ReLU-Conv(32, 3x3, SAME)-ReLU-Flatten-Dense(10)
  on 64 images 8x8x3.

neural-tangents runs in its pinned environment (benchmarks/legacy_runner.py)
with the same parameters; every implementation (AUTO, JACOBIAN_CONTRACTION,
NTK_VECTOR_PRODUCTS, STRUCTURED_DERIVATIVES) is tried with ``vmap_axes=0`` and
``None``, and those that fail on jax 0.4.30 are reported as such. The headline
ratio is NT's fastest working configuration over jaxdl's ``AUTO``
(``vmap_axes=0``, as NT's fastest); every NT kernel is also compared with
jaxdl's (max abs difference).

    /work/venv/bin/python benchmarks/empirical_vs_nt.py [--out results.json]
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from legacy_runner import run_legacy  # noqa: E402

from jaxdl import stax  # noqa: E402
from jaxdl.kernels.empirical import NtkImplementation, empirical_ntk_fn  # noqa: E402

MODELS = {
    "mlp": (
        "stax.serial(stax.Dense(512, b_std=0.1), stax.Relu(), stax.Dense(512, b_std=0.1), stax.Relu(), "
        "stax.Dense(10, b_std=0.1))",
        (64, 784),
    ),
    "cnn": (
        "stax.serial(stax.Conv(32, (3, 3), padding='SAME', b_std=0.1), stax.Relu(), "
        "stax.Conv(32, (3, 3), padding='SAME', b_std=0.1), stax.Relu(), stax.Flatten(), "
        "stax.Dense(10, b_std=0.1))",
        (64, 8, 8, 3),
    ),
}

NT_SNIPPET = """
init_fn, apply_fn, _ = {model}
x = inputs["x"]
_, template = init_fn(jax.random.PRNGKey(0), x.shape)
leaves, treedef = jax.tree_util.tree_flatten(template)
params = jax.tree_util.tree_unflatten(
    treedef, [jnp.asarray(inputs[f"p{{i}}"]).reshape(leaf.shape) for i, leaf in enumerate(leaves)])
ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes={vmap},
                                     implementation={implementation}))
try:
    ntk = np.asarray(ntk_fn(x, None, params))
    np.save({out_path!r}, ntk)
    RESULT["seconds"] = best_time(lambda: ntk_fn(x, None, params), repeats=1)
except Exception as error:
    RESULT["error"] = f"{{type(error).__name__}}: {{str(error)[:200]}}"
"""


def time_call(fn, repeats=3):
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def run_model(name: str) -> dict:
    expr, shape = MODELS[name]
    init_fn, apply_fn, _ = eval(expr, {"stax": stax})  # noqa: S307 - our own expression
    x = jax.random.normal(jax.random.key(1), shape)
    _, params = init_fn(jax.random.key(2), shape)
    leaves = jax.tree.leaves(params)

    jaxdl_rows, reference = [], None
    for implementation, vmap in ((NtkImplementation.AUTO, 0), (NtkImplementation.AUTO, None),
                                 (NtkImplementation.JACOBIAN_CONTRACTION, 0)):  # fmt: skip
        ntk_fn = jax.jit(empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=vmap, implementation=implementation))
        ntk = np.asarray(ntk_fn(x, None, params))
        reference = ntk if reference is None else reference
        seconds = time_call(lambda: ntk_fn(x, None, params), repeats=3 if vmap == 0 else 1)
        jaxdl_rows.append({"implementation": implementation.name, "vmap_axes": vmap, "seconds": seconds,
                           "max_abs_diff_vs_auto": float(np.max(np.abs(ntk - reference)))})
        print(f"  jaxdl {implementation.name:22s} vmap_axes={vmap!s:4s} {seconds:9.4f} s", flush=True)

    nt_rows = []
    inputs = {"x": np.asarray(x), **{f"p{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}}
    for implementation in (0, 1, 2, 3):
        for vmap in (0, None):
            with tempfile.TemporaryDirectory() as tmp:
                out_path = str(pathlib.Path(tmp) / "ntk.npy")
                code = NT_SNIPPET.format(model=expr, vmap=vmap, implementation=implementation, out_path=out_path)
                try:
                    result = run_legacy(code, inputs=inputs, timeout=900)
                except Exception as error:  # noqa: BLE001 - a timeout or crash is a result too
                    result = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
                row = {"implementation": NtkImplementation(implementation).name, "vmap_axes": vmap}
                if "seconds" in result:
                    row["seconds"] = result["seconds"]
                    row["max_abs_diff_vs_jaxdl"] = float(np.max(np.abs(np.load(out_path) - reference)))
                else:
                    row["error"] = result.get("error", "unknown")
            nt_rows.append(row)
            status = f"{row['seconds']:9.4f} s" if "seconds" in row else "failed: " + row["error"][:80]
            print(f"  NT    {row['implementation']:22s} vmap_axes={vmap!s:4s} {status}", flush=True)

    working = [r for r in nt_rows if "seconds" in r]
    fastest_nt = min(working, key=lambda r: r["seconds"])
    auto = jaxdl_rows[0]
    return {
        "model": name,
        "input_shape": list(shape),
        "kernel_shape": list(reference.shape),
        "n_params": int(sum(leaf.size for leaf in leaves)),
        "jaxdl": jaxdl_rows,
        "neural_tangents": nt_rows,
        "nt_fastest": fastest_nt,
        "speedup_auto_vs_nt_fastest": fastest_nt["seconds"] / auto["seconds"],
        "speedups_same_configuration": {
            f"{r['implementation']}/vmap={r['vmap_axes']}": r["seconds"] / j["seconds"]
            for r in working for j in jaxdl_rows
            if j["implementation"] == r["implementation"] and j["vmap_axes"] == r["vmap_axes"]
        },
    }


def print_table(results):
    print("\n| model | params | NT fastest working (impl, vmap_axes) | NT s | jaxdl AUTO s | speed-up |")
    print("|---|---|---|---|---|---|")
    for r in results:
        nt_best = r["nt_fastest"]
        print(f"| {r['model']} {r['input_shape']} | {r['n_params']} | {nt_best['implementation']}, "
              f"{nt_best['vmap_axes']} | {nt_best['seconds']:.3f} | {r['jaxdl'][0]['seconds']:.4f} | "
              f"{r['speedup_auto_vs_nt_fastest']:.1f}x |")  # fmt: skip
    print("\n| model | library | implementation | vmap_axes | seconds | max abs diff |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for library, rows, diff_key in (("jaxdl", r["jaxdl"], "max_abs_diff_vs_auto"),
                                        ("NT", r["neural_tangents"], "max_abs_diff_vs_jaxdl")):  # fmt: skip
            for row in rows:
                seconds = f"{row['seconds']:.4f}" if "seconds" in row else "fails: " + row["error"][:60]
                diff = f"{row[diff_key]:.1e}" if diff_key in row else "-"
                print(f"| {r['model']} | {library} | {row['implementation']} | {row['vmap_axes']} | "
                      f"{seconds} | {diff} |")  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description="Empirical NTK: jaxdl vs neural-tangents")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    results = []
    for name in args.models:
        print(f"{name}:", flush=True)
        results.append(run_model(name))
    print_table(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
