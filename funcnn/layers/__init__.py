"""Layers as pure `(init, apply)` pairs (see `funcnn.layers.base` for the contract).

    init(rng, input_shape) -> (output_shape, params, state)
    apply(params, state, x, *, train=False, rng=None) -> (y, state)
"""

from .base import Layer, named, parameterless, stateless
from .combinators import fan_in_concat, fan_in_sum, fan_out, parallel, remat, residual, serial, truncate, walk
from .conv import Conv, ConvTranspose, DepthwiseConv, SeparableConv, TransformInvariantConv, transform_filter
from .core import (BatchNorm, Dense, Dropout, Flatten, GroupNorm, Identity, LayerNorm, LogSoftmax, Relu, Sigmoid,
                   Softmax, Tanh)
from .pool import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, GlobalAvgPool, LpPool, MaxPool
from .reparam import SpectralNorm, WeightNorm

__all__ = [
    "Layer", "named", "stateless", "parameterless",
    "serial", "parallel", "remat", "truncate", "fan_out", "fan_in_sum", "fan_in_concat", "residual", "walk",
    "Conv", "DepthwiseConv", "SeparableConv", "ConvTranspose", "TransformInvariantConv", "transform_filter",
    "Dense", "Flatten", "Identity", "Relu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Dropout", "BatchNorm",
    "LayerNorm", "GroupNorm",
    "MaxPool", "AvgPool", "LpPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool",
    "WeightNorm", "SpectralNorm",
]
