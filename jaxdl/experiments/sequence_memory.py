"""Memory over long sequences: SimpleRNN, LSTM, GRU and LRU on copy-first-token and
sequential digits, and the vanishing gradient at initialisation.

The seeds' recurrent chapter: the gradient that carries information from step 0 to
step T is the product of the step Jacobians ``prod_j Phi_j U`` (``Phi_j`` the
diagonal of activation slopes); it vanishes exponentially in T when
``||Phi_j U|| < 1`` ("Vanishing Gradient: if σ_max(U) < 1"). Gating (LSTM, GRU)
was the first fix; the linear recurrent unit (LRU), whose state Jacobian is
exactly ``diag(λ)`` with ``|λ|`` initialised on a ring ``[r_min, r_max]`` close to 1,
is the second.

1. **Copy-first-token** (:func:`jaxdl.data.copy_first_token`): the first of
   ``T + 1`` tokens is one of 8 classes, the ``T`` that follow are blanks; the
   model must name the first token after reading all of them. For
   ``T`` in {16, 64, 256, 1024} each model takes 200 optax Adam steps
   (learning rate 3e-3, after clipping the gradient to global norm 1) on
   minibatches of 32 from a pool of 2048 training sequences, and is scored on 512
   held-out sequences (chance: 1/8); no selection on the test set.
2. **Gradient norm at initialisation**: ``σ_max(∂s_T/∂s_0)``, the largest
   singular value of the Jacobian of the recurrent state after the ``T`` blanks
   with respect to the state right after the first token (the state ``s`` is
   ``h`` for SimpleRNN and GRU, ``(h, c)`` for the LSTM, ``(Re h, Im h)`` for the
   LRU), from the initial parameters, averaged over the first tokens of a few
   inputs. It is computed with ``jax.jacfwd`` over chunks of 16 steps and
   multiplied up with a running rescaling, so that norms far below float range
   are exact in log10 (the JSON holds ``log10``). For the LRU it is
   ``max_j |λ_j|^T`` exactly (linear recurrence, ``∂h_T/∂h_0 = diag(λ^T)``).
3. **Sequential digits** (:func:`jaxdl.data.sequential_digits`): the 8x8 digits
   read one pixel per step (64 steps), each model trained the same way (600 steps
   on minibatches of 64 of the 1347 training images; 450 test images).

Models (about 5k parameters each; ``num_params`` in the JSON): SimpleRNN (tanh,
64 units) → Dense; LSTM (32 units) → Dense; GRU (36 units) → Dense; LRU (32
complex states, 32 outputs, ``|λ| ~ Uni[0.99, 0.9999]``) → last step → Dense-ReLU-Dense
(the seeds' ``y_t = MLP(Re(G ζ_t))`` read-out), run in the LRU's sequential mode
(``lax.scan``, faster on a CPU than its associative scan). Each (task, model, T)
is a unit of work (:mod:`jaxdl.experiments.units`), so an interrupted run resumes.
The JSON records wall and CPU seconds per unit.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import stax
from jaxdl.data import copy_first_token, sequential_digits
from jaxdl.experiments.report import colors, legend_outside, new_figure, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.stax.lru import LRU, lru_sequence
from jaxdl.stax.recurrent import GRU, LSTM, SimpleRNN

NAME = "sequence-memory"
DESCRIPTION = ("SimpleRNN vs LSTM vs GRU vs LRU: accuracy on copy first token and the state Jacobian norm at "
               "init for T = 16..1024 (the vanishing gradient), accuracy on sequential digits")  # fmt: skip
FAST_MODE = ("T in {16, 64} (full: 16, 64, 256, 1024), 100 training steps per model and T (full: 200), "
             "150 on sequential digits (full: 600)")  # fmt: skip

MODELS = ("simple_rnn", "lstm", "gru", "lru")
LABELS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU", "lru": "LRU"}
COPY_DATASET = "copy-first-token (synthetic: 8 classes, blank distractors)"


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    return {
        "fast": fast,
        "seed": seed,
        "models": list(MODELS),
        "T": [16, 64] if fast else [16, 64, 256, 1024],
        "vocab": 8,
        "num_distractors": 1,
        "train_steps": 100 if fast else 200,
        "batch_size": 32,
        "num_train_sequences": 2048,
        "num_test_sequences": 256 if fast else 512,
        "learning_rate": 3e-3,
        "clip_norm": 1.0,
        "hidden": {"simple_rnn": 64, "lstm": 32, "gru": 36, "lru": 32},
        "lru_d_state": 32,
        "lru_r_min": 0.99,
        "lru_r_max": 0.9999,
        "grad_inputs": 4,
        "grad_chunk": 16,
        "digits_steps": 150 if fast else 600,
        "digits_batch_size": 64,
        "digits_num_train": None,
    }


def unit_keys(settings: dict) -> list[str]:
    """``"copy|<model>|T=<T>"`` for every model and T, then ``"digits|<model>"``."""
    keys = [f"copy|{model}|T={T}" for model in settings["models"] for T in settings["T"]]
    return keys + [f"digits|{model}" for model in settings["models"]]


def build(model: str, num_classes: int, settings: dict):
    """The stax classifier ``(batch, time, features) -> logits`` for ``model``."""
    hidden = settings["hidden"][model]
    if model == "simple_rnn":
        core = SimpleRNN(hidden, activation=stax.Tanh())
    elif model == "lstm":
        core = LSTM(hidden)
    elif model == "gru":
        core = GRU(hidden)
    elif model == "lru":
        # mode="sequential" (lax.scan): on a CPU faster than the parallel associative scan
        lru = LRU(settings["lru_d_state"], hidden, r_min=settings["lru_r_min"], r_max=settings["lru_r_max"],
                       mode="sequential")  # fmt: skip
        return stax.serial(lru, stax.Index(stax.Slice[:, -1]), stax.Dense(hidden), stax.Relu(), stax.Dense(num_classes))
    else:
        raise ValueError(f"{NAME}: unknown model {model!r}; expected one of {MODELS}")
    return stax.serial(core, stax.Dense(num_classes))


def num_params(params) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


# --- training ----------------------------------------------------------------------------


def train_classifier(model, params, x_train, y_train, x_test, y_test, *, steps, batch_size, settings, seed,
                     as_input=lambda x: x):  # fmt: skip
    """Adam after global-norm clipping on random minibatches of the training set;
    returns ``(test accuracy, loss every tenth of the run, (wall seconds, CPU seconds))``."""
    _, apply_fn, _ = model
    optimizer = optax.chain(optax.clip_by_global_norm(settings["clip_norm"]), optax.adam(settings["learning_rate"]))

    def loss_fn(params, x, y):
        logits = apply_fn(params, as_input(x))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def correct(params, x, y):
        return jnp.sum(jnp.argmax(apply_fn(params, as_input(x)), axis=-1) == y)

    rng = np.random.default_rng(seed)
    opt_state = optimizer.init(params)
    losses, every = [], max(1, steps // 10)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(steps):
        batch = rng.choice(len(y_train), batch_size, replace=False)
        params, opt_state, loss = step(params, opt_state, x_train[batch], y_train[batch])
        if i % every == 0 or i == steps - 1:
            losses.append(float(loss))
    if not all(math.isfinite(loss) for loss in losses):
        raise FloatingPointError(f"{NAME}: the training loss became non-finite: {losses}")
    hits = int(correct(params, x_test, y_test))  # the whole test set in one call
    return hits / len(y_test), losses, (time.perf_counter() - start, time.process_time() - cpu_start)


# --- the state Jacobian ------------------------------------------------------------------


def _run_recurrence(model: str, params, s, x):
    """The flat state after the steps ``x: (L, F)`` of one sequence from the flat state ``s``
    (``None``: the zero state), by the layer's own recurrence."""
    x = x[None]
    if model == "lru":
        n = params["nu"].shape[0]
        h0 = None if s is None else jax.lax.complex(s[:n], s[n:])[None]
        _, h = lru_sequence(params, x, h0=h0, mode="sequential")
        return jnp.concatenate([h[0].real, h[0].imag])
    if model == "simple_rnn":
        layer = SimpleRNN(params["W"].shape[0], activation=stax.Tanh())
    else:
        layer = {"lstm": LSTM, "gru": GRU}[model](params["W_h"].shape[0])
    hidden = params["W_h"].shape[0] if model != "simple_rnn" else params["W"].shape[0]
    if s is None:
        state = None
    else:
        state = (s[None, :hidden], s[None, hidden:]) if model == "lstm" else s[None]
    _, final = layer.apply(params, x, initial_state=state, return_state=True)
    return jnp.concatenate([final[0][0], final[1][0]]) if model == "lstm" else final[0]


