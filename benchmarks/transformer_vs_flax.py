"""A GPT training step of ``jaxdl.models.gpt`` against the same architecture in flax.linen,
and generation with and without the key/value cache.

(a) Training step: forward, backward and an optax AdamW update of a decoder-only
    transformer (pre-LN blocks, GELU MLP of width 4·d_model, learned positions,
    untied read-out; default 4 layers, d_model 256, 4 heads, context 256, batch 16,
    vocabulary 256), jaxdl vs flax.linen (``nn.MultiHeadDotProductAttention``,
    ``nn.Dense``, ``nn.LayerNorm``) written below with the same initial scales
    (``N(0, 1/fan_in)`` weights, zero biases, ``N(0, 1)`` token and ``N(0, 0.02²)``
    position embeddings) and the same parameter count. Both steps are jitted with
    the params and optimiser state donated; XLA's cost analysis gives each step's
    FLOPs (they must agree); timings are medians over rounds that alternate the two.
    Reported: time ratio jaxdl / flax (goal <= 1.0), tokens per second, FLOP/s and
    its share of this machine's GEMM peak, measured in the same run as the median
    time of a jitted ``jnp.dot`` of two square float32 matrices.
(b) Generation: ``models.gpt_generate`` of ``n`` new tokens with the cache (one query
    per step against a fixed-size cache) and without (the model re-run on the whole
    buffer for every token), tokens per second.

    python benchmarks/transformer_vs_flax.py            # the sizes above
    python benchmarks/transformer_vs_flax.py --small    # a quick run at toy sizes
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdl import models

FAN_IN = nn.initializers.variance_scaling(1.0, "fan_in", "normal")  # N(0, 1/fan_in), untruncated as jaxdl's


class FlaxBlock(nn.Module):
    d_model: int
    num_heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x, mask):
        h = nn.LayerNorm(epsilon=1e-5)(x)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, qkv_features=self.d_model, out_features=self.d_model,
            kernel_init=FAN_IN, bias_init=nn.initializers.zeros,
        )(h, h, mask=mask)  # fmt: skip
        x = x + h
        h = nn.LayerNorm(epsilon=1e-5)(x)
        h = nn.Dense(self.mlp_dim, kernel_init=FAN_IN)(h)
        h = nn.gelu(h, approximate=False)
        return x + nn.Dense(self.d_model, kernel_init=FAN_IN)(h)


class FlaxGPT(nn.Module):
    vocab_size: int
    context_length: int
    d_model: int
    num_heads: int
    num_layers: int

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab_size, self.d_model, embedding_init=nn.initializers.normal(1.0))(tokens)
        pos = self.param("pos", nn.initializers.normal(0.02), (self.context_length, self.d_model))
        x = x + pos[None, : tokens.shape[1]]
        mask = nn.make_causal_mask(tokens)
        for _ in range(self.num_layers):
            x = FlaxBlock(self.d_model, self.num_heads, 4 * self.d_model)(x, mask)
        x = nn.LayerNorm(epsilon=1e-5)(x)
        return nn.Dense(self.vocab_size, kernel_init=FAN_IN)(x)


def num_params(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def train_step(apply_fn, optimizer):
    """``(params, opt_state, tokens) -> (params, opt_state, loss)``, jitted, params and state donated."""

    def loss_fn(params, tokens):
        logits = apply_fn(params, tokens[:, :-1])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]))

    def step(params, opt_state, tokens):
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def flops_of(fn, *args) -> float:
    analysis = fn.lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"])


def interleaved_medians(steps: dict, states: dict, tokens, rounds: int) -> dict:
    """Warm up (compile) each step, then ``rounds`` rounds calling each once in turn."""
    for name, step in steps.items():
        params, opt_state, loss = step(*states[name], tokens)
        jax.block_until_ready(loss)
        states[name] = (params, opt_state)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            params, opt_state, loss = step(*states[name], tokens)
            jax.block_until_ready((params, loss))
            times[name].append(time.perf_counter() - start)
            states[name] = (params, opt_state)
    return {name: statistics.median(values) for name, values in times.items()}


def gemm_peak(n: int, rounds: int) -> float:
    """FLOP/s of a jitted float32 ``n × n`` matrix product (median of ``rounds``)."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, b))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(dot(a, b))
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def generation_speed(apply_fn, params, prompt, num_new: int, rounds: int) -> dict:
    rates = {}
    for use_cache in (True, False):
        run = lambda: models.gpt_generate(apply_fn, params, prompt, num_new, jax.random.key(0), top_k=10,
                                          use_cache=use_cache)  # fmt: skip
        jax.block_until_ready(run())
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            jax.block_until_ready(run())
            times.append(time.perf_counter() - start)
        rates["with cache" if use_cache else "without cache"] = prompt.shape[0] * num_new / statistics.median(times)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="toy sizes and few rounds (a quick check)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--implementation", default="xla", choices=["xla", "reference"],
                        help="jaxdl's attention: jax.nn.dot_product_attention ('xla', the default) or its einsum path")  # fmt: skip
    args = parser.parse_args()
    if args.small:
        layers, d_model, heads, context, batch, vocab, rounds, gemm_n = 2, 64, 4, 64, 4, 64, 5, 512
        prompt_len, num_new = 4, 28
    else:
        layers, d_model, heads, context, batch, vocab, rounds, gemm_n = 4, 256, 4, 256, 16, 256, 7, 2048
        prompt_len, num_new = 16, 112
    rounds = args.rounds or rounds
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s): "
          f"{jax.devices()[0].device_kind}")  # fmt: skip
    print(f"GPT: {layers} layers, d_model {d_model}, {heads} heads, context {context}, batch {batch}, vocab {vocab}; "
          f"jaxdl attention implementation {args.implementation!r}")  # fmt: skip

    tokens = jax.random.randint(jax.random.key(0), (batch, context + 1), 0, vocab)
    optimizer = optax.adamw(3e-4, weight_decay=0.01)
    init_fn, apply_fn, _ = models.gpt(vocab, context_length=context, d_model=d_model, num_heads=heads,
                                      num_layers=layers, implementation=args.implementation)  # fmt: skip
    _, ours = init_fn(jax.random.key(1), (-1, context))
    flax_model = FlaxGPT(vocab, context, d_model, heads, layers)
    theirs = flax_model.init(jax.random.key(1), tokens[:, :-1])
    counts = {"jaxdl": num_params(ours), "flax": num_params(theirs)}
    steps = {"jaxdl": train_step(apply_fn, optimizer), "flax": train_step(flax_model.apply, optimizer)}
    states = {"jaxdl": (ours, optimizer.init(ours)), "flax": (theirs, optimizer.init(theirs))}
    flops = {name: flops_of(steps[name], *states[name], tokens) for name in steps}
    medians = interleaved_medians(steps, states, tokens, rounds)
    peak = gemm_peak(gemm_n, rounds)

    print(f"\n(a) training step (forward + backward + AdamW), median of {rounds} interleaved rounds")
    print(f"GEMM peak ({gemm_n}x{gemm_n} float32 jnp.dot): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'':<8}{'params':>10}{'ms/step':>10}{'tokens/s':>11}{'GFLOP/step':>12}{'GFLOP/s':>10}{'% peak':>8}")
    for name in steps:
        seconds = medians[name]
        rate = flops[name] / seconds
        print(f"{name:<8}{counts[name]:>10}{1e3 * seconds:>10.1f}{batch * context / seconds:>11.0f}"
              f"{flops[name] / 1e9:>12.2f}{rate / 1e9:>10.1f}{100 * rate / peak:>8.1f}")  # fmt: skip
    print(f"ratio jaxdl/flax (time): {medians['jaxdl'] / medians['flax']:.3f}   "
          f"FLOPs jaxdl/flax: {flops['jaxdl'] / flops['flax']:.3f}")  # fmt: skip

    prompt = tokens[:4, :prompt_len]
    rates = generation_speed(apply_fn, states["jaxdl"][0], prompt, num_new, max(3, rounds // 2))
    print(f"\n(b) generation of {num_new} tokens after a {prompt_len}-token prompt, batch {prompt.shape[0]}, top-k 10")
    for label, rate in rates.items():
        print(f"{label:<15}{rate:>10.0f} tokens/s")
    print(f"speed-up of the cache: {rates['with cache'] / rates['without cache']:.1f}x")


if __name__ == "__main__":
    main()
