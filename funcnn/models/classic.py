"""LeNet-5, AlexNet, VGG-16 and an all-convolutional network, as lecture 004 describes them."""

from __future__ import annotations

from .. import layers as L


def lenet5(num_classes: int = 10):
    """LeNet-5 on 32x32x1: conv 6@5x5 (no padding) -> ReLU -> 2x2/2 max pool -> conv 16@5x5 (all 6 input maps: 16x6x5x5
    weights) -> ReLU -> pool -> flatten 400 -> 120 -> 84 -> num_classes. 61,706 parameters for 10 classes."""
    return L.serial(
        L.Conv(6, 5), L.Relu(), L.MaxPool(2),
        L.Conv(16, 5), L.Relu(), L.MaxPool(2),
        L.Flatten(),
        L.Dense(120), L.Relu(),
        L.Dense(84), L.Relu(),
        L.Dense(num_classes),
        name="lenet5",
    )


def alexnet(num_classes: int = 1000, dropout: float = 0.5, variant: str = "2012"):
    """Single-tower AlexNet (Krizhevsky et al. 2012) on 227x227x3: conv 96@11x11/4, pool 3/2, conv 256@5x5 pad 2
    (stride 1: the lecture's "stride 2" is a slip), pool 3/2, conv 384, 384, 256 @3x3 pad 1, pool 3/2, FC 4096, 4096,
    num_classes with dropout 0.5 before the first two FC layers. 62,378,344 parameters for 1000 classes (the
    lecture's "60M"); the normalisation layers the lecture calls unnecessary are left out.

    variant="torchvision": the layout torchvision's AlexNet has (Krizhevsky 2014, "One weird trick"), for its
    weights (`funcnn.interop`): conv 64@11x11/4 pad 2, 192@5x5, 384, 256, 256, an adaptive average pool to 6x6,
    the same classifier; 61,100,840 parameters, 224x224x3 input."""
    if variant not in ("2012", "torchvision"):
        raise ValueError(f"alexnet: variant must be '2012' or 'torchvision', got {variant!r}")
    if variant == "torchvision":
        return L.serial(
            L.Conv(64, 11, stride=4, padding=2), L.Relu(), L.MaxPool(3, 2),
            L.Conv(192, 5, padding=2), L.Relu(), L.MaxPool(3, 2),
            L.Conv(384, 3, padding=1), L.Relu(),
            L.Conv(256, 3, padding=1), L.Relu(),
            L.Conv(256, 3, padding=1), L.Relu(), L.MaxPool(3, 2),
            L.AdaptiveAvgPool(6), L.Flatten(),
            L.Dropout(dropout), L.Dense(4096), L.Relu(),
            L.Dropout(dropout), L.Dense(4096), L.Relu(),
            L.Dense(num_classes),
            name="alexnet",
        )
    return L.serial(
        L.Conv(96, 11, stride=4), L.Relu(), L.MaxPool(3, 2),
        L.Conv(256, 5, padding=2), L.Relu(), L.MaxPool(3, 2),
        L.Conv(384, 3, padding=1), L.Relu(),
        L.Conv(384, 3, padding=1), L.Relu(),
        L.Conv(256, 3, padding=1), L.Relu(), L.MaxPool(3, 2),
        L.Flatten(),
        L.Dropout(dropout), L.Dense(4096), L.Relu(),
        L.Dropout(dropout), L.Dense(4096), L.Relu(),
        L.Dense(num_classes),
        name="alexnet",
    )


VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(num_classes: int = 1000, dropout: float = 0.5):
    """VGG configuration D on 224x224x3: 13 conv3 (stride 1, pad 1) in five blocks, each followed by a 2x2/2 max pool,
    an adaptive average pool to 7x7 (the identity at 224x224, as in torchvision, so other sizes fit the classifier),
    then FC 4096, 4096, num_classes (dropout 0.5). 138,357,544 parameters for 1000 classes (lecture: "~140M")."""
    body = []
    for v in VGG16_CONFIG:
        body += [L.MaxPool(2)] if v == "M" else [L.Conv(v, 3, padding=1), L.Relu()]
    return L.serial(
        *body, L.AdaptiveAvgPool(7), L.Flatten(),
        L.Dense(4096), L.Relu(), L.Dropout(dropout),
        L.Dense(4096), L.Relu(), L.Dropout(dropout),
        L.Dense(num_classes),
        name="vgg16",
    )


def all_conv(num_classes: int = 10):
    """All-convolutional network (Springenberg et al. 2015, All-CNN-C) on 32x32x3: downsampling by 3x3 convolutions
    with stride 2 instead of pooling (lecture: "replacing the maxpooling layer with a conv layer"), a 1x1 conv to
    num_classes maps and a global average."""
    return L.serial(
        L.Conv(96, 3, padding=1), L.Relu(),
        L.Conv(96, 3, padding=1), L.Relu(),
        L.Conv(96, 3, stride=2, padding=1), L.Relu(),
        L.Conv(192, 3, padding=1), L.Relu(),
        L.Conv(192, 3, padding=1), L.Relu(),
        L.Conv(192, 3, stride=2, padding=1), L.Relu(),
        L.Conv(192, 3, padding=1), L.Relu(),
        L.Conv(192, 1), L.Relu(),
        L.Conv(num_classes, 1),
        L.GlobalAvgPool(),
        name="all_conv",
    )


# ----------------------------------------------------------------------------------------------------------------
# the PyTorch key names of these models' layers (funcnn.interop): one prefix per layer with parameters, in the order
# `layers.walk` gives them; "<prefix>.weight", ".bias" (and BatchNorm's running statistics) follow

WEIGHTED = ("Conv", "DepthwiseConv", "Dense", "BatchNorm")


def sequential_keys(name: str, layers) -> list:
    """An nn.Sequential of the same layers in the same order (LeNet-5): each layer's index."""
    return [str(i) for i, (_, kind) in enumerate(layers) if kind in WEIGHTED]


def torchvision_keys(name: str, layers) -> list:
    """torchvision's AlexNet and VGG: `features.<i>` for the layers before the adaptive pool, `classifier.<j>`
    after the flatten (both counted as torchvision's nn.Sequentials count them: every layer, with or without
    parameters, in funcnn's order)."""
    kinds = [kind for _, kind in layers]
    if "AdaptiveAvgPool" not in kinds or "Flatten" not in kinds:
        raise ValueError(f"{name}: torchvision's layout has an adaptive pool and a flatten; these layers have "
                         f"{', '.join(kinds)}")
    pool, start = kinds.index("AdaptiveAvgPool"), kinds.index("Flatten") + 1
    return [f"features.{i}" if i < pool else f"classifier.{i - start}" for i, kind in enumerate(kinds)
            if kind in WEIGHTED]
