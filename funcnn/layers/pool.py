"""Pooling layers over funcnn's pooling primitives (1-D and 2-D chosen from the input rank)."""

from __future__ import annotations

from .. import primitives as P
from ..primitives.geometry import make_geometry
from .base import parameterless


def _pool_layer(name, prim2d, prim1d, window, stride, padding, **kw):
    """A pooling layer family member: output shape from the shared geometry, apply from the primitive."""

    def shape_fn(input_shape):
        geo = make_geometry(name, input_shape, window, window if stride is None else stride, padding, 1)
        return (input_shape[0], *geo.out_sizes(input_shape[1:-1]), input_shape[-1])

    def fn(x):
        prim = prim2d if x.ndim == 4 else prim1d
        if prim is None:
            raise ValueError(f"{name}: expected an (N, H, W, C) input, got shape {x.shape}")
        return prim(x, window=window, stride=stride, padding=padding, **kw)

    return parameterless(name, shape_fn, fn)


def MaxPool(window, stride=None, padding="VALID"):
    """Max pooling (stride defaults to the window)."""
    return _pool_layer("MaxPool", P.max_pool2d, P.max_pool1d, window, stride, padding)


def AvgPool(window, stride=None, padding="VALID", count_include_pad=True):
    """Mean pooling."""
    return _pool_layer("AvgPool", P.avg_pool2d, P.avg_pool1d, window, stride, padding,
                       count_include_pad=count_include_pad)


def LpPool(p, window, stride=None, padding="VALID"):
    """p-norm pooling, y = (mean of |x|^p)^(1/p)."""
    return _pool_layer("LpPool", lambda x, **kw: P.lp_pool2d(x, p, **kw), None, window, stride, padding)


def GlobalAvgPool():
    """(N, H, W, C) -> (N, C)."""
    return parameterless("GlobalAvgPool", lambda s: (s[0], s[-1]), P.global_avg_pool2d)


__all__ = ["MaxPool", "AvgPool", "LpPool", "GlobalAvgPool"]
