"""A small convolutional network for short clips (or volumes): three 3x3x3 convolutions with max pooling between
them, a global average and a linear classifier. Its layers take their spatial rank from the input, so the same
constructor builds the 2-D network for single frames (the baseline `experiments/motion_clips.py` compares)."""

from __future__ import annotations

from .. import layers as L


def clip_cnn(num_classes: int = 4, width: int = 8, padding_mode: str = "replicate"):
    """conv 3 (width) - ReLU - max pool 2 - conv 3 (2 width) - ReLU - max pool 2 - conv 3 (4 width) - ReLU - global
    average - FC over (T, H, W, C) clips such as 8x16x16x1: 17,684 parameters for 4 classes and width 8. Every
    convolution pads by 1 with `padding_mode` borders ("replicate": a pattern moving out of the frame meets no false
    zero edge; "circular" for clips that wrap around). On (H, W, C) frames the same layers are 3x3 convolutions and
    2x2 pools (6,020 parameters)."""
    def conv(channels):
        return L.Conv(channels, 3, padding=1, padding_mode=padding_mode)

    return L.serial(conv(width), L.Relu(), L.MaxPool(2), conv(2 * width), L.Relu(), L.MaxPool(2),
                    conv(4 * width), L.Relu(), L.GlobalAvgPool(), L.Dense(num_classes), name="clip_cnn")
