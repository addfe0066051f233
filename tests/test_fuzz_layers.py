"""Property-based fuzzing of the stax layer library (hypothesis).

For every public layer and combinator, hypothesis draws hyperparameters (widths
including 0 and negatives, strides, padding strings, axes, negative or non-finite
standard deviations, ...), an input shape of random rank (0-d included) and an input
dtype. The contract checked at every stage (construction, ``init_fn``, ``apply_fn``,
``apply_fn`` on a batch of size 0, and ``kernel_fn``):

* either the call succeeds, and then the output has the shape ``init_fn`` reported
  and holds no NaN or infinity;
* or it raises a ``ValueError``/``TypeError`` whose message starts with the name of a
  layer (``"Conv: ..."``, ``"Dense.kernel_fn: ..."``), or, for ``kernel_fn`` only, a
  ``NotImplementedError`` naming the layer;
* never anything else (an XLA error, an ``IndexError``, a ``ZeroDivisionError``, a
  crash) and never a silent NaN.

The default run is bounded (a few examples per layer); ``-m slow`` runs the bigger
profile.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from jaxdl import stax

pytestmark = pytest.mark.filterwarnings("ignore")

# Names a clean error may start with: every public layer, the combinators and the
# custom-layer decorator.
_LAYER_NAMES = sorted(
    {name for name in stax.__all__ if name[0].isupper()} | {"serial", "parallel", "repeat", "layer"},
    key=len,
    reverse=True,
)
_CLEAN_MESSAGE = re.compile(rf"^({'|'.join(map(re.escape, _LAYER_NAMES))})\b")

FAST = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SLOW = settings(FAST, max_examples=25)

# ---------------------------------------------------------------------------
# Strategies for hyperparameters.

# Valid values first (hypothesis shrinks toward the first) and more often than invalid ones.
widths = st.sampled_from([3, 1, 2, 4, 0, -1])
axes = st.sampled_from([-1, 0, 1, -1, 2, -2, 3, 4, -5])
stds = st.sampled_from([1.0, 0.5, 2.0, 1.5, 0.0, -1.0, float("nan"), float("inf")])
b_stds = st.one_of(st.none(), stds)
reals = st.one_of(st.floats(-3, 3), st.floats(-3, 3), st.sampled_from([0.0, float("nan"), float("inf")]))
paddings = st.sampled_from(["VALID", "SAME", "CIRCULAR", "CAUSAL", "same", "BOGUS", 3])
parameterizations = st.sampled_from(["ntk", "standard", "NTK", "other"])


def tuples(elements, min_size=0, max_size=3):
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


def optional(strategy):
    return st.one_of(st.none(), strategy)


def spatial_tuples():
    return tuples(st.sampled_from([2, 1, 3, 2, 1, 0, -1]), 0, 3)


# ---------------------------------------------------------------------------
# The table: name -> (strategy of (build thunk, hyperparameters), natural input rank).
# The rank is an int, "list" (a list of inputs) or a function of the hyperparameters.


class _Call:
    """``build(**kwargs)`` as a thunk whose repr shows the call (for hypothesis reports)."""

    def __init__(self, build, kwargs):
        self.build, self.kwargs = build, kwargs

    def __call__(self):
        return self.build(**self.kwargs)

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{getattr(self.build, '__name__', self.build)}({arguments})"


SIMPLE_CHILDREN = [
    ("Dense", dict(out_dim=3)),
    ("Relu", {}),
    ("Conv", dict(out_chan=2, filter_shape=(2,), padding="SAME")),
    ("Flatten", {}),
    ("Identity", {}),
    ("Erf", {}),
    ("GlobalAvgPool", {}),
    ("LayerNorm", {}),
    ("Dropout", dict(rate=0.5)),
    ("BatchNorm", {}),
    ("AvgPool", dict(window_shape=(2,))),
    ("FanOut", dict(num=2)),
    ("FanInSum", {}),
]
SIMPLE_CHILDREN = [_Call(getattr(stax, name), kwargs) for name, kwargs in SIMPLE_CHILDREN]
children = st.lists(st.sampled_from(SIMPLE_CHILDREN), min_size=0, max_size=3)


def _case(build, **strategies):
    """A strategy for ``(thunk, kwargs)``: ``thunk()`` calls ``build(**kwargs)``."""
    return st.fixed_dictionaries(strategies).map(lambda kwargs: (_Call(build, kwargs), kwargs))


def _serial(layers):
    return stax.serial(*[build() for build in layers])


def _parallel(layers):
    return stax.parallel(*[build() for build in layers])


def _repeat(layer, n):
    return stax.repeat(layer(), n)


def _weight_norm(layer, eps):
    return stax.WeightNorm(layer(), eps=eps)


RNN_ACTIVATIONS = [None, stax.Erf(), stax.Tanh(), stax.Relu(), stax.Dense(3)]
RNN_CHILDREN = [_Call(stax.LSTM, dict(hidden=2, return_sequences=True)), _Call(stax.GRU, dict(hidden=2)),
                _Call(stax.SimpleRNN, dict(hidden=3, return_sequences=True)), _Call(stax.Dense, dict(out_dim=2)),
                _Call(stax.BatchNorm, {})]


def _bidirectional(layer, merge):
    return stax.Bidirectional(layer(), merge=merge)


graph_impls = st.sampled_from(["DENSE", "SPARSE", "sparse", "CSR"])


def _message_passing(message, aggregate, update, message_inputs, implementation):
    return stax.MessagePassing(message(), aggregate, None if update is None else update(), message_inputs, implementation)


def _spatial_rank(key):
    """Batch + spatial axes + channels, for the filter or window drawn."""
    return lambda kwargs: len(kwargs[key]) + 2 if isinstance(kwargs[key], tuple) else 3


def _conv_case(build, dilation=False):
    extra = {"rhs_dilation": optional(spatial_tuples())} if dilation else {}
    return _case(
        build,
        out_chan=widths,
        filter_shape=spatial_tuples(),
        strides=optional(spatial_tuples()),
        padding=paddings,
        W_std=stds,
        b_std=b_stds,
        parameterization=parameterizations,
        **extra,
    )


def _pool_case(build, **extra):
    return _case(
        build,
        window_shape=spatial_tuples(),
        strides=optional(spatial_tuples()),
        padding=paddings,
        batch_axis=st.sampled_from([0, 0, 1, -1]),
        channel_axis=st.sampled_from([-1, -1, 1, 0]),
        **extra,
    )


CASES = {
    "Dense": (_case(stax.Dense, out_dim=widths, W_std=stds, b_std=b_stds, batch_axis=st.sampled_from([0, 0, 1, 5]),
                    channel_axis=axes, parameterization=parameterizations,
                    s=st.tuples(st.integers(-1, 3), st.integers(-1, 3))), 2),
    "Conv": (_conv_case(stax.Conv, dilation=True), _spatial_rank("filter_shape")),
    "ConvTranspose": (_conv_case(stax.ConvTranspose), _spatial_rank("filter_shape")),
    "ConvLocal": (_conv_case(stax.ConvLocal), _spatial_rank("filter_shape")),
    "AvgPool": (_pool_case(stax.AvgPool, normalize_edges=st.booleans()), _spatial_rank("window_shape")),
    "SumPool": (_pool_case(stax.SumPool), _spatial_rank("window_shape")),
    "MaxPool": (_pool_case(stax.MaxPool), _spatial_rank("window_shape")),
    "GlobalAvgPool": (_case(stax.GlobalAvgPool, batch_axis=axes, channel_axis=axes), 3),
    "GlobalSumPool": (_case(stax.GlobalSumPool, batch_axis=axes, channel_axis=axes), 3),
    "Flatten": (_case(stax.Flatten, batch_axis=axes, batch_axis_out=axes), 3),
    "Identity": (_case(stax.Identity), 2),
    "Dropout": (_case(stax.Dropout, rate=st.sampled_from([0.5, 1.0, 0.0, -0.5, 1.5, float("nan")]),
                      mode=st.sampled_from(["train", "test", "TRAIN", "bogus"])), 2),
    "LayerNorm": (_case(stax.LayerNorm, axis=st.one_of(axes, tuples(axes, 0, 3)),
                        eps=st.sampled_from([1e-12, 0.0, -1.0, 1e-3])), 2),
    "BatchNorm": (_case(stax.BatchNorm, axis=st.one_of(axes, tuples(axes, 0, 2)),
                        momentum=st.sampled_from([0.99, 0.0, 1.0, -0.5, 1.5]),
                        eps=st.sampled_from([1e-5, 0.0, -1.0])), 2),
    "WeightNorm": (_case(_weight_norm, layer=st.sampled_from(SIMPLE_CHILDREN), eps=st.sampled_from([1e-12, 0.0, -1.0])), 2),
    "Softmax": (_case(stax.Softmax, axis=axes), 2),
    "LRU": (_case(stax.LRU, d_state=widths, d_out=optional(widths),
                  r_min=st.sampled_from([0.0, 0.5, 0.9, 1.0, -0.1, float("nan")]),
                  r_max=st.sampled_from([1.0, 0.99, 0.5, 0.0, 1.5]),
                  max_phase=st.sampled_from([2 * math.pi, 0.3, 0.0, -1.0, float("inf")]),
                  mode=st.sampled_from(["parallel", "sequential", "bogus"]),
                  radius_distribution=st.sampled_from(["uniform", "ring", "bogus"])), 3),
    "Embedding": (_case(stax.Embedding, vocab_size=widths, dim=widths, W_std=stds), 2),
    "SimpleRNN": (_case(stax.SimpleRNN, hidden=widths, activation=st.sampled_from(RNN_ACTIVATIONS), W_std=stds,
                        U_std=stds, b_std=stds, return_sequences=st.booleans(),
                        parameterization=parameterizations), 3),
    "LSTM": (_case(stax.LSTM, hidden=widths, return_sequences=st.booleans(),
                   forget_bias=st.sampled_from([1.0, 0.0, -2.0, float("nan")])), 3),
    "GRU": (_case(stax.GRU, hidden=widths, return_sequences=st.booleans()), 3),
    "Bidirectional": (_case(_bidirectional, layer=st.sampled_from(RNN_CHILDREN),
                            merge=st.sampled_from(["concat", "sum", "bogus"])), 3),
    "Maxout": (_case(stax.Maxout, num_pieces=widths, channel_axis=axes), 2),
    "GlobalSelfAttention": (_case(
        stax.GlobalSelfAttention, n_chan_out=widths, n_chan_key=widths, n_chan_val=widths, n_heads=widths,
        linear_scaling=st.booleans(), W_key_std=stds, W_value_std=stds, W_query_std=stds, W_out_std=stds,
        b_std=b_stds, attention_mechanism=st.sampled_from(["SOFTMAX", "IDENTITY", "RELU", "ABS", "bogus"]),
        pos_emb_type=st.sampled_from(["NONE", "SUM", "CONCAT", "bogus"]),
        n_chan_pos_emb=optional(widths), val_pos_emb=st.booleans()), 3),
    "MultiHeadAttention": (_case(stax.MultiHeadAttention, num_heads=widths, head_dim=widths, out_dim=optional(widths),
                                 causal=st.booleans(), implementation=st.sampled_from(["xla", "reference", "auto", "bogus"])), 3),
    "PositionalEncoding": (_case(stax.PositionalEncoding, kind=st.sampled_from(["sinusoidal", "learned", "bogus"]),
                                 max_length=widths), 3),
    "TransformerBlock": (_case(stax.TransformerBlock, num_heads=widths, head_dim=widths, mlp_dim=widths,
                               pre_ln=st.booleans(), dropout_rate=st.sampled_from([0.0, 0.5, 1.0, -0.1]),
                               causal=st.booleans()), 3),
    "Aggregate": (_case(stax.Aggregate, aggregate_axis=optional(st.one_of(axes, tuples(axes, 0, 2))),
                        batch_axis=st.sampled_from([0, 0, 1]), channel_axis=st.sampled_from([-1, -1, 1])), 3),
    "GCNConv": (_case(stax.GCNConv, out_dim=widths, W_std=stds, b_std=b_stds, implementation=graph_impls), 3),
    "GATConv": (_case(stax.GATConv, out_dim=widths, num_heads=widths, concat_heads=st.booleans(),
                      negative_slope=reals, b_std=b_stds, implementation=graph_impls), 3),
    "ChebConv": (_case(stax.ChebConv, out_dim=widths, K=st.integers(-1, 3), lambda_max=st.sampled_from([2.0, 0.0, 1.5]),
                       b_std=b_stds, implementation=graph_impls), 3),
    "MessagePassing": (_case(_message_passing, message=st.sampled_from(SIMPLE_CHILDREN),
                             aggregate=st.sampled_from(["sum", "mean", "max", "median"]),
                             update=optional(st.sampled_from(SIMPLE_CHILDREN)),
                             message_inputs=st.sampled_from(["sender", "sender_receiver"]),
                             implementation=graph_impls), 3),
    "SetPool": (_case(stax.SetPool, pooling=st.sampled_from(["sum", "mean", "max", "median"])), 3),
    "PermEquivariant": (_case(stax.PermEquivariant, out_dim=widths, pooling=st.sampled_from(["mean", "sum", "max"]),
                              W_std=stds, b_std=b_stds), 3),
    "DotGeneral": (_case(
        stax.DotGeneral,
        rhs=st.sampled_from([None, 2.0, float("nan"), "matrix"]).map(
            lambda r: jnp.ones((3, 2)) if r == "matrix" else r),
        dimension_numbers=st.sampled_from([(((), ()), ((), ())), (((1,), (0,)), ((), ())),
                                           (((-1,), (0,)), ((), ())), (((5,), (0,)), ((), ()))])), 2),
    "Index": (_case(stax.Index, idx=st.sampled_from([stax.Slice[:, 0], stax.Slice[..., 1:3], stax.Slice[:, ::2],
                                                     stax.Slice[0], stax.Slice[:, 10], (slice(None), -1),
                                                     stax.Slice[:, :, :, :, :, 0]])), 3),
    "ImageResize": (_case(stax.ImageResize, shape=tuples(st.integers(-2, 5), 0, 4),
                          method=st.sampled_from(["linear", "nearest", "cubic", "bogus"])), 4),
    "FanOut": (_case(stax.FanOut, num=widths), 2),
    "FanInSum": (_case(stax.FanInSum), "list"),
    "FanInProd": (_case(stax.FanInProd), "list"),
    "FanInConcat": (_case(stax.FanInConcat, axis=axes), "list"),
    "serial": (_case(_serial, layers=children), 3),
    "parallel": (_case(_parallel, layers=children), "list"),
    "repeat": (_case(_repeat, layer=st.sampled_from(SIMPLE_CHILDREN), n=st.integers(-1, 3)), 2),
    # Elementwise nonlinearities.
    "Relu": (_case(stax.Relu, do_stabilize=st.booleans()), 2),
    "LeakyRelu": (_case(stax.LeakyRelu, alpha=reals), 2),
    "Abs": (_case(stax.Abs), 2),
    "ABRelu": (_case(stax.ABRelu, a=reals, b=reals), 2),
    "Erf": (_case(stax.Erf, a=reals, b=reals, c=reals), 2),
    "Gelu": (_case(stax.Gelu, approximate=st.booleans()), 2),
    "Sigmoid_like": (_case(stax.Sigmoid_like), 2),
    "Sign": (_case(stax.Sign), 2),
    "Sin": (_case(stax.Sin, a=reals, b=reals, c=reals), 2),
    "Cos": (_case(stax.Cos, a=reals, b=reals, c=reals), 2),
    "Rbf": (_case(stax.Rbf, gamma=reals), 2),
    "Exp": (_case(stax.Exp, a=reals, b=reals), 2),
    "Gaussian": (_case(stax.Gaussian, a=reals, b=reals), 2),
    "ExpNormalized": (_case(stax.ExpNormalized, gamma=reals, shift=reals, do_clip=st.booleans()), 2),
    "Monomial": (_case(stax.Monomial, degree=st.integers(-1, 5)), 2),
    "RectifiedMonomial": (_case(stax.RectifiedMonomial, degree=st.integers(-1, 5)), 2),
    "Polynomial": (_case(stax.Polynomial, coef=st.lists(reals, min_size=0, max_size=4)), 2),
    "Hermite": (_case(stax.Hermite, degree=st.integers(-1, 6)), 2),
    "Gabor": (_case(stax.Gabor), 2),
    "Elementwise": (_case(stax.Elementwise, fn=st.sampled_from([jnp.tanh, None])), 2),
    "ElementwiseNumerical": (_case(stax.ElementwiseNumerical, fn=st.just(jnp.sin), deg=st.integers(-1, 12)), 2),
    "Tanh": (_case(stax.Tanh), 2),
    "Sigmoid": (_case(stax.Sigmoid), 2),
    "Softplus": (_case(stax.Softplus), 2),
    "Elu": (_case(stax.Elu, alpha=reals), 2),
}

DTYPES = ["float32", "float64", "bfloat16", "float16", "int32"]

# Layers with no finite-width apply_fn (infinite-width only): NotImplementedError naming
# the layer is their documented answer to apply_fn.
KERNEL_ONLY = {"ExpNormalized"}

# A nonlinearity's kernel needs Gaussian pre-activations: its kernel_fn is checked
# behind a Dense layer.
NONLINEARITIES = {
    "Relu", "LeakyRelu", "Abs", "ABRelu", "Erf", "Gelu", "Sigmoid_like", "Sign", "Sin", "Cos", "Rbf", "Exp",
    "Gaussian", "ExpNormalized", "Monomial", "RectifiedMonomial", "Polynomial", "Hermite", "Gabor", "Elementwise",
    "ElementwiseNumerical", "Tanh", "Sigmoid", "Softplus", "Elu",
}  # fmt: skip


@st.composite
def shapes(draw, natural_rank: int):
    rank = draw(st.one_of(st.just(natural_rank), st.just(natural_rank), st.integers(0, 4)))
    dims = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    if dims and draw(st.integers(0, 9)) == 0:  # now and then a size-0 axis for init_fn
        dims[draw(st.integers(0, rank - 1))] = 0
    return tuple(dims)


@st.composite
def cases(draw, name: str):
    build_strategy, rank = CASES[name]
    build, kwargs = draw(build_strategy)
    if callable(rank):
        rank = rank(kwargs)
    if rank == "list":
        first = draw(shapes(2))
        count = draw(st.integers(1, 3))
        same = draw(st.booleans())
        shape = [first if same else draw(shapes(2)) for _ in range(count)]
    else:
        shape = draw(shapes(rank))
    batch_axis = kwargs.get("batch_axis", 0)
    return build, shape, draw(st.sampled_from(DTYPES)), batch_axis


# ---------------------------------------------------------------------------
# The contract.


class Rejected(Exception):
    """A stage raised a clean error; the example ends there."""


def _clean(stage: str, call, allow_not_implemented: bool = False):
    """Run ``call``; a clean error ends the example, anything else fails the test."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        if _CLEAN_MESSAGE.match(str(error)):
            raise Rejected from error
        raise AssertionError(f"{stage}: {type(error).__name__} not naming a layer: {error}") from error
    except NotImplementedError as error:
        if allow_not_implemented and _CLEAN_MESSAGE.match(str(error)):
            raise Rejected from error
        raise AssertionError(f"{stage}: unexpected NotImplementedError: {error}") from error
    except Exception as error:  # noqa: BLE001 - any other exception is the defect being hunted
        raise AssertionError(f"{stage}: {type(error).__name__}: {error}") from error


