"""Character-level language models on the embedded Shakespeare corpus: GPT vs LSTM vs LRU.

The seeds' language-model objective: a causal model ``p(y_{t+1} | y_1..y_t)`` trained
on next-character cross-entropy, scored in **bits per character** on held-out text,
``bpc = −(1/N) Σ_t log₂ p(y_{t+1} | y_1..y_t)`` (the mean cross-entropy in nats
divided by ``ln 2``).

Data: :func:`jaxdl.data.text.load_corpus` ("shakespeare", six plays, 785 720
characters, 76 distinct), split by :func:`~jaxdl.data.text.train_val_split`: the
first 90 % for training, the last 10 % (the end of *King Lear*) for validation.
Training windows of ``context`` characters are drawn at random offsets
(:func:`~jaxdl.data.text.batch_windows`); validation cuts the validation text
into consecutive non-overlapping windows of ``context + 1`` characters and scores
every position of every window (so the first characters of a window are predicted
from a short context; the same protocol for every model).

Models (sizes in ``settings`` and ``num_params`` of the JSON):

* ``gpt``: :func:`jaxdl.models.gpt` (decoder-only transformer, pre-LN, causal);
* ``lstm``: :func:`jaxdl.models.rnn_lm` with ``cell="lstm"``;
* ``lru``: ``Embedding`` → :func:`jaxdl.models.deep_lru` with ``pooling=None`` (a read-out
  at every step; residual LRU blocks with GLU mixing, ``|λ|`` initialised in
  [0.9, 0.999]), run in the LRU's sequential mode (faster on a CPU).

Each is trained with AdamW (linear warm-up, cosine decay, gradient clipping to
global norm 1) for the same number of steps on the same batches; the validation
bpc is recorded against the step and against the training wall-clock seconds
(compilation and evaluation excluded). The final ``val_bpc`` is measured on the
whole validation text.

Baselines on the same split (in the JSON): ``unigram_bpc`` with
``p(c) = (n(c) + 1) / (N + V)`` and ``bigram_bpc`` with
``p(c | a) = (n(a c) + 1) / (n(a) + V)`` (add-one / Laplace smoothing, counts
``n`` from the training text, ``V = 76``), scored on every character of the
validation text (the bigram on every validation character after the first).

Samples: ``gpt`` through :func:`jaxdl.models.gpt_generate` with the key/value
cache; the recurrent models by their own sampling loop (:func:`sample_causal`,
which feeds the growing text back through the model, exact for any causal model).
Each model is a unit of work (:mod:`jaxdl.experiments.units`), so an interrupted
run resumes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import models, stax
from jaxdl.data import text
from jaxdl.experiments.report import colors, legend_outside, new_figure, progress, save_figure, write_json
from jaxdl.experiments.units import run_units
from jaxdl.models.recurrent import lm_cross_entropy
from jaxdl.stax.recurrent import Embedding

NAME = "char-lm"
DESCRIPTION = "GPT vs LSTM vs LRU character language models on Shakespeare: validation bits per character vs bigram"
FAST_MODE = ("200 training steps per model on batches of 16 windows of 64 characters, half-width models (full: 1500 "
             "steps, batches of 32), final validation on 64 windows (full: the whole validation text)")  # fmt: skip

MODELS = ("gpt", "lstm", "lru")
VAL_FRACTION = 0.1
PROMPT = "Lear.\n"
LOG2 = math.log(2.0)


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    if fast:
        return {
            "fast": True, "seed": seed, "context": 64, "batch_size": 16, "steps": 200, "eval_every": 50,
            "eval_windows": 32, "final_eval_windows": 64, "warmup": 20, "learning_rate": 3e-3,
            "weight_decay": 0.01, "clip_norm": 1.0,
            "gpt": {"d_model": 64, "num_heads": 4, "num_layers": 2},
            "lstm": {"embed_dim": 32, "hidden": 128},
            "lru": {"embed_dim": 32, "d_model": 64, "d_state": 64, "num_blocks": 2},
            "sample_length": 200, "temperature": 0.8,
        }  # fmt: skip
    return {
        "fast": False, "seed": seed, "context": 64, "batch_size": 32, "steps": 1500, "eval_every": 150,
        "eval_windows": 64, "final_eval_windows": None, "warmup": 100, "learning_rate": 3e-3,
        "weight_decay": 0.01, "clip_norm": 1.0,
        "gpt": {"d_model": 128, "num_heads": 4, "num_layers": 2},
        "lstm": {"embed_dim": 64, "hidden": 256},
        "lru": {"embed_dim": 64, "d_model": 128, "d_state": 128, "num_blocks": 2},
        "sample_length": 300, "temperature": 0.8,
    }  # fmt: skip


def build(name: str, vocab_size: int, settings: dict):
    """The stax triple of model ``name``: token ids ``(B, T)`` → next-character logits ``(B, T, V)``."""
    options = settings[name]
    if name == "gpt":
        return models.gpt(vocab_size, context_length=settings["context"], **options)
    if name == "lstm":
        return models.rnn_lm(vocab_size, cell="lstm", embed_dim=options["embed_dim"], hidden=(options["hidden"],))
    if name == "lru":
        return stax.serial(
            Embedding(vocab_size, options["embed_dim"]),
            models.deep_lru(options["num_blocks"], options["d_model"], options["d_state"], vocab_size, pooling=None,
                            r_min=0.9, r_max=0.999, mode="sequential"),
        )  # fmt: skip
    raise ValueError(f"{NAME}: unknown model {name!r}")


# --- baselines ----------------------------------------------------------------------------


def unigram_bpc(train, val, vocab_size: int) -> float:
    """Bits per character of the add-one unigram ``(n(c) + 1) / (N + V)`` of ``train`` on ``val``."""
    counts = np.bincount(np.asarray(train), minlength=vocab_size).astype(np.float64) + 1.0
    log_p = np.log2(counts / counts.sum())
    return float(-np.mean(log_p[np.asarray(val)]))


def bigram_bpc(train, val, vocab_size: int) -> float:
    """Bits per character of the add-one bigram ``(n(a c) + 1) / (n(a) + V)`` of ``train`` on ``val[1:]``
    (each validation character after the first, given the one before)."""
    train, val = np.asarray(train), np.asarray(val)
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (train[:-1], train[1:]), 1.0)
    counts += 1.0
    log_p = np.log2(counts / counts.sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[val[:-1], val[1:]]))


# --- training and evaluation ---------------------------------------------------------------


def val_windows(val, context: int, count: int | None) -> np.ndarray:
    """The first ``count`` (all, for ``None``) consecutive non-overlapping windows of ``context + 1``
    validation characters, ``(count, context + 1)``."""
    val = np.asarray(val)
    total = len(val) // (context + 1)
    count = total if count is None else min(count, total)
    return val[: count * (context + 1)].reshape(count, context + 1).astype(np.int32)


def make_evaluator(apply_fn, batch: int = 64):
    """``bpc(params, windows)``: mean next-character cross-entropy over every position, in bits."""

    @jax.jit
    def batch_nats(params, windows):
        return lm_cross_entropy(apply_fn(params, windows[:, :-1]), windows[:, 1:])

    def bpc(params, windows):
        total, count = 0.0, 0
        for start in range(0, windows.shape[0], batch):
            chunk = windows[start : start + batch]
            total += float(batch_nats(params, chunk)) * chunk.shape[0]
            count += chunk.shape[0]
        return total / count / LOG2

    return bpc


def make_optimizer(settings: dict):
    schedule = optax.warmup_cosine_decay_schedule(0.0, settings["learning_rate"], settings["warmup"], settings["steps"],
                                                  end_value=0.1 * settings["learning_rate"])  # fmt: skip
    return optax.chain(optax.clip_by_global_norm(settings["clip_norm"]),
                       optax.adamw(schedule, weight_decay=settings["weight_decay"]))  # fmt: skip


def sample_causal(apply_fn, params, prompt, num_new: int, key, temperature: float = 1.0) -> np.ndarray:
    """Sample ``num_new`` tokens after ``prompt`` (int ``(P,)``) from a causal model, one token at a time:
    step ``t`` runs the model on the text so far (a fixed buffer, so one compilation) and draws
    ``y_t ~ softmax(logits[t − 1] / temperature)``. Returns ``(P + num_new,)``."""
    prompt = np.asarray(prompt, np.int32)
    if prompt.ndim != 1 or prompt.size == 0:
        raise ValueError(f"sample_causal: expected a non-empty 1-D prompt, got shape {prompt.shape}")
    if not temperature > 0:
        raise ValueError(f"sample_causal: expected temperature > 0, got {temperature!r}")
    total = prompt.size + num_new
    buffer = jnp.zeros((1, total), jnp.int32).at[0, : prompt.size].set(prompt)

    @jax.jit
    def run(params, buffer, key):
        def body(t, carry):
            buffer, key = carry
            key, sub = jax.random.split(key)
            logits = apply_fn(params, buffer)[0, t - 1] / temperature
            return buffer.at[0, t].set(jax.random.categorical(sub, logits).astype(jnp.int32)), key

        return jax.lax.fori_loop(prompt.size, total, body, (buffer, key))[0]

    return np.asarray(run(params, buffer, key)[0])


def generate(name: str, apply_fn, params, vocab, settings: dict, key) -> str:
    """A sample of ``settings['sample_length']`` characters after :data:`PROMPT` (the prompt included)."""
    prompt = text.encode(PROMPT, vocab)
    num_new = settings["sample_length"]
    if name == "gpt":
        num_new = min(num_new, settings["context"] - prompt.size)  # the cache holds one context
        tokens = models.gpt_generate(apply_fn, params, jnp.asarray(prompt)[None], num_new, key,
                                     temperature=settings["temperature"], use_cache=True)[0]  # fmt: skip
    else:
        tokens = sample_causal(apply_fn, params, prompt, num_new, key, settings["temperature"])
    return text.decode(np.asarray(tokens), vocab)


def train_model(name: str, splits, vocab, settings: dict) -> dict:
    """Train model ``name``; its curves, final ``val_bpc``, timing and a sample."""
    train_tokens, val_tokens = splits
    V, T, B = len(vocab), settings["context"], settings["batch_size"]
    init_fn, apply_fn, _ = build(name, V, settings)
    key = jax.random.fold_in(jax.random.key(settings["seed"]), MODELS.index(name))
    init_key, sample_key = jax.random.split(key)
    _, params = init_fn(init_key, (-1, T))
    num_params = int(sum(np.size(p) for p in jax.tree.leaves(params)))
    optimizer = make_optimizer(settings)
    opt_state = optimizer.init(params)
    train_device = jnp.asarray(train_tokens)
    data_key = jax.random.key(settings["seed"] + 1000)  # the same batches for every model

    def loss_fn(params, inputs, targets):
        return lm_cross_entropy(apply_fn(params, inputs), targets)

    def step(params, opt_state, i):
        inputs, targets = text.batch_windows(train_device, T, B, jax.random.fold_in(data_key, i))
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, 0).compile()  # compile off the clock
    evaluate = make_evaluator(apply_fn)
    eval_windows = val_windows(val_tokens, T, settings["eval_windows"])
    history = {"step": [0], "seconds": [0.0], "val_bpc": [evaluate(params, eval_windows)], "train_bpc": [None]}
    seconds, losses = 0.0, []
    for i in progress(range(settings["steps"]), desc=f"{NAME}: {name}"):
        start = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, i)
        losses.append(loss)
        if (i + 1) % settings["eval_every"] == 0 or i + 1 == settings["steps"]:
            jax.block_until_ready(params)
            seconds += time.perf_counter() - start
            history["step"].append(i + 1)
            history["seconds"].append(seconds)
            history["val_bpc"].append(evaluate(params, eval_windows))
            history["train_bpc"].append(float(np.mean(jax.device_get(losses))) / LOG2)
            losses = []
        else:
            seconds += time.perf_counter() - start  # dispatch is asynchronous: the sync above settles it
    final = val_windows(val_tokens, T, settings["final_eval_windows"])
    val_bpc = evaluate(params, final)
    if not math.isfinite(val_bpc):
        raise FloatingPointError(f"{NAME}: {name} diverged (validation bpc {val_bpc})")
    return {
        "model": name,
        "num_params": num_params,
        "val_bpc": val_bpc,
        "val_characters": int(final.shape[0] * T),
        "history": history,
        "train_seconds": seconds,
        "seconds_per_step": seconds / settings["steps"],
        "sample": generate(name, apply_fn, params, vocab, settings, sample_key),
    }


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train GPT, LSTM and LRU (one unit of work each); writes ``char-lm.json`` and ``char-lm.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    corpus = text.load_corpus("shakespeare")
    vocab = text.char_vocab(corpus)
    train_tokens, val_tokens = text.train_val_split(text.encode(corpus, vocab), VAL_FRACTION)
    units = run_units(NAME, list(MODELS), lambda name: train_model(name, (train_tokens, val_tokens), vocab, settings),
                      out_dir=out_dir, settings=settings, resume=resume)  # fmt: skip
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": "shakespeare",
        "dataset_description": text.CORPORA["shakespeare"].description,
        "vocab_size": len(vocab),
        "num_train_chars": int(train_tokens.size),
        "num_val_chars": int(val_tokens.size),
        "smoothing": "add-one (Laplace): (count + 1) / (total + V)",
        "unigram_bpc": unigram_bpc(train_tokens, val_tokens, len(vocab)),
        "bigram_bpc": bigram_bpc(train_tokens, val_tokens, len(vocab)),
        "val_bpc": {name: units[name]["val_bpc"] for name in MODELS},
        "num_params": {name: units[name]["num_params"] for name in MODELS},
        "samples": {name: units[name]["sample"] for name in MODELS},
        "prompt": PROMPT,
        "runs": units,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures, for the ``jaxdl`` command."""
    lines = {f"{name} val bpc ({results['num_params'][name]} params)": f"{bpc:.3f}"
             for name, bpc in results["val_bpc"].items()}  # fmt: skip
    lines["baselines: unigram / bigram bpc (add-one)"] = f"{results['unigram_bpc']:.3f} / {results['bigram_bpc']:.3f}"
    lines["training seconds (" + " / ".join(MODELS) + ")"] = " / ".join(
        f"{results['runs'][name]['train_seconds']:.0f}" for name in MODELS)
    lines["gpt sample"] = results["samples"]["gpt"][:80].replace("\n", " | ")
    return lines


