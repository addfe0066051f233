"""Training: a jitted loop over any optax optimiser (:func:`fit`, which carries the
state of stateful models), bit-exact atomic checkpoints with an integrity check
(:func:`save_checkpoint`, :func:`restore_checkpoint`), the losses of the
seeds' tricks chapter (:mod:`jaxdl.train.losses`) and truncated BPTT for long
streams (:mod:`jaxdl.train.tbptt`)."""

from jaxdl.train import losses
from jaxdl.train.checkpoint import CheckpointError, restore_checkpoint, save_checkpoint
from jaxdl.train.loop import FitResult, TrainState, fit
from jaxdl.train.tbptt import make_tbptt_step, truncated_bptt_loss
from jaxdl.train.losses import (
    cross_entropy,
    distillation_loss,
    distillation_targets,
    make_cross_entropy_loss,
    make_distillation_loss,
    smooth_labels,
    tempered_cross_entropy,
    tempered_softmax,
)

__all__ = [
    "CheckpointError", "FitResult", "TrainState", "cross_entropy", "distillation_loss", "distillation_targets", "fit", "losses",
    "make_cross_entropy_loss", "make_distillation_loss", "restore_checkpoint", "save_checkpoint", "smooth_labels",
    "tempered_cross_entropy", "tempered_softmax", "make_tbptt_step", "truncated_bptt_loss",
]  # fmt: skip
