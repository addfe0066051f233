"""Machine translation with a known answer: number words → digits, by an RNN with attention and a transformer.

The seeds' sequence-learning chapter models ``p(y_{1:n} | x_{1:m}) = Π_i p(y_i | y_{<i}, x_{1:m})``
with an encoder-decoder; here on the synthetic language pair of
:mod:`jaxdl.data.translation` ("three hundred four thousand twenty" → "304020";
integers 0 … 999 999, the number of digits uniform on 1 … 6; the test numbers are
held out: none of them is seen in training).

Two models, each trained with AdamW (warm-up, cosine decay, gradient clipping to
global norm 1) on teacher-forced next-token cross-entropy, the same minibatches for both:

* ``seq2seq``: :func:`jaxdl.models.seq2seq`, a GRU encoder-decoder with additive
  (Bahdanau) attention ``a_ij = softmax_j(vᵀ tanh(W_q z_{i−1} + W_k ζ_j))``;
* ``transformer``: :func:`jaxdl.models.transformer`, the encoder-decoder
  transformer (sinusoidal positions, pre-LN blocks, multi-head self- and
  cross-attention).

The score is **exact match** on the test set: greedy decoding
(``model.greedy``, ``TARGET_LENGTH`` steps, stopping at ``EOS``) must produce every
digit and the end token. The attention-alignment figure shows, for two test
sentences, the weight each output digit puts on each source word: the seq2seq
model's ``a_ij`` and the transformer's last-decoder-layer cross-attention averaged
over heads (``model.attention``), both under teacher forcing on the true target.
Padding tokens are part of the source (neither model masks them); a trained model
learns to put little weight on them. Each model is a unit of work
(:mod:`jaxdl.experiments.units`), so an interrupted run resumes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import models
from jaxdl.data import translation as data
from jaxdl.experiments.report import colors, legend_outside, new_figure, progress, save_figure, write_json
from jaxdl.experiments.units import run_units

NAME = "translation"
DESCRIPTION = "number words -> digits: GRU+attention seq2seq vs transformer, exact match on held-out numbers"
FAST_MODE = ("3000 training pairs and 500 steps per model (full: 20000 pairs, 1500 steps), 500 test numbers "
             "(full: 2000), smaller models")  # fmt: skip

MODELS = ("seq2seq", "transformer")


def settings_for(fast: bool, seed: int) -> dict:
    """Everything that determines the numbers (a resumed run must match it)."""
    common = {"seed": seed, "batch_size": 64, "learning_rate": 3e-3, "warmup": 50, "weight_decay": 0.01,
              "clip_norm": 1.0, "num_examples": 2}  # fmt: skip
    if fast:
        return {**common, "fast": True, "num_train": 3000, "num_test": 500, "steps": 500, "eval_every": 100,
                "seq2seq": {"embed_dim": 32, "hidden": 64, "attention_dim": 32},
                "transformer": {"d_model": 64, "num_heads": 4, "num_layers": 2, "mlp_ratio": 2}}  # fmt: skip
    return {**common, "fast": False, "num_train": 20000, "num_test": 2000, "steps": 1500, "eval_every": 150,
            "seq2seq": {"embed_dim": 64, "hidden": 128, "attention_dim": 64},
            "transformer": {"d_model": 64, "num_heads": 4, "num_layers": 2, "mlp_ratio": 4}}  # fmt: skip


def build(name: str, settings: dict):
    """The encoder-decoder ``name`` over the number-words and digit vocabularies."""
    vocab = dict(src_vocab=len(data.SOURCE_VOCAB), tgt_vocab=len(data.TARGET_VOCAB), bos_id=data.BOS_ID,
                 eos_id=data.EOS_ID)  # fmt: skip
    if name == "seq2seq":
        return models.seq2seq(cell="gru", **vocab, **settings["seq2seq"])
    if name == "transformer":
        length = max(data.SOURCE_LENGTH, data.TARGET_LENGTH)
        return models.transformer(context_length=length, **vocab, **settings["transformer"])
    raise ValueError(f"{NAME}: unknown model {name!r}")


def exact_match(model, params, src, tgt, batch: int = 500) -> np.ndarray:
    """Per test pair, whether greedy decoding reproduces the target exactly (digits and EOS padding)."""
    hits = []
    for start in range(0, src.shape[0], batch):
        predicted = np.asarray(model.greedy(params, src[start : start + batch], data.TARGET_LENGTH))
        hits.append(np.all(predicted == tgt[start : start + batch], axis=1))
    return np.concatenate(hits)


def example_indices(numbers, count: int) -> list[int]:
    """Test pairs to draw attention for: the first six-digit number with a zero digit (zeros have no
    word), then the first with four digits, and so on through the digit counts 6, 4, 5, 3, 2, 1."""
    chosen = []
    for digits in (6, 4, 5, 3, 2, 1):
        for i, n in enumerate(np.asarray(numbers).tolist()):
            s = str(n)
            if len(s) == digits and (digits != 6 or "0" in s) and i not in chosen:
                chosen.append(i)
                break
        if len(chosen) == count:
            break
    return chosen


def make_optimizer(settings: dict):
    schedule = optax.warmup_cosine_decay_schedule(0.0, settings["learning_rate"], settings["warmup"], settings["steps"],
                                                  end_value=0.05 * settings["learning_rate"])  # fmt: skip
    return optax.chain(optax.clip_by_global_norm(settings["clip_norm"]),
                       optax.adamw(schedule, weight_decay=settings["weight_decay"]))  # fmt: skip


def train_model(name: str, pairs: data.TranslationData, settings: dict) -> dict:
    """Train ``name``; its test exact-match curve, per-length accuracy, mistakes and attention maps."""
    model = build(name, settings)
    key = jax.random.fold_in(jax.random.key(settings["seed"]), MODELS.index(name))
    params = model.init(key)
    num_params = int(sum(np.size(p) for p in jax.tree.leaves(params)))
    optimizer = make_optimizer(settings)
    opt_state = optimizer.init(params)
    src_train, tgt_train = jnp.asarray(pairs.src_train), jnp.asarray(pairs.tgt_train)
    data_key = jax.random.key(settings["seed"] + 1000)  # the same minibatches for both models

    def step(params, opt_state, i):
        rows = jax.random.randint(jax.random.fold_in(data_key, i), (settings["batch_size"],), 0, src_train.shape[0])
        loss, grads = jax.value_and_grad(model.loss)(params, src_train[rows], tgt_train[rows])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step).lower(params, opt_state, 0).compile()  # compile off the clock
    history = {"step": [], "seconds": [], "test_exact_match": [], "train_loss": []}
    seconds, losses = 0.0, []
    for i in progress(range(settings["steps"]), desc=f"{NAME}: {name}"):
        start = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, i)
        losses.append(loss)
        if (i + 1) % settings["eval_every"] == 0 or i + 1 == settings["steps"]:
            jax.block_until_ready(params)
            seconds += time.perf_counter() - start
            mean_loss = float(np.mean(jax.device_get(losses)))
            if not math.isfinite(mean_loss):
                raise FloatingPointError(f"{NAME}: {name} diverged at step {i + 1} (loss {mean_loss})")
            history["step"].append(i + 1)
            history["seconds"].append(seconds)
            history["train_loss"].append(mean_loss)
            history["test_exact_match"].append(float(np.mean(exact_match(model, params, pairs.src_test, pairs.tgt_test))))
            losses = []
        else:
            seconds += time.perf_counter() - start
    hits = exact_match(model, params, pairs.src_test, pairs.tgt_test)
    lengths = np.array([len(str(n)) for n in pairs.numbers_test])
    by_length = {str(d): float(np.mean(hits[lengths == d])) for d in range(1, 7) if np.any(lengths == d)}
    predicted = np.asarray(model.greedy(params, pairs.src_test, data.TARGET_LENGTH))
    mistakes = [{"source": data.decode_source(pairs.src_test[i]), "target": str(pairs.numbers_test[i]),
                 "predicted": data.decode_target(predicted[i])} for i in np.flatnonzero(~hits)[:8]]  # fmt: skip
    examples = []
    for i in example_indices(pairs.numbers_test, settings["num_examples"]):
        src, tgt = pairs.src_test[i : i + 1], pairs.tgt_test[i : i + 1]
        tgt_in = np.concatenate([[[data.BOS_ID]], tgt[:, :-1]], axis=1).astype(np.int32)
        weights = np.asarray(model.attention(params, src, tgt_in))[0]  # (n, m)
        examples.append({"index": int(i), "number": int(pairs.numbers_test[i]), "attention": weights,
                         "predicted": data.decode_target(predicted[i])})  # fmt: skip
    return {
        "model": name,
        "num_params": num_params,
        "test_exact_match": float(np.mean(hits)),
        "test_exact_match_by_digits": by_length,
        "history": history,
        "train_seconds": seconds,
        "mistakes": mistakes,
        "examples": examples,
    }


def run(out_dir: Path, *, fast: bool = False, seed: int = 0, resume: bool = False) -> dict:
    """Train both models (one unit of work each); writes ``translation.json`` and ``translation.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(fast, seed)
    pairs = data.number_pairs(settings["num_train"], settings["num_test"], seed=seed)
    units = run_units(NAME, list(MODELS), lambda name: train_model(name, pairs, settings), out_dir=out_dir,
                      settings=settings, resume=resume)  # fmt: skip
    results = {
        "description": DESCRIPTION,
        "fast": fast,
        "interrupted": False,
        "seed": seed,
        "settings": settings,
        "dataset": pairs.name,
        "num_train": int(pairs.src_train.shape[0]),
        "num_test": int(pairs.src_test.shape[0]),
        "source_vocab": list(data.SOURCE_VOCAB),
        "target_vocab": list(data.TARGET_VOCAB),
        "source_length": data.SOURCE_LENGTH,
        "target_length": data.TARGET_LENGTH,
        "test_exact_match": {name: units[name]["test_exact_match"] for name in MODELS},
        "num_params": {name: units[name]["num_params"] for name in MODELS},
        "runs": units,
    }
    save_figure(figure(results), out_dir, f"{NAME}.png")
    write_json(out_dir, NAME, results)
    return results


