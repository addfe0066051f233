"""Training: a jitted loop over any optax optimiser (:func:`fit`) and bit-exact,
atomic checkpoints (:func:`save_checkpoint`, :func:`restore_checkpoint`)."""

from jaxdl.train.checkpoint import restore_checkpoint, save_checkpoint
from jaxdl.train.loop import FitResult, TrainState, fit

__all__ = ["FitResult", "TrainState", "fit", "restore_checkpoint", "save_checkpoint"]
