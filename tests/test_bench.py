"""``jaxdl bench``: every workload at a tiny size, FLOP counts against closed forms, data
parallelism over 8 virtual CPU devices, ``--compare`` ratios, bad input, the command line."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jaxdl import bench, stax
from jaxdl.bench.flops import has_while_loop, matmul_flops, step_flops, xla_cost
from jaxdl.cli import _parser, main
from jaxdl.experiments import report

REPO = Path(__file__).resolve().parents[1]
# heavier to compile (tens of seconds on a loaded 2-core machine): behind slow; mlp runs by default
# in test_command_runs_writes_json_and_chart_and_compares
HEAVY = {"resnet", "lru", "gpt", "nngp_ntk_cnn", "lenet5", "lstm", "mlp"}


def tiny_run(names, **options):
    options = {"tiny": True, "steps": 1, "rounds": 2, "warmup": 1, "gemm_n": 64, "show_progress": False,
               **options}
    return bench.run(names, **options)


def check_figures(w):
    assert w["compile_s"] > 0 and w["flops"] > 0 and w["items_per_step"] >= 1
    assert w["step_s_min"] <= w["step_s_median"] <= w["step_s_max"]
    assert w["throughput_per_s"] == pytest.approx(w["items_per_step"] / w["step_s_median"])
    assert w["flops_per_s"] == pytest.approx(w["flops"] / w["step_s_median"])
    assert 0 < w["mfu_gemm"] and math.isfinite(w["mfu_gemm"])
    assert w["peak_memory_bytes"] > 0 and w["xla_memory_bytes"] > 0


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in bench.WORKLOADS
])
def test_every_workload_runs_at_a_tiny_size(name):
    if not bench.WORKLOADS[name].available():
        pytest.skip(f"{name} needs jaxdl.models.{bench.WORKLOADS[name].requires}")
    record = tiny_run([name])
    check_figures(record["workloads"][name])
    assert record["device_count"] == 1 and record["vendor_peak_flops_per_s"] is None  # a CPU


def test_tiny_mlp_training_flops_equal_the_closed_form():
    """MLP 8-16-10, batch 8: forward 2B(8*16 + 16*10) matmul FLOPs, weight gradients the same,
    input gradients of the second layer only (the first needs none)."""
    prepared = bench.WORKLOADS["mlp"].build(8, jnp.float32, True)
    forward = 2 * 8 * (8 * 16 + 16 * 10)
    assert matmul_flops(prepared.step, prepared.state, prepared.data) == 2 * forward + 2 * 8 * 16 * 10
    half = bench.WORKLOADS["mlp"].build(8, jnp.bfloat16, True)  # --dtype bfloat16: params, Adam state, inputs
    floats = [leaf for leaf in jax.tree.leaves((half.state, half.data)) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    assert floats and all(leaf.dtype == jnp.bfloat16 for leaf in floats)


def test_dense_layer_flops_equal_the_closed_form():
    """x W + b: 2 B n m multiply-adds plus B m bias additions. stax.Dense (NTK parameterisation,
    y = (W_std / sqrt(n)) x W + b_std b) adds B m scalings of x W and m of b."""
    B, n, m = 4, 24, 7
    x, W, b = jnp.ones((B, n)), jnp.ones((n, m)), jnp.ones((m,))
    dense = lambda x, W, b: x @ W + b  # noqa: E731
    assert xla_cost(jax.jit(dense).lower(x, W, b).compile())["flops"] == 2 * B * n * m + B * m
    assert matmul_flops(dense, x, W, b) == 2 * B * n * m

    init_fn, apply_fn, _ = stax.Dense(m, b_std=0.1)
    _, params = init_fn(jax.random.key(0), (-1, n))
    compiled = jax.jit(apply_fn).lower(params, x).compile()
    assert xla_cost(compiled)["flops"] == 2 * B * n * m + 2 * B * m + m
    assert matmul_flops(apply_fn, params, x) == 2 * B * n * m


def test_attention_flops_equal_the_closed_form():
    """Scaled dot-product attention: Q K^T and A V are 2 B H T^2 D FLOPs each; XLA adds the softmax
    and the 1/sqrt(D) scaling, a few FLOPs per score. A multi-head block adds the Q, K, V and
    output projections, 2 B T d (H D) each."""
    B, T, H, D, d = 2, 8, 2, 4, 16
    q = jnp.ones((B, T, H, D))
    attention = lambda q, k, v: jax.nn.dot_product_attention(q, k, v)  # noqa: E731
    products = 4 * B * H * T * T * D
    assert matmul_flops(attention, q, q, q) == products
    extra = xla_cost(jax.jit(attention).lower(q, q, q).compile())["flops"] - products
    scores = B * H * T * T
    assert 2 * scores <= extra <= 8 * scores + 2 * B * T * H * D

    init_fn, apply_fn, _ = stax.MultiHeadAttention(H, D)
    _, params = init_fn(jax.random.key(0), (-1, T, d))
    x = jnp.ones((B, T, d))
    assert matmul_flops(apply_fn, params, x) == 4 * 2 * B * T * d * H * D + products


def test_loop_bodies_count_once_in_xla_and_trip_count_times_in_the_jaxpr():
    x, w = jnp.ones((4, 16)), jnp.ones((16, 16))

    def loop(x, w):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=5)[0]

    compiled = jax.jit(loop).lower(x, w).compile()
    one_body = 2 * 4 * 16 * 16
    assert has_while_loop(compiled)
    assert xla_cost(compiled)["flops"] < 2 * one_body  # the body once
    counted = step_flops(compiled, loop, x, w)
    assert counted["flops_matmul"] == 5 * one_body
    assert counted["flops"] == 5 * one_body and counted["flops_source"] == "jaxpr-matmul"


def test_vendor_peaks_of_known_device_kinds():
    assert bench.vendor_chip("NVIDIA H100 80GB HBM3") == "NVIDIA H100 SXM"
    assert bench.vendor_chip("NVIDIA H100 PCIe") == "NVIDIA H100 PCIe"
    assert bench.vendor_chip("NVIDIA A100-SXM4-80GB") == "NVIDIA A100"
    assert bench.vendor_chip("NVIDIA H200") == "NVIDIA H200"
    assert bench.vendor_chip("TPU v5 lite") == "TPU v5e"
    assert bench.vendor_chip("TPU v5p") == "TPU v5p"
    assert bench.vendor_chip("TPU v4") == "TPU v4"
    assert bench.vendor_chip("cpu") is None and bench.vendor_peak("cpu", "float32") is None
    assert bench.vendor_peak("NVIDIA A100-SXM4-40GB", "bfloat16") == 312e12
    # the sheets' sparse figures are twice the dense ones this table keeps
    assert bench.vendor_peak("NVIDIA H200", "bfloat16") == pytest.approx(1979e12 / 2, rel=1e-3)
    with pytest.raises(ValueError, match="^vendor_peak: "):
        bench.vendor_peak("TPU v4", "float16")


def test_measured_gemm_peak_is_a_rate_of_2n3_flops():
    peak = bench.measure_gemm_peak("float32", n=64, repeats=2)
    assert peak["flops_per_s"] == pytest.approx(2 * 64**3 / peak["seconds_per_gemm"])
    assert peak["flops_per_s"] > 1e6  # even a loaded CPU does a MFLOP/s


DATA_PARALLEL = textwrap.dedent("""
    import json, jax
    from jaxdl import bench
    out = {"devices": len(jax.local_devices())}
    record = bench.run(["mlp"], tiny=True, batch=16, steps=1, rounds=1, warmup=1, gemm_n=64,
                       data_parallel=True, show_progress=False)
    out["device_count"] = record["device_count"]
    out["gemm"] = [record["gemm_peak"]["flops_per_s"], record["gemm_peak"]["flops_per_s_all_devices"]]
    out["mfu_gemm"] = record["workloads"]["mlp"]["mfu_gemm"]
    try:
        bench.run(["mlp"], tiny=True, batch=12, data_parallel=True, show_progress=False)
    except ValueError as error:
        out["error"] = str(error)
    print(json.dumps(out))
