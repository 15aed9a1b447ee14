"""The lectures' model zoo. Each constructor takes `num_classes` and returns a layer `(init, apply)`.

| name | input | parameters (default classes) |
|---|---|---|
| lenet5 | 32x32x1 | 61,706 (10) |
| alexnet | 227x227x3 | 62,378,344 (1000) |
| vgg16 | 224x224x3 | 138,357,544 (1000) |
| resnet18 | 224x224x3 | 11,689,512 (1000) |
| resnet20 | 32x32x3 | 272,474 (10) |
| mobilenet_v1 | 224x224x3 | 4,231,976 (1000) |
| all_conv | 32x32x3 | 1,369,738 (10) |
| localizer | 64x64x1 | 549,518 (10) |
"""

from .classic import alexnet, all_conv, lenet5, vgg16
from .localizer import localizer
from .mobile import mobilenet_v1
from .resnet import basic_block, resnet18, resnet20

INPUT_SHAPES = {
    "lenet5": (32, 32, 1),
    "alexnet": (227, 227, 3),
    "vgg16": (224, 224, 3),
    "resnet18": (224, 224, 3),
    "resnet20": (32, 32, 3),
    "mobilenet_v1": (224, 224, 3),
    "all_conv": (32, 32, 3),
    "localizer": (64, 64, 1),
}

MODELS = {
    "lenet5": lenet5, "alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "resnet20": resnet20,
    "mobilenet_v1": mobilenet_v1, "all_conv": all_conv, "localizer": localizer,
}


def get(name: str):
    """The model constructor called `name`; ValueError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


__all__ = ["lenet5", "alexnet", "vgg16", "resnet18", "resnet20", "mobilenet_v1", "all_conv", "localizer",
           "basic_block", "get", "MODELS", "INPUT_SHAPES"]
