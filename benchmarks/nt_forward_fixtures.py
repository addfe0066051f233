"""Reference forward passes of neural-tangents' stax layers, for jaxdl's tests.

Run inside the pinned legacy environment (``bash benchmarks/legacy_env.sh``):

    benchmarks/.legacy-env/bin/python benchmarks/nt_forward_fixtures.py

For each architecture (an expression over ``stax`` that both libraries accept)
it stores the input, neural-tangents' parameters (flattened in tree order) and
its float64 output in ``tests/fixtures/nt/forward.npz``. The test converts the
parameters to jaxdl's named-dict layout and compares the outputs.
"""

from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from neural_tangents import stax  # noqa: E402

ARCHITECTURES = [
    ("stax.Dense(5, W_std=1.5, b_std=0.2)", (3, 6)),
    ("stax.Dense(5, 1.5, 0.2, parameterization='standard', s=(2, 3))", (3, 6)),
    ("stax.Dense(4, channel_axis=1, b_std=0.3)", (3, 3, 5)),
    ("stax.Conv(4, (3,), padding='SAME', b_std=0.1)", (2, 7, 2)),
    ("stax.Conv(4, (3, 2), strides=(2, 1), b_std=0.1, parameterization='standard')", (2, 6, 5, 2)),
    ("stax.Conv(3, (3, 3), padding='CIRCULAR', W_std=2.0)", (2, 6, 5, 2)),
    ("stax.Conv(3, (2, 2), dimension_numbers=('NCHW', 'OIHW', 'NCHW'), b_std=0.5)", (2, 2, 6, 5)),
    ("stax.Conv(2, (2, 2, 2), padding='SAME')", (2, 4, 4, 3, 2)),
    ("stax.ConvTranspose(3, (3, 2), strides=(2, 1), b_std=0.1)", (2, 6, 5, 2)),
    ("stax.ConvTranspose(3, (3, 3), strides=(2, 2), padding='SAME')", (2, 4, 5, 2)),
    ("stax.ConvTranspose(3, (3, 3), strides=(2, 2), padding='CIRCULAR')", (2, 4, 3, 2)),
    ("stax.ConvTranspose(2, (4,), strides=(3,), padding='CIRCULAR', b_std=0.2)", (2, 5, 2)),
    ("stax.ConvLocal(3, (2, 2), padding='SAME', b_std=0.1)", (2, 6, 5, 2)),
    ("stax.ConvLocal(3, (3,), strides=(2,), parameterization='standard', b_std=0.4)", (2, 9, 2)),
    ("stax.AvgPool((2, 2))", (2, 6, 5, 2)),
    ("stax.AvgPool((3, 2), (2, 2), 'SAME', normalize_edges=True)", (2, 6, 5, 2)),
    ("stax.AvgPool((3, 2), (2, 2), 'SAME', normalize_edges=False)", (2, 6, 5, 2)),
    ("stax.AvgPool((3, 3), padding='CIRCULAR')", (2, 6, 5, 2)),
    ("stax.SumPool((2,), strides=(2,), padding='SAME')", (2, 7, 2)),
    ("stax.GlobalAvgPool()", (2, 6, 5, 2)),
    ("stax.GlobalSumPool()", (2, 7, 2)),
    ("stax.Flatten()", (2, 6, 5, 2)),
    ("stax.LayerNorm()", (3, 6)),
    ("stax.LayerNorm(axis=(1, 2, 3))", (2, 6, 5, 2)),
    ("stax.serial(stax.Dense(8, b_std=0.1), stax.Relu(), stax.Dense(3))", (3, 6)),
    ("stax.serial(stax.Conv(4, (3, 3), padding='SAME'), stax.Erf(), stax.AvgPool((2, 2)), stax.Flatten(), stax.Dense(2))", (2, 6, 6, 2)),
    ("stax.repeat(stax.serial(stax.Dense(6, b_std=0.1), stax.Gelu()), 3)", (3, 6)),
    ("stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Dense(6), stax.Relu()), stax.Identity()), stax.FanInSum())", (3, 6)),
    ("stax.serial(stax.FanOut(3), stax.parallel(stax.Dense(4), stax.Dense(2), stax.Sin()), stax.FanInConcat())", (3, 6)),
    ("stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(4), stax.Dense(4)), stax.FanInProd())", (3, 6)),
] + [
    (f"stax.{activation}", (3, 6))
    for activation in [
        "Relu()", "LeakyRelu(0.1)", "Abs()", "ABRelu(-0.5, 2.0)", "Erf(2.0, 0.5, 0.1)", "Gelu()",
        "Gelu(approximate=True)", "Sigmoid_like()", "Sign()", "Sin(1.5, 2.0, 0.3)", "Cos(0.5, 1.0, 0.2)",
        "Rbf(0.5)", "Exp(0.5, 0.3)", "Gaussian(2.0, -0.5)", "Monomial(3)", "RectifiedMonomial(2)",
        "Polynomial([0.5, -1.0, 0.25])", "Hermite(4)",
    ]
]  # fmt: skip


def main() -> None:
    rng = np.random.default_rng(0)
    out = {"count": np.array(len(ARCHITECTURES))}
    for i, (expression, shape) in enumerate(ARCHITECTURES):
        init_fn, apply_fn, _ = eval(expression, {"stax": stax, "jnp": jnp})
        x = rng.normal(size=shape)
        _, params = init_fn(jax.random.PRNGKey(i), shape)
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]
        y = apply_fn(params, jnp.asarray(x))
        out[f"{i}/expression"] = np.array(expression)
        out[f"{i}/x"] = x
        out[f"{i}/y"] = np.asarray(y)
        out[f"{i}/num_leaves"] = np.array(len(leaves))
        for j, leaf in enumerate(leaves):
            out[f"{i}/leaf{j}"] = leaf
    path = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nt" / "forward.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {len(ARCHITECTURES)} cases to {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
