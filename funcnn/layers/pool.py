"""Pooling layers over funcnn's pooling primitives (1-D and 2-D chosen from the input rank)."""

from __future__ import annotations

import math

from .. import primitives as P
from ..primitives.geometry import as_tuple
from ..primitives.pool import pool_geometry
from .base import parameterless


def _pool_layer(name, prim2d, prim1d, window, stride, padding, ceil_mode, **kw):
    """A pooling layer family member: output shape from the primitives' pool geometry, apply from the primitive."""

    def shape_fn(input_shape):
        geo, _ = pool_geometry(name, input_shape, window, stride, padding, ceil_mode)
        return (input_shape[0], *geo.out_sizes(input_shape[1:-1]), input_shape[-1])

    def fn(x):
        prim = prim2d if x.ndim == 4 else prim1d
        return prim(x, window=window, stride=stride, padding=padding, ceil_mode=ceil_mode, **kw)

    def flops(input_shape, out_shape, params):  # one comparison or addition per window entry
        return math.prod(out_shape) * math.prod(as_tuple(window, len(input_shape) - 2, f"{name}: window"))

    return parameterless(name, shape_fn, fn, flops=flops)


def MaxPool(window, stride=None, padding="VALID", ceil_mode=False):
    """Max pooling (stride defaults to the window)."""
    return _pool_layer("MaxPool", P.max_pool2d, P.max_pool1d, window, stride, padding, ceil_mode)


def AvgPool(window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False):
    """Mean pooling."""
    return _pool_layer("AvgPool", P.avg_pool2d, P.avg_pool1d, window, stride, padding, ceil_mode,
                       count_include_pad=count_include_pad)


def LpPool(p, window, stride=None, padding="VALID", ceil_mode=False):
    """p-norm pooling, y = (mean of |x|^p)^(1/p)."""
    return _pool_layer("LpPool", lambda x, **kw: P.lp_pool2d(x, p, **kw), lambda x, **kw: P.lp_pool1d(x, p, **kw),
                       window, stride, padding, ceil_mode)


def _adaptive_layer(name, prim2d, prim1d, output_size):
    def shape_fn(input_shape):
        sizes = as_tuple(output_size, len(input_shape) - 2, f"{name}: output_size")
        return (input_shape[0], *sizes, input_shape[-1])

    return parameterless(name, shape_fn, lambda x: (prim2d if x.ndim == 4 else prim1d)(x, output_size),
                         flops=lambda input_shape, out_shape, params: math.prod(input_shape))


def AdaptiveAvgPool(output_size):
    """Mean pooling to a given output size (PyTorch's adaptive windows); (1, 1) is a global average that keeps the
    spatial axes."""
    return _adaptive_layer("AdaptiveAvgPool", P.adaptive_avg_pool2d, P.adaptive_avg_pool1d, output_size)


def AdaptiveMaxPool(output_size):
    """Max pooling to a given output size (PyTorch's adaptive windows)."""
    return _adaptive_layer("AdaptiveMaxPool", P.adaptive_max_pool2d, P.adaptive_max_pool1d, output_size)


def GlobalAvgPool():
    """(N, H, W, C) -> (N, C), or (N, W, C) -> (N, C)."""
    return parameterless("GlobalAvgPool", lambda s: (s[0], s[-1]),
                         lambda x: (P.global_avg_pool2d if x.ndim == 4 else P.global_avg_pool1d)(x),
                         flops=lambda input_shape, out_shape, params: math.prod(input_shape))


__all__ = ["MaxPool", "AvgPool", "LpPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool"]
