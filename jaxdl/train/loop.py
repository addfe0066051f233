"""A jitted training loop over any optax optimiser, ``apply_fn`` and loss.

``fit`` runs epochs of shuffled minibatches (one ``jax.lax.scan`` per epoch,
compiled once), evaluates, keeps a history of metrics, stops early, shows a
tqdm bar (off when stderr is not a terminal), checkpoints, resumes, and can
run data-parallel over a ``jax.sharding.Mesh``: the batch axis is sharded over
the mesh axis ``data_axis`` and params and optimiser state are replicated, so
XLA's SPMD partitioner all-reduces the gradients (same result as one device,
up to the order of floating-point sums). The mesh may span the devices of
several processes (after ``jax.distributed.initialize``, each process passing
the same data and params; tested with two).

Stateful models (``BatchNorm``; the convention is in :mod:`jaxdl.stax.layer`):
pass ``state=model.init_state(input_shape)``; training then calls
``apply_fn(params, x, state=state, train=True) -> (outputs, new_state)`` and
evaluation ``train=False``. The model state lives in ``TrainState.model_state``,
is checkpointed with the rest, and under a mesh its batch statistics are those
of the global batch (the sharded mean is all-reduced by XLA).

Determinism: the run's PRNG key lives in :class:`TrainState` and is split once
per epoch (one half for the shuffle, one for ``apply_fn``'s randomness; the
``batch_transform`` key is folded from the epoch key), so a run resumed from a checkpoint ends with exactly the
params of an uninterrupted run. Written here because optax provides the update rules but no
loop; flax's training utilities assume flax modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from jaxdl.stax.layer import check_key
from jaxdl.train.checkpoint import restore_checkpoint, restore_into, save_checkpoint


class TrainState(NamedTuple):
    """Everything a run needs to continue: ``step`` (optimiser steps taken), ``epoch``
    (epochs completed), ``params``, ``opt_state``, the run's PRNG ``key`` and the
    ``model_state`` of a stateful model (``None`` for a stateless one)."""

    step: jax.Array
    epoch: jax.Array
    params: Any
    opt_state: Any
    key: jax.Array
    model_state: Any = None


class FitResult(NamedTuple):
    """``state``: the final :class:`TrainState`; ``best_params``: params at the best
    evaluation (the final params without ``eval_data``); ``history``: lists of
    metrics (``epoch``, ``step``, ``train_loss`` per epoch; ``eval_epoch``,
    ``eval_loss``, ``eval_<metric>`` per evaluation); ``stopped_early``; ``best_model_state``: the
    model state that goes with ``best_params`` (``None`` for a stateless model)."""

    state: TrainState
    best_params: Any
    history: dict[str, list[float]]
    stopped_early: bool
    best_model_state: Any = None


def _check_data(name: str, data) -> tuple[jax.Array, jax.Array]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"fit: expected {name} to be a pair (x, y), got {type(data).__name__}")
    x, y = (jnp.asarray(a) for a in data)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"fit: expected {name} x and y with the same number of examples (leading axis), "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    for part, array in (("x", x), ("y", y)):
        if jnp.issubdtype(array.dtype, jnp.inexact):
            finite = np.asarray(jnp.isfinite(array))
            if not finite.all():
                index = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise ValueError(
                    f"fit: expected finite {name}, but {name} {part} has {int((~finite).sum())} non-finite "
                    f"entries; the first is {part}{list(index)} = {float(np.asarray(array)[index])}"
                )
    return x, y


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"fit: expected {name} to be a positive int, got {value!r}")
    return value


def fit(
    apply_fn: Callable,
    params,
    optimizer: optax.GradientTransformation,
    train_data,
    *,
    loss_fn: Callable,
    key,
    num_epochs: int,
    batch_size: int | None = None,
    eval_data=None,
    metrics: Mapping[str, Callable] | None = None,
    eval_every: int = 1,
    patience: int | None = None,
    monitor: str = "loss",
    mode: str = "min",
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    mesh: Mesh | None = None,
    data_axis: str = "data",
    apply_takes_key: bool = False,
    state=None,
    batch_transform: Callable | None = None,
    train_objective: Callable | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``params`` of ``apply_fn`` with ``optimizer`` on ``train_data = (x, y)``.

    Args:
      apply_fn: ``apply_fn(params, x) -> outputs`` (``apply_fn(params, x, key=k)`` when
        ``apply_takes_key``, e.g. for dropout; evaluation calls it without a key).
      loss_fn: ``loss_fn(outputs, y) -> scalar``, the mean loss of a batch.
      key: PRNG key of the run (shuffling and ``apply_fn`` randomness).
      num_epochs: total epochs (a resumed run continues up to this number).
      batch_size: minibatch size; ``None`` is full-batch gradient descent. Each
        epoch is a fresh permutation, cut into ``n // batch_size`` batches (the
        remainder of the permutation is skipped that epoch).
      eval_data: ``(x, y)`` evaluated, in one batch, every ``eval_every`` epochs and
        after the last one; reports ``loss`` and each of ``metrics``
        (``name -> fn(outputs, y) -> scalar``).
      patience: stop after this many evaluations without improvement of
        ``monitor`` (``"loss"`` or a metric name), ``mode`` "min" or "max".
      checkpoint_path: save state, best params, early-stopping counters and
        history there every ``checkpoint_every`` epochs and at the end.
      resume: continue from ``checkpoint_path`` if it exists.
      mesh: run data-parallel over this mesh; ``batch_size`` must be divisible
        by the size of its ``data_axis``.
      state: the initial state of a stateful model (``model.init_state(shape)``);
        ``apply_fn`` is then called as ``apply_fn(params, x, state=..., train=...)``
        and returns ``(outputs, new_state)``. The final state is
        ``result.state.model_state``.
      batch_transform: ``batch_transform(key, x, y) -> (x, y)`` applied to every
        training minibatch inside the jitted step (data augmentation, e.g.
        :func:`jaxdl.data.augment`); evaluation data is not transformed.
      train_objective: ``train_objective(params, x, y, key) -> scalar`` replaces
        ``loss_fn(apply_fn(params, x), y)`` as the training loss of a minibatch (e.g.
        adversarial training, :mod:`jaxdl.robust.training`); evaluation still uses
        ``loss_fn``. Stateless models only.
      progress: show a tqdm bar over epochs (hidden when not on a terminal).
    """
    if not callable(apply_fn) or not callable(loss_fn):
        raise TypeError("fit: expected callable apply_fn(params, x) and loss_fn(outputs, y)")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"fit: expected an optax.GradientTransformation, got {type(optimizer).__name__}")
    key = check_key("fit", key)
    x_train, y_train = _check_data("train_data", train_data)
    eval_set = None if eval_data is None else _check_data("eval_data", eval_data)
    _check_positive_int("num_epochs", num_epochs)
    _check_positive_int("eval_every", eval_every)
    _check_positive_int("checkpoint_every", checkpoint_every)
    num_examples = x_train.shape[0]
    batch_size = num_examples if batch_size is None else _check_positive_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(f"fit: expected batch_size <= number of examples ({num_examples}), got {batch_size}")
    metrics = dict(metrics or {})
    if patience is not None:
        _check_positive_int("patience", patience)
        if eval_set is None:
            raise ValueError("fit: early stopping (patience) needs eval_data")
        if monitor != "loss" and monitor not in metrics:
            raise ValueError(f"fit: expected monitor to be 'loss' or one of {sorted(metrics)}, got {monitor!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"fit: expected mode 'min' or 'max', got {mode!r}")
    if resume and checkpoint_path is None:
        raise ValueError("fit: resume=True needs a checkpoint_path")
    if batch_transform is not None and not callable(batch_transform):
        raise TypeError(f"fit: expected batch_transform(key, x, y) -> (x, y) to be callable, got {batch_transform!r}")
    stateful = state is not None
    if train_objective is not None and (not callable(train_objective) or stateful):
        raise TypeError("fit: expected train_objective(params, x, y, key) -> loss to be callable, for a stateless model")
    num_batches = num_examples // batch_size

    if mesh is not None:
        if data_axis not in mesh.shape:
            raise ValueError(f"fit: expected data_axis to be one of the mesh axes {tuple(mesh.shape)}, got {data_axis!r}")
        if batch_size % mesh.shape[data_axis]:
            raise ValueError(
                f"fit: expected batch_size divisible by the {mesh.shape[data_axis]} devices of mesh "
                f"axis {data_axis!r}, got {batch_size}"
            )
        replicated = NamedSharding(mesh, P())
        batches_sharding = NamedSharding(mesh, P(None, data_axis))
        place = lambda tree: jax.device_put(tree, replicated)
    else:
        place = lambda tree: tree

    def predict(params, model_state, x, step_key, train):
        """``(outputs, new_model_state)``; the state passes through for a stateless model."""
        kwargs = {"key": step_key} if apply_takes_key and train else {}
        if not stateful:
            return apply_fn(params, x, **kwargs), model_state
        return apply_fn(params, x, state=model_state, train=train, **kwargs)

    @jax.jit
    def train_epoch(params, opt_state, model_state, step, epoch_key, x, y):
        shuffle_key, apply_key = jax.random.split(epoch_key)
        transform_key = jax.random.fold_in(epoch_key, 2)
        order = jax.random.permutation(shuffle_key, num_examples)[: num_batches * batch_size]
        xb = x[order].reshape(num_batches, batch_size, *x.shape[1:])
        yb = y[order].reshape(num_batches, batch_size, *y.shape[1:])
        if mesh is not None:
            xb = jax.lax.with_sharding_constraint(xb, batches_sharding)
            yb = jax.lax.with_sharding_constraint(yb, batches_sharding)

        def train_step(carry, batch):
            params, opt_state, model_state, step = carry
            xi, yi, index = batch
            if batch_transform is not None:
                xi, yi = batch_transform(jax.random.fold_in(transform_key, index), xi, yi)

            def objective(p):
                if train_objective is not None:
                    return train_objective(p, xi, yi, jax.random.fold_in(apply_key, index)), model_state
                outputs, new_model_state = predict(p, model_state, xi, jax.random.fold_in(apply_key, index), True)
                return loss_fn(outputs, yi), new_model_state

            (loss, model_state), grads = jax.value_and_grad(objective, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, model_state, step + 1), loss

        (params, opt_state, model_state, step), losses = jax.lax.scan(
            train_step, (params, opt_state, model_state, step), (xb, yb, jnp.arange(num_batches))
        )
        return params, opt_state, model_state, step, jnp.mean(losses)

    @jax.jit
    def evaluate(params, model_state, x, y):
        outputs, _ = predict(params, model_state, x, None, False)
        results = {"loss": loss_fn(outputs, y)}
        results.update({name: fn(outputs, y) for name, fn in metrics.items()})
        return results

    state = TrainState(
        jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), params, optimizer.init(params), key, state
    )
    sign = 1.0 if mode == "min" else -1.0
    tracker = {"best": np.float64(np.inf), "bad_evals": np.int64(0)}
    best_params, best_model_state = params, state.model_state
    history: dict[str, list[float]] = {"epoch": [], "step": [], "train_loss": []}
    if eval_set is not None:
        history.update({"eval_epoch": [], "eval_loss": []})
        history.update({f"eval_{name}": [] for name in metrics})

    def checkpoint_tree():
        return {
            "state": state,
            "best_params": best_params,
            "best_model_state": best_model_state,
            "tracker": tracker,
            "history": {name: np.asarray(values, np.float64) for name, values in history.items()},
        }

    if resume and Path(checkpoint_path).is_file():
        try:
            saved = restore_checkpoint(checkpoint_path)
            state = restore_into(state, saved["state"])
            best_params = restore_into(params, saved["best_params"])
            best_model_state = restore_into(best_model_state, saved.get("best_model_state"))
            tracker = restore_into(tracker, saved["tracker"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"fit: cannot resume from the checkpoint {checkpoint_path}: {error}; "
                f"delete it or pass resume=False to start afresh"
            ) from error
        history = {name: [float(v) for v in np.atleast_1d(saved["history"][name])] for name in history}

    state = state._replace(
        params=place(state.params), opt_state=place(state.opt_state), model_state=place(state.model_state)
    )
    x_train, y_train = place(x_train), place(y_train)
    if eval_set is not None:
        eval_set = place(eval_set)

    stopped_early = False
    first_epoch = int(state.epoch)
    bar = tqdm(range(first_epoch, num_epochs), desc="fit", total=num_epochs, initial=first_epoch,
               disable=None if progress else True, leave=False)
    for epoch in bar:
        run_key, epoch_key = jax.random.split(state.key)
        params, opt_state, model_state, step, train_loss = train_epoch(
            state.params, state.opt_state, state.model_state, state.step, epoch_key, x_train, y_train
        )
        state = TrainState(step, state.epoch + 1, params, opt_state, run_key, model_state)
        train_loss = float(train_loss)
        if not np.isfinite(train_loss):
            raise FloatingPointError(
                f"fit: the training loss became {train_loss} in epoch {epoch + 1} although the data are "
                f"finite: the optimisation diverged; lower the learning rate"
            )
        history["epoch"].append(epoch + 1)
        history["step"].append(int(step))
        history["train_loss"].append(train_loss)
        postfix = {"train_loss": f"{train_loss:.4g}"}
        last = epoch + 1 == num_epochs
        if eval_set is not None and ((epoch + 1) % eval_every == 0 or last):
            results = {name: float(value) for name, value in evaluate(state.params, state.model_state, *eval_set).items()}
            history["eval_epoch"].append(epoch + 1)
            for name, value in results.items():
                history[f"eval_{name}"].append(value)
            postfix["eval_loss"] = f"{results['loss']:.4g}"
            score = sign * results[monitor]
            if score < tracker["best"]:
                tracker = {"best": np.float64(score), "bad_evals": np.int64(0)}
                best_params, best_model_state = state.params, state.model_state
            else:
                tracker = {"best": tracker["best"], "bad_evals": tracker["bad_evals"] + 1}
            stopped_early = patience is not None and tracker["bad_evals"] >= patience
        bar.set_postfix(postfix)
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0 or last or stopped_early):
            save_checkpoint(checkpoint_path, checkpoint_tree())
        if stopped_early:
            break
    bar.close()
    if eval_set is None:
        best_params, best_model_state = state.params, state.model_state
    return FitResult(state, best_params, history, stopped_early, best_model_state)
