"""Tap matmuls: one matmul per window offset u on (M, C) views of the activations (M = N * prod(out)).

Why it exists: nothing is multiplied by the zeros that the canonical backward inserts (the stride's S-1 zeros) or
pads (the K-1 border around a small g). dX places g w[u]^T at S*i + D*u (the lecture's "+="), dW[u] =
x_pad[S*i + D*u]^T g. On CPU, XLA's canonical strided dX (lhs_dilation = S) and dW (rhs_dilation = S) ran several
times slower on ResNet-20's stride-2 layers (docs/performance.md); a 1x1 window's dW is a single matmul. For a
stride-1 dX with little padding the canonical form wins or ties, so the table picks this path by the share of zeros.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ...arguments import accumulation_dtype
from ...windows import pad_spatial, place_windows, window_offsets, window_slice
from ..spec import ConvSpec


def _rows(v):
    """(N, *spatial, C) -> (N * prod(spatial), C): a free reshape."""
    return v.reshape(-1, v.shape[-1])


def conv(x, w, spec: ConvSpec):
    """z[n, i, f] = sum_u sum_c x_pad[n, S*i + D*u, c] * w[u, c, f]: one (M, C_in) x (C_in, C_out) matmul per tap."""
    geo, acc = spec.geo, accumulation_dtype(x.dtype)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    xp = pad_spatial(x, geo.padding)
    z = None
    for u in window_offsets(geo.window):
        tap = jnp.matmul(_rows(window_slice(xp, u, geo, out_sizes)), w[u], preferred_element_type=acc)
        z = tap if z is None else z + tap
    return z.reshape(x.shape[0], *out_sizes, w.shape[-1]).astype(x.dtype)


def dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, S*i + D*u, c] += sum_f g[n, i, f] * w[u, c, f]: each tap's (M, C_out) x (C_out, C_in) product placed
    at its offset (interior padding for S), summed, the forward padding cropped."""
    acc = accumulation_dtype(g.dtype)
    g_rows = _rows(g)

    def contribution(t, u):
        d = lax.dot_general(g_rows, w[u], (((1,), (1,)), ((), ())), preferred_element_type=acc)
        return d.reshape(*g.shape[:-1], w.shape[-2])

    return place_windows(contribution, spec.geo, in_sizes).astype(g.dtype)


def dw(x, g, spec: ConvSpec, w_shape):
    """dW[u, c, f] = sum_{(n, i)} x_pad[n, S*i + D*u, c] * g[n, i, f]: one (C_in, M) x (M, C_out) product per tap,
    contracting the rows of both views (no transpose is materialised)."""
    geo, acc = spec.geo, accumulation_dtype(x.dtype)
    xp = pad_spatial(x, geo.padding)
    g_rows = _rows(g)
    taps = [
        lax.dot_general(_rows(window_slice(xp, u, geo, g.shape[1:-1])), g_rows, (((0,), (0,)), ((), ())),
                        preferred_element_type=acc)
        for u in window_offsets(geo.window)
    ]
    return jnp.stack(taps).reshape(w_shape).astype(x.dtype)
