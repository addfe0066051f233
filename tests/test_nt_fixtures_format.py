"""The neural-tangents oracle fixtures load and follow tests/fixtures/nt/README.md.

Checks the schema only (the values are NT's); the numerical comparisons with
jaxdl live in the kernel and predict tests.
"""

import numpy as np
import pytest

import nt_fixtures

EXPECTED_FAMILIES = {
    "analytic_kernels": {"elementwise", "dense", "depth", "kwargs", "conv", "pooling", "dropout", "layernorm",
                         "attention", "aggregate", "combinators", "extras"},
    "empirical": {"empirical_ntk_fn", "empirical_nngp_fn", "empirical_kernel_fn"},
    "predict": {"gradient_descent_mse", "gradient_descent_mse_ensemble", "gp_inference", "gradient_descent",
                "max_learning_rate"},
}
KERNEL_OUTPUTS = {"nngp", "ntk", "cov1", "cov2"}


def _leaves(tree):
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        else:
            yield value


@pytest.mark.parametrize("name", nt_fixtures.FIXTURE_NAMES)
def test_index_metadata(name):
    index = nt_fixtures.load_index(name)
    assert index["neural_tangents"] == "0.6.5"
    assert index["jax"] == "0.4.30"
    assert index["dtype"] == "float64"
    ids = [record["id"] for record in index["cases"]]
    assert len(ids) == len(set(ids)) > 0


@pytest.mark.parametrize("name", nt_fixtures.FIXTURE_NAMES)
def test_cases_have_the_documented_schema(name):
    cases = nt_fixtures.load_cases(name)
    assert {case["family"] for case in cases} == EXPECTED_FAMILIES[name]
    for case in cases:
        assert isinstance(case["name"], str) and case["name"]
        assert isinstance(case["kwargs"], dict)
        if case["error"] is not None:
            assert set(case["error"]) == {"type", "message"}
            assert case["outputs"] == {}
            continue
        assert case["outputs"], case["id"]
        for array in _leaves({**case["outputs"], **case["inputs"], **case["params"]}):
            assert isinstance(array, np.ndarray)
            assert array.dtype == np.float64 or np.issubdtype(array.dtype, np.integer)
        assert set(case["nt_nonfinite"]) <= set(case["outputs"])
        for output_name, output in case["outputs"].items():
            leaves = list(_leaves(output)) if isinstance(output, dict) else [output]
            if output_name not in case["nt_nonfinite"]:
                assert all(np.isfinite(leaf).all() for leaf in leaves), (case["id"], output_name)


def test_analytic_cases_carry_expression_inputs_and_kernels():
    cases = nt_fixtures.load_cases("analytic_kernels")
    assert 150 <= len(cases)
    assert sum(case["error"] is not None for case in cases) >= 10
    for case in cases:
        assert case["expr"].startswith("stax.")
        assert case["x1"].dtype == np.float64
        assert case["x2"] is None or case["x2"].shape[1:] == case["x1"].shape[1:]
        get = case["kwargs"]["get"]
        if case["error"] is not None:
            continue
        if get is None:
            assert {"nngp", "ntk", "cov1"} <= set(case["outputs"]) <= KERNEL_OUTPUTS
            assert case["kernel_meta"]["diagonal_batch"] in (True, False)
        else:
            assert set(case["outputs"]) == ({get} if isinstance(get, str) else set(get))


def test_analytic_kernel_shapes_follow_the_batch_sizes():
    for case in nt_fixtures.load_cases("analytic_kernels", family="dense"):
        if case["error"] is None:
            n1 = case["x1"].shape[0]
            n2 = n1 if case["x2"] is None else case["x2"].shape[0]
            assert case["outputs"]["nngp"].shape == (n1, n2)


def test_aggregate_patterns_decode_to_arrays():
    cases = nt_fixtures.load_cases("analytic_kernels", family="aggregate")
    patterns = [case["kwargs"]["pattern"] for case in cases if "pattern" in case["kwargs"]]
    assert any(isinstance(p[0], np.ndarray) and np.issubdtype(p[0].dtype, np.integer) for p in patterns)
    assert any(isinstance(p[0], np.ndarray) and p[0].dtype == np.float64 for p in patterns)
    assert any(p[0] is None and p[1] is None for p in patterns)


def test_empirical_cases_cover_every_implementation_and_rebuild_params():
    cases = nt_fixtures.load_cases("empirical", family="empirical_ntk_fn")
    assert {case["kwargs"]["implementation"] for case in cases} == {0, 1, 2, 3}
    for case in cases:
        params = case["params"]
        fn = nt_fixtures.build(case["expr"], jnp=np)
        out = fn(params, case["x1"])  # the expressions only use numpy-compatible jnp calls
        assert out.shape[0] == case["x1"].shape[0]


def test_predict_inputs_are_complete():
    for case in nt_fixtures.load_cases("predict", family="gradient_descent_mse"):
        assert {"k_train_train", "y_train", "fx_train_0"} <= set(case["inputs"])
        assert "trace_axes" in case["kwargs"]
    for case in nt_fixtures.load_cases("predict", family="gp_inference"):
        get = case["kwargs"]["get"]
        expected = {get} if isinstance(get, str) else set(get)
        assert set(case["outputs"]) == expected
