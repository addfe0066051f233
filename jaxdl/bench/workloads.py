"""The workloads of ``jaxdl bench``: standard deep-learning steps built from jaxdl's models.

Each workload builds a :class:`Prepared` step ``step(state, data)``:

* training workloads (``mlp``, ``lenet5``, ``resnet``, ``lstm``, ``lru``, ``gpt``): one
  forward pass, backward pass and ``optax.adam`` update; ``state = (params, opt_state)``
  (plus the BatchNorm statistics for ``resnet``) is carried from step to step;
* kernel workloads (``nngp_ntk_mlp``, ``nngp_ntk_cnn``, ``empirical_ntk``): the
  ``batch x batch`` kernel between ``data = x1`` and a second batch ``x2`` held in ``state``;
* ``hmc_logreg``: one HMC transition (``leapfrog`` gradient steps and a Metropolis test) on
  the posterior of a Bayesian logistic regression with ``batch`` data points.

``data`` holds the arrays with a leading batch axis, which data-parallel runs shard over the
devices; ``state`` is replicated. ``items`` counts the examples (tokens for the language
models, kernel entries for the kernels, transitions for HMC) one step processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxdl import kernels, models, samplers, stax


@dataclass(frozen=True)
class Prepared:
    """A step ready to time: ``step(state, data)`` returns the next state when ``carries_state``."""

    step: Callable
    state: Any
    data: Any
    items: int
    carries_state: bool


@dataclass(frozen=True)
class Workload:
    """A named workload: ``build(batch, dtype, tiny) -> Prepared``."""

    name: str
    description: str
    unit: str
    batch: int
    tiny_batch: int
    build: Callable[[int, Any, bool], Prepared]
    requires: str | None = None  # an attribute of jaxdl.models the workload needs

    def available(self) -> bool:
        return self.requires is None or hasattr(models, self.requires)


def _cast(tree, dtype):
    """Floating leaves of ``tree`` in ``dtype``; integer leaves (token ids, labels, keys) unchanged."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _classification_loss(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels))


def _training(loss_fn: Callable, params, data, dtype, items: int, extra_state=None) -> Prepared:
    """A forward + backward + Adam step of ``loss_fn(params, data)`` (or, with ``extra_state``,
    ``loss_fn(params, extra_state, data) -> (loss, new_extra_state)``)."""
    params = _cast(params, dtype)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    data = _cast(data, dtype)

    if extra_state is None:
        def step(state, data):
            params, opt_state = state
            grads = jax.grad(loss_fn)(params, data)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        return Prepared(step, (params, opt_state), data, items, True)

    def step_with_state(state, data):
        params, extra, opt_state = state
        grads, extra = jax.grad(loss_fn, has_aux=True)(params, extra, data)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), extra, opt_state

    return Prepared(step_with_state, (params, _cast(extra_state, dtype), opt_state), data, items, True)


def _images(key, batch, shape, num_classes=10):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (batch, *shape)), jax.random.randint(ky, (batch,), 0, num_classes)


def _classifier(model, input_shape, batch, dtype) -> Prepared:
    init_fn, apply_fn = model[0], model[1]
    kp, kd = jax.random.split(jax.random.key(0))
    _, params = init_fn(kp, (-1, *input_shape))
    data = _images(kd, batch, input_shape)
    return _training(lambda p, d: _classification_loss(apply_fn(p, d[0]), d[1]), params, data, dtype, batch)


def _mlp(batch, dtype, tiny):
    widths, features = ((16,), 8) if tiny else ((1024, 1024, 1024), 784)
    return _classifier(models.mlp(widths, 10), (features,), batch, dtype)


def _lenet5(batch, dtype, tiny):
    model = models.lenet5(10, channels=(2, 4), hidden=(8,)) if tiny else models.lenet5(10)
    return _classifier(model, (32, 32, 1), batch, dtype)


