"""Convolution family: conv1d, conv2d, conv_transpose1d, conv_transpose2d.

One N-d implementation with thin 1-D / 2-D wrappers. Layout: activations (N, *spatial, C), filters (*K, C_in/G, C_out).
Correlation form, as in the lecture ("don't flip the kernel"):

    z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f] + b[f]        (i, u run over the spatial axes)

Gradients (lecture 004, "Computing the derivative for Y(l-1,m)", "Overall algorithm", "The derivatives for the weights"):

    dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]      1. upsample g by S (insert S-1 zeros)
                                                                 2. zero-pad it by K_eff-1 on every side
                                                                 3. convolve with the flipped, channel-swapped filter
                                                                 4. crop the forward padding (and the dropped rows)
    dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c] (correlation of the padded input with upsampled g)
    db[f]       = sum_{n, i} g[n, i, f]

The four dX steps are named helpers below; each yields one argument of a single `lax.conv_general_dilated` call, the
canonical form XLA maps to vendor kernels (a literal zero-insertion version is `funcnn.reference.conv_dx_literal`).

Algorithm choice (one small table; every path passes the same gradient checks):

    | case                                    | forward / dX / dW                                     |
    |-----------------------------------------|-------------------------------------------------------|
    | depth-wise (groups == C_in > 1)         | K^prod shifted-slice "taps": multiply-adds of slices  |
    | groups == 1, C_in * C_out <= 128        | "banded": one matmul per rule, the filter written as  |
    | (LeNet's layers, a 3-channel stem)      |   a banded matrix over B outputs of a row (B = 1 is   |
    |                                         |   im2col)                                             |
    | everything else                         | forward: lax.conv_general_dilated (canonical form)    |
    |                                         | dX: "tap matmuls" when the canonical dX would spend   |
    |                                         |   at least half its multiplies on inserted or padded  |
    |                                         |   zeros (stride > 1, or K-1 padding around a small g),|
    |                                         |   canonical otherwise                                 |
    |                                         | dW: one matmul for a 1x1 window ("tap matmuls"), else |
    |                                         |   the canonical form on "batch chunks" (16 batch      |
    |                                         |   slices, summed)                                     |

Banded, tap-matmul and batch-chunk paths are CPU choices: on other backends the canonical forms stay, the ones
XLA maps to vendor kernels (cuDNN). Where each wins was measured rule by rule and inside the training steps (README,
Performance):

- "Tap matmuls" are one matmul per window offset u: dX places g w[u]^T at S*i + D*u (the lecture's "+=", no zeros
  multiplied), dW[u] = x_pad[S*i + D*u]^T g. XLA's canonical dX (lhs_dilation = S) and dW (rhs_dilation = S) ran
  2-10x slower on ResNet-20's stride-2 layers. For a stride-1 dX the canonical form wins or ties.
- "Banded" turns a few-channel convolution, where Eigen's direct convolution runs at a few GFLOP/s, into one
  well-shaped matmul per rule that multiplies up to BAND_MAX_INFLATION times the useful terms: LeNet-5's training
  step ran 1.8x faster with it.
- "Batch chunks": XLA's CPU dW convolution (batch and feature axes swapped, the whole batch x spatial extent
  contracted into a filter-sized output) ran 1.8-3x faster on 16 slices of the batch, summed, than on all of it,
  and 1.6x faster than tap matmuls on ResNet-20's 3x3/2 layer (a tie at 32 -> 64 channels); a 1x1 window's single
  matmul stays faster (0.9 vs 2.1 ms).

`benchmarks/primitives.py` measures each choice; `force_algorithm(name)` overrides the table for every rule
(tests run every path).
"""

from __future__ import annotations

import contextlib
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._common import (
    Geometry,
    accumulation_dtype,
    as_tuple,
    check_rank,
    float_dtype,
    make_geometry,
    pad_spatial,
    place_windows,
    resolve_padding,
    reverse_mode_only,
    window_offsets,
    window_slice,
)

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


class ConvSpec(NamedTuple):
    """Static convolution configuration: the window geometry plus the number of groups."""

    geo: Geometry
    groups: int


def _dimension_numbers(nd: int, lhs: str, rhs: str, out: str):
    """Dimension-number strings with the spatial letters filled in, e.g. ("N*C", "*IO", "N*C") -> NHWC, HWIO, NHWC."""
    sp = _SPATIAL[nd]
    return tuple(s.replace("*", sp) for s in (lhs, rhs, out))


