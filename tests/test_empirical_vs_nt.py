"""Empirical NNGP/NTK against the neural-tangents 0.6.5 oracle fixtures (float64).

Every case of tests/fixtures/nt/empirical.npz (five functions, all trace /
diagonal axis variants, all four NTK implementations, x2 given or None) must
match NT's arrays to a relative error of 1e-6. The default run checks every
8th case of each (family, implementation) group (each compiles its own
function); `-m slow` runs them all.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nt_fixtures
from jaxdl.kernels.empirical import empirical_kernel_fn, empirical_nngp_fn, empirical_ntk_fn

RTOL = 1e-6
ALL_CASES = nt_fixtures.load_cases("empirical")


def _default_run(cases, every=8):
    """Every `every`-th case of each (family, implementation) group."""
    seen = collections.Counter()
    chosen = []
    for case in cases:
        group = (case["family"], case["kwargs"].get("implementation"))
        chosen.append(seen[group] % every == 0)
        seen[group] += 1
    return chosen


CASES = [
    pytest.param(case, marks=() if default else pytest.mark.slow, id=cid)
    for case, cid, default in zip(ALL_CASES, nt_fixtures.case_ids(ALL_CASES), _default_run(ALL_CASES))
]


def _compute(case):
    f = nt_fixtures.build(case["expr"], jnp=jnp)
    params = jax.tree.map(jnp.asarray, case["params"])
    x1 = jnp.asarray(case["x1"])
    x2 = None if case["x2"] is None else jnp.asarray(case["x2"])
    kwargs = case["kwargs"]
    family = case["family"]
    if family == "empirical_ntk_fn":
        return {"ntk": empirical_ntk_fn(f, **kwargs)(x1, x2, params)}
    if family == "empirical_nngp_fn":
        return {"nngp": empirical_nngp_fn(f, **kwargs)(x1, x2, params)}
    result = empirical_kernel_fn(f, **kwargs)(x1, x2, case["call_kwargs"]["get"], params)
    return result._asdict()


def test_all_families_and_implementations_covered():
    families = {case["family"] for case in ALL_CASES}
    assert families == {"empirical_ntk_fn", "empirical_nngp_fn", "empirical_kernel_fn"}
    implementations = {case["kwargs"].get("implementation") for case in ALL_CASES}
    assert {0, 1, 2, 3} <= implementations


@pytest.mark.parametrize("case", CASES)
def test_matches_neural_tangents(case):
    with jax.enable_x64(True):
        ours = _compute(case)
        assert set(ours) == set(case["outputs"])
        for name, expected in case["outputs"].items():
            got = np.asarray(ours[name])
            assert got.dtype == np.float64
            assert got.shape == expected.shape, (name, got.shape, expected.shape)
            scale = max(1.0, float(np.max(np.abs(expected))))
            np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * scale, err_msg=name)