def _resnet(batch, dtype, tiny):
    if tiny:
        model, shape = models.resnet(10, widths=(4, 8), blocks_per_stage=1), (8, 8, 3)
    else:
        model, shape = models.resnet(10, widths=(16, 32, 64), blocks_per_stage=2), (32, 32, 3)
    kp, kd = jax.random.split(jax.random.key(0))
    _, params = model.init(kp, (-1, *shape))
    bn_state = model.init_state((-1, *shape))
    data = _images(kd, batch, shape)

    def loss(params, bn_state, data):
        logits, bn_state = model.apply(params, data[0], state=bn_state, train=True)
        return _classification_loss(logits, data[1]), bn_state

    return _training(loss, params, data, dtype, batch, extra_state=bn_state)


def _tokens(key, batch, length, vocab):
    return jax.random.randint(key, (batch, length), 0, vocab)


def _lstm(batch, dtype, tiny):
    vocab, embed, hidden, length = (16, 8, (8,), 8) if tiny else (256, 64, (256,), 64)
    init_fn, apply_fn, _ = models.rnn_lm(vocab, cell="lstm", embed_dim=embed, hidden=hidden)
    kp, kd = jax.random.split(jax.random.key(0))
    _, params = init_fn(kp, (-1, length))
    tokens = _tokens(kd, batch, length + 1, vocab)
    return _training(lambda p, t: models.causal_lm_loss(apply_fn, p, t), params, tokens, dtype, batch * length)


def _lru(batch, dtype, tiny):
    blocks, d_model, d_state, length, features = (1, 8, 8, 8, 4) if tiny else (4, 128, 128, 256, 16)
    init_fn, apply_fn, _ = models.deep_lru(blocks, d_model, d_state, 10)
    kp, kd = jax.random.split(jax.random.key(0))
    _, params = init_fn(kp, (-1, length, features))
    data = _images(kd, batch, (length, features))
    return _training(lambda p, d: _classification_loss(apply_fn(p, d[0]), d[1]), params, data, dtype,
                     batch * length)


def _gpt(batch, dtype, tiny):
    if tiny:
        vocab, length, config = 16, 8, dict(d_model=16, num_heads=2, num_layers=1)
    else:
        vocab, length, config = 256, 128, dict(d_model=256, num_heads=4, num_layers=4)
    init_fn, apply_fn, _ = models.gpt(vocab, context_length=length, **config)
    kp, kd = jax.random.split(jax.random.key(0))
    _, params = init_fn(kp, (-1, length))
    tokens = _tokens(kd, batch, length + 1, vocab)
    return _training(lambda p, t: models.causal_lm_loss(apply_fn, p, t), params, tokens, dtype, batch * length)


def _kernel(kernel_fn, shape, batch, dtype) -> Prepared:
    """The NNGP and NTK between ``data = x1`` and ``state = x2``, both ``(batch, *shape)``."""
    k1, k2 = jax.random.split(jax.random.key(1))
    x1, x2 = (_cast(jax.random.normal(k, (batch, *shape)), dtype) for k in (k1, k2))

    def step(x2, x1):
        kernel = kernel_fn(x1, x2, ("nngp", "ntk"))
        return kernel.nngp, kernel.ntk

    return Prepared(step, x2, x1, batch * batch, False)


def _nngp_ntk_mlp(batch, dtype, tiny):
    depth, features = (2, 8) if tiny else (8, 64)
    layers = [stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu()] * depth
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.05))
    return _kernel(kernel_fn, (features,), batch, dtype)


def _nngp_ntk_cnn(batch, dtype, tiny):
    shape = (4, 4, 1) if tiny else (8, 8, 3)
    conv = [stax.Conv(64, (3, 3), padding="SAME", W_std=1.5, b_std=0.05), stax.Relu()]
    _, _, kernel_fn = stax.serial(*conv, *conv, stax.Flatten(), stax.Dense(1, W_std=1.5, b_std=0.05))
    return _kernel(kernel_fn, shape, batch, dtype)


