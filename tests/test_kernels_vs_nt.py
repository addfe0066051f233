"""jaxdl's analytic kernels against the neural-tangents 0.6.5 oracle fixtures.

Every case of tests/fixtures/nt/analytic_kernels.npz is an expression evaluated
against ``jaxdl.stax``; its ``kernel_fn`` must reproduce NT's arrays in float64
to a relative error of 1e-6 (max |ours - NT| / max |NT|), NT's kernel metadata,
and NT's exception type where NT raised.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nt_fixtures
from jaxdl import stax

RTOL = 1e-6
_META_FIELDS = ("is_gaussian", "is_reversed", "is_input", "diagonal_batch", "diagonal_spatial",
                "shape1", "shape2", "batch_axis", "channel_axis")  # fmt: skip


def _stax_namespace():
    names = {name: getattr(stax, name) for name in dir(stax) if not name.startswith("_")}
    return type("StaxNamespace", (), names)


STAX = _stax_namespace()
# Cases where NT 0.6.5 is wrong and jaxdl deliberately differs, each pinned by its own test.
_IMAGE_RESIZE_BUG = ("NT resizes its reversed (after one convolution) covariance axes to the natural-order target "
                     "sizes; see test_stax_nt_api.py::test_image_resize_after_one_convolution_differs_from_"
                     "neural_tangents_only_by_its_axis_mixup")
NT_BUGS = {("extras", "image_resize"): _IMAGE_RESIZE_BUG, ("extras", "image_resize nearest"): _IMAGE_RESIZE_BUG}
ALL_CASES = nt_fixtures.load_cases("analytic_kernels")
# The default run checks every 5th case and every family (each case compiles its
# own network, ~0.5 s); `-m slow` runs them all.
CASES = [
    pytest.param(case, marks=() if i % 5 == 0 else pytest.mark.slow, id=cid)
    for i, (case, cid) in enumerate(zip(ALL_CASES, nt_fixtures.case_ids(ALL_CASES)))
]


def _build(case):
    try:
        return nt_fixtures.build(case["expr"], stax=STAX, jnp=jnp, np=np, jax=jax)
    except AttributeError as error:  # a layer jaxdl.stax does not provide (yet)
        pytest.skip(f"not in jaxdl.stax: {error}")


def _call(case):
    layer = _build(case)
    kwargs = dict(case["kwargs"])
    get = kwargs.pop("get", None)
    if "pattern" in kwargs:
        kwargs["pattern"] = tuple(None if p is None else jnp.asarray(p) for p in kwargs["pattern"])
    x1 = jnp.asarray(case["x1"])
    x2 = None if case["x2"] is None else jnp.asarray(case["x2"])
    return layer[2](x1, x2, get, **kwargs)


def _field(out, path: list[str]):
    for key in path:
        if isinstance(out, (list, tuple)) and key.isdigit():
            out = out[int(key)]
        elif hasattr(out, key):
            out = getattr(out, key)
        else:
            raise KeyError(f"output has no field {key!r}")
    return out


def _flatten(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, prefix + (key,))
        else:
            yield list(prefix + (key,)), value


@pytest.mark.parametrize("case", CASES)
def test_matches_neural_tangents(case):
    if (case["family"], case["name"]) in NT_BUGS:
        pytest.skip(NT_BUGS[case["family"], case["name"]])
    with jax.enable_x64(True):
        if case["error"] is not None:
            expected = {"ValueError": ValueError, "NotImplementedError": NotImplementedError,
                        "TypeError": TypeError}.get(case["error"]["type"])  # fmt: skip
            if expected is None:  # NT crashed (e.g. IndexError): jaxdl must return finite kernels
                out = _call(case)
                for leaf in jax.tree.leaves(out):
                    assert np.all(np.isfinite(np.asarray(leaf)))
                return
            with pytest.raises(expected):
                _call(case)
            return
        out = _call(case)
        skipped = set(case["nt_nonfinite"] or ())
        for path, ref in _flatten(case["outputs"]):
            name = "/".join(path)
            got = out if isinstance(out, jax.Array) else _field(out, path)
            got = np.asarray(got)
            assert got.shape == ref.shape, f"{name}: shape {got.shape} != NT {ref.shape}"
            if name in skipped:
                assert np.all(np.isfinite(got)), f"{name}: NT is non-finite here, jaxdl must stay finite"
                continue
            scale = max(float(np.max(np.abs(ref))), 1e-300) if ref.size else 1.0
            err = float(np.max(np.abs(got - ref))) / scale if ref.size else 0.0
            assert err <= RTOL, f"{name}: max relative error {err:.3e} > {RTOL}"
        meta = case["kernel_meta"]
        if meta:
            for field in _META_FIELDS:
                if field in meta:
                    got = getattr(out, field)
                    want = meta[field]
                    got = tuple(got) if isinstance(got, (tuple, list)) else got
                    want = tuple(want) if isinstance(want, (tuple, list)) else want
                    assert got == want, f"{field}: {got} != NT {want}"
            if "x1_is_x2" in meta:
                assert bool(out.x1_is_x2) == bool(meta["x1_is_x2"])