def figure(results: dict):
    """Validation bpc against steps and against wall-clock seconds, with the two baselines, and the final bpc."""
    fig, axes = new_figure(
        f"Character LMs on Shakespeare ({results['num_train_chars']} train / {results['num_val_chars']} validation "
        f"characters): bigram {results['bigram_bpc']:.2f} bpc, "
        + ", ".join(f"{n} {b:.2f}" for n, b in results["val_bpc"].items()),
        results["fast"], 1, 3, figsize=(16, 5))  # fmt: skip
    step_ax, time_ax, bar_ax = axes
    palette = colors(len(MODELS) + 2)
    for color, name in zip(palette, MODELS):
        history = results["runs"][name]["history"]
        label = f"{name} ({results['num_params'][name]} params)"
        step_ax.plot(history["step"], history["val_bpc"], color=color, marker="o", ms=3, label=label)
        time_ax.plot(history["seconds"], history["val_bpc"], color=color, marker="o", ms=3, label=label)
    for ax in (step_ax, time_ax):
        for color, which in zip(palette[len(MODELS):], ("unigram", "bigram")):
            ax.axhline(results[f"{which}_bpc"], color=color, ls="--", lw=1,
                       label=f"{which} baseline ({results[f'{which}_bpc']:.2f})")  # fmt: skip
        ax.set_ylabel("validation bits per character")
        legend_outside(ax, ncol=2, fontsize="x-small")
    step_ax.set(xlabel="training step", title="validation bpc vs steps")
    time_ax.set(xlabel="training wall-clock seconds (no compilation, no evaluation)", title="validation bpc vs time")
    names = [*MODELS, "unigram", "bigram"]
    values = [results["val_bpc"][n] for n in MODELS] + [results["unigram_bpc"], results["bigram_bpc"]]
    bars = bar_ax.bar(names, values, color=palette)
    bar_ax.bar_label(bars, fmt="%.2f", fontsize="small")
    bar_ax.set(xlabel="model", ylabel="final validation bits per character",
               title=f"final bpc on {results['runs']['gpt']['val_characters']} validation characters")  # fmt: skip
    return fig
