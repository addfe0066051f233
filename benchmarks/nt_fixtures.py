"""Generate the neural-tangents (NT) oracle fixtures in tests/fixtures/nt/.

Run with the pinned legacy environment (NT 0.6.5 does not import on current JAX):

    bash benchmarks/legacy_env.sh
    benchmarks/.legacy-env/bin/python benchmarks/nt_fixtures.py [--only analytic empirical predict]

Every case is computed by NT in float64 and written as plain numpy arrays (no
pickles) to:

    analytic_kernels.npz  infinite-width NNGP/NTK of stax models, given as
                          expression strings over {stax, jnp, np}
    empirical.npz         empirical NTK/NNGP of plain functions f(params, x),
                          given as expression strings over {jnp}
    predict.npz           nt.predict.* on small synthetic kernels and data

The layout of a file is described in tests/fixtures/nt/README.md; the tests read
it through tests/nt_fixtures.py.  Cases on which NT raises are kept, with the
exception's type and message, so that jaxdl can check that it raises as well.
"""

import argparse
import json
import pathlib
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

FIXTURE_DIR = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nt"
SEED = 20240611
MAX_MESSAGE = 300


# ----------------------------------------------------------------------------
# Serialisation: one JSON index for everything small, arrays as npz entries.
# ----------------------------------------------------------------------------


