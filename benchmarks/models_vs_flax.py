"""One jitted training step of ``jaxdl.models`` against the same network in flax.linen.

For LeNet-5 and a pre-activation ResNet with BatchNorm, build the jaxdl model
(standard parameterisation, so the same arithmetic as flax's layers) and the same
architecture written in flax.linen, assert equal parameter counts, and time one
training step (forward, backward, optax Adam update; BatchNorm statistics updated)
jitted, on the same batch and dtype, side by side in one process: warm-up, then
several rounds alternating the two, reporting the median time per step, the ratio
jaxdl / flax (goal <= 1.0) and the achieved FLOP/s (XLA's cost analysis of the
compiled step divided by the step time) as a share of this machine's float32 GEMM
peak, measured here with a large ``jnp.dot``.

    python benchmarks/models_vs_flax.py            # full sizes
    python benchmarks/models_vs_flax.py --quick    # small batches, fewer rounds
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdl import models

# --- the flax twins -------------------------------------------------------------------


class FlaxLeNet5(nn.Module):
    """LeNet-5 as ``jaxdl.models.lenet5()``: conv 6@5x5, tanh, avgpool, conv 16@5x5, tanh, avgpool, 120, 84, 10."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = True):
        for channels in (6, 16):
            x = nn.Conv(channels, (5, 5), padding="VALID")(x)
            x = nn.avg_pool(jnp.tanh(x), (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        for width in (120, 84):
            x = jnp.tanh(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


class FlaxPreActBlock(nn.Module):
    """``jaxdl.models.resnet_block``: shortcut(x) + Conv3x3(relu(BN(Conv3x3/stride(relu(BN(x))))))."""

    width: int
    stride: int
    projection: bool

    @nn.compact
    def __call__(self, x, train: bool):
        norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        h = nn.relu(norm()(x))
        shortcut = nn.Conv(self.width, (1, 1), (self.stride, self.stride), padding="SAME")(h) if self.projection else x
        h = nn.Conv(self.width, (3, 3), (self.stride, self.stride), padding="SAME")(h)
        h = nn.relu(norm()(h))
        return shortcut + nn.Conv(self.width, (3, 3), padding="SAME")(h)


class FlaxResNet(nn.Module):
    """``jaxdl.models.resnet(num_classes, widths, blocks_per_stage)`` with BatchNorm."""

    num_classes: int
    widths: tuple
    blocks_per_stage: int

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(self.widths[0], (3, 3), padding="SAME")(x)
        for stage, width in enumerate(self.widths):
            for block in range(self.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                x = FlaxPreActBlock(width, stride, projection=stride > 1)(x, train)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
        x = jnp.mean(nn.relu(x), axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


# --- training steps ---------------------------------------------------------------------


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def jaxdl_step(model, optimizer):
    """``step(params, opt_state, state, x, y) -> (params, opt_state, state, loss)``."""

    def loss_fn(params, state, x, y):
        if model.stateful:
            logits, state = model.apply(params, x, state=state, train=True)
        else:
            logits = model.apply(params, x)
        return cross_entropy(logits, y), state

    def step(params, opt_state, state, x, y):
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, state, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def flax_step(module, optimizer):
    """The same step for a flax module with (optional) ``batch_stats``."""

    def loss_fn(params, state, x, y):
        if state:
            logits, updates = module.apply({"params": params, **state}, x, train=True, mutable=["batch_stats"])
            return cross_entropy(logits, y), dict(updates)
        return cross_entropy(module.apply({"params": params}, x, train=True), y), state

    def step(params, opt_state, state, x, y):
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, state, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def num_params(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def flops_of(jitted, *args) -> float:
    """FLOPs of one call, from XLA's cost analysis of the compiled computation."""
    analysis = jitted.lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per computation
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def gemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 FLOP/s of an ``n x n`` matrix product (best of ``repeats``)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def time_steps(step, carry, x, y, steps: int) -> tuple[float, tuple]:
    """Seconds per step over ``steps`` consecutive steps; returns the new carry too."""
    start = time.perf_counter()
    for _ in range(steps):
        *carry, loss = step(*carry, x, y)
    jax.block_until_ready(loss)
    return (time.perf_counter() - start) / steps, tuple(carry)


def compare(name, jaxdl_model, flax_module, input_shape, batch, rounds, steps, peak):
    key_x, key_y, key_p = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (batch, *input_shape), jnp.float32)
    y = jax.random.randint(key_y, (batch,), 0, 10)
    optimizer = optax.adam(1e-3)

    _, params = jaxdl_model.init(key_p, (-1, *input_shape))
    state = jaxdl_model.init_state((-1, *input_shape))
    variables = flax_module.init(key_p, x, train=True)
    flax_params = variables["params"]
    flax_state = {k: v for k, v in variables.items() if k != "params"}
    count = num_params(params)
    assert count == num_params(flax_params), (count, num_params(flax_params))
    assert num_params(state) == num_params(flax_state), (num_params(state), num_params(flax_state))

    contenders = {}
    for label, step, p, s in (
        ("jaxdl", jaxdl_step(jaxdl_model, optimizer), params, state),
        ("flax", flax_step(flax_module, optimizer), flax_params, flax_state),
    ):
        carry = (p, optimizer.init(p), s)
        flops = flops_of(step, *carry, x, y)
        for _ in range(2):  # warm-up: compile and run
            *carry, loss = step(*carry, x, y)
        jax.block_until_ready(loss)
        contenders[label] = {"step": step, "carry": tuple(carry), "flops": flops, "times": []}
    for _ in range(rounds):  # alternate, so that machine noise hits both alike
        for entry in contenders.values():
            seconds, entry["carry"] = time_steps(entry["step"], entry["carry"], x, y, steps)
            entry["times"].append(seconds)
    rows = []
    for label, entry in contenders.items():
        median = statistics.median(entry["times"])
        rows.append((label, median, entry["flops"], entry["flops"] / median / peak))
    ratio = rows[0][1] / rows[1][1]
    print(f"\n{name}: batch {batch} x {input_shape}, {count:,} parameters, "
          f"{rounds} rounds x {steps} steps")  # fmt: skip
    print(f"  {'':6} {'ms/step':>9} {'GFLOP/step':>11} {'GFLOP/s':>9} {'of peak':>8}")
    for label, median, flops, share in rows:
        print(f"  {label:6} {1e3 * median:9.3f} {flops / 1e9:11.4f} {flops / median / 1e9:9.2f} {100 * share:7.1f}%")
    print(f"  ratio jaxdl/flax: {ratio:.3f}")
    return name, batch, input_shape, count, rows, ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches and few rounds")
    args = parser.parse_args()
    rounds, steps = (3, 3) if args.quick else (7, 10)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s))")
    peak = gemm_peak(1024 if args.quick else 2048)
    print(f"float32 GEMM peak (jnp.dot, measured): {peak / 1e9:.1f} GFLOP/s")
    results = [
        compare("LeNet-5 (32x32x1)", models.lenet5(10, parameterization="standard"), FlaxLeNet5(10),
                (32, 32, 1), 64 if args.quick else 256, rounds, steps, peak),
        compare("ResNet (16,32,64) x 2 blocks, BatchNorm (32x32x3)",
                models.resnet(10, widths=(16, 32, 64), blocks_per_stage=2, parameterization="standard"),
                FlaxResNet(10, (16, 32, 64), 2), (32, 32, 3), 16 if args.quick else 64, rounds, steps, peak),
        compare("ResNet (16,32,64) x 1 block, BatchNorm (8x8x1 digits)",
                models.resnet(10, widths=(16, 32, 64), blocks_per_stage=1, parameterization="standard"),
                FlaxResNet(10, (16, 32, 64), 1), (8, 8, 1), 64, rounds, steps, peak),
    ]  # fmt: skip
    print("\n| model | batch | params | jaxdl ms/step | flax ms/step | ratio jaxdl/flax | jaxdl % of GEMM peak | flax % of GEMM peak |")
    print("|---|---|---|---|---|---|---|---|")
    for name, batch, _, count, rows, ratio in results:
        (_, t_j, _, s_j), (_, t_f, _, s_f) = rows
        print(f"| {name} | {batch} | {count:,} | {1e3 * t_j:.2f} | {1e3 * t_f:.2f} | {ratio:.3f} | {100 * s_j:.1f} | {100 * s_f:.1f} |")


if __name__ == "__main__":
    main()
