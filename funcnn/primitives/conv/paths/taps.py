"""Depth-wise convolution (groups = C_in) as K^prod shifted-slice "taps": one multiply-add of a strided slice per
window offset, for the forward, dX and dW.

Why it exists: XLA's `feature_group_count` convolutions are slow on CPU (docs/performance.md, "Why each conv path
is where it is"), and a depth-wise filter has only prod(K) weights per channel, so each tap is a cheap elementwise
product.
Channel multiplier m = C_out / C_in: output channel c*m + k reads input channel c.
"""

from __future__ import annotations

import jax.numpy as jnp

from ...arguments import accumulation_dtype
from ...windows import pad_spatial, place_windows, window_offsets, window_slice
from ..spec import ConvSpec


def conv(x, w, spec: ConvSpec):
    """z[n, i, c*m + k] = sum_u x_pad[n, S*i + D*u, c] * w[u, 0, c*m + k]."""
    geo, acc = spec.geo, accumulation_dtype(x.dtype)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    channels = x.shape[-1]
    xp = pad_spatial(x.astype(acc), geo.padding)
    z = None
    for u in window_offsets(geo.window):
        tap = window_slice(xp, u, geo, out_sizes)[..., :, None] * w[(*u, 0)].astype(acc).reshape(channels, -1)
        z = tap if z is None else z + tap
    return z.reshape(*z.shape[:-2], z.shape[-2] * z.shape[-1]).astype(x.dtype)  # no -1: the batch may be empty


def dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, S*i + D*u, c] += sum_k g[n, i, c*m + k] * w[u, 0, c*m + k]; then crop the forward padding."""
    channels, acc = spec.groups, accumulation_dtype(g.dtype)
    gm = g.astype(acc).reshape(*g.shape[:-1], channels, g.shape[-1] // channels)

    def contribution(t, u):
        return jnp.sum(gm * w[(*u, 0)].astype(acc).reshape(channels, -1), axis=-1)

    return place_windows(contribution, spec.geo, in_sizes).astype(g.dtype)


def dw(x, g, spec: ConvSpec, w_shape):
    """dW[u, 0, c*m + k] = sum_{n, i} x_pad[n, S*i + D*u, c] * g[n, i, c*m + k]."""
    geo, acc = spec.geo, accumulation_dtype(x.dtype)
    channels = x.shape[-1]
    out_sizes = g.shape[1:-1]
    xp = pad_spatial(x.astype(acc), geo.padding)
    gm = g.astype(acc).reshape(*g.shape[:-1], channels, g.shape[-1] // channels)
    reduce_axes = tuple(range(g.ndim - 1))
    taps = [
        jnp.sum(window_slice(xp, u, geo, out_sizes)[..., None] * gm, axis=reduce_axes).reshape(-1)
        for u in window_offsets(geo.window)
    ]
    return jnp.stack(taps).reshape(w_shape).astype(x.dtype)
