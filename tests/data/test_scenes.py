import numpy as np
import pytest

from funcnn import data


def _squares():
    images = np.zeros((3, 8, 8, 1), np.float32)
    images[:, 2:6, 1:7] = 1.0  # ink occupies rows 2..5 and columns 1..6
    return images, np.array([4, 5, 6])


def test_boxes_are_tight_around_the_ink():
    images, labels = _squares()
    scenes = data.make_scenes(images, labels, 20, canvas=40, objects=(1, 3), sizes=(8, 8), seed=1)
    assert scenes.x.shape == (20, 40, 40, 1) and scenes.boxes.shape == (20, 3, 4)
    assert set(np.unique(scenes.labels)) <= {-1, 4, 5, 6} and (scenes.counts >= 1).all()
    for img, boxes, labs in zip(scenes.x[..., 0], scenes.boxes, scenes.labels):
        for box, lab in zip(boxes, labs):
            if lab < 0:
                continue
            y0, x0, y1, x1 = np.round(box * 40).astype(int)
            assert (y1 - y0, x1 - x0) == (4, 6)
            assert img[y0:y1, x0:x1].min() == 1.0
        ink = img > 0.5
        covered = np.zeros_like(ink)
        for box, lab in zip(boxes, labs):
            if lab >= 0:
                y0, x0, y1, x1 = np.round(box * 40).astype(int)
                covered[y0:y1, x0:x1] = True
        assert not (ink & ~covered).any()  # every ink pixel lies in some box; objects do not overlap


def test_same_seed_same_scenes_and_bad_arguments():
    images, labels = _squares()
    a = data.make_scenes(images, labels, 4, canvas=32, sizes=(8, 12), seed=3)
    b = data.make_scenes(images, labels, 4, canvas=32, sizes=(8, 12), seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    with pytest.raises(ValueError, match="sizes"):
        data.make_scenes(images, labels, 1, canvas=16, sizes=(8, 20))
    with pytest.raises(ValueError, match=r"\(m, H, W, 1\)"):
        data.make_scenes(images[..., 0], labels, 1)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        data.make_scenes(images, labels[:2], 1)
