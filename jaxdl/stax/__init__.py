"""``jaxdl.stax``: layers as ``(init_fn, apply_fn, kernel_fn)`` triples.

Same names, arguments and defaults as ``neural_tangents.stax``, plus the
seeds' activations that neural-tangents lacks and the classic initialisers::

    from jaxdl import stax
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(10))
    out_shape, params = init_fn(jax.random.key(0), (-1, 64))
    logits = apply_fn(params, x)
    nngp = kernel_fn(x, x, "nngp")
"""

from jaxdl.stax import initializers
from jaxdl.stax.attention import GlobalSelfAttention
from jaxdl.stax.branching import FanInConcat, FanInProd, FanInSum, FanOut
from jaxdl.stax.combinators import parallel, repeat, serial
from jaxdl.stax.conv import Conv, ConvLocal, ConvTranspose
from jaxdl.stax.custom import Bool, Diagonal, layer, requires, supports_masking
from jaxdl.stax.dot_general import DotGeneral
from jaxdl.stax.enums import AggregateImplementation, AttentionMechanism, Padding, PositionalEmbedding
from jaxdl.stax.elementwise import (
    ABRelu,
    Abs,
    Cos,
    Elementwise,
    ElementwiseNumerical,
    Elu,
    Erf,
    Exp,
    ExpNormalized,
    Gabor,
    Gaussian,
    Gelu,
    Hermite,
    LeakyRelu,
    Maxout,
    Monomial,
    Polynomial,
    RectifiedMonomial,
    Rbf,
    Relu,
    Sigmoid,
    Sigmoid_like,
    Sign,
    Sin,
    Softmax,
    Softplus,
    Tanh,
)
from jaxdl.stax.graph import Aggregate
from jaxdl.stax.gnn import ChebConv, GATConv, GCNConv, MessagePassing
from jaxdl.stax.indexing import Index, Slice
from jaxdl.stax.layer import Layer, LayerSpec
from jaxdl.stax.linear import Dense, Dropout, Flatten, Identity
from jaxdl.stax.lru import LRU
from jaxdl.stax.masking import MaskedArray, unmask_fn
from jaxdl.stax.normalization import BatchNorm, LayerNorm, WeightNorm
from jaxdl.stax.pooling import AvgPool, GlobalAvgPool, GlobalSumPool, MaxPool, SumPool
from jaxdl.stax.recurrent import GRU, LSTM, Bidirectional, Embedding, SimpleRNN, zero_state
from jaxdl.stax.transformer import MultiHeadAttention, PositionalEncoding, TransformerBlock, attention_cache
from jaxdl.stax.resize import ImageResize
from jaxdl.stax.sets import PermEquivariant, SetPool

__all__ = [
    "ABRelu", "Aggregate", "Abs", "AvgPool", "BatchNorm", "WeightNorm", "Conv", "ConvLocal", "ConvTranspose", "Cos", "Dense",
    "Dropout", "Elementwise", "ElementwiseNumerical", "Elu", "Erf", "Exp", "ExpNormalized", "FanInConcat",
    "FanInProd", "FanInSum", "FanOut", "Flatten", "Gabor", "Gaussian", "Gelu", "GlobalAvgPool",
    "GlobalSelfAttention", "GlobalSumPool", "Hermite", "Identity", "Layer", "LayerNorm", "LayerSpec", "LeakyRelu",
    "LRU", "MaxPool", "Maxout", "Monomial", "Polynomial", "RectifiedMonomial", "Rbf", "Relu",
    "Sigmoid", "Sigmoid_like", "Sign", "Sin", "Softmax", "Softplus", "SumPool", "Tanh",
    "initializers", "parallel", "repeat", "serial",
    # neural-tangents 0.6.5's remaining public names (issue 22)
    "AggregateImplementation", "AttentionMechanism", "Bool", "Diagonal", "DotGeneral", "ImageResize", "Index",
    "MaskedArray", "Padding", "PositionalEmbedding", "Slice", "layer", "requires", "supports_masking", "unmask_fn",
    # geometric deep learning (issue 16)
    "ChebConv", "GATConv", "GCNConv", "MessagePassing", "PermEquivariant", "SetPool",
    # recurrent layers (issue 14)
    "Bidirectional", "Embedding", "GRU", "LSTM", "SimpleRNN", "zero_state",
    # transformers (issue 15)
    "MultiHeadAttention", "PositionalEncoding", "TransformerBlock", "attention_cache",
]  # fmt: skip
