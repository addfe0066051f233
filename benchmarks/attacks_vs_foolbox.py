"""PGD: jaxdl.robust vs foolbox 3 (JAX backend), side by side in one process.

The same MLP (64-128-128-10, trained here for a few epochs on the bundled 8x8 digits,
pixels in [0, 1]) and the same batch of test images; PGD with the same threat model,
number of steps, absolute step size and random start, no restarts:

* L∞: ε = 0.1, 20 steps of 0.0125 (Madry's 2.5 ε / steps);
* L2: ε = 1.0, 20 steps of 0.125.

foolbox runs ``LinfPGD``/``L2PGD`` on ``foolbox.JAXModel(apply, bounds=(0, 1))`` (through
eagerpy); jaxdl runs ``robust.pgd`` under ``jax.jit``. Times are the median of several
calls after a warm-up call (compilation excluded for both); success is the share of
the batch misclassified after the attack (foolbox's ``success`` flag, and the same
criterion for jaxdl; examples misclassified to begin with count as successes for both),
averaged over the timed rounds (each with a fresh random start).

    .venv/bin/python benchmarks/attacks_vs_foolbox.py [--batch 450] [--rounds 5]
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import models, robust, train
from jaxdl.data import load_digits

SETTINGS = {"linf": dict(eps=0.1, steps=20, step_size=0.0125), "l2": dict(eps=1.0, steps=20, step_size=0.125)}


def trained_mlp():
    data = load_digits(seed=0, standardize=False)
    scale = lambda x: (np.asarray(x) / 16).astype(np.float32)
    x, y, x_test, y_test = scale(data.x_train), np.asarray(data.y_train), scale(data.x_test), np.asarray(data.y_test)
    model = models.mlp((128, 128), 10, W_std=2**0.5, parameterization="standard", b_std=0.0)
    _, params = model.init(jax.random.key(0), (-1, 64))
    loss = lambda logits, labels: jnp.mean(robust.cross_entropy(logits, labels))
    params = train.fit(model.apply, params, optax.adam(3e-3), (x, y), loss_fn=loss, key=jax.random.key(1),
                       num_epochs=10, batch_size=64, progress=False).state.params
    return model, params, jnp.asarray(x_test), jnp.asarray(y_test)


def timed(fn, rounds):
    """Median seconds of ``rounds`` calls after a warm-up call, and every call's output."""
    jax.block_until_ready(fn())  # warm-up (compilation)
    times, outs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        outs.append(jax.block_until_ready(fn()))
        times.append(time.perf_counter() - start)
    return statistics.median(times), outs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=450)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model, params, x, y = trained_mlp()
    x, y = x[: args.batch], y[: args.batch]
    apply = jax.jit(lambda z: model.apply(params, z))
    print(f"jax {jax.__version__}; batch {x.shape[0]}; clean accuracy {float(jnp.mean(jnp.argmax(apply(x), -1) == y)):.4f}")
    try:
        import foolbox
    except Exception as error:  # report precisely why the peer is missing
        foolbox, foolbox_error = None, f"{type(error).__name__}: {error}"
    print(f"foolbox {foolbox.__version__ if foolbox else 'unavailable: ' + foolbox_error}")
    print(f"{'norm':5} {'eps':>5} {'jaxdl ms':>9} {'foolbox ms':>11} {'ratio':>6} {'jaxdl success':>14} {'foolbox success':>16}")
    for norm, s in SETTINGS.items():
        attack = jax.jit(lambda p, xs, ys, k: robust.pgd(model.apply, p, xs, ys, k, eps=s["eps"], norm=norm,
                                                         steps=s["steps"], step_size=s["step_size"], domain=(0.0, 1.0)))
        counter = iter(range(10**6))
        ours_s, outs = timed(lambda: attack(params, x, y, jax.random.key(next(counter))), args.rounds)
        ours_success = float(np.mean([jnp.mean(jnp.argmax(apply(o), -1) != y) for o in outs]))  # over the rounds
        x_ours = outs[-1]
        size = jnp.abs(x_ours - x).max() if norm == "linf" else jnp.linalg.norm(x_ours - x, axis=1).max()
        assert float(size) <= s["eps"] * (1 + 1e-5) and float(x_ours.min()) >= 0 and float(x_ours.max()) <= 1
        theirs_s, theirs_success = float("nan"), float("nan")
        if foolbox is not None:
            fmodel = foolbox.JAXModel(apply, bounds=(0.0, 1.0))
            cls = foolbox.attacks.LinfPGD if norm == "linf" else foolbox.attacks.L2PGD
            fb_attack = cls(abs_stepsize=s["step_size"], steps=s["steps"], random_start=True)
            theirs_s, outs = timed(lambda: fb_attack(fmodel, x, y, epsilons=s["eps"]), args.rounds)
            theirs_success = float(np.mean([jnp.mean(success) for _, _, success in outs]))
            _, x_theirs, success = outs[-1]
            agree = float(jnp.mean(jnp.argmax(apply(x_theirs), -1) != y))
            assert abs(agree - float(jnp.mean(success))) < 1e-6, "foolbox's success flag disagrees with its adversarials"
        print(f"{norm:5} {s['eps']:5} {1e3 * ours_s:9.2f} {1e3 * theirs_s:11.2f} {ours_s / theirs_s:6.3f} "
              f"{ours_success:14.4f} {theirs_success:16.4f}")


if __name__ == "__main__":
    main()
