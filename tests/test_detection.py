import jax
import numpy as np
import pytest

from funcnn import detection as D


def test_box_iou_known_values():
    a = np.array([[0, 0, 0.5, 0.5], [0, 0, 1, 1]])
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 0.7, 0.7], [0, 0, 0, 0]])
    iou = np.asarray(D.box_iou(a, b))
    np.testing.assert_allclose(iou[0], [0.0625 / (0.25 + 0.25 - 0.0625), 0.0, 0.0])
    np.testing.assert_allclose(iou[1], [0.25, 0.01, 0.0])
    np.testing.assert_allclose(np.diag(np.asarray(D.box_iou(a, a))), 1.0)
    with pytest.raises(ValueError, match="last axis of 4"):
        D.box_iou(np.zeros((2, 3)), b)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    p = np.sort(rng.uniform(size=(20, 2, 2)), axis=1).reshape(20, 4)  # y0 <= y1, x0 <= x1
    t = np.sort(rng.uniform(size=(20, 2, 2)), axis=1).reshape(20, 4)  # y0 <= y1, x0 <= x1
    np.testing.assert_allclose(D.decode_boxes(p, D.encode_boxes(p, t)), t, atol=1e-5)
    np.testing.assert_allclose(D.encode_boxes(p, p), 0, atol=1e-6)


def test_crop_and_resize_whole_image_and_quadrant():
    image = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    full = D.crop_and_resize(image, np.array([[0, 0, 1, 1.0]]), 4)
    np.testing.assert_allclose(full[0], image, atol=1e-5)
    quadrant = D.crop_and_resize(image, np.array([[0.5, 0.5, 1, 1.0]]), 2)
    np.testing.assert_allclose(quadrant[0, ..., 0], image[2:, 2:, 0], atol=1e-5)
    assert jax.jit(D.crop_and_resize, static_argnums=2)(image, np.zeros((3, 4)), 5).shape == (3, 5, 5, 1)


def test_sliding_windows_cover_the_image():
    boxes = D.sliding_windows([0.5, 0.3], stride=0.5)
    assert boxes.min() >= 0 and boxes.max() <= 1 + 1e-6
    assert len(D.sliding_windows([0.5], stride=0.5)) == 9
    assert np.isclose(boxes[:, 2].max(), 1.0) and np.isclose(boxes[:, 3].max(), 1.0)
    with pytest.raises(ValueError, match="sizes"):
        D.sliding_windows([1.5])


def test_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 0.5, 0.5], [0.01, 0.01, 0.5, 0.5], [0.6, 0.6, 1, 1], [0, 0, 0.49, 0.5]])
    scores = np.array([0.8, 0.9, 0.5, 0.9])  # ties keep the first index
    assert list(D.nms(boxes, scores, 0.5)) == [1, 2]
    assert list(D.nms(boxes, scores, 0.99)) == [1, 3, 0, 2]
    assert list(D.nms(boxes, scores, 0.5, max_keep=1)) == [1]


def test_average_precision_known_cases():
    assert D.average_precision([0.9, 0.8], [True, True], 2) == 1.0
    assert D.average_precision([0.9, 0.8], [False, True], 2) == pytest.approx(0.25)  # recall 0.5 at precision 0.5
    assert D.average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert D.average_precision([], [], 0) == 0.0


def test_mean_average_precision_matches_each_truth_once():
    gt = [[(0, (0, 0, 0.5, 0.5)), (1, (0.5, 0.5, 1, 1))]]
    perfect = [[(0, 0.9, (0, 0, 0.5, 0.5)), (1, 0.8, (0.5, 0.5, 1, 1))]]
    assert D.mean_average_precision(perfect, gt, 3)[0] == 1.0
    duplicate = [[(0, 0.9, (0, 0, 0.5, 0.5)), (0, 0.95, (0, 0, 0.5, 0.5)), (1, 0.8, (0, 0, 0.2, 0.2))]]
    mean, per_class = D.mean_average_precision(duplicate, gt, 3)
    assert per_class == {0: 1.0, 1: 0.0} and mean == 0.5
