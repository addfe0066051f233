"""Reference forward passes of neural-tangents' stax layers, for jaxdl's tests.

Run inside the pinned legacy environment (``bash benchmarks/legacy_env.sh``):

    benchmarks/.legacy-env/bin/python benchmarks/nt_forward_fixtures.py

For each architecture (an expression over ``stax`` that both libraries accept)
it stores the input, neural-tangents' parameters (flattened in tree order), the
graph ``pattern`` passed to ``apply_fn`` where the case has one (``Aggregate``),
the ``mask_constant`` of the masked-input cases (output: ``unmask_fn(apply_fn)``),
and its float64 output in ``tests/fixtures/nt/forward.npz``. The test converts the
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
    ("stax.GlobalSelfAttention(5, 4, 3, 2, b_std=0.1)", (3, 7, 2)),
    ("stax.GlobalSelfAttention(4, 3, 3, 2, W_key_std=1.3, W_value_std=0.8, W_out_std=1.2, attention_mechanism='RELU')",
     (2, 6, 5, 2)),
    ("stax.GlobalSelfAttention(4, 3, 3, 2, linear_scaling=False, W_query_std=0.7, attention_mechanism='ABS')", (2, 5, 3)),
    ("stax.GlobalSelfAttention(4, 3, 3, 1, pos_emb_type='SUM', W_pos_emb_std=0.5, attention_mechanism='IDENTITY')",
     (2, 5, 3)),
    ("stax.GlobalSelfAttention(4, 3, 3, 2, pos_emb_type='CONCAT', n_chan_pos_emb=2, val_pos_emb=True, "
     "pos_emb_decay_fn=lambda d: jnp.exp(-d / 2), pos_emb_p_norm=1)", (2, 4, 3, 2)),
    ("stax.GlobalSelfAttention(4, 3, 3, 2, channel_axis=1, batch_axis=2, b_std=0.2)", (3, 6, 2)),
    ("stax.serial(stax.Dense(6), stax.GlobalSelfAttention(5, 4, 3, 2), stax.Relu(), stax.GlobalAvgPool())", (2, 5, 3)),
    ("stax.Aggregate()", (3, 5, 2), "dense"),
    ("stax.Aggregate(aggregate_axis=(1, 2))", (2, 4, 3, 2), "dense"),
    ("stax.Aggregate(aggregate_axis=2, batch_axis=0, channel_axis=1)", (2, 3, 5, 4), "dense"),
    ("stax.Aggregate(to_dense=lambda p: p + jnp.swapaxes(p, 1, 2))", (3, 5, 2), "dense"),
    ("stax.Aggregate(implementation='SPARSE')", (3, 6, 2), "sparse"),
    ("stax.Aggregate(aggregate_axis=(1, 2), implementation='SPARSE')", (2, 4, 3, 2), "sparse"),
    ("stax.serial(stax.Dense(4), stax.Relu(), stax.Aggregate(), stax.Dense(3))", (3, 5, 2), "dense"),
    # Layers added for issue 22 (DotGeneral, Index, ImageResize).
    ("stax.DotGeneral(rhs=2.5)", (3, 6)),
    ("stax.DotGeneral(rhs=jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), dimension_numbers=(((1,), (0,)), ((), ())))",
     (2, 4, 5, 2)),
    ("stax.DotGeneral(lhs=jnp.linspace(0.0, 1.0, 10).reshape(2, 5), dimension_numbers=(((1,), (1,)), ((), ())))",
     (3, 5, 2)),
    ("stax.Index(idx=stax.Slice[::2, 1:5:2, 3])", (4, 6, 5, 2)),
    ("stax.Index(idx=stax.Slice[..., ::-1, :])", (2, 7, 3)),
    ("stax.ImageResize((-1, 9, 3, -1), 'linear')", (2, 6, 5, 2)),
    ("stax.ImageResize((-1, 4, -1), 'nearest')", (2, 7, 3)),
    ("stax.ImageResize((-1, 3, 8, -1), 'cubic', antialias=False)", (2, 6, 5, 2)),
] + [
    (f"stax.{activation}", (3, 6))
    for activation in [
        "Relu()", "LeakyRelu(0.1)", "Abs()", "ABRelu(-0.5, 2.0)", "Erf(2.0, 0.5, 0.1)", "Gelu()",
        "Gelu(approximate=True)", "Sigmoid_like()", "Sign()", "Sin(1.5, 2.0, 0.3)", "Cos(0.5, 1.0, 0.2)",
        "Rbf(0.5)", "Exp(0.5, 0.3)", "Gaussian(2.0, -0.5)", "Monomial(3)", "RectifiedMonomial(2)",
        "Polynomial([0.5, -1.0, 0.25])", "Hermite(4)",
    ]
]  # fmt: skip


# Masked inputs: (expression, shape, masked (example, position) pairs); the inputs
# there equal MASK_CONSTANT, the stored output is NT's unmask_fn(apply_fn) output.
MASK_CONSTANT = -1000.0
MASKED_ARCHITECTURES = [
    ("stax.serial(stax.Dense(6, b_std=0.3), stax.Relu(), stax.Dense(3))", (3, 6, 2), [(0, 5), (1, 0), (1, 1)]),
    ("stax.serial(stax.Conv(4, (3,), padding='SAME', b_std=0.1), stax.Erf(), stax.AvgPool((2,)), stax.GlobalAvgPool())",
     (3, 7, 2), [(0, 0), (0, 1), (0, 2), (2, 6)]),
    ("stax.serial(stax.Dense(6), stax.GlobalSelfAttention(5, 4, 3, 2, b_std=0.1), stax.Relu(), stax.GlobalSumPool())",
     (3, 6, 2), [(0, 4), (0, 5), (2, 1)]),
    ("stax.serial(stax.Dense(6), stax.GlobalSelfAttention(5, 4, 3, 2, attention_mechanism='RELU',"
     " pos_emb_type='SUM', n_chan_pos_emb=6))", (2, 5, 2), [(1, 3)]),
    ("stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(4), stax.serial(stax.Dense(4), stax.Sin())),"
     " stax.FanInSum(), stax.Flatten())", (3, 5, 2), [(0, 1), (2, 4)]),
]


def graph_pattern(kind: str, expression: str, shape: tuple, rng) -> np.ndarray:
    """A random graph for an ``Aggregate`` case: a weighted dense adjacency
    ``f[batch, V..., V...]`` or a ``SPARSE`` edge list ``i[batch, n_edges, K, 2]``
    whose negative coordinates exercise the padding rules."""
    aggregate_axes = (1, 2) if "(1, 2)" in expression else (2,) if "aggregate_axis=2" in expression else (1,)
    vertex_shape = tuple(shape[a] for a in aggregate_axes)
    if kind == "dense":
        return rng.binomial(1, 0.5, (shape[0],) + vertex_shape * 2) * rng.uniform(0.5, 1.5, (shape[0],) + vertex_shape * 2)
    n_edges = 3 * int(np.prod(vertex_shape))
    coords = [rng.integers(-1, size, (shape[0], n_edges, 1, 2)) for size in vertex_shape]
    return np.concatenate(coords, axis=2)


def main() -> None:
    rng = np.random.default_rng(0)
    out = {"count": np.array(len(ARCHITECTURES))}
    for i, (expression, shape, *pattern_kind) in enumerate(ARCHITECTURES):
        init_fn, apply_fn, _ = eval(expression, {"stax": stax, "jnp": jnp})
        x = rng.normal(size=shape)
        _, params = init_fn(jax.random.PRNGKey(i), shape)
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]
        kwargs = {}
        if pattern_kind:
            kwargs["pattern"] = out[f"{i}/pattern"] = graph_pattern(pattern_kind[0], expression, shape, rng)
        y = apply_fn(params, jnp.asarray(x), **kwargs)
        out[f"{i}/expression"] = np.array(expression)
        out[f"{i}/x"] = x
        out[f"{i}/y"] = np.asarray(y)
        out[f"{i}/num_leaves"] = np.array(len(leaves))
        for j, leaf in enumerate(leaves):
            out[f"{i}/leaf{j}"] = leaf
    for k, (expression, shape, masked) in enumerate(MASKED_ARCHITECTURES):
        i = len(ARCHITECTURES) + k
        init_fn, apply_fn, _ = eval(expression, {"stax": stax, "jnp": jnp})
        x = rng.normal(size=shape)
        for example, position in masked:
            x[example, position] = MASK_CONSTANT
        _, params = init_fn(jax.random.PRNGKey(i), shape)
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)]
        y = stax.unmask_fn(apply_fn)(params, jnp.asarray(x), mask_constant=MASK_CONSTANT)
        out[f"{i}/expression"] = np.array(expression)
        out[f"{i}/x"] = x
        out[f"{i}/y"] = np.asarray(y)
        out[f"{i}/mask_constant"] = np.array(MASK_CONSTANT)
        out[f"{i}/num_leaves"] = np.array(len(leaves))
        for j, leaf in enumerate(leaves):
            out[f"{i}/leaf{j}"] = leaf
    out["count"] = np.array(len(ARCHITECTURES) + len(MASKED_ARCHITECTURES))
    path = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nt" / "forward.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {int(out['count'])} cases to {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
