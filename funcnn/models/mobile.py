"""A MobileNet-v1-style network from depth-wise separable convolutions (Howard et al. 2017)."""

from __future__ import annotations

from .. import layers as L

# (output channels, stride) of the 13 separable blocks of MobileNet v1
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def separable_block(channels: int, stride: int):
    """Depth-wise 3x3 -> BN -> ReLU -> point-wise 1x1 -> BN -> ReLU (M*9 + N*M weights, lecture 004)."""
    return L.serial(
        L.DepthwiseConv(3, stride=stride, padding=1, use_bias=False), L.BatchNorm(), L.Relu(),
        L.Conv(channels, 1, use_bias=False), L.BatchNorm(), L.Relu(),
        name="SeparableBlock",
    )


def mobilenet_v1(num_classes: int = 1000, width: float = 1.0):
    """MobileNet v1 on 224x224x3: conv 3x3/2 32, 13 separable blocks, global average pool, FC. `width` scales every
    channel count (the paper's alpha). 4,231,976 parameters at width 1.0 and 1000 classes."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < float("inf"):
        raise ValueError(f"mobilenet_v1: width must be a finite number > 0, got {width!r}")

    def c(n):
        return max(8, int(n * width))

    return L.serial(
        L.Conv(c(32), 3, stride=2, padding=1, use_bias=False), L.BatchNorm(), L.Relu(),
        *[separable_block(c(ch), s) for ch, s in MOBILENET_V1_BLOCKS],
        L.GlobalAvgPool(), L.Dense(num_classes),
        name="mobilenet_v1",
    )
