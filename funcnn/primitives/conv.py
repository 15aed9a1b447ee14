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
    | groups == 1, C_in <= 3 (first layers)   | im2col: the windows as one (K^2 C_in, M) matrix, and  |
    |                                         | one matmul each for forward, dW and dX                |
    | everything else                         | forward: lax.conv_general_dilated (canonical form)    |
    |                                         | dX: "tap matmuls" when the canonical dX would spend   |
    |                                         |   at least half its multiplies on inserted or padded  |
    |                                         |   zeros (stride > 1, or K-1 padding around a small g),|
    |                                         |   canonical otherwise                                 |
    |                                         | dW: "tap matmuls" when stride > 1, else canonical     |
    |                                         | (tap matmuls on CPU only; other backends keep the     |
    |                                         |  canonical form, which XLA maps to cuDNN)             |

"Tap matmuls" are one matmul per window offset u: dX places g w[u]^T at S*i + D*u (the lecture's "+=", no zeros
multiplied), dW[u] = x_pad[S*i + D*u]^T g. On CPU, XLA's canonical dX (lhs_dilation = S) and dW (rhs_dilation = S)
ran 2-10x slower than that on ResNet-20's stride-2 layers, measured rule by rule (README, Performance). For stride 1
the canonical forms win or tie; LeNet's conv2 dX (49% zeros) measured faster canonical inside the training step.

`benchmarks/primitives.py` measures each choice; `force_algorithm(name)` overrides the table for every rule
(tests run every path).
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
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


IM2COL_MAX_CHANNELS = 3
ZERO_FRACTION_FOR_TAPS = 0.5
ALGORITHMS = ("taps", "im2col", "tap_matmuls", "canonical")
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
        if wanted in ("im2col", "tap_matmuls") and spec.groups != 1:
            return "canonical"
        return wanted
    if depthwise:
        return "taps"
    if spec.groups != 1:
        return "canonical"
    if w_shape[-2] <= IM2COL_MAX_CHANNELS:
        return "im2col"
    strided = any(s > 1 for s in spec.geo.stride)
    if rule == "dw" and strided:
        return "tap_matmuls"
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
    if algorithm == "im2col":
        return _im2col_conv(x, w, spec.geo)
    if algorithm == "tap_matmuls":
        return _tap_matmuls_conv(x, w, spec.geo)
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
    if algorithm == "im2col":
        return _im2col_dx(g, w, spec.geo, in_sizes)
    if algorithm == "tap_matmuls":
        return _cpu_only(_tap_matmuls_dx, _canonical_dx, g, w, spec, in_sizes)
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
    if algorithm == "im2col":
        return _im2col_dw(x, g, spec.geo, w_shape)
    if algorithm == "tap_matmuls":
        return _cpu_only(_tap_matmuls_dw, _canonical_dw, x, g, spec, w_shape)
    return _canonical_dw(x, g, spec, w_shape)


def _canonical_dw(x, g, spec: ConvSpec, w_shape):
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
    return dw.astype(x.dtype)


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
# im2col for few input channels (a first layer): the windows as a (K^2 C_in, M) matrix, M = N * prod(out), one
# matmul per rule. Eigen's convolutions run far below the matmul peak there (LeNet's conv1: about 6 GFLOP/s).


def _columns(x, geo: Geometry, out_sizes):
    """cols[(u, c), (n, i)] = x_pad[n, S*i + D*u, c]: every window as a column, taps row-major then channels."""
    xp = pad_spatial(x, geo.padding)
    taps = jnp.stack([window_slice(xp, u, geo, out_sizes) for u in window_offsets(geo.window)])  # (T, N, *O, C)
    taps = jnp.moveaxis(taps, -1, 1)  # (T, C, N, *O): a free reshape when C == 1
    return taps.reshape(taps.shape[0] * taps.shape[1], -1)


def _im2col_conv(x, w, geo: Geometry):
    """z[(n, i), f] = sum_{(u, c)} cols[(u, c), (n, i)] * w[(u, c), f]."""
    acc = accumulation_dtype(x.dtype)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    cols = _columns(x, geo, out_sizes)
    z = lax.dot_general(cols, w.reshape(-1, w.shape[-1]), (((0,), (0,)), ((), ())), preferred_element_type=acc)
    return z.reshape(x.shape[0], *out_sizes, w.shape[-1]).astype(x.dtype)


def _im2col_dw(x, g, geo: Geometry, w_shape):
    """dW[(u, c), f] = sum_{(n, i)} cols[(u, c), (n, i)] * g[(n, i), f]."""
    cols = _columns(x, geo, g.shape[1:-1])
    dw = jnp.matmul(cols, g.reshape(-1, g.shape[-1]), preferred_element_type=accumulation_dtype(x.dtype))
    return dw.reshape(w_shape).astype(x.dtype)


def _im2col_dx(g, w, geo: Geometry, in_sizes):
    """dcols = w g^T, then each tap's row block is placed back at S*i + D*u ("+=" over overlaps), padding cropped."""
    acc = accumulation_dtype(g.dtype)
    dcols = jnp.matmul(w.reshape(-1, w.shape[-1]), g.reshape(-1, g.shape[-1]).T, preferred_element_type=acc)
    dcols = jnp.moveaxis(dcols.reshape(-1, w.shape[-2], *g.shape[:-1]), 1, -1)  # (T, N, *O, C)
    return place_windows(lambda t, u: dcols[t], geo, in_sizes).astype(g.dtype)


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


def _cpu_only(tap_rule, canonical_rule, a, b, spec: ConvSpec, size):
    """The table's tap-matmul choice is measured on CPU only: on other backends the canonical form stays, the one XLA
    maps to vendor kernels (cuDNN). A forced path is taken everywhere. `lax.platform_dependent` lowers just the
    branch of the platform being compiled for."""
    if _FORCED[0] == "tap_matmuls":
        return tap_rule(a, b, spec, size)
    return lax.platform_dependent(
        a, b, cpu=lambda a, b: tap_rule(a, b, spec, size), default=lambda a, b: canonical_rule(a, b, spec, size)
    )


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
