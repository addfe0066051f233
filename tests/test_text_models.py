"""Text and sequence models of jaxdl.models: recursive nets, skip-gram, text CNN, RNN
classifiers and language models, and the attention encoder-decoder (issue 14)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import models
from jaxdl.stax.layer import output_shape

# --- recursive networks ------------------------------------------------------------

# Leaves 0..4; inner nodes 5 = (0, 1), 6 = (3, 4), 7 = (2, 6), 8 = (5, 7): ((a b) (c (d e))).
CHILDREN = np.array([[0, 1], [3, 4], [2, 6], [5, 7]])


def _unrolled_root(W, b, leaves):
    phi = lambda left, right: np.tanh(W @ np.concatenate([left, right]) + b)
    a, bb, c, d, e = leaves
    return phi(phi(a, bb), phi(c, phi(d, e)))


def test_recursive_net_equals_hand_unrolled_composition():
    net = models.recursive_net(4, b_std=0.5)
    params = net.init(jax.random.key(0))
    assert params["W"].shape == (4, 8) and params["b"].shape == (4,)
    leaves = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    nodes = net.apply(params, leaves, CHILDREN)
    assert nodes.shape == (9, 4)
    W, b = np.asarray(params["W"], np.float64), np.asarray(params["b"], np.float64)
    np.testing.assert_allclose(nodes[-1], _unrolled_root(W, b, leaves.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(nodes[:5], leaves)  # leaves pass through
    # jit (children traced) and vmap over a batch of same-shaped trees give the same numbers.
    np.testing.assert_allclose(jax.jit(net.apply)(params, leaves, CHILDREN), nodes, rtol=1e-6, atol=1e-6)
    batch = np.stack([leaves, 2 * leaves])
    roots = jax.vmap(net.apply, in_axes=(None, 0, None))(params, batch, CHILDREN)[:, -1]
    np.testing.assert_allclose(roots[1], _unrolled_root(W, b, 2 * leaves.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_recursive_net_gradients_match_finite_differences():
    with jax.enable_x64(True):
        net = models.recursive_net(3, b_std=0.3)
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), net.init(jax.random.key(1)))
        rng = np.random.default_rng(1)
        leaves = rng.normal(size=(5, 3))
        readout = rng.normal(size=3)

        @jax.jit
        def loss(params, leaves):
            return jnp.dot(net.apply(params, leaves, CHILDREN)[-1], readout)

        grads = jax.grad(loss, argnums=(0, 1))(params, leaves)
        eps = 1e-6
        for _ in range(4):  # random directions in (W, b, leaves)
            dW, db, dl = rng.normal(size=(3, 6)), rng.normal(size=3), rng.normal(size=(5, 3))
            plus = loss({"W": params["W"] + eps * dW, "b": params["b"] + eps * db}, leaves + eps * dl)
            minus = loss({"W": params["W"] - eps * dW, "b": params["b"] - eps * db}, leaves - eps * dl)
            numeric = (plus - minus) / (2 * eps)
            analytic = np.sum(grads[0]["W"] * dW) + np.sum(grads[0]["b"] * db) + np.sum(grads[1] * dl)
            np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_recursive_net_rejects_bad_trees():
    net = models.recursive_net(2)
    params = net.init(jax.random.key(0))
    leaves = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="^recursive_net: children"):
        net.apply(params, leaves, np.array([[0, 4], [1, 2]]))  # node 4 is used before it is computed
    with pytest.raises(ValueError, match="^recursive_net: expected children"):
        net.apply(params, leaves, np.array([0, 1]))
    with pytest.raises(ValueError, match="^recursive_net: expected leaves"):
        net.apply(params, np.zeros((3, 5)), np.array([[0, 1], [2, 3]]))


# --- skip-gram with negative sampling ----------------------------------------------


def test_skipgram_pairs_are_the_cooccurrence_set():
    tokens = np.array([4, 1, 3, 3, 0, 2, 1])
    centres, contexts = models.skipgram_pairs(tokens, window=2)
    expected = sorted((tokens[i], tokens[j]) for i in range(7) for j in range(7) if 1 <= abs(i - j) <= 2)
    assert sorted(zip(centres.tolist(), contexts.tolist())) == [tuple(map(int, p)) for p in expected]


def test_skipgram_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    params = {"x": rng.normal(size=(7, 4)), "z": 3 * rng.normal(size=(7, 4))}  # large scores exercise stability
    centres, contexts = rng.integers(0, 7, 6), rng.integers(0, 7, 6)
    negatives = rng.integers(0, 7, (6, 3))
    log_sigmoid = lambda s: -np.logaddexp(0.0, -s)
    reference = 0.0
    for b in range(6):
        x = params["x"][centres[b]]
        reference -= log_sigmoid(x @ params["z"][contexts[b]])
        reference -= sum(log_sigmoid(-x @ params["z"][v]) for v in negatives[b])
    reference /= 6
    with jax.enable_x64(True):
        loss = models.skipgram_loss(params, centres, contexts, negatives)
    np.testing.assert_allclose(loss, reference, rtol=1e-10)
    # No overflow for huge scores: the loss of a confidently right pair is ~0, not NaN.
    huge = {"x": np.full((2, 1), 100.0, np.float32), "z": np.array([[100.0], [-100.0]], np.float32)}
    assert float(models.skipgram_loss(huge, [0], [0], [[1]])) == pytest.approx(0.0, abs=1e-6)


def test_skipgram_puts_planted_cooccurring_words_nearest():
    # 8 groups of 4 words; the text is a run of segments, each one group's words in a random order,
    # so words of a group always co-occur and share their contexts.
    rng = np.random.default_rng(0)
    groups, size = 8, 4
    tokens = np.concatenate([rng.permutation(size) + size * rng.integers(groups) for _ in range(1000)])
    params, losses = models.train_skipgram(
        tokens, groups * size, dim=16, window=2, steps=200, batch_size=128, learning_rate=0.05, key=jax.random.key(0)
    )
    assert losses[-20:].mean() < 0.6 * losses[:5].mean()
    vectors = params["x"] + params["z"]
    for word in range(groups * size):
        neighbours, similarity = models.nearest_neighbours(vectors, word, k=size - 1)
        mates = set(range(size * (word // size), size * (word // size) + size)) - {word}
        assert set(np.asarray(neighbours).tolist()) == mates, word
        assert np.all(np.diff(np.asarray(similarity)) <= 0)


def test_nearest_neighbours_matches_brute_force_cosine():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(12, 5))
    emb[3] = 0.0  # a zero vector: similarity 0, not NaN
    indices, sims = models.nearest_neighbours(emb, 7, k=4)
    norms = np.linalg.norm(emb, axis=1)
    cosine = [emb[j] @ emb[7] / (norms[j] * norms[7]) if norms[j] > 0 else 0.0 for j in range(12)]
    order = [j for j in np.argsort(cosine)[::-1] if j != 7][:4]
    assert np.asarray(indices).tolist() == order
    np.testing.assert_allclose(sims, np.array(cosine)[order], rtol=1e-5)
    with pytest.raises(ValueError, match="^nearest_neighbours: "):
        models.nearest_neighbours(emb, 12, k=2)


# --- text CNN ----------------------------------------------------------------------


def test_text_cnn_shapes_and_max_over_time_against_numpy():
    model = models.text_cnn(20, 3, embed_dim=5, widths=(2, 3), num_filters=4)
    out_shape, params = model.init(jax.random.key(0), (2, 9))
    tokens = np.random.default_rng(0).integers(0, 20, (2, 9)).astype(np.int32)
    logits = jax.jit(model.apply)(params, tokens)
    assert out_shape == (2, 3) and logits.shape == (2, 3)
    # numpy: embed, VALID 1-D convolutions (cross-correlation), ReLU, max over time, concat, dense.
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    x = p["Embedding_0"]["E"][tokens]  # (2, 9, 5)
    pooled = []
    for branch, width in zip(("serial_0", "serial_1"), (2, 3)):
        W, b = p["parallel_2"][branch]["Conv_0"]["W"], p["parallel_2"][branch]["Conv_0"]["b"].reshape(-1)
        conv = np.stack([np.einsum("bkd,kdf->bf", x[:, t : t + width], W) + b for t in range(9 - width + 1)], axis=1)
        pooled.append(np.maximum(conv, 0.0).max(axis=1))
    features = np.concatenate(pooled, axis=-1)
    dense = p["Dense_4"]
    expected = features @ dense["W"] + dense["b"].reshape(-1)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="^text_cnn: "):
        models.text_cnn(20, 3, widths=())


# --- RNN classifier and language model ---------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lru"])
def test_rnn_lm_starts_near_uniform_and_is_causal(cell):
    vocab = 30
    lm = models.rnn_lm(vocab, cell=cell, embed_dim=8, hidden=16)
    _, params = lm.init(jax.random.key(0), (-1, 12))
    apply = jax.jit(lm.apply)
    tokens = jax.random.randint(jax.random.key(1), (32, 13), 0, vocab)
    loss = models.causal_lm_loss(apply, params, tokens)
    assert abs(float(loss) - math.log(vocab)) < 0.02
    # Causality: changing the tokens after position 5 leaves logits[:, :6] unchanged.
    x = tokens[:, :-1]
    changed = x.at[:, 6:].set((x[:, 6:] + 1) % vocab)
    np.testing.assert_allclose(apply(params, x)[:, :6], apply(params, changed)[:, :6], atol=1e-6)


def test_lm_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(2, 3, 5)), rng.integers(0, 5, (2, 3))
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_softmax, targets[..., None], -1).mean()
    np.testing.assert_allclose(models.lm_cross_entropy(logits, targets), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="^lm_cross_entropy: "):
        models.lm_cross_entropy(logits, targets[:, :2])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lru"])
def test_rnn_classifier_shapes_and_readouts(cell):
    x = jax.random.normal(jax.random.key(0), (2, 6, 3))
    for readout, bidirectional in (("last", False), ("mean", True)):
        model = models.rnn_classifier(4, cell=cell, hidden=(5, 3), readout=readout, bidirectional=bidirectional)
        params = jax.eval_shape(lambda k: model.init(k, x.shape)[1], jax.random.key(1))
        assert output_shape(model, x.shape) == (2, 4) and jax.eval_shape(model.apply, params, x).shape == (2, 4)
    tokens = models.rnn_classifier(4, cell=cell, hidden=5, vocab_size=9, embed_dim=3)
    params = jax.eval_shape(lambda k: tokens.init(k, (2, 6))[1], jax.random.key(1))
    assert jax.eval_shape(tokens.apply, params, jnp.zeros((2, 6), jnp.int32)).shape == (2, 4)


def test_rnn_classifier_last_readout_ignores_nothing_but_the_future():
    # 'last' reads the state after the final step: every input position changes it.
    model = models.rnn_classifier(2, cell="gru", hidden=4)
    _, params = model.init(jax.random.key(0), (1, 5, 2))
    x = jax.random.normal(jax.random.key(1), (1, 5, 2))
    apply = jax.jit(model.apply)
    for t in range(5):
        assert not np.allclose(apply(params, x), apply(params, x.at[0, t].add(1.0)))
    with pytest.raises(ValueError, match="^rnn_classifier: "):
        models.rnn_classifier(2, cell="lru", bidirectional=True)
    with pytest.raises(ValueError, match="^rnn_classifier: "):
        models.rnn_classifier(2, cell="transformer")


# --- seq2seq -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_seq2seq():
    model = models.seq2seq(6, 5, cell="lstm", embed_dim=6, hidden=8, attention_dim=7, bos_id=0)
    params = model.init(jax.random.key(3))
    # Sharpen the output distribution so greedy and beam search really differ.
    params["readout"]["W"] = 4.0 * params["readout"]["W"]
    src = jax.random.randint(jax.random.key(4), (6, 4), 0, 6)
    return model, params, src


def test_seq2seq_teacher_forcing_agrees_with_greedy_decoding(random_seq2seq):
    model, params, src = random_seq2seq
    greedy = model.greedy(params, src, 5)
    assert greedy.shape == (6, 5)
    # Scored by teacher forcing on its own output, every greedy token is the argmax.
    bos = jnp.zeros((6, 1), jnp.int32)
    log_probs = model.apply(params, src, jnp.concatenate([bos, greedy[:, :-1]], axis=1))
    assert log_probs.shape == (6, 5, 5)
    np.testing.assert_allclose(jnp.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(jnp.argmax(log_probs, -1), greedy)


def test_beam_search_width_one_is_greedy(random_seq2seq):
    model, params, src = random_seq2seq
    tokens, scores = model.beam_search(params, src, 1, 5)
    np.testing.assert_array_equal(tokens[:, 0], model.greedy(params, src, 5))
    np.testing.assert_allclose(scores[:, 0], model.sequence_log_prob(params, src, tokens[:, 0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eos_id", [None, 2])
def test_beam_search_finds_the_exhaustive_best(eos_id):
    vocab, length = 3, 3
    model = models.seq2seq(4, vocab, cell="gru", embed_dim=4, hidden=6, attention_dim=5, bos_id=0, eos_id=eos_id)
    params = model.init(jax.random.key(5))
    params["readout"]["W"] = 3.0 * params["readout"]["W"]
    src = jax.random.randint(jax.random.key(6), (2, 4), 0, 4)
    everything = np.array(list(itertools.product(range(vocab), repeat=length)), np.int32)
    if eos_id is not None:  # after the first EOS only EOS follows
        valid = [s for s in everything if all(s[i] == eos_id for i in range(length) if eos_id in s[:i])]
        everything = np.array(valid)
    width = vocab ** (length - 1)  # keeps every prefix: beam search is then exact
    tokens, scores = model.beam_search(params, src, width, length)
    assert tokens.shape == (2, width, length) and np.all(np.diff(np.asarray(scores), axis=1) <= 1e-6)
    for b in range(2):
        src_b = jnp.repeat(src[b : b + 1], len(everything), axis=0)
        exhaustive = np.asarray(model.sequence_log_prob(params, src_b, everything))
        best = int(np.argmax(exhaustive))
        np.testing.assert_array_equal(tokens[b, 0], everything[best])
        np.testing.assert_allclose(scores[b, 0], exhaustive[best], rtol=1e-5)
        k = min(width, len(everything))
        np.testing.assert_allclose(scores[b, :k], np.sort(exhaustive)[::-1][:k], rtol=1e-5, atol=1e-5)
    # A narrow beam is never better than the exact search.
    _, narrow = model.beam_search(params, src, 2, length)
    assert np.all(np.asarray(narrow[:, 0]) <= np.asarray(scores[:, 0]) + 1e-5)


def _train_reversal(length, vocab, steps, hidden, learning_rate, cell="gru"):
    """seq2seq on 'reverse the sequence' (tokens 1..vocab, BOS = 0); exact-match accuracy on 500 fresh sequences."""
    model = models.seq2seq(vocab + 1, vocab + 1, cell=cell, embed_dim=16, hidden=hidden, attention_dim=32, bos_id=0)
    optimiser = optax.adam(learning_rate)

    def sample(key, n):
        src = jax.random.randint(key, (n, length), 1, vocab + 1)
        return src, src[:, ::-1]

    @jax.jit
    def train(params, key):
        def body(carry, k):
            params, state = carry
            loss, grads = jax.value_and_grad(model.loss)(params, *sample(k, 64))
            updates, state = optimiser.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        return jax.lax.scan(body, (params, optimiser.init(params)), jax.random.split(key, steps))

    params = model.init(jax.random.key(0))
    (params, _), losses = train(params, jax.random.key(1))
    src, tgt = sample(jax.random.key(99), 500)  # held out: a key never used in training
    accuracy = float(jnp.mean(jnp.all(model.greedy(params, src, length) == tgt, axis=1)))
    return accuracy, losses


def test_seq2seq_learns_to_reverse_short_sequences():
    accuracy, losses = _train_reversal(length=3, vocab=4, steps=150, hidden=32, learning_rate=0.02)
    assert losses[-1] < 0.1 * losses[0]
    assert accuracy > 0.9


@pytest.mark.slow
def test_seq2seq_learns_to_reverse_length_5_vocab_8():
    accuracy, _ = _train_reversal(length=5, vocab=8, steps=400, hidden=64, learning_rate=0.01)
    assert accuracy > 0.9


def test_seq2seq_rejects_bad_input():
    model = models.seq2seq(5, 5)
    params = None  # every check below fires before the params are read
    with pytest.raises(TypeError, match="^seq2seq: "):
        model.greedy(params, jnp.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="^seq2seq: "):
        model.apply(params, jnp.zeros((2, 3), jnp.int32), jnp.zeros((3, 3), jnp.int32))
    with pytest.raises(ValueError, match="^seq2seq: expected src ids"):
        model.greedy(params, jnp.full((2, 3), 5, jnp.int32), 4)
    with pytest.raises(ValueError, match="^seq2seq: expected tgt ids"):
        model.loss(params, jnp.zeros((2, 3), jnp.int32), jnp.full((2, 3), -1, jnp.int32))
    with pytest.raises(ValueError, match="^seq2seq: "):
        models.seq2seq(5, 5, eos_id=5)
    with pytest.raises(ValueError, match="^seq2seq: "):
        models.seq2seq(5, 5, cell="rnn")
