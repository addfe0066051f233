"""jaxdl.generative.flows versus distrax: RealNVP log_prob and sample, same architecture, same weights.

The flow: ``dim = 64``, ``--couplings`` affine couplings with alternating masks (no mixing
layer, which distrax has no twin of), each conditioner a ReLU MLP ``64 → hidden → hidden
→ 128`` giving ``(shift, log_scale = 3 tanh(raw / 3))``, standard-normal base. distrax
builds the same flow from ``MaskedCoupling`` + ``ScalarAffine`` in a ``Chain`` under a
``Transformed`` ``MultivariateNormalDiag``, its conditioners calling the very same stax
MLPs with jaxdl's (randomised) weights on ``mask ⊙ x`` (jaxdl runs the same MLPs on the
kept coordinates only, with the matching rows/columns of the same weights: the same function
with fewer FLOPs, see ``flows.affine_coupling``). Before timing, the log-probabilities are
compared in float64 (goal: equal within 1e-5) and in float32; then jitted ``log_prob``
of a batch and ``sample`` of a batch are timed for both in the same process (3 interleaved
rounds of ``--repeats`` calls after compilation; best and median). Ratio = jaxdl / distrax
(goal ≤ 1), from the best times.

    pip install distrax         # not a jaxdl dependency (the `bench` extra)
    python benchmarks/flows_vs_distrax.py [--fast] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.generative import flows


def build(dim, couplings, hidden, key, dtype):
    """The jaxdl flow, its randomised params, and the distrax twin over the same params."""
    import distrax

    masks = [flows.alternating_mask(dim, i % 2) for i in range(couplings)]
    flow = flows.realnvp(dim, couplings, hidden, mixing="none", masks=masks)
    params = flow.init(key)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    # move every weight off its initial value (the couplings' last layers start at zero), by a
    # small amount per fan-in, so that the flow is far from the identity but its densities stay finite
    params = jax.tree.unflatten(tree, [(l + 0.1 / np.sqrt(l.shape[0]) * jax.random.normal(k, l.shape)).astype(dtype)
                                       for l, k in zip(leaves, keys)])  # fmt: skip
    net = flows.conditioner(dim, hidden)

    def twin(params):
        layers = []
        for i, mask in enumerate(masks):
            p = params[f"{i}_affine_coupling"]

            def conditioner(masked_x, p=p):
                return flows.coupling_shift_and_log_scale(net.apply(p, masked_x))

            layers.append(distrax.MaskedCoupling(mask=jnp.asarray(mask, bool), conditioner=conditioner,
                                                 bijector=lambda sl: distrax.ScalarAffine(shift=sl[0], log_scale=sl[1])))  # fmt: skip
        base = distrax.MultivariateNormalDiag(jnp.zeros(dim, dtype), jnp.ones(dim, dtype))
        return distrax.Transformed(base, distrax.Chain(layers[::-1]))  # Chain applies its last bijector first

    return flow, params, twin


def timed(fn, *args, repeats):
    out = fn(*args)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true", help="small flow and batch, few repeats")
    parser.add_argument("--couplings", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    dim, hidden, batch = 64, (256, 256), 1024
    couplings, repeats = args.couplings, args.repeats
    if args.fast:
        hidden, batch, couplings, repeats = (64,), 128, 4, 5

    results = {"dim": dim, "hidden": list(hidden), "couplings": couplings, "batch": batch, "jax": jax.__version__}
    import distrax

    results["distrax"] = distrax.__version__
    with jax.enable_x64(True):
        flow, params, twin = build(dim, couplings, hidden, jax.random.key(0), jnp.float64)
        x = jax.random.normal(jax.random.key(1), (batch, dim), jnp.float64) * 1.5
        ours, theirs = flow.log_prob(params, x), twin(params).log_prob(x)
        results["max_abs_log_prob_diff_float64"] = float(jnp.max(jnp.abs(ours - theirs)))
        z = jax.random.normal(jax.random.key(2), (batch, dim), jnp.float64)
        ours_x, _ = flow.forward(params, z)
        results["max_abs_forward_diff_float64"] = float(jnp.max(jnp.abs(ours_x - twin(params).bijector.forward(z))))

    flow, params, twin = build(dim, couplings, hidden, jax.random.key(0), jnp.float32)
    x = jax.random.normal(jax.random.key(1), (batch, dim)) * 1.5
    results["max_abs_log_prob_diff_float32"] = float(jnp.max(jnp.abs(flow.log_prob(params, x) - twin(params).log_prob(x))))
    results["typical_abs_log_prob"] = float(jnp.mean(jnp.abs(flow.log_prob(params, x))))

    jaxdl_log_prob = jax.jit(flow.log_prob)
    distrax_log_prob = jax.jit(lambda p, x: twin(p).log_prob(x))
    jaxdl_sample = jax.jit(lambda p, k: flow.sample(p, k, batch))
    distrax_sample = jax.jit(lambda p, k: twin(p).sample(seed=k, sample_shape=(batch,)))
    key = jax.random.key(3)
    rounds = {name: [] for name in ("jaxdl_log_prob", "distrax_log_prob", "jaxdl_sample", "distrax_sample")}
    for _ in range(3):  # interleave, so that a burst of load hits both sides
        rounds["jaxdl_log_prob"] += timed(jaxdl_log_prob, params, x, repeats=repeats)
        rounds["distrax_log_prob"] += timed(distrax_log_prob, params, x, repeats=repeats)
        rounds["jaxdl_sample"] += timed(jaxdl_sample, params, key, repeats=repeats)
        rounds["distrax_sample"] += timed(distrax_sample, params, key, repeats=repeats)
    for name, times in rounds.items():  # best of (the least disturbed by other load) and median
        results[f"{name}_ms"] = 1e3 * float(np.min(times))
        results[f"{name}_median_ms"] = 1e3 * float(np.median(times))
    for what in ("log_prob", "sample"):
        results[f"ratio_{what}"] = results[f"jaxdl_{what}_ms"] / results[f"distrax_{what}_ms"]
        results[f"ratio_{what}_median"] = results[f"jaxdl_{what}_median_ms"] / results[f"distrax_{what}_median_ms"]
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
