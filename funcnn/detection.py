"""Boxes for localisation and detection (lecture 004 "Finding bounding boxes", lecture 000's R-CNN).

A box is (y0, x0, y1, x1), relative to the image size (0..1) unless said otherwise. The functions that run inside
a training step (`box_iou`, `encode_boxes`, `decode_boxes`, `crop_and_resize`) are jnp and jit-able; the
evaluation ones (`nms`, `average_precision`, `mean_average_precision`, `sliding_windows`) are numpy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _check_boxes(name, boxes):
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"{name}: boxes must have a last axis of 4 (y0, x0, y1, x1), got shape {boxes.shape}")


def box_area(boxes):
    """Area of (..., 4) boxes; empty (inverted) boxes have area 0."""
    boxes = jnp.asarray(boxes)
    return jnp.clip(boxes[..., 2] - boxes[..., 0], 0) * jnp.clip(boxes[..., 3] - boxes[..., 1], 0)


def box_iou(a, b):
    """Pairwise intersection over union: a (n, 4), b (m, 4) -> (n, m). Two empty boxes have IoU 0."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    _check_boxes("box_iou", a), _check_boxes("box_iou", b)
    top_left = jnp.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = jnp.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = jnp.prod(jnp.clip(bottom_right - top_left, 0), axis=-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1), 0.0)


def encode_boxes(proposals, targets):
    """R-CNN's box-regression targets (Girshick et al. 2014, appendix C): centre offsets in units of the proposal's
    size and log size ratios, (dy, dx, dh, dw), for proposals and targets of the same shape (..., 4)."""
    proposals, targets = jnp.asarray(proposals), jnp.asarray(targets)
    ph, pw = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
    th, tw = targets[..., 2] - targets[..., 0], targets[..., 3] - targets[..., 1]
    dy = (targets[..., 0] + targets[..., 2] - proposals[..., 0] - proposals[..., 2]) / (2 * ph)
    dx = (targets[..., 1] + targets[..., 3] - proposals[..., 1] - proposals[..., 3]) / (2 * pw)
    return jnp.stack([dy, dx, jnp.log(th / ph), jnp.log(tw / pw)], axis=-1)


def decode_boxes(proposals, deltas):
    """The inverse of `encode_boxes`: apply (dy, dx, dh, dw) to proposals."""
    proposals, deltas = jnp.asarray(proposals), jnp.asarray(deltas)
    ph, pw = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
    cy = (proposals[..., 0] + proposals[..., 2]) / 2 + deltas[..., 0] * ph
    cx = (proposals[..., 1] + proposals[..., 3]) / 2 + deltas[..., 1] * pw
    h, w = ph * jnp.exp(deltas[..., 2]), pw * jnp.exp(deltas[..., 3])
    return jnp.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def crop_and_resize(image, boxes, size: int):
    """Warp each box of one (H, W, C) image to (size, size, C) by bilinear sampling (R-CNN's "warped region"):
    boxes (k, 4) relative -> (k, size, size, C). Samples outside the image read 0."""
    image, boxes = jnp.asarray(image), jnp.asarray(boxes)
    if image.ndim != 3:
        raise ValueError(f"crop_and_resize: image must be (H, W, C), got shape {image.shape}")
    _check_boxes("crop_and_resize", boxes)
    h, w = image.shape[:2]
    centres = (jnp.arange(size) + 0.5) / size

    def one(box):
        ys = (box[0] + centres * (box[2] - box[0])) * h - 0.5
        xs = (box[1] + centres * (box[3] - box[1])) * w - 0.5
        yy, xx = jnp.meshgrid(ys, xs, indexing="ij")
        sample = lambda channel: jax.scipy.ndimage.map_coordinates(channel, [yy, xx], order=1, mode="constant")
        return jnp.stack([sample(image[..., c]) for c in range(image.shape[-1])], axis=-1)

    return jax.vmap(one)(boxes)


def sliding_windows(sizes, stride: float = 0.5) -> np.ndarray:
    """Square candidate regions at several scales: for each side s in `sizes` (relative, 0 < s <= 1), windows
    placed every stride * s across the image, the last flush with the far edge. Returns (k, 4) float32."""
    boxes = []
    for s in sizes:
        if not 0 < s <= 1:
            raise ValueError(f"sliding_windows: sizes must lie in (0, 1], got {s}")
        starts = np.arange(0.0, 1 - s + 1e-9, stride * s)
        if starts[-1] < 1 - s - 1e-9:
            starts = np.append(starts, 1 - s)
        boxes += [(y, x, y + s, x + s) for y in starts for x in starts]
    return np.asarray(boxes, np.float32)


def nms(boxes, scores, iou_threshold: float = 0.5, max_keep: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first. A box is dropped when its
    IoU with an already kept box exceeds iou_threshold."""
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    iou = np.asarray(box_iou(boxes, boxes)) if len(boxes) else np.zeros((0, 0))
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) == max_keep:
            break
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, np.int64)


def average_precision(scores, is_true_positive, num_ground_truth: int) -> float:
    """Area under the precision-recall curve of ranked detections, with precision made monotone (PASCAL VOC
    2010+ "all points" interpolation). 0 when there is no ground truth."""
    if num_ground_truth <= 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(is_true_positive, np.float64)[order]
    cum_tp = np.cumsum(tp)
    recall = np.concatenate([[0.0], cum_tp / num_ground_truth])
    precision = np.concatenate([[1.0], cum_tp / np.arange(1, len(tp) + 1)])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def mean_average_precision(detections, ground_truth, num_classes: int, iou_threshold: float = 0.5):
    """PASCAL-style mAP. detections: per image a list of (class, score, box); ground_truth: per image a list of
    (class, box). A detection is a true positive when it matches a not yet matched ground-truth box of its class
    with IoU >= iou_threshold (detections taken in score order). Returns (mAP over classes with ground truth,
    {class: AP})."""
    per_class = {}
    for c in range(num_classes):
        records, n_gt = [], 0
        for dets, gts in zip(detections, ground_truth):
            gt_boxes = np.asarray([b for k, b in gts if k == c], np.float64).reshape(-1, 4)
            n_gt += len(gt_boxes)
            mine = sorted([(s, b) for k, s, b in dets if k == c], key=lambda d: -d[0])
            matched = np.zeros(len(gt_boxes), bool)
            for score, box in mine:
                hit = False
                if len(gt_boxes):
                    iou = np.array(box_iou(np.asarray(box, np.float64)[None], gt_boxes))[0]
                    iou[matched] = -1
                    best = int(np.argmax(iou))
                    if iou[best] >= iou_threshold:
                        matched[best], hit = True, True
                records.append((score, hit))
        if n_gt:
            per_class[c] = average_precision([s for s, _ in records], [h for _, h in records], n_gt)
    return (float(np.mean(list(per_class.values()))) if per_class else 0.0), per_class


__all__ = ["box_area", "box_iou", "encode_boxes", "decode_boxes", "crop_and_resize", "sliding_windows", "nms",
           "average_precision", "mean_average_precision"]
