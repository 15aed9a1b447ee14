"""Synthetic detection scenes: digits pasted at random places and sizes on a blank canvas, with their boxes.

Used by the localisation and R-CNN experiments (lecture 004 "Finding bounding boxes", lecture 000's R-CNN).
Boxes are (y0, x0, y1, x1) relative to the canvas size, tight around the digit's ink.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .datasets import resize


class Scenes(NamedTuple):
    x: np.ndarray       # (n, canvas, canvas, 1) float32 in [0, 1]
    boxes: np.ndarray   # (n, max_objects, 4) float32, (y0, x0, y1, x1) relative; padding rows are 0
    labels: np.ndarray  # (n, max_objects) int32; -1 marks padding

    @property
    def counts(self) -> np.ndarray:
        """Number of objects in each scene."""
        return (self.labels >= 0).sum(axis=1)


def _ink_box(patch: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(patch > threshold * patch.max())
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


def _overlaps(box, placed, gap: int) -> bool:
    y0, x0, y1, x1 = box
    return any(y0 < b1 + gap and b0 < y1 + gap and x0 < c1 + gap and c0 < x1 + gap for b0, c0, b1, c1 in placed)


def make_scenes(images, labels, num: int, *, canvas: int = 64, objects=(1, 1), sizes=(20, 32),
                noise: float = 0.0, ink_threshold: float = 0.2, seed: int = 0) -> Scenes:
    """Paste randomly chosen (images, labels) into `num` canvases of canvas x canvas pixels.

    Args:
      images: (m, H, W, 1) source objects in [0, 1] (e.g. `data.digits(size=32).train.x`), labels: (m,).
      objects: (min, max) number of objects per scene; they do not overlap (2 pixels apart at least).
      sizes: (min, max) side in pixels of a pasted object (each is resized to a random side in that range).
      noise: standard deviation of Gaussian background noise (the result is clipped to [0, 1]).
      ink_threshold: the box is tight around the pixels above this fraction of the object's maximum.
    """
    images, labels = np.asarray(images, np.float32), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"make_scenes: images must be (m, H, W, 1), got shape {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"make_scenes: {len(images)} images but {len(labels)} labels")
    lo, hi = objects
    if not 1 <= lo <= hi:
        raise ValueError(f"make_scenes: objects must be (min, max) with 1 <= min <= max, got {objects}")
    if not 1 <= sizes[0] <= sizes[1] <= canvas:
        raise ValueError(f"make_scenes: sizes must be (min, max) with 1 <= min <= max <= canvas={canvas}, got {sizes}")
    rng = np.random.default_rng(seed)
    side_choices = np.arange(sizes[0], sizes[1] + 1)
    resized = {s: np.clip(resize(images, int(s)), 0.0, 1.0)[..., 0] for s in side_choices}
    x = np.zeros((num, canvas, canvas), np.float32)
    boxes = np.zeros((num, hi, 4), np.float32)
    out_labels = np.full((num, hi), -1, np.int32)
    for n in range(num):
        placed = []
        for k in range(rng.integers(lo, hi + 1)):
            for _attempt in range(100):
                side = int(rng.choice(side_choices))
                top, left = rng.integers(0, canvas - side + 1, size=2)
                if not _overlaps((top, left, top + side, left + side), placed, 2):
                    break
            else:
                break  # no free place left: fewer objects in this scene
            index = rng.integers(len(images))
            patch = resized[side][index]
            x[n, top:top + side, left:left + side] = np.maximum(x[n, top:top + side, left:left + side], patch)
            placed.append((top, left, top + side, left + side))
            y0, x0, y1, x1 = _ink_box(patch, ink_threshold)
            boxes[n, k] = np.array([top + y0, left + x0, top + y1, left + x1], np.float32) / canvas
            out_labels[n, k] = labels[index]
    if noise > 0:
        x = np.clip(x + rng.normal(0.0, noise, x.shape), 0.0, 1.0).astype(np.float32)
    return Scenes(x[..., None], boxes, out_labels)
