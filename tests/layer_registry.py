"""Every public stax layer once, with an input spec, for the parametrised layer tests.

An entry is ``(id, build, input_shape, bad_input_shape)``: ``build()`` returns the
layer; ``input_shape`` has the batch on axis 0 (a list of shapes for layers that
take a list); ``bad_input_shape`` is a shape the layer must reject with a clear
error (``None`` where every shape is valid, e.g. elementwise layers).
"""

import math

import jax.numpy as jnp

from jaxdl import models, stax
from jaxdl.generative import dlgm

B = 3
VEC = (B, 6)
IMG = (B, 6, 5, 2)
SEQ = (B, 7, 2)
VOL = (B, 4, 4, 3, 2)
GRAPH = (B, 5, 3)  # (batch, nodes or set elements, features)


class TokenIds(tuple):
    """An input shape of integer token ids in ``[0, vocab)`` (``Embedding``): the
    matrix draws random ids instead of Gaussian floats and does not differentiate
    with respect to them."""

    def __new__(cls, shape, vocab):
        self = super().__new__(cls, shape)
        self.vocab = vocab
        return self


TOKENS = TokenIds((B, 7), vocab=11)


def _elementwise():
    return [
        ("Relu", stax.Relu),
        ("LeakyRelu", lambda: stax.LeakyRelu(0.1)),
        ("Abs", stax.Abs),
        ("ABRelu", lambda: stax.ABRelu(-0.5, 2.0)),
        ("Erf", lambda: stax.Erf(2.0, 0.5, 0.1)),
        ("Gelu", stax.Gelu),
        ("Gelu_approx", lambda: stax.Gelu(approximate=True)),
        ("Sigmoid_like", stax.Sigmoid_like),
        ("Sign", stax.Sign),
        ("Sin", lambda: stax.Sin(1.5, 2.0, 0.3)),
        ("Cos", stax.Cos),
        ("Rbf", lambda: stax.Rbf(0.5)),
        ("Exp", lambda: stax.Exp(0.5, 0.3)),
        ("Gaussian", stax.Gaussian),
        ("Monomial", lambda: stax.Monomial(3)),
        ("RectifiedMonomial", lambda: stax.RectifiedMonomial(2)),
        ("Polynomial", lambda: stax.Polynomial([0.5, -1.0, 0.25])),
        ("Hermite", lambda: stax.Hermite(4)),
        ("Gabor", stax.Gabor),
        ("Elementwise", lambda: stax.Elementwise(jnp.tanh)),
        ("ElementwiseNumerical", lambda: stax.ElementwiseNumerical(jnp.sin, deg=10)),
        ("Tanh", stax.Tanh),
        ("Sigmoid", stax.Sigmoid),
        ("Softplus", stax.Softplus),
        ("Elu", lambda: stax.Elu(0.7)),
    ]


