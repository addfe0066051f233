"""``jaxdl.models``: the standard architectures of the seeds' CNN chapter, each a
stax triple ``(init_fn, apply_fn, kernel_fn)`` built from ``jaxdl.stax``
combinators, so that it trains with ``jaxdl.train.fit`` and, wherever every
layer has an infinite-width rule, its ``kernel_fn`` gives the analytic NNGP/NTK::

    from jaxdl import models
    init_fn, apply_fn, kernel_fn = models.resnet(10, widths=(16, 32), batch_norm=False)
    out_shape, params = init_fn(jax.random.key(0), (-1, 8, 8, 1))
    ntk = kernel_fn(x1, x2, "ntk")

Models with BatchNorm (``resnet``, ``resnet_block``, ``densenet_block`` by default)
are stateful: ``state = model.init_state(input_shape)`` and
``apply_fn(params, x, state=state, train=...) -> (y, new_state)``.
Inputs are channels-last: ``(batch, features)``, ``(batch, time, channels)`` or
``(batch, height, width, channels)``; the input channels come from ``init_fn``'s
``input_shape``.
"""

from jaxdl.models.cnn import lenet5, vgg
from jaxdl.models.densenet import densenet_block
from jaxdl.models.inception import inception_block
from jaxdl.models.lru import deep_lru, lru_block
from jaxdl.models.mlp import mlp
from jaxdl.models.recurrent import Seq2Seq, causal_lm_loss, lm_cross_entropy, rnn_classifier, rnn_lm, seq2seq
from jaxdl.models.recursive import RecursiveNet, recursive_net
from jaxdl.models.resnet import resnet, resnet_block
from jaxdl.models.sets import TNet, deep_sets, pointnet
from jaxdl.models.transformer import Transformer, bert, gpt, gpt_generate, mlm_loss, mlm_mask, patch_embedding, transformer, vit
from jaxdl.models.text import nearest_neighbours, skipgram_loss, skipgram_pairs, text_cnn, train_skipgram
from jaxdl.models.unet import unet
from jaxdl.models.wavenet import wavenet

__all__ = ["densenet_block", "inception_block", "lenet5", "mlp", "resnet", "resnet_block", "unet", "vgg", "wavenet"]
# sets (issue 16)
__all__ += ["TNet", "deep_sets", "pointnet"]
# recurrent, sequence and text models (issue 14)
__all__ += [
    "RecursiveNet", "Seq2Seq", "causal_lm_loss", "deep_lru", "lm_cross_entropy", "lru_block", "nearest_neighbours",
    "recursive_net", "rnn_classifier", "rnn_lm", "seq2seq", "skipgram_loss", "skipgram_pairs", "text_cnn",
    "train_skipgram",
]  # fmt: skip
# transformers (issue 15)
__all__ += ["Transformer", "bert", "gpt", "gpt_generate", "mlm_loss", "mlm_mask", "patch_embedding", "transformer", "vit"]
