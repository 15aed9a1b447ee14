"""ResNet-18 (ImageNet layout), ResNet-20 (CIFAR layout) and R3D-18 (video clips): BatchNorm after every
convolution, identity shortcuts, and 1x1 strided projection shortcuts (with BatchNorm) where the shape changes. The
blocks take their spatial rank from the input, so R3D-18 is ResNet-18's stages over (D, H, W)."""

from __future__ import annotations

from .. import layers as L


NORMS = ("batch", "group")
# stages of (channels, stride of the first block, blocks): the constructors and the PyTorch key names both read them
STAGES = {"resnet18": ((64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2)),
          "resnet20": ((16, 1, 3), (32, 2, 3), (64, 2, 3))}


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


def _stages(name, in_channels, remat, norm):
    """The basic blocks of a ResNet's stages (STAGES): the first of a stage strided, each with a projection where
    the shape changes."""
    blocks = []
    for channels, stride, count in STAGES[name]:
        for i in range(count):
            blocks.append(basic_block(channels, stride if i == 0 else 1, in_channels, remat, norm))
            in_channels = channels
    return blocks


def resnet18(num_classes: int = 1000, remat: bool = False, norm: str = "batch"):
    """ResNet-18 on 224x224x3 (He et al. 2016): conv 7x7/2 64, BN, ReLU, max pool 3x3/2, four stages of two basic
    blocks (64, 128, 256, 512 channels; the later stages start with stride 2 and a projection shortcut), global
    average pool, FC. 11,689,512 parameters for 1000 classes (torchvision's count; running statistics are state).
    norm="group" puts GroupNorm where the paper has BatchNorm (the same parameter count, no state)."""
    normalisation(64, norm)
    return L.serial(
        *_conv_bn(64, 7, 2, padding=3, norm=norm), L.Relu(), L.MaxPool(3, 2, padding=1),
        *_stages("resnet18", 64, remat, norm),
        L.GlobalAvgPool(), L.Dense(num_classes),
        name="resnet18",
    )


def resnet20(num_classes: int = 10, remat: bool = False, norm: str = "batch"):
    """ResNet-20 for 32x32x3 (He et al. 2016, CIFAR): conv 3x3 16, BN, ReLU, three stages of three basic blocks
    (16, 32, 64 channels; stride 2 with projection shortcuts at the start of stages 2 and 3), global average pool,
    FC. 272,474 parameters for 10 classes with funcnn's projection shortcuts (the paper's parameter-free
    zero-padding shortcuts give 269,722). norm="group": GroupNorm instead of BatchNorm."""
    normalisation(16, norm)
    return L.serial(*_conv_bn(16, 3, norm=norm), L.Relu(), *_stages("resnet20", 16, remat, norm), L.GlobalAvgPool(),
                    L.Dense(num_classes), name="resnet20")


def r3d_18(num_classes: int = 400, remat: bool = False, norm: str = "batch"):
    """R3D-18 for 16x112x112x3 clips (Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions", the 3-D
    ResNet-18 of torchvision.models.video.r3d_18): conv (3, 7, 7) stride (1, 2, 2) 64, BN, ReLU, ResNet-18's four
    stages with 3x3x3 convolutions (the later stages strided by 2 in time and space, with 1x1x1 projection
    shortcuts), global average pool, FC. 33,371,472 parameters for the 400 Kinetics classes (torchvision's count)."""
    normalisation(64, norm)
    return L.serial(
        *_conv_bn(64, (3, 7, 7), (1, 2, 2), padding=(1, 3, 3), norm=norm), L.Relu(),
        *_stages("resnet18", 64, remat, norm),
        L.GlobalAvgPool(), L.Dense(num_classes),
        name="r3d_18",
    )


def torchvision_keys(name: str, layers) -> list:
    """torchvision's ResNet key names (funcnn.interop), one per layer with parameters in `layers.walk` order: conv1,
    bn1, then layer<s>.<b>.conv1 / bn1 / conv2 / bn2 (and .downsample.0 / .1 for a projection shortcut) for block
    b of stage s, then fc."""
    blocks = iter(f"layer{s}.{b}" for s, (_, _, count) in enumerate(STAGES[name], 1) for b in range(count))
    keys, current, seen = [], {}, {}
    for path, kind in layers:
        if kind not in ("Conv", "BatchNorm", "Dense"):
            continue
        if len(path) == 1:  # the stem and the classifier
            keys.append({"Conv": "conv1", "BatchNorm": "bn1", "Dense": "fc"}[kind])
            continue
        block = path[0]
        if block not in current:
            current[block] = next(blocks, None)
            if current[block] is None:
                raise ValueError(f"{name}: more residual blocks than torchvision's {STAGES[name]} stages hold")
            seen = {}
        branch = "downsample" if any(part.endswith("_projection") for part in path) else "main"
        n = seen[(branch, kind)] = seen.get((branch, kind), 0) + 1
        suffix = (f"downsample.{0 if kind == 'Conv' else 1}" if branch == "downsample"
                  else f"{'conv' if kind == 'Conv' else 'bn'}{n}")
        keys.append(f"{current[block]}.{suffix}")
    return keys


_VIDEO_NAMES = {"conv1": "stem.0", "bn1": "stem.1"}
_VIDEO_SUFFIXES = {"conv1": "conv1.0", "bn1": "conv1.1", "conv2": "conv2.0", "bn2": "conv2.1"}


def video_keys(name: str, layers) -> list:
    """torchvision.models.video's key names for R3D-18: its stem is `stem.0` / `stem.1` and each block's
    convolution and BatchNorm sit together in `conv1.0` / `conv1.1` and `conv2.0` / `conv2.1`; otherwise ResNet-18's."""
    keys = []
    for key in torchvision_keys("resnet18", layers):
        block, _, suffix = key.rpartition(".")
        keys.append(_VIDEO_NAMES.get(key) or (f"{block}.{_VIDEO_SUFFIXES[suffix]}" if suffix in _VIDEO_SUFFIXES
                                              else key))
    return keys
