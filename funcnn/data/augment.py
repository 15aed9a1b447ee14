"""Data augmentation from lecture 004's list, as pure functions of (key, image) that run under jit and vmap.

    augment = compose(random_rotation(), random_translation(), random_flip())
    batch = jax.vmap(augment)(jax.random.split(key, len(images)), images)

An image is (H, W, C). Geometric transforms are one affine warp each (bilinear, zeros outside), about the image
centre. The lecture's ranges: rotation uniform in [0, 360) degrees, translation in [-10, 10] pixels, rescaling by a
log-uniform factor in [1/1.6, 1.6], a Bernoulli horizontal flip, shear in [-20, 20] degrees, stretching by a
log-uniform factor in [1/1.3, 1.3]; `lecture_augmentations()` composes them all.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy import ndimage


def affine(image, matrix, translation=(0.0, 0.0), fill: float = 0.0):
    """Warp `image` (H, W, C) by y = matrix @ (x - centre) + centre + translation, in (row, column) coordinates.

    Each output pixel samples the input at matrix^-1 (y - centre - translation) + centre, bilinearly.
    """
    h, w = image.shape[:2]
    centre = jnp.array([(h - 1) / 2, (w - 1) / 2])
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    out = jnp.stack([rows.ravel(), cols.ravel()])
    src = jnp.linalg.solve(jnp.asarray(matrix, jnp.float32), out - (centre + jnp.asarray(translation))[:, None])
    src = src + centre[:, None]

    def channel(c):
        return ndimage.map_coordinates(c, [src[0], src[1]], order=1, mode="constant", cval=fill).reshape(h, w)

    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image.astype(jnp.float32)).astype(image.dtype)


def rotate(image, degrees):
    """Rotate counter-clockwise by `degrees` about the centre."""
    t = jnp.deg2rad(degrees)
    c, s = jnp.cos(t), jnp.sin(t)
    return affine(image, jnp.array([[c, -s], [s, c]]))  # (row, col) coordinates: counter-clockwise on screen


def flip(image):
    """Mirror left-right."""
    return image[:, ::-1]


def _log_uniform(key, low, high, shape=()):
    return jnp.exp(jax.random.uniform(key, shape, minval=math.log(low), maxval=math.log(high)))


def random_rotation(min_degrees: float = 0.0, max_degrees: float = 360.0):
    """Rotation by an angle uniform in [min_degrees, max_degrees)."""
    return lambda key, image: rotate(image, jax.random.uniform(key, (), minval=min_degrees, maxval=max_degrees))


def random_translation(max_pixels: float = 10.0):
    """Shift by (dy, dx), each uniform in [-max_pixels, max_pixels]."""
    return lambda key, image: affine(image, jnp.eye(2), jax.random.uniform(key, (2,), minval=-max_pixels,
                                                                           maxval=max_pixels))


def random_rescale(min_scale: float = 1 / 1.6, max_scale: float = 1.6):
    """Zoom by a log-uniform factor in [min_scale, max_scale]."""
    return lambda key, image: affine(image, jnp.eye(2) * _log_uniform(key, min_scale, max_scale))


def random_flip(probability: float = 0.5):
    """Mirror left-right with the given probability (Bernoulli)."""
    return lambda key, image: jnp.where(jax.random.bernoulli(key, probability), flip(image), image)


def random_rot90():
    """Rotate by a multiple of 90 degrees, each of the four equally likely (exact: no resampling)."""

    def apply(key, image):
        rotations = [lambda im, k=k: jnp.rot90(im, k, axes=(0, 1)) for k in range(4)]
        return jax.lax.switch(jax.random.randint(key, (), 0, 4), rotations, image)

    return apply


def random_shear(max_degrees: float = 20.0):
    """Horizontal shear by an angle uniform in [-max_degrees, max_degrees]."""

    def apply(key, image):
        t = jnp.tan(jnp.deg2rad(jax.random.uniform(key, (), minval=-max_degrees, maxval=max_degrees)))
        return affine(image, jnp.array([[1.0, 0.0], [t, 1.0]]))

    return apply


def random_stretch(max_factor: float = 1.3):
    """Stretch one axis by a log-uniform factor s in [1/max_factor, max_factor] and the other by 1/s."""

    def apply(key, image):
        s = _log_uniform(key, 1 / max_factor, max_factor)
        return affine(image, jnp.diag(jnp.stack([s, 1 / s])))

    return apply


def random_crop(padding: int = 4):
    """Zero-pad by `padding` on every side and crop a window of the original size at a random offset."""

    def apply(key, image):
        h, w = image.shape[:2]
        padded = jnp.pad(image, [(padding, padding), (padding, padding), (0, 0)])
        dy, dx = jax.random.randint(key, (2,), 0, 2 * padding + 1)
        return jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, image.shape[2]))

    return apply


def compose(*augmentations):
    """Apply augmentations in order, each with its own key split from the one given."""

    def apply(key, image):
        for aug, k in zip(augmentations, jax.random.split(key, max(len(augmentations), 1))):
            image = aug(k, image)
        return image

    return apply


def lecture_augmentations(scale: float = 1.0):
    """All six of the lecture's augmentations, their ranges multiplied by `scale` (0 gives the identity)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale < float("inf"):
        raise ValueError(f"lecture_augmentations: scale must be a finite number >= 0 (0 = no augmentation), "
                         f"got {scale!r}")
    return compose(
        random_rotation(-180 * scale, 180 * scale),
        random_translation(10 * scale),
        random_rescale(1.6 ** -scale, 1.6**scale),
        random_flip(0.5 if scale > 0 else 0.0),
        random_shear(20 * scale),
        random_stretch(1.3**scale),
    )


def augment_batch(augmentation, key, images):
    """vmap an augmentation over a batch (n, H, W, C) with one key per image."""
    return jax.vmap(augmentation)(jax.random.split(key, images.shape[0]), images)