def _inputs(shape, dtype: str, key):
    if isinstance(shape, list):
        keys = jax.random.split(key, len(shape))
        return [_inputs(s, dtype, k) for s, k in zip(shape, keys)]
    if dtype == "int32":
        return jax.random.randint(key, shape, -3, 4)
    return jax.random.normal(key, shape, jnp.dtype(dtype))


def _check_output(stage: str, out, expected_shape):
    if isinstance(expected_shape, list):
        assert isinstance(out, (list, tuple)) and len(out) == len(expected_shape), (
            f"{stage}: expected {len(expected_shape)} outputs, got {type(out).__name__}"
        )
        for part, part_shape in zip(out, expected_shape):
            _check_output(stage, part, part_shape)
        return
    out = np.asarray(jnp.asarray(out, jnp.float32))
    assert tuple(out.shape) == tuple(expected_shape), f"{stage}: output shape {out.shape}, init said {expected_shape}"
    assert np.isfinite(out).all(), f"{stage}: non-finite output {out.ravel()[~np.isfinite(out.ravel())][:3]}"


def _apply(layer, params, x, shape, key):
    if layer.stateful:
        state = _clean("init_state", lambda: layer.init_state(shape))
        out, _ = layer.apply(params, x, state=state, key=key)
        return out
    return layer.apply(params, x, key=key)