@functools.partial(jax.jit, static_argnames="model")
def _states_after_first_step(model: str, params, x0):
    """The flat states after step 0 of the sequences ``x0: (n, 1, F)``, from the zero state."""
    return jax.vmap(lambda x: _run_recurrence(model, params, None, x))(x0)


@functools.partial(jax.jit, static_argnames="model")
def _chunk(model: str, params, state, product, piece):
    """One chunk of steps ``piece: (n, L, F)``: the new states, the Jacobian product
    ``∂s_new/∂s_0 = (∂s_new/∂s) product`` divided by its Frobenius norm, and log10 of that norm."""

    def step(s, x):
        new = _run_recurrence(model, params, s, x)
        return new, new

    jacobian, state = jax.vmap(jax.jacfwd(step, has_aux=True))(state, piece)
    product = jacobian @ product
    scale = jnp.linalg.norm(product, axis=(1, 2))
    return state, product / scale[:, None, None], jnp.log10(scale)


def log10_state_jacobian_norms(model: str, layer_params, x, chunk: int) -> list[float]:
    """``log10 σ_max(∂s_T/∂s_0)`` for each sequence of ``x: (n, T + 1, F)``, ``s_0`` the state
    after step 0 and ``s_T`` the state after the last step.

    The Jacobian is the product of the Jacobians of chunks of ``chunk`` steps
    (``jax.jacfwd`` of the layer's own recurrence from a given initial state); the
    running product is divided by its Frobenius norm after each chunk and the
    logarithms of the divisors are summed, so the result does not underflow.
    """
    x = jnp.asarray(x)
    state = _states_after_first_step(model, layer_params, x[:, :1])
    product = jnp.broadcast_to(jnp.eye(state.shape[1], dtype=state.dtype), (x.shape[0],) + 2 * state.shape[1:])
    log10_scale = np.zeros(x.shape[0])
    for start in range(1, x.shape[1], chunk):
        state, product, log10_chunk = _chunk(model, layer_params, state, product, x[:, start : start + chunk])
        log10_chunk = np.asarray(log10_chunk, np.float64)
        if not np.all(np.isfinite(log10_chunk)):
            raise FloatingPointError(f"{NAME}: the state Jacobian of {model} vanished or overflowed at step {start}")
        log10_scale += log10_chunk
    top = np.asarray(jnp.linalg.svd(product, compute_uv=False)[:, 0], np.float64)
    return (log10_scale + np.log10(top)).tolist()


