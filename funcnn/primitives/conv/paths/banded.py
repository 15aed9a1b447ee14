"""Banded: one matmul per rule, the filter written as a banded (Toeplitz) matrix over a block of B outputs along the
last spatial axis.

Why it exists: for the few channels of first layers (LeNet's two convolutions, a 3-channel stem) XLA's CPU
convolution runs at a few GFLOP/s, and one well-shaped matmul that multiplies up to MAX_INFLATION times the useful
terms is several times faster (docs/performance.md: the LeNet-5 training step). B = 1 is im2col (every window a
row); a larger B reads each input column once per block instead of K times.

Rows of the left factor are (n, outer output position i, block b); columns are (outer window offset u, input column
j' inside the block's span, c):

    A[(n, i, b), (u, j', c)] = x_pad[n, S*i + D*u, S*B*b + j', c]          j' < L = S*(B-1) + D*(K-1) + 1
    T[(u, j', c), (j, f)]    = w[u, k, c, f]  where j' = S*j + D*k, else 0  j < B
    z[(n, i, b), (j, f)]     = (A T)[(n, i, b), (j, f)]                      = z[n, i, B*b + j, f]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from ...arguments import accumulation_dtype
from ...geometry import Geometry
from ...windows import pad_spatial, place_windows, window_offsets, window_slice
from ..spec import ConvSpec

MAX_INFLATION = 3.0


class Band(NamedTuple):
    """Static block plan: `block` outputs per block, `blocks` blocks, each spanning `span` input columns; `geo` slices
    the blocks: the outer axes as in the convolution, the last axis `blocks` offsets S*B apart with the high padding
    extended so that every block is whole."""

    block: int
    blocks: int
    span: int
    geo: Geometry


def span(geo: Geometry, outputs: int) -> int:
    """L = S*(B-1) + D*(K-1) + 1: the input columns that `outputs` consecutive outputs of the last axis read."""
    return geo.stride[-1] * (outputs - 1) + geo.effective_window[-1]


def block_size(geo: Geometry, out_last: int) -> int:
    """The largest divisor B of the last output size whose band multiplies at most MAX_INFLATION times the useful
    terms (L / K <= MAX_INFLATION); divisors leave no padded block."""
    fits = [b for b in range(1, out_last + 1)
            if out_last % b == 0 and span(geo, b) <= MAX_INFLATION * geo.window[-1]]
    return max(fits, default=1)


def plan(geo: Geometry, in_sizes, block: int | None = None) -> Band:
    out_last = geo.out_sizes(in_sizes)[-1]
    block = block_size(geo, out_last) if block is None else block
    blocks = -(-out_last // block)
    lo, hi = geo.padding[-1]
    extra = max(0, span(geo, blocks * block) - geo.padded_sizes(in_sizes)[-1])  # the filler outputs' columns
    block_geo = Geometry(geo.window[:-1] + (blocks,), geo.stride[:-1] + (1,),
                         geo.padding[:-1] + ((lo, hi + extra),), geo.dilation[:-1] + (geo.stride[-1] * block,))
    return Band(block, blocks, span(geo, block), block_geo)


def _rows(x, geo: Geometry, band: Band):
    """A[(n, i, b), (u, j', c)]: for each block b and outer offset u one strided slice of the padded input."""
    out_sizes = geo.out_sizes(x.shape[1:-1])[:-1] + (band.span,)
    xp = pad_spatial(x, band.geo.padding)
    slices = [window_slice(xp, (*u, b), band.geo, out_sizes)
              for b in range(band.blocks) for u in window_offsets(geo.window[:-1])]
    a = jnp.stack(slices, axis=-3)  # (N, *O_outer, blocks * K_outer, span, C)
    return a.reshape(-1, len(slices) // band.blocks * band.span * x.shape[-1])


def _matrix(w, geo: Geometry, band: Band):
    """T[(u, j', c), (j, f)] = w[u, k, c, f] at j' = S*j + D*k: the filter row shifted by S per output column."""
    s, d, k = geo.stride[-1], geo.dilation[-1], geo.window[-1]
    w_rows = w.reshape(-1, k, *w.shape[-2:])  # (K_outer, K, C_in, C_out)
    shifted = [lax.pad(w_rows, jnp.zeros((), w.dtype),
                       [(0, 0, 0), (s * j, band.span - s * j - d * (k - 1) - 1, d - 1), (0, 0, 0), (0, 0, 0)])
               for j in range(band.block)]
    return jnp.stack(shifted, axis=-2).reshape(-1, band.block * w.shape[-1])


def _g_blocks(g, band: Band):
    """g as rows (n, i, b) x columns (j, f), zero outputs appended to fill the last block."""
    missing = band.blocks * band.block - g.shape[-2]
    if missing:
        g = lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0)] * (g.ndim - 2) + [(0, missing, 0), (0, 0, 0)])
    return g.reshape(-1, band.block * g.shape[-1])


def conv(x, w, spec: ConvSpec):
    """z = A T, the blocks laid side by side and the filler outputs of a last partial block cut."""
    geo = spec.geo
    band = plan(geo, x.shape[1:-1])
    out_sizes = geo.out_sizes(x.shape[1:-1])
    z = jnp.matmul(_rows(x, geo, band), _matrix(w, geo, band), preferred_element_type=accumulation_dtype(x.dtype))
    z = z.reshape(x.shape[0], *out_sizes[:-1], band.blocks * band.block, w.shape[-1])
    return z[..., : out_sizes[-1], :].astype(x.dtype)


def dw(x, g, spec: ConvSpec, w_shape):
    """dT = A^T g, then dW[u, k, c, f] = sum_j dT[(u, S*j + D*k, c), (j, f)]: each output column's band summed."""
    geo = spec.geo
    band = plan(geo, x.shape[1:-1])
    s, d, k = geo.stride[-1], geo.dilation[-1], geo.window[-1]
    dt = lax.dot_general(_rows(x, geo, band), _g_blocks(g, band), (((0,), (0,)), ((), ())),
                         preferred_element_type=accumulation_dtype(x.dtype))
    dt = dt.reshape(-1, band.span, w_shape[-2], band.block, w_shape[-1])
    total = None
    for j in range(band.block):
        piece = lax.slice_in_dim(dt[:, :, :, j, :], s * j, s * j + d * (k - 1) + 1, stride=d, axis=1)
        total = piece if total is None else total + piece
    return total.reshape(w_shape).astype(x.dtype)


def dx(g, w, spec: ConvSpec, in_sizes):
    """dA = g T^T, then each (block, outer offset) piece is placed back at its window position ("+=" over overlaps)
    and the padding cropped."""
    geo = spec.geo
    band = plan(geo, in_sizes)
    k_outer = math.prod(geo.window[:-1])
    da = lax.dot_general(_g_blocks(g, band), _matrix(w, geo, band), (((1,), (1,)), ((), ())),
                         preferred_element_type=accumulation_dtype(g.dtype))
    da = da.reshape(*g.shape[:-2], band.blocks, k_outer, band.span, w.shape[-2])

    def piece(t, offset):
        *u, b = offset
        return da[..., b, np.ravel_multi_index(u, geo.window[:-1]) if u else 0, :, :]

    return place_windows(piece, band.geo, in_sizes).astype(g.dtype)
