"""Windows as strided slices, and their adjoint: the "+=" of the lecture's backward loops without a scatter.

Used by the depth-wise taps, the banded and tap-matmul convolution paths, and every pool. Taking the window entry
at offset u for all output positions i is one strided slice of the padded input, xp[n, S*i + D*u, c]; its adjoint
places values back with interior padding (S-1 zeros between entries, the lecture's `upsample`), so overlapping
windows accumulate deterministically on every backend.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import jax.numpy as jnp
from jax import lax

from .geometry import Geometry, Pads


def window_offsets(window: Sequence[int]):
    """All offsets inside a window, in row-major order (the tie-breaking order of max pooling)."""
    return itertools.product(*(range(k) for k in window))


def window_slice(xp, offset, geo: Geometry, out_sizes):
    """xp[n, S*i + D*u, c] for all output positions i, at one window offset u: one strided slice of the padded input."""
    starts = [0] + [d * u for u, d in zip(offset, geo.dilation)] + [0]
    limits = (
        [xp.shape[0]]
        + [d * u + s * (o - 1) + 1 for u, d, s, o in zip(offset, geo.dilation, geo.stride, out_sizes)]
        + [xp.shape[-1]]
    )
    return lax.slice(xp, starts, limits, [1, *geo.stride, 1])


def unslice_config(offset, geo: Geometry, out_sizes, padded_sizes):
    """lax.pad's config that places an (N, *out_sizes, C) array at [n, S*i + D*u, c] of the padded size."""
    config = [(0, 0, 0)]
    for u, d, s, o, p in zip(offset, geo.dilation, geo.stride, out_sizes, padded_sizes):
        lo = d * u
        config.append((lo, p - lo - (s * (o - 1) + 1), s - 1))
    return config + [(0, 0, 0)]


def pad_spatial(x, pads: Pads, value=0.0):
    """Zero-pad (or pad with `value`) the spatial axes of an (N, *spatial, C) array."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    return lax.pad(x, jnp.asarray(value, x.dtype), [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)])


def crop_spatial(xp, pads: Pads):
    """Remove the forward padding again (lecture: "the zero padding regions must be deleted before further
    backprop")."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return xp
    starts = [0] + [lo for lo, _ in pads] + [0]
    limits = [xp.shape[0]] + [size - hi for size, (_, hi) in zip(xp.shape[1:-1], pads)] + [xp.shape[-1]]
    return lax.slice(xp, starts, limits)


def tiles_exactly(geo: Geometry) -> bool:
    """Windows that neither overlap nor leave gaps, without padding: stride == window, dilation 1."""
    return (geo.stride == geo.window and all(d == 1 for d in geo.dilation)
            and all(lo == 0 and hi == 0 for lo, hi in geo.padding))


def first_max(candidates):
    """(best, winner): the elementwise maximum over a sequence of equally shaped arrays and the index of the first
    one holding it.

    Lecture: "keep track of which position had the highest value". One pass keeps the running maximum and its
    index, replacing them only on a strictly greater value, so ties keep the first; only comparisons among these
    values decide, never an equality test against a forward output that XLA may have computed with other rounding.
    NaN never compares greater, so a NaN candidate never wins (after the first)."""
    candidates = iter(candidates)
    best = next(candidates)
    winner = jnp.zeros(best.shape, jnp.int32)
    for t, candidate in enumerate(candidates, start=1):
        better = candidate > best
        best, winner = jnp.where(better, candidate, best), jnp.where(better, t, winner)
    return best, winner


def padded_sum(terms):
    """sum over (v, config) of lax.pad(v, 0, config): values placed into one zero array, "+=" where they overlap.

    The lecture's backward loops accumulate into dx; padding (with interior padding for a stride) places each term
    without an index array or a scatter, so the result is deterministic on every backend."""
    total = None
    for v, config in terms:
        placed = lax.pad(v, jnp.zeros((), v.dtype), config)
        total = placed if total is None else total + placed
    return total


def place_windows(per_offset, geo: Geometry, in_sizes):
    """The adjoint of taking every window slice: sum over window offsets u of per_offset(t, u) (t the offset's
    row-major index) placed at S*i + D*u, then the forward padding cropped away.

    This is the "+=" of the lecture's backward loops: overlapping windows accumulate without a scatter.
    """
    padded = geo.padded_sizes(in_sizes)
    terms = (per_offset(t, u) for t, u in enumerate(window_offsets(geo.window)))
    return crop_spatial(padded_sum((v, unslice_config(u, geo, v.shape[1:-1], padded))
                                   for v, u in zip(terms, window_offsets(geo.window))), geo.padding)


def spread_windows(h, geo: Geometry, in_sizes):
    """Every input receives the sum of h over the windows it lies in (pooling backward, lecture "+=").

    When the windows tile the input (stride == window, no padding) each input lies in one window: h is broadcast
    over its window, and the rows the floor dropped get zeros.
    """
    if tiles_exactly(geo):
        n, *out, c = h.shape
        interleaved = [d for o in out for d in (o, 1)]
        full = [d for o, k in zip(out, geo.window) for d in (o, k)]
        tiled = jnp.broadcast_to(h.reshape(n, *interleaved, c), (n, *full, c))
        tiled = tiled.reshape(n, *(o * k for o, k in zip(out, geo.window)), c)
        rest = [(0, size - o * k, 0) for size, o, k in zip(in_sizes, out, geo.window)]
        return lax.pad(tiled, jnp.zeros((), h.dtype), [(0, 0, 0), *rest, (0, 0, 0)])
    return place_windows(lambda t, u: h, geo, in_sizes)


__all__ = ["window_offsets", "window_slice", "unslice_config", "pad_spatial", "crop_spatial",
           "tiles_exactly", "first_max", "padded_sum", "place_windows", "spread_windows"]
