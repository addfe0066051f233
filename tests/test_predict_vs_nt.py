"""jaxdl.predict against the neural-tangents 0.6.5 oracle fixtures (float64).

Every case of tests/fixtures/nt/predict.npz (gradient_descent_mse,
gradient_descent_mse_ensemble with jaxdl's analytic kernel_fn,
gp_inference, gradient_descent with a cross-entropy loss, max_learning_rate)
must match NT to 1e-6 relative to max(1, |NT|). The default run checks every
8th case (every family is covered); `-m slow` runs all.
"""

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nt_fixtures
from jaxdl import predict, stax

TOL = 1e-6
Kernels = namedtuple("Kernels", "nngp ntk")
ALL_CASES = nt_fixtures.load_cases("predict")
CASES = [
    pytest.param(case, marks=() if i % 8 == 0 else pytest.mark.slow, id=cid)
    for i, (case, cid) in enumerate(zip(ALL_CASES, nt_fixtures.case_ids(ALL_CASES)))
]


def _check(got, expected, what):
    got = np.asarray(got)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    assert np.all(np.isfinite(got)), what
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL * scale, err_msg=what)


def _check_gaussians(result, outputs, get, with_cov):
    for g in (get,) if isinstance(get, str) else get:
        value = result if isinstance(get, str) else getattr(result, g)
        if with_cov:
            _check(value.mean, outputs[g]["mean"], f"{g} mean")
            _check(value.covariance, outputs[g]["covariance"], f"{g} covariance")
        else:
            _check(value, outputs[g]["mean"], f"{g} mean")


def _run(case):
    kwargs = dict(case["kwargs"])
    inputs = {k: jnp.asarray(v) for k, v in case["inputs"].items()}
    outputs = case["outputs"]
    family = case["family"]
    if family in ("gradient_descent_mse", "gradient_descent"):
        if family == "gradient_descent":
            loss = eval(kwargs.pop("loss"), {"jnp": jnp, "jax": jax})  # noqa: S307 - fixture text
            predict_fn = predict.gradient_descent(loss, inputs["k_train_train"], inputs["y_train"], **kwargs)
        else:
            predict_fn = predict.gradient_descent_mse(inputs["k_train_train"], inputs["y_train"], **kwargs)
        t = inputs.get("t")
        if "fx_test_t" in outputs:
            fx_train, fx_test = predict_fn(t, inputs["fx_train_0"], inputs["fx_test_0"], inputs["k_test_train"])
            _check(fx_test, outputs["fx_test_t"], "fx_test_t")
        else:
            fx_train = predict_fn(t, inputs["fx_train_0"])
        _check(fx_train, outputs["fx_train_t"], "fx_train_t")
    elif family == "gradient_descent_mse_ensemble":
        model = nt_fixtures.build(kwargs.pop("model"), stax=stax, jnp=jnp, np=np)
        get, with_cov, on_test = kwargs.pop("get"), kwargs.pop("compute_cov"), kwargs.pop("on_test")
        predict_fn = predict.gradient_descent_mse_ensemble(model[2], inputs["x_train"], inputs["y_train"],
                                                           **kwargs)  # fmt: skip
        result = predict_fn(inputs.get("t"), inputs["x_test"] if on_test else None, get, with_cov)
        _check_gaussians(result, outputs, get, with_cov)
    elif family == "gp_inference":
        get, with_cov = kwargs.pop("get"), kwargs.pop("with_cov")
        predict_fn = predict.gp_inference(Kernels(inputs["nngp_train_train"], inputs["ntk_train_train"]),
                                          inputs["y_train"], **kwargs)  # fmt: skip
        test_test = Kernels(inputs["nngp_test_test"], inputs["ntk_test_test"]) if with_cov else None
        result = predict_fn(get, Kernels(inputs["nngp_test_train"], inputs["ntk_test_train"]), test_test)
        _check_gaussians(result, outputs, get, with_cov)
    elif family == "max_learning_rate":
        _check(predict.max_learning_rate(inputs["ntk_train_train"], **kwargs),
               outputs["max_learning_rate"], "max_learning_rate")  # fmt: skip
    else:
        raise AssertionError(f"unknown family {family}")


def test_every_family_present():
    families = {case["family"] for case in ALL_CASES}
    assert families == {"gradient_descent_mse", "gradient_descent_mse_ensemble", "gp_inference",
                        "gradient_descent", "max_learning_rate"}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_matches_neural_tangents(case):
    assert case["error"] is None
    with jax.enable_x64(True):
        _run(case)