""")


def test_data_parallel_over_8_virtual_cpu_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", DATA_PARALLEL], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8 and out["device_count"] == 8
    assert out["gemm"][1] == pytest.approx(8 * out["gemm"][0])  # the peak of 8 devices
    assert 0 < out["mfu_gemm"] < math.inf
    assert out["error"].startswith("bench: batch 12 of mlp is not divisible by the 8 devices")


def fake_record(throughputs, **setup):
    workloads = {name: {"throughput_per_s": t, "step_s_median": 1 / t, "flops_per_s": 2 * t, "mfu_gemm": t / 100}
                 for name, t in throughputs.items()}
    return {"device_kind": "cpu", "device_count": 1, "dtype": "float32", "tiny": False, **setup,
            "workloads": workloads}


def test_compare_gives_per_workload_ratios():
    new = fake_record({"mlp": 300.0, "lstm": 50.0, "gpt": 10.0})
    old = fake_record({"mlp": 100.0, "lstm": 100.0}, dtype="bfloat16")
    ratios = bench.compare(new, old)
    assert set(ratios) == {"mlp", "lstm"}  # gpt was not in the old record
    assert ratios["mlp"]["throughput_per_s"] == pytest.approx(3.0)
    assert ratios["mlp"]["step_s_median"] == pytest.approx(1 / 3)
    assert ratios["lstm"]["mfu_gemm"] == pytest.approx(0.5)
    table = bench.compare_table(ratios, new, old)
    assert "| mlp | 3x |" in table and "| lstm | 0.5x |" in table
    assert "dtype differs: float32 now, bfloat16 before" in table
    with pytest.raises(ValueError, match="^bench: "):
        bench.compare(new, {"no": "workloads"})


def test_bad_input_raises_clearly(tmp_path):
    with pytest.raises(ValueError, match="^bench: unknown workload 'alexnet'"):
        bench.run(["alexnet"])
    with pytest.raises(ValueError, match="^bench: expected dtype"):
        bench.run(["mlp"], dtype="float16")
    with pytest.raises(ValueError, match="^bench: expected steps to be a positive integer"):
        bench.run(["mlp"], steps=0)
    with pytest.raises(ValueError, match="^bench: expected one batch size or one per workload"):
        bench.run(["mlp", "lstm"], batch=[8, 8, 8])
    with pytest.raises(ValueError, match="^bench: expected batch to be a positive integer"):
        bench.run(["mlp"], batch=-4)
    bad = tmp_path / "old.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="^bench: .* is not a jaxdl bench record"):
        bench.load_record(bad)


def test_command_line_parsing():
    args = _parser().parse_args(["bench", "mlp", "gpt", "--dtype", "bfloat16", "--batch", "16", "32",
                                 "--steps", "3", "--data-parallel", "--compare", "old.json", "--out", "o"])
    assert args.command == "bench" and args.workloads == ["mlp", "gpt"] and args.dtype == "bfloat16"
    assert args.batch == [16, 32] and args.steps == 3 and args.data_parallel and args.compare == "old.json"
    defaults = _parser().parse_args(["bench"])
    assert defaults.workloads == [] and defaults.dtype == "float32" and not defaults.data_parallel
    with pytest.raises(SystemExit):
        _parser().parse_args(["bench", "--dtype", "float16"])


def test_command_runs_writes_json_and_chart_and_compares(tmp_path, capsys):
    assert main(["bench", "alexnet", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("jaxdl: bench: unknown workload 'alexnet'")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(fake_record({"mlp": 1.0})))
    code = main(["bench", "mlp", "--tiny", "--steps", "1", "--rounds", "2", "--warmup", "1", "--gemm-n", "64",
                 "--out", str(tmp_path), "--compare", str(old)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| mlp | 8 |" in printed and "MFU vs GEMM" in printed and "throughput new/old" in printed
    record = json.loads((tmp_path / "bench.json").read_text())
    assert record["workloads"]["mlp"]["batch"] == 8 and record["jax_version"] == jax.__version__
    check_figures(record["workloads"]["mlp"])
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert report.figure_problems(bench.mfu_figure(record), fast=True) == []


def test_api_reference_has_a_page_per_package():
    """Every package and top-level module of jaxdl has a page docs/api/NAME.md in mkdocs.yml's nav
    that renders it with mkdocstrings (mkdocs build --strict in CI then checks the pages build)."""
    names = {p.parent.name for p in (REPO / "jaxdl").glob("*/__init__.py")}
    names |= {p.stem for p in (REPO / "jaxdl").glob("*.py") if not p.stem.startswith("_") and p.stem != "cli"}
    nav = (REPO / "mkdocs.yml").read_text()
    for name in sorted(names):
        page = REPO / "docs" / "api" / f"{name}.md"
        assert page.is_file(), f"no API page for jaxdl.{name}"
        assert f"::: jaxdl.{name}\n" in page.read_text(), page
        assert f"api/{name}.md" in nav, f"mkdocs.yml's nav lacks api/{name}.md"


def test_api_pages_render_the_public_submodules_of_packages_without_all():
    """mkdocstrings renders a package's ``__all__``; without one, ``::: jaxdl.NAME`` shows only the
    package docstring, so the page must name each public submodule (experiment modules, documented
    by ``jaxdl list``, excepted)."""
    for init in sorted((REPO / "jaxdl").glob("*/__init__.py")):
        if "__all__" in init.read_text():
            continue
        package = init.parent.name
        page = (REPO / "docs" / "api" / f"{package}.md").read_text()
        for module in sorted(init.parent.glob("*.py")):
            is_experiment = package == "experiments" and "\nNAME = " in module.read_text()
            if module.stem.startswith("_") or is_experiment:
                continue
            assert f"::: jaxdl.{package}.{module.stem}\n" in page, f"docs/api/{package}.md does not render jaxdl.{package}.{module.stem}"
