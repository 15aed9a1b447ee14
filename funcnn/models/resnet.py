"""ResNet-18 (ImageNet layout) and ResNet-20 (CIFAR layout): BatchNorm after every convolution, identity shortcuts,
and 1x1 strided projection shortcuts (with BatchNorm) where the shape changes."""

from __future__ import annotations

from .. import layers as L


NORMS = ("batch", "group")


def normalisation(channels: int, norm: str = "batch"):
    """The normalisation after a convolution: BatchNorm ("batch", the papers'), or GroupNorm ("group": 32 groups as
    in Wu and He 2018, at most half the channels: 8, 16, 32 for ResNet-20's 16, 32, 64)."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}")
    return L.BatchNorm() if norm == "batch" else L.GroupNorm(min(32, channels // 2))


def _conv_bn(channels, kernel, stride=1, padding=None, norm="batch"):
    padding = kernel // 2 if padding is None else padding
    return [L.Conv(channels, kernel, stride=stride, padding=padding, use_bias=False), normalisation(channels, norm)]


def basic_block(channels: int, stride: int = 1, in_channels: int | None = None, remat: bool = False,
                norm: str = "batch"):
    """conv3x3-norm-ReLU-conv3x3-norm, plus the shortcut, then ReLU. The shortcut is a 1x1 conv + norm when the
    stride or the channel count changes (`in_channels` given and different), the identity otherwise."""
    block = L.serial(*_conv_bn(channels, 3, stride, norm=norm), L.Relu(), *_conv_bn(channels, 3, norm=norm),
                     name="block")
    project = stride != 1 or (in_channels is not None and in_channels != channels)
    shortcut = L.serial(*_conv_bn(channels, 1, stride, padding=0, norm=norm), name="projection") if project else None
    unit = L.residual(block, shortcut, name="BasicBlock")
    if remat:
        unit = L.remat(unit)
    return L.serial(unit, L.Relu(), name="BasicBlock")


def resnet18(num_classes: int = 1000, remat: bool = False, norm: str = "batch"):
    """ResNet-18 on 224x224x3 (He et al. 2016): conv 7x7/2 64, BN, ReLU, max pool 3x3/2, four stages of two basic
    blocks (64, 128, 256, 512 channels; the later stages start with stride 2 and a projection shortcut), global
    average pool, FC. 11,689,512 parameters for 1000 classes (torchvision's count; running statistics are state).
    norm="group" puts GroupNorm where the paper has BatchNorm (the same parameter count, no state)."""
    normalisation(64, norm)
    stages, in_channels = [], 64
    for channels, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        stages += [basic_block(channels, stride, in_channels, remat, norm),
                   basic_block(channels, 1, channels, remat, norm)]
        in_channels = channels
    return L.serial(
        *_conv_bn(64, 7, 2, padding=3, norm=norm), L.Relu(), L.MaxPool(3, 2, padding=1),
        *stages,
        L.GlobalAvgPool(), L.Dense(num_classes),
        name="resnet18",
    )


def resnet20(num_classes: int = 10, remat: bool = False, norm: str = "batch"):
    """ResNet-20 for 32x32x3 (He et al. 2016, CIFAR): conv 3x3 16, BN, ReLU, three stages of three basic blocks
    (16, 32, 64 channels; stride 2 with projection shortcuts at the start of stages 2 and 3), global average pool,
    FC. 272,474 parameters for 10 classes with funcnn's projection shortcuts (the paper's parameter-free
    zero-padding shortcuts give 269,722). norm="group": GroupNorm instead of BatchNorm."""
    normalisation(16, norm)
    stages, in_channels = [], 16
    for channels, stride in [(16, 1), (32, 2), (64, 2)]:
        for i in range(3):
            stages.append(basic_block(channels, stride if i == 0 else 1, in_channels, remat, norm))
            in_channels = channels
    return L.serial(*_conv_bn(16, 3, norm=norm), L.Relu(), *stages, L.GlobalAvgPool(), L.Dense(num_classes),
                    name="resnet20")
