"""Augmentations: identities, shapes, determinism per key, jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.data import augment as A

KEY = jax.random.PRNGKey(0)
IMAGE = jax.random.uniform(jax.random.PRNGKey(1), (16, 16, 3))


def test_flip_twice_is_the_identity_and_zero_rotation_is_the_identity():
    np.testing.assert_array_equal(A.flip(A.flip(IMAGE)), IMAGE)
    np.testing.assert_allclose(A.rotate(IMAGE, 0.0), IMAGE, atol=1e-5)
    np.testing.assert_allclose(A.affine(IMAGE, jnp.eye(2)), IMAGE, atol=1e-5)


def test_rotation_by_90_degrees_matches_rot90():
    square = jax.random.uniform(KEY, (9, 9, 1))
    np.testing.assert_allclose(A.rotate(square, 90.0), jnp.rot90(square, 1, axes=(0, 1)), atol=1e-4)
    np.testing.assert_allclose(A.rotate(A.rotate(square, 90.0), -90.0), square, atol=1e-4)


def test_integer_translation_shifts_pixels():
    shifted = A.affine(IMAGE, jnp.eye(2), (2.0, -3.0))
    np.testing.assert_allclose(shifted[2:, :-3], IMAGE[:-2, 3:], atol=1e-5)
    assert float(jnp.abs(shifted[:2]).sum()) == 0  # filled with zeros


def test_every_augmentation_keeps_the_shape_runs_under_jit_and_vmap_and_is_a_function_of_the_key():
    augs = [A.random_rotation(), A.random_translation(3), A.random_rescale(), A.random_flip(), A.random_shear(),
            A.random_stretch(), A.random_crop(2), A.random_rot90(), A.lecture_augmentations()]
    batch = jnp.stack([IMAGE] * 4)
    for aug in augs:
        out = jax.jit(aug)(KEY, IMAGE)
        assert out.shape == IMAGE.shape and out.dtype == IMAGE.dtype
        np.testing.assert_array_equal(out, jax.jit(aug)(KEY, IMAGE))
        assert A.augment_batch(aug, KEY, batch).shape == batch.shape
    many = A.augment_batch(A.random_rotation(), KEY, batch)
    assert not np.allclose(many[0], many[1])  # a different key per image


def test_scale_zero_is_the_identity_and_flip_probability_is_honoured():
    np.testing.assert_allclose(A.lecture_augmentations(0.0)(KEY, IMAGE), IMAGE, atol=1e-4)
    keys = jax.random.split(KEY, 2000)
    flipped = jax.vmap(lambda k: jnp.all(A.random_flip(0.3)(k, IMAGE) == A.flip(IMAGE)))(keys)
    assert abs(float(flipped.mean()) - 0.3) < 0.04


def test_random_crop_is_a_shifted_window():
    out = A.random_crop(2)(KEY, IMAGE)
    padded = jnp.pad(IMAGE, [(2, 2), (2, 2), (0, 0)])
    matches = [(dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(out, padded[dy:dy + 16, dx:dx + 16])]
    assert len(matches) >= 1


def test_random_rot90_gives_each_exact_rotation():
    outs = A.augment_batch(A.random_rot90(), KEY, jnp.stack([IMAGE] * 64))
    seen = set()
    for out in outs:
        matches = [k for k in range(4) if np.array_equal(out, jnp.rot90(IMAGE, k, axes=(0, 1)))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}