def summary(results: dict) -> dict:
    """The headline figures, for the ``jaxdl`` command."""
    lines = {f"{name} test exact match ({results['num_params'][name]} params)": f"{acc:.4f}"
             for name, acc in results["test_exact_match"].items()}  # fmt: skip
    lines["training seconds (" + " / ".join(MODELS) + ")"] = " / ".join(
        f"{results['runs'][name]['train_seconds']:.0f}" for name in MODELS)
    return lines


def _source_words(results: dict, number: int) -> list[str]:
    words = data.number_to_words(number).split()
    return words + [data.PAD] * (results["source_length"] - len(words))


def figure(results: dict):
    """Test exact match against steps, accuracy by number of digits, and the attention alignments."""
    runs = results["runs"]
    num_examples = min(len(runs[name]["examples"]) for name in MODELS)
    fig, axes = new_figure(
        f"Number words -> digits ({results['num_train']} training pairs, {results['num_test']} held-out test numbers): "
        + ", ".join(f"{n} {a:.3f}" for n, a in results["test_exact_match"].items()) + " exact match",
        results["fast"], 2, 1 + num_examples, figsize=(5 * (1 + num_examples), 9.5))  # fmt: skip
    axes = np.asarray(axes).reshape(2, 1 + num_examples)
    curve_ax, digits_ax = axes[0, 0], axes[1, 0]
    palette = colors(len(MODELS))
    width = 0.8 / len(MODELS)
    for k, (color, name) in enumerate(zip(palette, MODELS)):
        run = runs[name]
        curve_ax.plot(run["history"]["step"], run["history"]["test_exact_match"], color=color, marker="o", ms=3,
                      label=f"{name} ({run['num_params']} params): {run['test_exact_match']:.3f}")  # fmt: skip
        by = run["test_exact_match_by_digits"]
        digits_ax.bar(np.array([int(d) for d in by]) + (k - (len(MODELS) - 1) / 2) * width, list(by.values()),
                      width=width, color=color, label=name)  # fmt: skip
    curve_ax.set(xlabel="training step", ylabel="test exact match (greedy decoding)", ylim=(-0.02, 1.02),
                 title="held-out test accuracy")  # fmt: skip
    digits_ax.set(xlabel="digits in the number", ylabel="test exact match", ylim=(0, 1.05),
                  title="by length of the answer")  # fmt: skip
    legend_outside(curve_ax, fontsize="x-small")
    legend_outside(digits_ax, ncol=len(MODELS), fontsize="x-small")
    for row, name in enumerate(MODELS):
        for col in range(num_examples):
            ax = axes[row, col + 1]
            example = runs[name]["examples"][col]
            weights = np.asarray(example["attention"], dtype=float)
            number = str(example["number"])
            image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks(range(weights.shape[1]), _source_words(results, example["number"]), rotation=60,
                          ha="right", fontsize="small")  # fmt: skip
            rows = list(number) + [data.EOS] * (weights.shape[0] - len(number))
            ax.set_yticks(range(weights.shape[0]), rows, fontsize="small")
            kind = "additive attention" if name == "seq2seq" else "last-layer cross-attention, mean of heads"
            ax.set(xlabel="source word", ylabel="output token (teacher forcing)",
                   title=f"{name} ({kind}):\n{number} -> {example['predicted']!r}")  # fmt: skip
            ax.title.set_fontsize("small")
            fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig
