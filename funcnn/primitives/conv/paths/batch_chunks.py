"""Batch chunks: dW as the canonical dW convolution on CHUNKS slices of the batch, summed in the accumulation dtype.

Why it exists: XLA's CPU dW convolution (batch and feature axes swapped) contracts the whole batch x spatial extent
into a small filter-sized output, and ran 1.8-3x slower on all of the batch than on 1-16 images at a time
(ResNet-20's layers; README, Performance). The same sum in a different order. A dW path only: its forward and dX are
the canonical ones.

Why 8 chunks: every chunk is one more convolution in the compiled program, and XLA's CPU compile time grows about
linearly with their number. In the whole ResNet-20 train step (batch 128, AMD EPYC, 2 cores) 16 chunks compiled in
11.4-12.9 s and stepped in 603-612 ms, 8 chunks in 7.3 s and 595 ms, 4 chunks 646 ms and the canonical dW everywhere
2.7 s and 790 ms. One compiled chunk inside a loop (`lax.map`, `fori_loop`) ran far slower: XLA's CPU runtime does
not parallelise a convolution inside a while loop.
"""

from __future__ import annotations

from ...checks import accumulation_dtype
from ..geometry import ConvSpec
from . import canonical

CHUNKS = 8

conv = canonical.conv
dx = canonical.dx


def dw(x, g, spec: ConvSpec, w_shape):
    """dW = sum over the chunks b of dW(x[b], g[b]), each the canonical correlation of its slice."""
    n, chunks = x.shape[0], max(1, min(CHUNKS, x.shape[0]))  # an empty batch: one empty chunk
    bounds = [n * i // chunks for i in range(chunks + 1)]
    acc = accumulation_dtype(x.dtype)
    parts = [canonical.dw(x[a:b], g[a:b], spec, w_shape, out_dtype=acc) for a, b in zip(bounds, bounds[1:])]
    return sum(parts[1:], parts[0]).astype(x.dtype)
