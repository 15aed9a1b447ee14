"""Batch chunks: dW as the canonical dW convolution on CHUNKS slices of the batch, summed in the accumulation dtype.

Why it exists: XLA's CPU dW convolution (batch and feature axes swapped) contracts the whole batch x spatial extent
into a small filter-sized output, and runs slower on all of the batch than on a few images at a time (ResNet-20's
layers). The same sum in a different order. A dW path only: its forward and dX are the canonical ones. The engine
(`conv/engines.py`): XLA's dW convolution has the batch as its features, so a chunk of at most 16 images with at
most 16 output channels stays in Eigen even where YNNPACK is on (YNNPACK's dW is the slower one there).

Why 8 chunks: every chunk is one more convolution in the compiled program, and XLA's CPU compile time grows about
linearly with their number, while fewer chunks step slower; 8 was the best trade measured for the whole ResNet-20
step, and at batch 128 it keeps 16-image chunks, in Eigen under a plain `jax.jit` too. One compiled chunk inside a
loop (`lax.map`, `fori_loop`) runs far slower: XLA's CPU runtime does not parallelise a convolution inside a while
loop. The measurements behind each of these: docs/performance.md, "Why each conv path is where it is".
"""

from __future__ import annotations

from ...arguments import accumulation_dtype
from ..spec import ConvSpec
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
