"""Pooling layers over funcnn's pooling primitives (1-D, 2-D or 3-D chosen from the input rank)."""

from __future__ import annotations

import math

from ..primitives.borders import check_mode
from ..primitives.geometry import as_tuple
from ..primitives.pool import pool_geometry
from .base import by_rank, parameterless


def _pool_layer(name, kind, window, stride, padding, ceil_mode, args=(), **kw):
    """A pooling layer family member: output shape from the primitives' pool geometry, apply from the primitive of
    the input's rank (`kind` 1-D, 2-D or 3-D); `args` go before the window (LpPool's p)."""
    check_mode(name, kw.get("padding_mode", "zeros"))

    def shape_fn(input_shape):
        by_rank(kind, name, input_shape)
        geo, _ = pool_geometry(name, input_shape, window, stride, padding, ceil_mode)
        return (input_shape[0], *geo.out_sizes(input_shape[1:-1]), input_shape[-1])

    def fn(x):
        return by_rank(kind, name, x.shape)(x, *args, window=window, stride=stride, padding=padding,
                                             ceil_mode=ceil_mode, **kw)

    def flops(input_shape, out_shape, params):  # one comparison or addition per window entry
        return math.prod(out_shape) * math.prod(as_tuple(window, len(input_shape) - 2, f"{name}: window"))

    return parameterless(name, shape_fn, fn, flops=flops)


def MaxPool(window, stride=None, padding="VALID", ceil_mode=False, padding_mode="zeros"):
    """Max pooling over (N, *spatial, C), 1 to 3 spatial axes (stride defaults to the window)."""
    return _pool_layer("MaxPool", "max_pool", window, stride, padding, ceil_mode, padding_mode=padding_mode)


def AvgPool(window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False, padding_mode="zeros"):
    """Mean pooling over (N, *spatial, C), 1 to 3 spatial axes."""
    return _pool_layer("AvgPool", "avg_pool", window, stride, padding, ceil_mode,
                       count_include_pad=count_include_pad, padding_mode=padding_mode)


def LpPool(p, window, stride=None, padding="VALID", ceil_mode=False, padding_mode="zeros"):
    """p-norm pooling, y = (mean of |x|^p)^(1/p), over 1 to 3 spatial axes."""
    return _pool_layer("LpPool", "lp_pool", window, stride, padding, ceil_mode, args=(p,), padding_mode=padding_mode)


def _adaptive_layer(name, kind, output_size):
    def shape_fn(input_shape):
        by_rank(kind, name, input_shape)
        sizes = as_tuple(output_size, len(input_shape) - 2, f"{name}: output_size")
        return (input_shape[0], *sizes, input_shape[-1])

    return parameterless(name, shape_fn, lambda x: by_rank(kind, name, x.shape)(x, output_size),
                         flops=lambda input_shape, out_shape, params: math.prod(input_shape))


def AdaptiveAvgPool(output_size):
    """Mean pooling to a given output size (PyTorch's adaptive windows); (1, 1) is a global average that keeps the
    spatial axes."""
    return _adaptive_layer("AdaptiveAvgPool", "adaptive_avg_pool", output_size)


def AdaptiveMaxPool(output_size):
    """Max pooling to a given output size (PyTorch's adaptive windows)."""
    return _adaptive_layer("AdaptiveMaxPool", "adaptive_max_pool", output_size)


def GlobalAvgPool():
    """(N, *spatial, C) -> (N, C), 1 to 3 spatial axes."""

    def shape_fn(s):
        by_rank("global_avg_pool", "GlobalAvgPool", s)
        return (s[0], s[-1])

    return parameterless("GlobalAvgPool", shape_fn, lambda x: by_rank("global_avg_pool", "GlobalAvgPool", x.shape)(x),
                         flops=lambda input_shape, out_shape, params: math.prod(input_shape))


__all__ = ["MaxPool", "AvgPool", "LpPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "GlobalAvgPool"]