def _fits(axis, shape) -> bool:
    return isinstance(axis, int) and -len(shape) <= axis < len(shape)


def _with_batch(shape, batch, replace=None, axis=0):
    """``shape`` (or each of a list) with its batch ``axis`` set to ``batch``; with
    ``replace``, the entries equal to it instead (``None`` where the axis does not fit)."""
    if isinstance(shape, list):
        parts = [_with_batch(s, batch, replace, axis) for s in shape]
        return None if None in parts else parts
    if replace is not None:
        return tuple(batch if d == replace else d for d in shape)
    if not _fits(axis, shape):
        return None
    shape = list(shape)
    shape[axis] = batch
    return tuple(shape)


def _event(text: str) -> None:
    """Count how far examples get (shown by ``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(text)


def run_case(name, build, shape, dtype, batch_axis=0):
    """Every stage of one drawn example: build, init_fn, then independently apply_fn,
    apply_fn on a batch of 0 and kernel_fn."""
    key = jax.random.key(0)
    with jax.enable_x64(dtype == "float64"):
        try:
            layer = _clean("build", build)
        except Rejected:
            _event("rejected by the constructor")
            return
        try:
            out_shape, params = _clean("init_fn", lambda: layer.init(key, shape))
        except Rejected:
            _event("rejected by init_fn")
            return
        x = _inputs(shape, dtype, jax.random.key(1))
        for stage in (_check_apply, _check_zero_batch, _check_kernel):
            try:
                stage(name, layer, params, out_shape, shape, x, dtype, batch_axis)
                _event(f"{stage.__name__[7:]}: checked")
            except Rejected:
                _event(f"{stage.__name__[7:]}: clean error")


def _check_apply(name, layer, params, out_shape, shape, x, dtype, batch_axis):
    out = _clean(
        "apply_fn",
        lambda: _apply(layer, params, x, shape, jax.random.key(2)),
        allow_not_implemented=name in KERNEL_ONLY,
    )
    _check_output(f"{name} apply_fn", out, out_shape)


def _check_zero_batch(name, layer, params, out_shape, shape, x, dtype, batch_axis):
    """A batch of 0: expect the shape init_fn reports for an unknown (-1) batch, 0 for -1."""
    unknown, zero = _with_batch(shape, -1, axis=batch_axis), _with_batch(shape, 0, axis=batch_axis)
    if zero is None:
        return
    expected, _ = _clean("init_fn with batch -1", lambda: layer.init(jax.random.key(0), unknown))
    empty = _inputs(zero, dtype, jax.random.key(1))
    out = _clean(
        "apply_fn on a batch of 0",
        lambda: _apply(layer, params, empty, unknown, jax.random.key(2)),
        allow_not_implemented=name in KERNEL_ONLY,
    )
    _check_output(f"{name} apply_fn on a batch of 0", out, _with_batch(expected, 0, replace=-1))


def _check_kernel(name, layer, params, out_shape, shape, x, dtype, batch_axis):
    if name in NONLINEARITIES:
        layer = stax.serial(stax.Dense(3, W_std=1.5, b_std=0.1), layer)
    kernel = _clean("kernel_fn", lambda: layer.kernel(x, None, ("nngp", "ntk")), allow_not_implemented=True)
    rows = None if isinstance(shape, list) or not _fits(batch_axis, shape) else shape[batch_axis]
    for part in jax.tree.leaves(kernel):
        values = np.asarray(jnp.asarray(part, jnp.float32))
        assert np.isfinite(values).all(), f"{name} kernel_fn: non-finite kernel entries"
        if rows is not None and values.ndim >= 2:
            assert values.shape[:2] == (rows, rows), f"{name} kernel_fn: shape {values.shape}, batch {rows}"


def test_the_table_covers_every_public_layer():
    public = {name for name in stax.__all__ if name[0].isupper() or name in ("serial", "parallel", "repeat")}
    not_layers = {"Layer", "LayerSpec", "MaskedArray", "Padding", "PositionalEmbedding", "AttentionMechanism",
                  "AggregateImplementation", "Bool", "Diagonal", "Slice"}
    assert public - not_layers - set(CASES) == set()


@FAST
@given(data=st.data())
def test_layers_are_finite_or_raise_clearly(data):
    """The default run: a bounded sample over the whole table."""
    name = data.draw(st.sampled_from(sorted(CASES)), label="layer")
    run_case(name, *data.draw(cases(name)))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
@SLOW
@given(data=st.data())
def test_each_layer_is_finite_or_raises_clearly(name, data):
    run_case(name, *data.draw(cases(name)))


# The defects the fuzzer found, pinned as examples (each failed before its fix).
FOUND = [
    ("ABRelu", lambda: stax.ABRelu(0.0, float("nan")), (2, 3), "float32"),
    ("LeakyRelu", lambda: stax.LeakyRelu(float("nan")), (2, 3), "float32"),
    ("Erf", lambda: stax.Erf(1.0, 1.0, float("inf")), (2, 3), "float32"),
    ("Sin", lambda: stax.Sin(1.0, 1.0, float("nan")), (2, 3), "float32"),
    ("Cos", lambda: stax.Cos(float("inf")), (2, 3), "float32"),
    ("Exp", lambda: stax.Exp(0.0, float("nan")), (2, 3), "float32"),
    ("Gaussian", lambda: stax.Gaussian(0.0, float("nan")), (2, 3), "float32"),
    ("Elu", lambda: stax.Elu(float("nan")), (2, 3), "float32"),
    ("Rbf", lambda: stax.Rbf(float("inf")), (2, 3), "float32"),
    ("Polynomial", lambda: stax.Polynomial([float("nan")]), (2, 3), "float32"),
    ("Polynomial", lambda: stax.Polynomial([float("inf")]), (2, 3), "int32"),
    ("Maxout", lambda: stax.Maxout(1, channel_axis=0), (), "float32"),
    ("Maxout", lambda: stax.Maxout(1, channel_axis=-3), (2, 3), "float32"),
    ("Flatten", stax.Flatten, (1,), "float32"),
    ("Flatten", stax.Flatten, (2, 3, 4), "float32"),
    ("Flatten", lambda: stax.Flatten(batch_axis=-1), (2, 3), "float32"),
    ("DotGeneral", lambda: stax.DotGeneral(rhs=float("nan")), (2, 3), "float32"),
    ("FanInConcat", lambda: stax.FanInConcat(axis=0), [(1, 2), (1, 2)], "float32"),
    ("GlobalSelfAttention", lambda: stax.GlobalSelfAttention(3, 3, 3, 3), (1, 1, 1), "float32"),
    ("GlobalSelfAttention", lambda: stax.GlobalSelfAttention(3, 3, 3, 3, W_out_std=float("nan")), (2, 2, 1), "float32"),
    ("Conv", lambda: stax.Conv(2, (2,), padding="SAME"), (1, 3, 1), "bfloat16"),
    ("ConvTranspose", lambda: stax.ConvTranspose(2, (2,)), (1, 3, 1), "int32"),
    ("ConvLocal", lambda: stax.ConvLocal(2, (2,)), (1, 3, 1), "float16"),
    ("Sigmoid", stax.Sigmoid, (1, 1), "int32"),
]


@pytest.mark.parametrize("name, build, shape, dtype", FOUND, ids=[f"{c[0]}-{i}" for i, c in enumerate(FOUND)])
def test_found_defects_stay_fixed(name, build, shape, dtype):
    run_case(name, build, shape, dtype)


def test_polynomial_keeps_fractional_coefficients_on_integer_inputs():
    """Found by the fuzzer: int inputs cast the coefficients to int (0.5 -> 0)."""
    x = jnp.arange(-2, 3)
    out = stax.Polynomial([0.5, 0.25]).apply({}, x)
    np.testing.assert_allclose(out, 0.5 + 0.25 * np.arange(-2, 3))


def test_global_avg_pool_refuses_to_average_an_empty_axis():
    with pytest.raises(ValueError, match="GlobalAvgPool: expected non-empty spatial axes"):
        stax.GlobalAvgPool().apply({}, jnp.ones((2, 0, 3)))
    np.testing.assert_array_equal(stax.GlobalSumPool().apply({}, jnp.ones((2, 0, 3))), np.zeros((2, 3)))


def test_flatten_handles_an_empty_batch_and_unknown_sizes():
    np.testing.assert_array_equal(stax.Flatten().apply({}, jnp.zeros((0, 3, 4))).shape, (0, 12))
    assert stax.Flatten(batch_axis=-1).init(jax.random.key(0), (-1, 3))[0] == (3, -1)


def test_the_contract_catches_a_foreign_error_and_a_nan():
    """The checker itself: an IndexError, a message without a layer name and a NaN
    output all fail; a clean error passes."""
    with pytest.raises(AssertionError, match="IndexError"):
        _clean("apply_fn", lambda: [][1])
    with pytest.raises(AssertionError, match="not naming a layer"):
        _clean("apply_fn", lambda: math.sqrt(-1))
    with pytest.raises(Rejected):
        _clean("apply_fn", lambda: stax.Dense(-1))
    bad = stax.Elementwise(lambda x: jnp.log(x - 10.0))
    with pytest.raises(AssertionError, match="non-finite output"):
        run_case("Elementwise", lambda: bad, (2, 3), "float32")