# --- the experiment ----------------------------------------------------------------------


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False,
        overrides: dict | None = None) -> dict:  # fmt: skip
    """Train and measure every (model, T) and every model on sequential digits (one unit of
    work each); writes ``sequence-memory.json`` and ``sequence-memory.png``.

    ``overrides`` replaces entries of :func:`settings_for` (smaller runs for tests)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    unknown = set(overrides or {}) - set(settings)
    if unknown:
        raise ValueError(f"{NAME}: unknown settings in overrides: {sorted(unknown)}")
    settings.update(overrides or {})
    models = list(settings["models"])
    if not models or not set(models) <= set(MODELS) or len(set(models)) != len(models):
        raise ValueError(f"{NAME}: expected distinct models among {MODELS}, got {models}")
    vocab, features = settings["vocab"], settings["vocab"] + settings["num_distractors"]
    digits = sequential_digits(seed=seed, num_train=settings["digits_num_train"])
    model_keys = {model: jax.random.fold_in(jax.random.key(seed), index) for index, model in enumerate(MODELS)}

    @functools.cache
    def initial(model: str, num_classes: int, features: int):
        """The classifier and its initial params (which do not depend on the sequence length:
        the same init for every T)."""
        net = build(model, num_classes, settings)
        return net, jax.jit(net.init, static_argnums=1)(model_keys[model], (-1, 1, features))[1]

    def one_hot(ids):
        return jax.nn.one_hot(ids, features)

    @functools.cache
    def copy_data(T: int):
        """Training, test and gradient-probe sequences of span ``T`` (token ids), one draw per T."""
        sizes = [settings["num_train_sequences"], settings["num_test_sequences"], settings["grad_inputs"]]
        key = jax.random.fold_in(jax.random.key(seed + 1), T)
        ids, labels = copy_first_token(sum(sizes), T, vocab, key, num_distractors=settings["num_distractors"],
                                       one_hot=False)  # fmt: skip
        cuts = np.cumsum(sizes)[:-1]
        return list(zip(np.split(ids, cuts), np.split(labels, cuts)))

    def copy_unit(model: str, T: int) -> dict:
        (x_train, y_train), (x_test, y_test), (x_grad, _) = copy_data(T)
        net, params = initial(model, vocab, features)
        start = time.perf_counter()
        (layer_params,) = [value for name, value in params.items() if name.endswith("_0")]  # the recurrent layer
        log10_norms = log10_state_jacobian_norms(model, layer_params, one_hot(x_grad), settings["grad_chunk"])
        grad_seconds = time.perf_counter() - start
        accuracy, losses, (train_seconds, train_cpu_seconds) = train_classifier(
            net, params, x_train, y_train, x_test, y_test, steps=settings["train_steps"],
            batch_size=settings["batch_size"], settings=settings, seed=seed + T, as_input=one_hot)  # fmt: skip
        mean_log10 = float(np.log10(np.mean(10.0 ** (np.array(log10_norms) - max(log10_norms)))) + max(log10_norms))
        return {"model": model, "T": T, "accuracy": accuracy, "grad_norm": 10.0**mean_log10,
                "log10_grad_norm": mean_log10, "log10_grad_norm_per_input": log10_norms,
                "loss_history": losses, "num_params": num_params(params),
                "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
                "grad_seconds": grad_seconds}  # fmt: skip

    def digits_unit(model: str) -> dict:
        net, params = initial(model, digits.num_classes, 1)
        accuracy, losses, (seconds, cpu_seconds) = train_classifier(
            net, params, digits.x_train, digits.y_train, digits.x_test, digits.y_test,
            steps=settings["digits_steps"], batch_size=settings["digits_batch_size"], settings=settings,
            seed=seed)  # fmt: skip
        return {"model": model, "accuracy": accuracy, "loss_history": losses, "num_params": num_params(params),
                "train_seconds": seconds, "train_cpu_seconds": cpu_seconds}  # fmt: skip

    def work(unit: str) -> dict:
        parts = unit.split("|")
        if parts[0] == "copy":
            return copy_unit(parts[1], int(parts[2].removeprefix("T=")))
        return digits_unit(parts[1])

    start, cpu_start = time.perf_counter(), time.process_time()
    units = run_units(NAME, unit_keys(settings), work, out_dir=out_dir, settings=settings, resume=resume)
    copy = {model: {str(T): units[f"copy|{model}|T={T}"] for T in settings["T"]} for model in models}
    digits_runs = {model: units[f"digits|{model}"] for model in models}
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "datasets": {"copy": COPY_DATASET, "sequential_digits": digits.name},
        "dataset": f"{COPY_DATASET}; {digits.name}",
        "models": models,
        "T": settings["T"],
        "chance_accuracy": 1.0 / vocab,
        "grad_norm_definition": ("sigma_max(d s_T / d s_0): largest singular value of the Jacobian of the recurrent "
                                 "state after T blanks w.r.t. the state after the first token, at initialisation, "
                                 "averaged over inputs"),  # fmt: skip
        "copy": {model: {T: {k: run[k] for k in ("accuracy", "grad_norm", "log10_grad_norm")}
                         for T, run in per_T.items()} for model, per_T in copy.items()},  # fmt: skip
        "sequential_digits": {"num_train": int(len(digits.y_train)), "num_test": int(len(digits.y_test)),
                              "accuracy": {model: run["accuracy"] for model, run in digits_runs.items()}},  # fmt: skip
        "num_params": {
            "copy": {model: copy[model][str(settings["T"][0])]["num_params"] for model in models},
            "sequential_digits": {model: run["num_params"] for model, run in digits_runs.items()},
        },
        "timings": {
            "copy_train_seconds": {model: {T: run["train_seconds"] for T, run in per_T.items()}
                                   for model, per_T in copy.items()},  # fmt: skip
            "grad_norm_seconds": {model: sum(run["grad_seconds"] for run in per_T.values())
                                  for model, per_T in copy.items()},  # fmt: skip
            "digits_train_seconds": {model: run["train_seconds"] for model, run in digits_runs.items()},
            "total_train_cpu_seconds": sum(run["train_cpu_seconds"] for run in units.values()),
            "this_call_seconds": time.perf_counter() - start,
            "this_call_cpu_seconds": time.process_time() - cpu_start,
        },
        "runs": units,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures, for the ``jaxdl`` command."""
    Ts = results["T"]
    lines = {}
    models = results["models"]
    for model in models:
        per_T = results["copy"][model]
        lines[f"{LABELS[model]} copy accuracy (T = {', '.join(map(str, Ts))})"] = " / ".join(
            f"{per_T[str(T)]['accuracy']:.3f}" for T in Ts)  # fmt: skip
        lines[f"{LABELS[model]} log10 state-Jacobian norm at init"] = " / ".join(
            f"{per_T[str(T)]['log10_grad_norm']:.1f}" for T in Ts)  # fmt: skip
    digits = results["sequential_digits"]["accuracy"]
    lines["sequential digits accuracy"] = ", ".join(f"{LABELS[m]} {digits[m]:.3f}" for m in models)
    return lines


