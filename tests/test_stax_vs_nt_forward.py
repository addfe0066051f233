"""jaxdl.stax forward passes equal neural-tangents' on the same parameters.

Fixtures: ``tests/fixtures/nt/forward.npz`` written by
``benchmarks/nt_forward_fixtures.py`` in the pinned neural-tangents environment.
neural-tangents keeps parameters in positional tuples (``(W, b)`` per layer);
jaxdl names them (``{"Dense_0": {"W", "b"}}``); walking jaxdl's dicts in
position order visits the same leaves in the same order. ``Aggregate`` cases
also store the graph ``pattern`` given to ``apply_fn``.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import stax

FIXTURE = Path(__file__).parent / "fixtures" / "nt" / "forward.npz"
DATA = np.load(FIXTURE)
CASES = range(int(DATA["count"]))


# Within a layer, neural-tangents' tuple order: (W, b) for affine layers,
# (query, key, value, out, b, pos_emb) for GlobalSelfAttention.
_LEAF_ORDER = ["W_query", "W_key", "W_value", "W_out", "W", "b", "pos_emb"]


def _position(key: str):
    """"Dense_2" -> 2; within a layer, neural-tangents' order (W before b)."""
    suffix = key.rsplit("_", 1)[-1]
    return (0, int(suffix)) if suffix.isdigit() else (1, _LEAF_ORDER.index(key))


def _fill(params, leaves):
    if isinstance(params, dict):
        return {k: _fill(params[k], leaves) for k in sorted(params, key=_position)}
    return jnp.asarray(next(leaves)).reshape(params.shape)


@pytest.mark.parametrize("case", CASES, ids=[str(DATA[f"{i}/expression"]) for i in CASES])
def test_forward_pass_equals_neural_tangents(case):
    expression = str(DATA[f"{case}/expression"])
    x = DATA[f"{case}/x"]
    leaves = [DATA[f"{case}/leaf{j}"] for j in range(int(DATA[f"{case}/num_leaves"]))]
    with jax.enable_x64(True):
        layer = eval(expression, {"stax": stax, "jnp": jnp})
        _, template = layer.init(jax.random.key(0), x.shape)
        assert len(jax.tree.leaves(template)) == len(leaves)
        params = _fill(template, iter(leaves))
        kwargs = {"pattern": jnp.asarray(DATA[f"{case}/pattern"])} if f"{case}/pattern" in DATA else {}
        apply_fn = layer.apply
        if f"{case}/mask_constant" in DATA:  # masked inputs: compare unmask_fn(apply_fn) outputs
            kwargs["mask_constant"] = float(DATA[f"{case}/mask_constant"])
            apply_fn = stax.unmask_fn(apply_fn)
        np.testing.assert_allclose(
            apply_fn(params, jnp.asarray(x), **kwargs), DATA[f"{case}/y"], rtol=1e-10, atol=1e-12
        )
