"""Batch chunks: dW as the canonical dW convolution on CHUNKS slices of the batch, summed in the accumulation dtype.

Why it exists: XLA's CPU dW convolution (batch and feature axes swapped) contracts the whole batch x spatial extent
into a small filter-sized output, and ran 1.8-3x slower on all of the batch than on 1-16 images at a time
(ResNet-20's layers; README, Performance). The same sum in a different order. A dW path only: its forward and dX are
the canonical ones. The engine (`conv/engines.py`): XLA's dW convolution has the batch as its features, so a chunk
of at most 16 images with at most 16 output channels stays in Eigen even where YNNPACK is on (YNNPACK's dW ran 1.4-16x
slower than Eigen's); with YNNPACK off (funcnn's steps) the chunks' whole ResNet-20 step was 509 against 647 ms
for one dW convolution per layer (4 interleaved rounds, AMD EPYC).

Why 8 chunks: every chunk is one more convolution in the compiled program, and XLA's CPU compile time grows about
linearly with their number. In the whole ResNet-20 train step (batch 128, AMD EPYC, 2 cores) 16 chunks compiled in
11.4-12.9 s and stepped in 603-612 ms, 8 chunks in 7.3 s and 595 ms, 4 chunks 646 ms and the canonical dW everywhere
2.7 s and 790 ms. Re-measured with YNNPACK off (funcnn's steps since issue 28), 4 interleaved rounds: 8 chunks 509
ms per step and 7.7 s to compile, 4 chunks 532 ms and 3.9 s, one convolution 647 ms and 3.3 s; 8 stays (the step
is what a training run repeats, and at batch 128 it keeps 16-image chunks, in Eigen under a plain `jax.jit` too).
One compiled chunk inside a loop (`lax.map`, `fori_loop`) ran far slower: XLA's CPU runtime does not parallelise a
convolution inside a while loop.
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