BANDED_MAX_CHANNEL_PRODUCT = 128
DW_BATCH_CHUNKS = 16
ZERO_FRACTION_FOR_TAPS = 0.5
ALGORITHMS = ("taps", "banded", "tap_matmuls", "batch_chunks", "canonical")
_FORCED: list = [None]


def _algorithm(spec: ConvSpec, w_shape, rule: str = "forward", in_sizes=None) -> str:
    """The path for one rule ("forward", "dx" or "dw"), by the table in the module docstring.

    `in_sizes` (the forward input's spatial sizes) is needed for rule "dx".
    """
    depthwise = spec.groups > 1 and w_shape[-2] == 1
    if _FORCED[0] is not None:
        wanted = _FORCED[0]
        if wanted == "taps" and not depthwise:
            return "canonical"  # taps exist for depth-wise filters only
        if wanted in ("banded", "tap_matmuls") and spec.groups != 1:
            return "canonical"
        if wanted == "batch_chunks" and rule != "dw":
            return "canonical"  # a dW path only
        return wanted
    if depthwise:
        return "taps"
    if spec.groups != 1:
        return "canonical"
    if w_shape[-2] * w_shape[-1] <= BANDED_MAX_CHANNEL_PRODUCT:
        return "banded"
    if rule == "dw":
        return "tap_matmuls" if math.prod(spec.geo.window) == 1 else "batch_chunks"
    if rule == "dx" and _dx_zero_fraction(spec, in_sizes) >= ZERO_FRACTION_FOR_TAPS:
        return "tap_matmuls"
    return "canonical"


def _dx_zero_fraction(spec: ConvSpec, in_sizes) -> float:
    """The share of the canonical dX convolution's multiplies that hit inserted or padded zeros of g.

    The canonical form evaluates the window at every (padded-input) position, prod(in) of them; only the prod(out)
    entries of g are non-zero, each meeting every tap once: useful work prod(out) * prod(K) of prod(in) * prod(K).
    """
    out = spec.geo.out_sizes(in_sizes)
    useful, total = 1, 1
    for o, n in zip(out, in_sizes):
        useful, total = useful * o, total * n
    return 1.0 - useful / total


@contextlib.contextmanager
def force_algorithm(name: str | None):
    """Use one algorithm for every rule wherever it applies (for tests and benchmarks): one of `ALGORITHMS`, or None
    for the table."""
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"force_algorithm: unknown algorithm {name!r}")
    previous, _FORCED[0] = _FORCED[0], name
    try:
        yield
    finally:
        _FORCED[0] = previous


def _with_bias(z, b):
    return z if b is None else z + b.astype(z.dtype)


# ----------------------------------------------------------------------------------------------------------------
# forward


def _conv(x, w, spec: ConvSpec):
    """z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f] (no bias)."""
    algorithm = _algorithm(spec, w.shape, "forward")
    if algorithm == "taps":
        return _taps_conv(x, w, spec.geo)
    if algorithm == "banded":
        return _cpu_only(partial(_banded_conv, geo=spec.geo), partial(_canonical_conv, spec=spec), x, w)
    if algorithm == "tap_matmuls":
        return _tap_matmuls_conv(x, w, spec.geo)
    return _canonical_conv(x, w, spec)


