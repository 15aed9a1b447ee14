"""The paths: the small, named set of ways to compute one conv-family op, beneath the ops in `rules.py`. Each
module exposes the same three functions:

    conv(x, w, spec)              z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] w[u, c, f]
    dx(g, w, spec, in_sizes)      dX[n, y, c] = sum_{f, i} g_up[n, i, f] w[y - i, c, f]
    dw(x, g, spec, w_shape)       dW[u, c, f] = sum_{n, i} g[n, i, f] x_pad[n, S*i + D*u, c]

    onednn        one call of funcnn's oneDNN engine through XLA's FFI (the CPU default where built)
    canonical     the lecture's steps as one `lax.conv_general_dilated` (every other platform's path, and the
                  fallback of every CPU choice)
    taps          depth-wise: one multiply-add per tap, elementwise
    banded        few channels: one matmul against a band of the filter
    tap_matmuls   a matmul per tap (strided dX, 1x1 and looped dW)
    batch_chunks  dW as the canonical form on N/8 images at a time, summed
    group_loop    a grouped op on a few images as one canonical convolution per group, in a loop

Every path computes every rule it applies to exactly (the tests sweep all of them); which one runs is the table in
`rules.py`, and why each exists is its module's docstring. `run` computes a chosen path, on the CPU or, for a CPU
path, as the canonical form elsewhere.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax import lax

from ..spec import ConvSpec
from . import banded, batch_chunks, canonical, group_loop, onednn, tap_matmuls, taps

PATHS = {"onednn": onednn, "taps": taps, "banded": banded, "tap_matmuls": tap_matmuls, "batch_chunks": batch_chunks,
         "group_loop": group_loop, "canonical": canonical}
ALGORITHMS = tuple(PATHS)
CPU_ONLY = frozenset({"onednn", "banded", "tap_matmuls", "batch_chunks", "group_loop"})  # taken on CPUs alone


class _OnednnWith(NamedTuple):
    """The oneDNN path with the XLA path that computes it in an exported program bound (a path's three functions)."""

    fallback: object

    def conv(self, a, b, spec):
        return onednn.conv(a, b, spec, self.fallback)

    def dx(self, a, b, spec, in_sizes):
        return onednn.dx(a, b, spec, in_sizes, self.fallback)

    def dw(self, a, b, spec, w_shape):
        return onednn.dw(a, b, spec, w_shape, self.fallback)


def run(path: str, rule: str, spec: ConvSpec, w_shape, in_sizes, a, b, *, fallback: str | None = None,
        platform: str | None = None):
    """Compute `rule` ("forward" conv(x, w), "dx" dx(g, w) for an input of `in_sizes`, "dw" dw(x, g) for a filter of
    `w_shape`) with `path`. For "onednn", `fallback` names the XLA path an exported program computes instead.

    A pinned path (`spec.forced`) or one that runs everywhere is emitted as itself. A CPU path is emitted for the
    CPU and, for every other platform, as the canonical form (the engine: its fallback's non-CPU form): both inside
    `lax.platform_dependent`, or only the one form `platform` runs (`tracing.for_platform`)."""
    module = PATHS[path] if fallback is None else _OnednnWith(PATHS[fallback])
    xla = fallback or path
    other = canonical if xla in CPU_ONLY else PATHS[xla]

    def computed(module):
        if rule == "forward":
            return lambda a, b: module.conv(a, b, spec)
        if rule == "dx":
            return lambda a, b: module.dx(a, b, spec, tuple(in_sizes))
        return lambda a, b: module.dw(a, b, spec, tuple(w_shape))

    if path not in CPU_ONLY or spec.forced is not None:
        return computed(module)(a, b)
    if platform is not None:
        return computed(module if platform == "cpu" else other)(a, b)
    return lax.platform_dependent(a, b, cpu=computed(module), default=computed(other))


def on_backend(path: str, forced: str | None, backend: str | None = None) -> str:
    """What runs on `backend` (default: JAX's default backend) for a chosen path: the path, or the canonical form
    where a CPU path was not pinned and the backend is not the CPU."""
    backend = backend or jax.default_backend()
    return path if path not in CPU_ONLY or forced or backend == "cpu" else "canonical"


__all__ = ["PATHS", "ALGORITHMS", "CPU_ONLY", "run", "on_backend"]
