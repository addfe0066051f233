"""jaxdl.data.augment: pure, key-driven image augmentations (flip, shift/crop, noise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.data import augment as A

RNG = np.random.default_rng(3)
# distinct positive pixel values, so that a shifted image can be matched back
X = jnp.asarray(RNG.permutation(4 * 7 * 6 * 2).reshape(4, 7, 6, 2) + 1.0, jnp.float32)


def test_flip_twice_is_the_identity_and_random_flip_flips_whole_images():
    np.testing.assert_array_equal(A.flip_left_right(A.flip_left_right(X)), X)
    np.testing.assert_array_equal(A.flip_left_right(X)[:, :, 0], X[:, :, -1])
    out = np.asarray(A.random_flip(0.5)(jax.random.key(0), X))
    for image, original in zip(out, np.asarray(X)):
        assert np.array_equal(image, original) or np.array_equal(image, original[:, ::-1])
    assert np.array_equal(A.random_flip(1.0)(jax.random.key(1), X), A.flip_left_right(X))
    flips = jax.vmap(lambda k: A.random_flip(0.3)(k, X[0]))(jax.random.split(jax.random.key(2), 2000))
    share = float(jnp.mean(jnp.any(flips != X[0], axis=(1, 2, 3))))
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)


def _find_shift(shifted, original, max_shift):
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            moved = np.zeros_like(original)
            H, W = original.shape[:2]
            ys, xs = slice(max(dy, 0), H + min(dy, 0)), slice(max(dx, 0), W + min(dx, 0))
            yd, xd = slice(max(-dy, 0), H + min(-dy, 0)), slice(max(-dx, 0), W + min(-dx, 0))
            moved[yd, xd] = original[ys, xs]
            if np.array_equal(moved, shifted):
                return dy, dx
    return None


def test_shift_moves_pixels_and_preserves_the_multiset_inside():
    out = np.asarray(jax.jit(A.random_shift(2))(jax.random.key(3), X))
    assert out.shape == X.shape and out.dtype == X.dtype
    shifts = []
    for image, original in zip(out, np.asarray(X)):
        shift = _find_shift(image, original, 2)
        assert shift is not None  # a pure translation with zero fill
        dy, dx = shift
        H, W = original.shape[:2]
        kept = original[max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)]
        np.testing.assert_array_equal(np.sort(image[image != 0]), np.sort(kept.ravel()))  # same multiset
        shifts.append(shift)
    assert len(set(shifts)) > 1  # independent per image


def test_random_crop_with_edge_padding_and_identity_cases():
    out = np.asarray(A.random_crop(1, "edge")(jax.random.key(4), X))
    assert out.shape == X.shape
    assert set(np.unique(out)) <= set(np.unique(np.asarray(X)))  # edge padding only repeats pixels
    np.testing.assert_array_equal(A.random_shift(0)(jax.random.key(5), X), X)


def test_gaussian_noise_has_the_requested_std():
    zeros = jnp.zeros((64, 8, 8, 1))
    noise = np.asarray(A.gaussian_noise(0.3)(jax.random.key(6), zeros))
    n = noise.size
    assert abs(noise.std() / 0.3 - 1) < 5 / np.sqrt(2 * n)
    assert abs(noise.mean()) < 5 * 0.3 / np.sqrt(n)


def test_compose_is_jit_and_vmap_compatible_and_deterministic_in_the_key():
    aug = A.compose(A.random_shift(1), A.random_flip(), A.gaussian_noise(0.1))
    key = jax.random.key(7)
    a, b = jax.jit(aug)(key, X), aug(key, X)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(aug(jax.random.key(8), X), a)
    single = jax.vmap(aug)(jax.random.split(key, 4), X)  # one image per key
    assert single.shape == X.shape
    legacy = aug(jax.random.PRNGKey(0), X)  # legacy uint32 keys work too
    assert legacy.shape == X.shape


def test_as_batch_transform_handles_flat_rows_and_keeps_labels():
    flat = X.reshape(4, -1)
    y = jnp.arange(4)
    transform = jax.jit(A.as_batch_transform(A.random_flip(1.0), (7, 6, 2)))
    x_out, y_out = transform(jax.random.key(9), flat, y)
    np.testing.assert_array_equal(x_out.reshape(X.shape), A.flip_left_right(X))
    np.testing.assert_array_equal(y_out, y)
    with pytest.raises(ValueError, match="^as_batch_transform: expected flat rows"):
        A.as_batch_transform(A.random_flip(), (5, 5, 1))(jax.random.key(0), flat, y)


def test_bad_inputs_raise_naming_the_function():
    with pytest.raises(ValueError, match="^random_shift: expected images"):
        A.random_shift(1)(jax.random.key(0), jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match="^random_crop: expected padding"):
        A.random_crop(-1)
    with pytest.raises(ValueError, match="^gaussian_noise: expected a finite std"):
        A.gaussian_noise(float("nan"))
    with pytest.raises(TypeError, match="^random_flip: expected a PRNG key"):
        A.random_flip()(None, X)


def test_train_fit_applies_the_batch_transform_inside_the_jitted_step():
    import optax

    from jaxdl import stax, train
    from jaxdl.train.losses import make_cross_entropy_loss

    images = jnp.asarray(RNG.normal(size=(16, 4, 3, 1)), jnp.float32)
    y = jnp.asarray(RNG.integers(0, 3, size=16))
    model = stax.Dense(3)
    _, params = model.init(jax.random.key(0), (-1, 12))
    run = lambda x, transform: train.fit(
        model.apply, params, optax.sgd(0.1), (x, y), loss_fn=make_cross_entropy_loss(0.1), key=jax.random.key(1),
        num_epochs=2, batch_size=4, batch_transform=transform, progress=False,
    ).state.params  # fmt: skip
    # always flipping inside fit == training on flipped data without a transform
    flipped_inside = run(images.reshape(16, -1), A.as_batch_transform(A.random_flip(1.0), (4, 3, 1)))
    flipped_before = run(A.flip_left_right(images).reshape(16, -1), None)
    for a, b in zip(jax.tree.leaves(flipped_inside), jax.tree.leaves(flipped_before)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    unflipped = run(images.reshape(16, -1), None)
    assert not np.allclose(jax.tree.leaves(unflipped)[0], jax.tree.leaves(flipped_inside)[0])