def _canonical_conv(x, w, spec: ConvSpec):
    nd = x.ndim - 2
    z = lax.conv_general_dilated(
        x,
        w,
        window_strides=spec.geo.stride,
        padding=spec.geo.padding,
        rhs_dilation=spec.geo.dilation,
        dimension_numbers=_dimension_numbers(nd, "N*C", "*IO", "N*C"),
        feature_group_count=spec.groups,
        preferred_element_type=accumulation_dtype(x.dtype),
    )
    return z.astype(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# backward: the lecture's named steps for dX


def _upsample(spec: ConvSpec):
    """Step 1, lecture `upsample(dz, S)`: insert S-1 zeros between entries of g (XLA: lhs_dilation = S)."""
    return spec.geo.stride


def _full_pad_then_crop(spec: ConvSpec, in_sizes):
    """Steps 2 and 4: pad the upsampled g by K_eff-1 on every side, then crop the forward padding.

    Both are one (lo, hi) pair per axis: lo = K_eff-1-P_lo, hi = K_eff-1-P_hi + r, where r counts the rows the floor in
    the forward output size dropped (they never reached the output, so their derivative is zero). A negative entry
    crops.
    """
    return tuple(
        (ke - 1 - lo, ke - 1 - hi + r)
        for ke, (lo, hi), r in zip(spec.geo.effective_window, spec.geo.padding, spec.geo.dropped(in_sizes))
    )


def _flip_and_swap(w, groups: int):
    """Step 3: flip the filter in every spatial axis and swap its in/out channels.

    The flip is `lax.rev`; the swap is done by relabelling the filter axes in the dimension numbers ("*OI" instead of
    "*IO"), so no copy is made. With groups, the group axis moves from the output to the input channels:
    (*K, C_in/G, C_out) -> (*K, C_in, C_out/G).
    """
    nd = w.ndim - 2
    w = lax.rev(w, tuple(range(nd)))
    if groups > 1:
        *k, cin_g, cout = w.shape
        w = w.reshape(*k, cin_g, groups, cout // groups)
        w = jnp.moveaxis(w, -2, -3).reshape(*k, groups * cin_g, cout // groups)
    return w


def _conv_dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]: the four lecture steps as one convolution."""
    algorithm = _algorithm(spec, w.shape, "dx", in_sizes)
    if algorithm == "taps":
        return _taps_dx(g, w, spec, in_sizes)
    if algorithm in ("banded", "tap_matmuls"):
        fast = _banded_dx if algorithm == "banded" else _tap_matmuls_dx
        return _cpu_only(partial(fast, spec=spec, in_sizes=in_sizes),
                         partial(_canonical_dx, spec=spec, in_sizes=in_sizes), g, w)
    return _canonical_dx(g, w, spec, in_sizes)


def _canonical_dx(g, w, spec: ConvSpec, in_sizes):
    nd = g.ndim - 2
    dx = lax.conv_general_dilated(
        g,
        _flip_and_swap(w, spec.groups),
        window_strides=(1,) * nd,
        padding=_full_pad_then_crop(spec, in_sizes),
        lhs_dilation=_upsample(spec),
        rhs_dilation=spec.geo.dilation,
        dimension_numbers=_dimension_numbers(nd, "N*C", "*OI", "N*C"),
        feature_group_count=spec.groups,
        preferred_element_type=accumulation_dtype(g.dtype),
    )
    return dx.astype(g.dtype)


def _conv_dw(x, g, spec: ConvSpec, w_shape):
    """dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c].

    A correlation of the padded input with g upsampled by S (rhs_dilation = S), stepping D over the input
    (window_strides = D); batch and channel axes swap roles, and groups become batch groups.
    """
    algorithm = _algorithm(spec, w_shape, "dw")
    if algorithm == "taps":
        return _taps_dw(x, g, spec.geo)
    if algorithm in ("banded", "tap_matmuls", "batch_chunks"):
        fast = {"banded": _banded_dw, "tap_matmuls": _tap_matmuls_dw, "batch_chunks": _batch_chunks_dw}[algorithm]
        return _cpu_only(partial(fast, spec=spec, w_shape=w_shape),
                         partial(_canonical_dw, spec=spec, w_shape=w_shape), x, g)
    return _canonical_dw(x, g, spec, w_shape)


def _canonical_dw(x, g, spec: ConvSpec, w_shape, out_dtype=None):
    nd = x.ndim - 2
    dropped = spec.geo.dropped(x.shape[1:-1])
    dw = lax.conv_general_dilated(
        x,
        g,
        window_strides=spec.geo.dilation,
        padding=tuple((lo, hi - r) for (lo, hi), r in zip(spec.geo.padding, dropped)),
        rhs_dilation=spec.geo.stride,
        dimension_numbers=_dimension_numbers(nd, "C*N", "I*O", "*NC"),
        batch_group_count=spec.groups,
        preferred_element_type=accumulation_dtype(x.dtype),
    )
    return dw.astype(out_dtype or x.dtype)


def _batch_chunks_dw(x, g, spec: ConvSpec, w_shape):
    """dW = sum over DW_BATCH_CHUNKS slices of the batch of the canonical dW of each slice.

    The same sum in a different order: XLA's CPU dW convolution contracts the whole batch x spatial extent into a
    small filter-sized output and ran 1.8-3x slower than on 1-16 images at a time (ResNet-20's stride-1 layers).
    """
    n, chunks = x.shape[0], min(DW_BATCH_CHUNKS, x.shape[0])
    bounds = [n * i // chunks for i in range(chunks + 1)]
    acc = accumulation_dtype(x.dtype)
    parts = [_canonical_dw(x[a:b], g[a:b], spec, w_shape, out_dtype=acc) for a, b in zip(bounds, bounds[1:])]
    return sum(parts[1:], parts[0]).astype(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# depth-wise convolution as shifted-slice taps (C_in = G input channels, channel multiplier m = C_out / C_in)
#
# feature_group_count convolutions are slow on CPU (performance note: taps were 8-28x faster); a depth-wise
# filter has only prod(K) taps, each one multiply-add of a strided slice.


def _taps_conv(x, w, geo: Geometry):
    """z[n, i, c*m + k] = sum_u x_pad[n, S*i + D*u, c] * w[u, 0, c*m + k]."""
    acc = accumulation_dtype(x.dtype)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    channels = x.shape[-1]
    xp = pad_spatial(x.astype(acc), geo.padding)
    z = None
    for u in window_offsets(geo.window):
        tap = window_slice(xp, u, geo, out_sizes)[..., :, None] * w[(*u, 0)].astype(acc).reshape(channels, -1)
        z = tap if z is None else z + tap
    return z.reshape(*z.shape[:-2], -1).astype(x.dtype)


def _taps_dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, S*i + D*u, c] += sum_k g[n, i, c*m + k] * w[u, 0, c*m + k]; then crop the forward padding."""
    geo, channels = spec.geo, spec.groups
    acc = accumulation_dtype(g.dtype)
    gm = g.astype(acc).reshape(*g.shape[:-1], channels, -1)

    def contribution(t, u):
        return jnp.sum(gm * w[(*u, 0)].astype(acc).reshape(channels, -1), axis=-1)

    return place_windows(contribution, geo, in_sizes).astype(g.dtype)


def _taps_dw(x, g, geo: Geometry):
    """dW[u, 0, c*m + k] = sum_{n, i} x_pad[n, S*i + D*u, c] * g[n, i, c*m + k]."""
    acc = accumulation_dtype(x.dtype)
    channels = x.shape[-1]
    out_sizes = g.shape[1:-1]
    xp = pad_spatial(x.astype(acc), geo.padding)
    gm = g.astype(acc).reshape(*g.shape[:-1], channels, -1)
    reduce_axes = tuple(range(g.ndim - 1))
    taps = [
        jnp.sum(window_slice(xp, u, geo, out_sizes)[..., None] * gm, axis=reduce_axes).reshape(-1)
        for u in window_offsets(geo.window)
    ]
    return jnp.stack(taps).reshape(*geo.window, 1, -1).astype(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# banded: one matmul per rule with the filter written as a banded (Toeplitz) matrix over a block of B outputs along
# the last spatial axis. Rows of the left factor are (n, outer output position i, block b); columns are (outer window
# offset u, input column j' inside the block's span, c):
#
#     A[(n, i, b), (u, j', c)] = x_pad[n, S*i + D*u, S*B*b + j', c]          j' < L = S*(B-1) + D*(K-1) + 1
#     T[(u, j', c), (j, f)]    = w[u, k, c, f]  where j' = S*j + D*k, else 0  j < B
#     z[(n, i, b), (j, f)]     = (A T)[(n, i, b), (j, f)]                      = z[n, i, B*b + j, f]
#
# B = 1 is im2col (every window a row). Larger B reads each input column once per block instead of K times, and
# multiplies L/K times as many terms (zeros of the band) in a larger, better-shaped matmul. For the small channel
# counts of first layers Eigen's direct convolution runs at a few GFLOP/s and the band wins (README, Performance).


class _Band(NamedTuple):
    """Static block plan: `block` outputs per block, `blocks` blocks, each spanning `span` input columns; `geo` slices
    the blocks: the outer axes as in the convolution, the last axis `blocks` offsets S*B apart with the high padding
    extended so that every block is whole."""

    block: int
    blocks: int
    span: int
    geo: Geometry


BAND_MAX_INFLATION = 3.0


def _band_span(geo: Geometry, outputs: int) -> int:
    """L = S*(B-1) + D*(K-1) + 1: the input columns that `outputs` consecutive outputs of the last axis read."""
    return geo.stride[-1] * (outputs - 1) + geo.dilation[-1] * (geo.window[-1] - 1) + 1


def _band_block(geo: Geometry, out_last: int) -> int:
    """The largest divisor B of the last output size whose band multiplies at most BAND_MAX_INFLATION times the
    useful terms (L / K <= BAND_MAX_INFLATION); divisors leave no padded block."""
    fits = [b for b in range(1, out_last + 1)
            if out_last % b == 0 and _band_span(geo, b) <= BAND_MAX_INFLATION * geo.window[-1]]
    return max(fits, default=1)


def _band(geo: Geometry, in_sizes, block: int | None = None) -> _Band:
    out_last = geo.out_sizes(in_sizes)[-1]
    block = _band_block(geo, out_last) if block is None else block
    blocks = -(-out_last // block)
    lo, hi = geo.padding[-1]
    extra = max(0, _band_span(geo, blocks * block) - (in_sizes[-1] + lo + hi))  # filler outputs' columns
    block_geo = Geometry(geo.window[:-1] + (blocks,), geo.stride[:-1] + (1,),
                         geo.padding[:-1] + ((lo, hi + extra),), geo.dilation[:-1] + (geo.stride[-1] * block,))
    return _Band(block, blocks, _band_span(geo, block), block_geo)


def _band_rows(x, geo: Geometry, band: _Band):
    """A[(n, i, b), (u, j', c)]: for each block b and outer offset u one strided slice of the padded input."""
    out_sizes = geo.out_sizes(x.shape[1:-1])[:-1] + (band.span,)
    xp = pad_spatial(x, band.geo.padding)
    slices = [window_slice(xp, (*u, b), band.geo, out_sizes)
              for b in range(band.blocks) for u in window_offsets(geo.window[:-1])]
    a = jnp.stack(slices, axis=-3)  # (N, *O_outer, blocks * K_outer, span, C)
    return a.reshape(-1, len(slices) // band.blocks * band.span * x.shape[-1])


def _band_matrix(w, geo: Geometry, band: _Band):
    """T[(u, j', c), (j, f)] = w[u, k, c, f] at j' = S*j + D*k: the filter row shifted by S per output column."""
    s, d, k = geo.stride[-1], geo.dilation[-1], geo.window[-1]
    w_rows = w.reshape(-1, k, *w.shape[-2:])  # (K_outer, K, C_in, C_out)
    shifted = [lax.pad(w_rows, jnp.zeros((), w.dtype),
                       [(0, 0, 0), (s * j, band.span - s * j - d * (k - 1) - 1, d - 1), (0, 0, 0), (0, 0, 0)])
               for j in range(band.block)]
    return jnp.stack(shifted, axis=-2).reshape(-1, band.block * w.shape[-1])


def _g_blocks(g, band: _Band):
    """g as rows (n, i, b) x columns (j, f), zero outputs appended to fill the last block."""
    missing = band.blocks * band.block - g.shape[-2]
    if missing:
        g = lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0)] * (g.ndim - 2) + [(0, missing, 0), (0, 0, 0)])
    return g.reshape(-1, band.block * g.shape[-1])


def _banded_conv(x, w, geo: Geometry):
    """z = A T, the blocks laid side by side and the filler outputs of a last partial block cut."""
    band = _band(geo, x.shape[1:-1])
    out_sizes = geo.out_sizes(x.shape[1:-1])
    z = jnp.matmul(_band_rows(x, geo, band), _band_matrix(w, geo, band),
                   preferred_element_type=accumulation_dtype(x.dtype))
    z = z.reshape(x.shape[0], *out_sizes[:-1], band.blocks * band.block, w.shape[-1])
    return z[..., : out_sizes[-1], :].astype(x.dtype)


def _banded_dw(x, g, spec: ConvSpec, w_shape):
    """dT = A^T g, then dW[u, k, c, f] = sum_j dT[(u, S*j + D*k, c), (j, f)]: each output column's band summed."""
    geo = spec.geo
    band = _band(geo, x.shape[1:-1])
    s, d, k = geo.stride[-1], geo.dilation[-1], geo.window[-1]
    dt = lax.dot_general(_band_rows(x, geo, band), _g_blocks(g, band), (((0,), (0,)), ((), ())),
                         preferred_element_type=accumulation_dtype(x.dtype))
    dt = dt.reshape(-1, band.span, w_shape[-2], band.block, w_shape[-1])
    dw = None
    for j in range(band.block):
        piece = lax.slice_in_dim(dt[:, :, :, j, :], s * j, s * j + d * (k - 1) + 1, stride=d, axis=1)
        dw = piece if dw is None else dw + piece
    return dw.reshape(w_shape).astype(x.dtype)


def _banded_dx(g, w, spec: ConvSpec, in_sizes):
    """dA = g T^T, then each (block, outer offset) piece is placed back at its window position ("+=" over overlaps)
    and the padding cropped."""
    geo = spec.geo
    band = _band(geo, in_sizes)
    k_outer = math.prod(geo.window[:-1])
    da = lax.dot_general(_g_blocks(g, band), _band_matrix(w, geo, band), (((1,), (1,)), ((), ())),
                         preferred_element_type=accumulation_dtype(g.dtype))
    da = da.reshape(*g.shape[:-2], band.blocks, k_outer, band.span, w.shape[-2])

    def piece(t, offset):
        *u, b = offset
        return da[..., b, np.ravel_multi_index(u, geo.window[:-1]) if u else 0, :, :]

    return place_windows(piece, band.geo, in_sizes).astype(g.dtype)


# ----------------------------------------------------------------------------------------------------------------
# tap matmuls: one matmul per window offset u, on (M, C) views (M = N * prod(out)); nothing is multiplied by the
# zeros that the canonical backward inserts (stride) or pads (K - 1 border).


def _rows(v):
    """(N, *spatial, C) -> (N * prod(spatial), C): a free reshape."""
    return v.reshape(-1, v.shape[-1])


def _tap_matmuls_conv(x, w, geo: Geometry):
    """z[n, i, f] = sum_u sum_c x_pad[n, S*i + D*u, c] * w[u, c, f]: one (M, C_in) x (C_in, C_out) matmul per tap."""
    acc = accumulation_dtype(x.dtype)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    xp = pad_spatial(x, geo.padding)
    z = None
    for u in window_offsets(geo.window):
        tap = jnp.matmul(_rows(window_slice(xp, u, geo, out_sizes)), w[u], preferred_element_type=acc)
        z = tap if z is None else z + tap
    return z.reshape(x.shape[0], *out_sizes, w.shape[-1]).astype(x.dtype)


def _cpu_only(fast, canonical, *operands):
    """The table's banded, tap-matmul and batch-chunk choices are measured on CPU only: on other backends the
    canonical form stays, the one XLA maps to vendor kernels (cuDNN). A forced path is taken everywhere.
    `lax.platform_dependent` lowers just the branch of the platform being compiled for."""
    if _FORCED[0] is not None:
        return fast(*operands)
    return lax.platform_dependent(*operands, cpu=fast, default=canonical)


def _tap_matmuls_dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, S*i + D*u, c] += sum_f g[n, i, f] * w[u, c, f]: each tap's (M, C_out) x (C_out, C_in) product placed
    at its offset (interior padding for S), summed, the forward padding cropped."""
    acc = accumulation_dtype(g.dtype)
    g_rows = _rows(g)

    def contribution(t, u):
        d = lax.dot_general(g_rows, w[u], (((1,), (1,)), ((), ())), preferred_element_type=acc)
        return d.reshape(*g.shape[:-1], w.shape[-2])

    return place_windows(contribution, spec.geo, in_sizes).astype(g.dtype)


def _tap_matmuls_dw(x, g, spec: ConvSpec, w_shape):
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


# ----------------------------------------------------------------------------------------------------------------
# the custom_vjp primitives


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv_p(x, w, b, spec: ConvSpec):
    return _with_bias(_conv(x, w, spec), b)


def _conv_p_fwd(x, w, b, spec):
    return _conv_p(x, w, b, spec), (x, w, b)


def _conv_p_bwd(spec, res, g):
    x, w, b = res
    dx = _conv_dx(g, w, spec, x.shape[1:-1])
    dw = _conv_dw(x, g, spec, w.shape)
    db = None if b is None else jnp.sum(g, axis=tuple(range(g.ndim - 1))).astype(b.dtype)
    return dx, dw, db


_conv_p.defvjp(_conv_p_fwd, _conv_p_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv_transpose_p(y, w, b, spec: ConvSpec, out_sizes):
    return _with_bias(_conv_dx(y, w, spec, out_sizes), b)


def _conv_transpose_p_fwd(y, w, b, spec, out_sizes):
    return _conv_transpose_p(y, w, b, spec, out_sizes), (y, w, b)


def _conv_transpose_p_bwd(spec, out_sizes, res, g):
    """The transposed conv is the conv's dX map, so its adjoint is the strided forward conv itself:

    dY[n, i, f] = sum_{u, c} g_pad[n, S*i + D*u, c] * w[u, c, f]      (the forward conv applied to g)
    dW[u, c, f] = sum_{n, i} y[n, i, f] * g_pad[n, S*i + D*u, c]      (the conv's dW with input and g exchanged)
    """
    y, w, b = res
    dy = _conv(g, w, spec)
    dw = _conv_dw(g, y, spec, w.shape)
    db = None if b is None else jnp.sum(g, axis=tuple(range(g.ndim - 1))).astype(b.dtype)
    return dy, dw, db


_conv_transpose_p.defvjp(_conv_transpose_p_fwd, _conv_transpose_p_bwd)


# ----------------------------------------------------------------------------------------------------------------
# public API: argument checking and thin N-d wrappers

_LAYOUTS = {1: ("NWC", "WIO"), 2: ("NHWC", "HWIO")}


def _check_conv_args(name, nd, x, w, b, groups):
    act, fil = _LAYOUTS[nd]
    check_rank(name, "x", x.shape, nd + 2, act)
    check_rank(name, "w", w.shape, nd + 2, fil)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{name}: groups must be an int >= 1, got {groups!r}")
    cin, cout = x.shape[-1], w.shape[-1]
    if cin % groups or cout % groups:
        raise ValueError(
            f"{name}: groups={groups} must divide both the input channels (x shape {tuple(x.shape)}) "
            f"and the output channels (w shape {tuple(w.shape)})"
        )
    if w.shape[-2] * groups != cin:
        raise ValueError(
            f"{name}: channel mismatch: x has {cin} channels (shape {tuple(x.shape)}) but w expects "
            f"{w.shape[-2]} x groups={groups} = {w.shape[-2] * groups} (w shape {tuple(w.shape)})"
        )
    _check_bias(name, b, cout, w.shape)


def _check_bias(name, b, channels, w_shape):
    if b is not None and tuple(b.shape) != (channels,):
        raise ValueError(f"{name}: b must have shape ({channels},) to match w shape {tuple(w_shape)}, "
                         f"got {tuple(b.shape)}")


def _cast(name, *arrays):
    """jnp arrays of one common floating dtype (None stays None)."""
    arrays = [None if a is None else jnp.asarray(a) for a in arrays]
    dtype = float_dtype(name, *arrays)
    return [None if a is None else a.astype(dtype) for a in arrays]


def _conv_nd(x, w, b, *, nd, stride, padding, dilation, groups, name):
    x, w, b = _cast(name, x, w, b)
    _check_conv_args(name, nd, x, w, b, groups)
    geo = make_geometry(name, x.shape, w.shape[:-2], stride, padding, dilation, window_name="kernel")
    return _conv_p(x, w, b, ConvSpec(geo, groups))


@reverse_mode_only("conv2d")
def conv2d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1):
    """2-D convolution (correlation form) with a hand-written VJP.

    Args:
      x: (N, H, W, C_in) activations.
      w: (K_h, K_w, C_in / groups, C_out) filter (HWIO).
      b: optional (C_out,) bias.
      stride, dilation: int or (int, int), >= 1.
      padding: "VALID", "SAME" (output ceil(N/S); P_lo = floor(P/2), P_hi = P - P_lo), an int, two ints, or two
        (lo, hi) pairs.
      groups: grouped convolution; groups = C_in is depth-wise.

    Returns:
      (N, H_out, W_out, C_out) with H_out = floor((H + P_lo + P_hi - K_eff) / S) + 1 and K_eff = D*(K-1)+1.

    Gradients (lecture 004): dX = upsample g by S, zero-pad by K_eff-1, convolve with the flipped, channel-swapped
    filter, crop the forward padding; dW = correlation of the padded input with the upsampled g; db = sum of g.
    """
    return _conv_nd(x, w, b, nd=2, stride=stride, padding=padding, dilation=dilation, groups=groups, name="conv2d")


@reverse_mode_only("conv1d")
def conv1d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1):
    """1-D convolution (time-delay network layer): x (N, W, C_in), w (K, C_in / groups, C_out); see `conv2d`."""
    return _conv_nd(x, w, b, nd=1, stride=stride, padding=padding, dilation=dilation, groups=groups, name="conv1d")


def transpose_geometry(name, y_shape, window, stride, padding, dilation, output_padding):
    """Output sizes, and the geometry of the conv that the transposed conv is the adjoint of.

    The output size N solves the conv's size rule for its input: N = (O-1)*S + K_eff - P_lo - P_hi + output_padding
    ("VALID", ints, pairs), or N = O*S for "SAME" (and then the conv's own "SAME" padding for N is used).
    """
    nd = len(y_shape) - 2
    window = as_tuple(window, nd, f"{name}: kernel")
    stride = as_tuple(stride, nd, f"{name}: stride")
    dilation = as_tuple(dilation, nd, f"{name}: dilation")
    extra = as_tuple(output_padding, nd, f"{name}: output_padding", minimum=0)
    if any(e >= s for e, s in zip(extra, stride)):
        raise ValueError(f"{name}: output_padding must be < stride, got output_padding={output_padding!r} "
                         f"with stride {stride}")
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    if isinstance(padding, str) and padding.upper() == "SAME":
        if any(extra):
            raise ValueError(f'{name}: output_padding must be 0 with padding="SAME" (the output size is then O*S)')
        out_sizes = tuple(o * s for o, s in zip(y_shape[1:-1], stride))
    else:
        try:
            pads = resolve_padding(padding, y_shape[1:-1], k_eff, stride)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        out_sizes = tuple((o - 1) * s + ke - lo - hi + e
                          for o, s, ke, (lo, hi), e in zip(y_shape[1:-1], stride, k_eff, pads, extra))
        if any(n < 1 for n in out_sizes):
            raise ValueError(f"{name}: padding {padding!r} crops the whole output (y shape {tuple(y_shape)}, "
                             f"kernel {window}, output sizes {out_sizes})")
    geo = make_geometry(name, (1, *out_sizes, 1), window, stride, padding, dilation, window_name="kernel")
    return out_sizes, geo


def _conv_transpose_nd(y, w, b, *, nd, stride, padding, dilation, output_padding, name):
    y, w, b = _cast(name, y, w, b)
    act, fil = _LAYOUTS[nd]
    check_rank(name, "y", y.shape, nd + 2, act)
    check_rank(name, "w", w.shape, nd + 2, fil)
    if y.shape[-1] != w.shape[-1]:
        raise ValueError(
            f"{name}: channel mismatch: y has {y.shape[-1]} channels (shape {tuple(y.shape)}) but w, the filter of "
            f"the conv this transposes, produces {w.shape[-1]} (w shape {tuple(w.shape)} = (*K, C_out, C_in))"
        )
    _check_bias(name, b, w.shape[-2], w.shape)
    out_sizes, geo = transpose_geometry(name, y.shape, w.shape[:-2], stride, padding, dilation, output_padding)
    return _conv_transpose_p(y, w, b, ConvSpec(geo, 1), out_sizes)


@reverse_mode_only("conv_transpose2d")
def conv_transpose2d(y, w, b=None, *, stride=1, padding="VALID", dilation=1, output_padding=0):
    """2-D transposed (expanding) convolution: the adjoint of `conv2d(., w, stride, padding, dilation)`.

    Args:
      y: (N, H, W, C_in) activations.
      w: (K_h, K_w, C_out, C_in): the very filter a conv2d from C_out to C_in channels would use.
      b: optional (C_out,) bias.
      output_padding: extra rows at the high end, 0 <= output_padding < stride; it picks among the input sizes
        that the strided conv maps to the same output size.

    Returns:
      (N, H_out, W_out, C_out) with H_out = (H-1)*S + K_eff - P_lo - P_hi + output_padding, or H*S for "SAME".
      conv_transpose2d(g, w, ...) equals the VJP of conv2d(., w, ...) at an input of size H_out, applied to g.

    Gradients (lecture 004, "transposed convolution"): the forward is the conv's dX expression (insert S-1 zeros,
    convolve with the flipped filter); dY is the strided forward conv of g; dW is the conv's dW expression with the
    input and g exchanged; db = sum of g.
    """
    return _conv_transpose_nd(y, w, b, nd=2, stride=stride, padding=padding, dilation=dilation,
                              output_padding=output_padding, name="conv_transpose2d")


@reverse_mode_only("conv_transpose1d")
def conv_transpose1d(y, w, b=None, *, stride=1, padding="VALID", dilation=1, output_padding=0):
    """1-D transposed convolution: y (N, W, C_in), w (K, C_out, C_in); see `conv_transpose2d`."""
    return _conv_transpose_nd(y, w, b, nd=1, stride=stride, padding=padding, dilation=dilation,
                              output_padding=output_padding, name="conv_transpose1d")