def _empirical_ntk(batch, dtype, tiny):
    widths, features, outputs = ((16,), 8, 2) if tiny else ((256, 256), 64, 10)
    init_fn, apply_fn, _ = models.mlp(widths, outputs)
    _, params = init_fn(jax.random.key(0), (-1, features))
    ntk_fn = kernels.empirical_ntk_fn(apply_fn)
    k1, k2 = jax.random.split(jax.random.key(1))
    x1, x2 = (_cast(jax.random.normal(k, (batch, features)), dtype) for k in (k1, k2))
    return Prepared(lambda state, x1: ntk_fn(x1, state[1], state[0]), (_cast(params, dtype), x2), x1,
                    batch * batch, False)


def _hmc_logreg(batch, dtype, tiny):
    features, leapfrog = (4, 2) if tiny else (32, 16)
    kx, kw, ky = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(kx, (batch, features))
    true_w = jax.random.normal(kw, (features,))
    y = (jax.random.uniform(ky, (batch,)) < jax.nn.sigmoid(x @ true_w)).astype(jnp.float32)
    x, y = _cast((x, y), dtype)

    def logdensity(data):
        """Bayesian logistic regression: w ~ N(0, I), y_i ~ Bernoulli(sigmoid(x_i . w))."""
        x, y = data

        def log_posterior(w):
            logits = x @ w
            return -0.5 * jnp.sum(w * w) + jnp.sum(y * logits - jax.nn.softplus(logits))

        return log_posterior

    def sampler(data):
        return samplers.hmc(logdensity(data), step_size=0.1 / math.sqrt(batch), num_integration_steps=leapfrog)

    w0 = jnp.zeros((features,), dtype)
    state = (sampler((x, y)).init(w0), jax.random.key(3))

    def step(state, data):
        chain, key = state
        key, subkey = jax.random.split(key)
        chain, _ = sampler(data).step(subkey, chain)
        return chain, key

    return Prepared(step, state, (x, y), 1, True)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("mlp", "MLP 784-1024-1024-1024-10, softmax cross-entropy, Adam", "examples", 256, 8, _mlp),
        Workload("lenet5", "LeNet-5 on 32x32x1 images, Adam", "examples", 128, 8, _lenet5),
        Workload("resnet", "ResNet-14 (widths 16-32-64, BatchNorm) on 32x32x3 images, Adam", "examples",
                 64, 8, _resnet),
        Workload("lstm", "LSTM language model (vocab 256, embed 64, hidden 256, 64 tokens), Adam", "tokens",
                 32, 8, _lstm),
        Workload("lru", "deep LRU (4 blocks, d_model 128, d_state 128) on 256-step sequences, Adam", "tokens",
                 32, 8, _lru),
        Workload("gpt", "GPT (4 layers, d_model 256, 4 heads, 128 tokens, vocab 256), Adam", "tokens", 16, 8,
                 _gpt, requires="gpt"),
        Workload("nngp_ntk_mlp", "analytic NNGP+NTK of an 8-layer ReLU MLP, batch x batch", "kernel entries",
                 512, 8, _nngp_ntk_mlp),
        Workload("nngp_ntk_cnn", "analytic NNGP+NTK of a 2-layer ReLU CNN on 8x8x3 images, batch x batch",
                 "kernel entries", 32, 8, _nngp_ntk_cnn),
        Workload("empirical_ntk", "empirical NTK of an MLP 64-256-256-10 (trace over outputs), batch x batch",
                 "kernel entries", 64, 8, _empirical_ntk),
        Workload("hmc_logreg", "HMC transition (16 leapfrog steps) on a Bayesian logistic regression with "
                 "batch data points, 32 features", "transitions", 4096, 8, _hmc_logreg),
    ]
}


__all__ = ["Prepared", "WORKLOADS", "Workload"]