def _models():
    """The ``jaxdl.models`` constructors at toy sizes (BatchNorm ones are stateful)."""
    return [
        ("models.mlp", lambda: models.mlp((8, 6), 3), VEC, (B, 7)),
        ("models.lenet5", lambda: models.lenet5(3, channels=(2, 3), hidden=(5,), filter_size=3, padding="SAME"), IMG, (B, 6, 5, 3)),
        ("models.vgg", lambda: models.vgg(3, widths=(3, 4), convs_per_stage=(1, 2), hidden=(5,)), (B, 4, 4, 2), (B, 4, 4, 3)),
        ("models.resnet_bn", lambda: models.resnet(3, widths=(3, 4), blocks_per_stage=(2, 1)), IMG, (B, 6, 5, 3)),
        ("models.resnet_no_bn", lambda: models.resnet(3, widths=(3, 4), blocks_per_stage=1, batch_norm=False), IMG, (B, 6, 5, 3)),
        ("models.inception_block", lambda: models.inception_block(2, (2, 3), (1, 2), 2), IMG, (B, 6, 5, 3)),
        ("models.densenet_block", lambda: models.densenet_block(2, 3, bottleneck=4), IMG, (B, 6, 5, 3)),
        ("models.unet", lambda: models.unet(2, widths=(3, 4)), (B, 4, 6, 2), (B, 4, 6, 3)),
        ("models.lru_block_mlp", lambda: models.lru_block(2, 3, r_min=0.5, mixer="mlp"), SEQ, (B, 7, 3)),
        ("models.deep_lru", lambda: models.deep_lru(2, 4, 3, 2, pooling="last", r_min=0.5), SEQ, (B, 7, 3)),
        ("models.rnn_classifier_gru", lambda: models.rnn_classifier(2, cell="gru", hidden=(3, 4)), SEQ, (B, 7, 3)),
        ("models.rnn_classifier_lru_mean", lambda: models.rnn_classifier(2, cell="lru", hidden=3, readout="mean", bidirectional=True), SEQ, (B, 7, 3)),
        ("models.rnn_lm", lambda: models.rnn_lm(11, cell="lstm", embed_dim=3, hidden=4), TOKENS, TokenIds((B, 7, 2), vocab=11)),
        ("models.text_cnn", lambda: models.text_cnn(11, 2, embed_dim=3, widths=(2, 3), num_filters=2), TOKENS, TokenIds((B, 7, 2), vocab=11)),
        ("models.gpt", lambda: models.gpt(11, context_length=8, d_model=4, num_heads=2, num_layers=1, mlp_ratio=2), TOKENS, TokenIds((B, 7, 2), vocab=11)),
        ("models.bert", lambda: models.bert(11, context_length=8, d_model=4, num_heads=2, num_layers=1, mlp_ratio=2), TOKENS, TokenIds((B, 9), vocab=11)),
        ("models.vit", lambda: models.vit(3, patch_size=2, d_model=4, num_heads=2, num_layers=1), (B, 4, 6, 2), (B, 4, 6, 3)),
        ("models.wavenet", lambda: models.wavenet(4, num_layers=2, residual_channels=3, dilation_channels=2, skip_channels=3), SEQ, (B, 7, 3)),
    ]  # fmt: skip


