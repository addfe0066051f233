"""jaxdl.train: the loop against a hand-written GD loop, checkpoints bit-exact and atomic,
resume determinism, data-parallel equal to one device (8 virtual CPU devices)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

from jaxdl import stax, train
from jaxdl.train import checkpoint as checkpoint_module

INIT, APPLY, _ = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(3))
RNG = np.random.default_rng(0)
Y = RNG.integers(0, 3, size=64).astype(np.int32)
X = (RNG.normal(size=(64, 4)) + 2.0 * np.eye(3, 4)[Y]).astype(np.float32)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return jnp.mean(jnp.argmax(logits, -1) == labels)


def initial_params():
    return INIT(jax.random.key(1), (-1, 4))[1]


def assert_trees_equal(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


def test_full_batch_fit_is_gradient_descent():
    params, eta = initial_params(), 0.1
    result = train.fit(APPLY, params, optax.sgd(eta), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=5)
    objective = lambda p: cross_entropy(APPLY(p, X), Y)
    for _ in range(5):
        params = jax.tree.map(lambda p, g: p - eta * g, params, jax.grad(objective)(params))
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6), result.state.params, params)
    assert result.history["step"] == [1, 2, 3, 4, 5]
    assert int(result.state.step) == 5 and int(result.state.epoch) == 5


def test_minibatches_history_metrics_and_reproducibility():
    kwargs = dict(loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=6, batch_size=20,
                  eval_data=(X, Y), metrics={"accuracy": accuracy}, eval_every=2)
    first = train.fit(APPLY, initial_params(), optax.adam(0.05), (X, Y), **kwargs)
    second = train.fit(APPLY, initial_params(), optax.adam(0.05), (X, Y), **kwargs)
    assert_trees_equal(first.state.params, second.state.params)
    assert first.history["step"] == [3 * e for e in range(1, 7)]  # 64 // 20 = 3 batches per epoch
    assert first.history["eval_epoch"] == [2, 4, 6]
    assert first.history["train_loss"][-1] < first.history["train_loss"][0]
    final_accuracy = float(accuracy(APPLY(first.state.params, X), Y))
    assert first.history["eval_accuracy"][-1] == pytest.approx(final_accuracy)
    assert final_accuracy > 0.9


def test_early_stopping_keeps_the_best_params():
    """Evaluated on flipped labels, the eval loss rises as training fits the train labels."""
    flipped = (Y + 1) % 3
    kwargs = dict(loss_fn=cross_entropy, key=jax.random.key(0), eval_data=(X, flipped))
    result = train.fit(APPLY, initial_params(), optax.adam(0.05), (X, Y), num_epochs=20, patience=2, **kwargs)
    assert result.stopped_early
    assert result.history["eval_epoch"] == [1, 2, 3]
    assert result.history["eval_loss"][0] < min(result.history["eval_loss"][1:])
    one_epoch = train.fit(APPLY, initial_params(), optax.adam(0.05), (X, Y), num_epochs=1, **kwargs)
    assert_trees_equal(result.best_params, one_epoch.state.params)


def test_apply_key_is_split_per_step():
    def noisy_apply(params, x, key=None):
        noise = 0.0 if key is None else 0.5 * jax.random.normal(key, x.shape)
        return APPLY(params, x + noise)

    runs = [
        train.fit(noisy_apply, initial_params(), optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=key,
                  num_epochs=2, batch_size=16, apply_takes_key=True)
        for key in (jax.random.key(0), jax.random.key(0), jax.random.PRNGKey(1))
    ]
    assert_trees_equal(runs[0].state.params, runs[1].state.params)
    assert not np.allclose(runs[0].state.params["Dense_0"]["W"], runs[2].state.params["Dense_0"]["W"])


def test_progress_bar_is_off_when_not_a_terminal(capsys):
    train.fit(APPLY, initial_params(), optax.sgd(0.1), (X, Y), loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=2)
    assert capsys.readouterr().err == ""


def checkpoint_tree():
    params = initial_params()
    optimizer = optax.adam(1e-3)
    return {
        "params": params,
        "opt_state": optimizer.init(params),
        "step": jnp.int32(7),
        "key": jax.random.split(jax.random.key(3))[1],
        "legacy_key": jax.random.PRNGKey(4),
        "bf16": jnp.asarray(RNG.normal(size=5), jnp.bfloat16),
        "epoch": 3,
    }


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    tree = checkpoint_tree()
    path = train.save_checkpoint(tmp_path / "ckpt.msgpack", tree)
    restored = train.restore_checkpoint(path, like=tree)
    assert jax.tree.structure(restored) == jax.tree.structure(tree)
    assert jax.random.key_impl(restored["key"]) == jax.random.key_impl(tree["key"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(tree["key"]))
    plain = lambda t: {k: v for k, v in t.items() if k != "key"}
    for a, b in zip(jax.tree.leaves(plain(restored)), jax.tree.leaves(plain(tree))):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert restored["epoch"] == 3 and restored["opt_state"][0].count.dtype == jnp.int32
    with jax.enable_x64(True):
        wide = {"x": jnp.asarray(np.pi, jnp.float64) + jnp.arange(3, dtype=jnp.float64) * 1e-17}
        train.save_checkpoint(tmp_path / "wide.msgpack", wide)
        back = train.restore_checkpoint(tmp_path / "wide.msgpack", like=wide)
        assert back["x"].dtype == jnp.float64
        np.testing.assert_array_equal(back["x"], wide["x"])


def test_restore_against_a_mismatched_tree_names_the_entry(tmp_path):
    tree = checkpoint_tree()
    path = train.save_checkpoint(tmp_path / "ckpt.msgpack", tree)
    wrong = jax.tree.map(lambda leaf: leaf, tree)  # a copy with one array of another shape
    wrong["params"]["Dense_0"]["W"] = jnp.zeros((5, 16))
    with pytest.raises(ValueError, match=r"restore_checkpoint.*Dense_0.*W"):
        train.restore_checkpoint(path, like=wrong)
    with pytest.raises(ValueError, match="restore_checkpoint"):
        train.restore_checkpoint(path, like={"params": tree["params"]})
    with pytest.raises(FileNotFoundError, match="restore_checkpoint"):
        train.restore_checkpoint(tmp_path / "missing.msgpack", like=tree)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failing):
    path = tmp_path / "ckpt.msgpack"
    old = checkpoint_tree()
    train.save_checkpoint(path, old)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(checkpoint_module.os, failing, crash)
    new = dict(old, step=jnp.int32(8))
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(path, new)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.msgpack"]  # no temporary left behind
    assert int(train.restore_checkpoint(path, like=old)["step"]) == 7


def test_resumed_run_ends_with_exactly_the_params_of_an_uninterrupted_run(tmp_path):
    kwargs = dict(loss_fn=cross_entropy, batch_size=16, eval_data=(X, Y), metrics={"accuracy": accuracy},
                  patience=50)
    full = train.fit(APPLY, initial_params(), optax.adam(0.02), (X, Y), key=jax.random.key(0), num_epochs=6, **kwargs)
    path = tmp_path / "run.msgpack"
    interrupted = train.fit(APPLY, initial_params(), optax.adam(0.02), (X, Y), key=jax.random.key(0), num_epochs=3,
                            checkpoint_path=path, **kwargs)
    assert int(interrupted.state.epoch) == 3
    resumed = train.fit(APPLY, initial_params(), optax.adam(0.02), (X, Y), key=jax.random.key(99), num_epochs=6,
                        checkpoint_path=path, resume=True, **kwargs)
    assert_trees_equal(resumed.state.params, full.state.params)
    assert_trees_equal(resumed.state.opt_state, full.state.opt_state)
    assert_trees_equal(resumed.best_params, full.best_params)
    np.testing.assert_array_equal(jax.random.key_data(resumed.state.key), jax.random.key_data(full.state.key))
    assert resumed.history == full.history
    on_disk = train.restore_checkpoint(path)
    assert int(on_disk["state"]["epoch"]) == 6


def test_data_parallel_equals_single_device():
    assert jax.device_count() >= 8, "tests/conftest.py should provide 8 virtual CPU devices"
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    kwargs = dict(loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=4, batch_size=16,
                  eval_data=(X, Y), metrics={"accuracy": accuracy})
    single = train.fit(APPLY, initial_params(), optax.adam(0.02), (X, Y), **kwargs)
    parallel = train.fit(APPLY, initial_params(), optax.adam(0.02), (X, Y), mesh=mesh, **kwargs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 parallel.state.params, single.state.params)
    np.testing.assert_allclose(parallel.history["train_loss"], single.history["train_loss"], rtol=1e-5)
    assert len(parallel.state.params["Dense_0"]["W"].sharding.device_set) == 8
    with pytest.raises(ValueError, match="fit: expected batch_size divisible by the 8 devices"):
        train.fit(APPLY, initial_params(), optax.sgd(0.1), (X, Y), mesh=mesh, **dict(kwargs, batch_size=12))


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(train_data=(X, Y[:10])), ValueError, "same number of examples"),
        (dict(train_data=X), TypeError, "pair"),
        (dict(batch_size=100), ValueError, "batch_size"),
        (dict(num_epochs=0), ValueError, "num_epochs"),
        (dict(resume=True), ValueError, "checkpoint_path"),
        (dict(patience=3), ValueError, "eval_data"),
        (dict(key=None), TypeError, "fit: expected a PRNG key"),
        (dict(optimizer=lambda g: g), TypeError, "GradientTransformation"),
    ],
)
def test_bad_input_names_fit(change, error, match):
    arguments = dict(apply_fn=APPLY, params=initial_params(), optimizer=optax.sgd(0.1), train_data=(X, Y),
                     loss_fn=cross_entropy, key=jax.random.key(0), num_epochs=1)
    arguments.update(change)
    with pytest.raises(error, match=match):
        train.fit(**arguments)
