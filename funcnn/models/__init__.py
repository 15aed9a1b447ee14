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
| r3d_18 | 16x112x112x3 | 33,371,472 (400) |
| clip_cnn | 8x16x16x1 | 17,684 (4) |
"""

import importlib

from .. import catalog
from ..layers import walk
from .classic import alexnet, all_conv, lenet5, vgg16
from .localizer import localizer
from .mobile import mobilenet_v1
from .resnet import basic_block, r3d_18, resnet18, resnet20
from .volumes import clip_cnn


def resolve(reference: str):
    """The function a catalog entry names ("module:function" under funcnn.models)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), name)


# derived from the one table of models, funcnn.catalog.MODELS
MODELS = {name: resolve(spec.constructor) for name, spec in catalog.MODELS.items()}
INPUT_SHAPES = {name: spec.input_shape for name, spec in catalog.MODELS.items()}


def num_classes(params) -> int:
    """The classes of a zoo classifier's parameters: the width of its last dense layer (`layers.walk` order).
    ValueError when the tree has no dense layer (it is not a classifier of the zoo)."""
    if not isinstance(params, dict):
        raise TypeError(f"num_classes: params must be the dict a model's init returns, got {type(params).__name__}")
    dense = [path for path, kind in walk(params) if kind == "Dense"]
    if not dense:
        raise ValueError("num_classes: the parameters hold no dense layer, so they are not a zoo classifier's")
    leaf = params
    for key in dense[-1]:
        leaf = leaf[key]
    if not isinstance(leaf, dict) or "w" not in leaf:
        raise ValueError(f"num_classes: the dense layer at {'/'.join(dense[-1])} has no weight 'w'")
    return int(leaf["w"].shape[-1])


def get(name: str):
    """The model constructor called `name`; ValueError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


__all__ = ["lenet5", "alexnet", "vgg16", "resnet18", "resnet20", "mobilenet_v1", "all_conv", "localizer", "r3d_18",
           "clip_cnn",
           "basic_block", "get", "resolve", "num_classes", "MODELS", "INPUT_SHAPES"]