LAYERS = [
    ("Dense", lambda: stax.Dense(5, W_std=1.5, b_std=0.2), VEC, (B, 7)),
    ("Dense_standard", lambda: stax.Dense(5, 1.5, 0.2, parameterization="standard", s=(2, 3)), VEC, (B, 7)),
    ("Dense_he_normal", lambda: stax.Dense(5, parameterization="standard", W_init=stax.initializers.he_normal()), VEC, (B, 7)),
    ("Dense_on_images", lambda: stax.Dense(4, b_std=0.1), IMG, (B, 6, 5, 3)),
    ("Dense_channel_first", lambda: stax.Dense(4, channel_axis=1), (B, 3, 5), (B, 4, 5)),
    ("Conv1D_SAME", lambda: stax.Conv(4, (3,), padding="SAME", b_std=0.1), SEQ, (B, 7, 3)),
    ("Conv2D_VALID_strided", lambda: stax.Conv(4, (3, 2), strides=(2, 1), b_std=0.1), IMG, (B, 6, 5)),
    ("Conv2D_CIRCULAR", lambda: stax.Conv(3, (3, 3), padding="CIRCULAR"), IMG, (B, 6, 5, 3)),
    ("Conv2D_standard", lambda: stax.Conv(3, (2, 2), parameterization="standard", b_std=0.3), IMG, (B, 6, 5, 3)),
    ("Conv2D_NCHW", lambda: stax.Conv(3, (2, 2), dimension_numbers=("NCHW", "OIHW", "NCHW")), (B, 2, 6, 5), (B, 3, 6, 5)),
    ("Conv3D", lambda: stax.Conv(2, (2, 2, 2), padding="SAME"), VOL, (B, 4, 4, 3)),
    ("Conv1D_CAUSAL_dilated", lambda: stax.Conv(4, (2,), padding="CAUSAL", rhs_dilation=(3,), b_std=0.1), SEQ, (B, 7, 3)),
    ("Conv2D_dilated_SAME_strided", lambda: stax.Conv(3, (3, 2), (2, 1), "SAME", rhs_dilation=(2, 2)), IMG, (B, 6, 5, 3)),
    ("ConvTranspose_VALID", lambda: stax.ConvTranspose(3, (3, 2), strides=(2, 1), b_std=0.1), IMG, (B, 6, 5, 3)),
    ("ConvTranspose_CIRCULAR", lambda: stax.ConvTranspose(3, (3, 3), strides=(2, 2), padding="CIRCULAR"), IMG, (B, 6, 5, 3)),
    ("ConvLocal", lambda: stax.ConvLocal(3, (2, 2), padding="SAME", b_std=0.1), IMG, (B, 6, 5, 3)),
    ("AvgPool", lambda: stax.AvgPool((2, 2)), IMG, (B, 6, 5)),
    ("AvgPool_SAME_normalized", lambda: stax.AvgPool((3, 2), (2, 2), "SAME", normalize_edges=True), IMG, (B, 6, 5)),
    ("AvgPool_CIRCULAR", lambda: stax.AvgPool((3, 3), padding="CIRCULAR"), IMG, (B, 6, 5)),
    ("SumPool", lambda: stax.SumPool((2,), strides=(2,)), SEQ, (B, 7)),
    ("MaxPool", lambda: stax.MaxPool((2, 2), padding="SAME"), IMG, (B, 6, 5)),
    ("GlobalAvgPool", stax.GlobalAvgPool, IMG, None),
    ("GlobalSumPool", stax.GlobalSumPool, SEQ, None),
    ("Flatten", stax.Flatten, IMG, None),
    ("Identity", stax.Identity, IMG, None),
    ("Dropout_test", lambda: stax.Dropout(0.8, mode="test"), VEC, None),
    ("LayerNorm", stax.LayerNorm, VEC, None),
    ("BatchNorm", stax.BatchNorm, IMG, (B, 6, 5, 3)),
    ("BatchNorm_dense_channel_first", lambda: stax.BatchNorm(axis=1, momentum=0.9), (B, 4, 5), (B, 3, 5)),
    ("WeightNorm_Dense", lambda: stax.WeightNorm(stax.Dense(5, b_std=0.1)), VEC, (B, 7)),
    ("WeightNorm_Conv", lambda: stax.WeightNorm(stax.Conv(3, (2, 2), padding="SAME")), IMG, (B, 6, 5, 3)),
    ("LayerNorm_spatial", lambda: stax.LayerNorm(axis=(1, 2, 3)), IMG, (B, 6)),
    ("Softmax", stax.Softmax, VEC, None),
    ("LRU", lambda: stax.LRU(4, 5, r_min=0.4, max_phase=3.0), SEQ, (B, 7, 3)),
    ("LRU_sequential_ring", lambda: stax.LRU(3, mode="sequential", radius_distribution="ring"), SEQ, (B, 7)),
    ("Embedding", lambda: stax.Embedding(11, 4, W_std=0.5), TOKENS, TokenIds((B, 7, 2), vocab=11)),
    ("SimpleRNN_last", lambda: stax.SimpleRNN(5, b_std=0.1), SEQ, (B, 7, 3)),
    ("SimpleRNN_sequences_standard_relu", lambda: stax.SimpleRNN(
        4, stax.Relu(), W_std=0.8, b_std=0.2, return_sequences=True, parameterization="standard"), SEQ, (B, 7)),
    ("LSTM_last", lambda: stax.LSTM(4), SEQ, (B, 7, 3)),
    ("LSTM_sequences", lambda: stax.LSTM(3, return_sequences=True, forget_bias=0.5), SEQ, (B, 7)),
    ("GRU_last", lambda: stax.GRU(4), SEQ, (B, 7, 3)),
    ("GRU_sequences", lambda: stax.GRU(3, return_sequences=True), SEQ, (B, 7)),
    ("Bidirectional_LSTM_concat", lambda: stax.Bidirectional(stax.LSTM(3, return_sequences=True)), SEQ, (B, 7, 3)),
    ("Bidirectional_GRU_last_sum", lambda: stax.Bidirectional(stax.GRU(3), merge="sum"), SEQ, (B, 7)),
    ("serial_embedding_stacked_lstm", lambda: stax.serial(
        stax.Embedding(11, 3), stax.LSTM(4, return_sequences=True), stax.LSTM(3), stax.Dense(2)), TOKENS, TokenIds((B,), vocab=11)),
    ("Maxout", lambda: stax.Maxout(2), VEC, (B, 7)),
    ("GlobalSelfAttention", lambda: stax.GlobalSelfAttention(5, 4, 3, 2, b_std=0.1), SEQ, (B, 7, 3)),
    ("GlobalSelfAttention_sqrt_pos_emb", lambda: stax.GlobalSelfAttention(
        4, 3, 3, 2, linear_scaling=False, pos_emb_type="CONCAT", n_chan_pos_emb=3, val_pos_emb=True,
        pos_emb_decay_fn=lambda d: jnp.exp(-d)), IMG, (B, 6, 5, 3)),
    ("Aggregate_identity_graph", stax.Aggregate, SEQ, None),
    # transformers (issue 15)
    ("MultiHeadAttention", lambda: stax.MultiHeadAttention(2, 3), SEQ, (B, 7, 3)),
    ("MultiHeadAttention_causal_reference_out_dim", lambda: stax.MultiHeadAttention(
        3, 2, out_dim=4, causal=True, implementation="reference"), SEQ, (B, 7)),
    ("PositionalEncoding_sinusoidal", lambda: stax.PositionalEncoding("sinusoidal", max_length=8), SEQ, (B, 9, 2)),
    ("PositionalEncoding_learned", lambda: stax.PositionalEncoding("learned", max_length=8), SEQ, (B, 7, 3)),
    ("TransformerBlock_pre_ln_causal", lambda: stax.TransformerBlock(2, 3, 5, causal=True), SEQ, (B, 7, 3)),
    ("TransformerBlock_post_ln", lambda: stax.TransformerBlock(1, 2, 3, pre_ln=False, dropout_rate=0.1), SEQ, (B, 7, 3)),
    # geometric deep learning (issue 16): called without a graph (pattern=None: no edges)
    ("GCNConv", lambda: stax.GCNConv(4, 1.3, 0.1), GRAPH, (B, 5, 4)),
    ("GCNConv_sparse", lambda: stax.GCNConv(4, implementation="SPARSE"), GRAPH, (B, 5, 4)),
    ("GATConv", lambda: stax.GATConv(2, num_heads=2, b_std=0.1), GRAPH, (B, 5, 4)),
    ("GATConv_sparse_mean_heads", lambda: stax.GATConv(2, 3, concat_heads=False, implementation="SPARSE"), GRAPH, (B, 5, 4)),
    ("ChebConv", lambda: stax.ChebConv(3, K=2, b_std=0.1), GRAPH, (B, 5, 4)),
    ("MessagePassing", lambda: stax.MessagePassing(stax.Dense(4), "max", stax.serial(stax.Dense(3), stax.Relu())), GRAPH, (B, 5, 4)),
    ("MessagePassing_sparse_pairs", lambda: stax.MessagePassing(
        stax.Dense(3), "mean", None, "sender_receiver", implementation="SPARSE"), GRAPH, (B, 5, 4)),
    ("SetPool_sum", stax.SetPool, GRAPH, (B, 5)),
    ("SetPool_max", lambda: stax.SetPool("max"), GRAPH, (B, 5)),
    ("PermEquivariant", lambda: stax.PermEquivariant(4, b_std=0.1), GRAPH, (B, 5, 4)),
    ("models.deep_sets", lambda: models.deep_sets(3, (4,), (4,)), GRAPH, (B, 5, 4)),
    ("models.pointnet", lambda: models.pointnet(3, dim=3, widths=(4, 6), head=(4,)), GRAPH, (B, 5, 4)),
    ("generative.DeepLatentGaussian", lambda: dlgm.DeepLatentGaussian(
        (3, 2), [stax.serial(stax.Dense(3), stax.Tanh())], stax.serial(stax.Dense(4), stax.Tanh())), (B, 5), (B, 6)),
    ("DotGeneral_rhs_contracting_H", lambda: stax.DotGeneral(
        rhs=jnp.linspace(-1.0, 1.0, 18).reshape(6, 3), dimension_numbers=(((1,), (0,)), ((), ()))), IMG, (B, 7, 5, 2)),
    ("DotGeneral_lhs_time", lambda: stax.DotGeneral(
        lhs=jnp.linspace(0.0, 1.0, 7), dimension_numbers=(((0,), (1,)), ((), ()))), SEQ, (B, 6, 2)),
    ("Index", lambda: stax.Index(stax.Slice[:, 1:5:2, ::-1]), IMG, (B,)),
    ("Index_integer_spatial", lambda: stax.Index(stax.Slice[..., 3, :]), IMG, (B, 6, 3, 2)),
    ("ImageResize_linear", lambda: stax.ImageResize((-1, 9, 3, -1), "linear"), IMG, (B, 6, 5)),
    ("ImageResize_nearest", lambda: stax.ImageResize((-1, 4, -1), "nearest"), SEQ, (B, 7, 2, 1)),
    ("serial_mlp", lambda: stax.serial(stax.Dense(8, b_std=0.1), stax.Relu(), stax.Dense(3)), VEC, (B, 5)),
    ("serial_cnn", lambda: stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu(), stax.Flatten(), stax.Dense(2)), IMG, (B, 6)),
    ("repeat", lambda: stax.repeat(stax.serial(stax.Dense(6), stax.Erf()), 3), VEC, (B, 5)),
    ("repeat_parameter_free", lambda: stax.repeat(stax.Relu(), 3), VEC, None),
    ("serial_stateful_residual_bn", lambda: stax.serial(
        stax.Conv(3, (3, 3), padding="SAME"), stax.BatchNorm(), stax.Relu(), stax.FanOut(2),
        stax.parallel(stax.serial(stax.Conv(3, (3, 3), padding="SAME"), stax.BatchNorm()), stax.Identity()),
        stax.FanInSum(), stax.repeat(stax.serial(stax.Dense(3), stax.BatchNorm()), 2)), IMG, (B, 6, 5, 3)),
    ("FanOut", lambda: stax.FanOut(3), VEC, None),
    ("FanInSum", stax.FanInSum, [VEC, VEC], [VEC, (B, 5)]),
    ("FanInProd", stax.FanInProd, [VEC, VEC, VEC], [VEC, (B, 5)]),
    ("FanInConcat", lambda: stax.FanInConcat(axis=-1), [VEC, (B, 4)], [VEC, (B + 1, 4)]),
    ("parallel", lambda: stax.parallel(stax.Dense(3), stax.Relu()), [VEC, IMG], [VEC]),
    ("residual", lambda: stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Dense(6), stax.Relu()), stax.Identity()), stax.FanInSum()), VEC, (B, 5)),
] + [(name, build, VEC, None) for name, build in _elementwise()] + _models()

IDS = [entry[0] for entry in LAYERS]

# Whole models compile slowly (float64, vmap, grad of every layer): the default run
# keeps one stateless, one stateful and the WaveNet routing; `-m slow` runs them all.
SLOW_IDS = {"models.lenet5", "models.vgg", "models.resnet_no_bn", "models.inception_block", "models.densenet_block",
            "models.unet",
            # recurrent variants whose default-run twins cover the same code paths (eager scans compile slowly)
            "LSTM_sequences", "GRU_last", "Bidirectional_GRU_last_sum", "serial_embedding_stacked_lstm",
            "models.rnn_classifier_gru", "models.rnn_classifier_lru_mean",
            # transformers: the models reuse the blocks tested in the default run
            "models.bert", "models.vit", "PositionalEncoding_sinusoidal", "TransformerBlock_post_ln"}


def num_elements(shape) -> int:
    return math.prod(shape)