class CaseWriter:
    """Collects the cases of one npz file.

    Everything but arrays goes into one JSON index (`__index__`): per case its
    name, family, expression, keyword arguments, NT's error, and a map from
    array field (e.g. "x1", "out/nngp") to the npz entry holding it.  Arrays are
    stored once per distinct content, so inputs shared by many cases cost
    nothing extra.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.cases: dict[str, dict] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self._by_content: dict[tuple, str] = {}

    @property
    def case_ids(self) -> list[str]:
        return list(self.cases)

    def new_case(self, name: str, family: str, expr: str | None = None) -> str:
        case_id = f"c{len(self.cases):04d}"
        self.cases[case_id] = {"id": case_id, "name": name, "family": family, "expr": expr, "arrays": {}}
        return case_id

    def put_json(self, case_id: str, field: str, value) -> None:
        """Stores a JSON-able value; arrays inside become `{"__array__": entry}` references."""
        self.cases[case_id][field] = self._encode(value)

    def put_array(self, case_id: str, field: str, value) -> None:
        self.cases[case_id]["arrays"][field] = self._store(value)

    def put_error(self, case_id: str, error: Exception) -> None:
        self.cases[case_id]["error"] = {"type": type(error).__name__, "message": str(error)[:MAX_MESSAGE]}

    def _store(self, value) -> str:
        array = _to_numpy(value)
        assert array.dtype != object
        content = (array.dtype.str, array.shape, array.tobytes())
        if content not in self._by_content:
            key = f"a{len(self.arrays):05d}"
            self.arrays[key] = array
            self._by_content[content] = key
        return self._by_content[content]

    def _encode(self, value):
        if isinstance(value, (np.ndarray, jax.Array)):
            return {"__array__": self._store(value)}
        if isinstance(value, dict):
            return {str(k): self._encode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._encode(v) for v in value]
        if isinstance(value, (np.floating, np.integer, np.bool_)):
            return value.item()
        return value

    def save(self, path: pathlib.Path) -> None:
        index = {
            "kind": self.kind,
            "neural_tangents": nt.__version__,
            "jax": jax.__version__,
            "numpy": np.__version__,
            "dtype": "float64",
            "seed": SEED,
            "generator": "benchmarks/nt_fixtures.py",
            "cases": list(self.cases.values()),
        }
        np.savez_compressed(path, __index__=np.array(json.dumps(index)), **self.arrays)
        print(f"wrote {path} ({len(self.cases)} cases, {len(self.arrays)} arrays,"
              f" {path.stat().st_size / 1024:.0f} KiB)")


def _to_numpy(value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.float32:
        array = array.astype(np.float64)
    return array


def _errors_are_expected(error: Exception) -> bool:
    """NT signals an unsupported combination with these exception types."""
    return isinstance(error, (NotImplementedError, ValueError, TypeError))


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------


INPUT_SHAPES = {
    "dense": ((4, 6), (3, 6)),
    "sphere": ((4, 6), (3, 6)),
    "seq": ((3, 6, 2), (2, 6, 2)),
    "img": ((3, 5, 4, 2), (2, 5, 4, 2)),
    "img_nchw": ((3, 2, 5, 4), (2, 2, 5, 4)),
    "graph": ((3, 5, 2), (2, 5, 2)),
    # Masked inputs: entries equal to MASK_CONSTANT at MASKED_POSITIONS (example, position).
    "seq_masked": ((3, 6, 2), (2, 6, 2)),
    "graph_masked": ((3, 5, 2), (2, 5, 2)),
}
MASK_CONSTANT = -1000.0
MASKED_POSITIONS = {
    "seq_masked": ([(0, 4), (0, 5), (2, 0)], [(1, 2)]),
    "graph_masked": ([(1, 3)], [(0, 0), (0, 4)]),
}


def make_inputs(kind: str):
    """Returns the fixed `(x1, x2)` float64 inputs of a given kind (channels last but `img_nchw`)."""
    rng = np.random.default_rng((SEED, list(INPUT_SHAPES).index(kind)))
    shape1, shape2 = INPUT_SHAPES[kind]
    x1, x2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    if kind == "sphere":  # rows with ||x||^2 = d, so a Dense layer gives unit variance
        x1, x2 = (x * np.sqrt(x.shape[-1]) / np.linalg.norm(x, axis=-1, keepdims=True)
                  for x in (x1, x2))
    for x, positions in zip((x1, x2), MASKED_POSITIONS.get(kind, ((), ()))):
        for example, position in positions:
            x[example, position] = MASK_CONSTANT
    return x1, x2


# ----------------------------------------------------------------------------
# Analytic kernels
# ----------------------------------------------------------------------------

ELEMENTWISE = [
    "stax.Relu()",
    "stax.Relu(do_stabilize=True)",
    "stax.LeakyRelu(0.1)",
    "stax.LeakyRelu(-0.4, do_stabilize=True)",
    "stax.Abs()",
    "stax.ABRelu(-0.5, 1.5)",
    "stax.ABRelu(0.2, 0.7)",
    "stax.Erf()",
    "stax.Erf(a=2.0, b=0.5, c=0.3)",
    "stax.Sigmoid_like()",
    "stax.Gelu()",
    "stax.Gelu(approximate=True)",
    "stax.Sign()",
    "stax.Sin()",
    "stax.Sin(a=0.5, b=2.0, c=0.3)",
    "stax.Cos()",
    "stax.Cos(a=1.5, b=0.7, c=0.2)",
    "stax.Rbf()",
    "stax.Rbf(gamma=0.3)",
    "stax.Exp()",
    "stax.Exp(a=0.5, b=0.3)",
    "stax.Gaussian()",
    "stax.Gaussian(a=0.7, b=-0.4)",
    "stax.ExpNormalized()",
    "stax.ExpNormalized(gamma=0.5, shift=-0.5, do_clip=True)",
    "stax.Gabor()",
    "stax.Monomial(0)",
    "stax.Monomial(1)",
    "stax.Monomial(2)",
    "stax.Monomial(3)",
    "stax.Monomial(4)",
    "stax.RectifiedMonomial(0)",
    "stax.RectifiedMonomial(1)",
    "stax.RectifiedMonomial(2)",
    "stax.RectifiedMonomial(3)",
    "stax.Polynomial([1.0])",
    "stax.Polynomial([0.5, -1.0, 0.3])",
    "stax.Polynomial([0.0, 0.0, 0.0, 1.0])",
    "stax.Polynomial([-0.2, 0.4, 0.0, -0.1, 0.05])",
    "stax.Elementwise(fn=jnp.sin, nngp_fn=lambda cov12, var1, var2:"
    " jnp.exp(-(var1 + var2) / 2) * jnp.sinh(cov12))",
    "stax.Elementwise(fn=jnp.cos, nngp_fn=lambda cov12, var1, var2:"
    " jnp.exp(-(var1 + var2) / 2) * jnp.cosh(cov12),"
    " d_nngp_fn=lambda cov12, var1, var2: jnp.exp(-(var1 + var2) / 2) * jnp.sinh(cov12))",
    "stax.Elementwise(fn=lambda x: x ** 2, nngp_fn=lambda cov12, var1, var2:"
    " var1 * var2 + 2 * cov12 ** 2)",
    "stax.Elementwise(fn=jnp.tanh)",
    "stax.ElementwiseNumerical(fn=jnp.tanh, deg=25)",
    "stax.ElementwiseNumerical(fn=jnp.tanh, deg=25, df=lambda x: 1 - jnp.tanh(x) ** 2)",
    "stax.ElementwiseNumerical(fn=lambda x: jnp.maximum(x, 0.0), deg=40)",
    "stax.ElementwiseNumerical(fn=jnp.sin, deg=10)",
]

HERMITE = [f"stax.Hermite({degree})" for degree in range(0, 5)]

DENSE_LAYERS = [
    "stax.Dense(16)",
    "stax.Dense(16, W_std=1.5, b_std=0.1)",
    "stax.Dense(16, W_std=0.7, b_std=0.0)",
    "stax.Dense(16, W_std=2.0, b_std=1.3)",
    "stax.Dense(16, W_std=1.5, b_std=0.1, parameterization='standard')",
    "stax.Dense(16, W_std=1.5, b_std=None, parameterization='standard')",
    "stax.Dense(16, W_std=1.5, b_std=0.1, parameterization='ntk', s=(2, 3))",
    "stax.Dense(16, W_std=1.5, b_std=0.1, parameterization='standard', s=(2, 3))",
    "stax.Dense(16, W_std=1.1, b_std=0.4, parameterization='standard', s=(1, 4))",
    "stax.Dense(16, W_std=1.5, b_std=0.1, parameterization='bogus')",
]


def analytic_cases():
    """Yields `(family, name, expr, input_kind, use_x2, kwargs)` tuples."""
    both = {"get": ("nngp", "ntk")}
    full = {"get": None}

    # Elementwise nonlinearities between two Dense layers, with x2 and without.
    for layer in ELEMENTWISE:
        expr = f"stax.serial(stax.Dense(8, W_std=1.5, b_std=0.1), {layer}, stax.Dense(1, W_std=1.2, b_std=0.05))"
        yield "elementwise", layer, expr, "dense", True, both
        yield "elementwise", layer + " x1 only", expr, "dense", False, full
    # The same nonlinearities on raw inputs (the first layer), on a few of them.
    for layer in ["stax.Relu()", "stax.Erf()", "stax.Sin()", "stax.Gelu()", "stax.Abs()"]:
        yield "elementwise", layer + " on inputs", layer, "dense", True, full
    # Two nonlinearities deep, and in convolutional networks (spatial axes).
    for layer in ["stax.Relu()", "stax.Erf(a=1.0, b=0.8, c=0.1)", "stax.Gelu()", "stax.Sign()",
                  "stax.ABRelu(-0.3, 1.0)", "stax.Rbf(gamma=0.5)", "stax.Monomial(2)",
                  "stax.ElementwiseNumerical(fn=jnp.tanh, deg=25)"]:
        deep = (f"stax.serial(stax.Dense(8, W_std=1.3, b_std=0.2), {layer}, stax.Dense(8, W_std=1.3, b_std=0.2),"
                f" {layer}, stax.Dense(2))")
        yield "elementwise", layer + " depth 2", deep, "dense", True, both
        conv = f"stax.serial(stax.Conv(4, (2, 2), padding='SAME', W_std=1.4, b_std=0.1), {layer})"
        for diagonal_spatial in (False, True):
            yield ("elementwise", f"{layer} conv diagonal_spatial={diagonal_spatial}", conv, "img", True,
                   {"get": None, "diagonal_spatial": diagonal_spatial})

    # Hermite needs unit-variance pre-activations: unit-norm-scaled rows through a
    # bias-free Dense layer, or a LayerNorm in front of it.
    for layer in HERMITE:
        expr = f"stax.serial(stax.Dense(8), {layer}, stax.Dense(1))"
        yield "elementwise", layer, expr, "sphere", True, both
        expr = f"stax.serial(stax.Dense(8, W_std=1.7, b_std=0.3), stax.LayerNorm(), {layer}, stax.Dense(1))"
        yield "elementwise", layer + " after LayerNorm", expr, "dense", False, full
    yield ("elementwise", "Hermite without normalisation",
           "stax.serial(stax.Dense(8, W_std=1.7, b_std=0.3), stax.Hermite(2))", "dense", True, both)

    # Dense layers in both parameterisations.
    for layer in DENSE_LAYERS:
        yield "dense", layer, layer, "dense", True, full
        expr = f"stax.serial({layer}, stax.Relu(), {layer.replace('16', '4')})"
        yield "dense", layer + " mlp", expr, "dense", True, both
        yield "dense", layer + " mlp x1 only", expr, "dense", False, full

    # Depths.
    for depth in (1, 2, 5, 10):
        expr = (f"stax.serial(*([stax.Dense(32, W_std=1.4, b_std=0.1), stax.Relu()] * {depth}),"
                f" stax.Dense(1, W_std=1.4, b_std=0.1))")
        yield "depth", f"relu mlp depth {depth}", expr, "dense", True, both
        expr = (f"stax.serial(stax.Dense(32, W_std=1.2, b_std=0.3), stax.repeat(stax.serial(stax.Erf(),"
                f" stax.Dense(32, W_std=1.2, b_std=0.3)), {depth}), stax.Dense(1))")
        yield "depth", f"repeat erf mlp depth {depth}", expr, "dense", True, both
        expr = (f"stax.serial(*([stax.Dense(32, W_std=1.4, b_std=0.1, parameterization='standard'),"
                f" stax.Relu()] * {depth}), stax.Dense(1, parameterization='standard'))")
        yield "depth", f"standard relu mlp depth {depth}", expr, "dense", False, full

    # diagonal_batch / diagonal_spatial / get variants on fixed models.
    mlp = "stax.serial(stax.Dense(16, W_std=1.5, b_std=0.2), stax.Erf(), stax.Dense(3, W_std=1.1))"
    cnn = ("stax.serial(stax.Conv(8, (3, 3), padding='SAME', W_std=1.5, b_std=0.2), stax.Relu(),"
           " stax.Conv(8, (2, 2), padding='VALID', W_std=1.5, b_std=0.2))")
    for diagonal_batch in (True, False):
        for use_x2 in (True, False):
            yield ("kwargs", f"mlp diagonal_batch={diagonal_batch} x2={use_x2}", mlp, "dense", use_x2,
                   {"get": None, "diagonal_batch": diagonal_batch})
            for diagonal_spatial in (True, False):
                yield ("kwargs", f"cnn diagonal_batch={diagonal_batch} diagonal_spatial={diagonal_spatial}"
                       f" x2={use_x2}", cnn, "img", use_x2,
                       {"get": None, "diagonal_batch": diagonal_batch, "diagonal_spatial": diagonal_spatial})
    for get in ("nngp", "ntk", "cov1", ("ntk",), ("nngp", "ntk", "cov1", "cov2"), ("ntk", "nngp")):
        yield "kwargs", f"mlp get={get}", mlp, "dense", True, {"get": get}

    # Convolutions.
    for padding in ("VALID", "SAME", "CIRCULAR"):
        for strides in ((1, 1), (2, 1)):
            conv = f"stax.Conv(6, (3, 2), strides={strides}, padding='{padding}', W_std=1.3, b_std=0.2)"
            conv2 = f"stax.Conv(6, (2, 2), strides={strides}, padding='{padding}', W_std=1.3, b_std=0.2)"
            for readout in ("stax.Flatten()", "stax.GlobalAvgPool()"):
                expr = f"stax.serial({conv}, stax.Relu(), {conv2}, stax.Relu(), {readout}, stax.Dense(1))"
                yield "conv", f"conv2d {padding} {strides} {readout}", expr, "img", True, both
            yield ("conv", f"conv2d {padding} {strides} raw", f"stax.serial({conv}, stax.Relu(), {conv2})", "img",
                   False, {"get": None, "diagonal_spatial": False})
        conv1 = f"stax.Conv(5, (3,), strides=(2,), padding='{padding}', W_std=1.2, b_std=0.1)"
        yield ("conv", f"conv1d {padding}", f"stax.serial({conv1}, stax.Erf(), {conv1})", "seq", True,
               {"get": None})
        yield ("conv", f"conv1d {padding} diagonal_spatial", f"stax.serial({conv1}, stax.Erf(), {conv1})", "seq",
               True, {"get": None, "diagonal_spatial": True})
        for name in ("ConvTranspose", "ConvLocal"):
            layer = f"stax.{name}(4, (3, 2), strides=(2, 1), padding='{padding}', W_std=1.5, b_std=0.1)"
            layer2 = f"stax.{name}(4, (2, 2), padding='{padding}', W_std=1.5, b_std=0.1)"
            expr = f"stax.serial({layer}, stax.Relu(), {layer2}, stax.Flatten(), stax.Dense(1))"
            yield "conv", f"{name} 2d {padding}", expr, "img", True, both
            layer = f"stax.{name}(4, (2,), padding='{padding}', W_std=1.5, b_std=0.1)"
            yield "conv", f"{name} 1d {padding}", f"stax.serial({layer}, stax.Relu(), {layer})", "seq", True, full
    for parameterization in ("standard", "ntk"):
        for s in ((1, 1), (2, 3)):
            conv = f"stax.Conv(8, (2, 2), W_std=1.4, b_std=0.3, parameterization='{parameterization}', s={s})"
            expr = f"stax.serial({conv}, stax.Relu(), {conv}, stax.GlobalSumPool())"
            yield "conv", f"conv {parameterization} s={s}", expr, "img", True, both
            local = conv.replace("Conv(", "ConvLocal(")
            yield ("conv", f"convlocal {parameterization} s={s}", f"stax.serial({local}, stax.Relu(), {local})",
                   "img", True, full)
    yield ("conv", "conv nchw dimension_numbers",
           "stax.serial(stax.Conv(4, (2, 2), dimension_numbers=('NCHW', 'OIHW', 'NCHW'), b_std=0.1), stax.Relu(),"
           " stax.Flatten(), stax.Dense(1))", "img_nchw", True, both)
    yield ("conv", "conv no bias default", "stax.serial(stax.Conv(3, (2, 2)), stax.Relu(), stax.Conv(3, (2, 2)))",
           "img", False, {"get": None, "diagonal_spatial": True})
    yield ("conv", "convlocal diagonal_spatial after relu",
           "stax.serial(stax.Conv(3, (2, 2), padding='SAME'), stax.Relu(), stax.ConvLocal(3, (2, 2)))",
           "img", True, {"get": None, "diagonal_spatial": True})

    # Pooling and reshaping.
    body = "stax.Conv(6, (2, 2), padding='SAME', W_std=1.3, b_std=0.1), stax.Relu()"
    pools = [
        "stax.AvgPool((2, 2))",
        "stax.AvgPool((2, 2), strides=(1, 1), padding='SAME')",
        "stax.AvgPool((3, 2), strides=(2, 1), padding='SAME', normalize_edges=True)",
        "stax.AvgPool((2, 2), padding='CIRCULAR')",
        "stax.AvgPool((2, 1), strides=(2, 1), padding='VALID', normalize_edges=True)",
        "stax.SumPool((2, 2))",
        "stax.SumPool((3, 3), strides=(1, 1), padding='SAME')",
        "stax.SumPool((2, 2), padding='CIRCULAR')",
        "stax.GlobalAvgPool()",
        "stax.GlobalSumPool()",
        "stax.Flatten()",
        "stax.Identity()",
    ]
    for pool in pools:
        expr = f"stax.serial({body}, {pool})"
        for diagonal_spatial in (False, True):
            yield ("pooling", f"{pool} diagonal_spatial={diagonal_spatial}", expr, "img", True,
                   {"get": None, "diagonal_spatial": diagonal_spatial})
        if pool not in ("stax.GlobalAvgPool()", "stax.GlobalSumPool()", "stax.Flatten()"):
            yield ("pooling", f"{pool} then flatten readout", f"stax.serial({body}, {pool}, stax.Flatten(),"
                   " stax.Dense(1))", "img", True, both)
    for pool in ("stax.AvgPool((2,))", "stax.SumPool((3,), strides=(2,), padding='SAME')",
                 "stax.GlobalAvgPool()", "stax.Flatten()"):
        yield ("pooling", f"1d {pool}", f"stax.serial(stax.Conv(4, (2,), b_std=0.2), stax.Erf(), {pool})", "seq",
               True, full)
    yield "pooling", "flatten on inputs", "stax.serial(stax.Flatten(), stax.Dense(2))", "img", True, full
    yield "pooling", "global pool on inputs", "stax.GlobalAvgPool()", "img", True, full
    yield "pooling", "identity on inputs", "stax.Identity()", "dense", False, full

    # Dropout.
    for mode in ("train", "test"):
        for rate in (0.8, 0.5):
            expr = (f"stax.serial(stax.Dense(16, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dropout({rate},"
                    f" mode='{mode}'), stax.Dense(1))")
            yield "dropout", f"dropout {mode} {rate}", expr, "dense", True, both
            yield "dropout", f"dropout {mode} {rate} x1 only", expr, "dense", False, full
        expr = (f"stax.serial(stax.Conv(4, (2, 2), padding='SAME'), stax.Relu(), stax.Dropout(0.7, mode='{mode}'),"
                " stax.Flatten(), stax.Dense(1))")
        yield "dropout", f"dropout {mode} conv", expr, "img", False, both
        yield "dropout", f"dropout {mode} on inputs", f"stax.Dropout(0.9, mode='{mode}')", "dense", False, full
    yield "dropout", "dropout rate 0", "stax.serial(stax.Dense(4), stax.Dropout(0.0))", "dense", False, full

    # LayerNorm.
    for norm in ("stax.LayerNorm()", "stax.LayerNorm(eps=0.1)", "stax.LayerNorm(axis=1)"):
        expr = f"stax.serial(stax.Dense(16, W_std=1.5, b_std=0.3), {norm}, stax.Relu(), stax.Dense(1))"
        yield "layernorm", norm, expr, "dense", True, both
        yield "layernorm", norm + " x1 only", expr, "dense", False, full
    for axis, diagonal_spatial in [((1, 2, 3), False), ((1, 2, 3), True), ((1, 2), False), ((1, 2), True),
                                   ((-1,), False), ((3,), False)]:
        expr = (f"stax.serial(stax.Conv(6, (2, 2), padding='SAME', W_std=1.3, b_std=0.1), stax.LayerNorm(axis={axis}),"
                f" stax.Relu(), stax.Conv(2, (2, 2)))")
        yield ("layernorm", f"conv LayerNorm(axis={axis}) diagonal_spatial={diagonal_spatial}", expr, "img", True,
               {"get": None, "diagonal_spatial": diagonal_spatial})
    yield "layernorm", "layernorm on inputs", "stax.LayerNorm()", "dense", True, full
    yield ("layernorm", "layernorm after relu (not Gaussian)",
           "stax.serial(stax.Dense(4), stax.Relu(), stax.LayerNorm())", "dense", True, full)

    # Attention (sequences of length 6; the kernel is defined for linear_scaling or IDENTITY).
    attention = [
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, W_key_std=1.3, W_value_std=0.8,"
        " W_query_std=1.1, W_out_std=1.2, b_std=0.2",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, attention_mechanism='IDENTITY'",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, attention_mechanism='ABS'",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, attention_mechanism='RELU'",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, linear_scaling=False, attention_mechanism='IDENTITY'",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, linear_scaling=False, b_std=0.1,"
        " attention_mechanism='IDENTITY'",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, linear_scaling=False",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, pos_emb_type='SUM', n_chan_pos_emb=8",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, pos_emb_type='CONCAT', n_chan_pos_emb=8,"
        " val_pos_emb=True",
        "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2, pos_emb_type='SUM', n_chan_pos_emb=8,"
        " pos_emb_decay_fn=lambda d: 1 / (1 + d ** 2)",
    ]
    for i, args in enumerate(attention):
        expr = (f"stax.serial(stax.Dense(8, W_std=1.2, b_std=0.1), stax.GlobalSelfAttention({args}), stax.Relu(),"
                f" stax.GlobalAvgPool(), stax.Dense(1))")
        yield "attention", f"attention {i}: {args}", expr, "seq", True, both
        yield ("attention", f"attention {i} raw: {args}",
               f"stax.serial(stax.Dense(8, W_std=1.2, b_std=0.1), stax.GlobalSelfAttention({args}))",
               "seq", False, full)
    yield ("attention", "attention diagonal_spatial",
           f"stax.serial(stax.Dense(8), stax.GlobalSelfAttention({attention[0]}))", "seq", True,
           {"get": None, "diagonal_spatial": True})
    yield ("attention", "attention 2d images",
           f"stax.serial(stax.Conv(8, (2, 2), padding='SAME'), stax.GlobalSelfAttention({attention[0]}),"
           " stax.Flatten(), stax.Dense(1))", "img", True, both)

    # Aggregate over graph nodes: dense weighted adjacency and sparse edge lists.
    rng = np.random.default_rng(SEED + 1)
    dense1 = rng.uniform(0.0, 1.0, (3, 5, 5)) * rng.binomial(1, 0.5, (3, 5, 5))
    dense2 = rng.uniform(0.0, 1.0, (2, 5, 5)) * rng.binomial(1, 0.5, (2, 5, 5))
    sparse1 = rng.integers(0, 5, (3, 7, 2))
    sparse2 = rng.integers(0, 5, (2, 7, 2))
    gnn = ("stax.serial(stax.Dense(8, W_std=1.3, b_std=0.1), stax.Relu(), stax.Aggregate({args}),"
           " stax.Dense(8, W_std=1.3, b_std=0.1), stax.Relu(), stax.Aggregate({args}), stax.GlobalSumPool(),"
           " stax.Dense(1))")
    yield "aggregate", "dense pattern", gnn.format(args=""), "graph", True, {**both, "pattern": (dense1, dense2)}
    yield ("aggregate", "dense pattern x1 only", gnn.format(args=""), "graph", False,
           {"get": None, "pattern": (dense1, dense1)})
    yield ("aggregate", "dense pattern aggregate_axis=1", gnn.format(args="aggregate_axis=1"), "graph", True,
           {**both, "pattern": (dense1, dense2)})
    yield ("aggregate", "no pattern (identity adjacency)", gnn.format(args=""), "graph", True,
           {**both, "pattern": (None, None)})
    yield ("aggregate", "only one of two patterns", gnn.format(args=""), "graph", True,
           {**both, "pattern": (dense1, None)})
    yield ("aggregate", "sparse pattern", gnn.format(args="implementation='SPARSE'"), "graph", True,
           {**both, "pattern": (sparse1, sparse2)})
    yield ("aggregate", "sparse pattern x1 only", gnn.format(args="implementation='SPARSE'"), "graph", False,
           {"get": None, "pattern": (sparse1, sparse1)})
    yield ("aggregate", "dense pattern to_dense", gnn.format(args="to_dense=lambda p: p + jnp.swapaxes(p, 1, 2)"),
           "graph", True, {**both, "pattern": (dense1, dense2)})
    yield ("aggregate", "aggregate diagonal_spatial", "stax.serial(stax.Dense(4), stax.Aggregate())", "graph", True,
           {"get": None, "pattern": (dense1, dense2), "diagonal_spatial": True})

    # Combinators.
    combos = [
        ("fanout parallel fanin_sum",
         "stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(8, W_std=1.5), stax.serial(stax.Dense(8, b_std=0.2),"
         " stax.Relu(), stax.Dense(8))), stax.FanInSum(), stax.Relu(), stax.Dense(1))"),
        ("fanin_sum of non-Gaussian branches",
         "stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(8, W_std=1.5), stax.serial(stax.Dense(8, b_std=0.2),"
         " stax.Relu())), stax.FanInSum(), stax.Dense(1))"),
        ("residual block",
         "stax.serial(stax.Dense(8, W_std=1.2, b_std=0.1), stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(),"
         " stax.Dense(8, W_std=1.2, b_std=0.1)), stax.Identity()), stax.FanInSum(), stax.Relu(), stax.Dense(1))"),
        ("fanout 3 fanin_concat",
         "stax.serial(stax.FanOut(3), stax.parallel(stax.Dense(4, W_std=1.5), stax.serial(stax.Dense(4),"
         " stax.Erf()), stax.Identity()), stax.FanInConcat(), stax.Dense(1))"),
        ("fanin_concat no readout",
         "stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(4, W_std=1.5), stax.serial(stax.Dense(4),"
         " stax.Relu())), stax.FanInConcat())"),
        ("fanin_prod",
         "stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(8, W_std=1.5, b_std=0.2), stax.serial(stax.Dense(8),"
         " stax.Erf())), stax.FanInProd(), stax.Dense(1))"),
        ("fanin_prod of correlated branches",
         "stax.serial(stax.Dense(8), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Relu()), stax.FanInProd())"),
        ("fanin_sum of three", "stax.serial(stax.FanOut(3), stax.parallel(stax.Dense(4), stax.Dense(4, b_std=0.5),"
         " stax.serial(stax.Dense(4), stax.Sin(), stax.Dense(4, W_std=2.0))), stax.FanInSum())"),
        ("repeat block", "stax.serial(stax.Dense(8), stax.repeat(stax.serial(stax.Relu(), stax.Dense(8, W_std=1.4,"
         " b_std=0.1)), 4))"),
        ("repeat residual", "stax.serial(stax.Dense(8), stax.repeat(stax.serial(stax.FanOut(2),"
         " stax.parallel(stax.serial(stax.Erf(), stax.Dense(8)), stax.Identity()), stax.FanInSum()), 3))"),
        ("nested serial", "stax.serial(stax.serial(stax.Dense(8), stax.Relu()), stax.serial(stax.Dense(8),"
         " stax.serial(stax.Relu(), stax.Dense(2))))"),
    ]
    for name, expr in combos:
        yield "combinators", name, expr, "dense", True, both
        yield "combinators", name + " x1 only", expr, "dense", False, full
    conv_branches = ("stax.serial(stax.Conv(4, (2, 2), padding='SAME'), stax.FanOut(2),"
                     " stax.parallel(stax.Conv(3, (2, 2), padding='SAME'), stax.serial(stax.Relu(), stax.Conv(3, (2, 2),"
                     " padding='SAME'))), {fan_in})")
    for fan_in in ("stax.FanInSum()", "stax.FanInConcat()", "stax.FanInConcat(axis=1)", "stax.FanInConcat(axis=2)",
                   "stax.FanInConcat(axis=0)", "stax.FanInProd()"):
        for diagonal_spatial in (False, True):
            yield ("combinators", f"conv {fan_in} diagonal_spatial={diagonal_spatial}",
                   conv_branches.format(fan_in=fan_in), "img", True,
                   {"get": None, "diagonal_spatial": diagonal_spatial})

    # Layers beyond the core list (checked only where jaxdl implements them).
    extras = [
        ("dot_general rhs", "stax.serial(stax.Dense(4), stax.DotGeneral(rhs=2.0))", "dense"),
        ("index", "stax.serial(stax.Conv(4, (2, 2)), stax.Relu(), stax.Index(idx=stax.Slice[:, 1:3, :, :]))", "img"),
        ("image_resize", "stax.serial(stax.Conv(4, (2, 2)), stax.Relu(), stax.ImageResize((-1, 8, 6, -1),"
         " 'linear'))", "img"),
        ("image_resize nearest", "stax.serial(stax.Conv(4, (2, 2)), stax.Relu(), stax.ImageResize((-1, 2, 5, -1),"
         " 'nearest'))", "img"),
    ]
    for name, expr, kind in extras:
        yield "extras", name, expr, kind, True, full

    # DotGeneral, Index and ImageResize beyond the first extras (issue 22). Two
    # convolutions keep the covariances in natural order: NT 0.6.5's ImageResize
    # kernel resizes the wrong axes after an odd number of them.
    two_convs = "stax.Conv(4, (2, 2), W_std=1.3, b_std=0.1), stax.Relu(), stax.Conv(4, (1, 1), b_std=0.1)"
    new_layers = [
        ("dot_general rhs contracting W", f"stax.serial({two_convs}, stax.DotGeneral(rhs=np.array([[1.0, 0.5],"
         " [-1.0, 2.0], [0.3, 0.0]]), dimension_numbers=(((2,), (0,)), ((), ()))))", "img", full),
        ("dot_general lhs contracting time", "stax.serial(stax.Conv(4, (2,), padding='SAME'), stax.Relu(),"
         " stax.DotGeneral(lhs=np.linspace(-1.0, 1.0, 12).reshape(2, 6), dimension_numbers=(((1,), (1,)), ((), ()))))",
         "seq", full),
        ("dot_general scalar diagonal_spatial", f"stax.serial({two_convs}, stax.DotGeneral(rhs=-1.5))", "img",
         {"get": None, "diagonal_spatial": True}),
        ("dot_general then readout", f"stax.serial({two_convs}, stax.DotGeneral(rhs=np.array([1.0, -1.0, 0.5]),"
         " dimension_numbers=(((2,), (0,)), ((), ()))), stax.Relu(), stax.Flatten(), stax.Dense(1))", "img", both),
        ("index integer spatial", f"stax.serial({two_convs}, stax.Index(idx=stax.Slice[1:, ..., 1, :]))", "img", full),
        ("index diagonal_spatial", f"stax.serial({two_convs}, stax.Index(idx=stax.Slice[:, ::2]))", "img",
         {"get": None, "diagonal_spatial": True}),
        ("index channel (NT raises)", "stax.serial(stax.Dense(4), stax.Index(idx=stax.Slice[..., :2]))", "dense", full),
        ("index integer batch (NT raises)", "stax.serial(stax.Dense(4), stax.Index(idx=stax.Slice[0]))", "dense",
         full),
        ("image_resize two convs linear", f"stax.serial({two_convs}, stax.ImageResize((-1, 7, 2, -1), 'linear'))",
         "img", full),
        ("image_resize two convs nearest", f"stax.serial({two_convs}, stax.ImageResize((-1, 2, 5, -1), 'nearest'))",
         "img", full),
        ("image_resize 1d then readout", "stax.serial(stax.Conv(4, (2,)), stax.Relu(), stax.ImageResize((-1, 9, -1),"
         " 'linear'), stax.Conv(2, (3,)), stax.GlobalAvgPool())", "seq", both),
    ]
    for name, expr, kind, kwargs in new_layers:
        yield "extras", name, expr, kind, True, kwargs

    # Masked inputs (`mask_constant`): entries equal to MASK_CONSTANT are masked out.
    masked = {"get": ("nngp", "ntk"), "mask_constant": MASK_CONSTANT}
    masked_full = {"get": None, "mask_constant": MASK_CONSTANT}
    masking = [
        ("dense relu", "stax.serial(stax.Dense(8, W_std=1.3, b_std=0.2), stax.Relu(), stax.Dense(1))", "seq_masked"),
        ("conv avgpool global avg", "stax.serial(stax.Conv(6, (3,), padding='SAME', b_std=0.1), stax.Relu(),"
         " stax.AvgPool((2,), strides=(1,), padding='SAME'), stax.Conv(4, (2,)), stax.Erf(), stax.GlobalAvgPool())",
         "seq_masked"),
        ("conv sumpool flatten", "stax.serial(stax.Conv(6, (2,), b_std=0.1), stax.Relu(), stax.SumPool((2,)),"
         " stax.Flatten(), stax.Dense(1))", "seq_masked"),
        ("attention softmax", "stax.serial(stax.Dense(8, W_std=1.2, b_std=0.1), stax.GlobalSelfAttention("
         "n_chan_out=8, n_chan_key=8, n_chan_val=8, n_heads=2), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1))",
         "seq_masked"),
        ("attention relu pos_emb", "stax.serial(stax.Dense(8), stax.GlobalSelfAttention(n_chan_out=8, n_chan_key=8,"
         " n_chan_val=8, n_heads=2, attention_mechanism='RELU', pos_emb_type='SUM', n_chan_pos_emb=8))", "seq_masked"),
        ("residual fanin_sum", "stax.serial(stax.Dense(8), stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(),"
         " stax.Dense(8, b_std=0.1)), stax.Identity()), stax.FanInSum(), stax.GlobalSumPool())", "seq_masked"),
        ("fanin_concat", "stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(4), stax.serial(stax.Dense(4),"
         " stax.Erf())), stax.FanInConcat(), stax.GlobalAvgPool())", "seq_masked"),
        ("aggregate", "stax.serial(stax.Dense(8, b_std=0.1), stax.Relu(), stax.Aggregate(), stax.Dense(8),"
         " stax.GlobalSumPool(), stax.Dense(1))", "graph_masked"),
    ]
    rng = np.random.default_rng(SEED + 2)
    patterns = (rng.binomial(1, 0.5, (3, 5, 5)).astype(float), rng.binomial(1, 0.5, (2, 5, 5)).astype(float))
    for name, expr, kind in masking:
        with_x2 = {"pattern": patterns} if kind == "graph_masked" else {}
        x1_only = {"pattern": (patterns[0], patterns[0])} if kind == "graph_masked" else {}
        yield "masking", name, expr, kind, True, {**masked, **with_x2}
        yield "masking", name + " x1 only", expr, kind, False, {**masked_full, **x1_only}


def kernel_outputs(result, get) -> dict:
    """The arrays NT returned: a `Kernel` (get=None), one array or a namedtuple."""
    if get is None:
        fields = ("nngp", "ntk", "cov1", "cov2")
        return {f: getattr(result, f) for f in fields if getattr(result, f) is not None}
    if isinstance(get, str):
        return {get: result}
    return {name: getattr(result, name) for name in get}


def kernel_meta(kernel) -> dict:
    return {
        "is_gaussian": bool(kernel.is_gaussian),
        "is_reversed": bool(kernel.is_reversed),
        "is_input": bool(kernel.is_input),
        "diagonal_batch": bool(kernel.diagonal_batch),
        "diagonal_spatial": bool(kernel.diagonal_spatial),
        "x1_is_x2": bool(kernel.x1_is_x2),
        "shape1": list(kernel.shape1),
        "shape2": list(kernel.shape2),
        "batch_axis": int(kernel.batch_axis),
        "channel_axis": int(kernel.channel_axis),
    }


def build_analytic(out_dir: pathlib.Path) -> None:
    writer = CaseWriter("analytic")
    namespace = {"stax": stax, "jnp": jnp, "np": np}
    failures = 0
    for family, name, expr, input_kind, use_x2, kwargs in analytic_cases():
        x1, x2 = make_inputs(input_kind)
        x2 = x2 if use_x2 else None
        case_id = writer.new_case(name, family, expr)
        writer.put_json(case_id, "kwargs", kwargs)
        writer.put_array(case_id, "x1", x1)
        if x2 is not None:
            writer.put_array(case_id, "x2", x2)
        try:
            kernel_fn = eval(expr, dict(namespace))[2]  # noqa: S307 - fixture generator, trusted strings
            result = kernel_fn(x1, x2, **kwargs)
            outputs = kernel_outputs(result, kwargs["get"])
            nonfinite = []
            for key, value in outputs.items():
                value = np.asarray(value)
                if not np.all(np.isfinite(value)):
                    nonfinite.append(key)
                writer.put_array(case_id, f"out/{key}", value)
            if nonfinite:  # an NT defect (e.g. arccos of a rounded 1 + eps): compare finite entries only
                print(f"  {case_id} {name}: NT returned non-finite {nonfinite}", file=sys.stderr)
                writer.put_json(case_id, "nt_nonfinite", nonfinite)
            if kwargs["get"] is None:
                writer.put_json(case_id, "kernel_meta", kernel_meta(result))
        except Exception as error:  # noqa: BLE001 - unsupported combinations are part of the oracle
            if not _errors_are_expected(error):
                print(f"  {case_id} {name}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
            writer.put_error(case_id, error)
            failures += 1
    print(f"analytic: {len(writer.case_ids)} cases, {failures} record an NT error")
    writer.save(out_dir / "analytic_kernels.npz")


# ----------------------------------------------------------------------------
# Empirical kernels
# ----------------------------------------------------------------------------

EMPIRICAL_FUNCTIONS = [
    # (name, expression over {jnp}, params shapes, input shape (without batch))
    ("linear", "lambda params, x: x @ params['W'] + params['b']", {"W": (4, 3), "b": (3,)}, (4,)),
    ("mlp tanh", "lambda params, x: jnp.tanh(x @ params['W1'] + params['b1']) @ params['W2'] / jnp.sqrt(8.0)",
     {"W1": (4, 8), "b1": (8,), "W2": (8, 2)}, (4,)),
    ("nested params sin",
     "lambda params, x: jnp.sin(x @ params['layer1']['W']) @ params['layer2']['W'] + params['layer2']['b']",
     {"layer1": {"W": (4, 6)}, "layer2": {"W": (6, 3), "b": (3,)}}, (4,)),
    ("multi-axis output",
     "lambda params, x: jnp.einsum('nd,dkc->nkc', jnp.tanh(x @ params['W']), params['V'])",
     {"W": (4, 5), "V": (5, 3, 2)}, (4,)),
    ("conv-like on sequences",
     "lambda params, x: jnp.tanh(jnp.einsum('nlc,cd->nld', x, params['W'])).mean(axis=1) @ params['U']",
     {"W": (2, 5), "U": (5, 2)}, (6, 2)),
]

EMPIRICAL_AXES = [
    # (trace_axes, diagonal_axes, which outputs it applies to: "2d" = (n, k), "3d" = (n, k, c))
    ((-1,), (), "any"),
    ((), (), "any"),
    ((), (-1,), "any"),
    ((-1,), (0,), "any"),
    ((), (0,), "any"),
    ((1,), (-1,), "3d"),
    ((1, 2), (), "3d"),
    ((), (1, 2), "3d"),
]


def _random_tree(shapes, rng):
    if isinstance(shapes, dict):
        return {k: _random_tree(v, rng) for k, v in shapes.items()}
    return rng.standard_normal(shapes)


def _flatten_tree(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten_tree(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _empirical_outputs(function, fn, axes, extra, x1, x2, params) -> dict:
    kernel_fn = getattr(nt, function)(fn, **axes, **extra)
    if function == "empirical_kernel_fn":
        result = kernel_fn(x1, x2, ("nngp", "ntk"), params)
        return {"nngp": result.nngp, "ntk": result.ntk}
    return {function.split("_")[1]: kernel_fn(x1, x2, params)}


def build_empirical(out_dir: pathlib.Path) -> None:
    rng = np.random.default_rng(SEED + 2)
    writer = CaseWriter("empirical")
    implementations = [int(i) for i in nt.NtkImplementation]
    for fn_name, expr, shapes, input_shape in EMPIRICAL_FUNCTIONS:
        fn = eval(expr, {"jnp": jnp})  # noqa: S307 - trusted fixture strings
        params = _random_tree(shapes, rng)
        x1 = rng.standard_normal((4,) + input_shape)
        x2 = rng.standard_normal((3,) + input_shape)
        x2_same_batch = rng.standard_normal((4,) + input_shape)
        output_ndim = np.ndim(fn(params, x1))
        for trace_axes, diagonal_axes, applies in EMPIRICAL_AXES:
            if applies == "3d" and output_ndim != 3:
                continue
            for use_x2 in (True, False):
                # A diagonal over the batch axis pairs x1[i] with x2[i]: equal batch sizes.
                x2_case = (x2_same_batch if 0 in diagonal_axes else x2) if use_x2 else None
                axes = {"trace_axes": trace_axes, "diagonal_axes": diagonal_axes}
                calls = [("empirical_nngp_fn", {}), ("empirical_kernel_fn", {"implementation": 1})]
                calls += [("empirical_ntk_fn", {"implementation": i}) for i in implementations]
                for function, extra in calls:
                    case_id = writer.new_case(f"{fn_name} {function} {axes} {extra} x2={use_x2}", function, expr)
                    writer.put_json(case_id, "kwargs", {**axes, **extra})
                    for key, value in _flatten_tree(params).items():
                        writer.put_array(case_id, f"params/{key}", value)
                    writer.put_array(case_id, "x1", x1)
                    if x2_case is not None:
                        writer.put_array(case_id, "x2", x2_case)
                    try:
                        try:
                            outputs = _empirical_outputs(function, fn, axes, extra, x1, x2_case, params)
                        except AttributeError:
                            # NT 0.6.5's STRUCTURED_DERIVATIVES (and AUTO, which may pick it) use JAX
                            # internals that jax 0.4.30 no longer has.  NT's own tests assert that all
                            # implementations agree, so JACOBIAN_CONTRACTION gives the reference.
                            outputs = _empirical_outputs(function, fn, axes, {"implementation": 1}, x1,
                                                         x2_case, params)
                            writer.put_json(case_id, "reference_implementation", 1)
                    except Exception as error:  # noqa: BLE001 - recorded for jaxdl to match
                        if not _errors_are_expected(error):
                            raise
                        writer.put_error(case_id, error)
                        continue
                    if function == "empirical_kernel_fn":
                        writer.put_json(case_id, "call_kwargs", {"get": ("nngp", "ntk")})
                    for key, value in outputs.items():
                        assert np.all(np.isfinite(value)), (case_id, key)
                        writer.put_array(case_id, f"out/{key}", value)
    writer.save(out_dir / "empirical.npz")


# ----------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------

PREDICT_MODEL = "stax.serial(stax.Dense(32, W_std=1.5, b_std=0.1), stax.Erf(), stax.Dense(2, W_std=1.5, b_std=0.1))"
CROSS_ENTROPY = "lambda fx, y_hat: -jnp.mean(jax.nn.log_softmax(fx, axis=-1) * y_hat)"


def _psd(n, rng, jitter=1e-1):
    a = rng.standard_normal((n, n))
    return a @ a.T / n + jitter * np.eye(n)


def build_predict(out_dir: pathlib.Path) -> None:
    rng = np.random.default_rng(SEED + 3)
    writer = CaseWriter("predict")
    n_train, n_test, d, k = 8, 5, 3, 2
    x_train = rng.standard_normal((n_train, d))
    x_test = rng.standard_normal((n_test, d))
    y_train = rng.standard_normal((n_train, k))
    kernel_fn = eval(PREDICT_MODEL, {"stax": stax, "jnp": jnp, "np": np})[2]  # noqa: S307
    k_dd = kernel_fn(x_train, None, ("nngp", "ntk"))
    k_td = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    k_tt = kernel_fn(x_test, None, ("nngp", "ntk"))
    kernels = {
        "nngp_train_train": k_dd.nngp, "ntk_train_train": k_dd.ntk,
        "nngp_test_train": k_td.nngp, "ntk_test_train": k_td.ntk,
        "nngp_test_test": k_tt.nngp, "ntk_test_test": k_tt.ntk,
    }
    data = {"x_train": x_train, "x_test": x_test, "y_train": y_train}
    fx_train_0 = 0.1 * rng.standard_normal((n_train, k))
    fx_test_0 = 0.1 * rng.standard_normal((n_test, k))

    # A full (untraced) NTK with output axes: shape (n1, n2, k, k).
    full = _psd(n_train * k, rng).reshape(n_train, k, n_train, k).transpose(0, 2, 1, 3)
    cross = rng.standard_normal((n_test * k, n_train * k)) / (n_train * k)
    full_td = cross.reshape(n_test, k, n_train, k).transpose(0, 2, 1, 3)

    def store(case_id, inputs: dict, call: dict, outputs: dict):
        for key, value in inputs.items():
            writer.put_array(case_id, f"inputs/{key}", value)
        writer.put_json(case_id, "kwargs", call)
        for key, value in outputs.items():
            value = np.asarray(value)
            assert np.all(np.isfinite(value)), (case_id, key)
            writer.put_array(case_id, f"out/{key}", value)

    times = {"t=None": None, "t=0": 0.0, "t=0.5": 0.5, "t=3": 3.0, "t=[0,1,10,1e3]": np.array([0.0, 1.0, 10.0, 1e3])}

    # gradient_descent_mse
    settings = [
        ({"learning_rate": 1.0, "diag_reg": 0.0}, "ntk", (-1,)),
        ({"learning_rate": 0.5, "diag_reg": 1e-2}, "ntk", (-1,)),
        ({"learning_rate": 1.0, "diag_reg": 1e-2, "diag_reg_absolute_scale": True}, "nngp", (-1,)),
        ({"learning_rate": 2.0, "diag_reg": 0.0}, "full", ()),
        ({"learning_rate": 1.0, "diag_reg": 1e-3}, "full", ()),
    ]
    for setting, kernel_name, trace_axes in settings:
        if kernel_name == "full":
            k_train, k_test = full, full_td
        else:
            k_train, k_test = kernels[f"{kernel_name}_train_train"], kernels[f"{kernel_name}_test_train"]
        predict_fn = nt.predict.gradient_descent_mse(k_train, y_train, trace_axes=trace_axes, **setting)
        for t_name, t in times.items():
            for init_name, f0_train, f0_test in (("zero init", 0.0, np.zeros((n_test, k))),
                                                 ("random init", fx_train_0, fx_test_0)):
                case_id = writer.new_case(f"gradient_descent_mse {kernel_name} {setting} {t_name} {init_name}",
                                          "gradient_descent_mse")
                fx_train_t, fx_test_t = predict_fn(t, f0_train, f0_test, k_test)
                inputs = {"k_train_train": k_train, "y_train": y_train, "fx_train_0": f0_train,
                          "fx_test_0": f0_test, "k_test_train": k_test}
                if t is not None:
                    inputs["t"] = t
                store(case_id, inputs, {**setting, "trace_axes": trace_axes},
                      {"fx_train_t": fx_train_t, "fx_test_t": fx_test_t})
            case_id = writer.new_case(f"gradient_descent_mse {kernel_name} {setting} {t_name} train only",
                                      "gradient_descent_mse")
            inputs = {"k_train_train": k_train, "y_train": y_train, "fx_train_0": fx_train_0}
            if t is not None:
                inputs["t"] = t
            store(case_id, inputs, {**setting, "trace_axes": trace_axes},
                  {"fx_train_t": predict_fn(t, fx_train_0)})

    # gradient_descent_mse_ensemble (the kernel is the model's; its matrices are stored too)
    for setting in ({"learning_rate": 1.0, "diag_reg": 0.0}, {"learning_rate": 0.5, "diag_reg": 1e-2},
                    {"learning_rate": 1.0, "diag_reg": 1e-3, "diag_reg_absolute_scale": True}):
        predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, **setting)
        for t_name, t in times.items():
            for get in ("nngp", "ntk", ("nngp", "ntk")):
                for on_test in (True, False):
                    case_id = writer.new_case(f"gradient_descent_mse_ensemble {setting} {t_name} get={get}"
                                              f" {'test' if on_test else 'train'}", "gradient_descent_mse_ensemble")
                    result = predict_fn(t, x_test if on_test else None, get, compute_cov=True)
                    outputs = {}
                    for name in ((get,) if isinstance(get, str) else get):
                        gaussian = getattr(result, name) if not isinstance(get, str) else result
                        outputs[f"{name}/mean"] = gaussian.mean
                        outputs[f"{name}/covariance"] = gaussian.covariance
                    inputs = {**data, **kernels}
                    if t is not None:
                        inputs["t"] = t
                    store(case_id, inputs, {**setting, "model": PREDICT_MODEL, "get": get, "compute_cov": True,
                                            "on_test": on_test}, outputs)
        case_id = writer.new_case(f"gradient_descent_mse_ensemble {setting} mean only", "gradient_descent_mse_ensemble")
        result = predict_fn(np.array([1.0, 10.0]), x_test, "ntk", compute_cov=False)
        store(case_id, {**data, **kernels, "t": np.array([1.0, 10.0])},
              {**setting, "model": PREDICT_MODEL, "get": "ntk", "compute_cov": False, "on_test": True},
              {"ntk/mean": result})

    # gp_inference
    for diag_reg, absolute in ((0.0, False), (1e-2, False), (1e-2, True)):
        setting = {"diag_reg": diag_reg, "diag_reg_absolute_scale": absolute}
        predict_fn = nt.predict.gp_inference(k_dd, y_train, **setting)
        for get in ("nngp", "ntk", "ntkgp", ("nngp", "ntk", "ntkgp")):
            for with_cov in (True, False):
                case_id = writer.new_case(f"gp_inference {setting} get={get} cov={with_cov}", "gp_inference")
                result = predict_fn(get, k_td, k_tt if with_cov else None)
                outputs = {}
                for name in ((get,) if isinstance(get, str) else get):
                    value = result if isinstance(get, str) else getattr(result, name)
                    if with_cov:
                        outputs[f"{name}/mean"], outputs[f"{name}/covariance"] = value.mean, value.covariance
                    else:
                        outputs[f"{name}/mean"] = value
                store(case_id, {"y_train": y_train, **kernels}, {**setting, "get": get, "with_cov": with_cov},
                      outputs)

    # gradient_descent with a cross-entropy loss, with and without momentum
    labels = np.eye(k)[rng.integers(0, k, n_train)]
    loss = eval(CROSS_ENTROPY, {"jnp": jnp, "jax": jax})  # noqa: S307
    ode_times = np.array([0.0, 0.5, 2.0, 10.0])
    for momentum in (None, 0.9):
        for learning_rate in (1.0, 0.1):
            predict_fn = nt.predict.gradient_descent(loss, kernels["ntk_train_train"], labels,
                                                     learning_rate=learning_rate, momentum=momentum)
            for with_test in (True, False):
                case_id = writer.new_case(f"gradient_descent lr={learning_rate} momentum={momentum} test={with_test}",
                                          "gradient_descent")
                call = {"loss": CROSS_ENTROPY, "learning_rate": learning_rate, "momentum": momentum}
                inputs = {"k_train_train": kernels["ntk_train_train"], "y_train": labels, "t": ode_times,
                          "fx_train_0": fx_train_0}
                if with_test:
                    fx_train_t, fx_test_t = predict_fn(ode_times, fx_train_0, fx_test_0, kernels["ntk_test_train"])
                    inputs.update(fx_test_0=fx_test_0, k_test_train=kernels["ntk_test_train"])
                    outputs = {"fx_train_t": fx_train_t, "fx_test_t": fx_test_t}
                else:
                    outputs = {"fx_train_t": predict_fn(ode_times, fx_train_0)}
                store(case_id, inputs, call, outputs)

    # max_learning_rate
    for momentum in (0.0, 0.5, 0.9):
        for y_train_size in (None, n_train * k, 5):
            for kernel_name in ("ntk", "nngp"):
                case_id = writer.new_case(f"max_learning_rate {kernel_name} momentum={momentum}"
                                          f" y_train_size={y_train_size}", "max_learning_rate")
                ntk = kernels[f"{kernel_name}_train_train"]
                value = nt.predict.max_learning_rate(ntk, y_train_size=y_train_size, momentum=momentum)
                store(case_id, {"ntk_train_train": ntk}, {"y_train_size": y_train_size, "momentum": momentum},
                      {"max_learning_rate": value})
    case_id = writer.new_case("max_learning_rate full ntk", "max_learning_rate")
    store(case_id, {"ntk_train_train": full}, {"y_train_size": None, "momentum": 0.0},
          {"max_learning_rate": nt.predict.max_learning_rate(full)})

    writer.save(out_dir / "predict.npz")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=["analytic", "empirical", "predict"],
                        default=["analytic", "empirical", "predict"])
    parser.add_argument("--out", type=pathlib.Path, default=FIXTURE_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    builders = {"analytic": build_analytic, "empirical": build_empirical, "predict": build_predict}
    for name in args.only:
        builders[name](args.out)


if __name__ == "__main__":
    main()
