"""The lecture's multi-task localisation network: one trunk, two heads (class logits and a bounding box)."""

from __future__ import annotations

from .. import layers as L


def localizer(num_classes: int = 10, trunk_channels=(16, 32, 64)):
    """Trunk: [conv 3x3 (SAME) -> ReLU -> 2x2 max pool] per entry of trunk_channels, flatten, FC 128 -> ReLU; then
    fan out to a class head (FC num_classes) and a box head (FC 4: the box as (y0, x0, y1, x1), relative to the
    image size). apply returns (logits, box). Train with cross-entropy on the logits plus L2 on the box
    (lecture 004 "Finding bounding boxes": multi-task learning)."""
    trunk = []
    for ch in trunk_channels:
        trunk += [L.Conv(ch, 3, padding="SAME"), L.Relu(), L.MaxPool(2)]
    return L.serial(
        *trunk, L.Flatten(), L.Dense(128), L.Relu(),
        L.fan_out(2),
        L.parallel(L.Dense(num_classes), L.serial(L.Dense(4), L.Sigmoid(), name="box")),
        name="localizer",
    )
