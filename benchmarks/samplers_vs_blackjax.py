"""jaxdl.samplers versus blackjax on Bayesian logistic regression (500 x 20).

Same target, same initial positions, same step sizes, same number of chains
and draws, timed in the same process (runs interleaved, best of ``--repeats``
after compilation). Both libraries run through their public interface: jaxdl's
``samplers.sample`` and blackjax's kernel in a ``lax.scan`` that stacks the
states and infos, as blackjax's documentation does. ESS is computed with one
estimator (``jaxdl.samplers.effective_sample_size``) for both.

SGLD minibatches are drawn the same way for both (a uniformly random subset of
the data per step, ``jax.random.choice(replace=False)``): jaxdl draws it inside
its kernel, blackjax takes it as an argument.

    pip install blackjax        # not a jaxdl dependency
    python benchmarks/samplers_vs_blackjax.py [--fast] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import samplers

NUM_DATA, DIM = 500, 20


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_DATA, DIM)).astype(np.float32)
    w_true = rng.normal(size=DIM).astype(np.float32) * 0.5
    y = (rng.uniform(size=NUM_DATA) < 1 / (1 + np.exp(-x @ w_true))).astype(np.float32)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def logprior(w):
        return -0.5 * jnp.sum(w**2)

    def loglik(w, datum):
        xi, yi = datum
        logit = xi @ w
        return yi * logit - jax.nn.softplus(logit)

    def logdensity(w):
        logits = x @ w
        return logprior(w) + jnp.sum(y * logits - jax.nn.softplus(logits))

    return (x, y), logprior, loglik, logdensity


def blackjax_loop(step, init, num_samples):
    def run(key, position):
        def one_step(state, key):
            state, info = step(key, state)
            return state, (state, info)

        keys = jax.random.split(key, num_samples)
        _, (states, infos) = jax.lax.scan(one_step, init(position), keys)
        return states.position, infos

    return run


def blackjax_sgld_loop(blackjax, logprior, loglik, data, batch_size, step_size, num_samples):
    grad_fn = blackjax.sgmcmc.gradients.grad_estimator(logprior, loglik, NUM_DATA)
    sgld = blackjax.sgld(grad_fn)

    def run(key, position):
        def one_step(position, key):
            key_batch, key_step = jax.random.split(key)
            index = jax.random.choice(key_batch, NUM_DATA, (batch_size,), replace=False)
            minibatch = jax.tree.map(lambda leaf: leaf[index], data)
            position = sgld.step(key_step, position, minibatch, step_size)
            return position, position

        keys = jax.random.split(key, num_samples)
        _, positions = jax.lax.scan(one_step, sgld.init(position), keys)
        return positions, None

    return run


def jaxdl_loop(algorithm, num_samples):
    def run(key, position):
        states, infos = samplers.sample(algorithm, key, position, num_samples)
        return states.position, infos

    return run


def measure(runs, keys, starts, repeats, num_samples, burn_in, grads_per_sample):
    """Interleaved timing and ESS of each ``run(key, position)`` over the chains."""
    compiled = {name: jax.jit(jax.vmap(run)) for name, run in runs.items()}
    times = {name: [] for name in runs}
    for name, fn in compiled.items():
        jax.block_until_ready(fn(keys, starts))
    for _ in range(repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(keys, starts))
            times[name].append(time.perf_counter() - start)
    results = {}
    for name, fn in compiled.items():
        positions, infos = fn(keys, starts)
        draws = np.asarray(positions)[:, burn_in:]
        ess = np.asarray(samplers.effective_sample_size(draws))
        seconds = min(times[name])
        total = draws.shape[0] * num_samples
        row = {
            "seconds": seconds,
            "us_per_sample": 1e6 * seconds / total,
            "ess_min": float(ess.min()),
            "ess_median": float(np.median(ess)),
            "ess_per_s": float(np.median(ess)) / seconds,
            "ess_per_1k_grads": 1000 * float(np.median(ess)) / (total * grads_per_sample),
            "posterior_mean_norm": float(np.linalg.norm(draws.mean(axis=(0, 1)))),
        }
        if infos is not None and hasattr(infos, "acceptance_rate"):
            row["acceptance"] = float(np.mean(infos.acceptance_rate))
        results[name] = row
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer draws and repeats")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    import blackjax

    num_hmc, num_sgld = (500, 5000) if args.fast else (2000, 20000)
    repeats = 2 if args.fast else args.repeats
    data, logprior, loglik, logdensity = make_problem()
    keys = jax.random.split(jax.random.key(0), args.chains)
    starts = 0.1 * jax.random.normal(jax.random.key(1), (args.chains, DIM))

    hmc_step, hmc_steps = 0.05, 10
    hmc = measure(
        {
            "jaxdl": jaxdl_loop(samplers.hmc(logdensity, hmc_step, hmc_steps), num_hmc),
            "blackjax": blackjax_loop(
                *(lambda a: (a.step, a.init))(blackjax.hmc(logdensity, hmc_step, jnp.ones(DIM), hmc_steps)),
                num_hmc,
            ),
        },
        keys, starts, repeats, num_hmc, num_hmc // 10, hmc_steps,
    )
    sgld_step, batch_size = 2e-4, 50
    sgld = measure(
        {
            "jaxdl": jaxdl_loop(samplers.sgld(logprior, loglik, data, batch_size, sgld_step), num_sgld),
            "blackjax": blackjax_sgld_loop(
                blackjax, logprior, loglik, data, batch_size, sgld_step, num_sgld
            ),
        },
        keys, starts, repeats, num_sgld, num_sgld // 10, 1,
    )
    for table in (hmc, sgld):
        table["time_ratio"] = table["jaxdl"]["seconds"] / table["blackjax"]["seconds"]
        table["ess_per_s_ratio"] = table["jaxdl"]["ess_per_s"] / table["blackjax"]["ess_per_s"]
    results = {
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "blackjax": blackjax.__version__,
        "chains": args.chains,
        "hmc": {"step_size": hmc_step, "num_integration_steps": hmc_steps, "num_samples": num_hmc, **hmc},
        "sgld": {"step_size": sgld_step, "batch_size": batch_size, "num_samples": num_sgld, **sgld},
    }
    print(f"Bayesian logistic regression {NUM_DATA} x {DIM}, {args.chains} chains, "
          f"device {results['device']}, jax {jax.__version__}, blackjax {blackjax.__version__}")
    print("| sampler | library | us/sample | median ESS | ESS/s | ESS/1k grads | accept | time ratio jaxdl/blackjax | ESS/s ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, table in (("HMC", hmc), ("SGLD", sgld)):
        time_ratio, ess_ratio = table["time_ratio"], table["ess_per_s_ratio"]
        for library in ("jaxdl", "blackjax"):
            row = table[library]
            ratios = f"{time_ratio:.2f} | {ess_ratio:.2f}" if library == "jaxdl" else " | "
            accept = f"{row['acceptance']:.2f}" if "acceptance" in row else "-"
            print(f"| {name} | {library} | {row['us_per_sample']:.1f} | {row['ess_median']:.0f} | "
                  f"{row['ess_per_s']:.0f} | {row['ess_per_1k_grads']:.1f} | "
                  f"{accept} | {ratios} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
