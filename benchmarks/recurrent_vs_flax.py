"""Recurrent layers of ``jaxdl.stax`` against flax.linen, and the LRU's two evaluation modes.

(a) LSTM and GRU: one jitted ``value_and_grad`` of ``sum(outputs)`` with respect to
    the parameters (forward + backward through time) of ``jaxdl.stax.LSTM`` /
    ``jaxdl.stax.GRU`` (every ``h_t`` returned) against flax's
    ``nn.RNN(nn.OptimizedLSTMCell)``, ``nn.RNN(nn.LSTMCell)`` and ``nn.RNN(nn.GRUCell)``
    at the same sizes, side by side in one process: warm-up (compile), then rounds
    alternating the implementations; the median time, the ratio jaxdl / flax (goal
    <= 1.0) and tokens (batch × time steps) per second.
(b) ``jaxdl.stax.LRU`` in ``"parallel"`` (``associative_scan``) and ``"sequential"``
    (``lax.scan``) mode for T = 1k, 2k, ..., 64k: time of the same forward + backward,
    tokens per second, and the growth exponent ``p`` of ``time ∝ T^p`` fitted by least
    squares on the log-log points.

    python benchmarks/recurrent_vs_flax.py            # full sizes
    python benchmarks/recurrent_vs_flax.py --quick    # small sizes, fewer rounds
"""

from __future__ import annotations

import argparse
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from _timing import median_times  # benchmarks/_timing.py (this script's folder is on sys.path)
from jaxdl import stax


def num_params(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def forward_backward(apply):
    """The jitted ``params, x -> (sum(apply(params, x)), grad)``."""
    return jax.jit(jax.value_and_grad(lambda params, x: jnp.sum(apply(params, x))))


# --- (a) LSTM / GRU against flax ------------------------------------------------------------


def gated_vs_flax(batch: int, T: int, features: int, hidden: int, rounds: int) -> list[tuple]:
    x = jax.random.normal(jax.random.key(0), (batch, T, features))
    tokens = batch * T
    rows = []
    cases = {
        "LSTM": (stax.LSTM(hidden, return_sequences=True),
                 {"flax OptimizedLSTMCell": nn.OptimizedLSTMCell(hidden), "flax LSTMCell": nn.LSTMCell(hidden)}),
        "GRU": (stax.GRU(hidden, return_sequences=True), {"flax GRUCell": nn.GRUCell(hidden)}),
    }  # fmt: skip
    for label, (layer, cells) in cases.items():
        _, params = layer.init(jax.random.key(1), x.shape)
        functions = {f"jaxdl {label}": forward_backward(layer.apply)}
        args = {f"jaxdl {label}": (params, x)}
        counts = {f"jaxdl {label}": num_params(params)}
        for name, cell in cells.items():
            module = nn.RNN(cell)
            variables = module.init(jax.random.key(1), x)
            functions[name] = forward_backward(module.apply)
            args[name] = (variables, x)
            counts[name] = num_params(variables)
        medians = median_times(functions, args, rounds)
        ours = medians[f"jaxdl {label}"]
        for name, seconds in medians.items():
            ratio = ours / seconds
            rows.append((label, name, counts[name], seconds, tokens / seconds, ratio))
    return rows


# --- (b) LRU parallel vs sequential ------------------------------------------------------------


def lru_scaling(lengths, batch: int, features: int, d_state: int, rounds: int) -> dict:
    layers = {mode: stax.LRU(d_state, mode=mode, r_min=0.9) for mode in ("parallel", "sequential")}
    _, params = layers["parallel"].init(jax.random.key(2), (-1, 8, features))
    results = {mode: [] for mode in layers}
    for T in lengths:
        x = jax.random.normal(jax.random.key(T), (batch, T, features))
        functions = {mode: forward_backward(layer.apply) for mode, layer in layers.items()}
        medians = median_times(functions, {mode: (params, x) for mode in layers}, rounds)
        for mode, seconds in medians.items():
            results[mode].append(seconds)
    return results


def growth_exponent(lengths, seconds) -> float:
    """Least-squares slope of log(time) against log(T)."""
    return float(np.polyfit(np.log(lengths), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds")
    parser.add_argument("--skip-flax", action="store_true", help="only the LRU scaling (b)")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s): "
          f"{jax.devices()[0].device_kind}")  # fmt: skip

    if not args.skip_flax:
        sizes = [(8, 32, 16, 32)] if args.quick else [(32, 128, 64, 128), (64, 256, 128, 256)]
        rounds = 3 if args.quick else 7
        print("\n(a) forward+backward (jit(value_and_grad) of sum of all h_t), median of", rounds, "rounds")
        print(f"{'size (B, T, F, H)':<22}{'layer':<6}{'implementation':<26}{'params':>9}{'ms':>10}"
              f"{'tokens/s':>12}{'jaxdl/this':>12}")  # fmt: skip
        for size in sizes:
            for label, name, count, seconds, rate, ratio in gated_vs_flax(*size, rounds=rounds):
                print(f"{str(size):<22}{label:<6}{name:<26}{count:>9}{1e3 * seconds:>10.2f}{rate:>12.3g}{ratio:>12.2f}")

    lengths = [2**k * 1024 for k in range(4 if args.quick else 7)]
    batch, features, d_state = 2, 16, 64
    rounds = 3 if args.quick else 5
    print(f"\n(b) LRU forward+backward, batch {batch}, features {features}, d_state {d_state}, median of {rounds}")
    scaling = lru_scaling(lengths, batch, features, d_state, rounds)
    print(f"{'T':>7}{'parallel ms':>14}{'sequential ms':>16}{'seq/par':>9}{'par tokens/s':>14}{'seq tokens/s':>14}")
    for i, T in enumerate(lengths):
        par, seq = scaling["parallel"][i], scaling["sequential"][i]
        print(f"{T:>7}{1e3 * par:>14.2f}{1e3 * seq:>16.2f}{seq / par:>9.2f}{batch * T / par:>14.3g}{batch * T / seq:>14.3g}")
    for mode, seconds in scaling.items():
        print(f"growth exponent ({mode}): time ∝ T^{growth_exponent(lengths, seconds):.2f}")


if __name__ == "__main__":
    main()