def figure(results: dict):
    """Copy accuracy vs T, the state-Jacobian norm at initialisation vs T, sequential-digits accuracy."""
    Ts = results["T"]
    fig, (acc_ax, grad_ax, digits_ax) = new_figure(
        f"Memory over T steps: copy-first-token and sequential digits "
        f"({results['settings']['train_steps']} Adam steps per model and T)",
        results["fast"], 1, 3, figsize=(16, 5))  # fmt: skip
    models = results["models"]
    palette = dict(zip(MODELS, colors(len(MODELS))))  # a model keeps its colour in a run of fewer models
    for model in models:
        color = palette[model]
        per_T = results["copy"][model]
        label = f"{LABELS[model]} ({results['num_params']['copy'][model]} params)"
        acc_ax.plot(Ts, [per_T[str(T)]["accuracy"] for T in Ts], "o-", color=color, label=label)
        grad_ax.plot(Ts, [per_T[str(T)]["log10_grad_norm"] for T in Ts], "o-", color=color, label=LABELS[model])
    acc_ax.axhline(results["chance_accuracy"], color="0.5", ls="--", lw=1, label="chance (1/8)")
    acc_ax.set(xscale="log", xlabel="T (blank steps after the first token)", ylabel="test accuracy",
               title="copy-first-token: accuracy after training", ylim=(0, 1.05))  # fmt: skip
    grad_ax.set(xscale="log", xlabel="T (blank steps after the first token)",
                ylabel="log10 σ_max(∂s_T / ∂s_0) at initialisation",
                title="the vanishing gradient (log scale)")  # fmt: skip
    for ax in (acc_ax, grad_ax):
        ax.set_xticks(Ts, [str(T) for T in Ts])
        ax.minorticks_off()
    digits = results["sequential_digits"]
    positions = np.arange(len(models))
    values = [digits["accuracy"][m] for m in models]
    digits_ax.bar(positions, values, color=[palette[m] for m in models])
    for x, value in zip(positions, values):
        digits_ax.text(x, value + 0.01, f"{value:.3f}", ha="center", va="bottom", fontsize="small")
    digits_ax.set_xticks(positions, [LABELS[m] for m in models])
    digits_ax.set(xlabel="model", ylabel="test accuracy", ylim=(0, 1.1),
                  title=f"sequential digits (64 pixel steps, {digits['num_test']} test images)")  # fmt: skip
    legend_outside(acc_ax, ncol=2, fontsize="x-small")
    legend_outside(grad_ax, ncol=2, fontsize="x-small")
    return fig
