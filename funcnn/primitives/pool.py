"""Pooling family: max_pool, avg_pool, lp_pool (each with ceil_mode), adaptive_avg_pool, adaptive_max_pool and
global_avg_pool, in 1-D (N, W, C) and 2-D (N, H, W, C).

Pooling acts on each channel separately. The window offset u runs over the |W| = prod(K) positions of a window
(K^2 in the lecture's square 2-D case), output position i over the output:

    max:    y[n, i, c] = max_u x_pad[n, S*i + u, c],   P[n, i, c] = argmax (first in row-major window order)
    mean:   y[n, i, c] = (1/|W|) sum_u x_pad[n, S*i + u, c]
    p-norm: y[n, i, c] = ((1/|W|) sum_u |x_pad[n, S*i + u, c]|^p)^(1/p)

Gradients (lecture 004, "Derivative of max pooling", "Derivative of mean pooling"), "+=" over overlapping windows:

    max:    dx[P[n, i, c]] += g[n, i, c]               exactly one input per window, the first maximum
    mean:   dx[n, S*i + u, c] += g[n, i, c] / |W|      |W| = prod(K), or the count of real inputs
                                                       (count_include_pad=False)
    p-norm: dx = sign(x) |x|^(p-1) / |W| * sum over windows of g * y^(1-p)

All backward rules place values with interior padding (`place_windows`) instead of a scatter: no index arrays, and
deterministic on every backend.
"""

from __future__ import annotations

import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .checks import accumulation_dtype, as_float, check_nonempty_spatial, check_rank, reverse_mode_only
from .geometry import Geometry, as_tuple, make_geometry
from .windows import pad_spatial, place_windows, spread_windows, window_offsets, window_slice

_LAYOUT = {1: "NWC", 2: "NHWC"}


def _reduce_window(x, init, op, geo: Geometry):
    """lax.reduce_window with a NumPy scalar init, so that JAX emits its differentiable reduce_window_max / _sum
    (a traced init gives the generic reduce_window, which JAX cannot differentiate: `verify.primal_of` needs it)."""
    return lax.reduce_window(
        x,
        np.asarray(init, x.dtype),
        op,
        (1, *geo.window, 1),
        (1, *geo.stride, 1),
        ((0, 0), *geo.padding, (0, 0)),
    )


def _window_size(geo: Geometry) -> int:
    return int(np.prod(geo.window))


# ----------------------------------------------------------------------------------------------------------------
# max pooling


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool_p(x, geo: Geometry):
    return _reduce_window(x, -jnp.inf, lax.max, geo)


def _max_pool_p_fwd(x, geo):
    return _max_pool_p(x, geo), x


def _max_pool_p_bwd(geo, x, g):
    """dx[P[n, i, c]] += g[n, i, c], P the first maximum of each window in row-major order.

    Lecture: "keep track of which position had the highest value". One pass over the window offsets keeps the
    running maximum and its offset index, replacing it only on a strictly greater value (so ties keep the first);
    a second pass places each window's g at its winning offset with interior padding, so overlapping windows
    accumulate ("+=") without a scatter. Exactly one input per window receives g. Only comparisons among the
    values of this pass decide the winner: no equality test against the forward output, which XLA may have
    computed with different rounding (fused and recomputed differently, e.g. after BatchNorm under sharding).
    """
    xp = pad_spatial(x, geo.padding, -jnp.inf)
    out_sizes = g.shape[1:-1]
    offsets = list(window_offsets(geo.window))
    best = window_slice(xp, offsets[0], geo, out_sizes)
    winner = jnp.zeros(g.shape, jnp.int32)
    for t, u in enumerate(offsets[1:], start=1):
        candidate = window_slice(xp, u, geo, out_sizes)
        better = candidate > best
        best = jnp.where(better, candidate, best)
        winner = jnp.where(better, t, winner)
    zero = jnp.zeros((), g.dtype)
    return (place_windows(lambda t, u: jnp.where(winner == t, g, zero), geo, x.shape[1:-1]),)


_max_pool_p.defvjp(_max_pool_p_fwd, _max_pool_p_bwd)


# ----------------------------------------------------------------------------------------------------------------
# mean pooling


def _window_counts(geo: Geometry, in_sizes, out_sizes, include_pad: bool, overhang=None):
    """|W| per output position: the window's positions inside the padded input (prod(K), except for the last
    windows of ceil mode, which hang over its end by `overhang`), or, with include_pad=False, its real (unpadded)
    inputs. Computed with NumPy at trace time; the count separates over the spatial axes."""
    overhang = overhang or (0,) * len(in_sizes)
    if include_pad and not any(overhang):
        return float(_window_size(geo))
    counts = np.ones((), np.float64)
    for k, s, (lo, hi), n, o, extra in zip(geo.window, geo.stride, geo.padding, in_sizes, out_sizes, overhang):
        first, last = (0, n + lo + hi - extra) if include_pad else (lo, lo + n)
        starts = np.arange(o) * s
        counts = np.multiply.outer(counts, np.clip(starts + k, first, last) - np.clip(starts, first, last))
    return counts[..., None]  # broadcast over channels


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _avg_pool_p(x, geo: Geometry, include_pad: bool, overhang: tuple):
    acc = accumulation_dtype(x.dtype)
    total = _reduce_window(x.astype(acc), 0.0, lax.add, geo)
    counts = _window_counts(geo, x.shape[1:-1], total.shape[1:-1], include_pad, overhang)
    return (total / jnp.asarray(counts, acc)).astype(x.dtype)


def _avg_pool_p_fwd(x, geo, include_pad, overhang):
    return _avg_pool_p(x, geo, include_pad, overhang), x.shape


def _avg_pool_p_bwd(geo, include_pad, overhang, x_shape, g):
    """dx[n, S*i + u, c] += g[n, i, c] / |W|: the mean's derivative spread evenly over its window."""
    counts = _window_counts(geo, x_shape[1:-1], g.shape[1:-1], include_pad, overhang)
    return (spread_windows(g / jnp.asarray(counts, g.dtype), geo, x_shape[1:-1]),)


_avg_pool_p.defvjp(_avg_pool_p_fwd, _avg_pool_p_bwd)


# ----------------------------------------------------------------------------------------------------------------
# p-norm pooling


def _abs_windows(x, geo: Geometry):
    """|x| (in the accumulation dtype, zero-padded) at every window offset: one slice per offset, aligned with y."""
    ax = pad_spatial(jnp.abs(x.astype(accumulation_dtype(x.dtype))), geo.padding)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    return [window_slice(ax, u, geo, out_sizes) for u in window_offsets(geo.window)]


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _lp_pool_p(x, geo: Geometry, p: float, overhang: tuple):
    """y = m * ((1/|W|) sum_u (|x_u| / m)^p)^(1/p), m = max_u |x_u|: the power mean scaled by the window's largest
    entry (as log-sum-exp is by the max), so |x|^p neither overflows nor underflows for large p or |x|."""
    slices = _abs_windows(x, geo)
    m = functools.reduce(jnp.maximum, slices)
    m_safe = jnp.where(m > 0, m, 1.0)
    counts = jnp.asarray(_window_counts(geo, x.shape[1:-1], m.shape[1:-1], True, overhang), m.dtype)
    mean_p = sum((a / m_safe) ** p for a in slices) / counts
    return (m * mean_p ** (1.0 / p)).astype(x.dtype)


def _lp_pool_p_fwd(x, geo, p, overhang):
    y = _lp_pool_p(x, geo, p, overhang)
    return y, (x, y)


def _lp_pool_p_bwd(geo, p, overhang, res, g):
    """dx = sign(x) / |W| * sum over the windows containing x of g * (|x| / y)^(p-1).

    (|x| / y)^(p-1) is the formula's |x|^(p-1) y^(1-p), written as one ratio (at most |W|^(1/p)) so that it neither
    overflows nor underflows. y = 0 (a window of zeros) and x = 0 are kinks for p <= 1 and poles of the formula for
    p < 1; funcnn takes the derivative there as 0, the subgradient of least norm. The `where`s guard both sides so
    that second derivatives stay finite too.
    """
    x, y = res
    acc = accumulation_dtype(x.dtype)
    y, g = y.astype(acc), g.astype(acc)
    y_pos = y > 0
    y_safe = jnp.where(y_pos, y, 1.0)
    slices = _abs_windows(x, geo)
    counts = jnp.asarray(_window_counts(geo, x.shape[1:-1], y.shape[1:-1], True, overhang), acc)

    def per_window(t, u):
        a = slices[t]
        ratio = jnp.where(a > 0, a, 1.0) / y_safe
        return jnp.where(y_pos & (a > 0), g * ratio ** (p - 1.0), 0.0) / counts

    spread = place_windows(per_window, geo, x.shape[1:-1])
    return ((spread * jnp.sign(x.astype(acc))).astype(x.dtype),)


_lp_pool_p.defvjp(_lp_pool_p_fwd, _lp_pool_p_bwd)


# ----------------------------------------------------------------------------------------------------------------
# adaptive pooling: the output size is given; window i of an axis of size N covers [floor(i N / O), ceil((i+1) N / O))
# (PyTorch's rule; windows may differ in size by one and overlap by one). The 2-D pools are two 1-D passes, along
# W and then H: the mean and the maximum separate, and the first maximum of the W pass within the first row holding
# the maximum of the H pass is the first maximum in row-major order.


def adaptive_windows(n: int, out: int) -> tuple:
    """((start, end), ...) of the `out` adaptive windows over an axis of size n."""
    return tuple((i * n // out, -(-(i + 1) * n // out)) for i in range(out))


def _axis_window(x, axis, start, end):
    return lax.slice_in_dim(x, start, end, axis=axis)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _adaptive_mean_p(x, axis: int, windows: tuple):
    acc = accumulation_dtype(x.dtype)
    parts = [jnp.mean(_axis_window(x, axis, a, b).astype(acc), axis=axis, keepdims=True) for a, b in windows]
    return jnp.concatenate(parts, axis=axis).astype(x.dtype)


def _adaptive_mean_fwd(x, axis, windows):
    return _adaptive_mean_p(x, axis, windows), x.shape


def _adaptive_mean_bwd(axis, windows, x_shape, g):
    """dx[j] += g[i] / |W_i| for every window i containing j: each window's share broadcast over it, padded into
    place and summed (no scatter)."""
    n = x_shape[axis]
    total = None
    for i, (a, b) in enumerate(windows):
        share = _axis_window(g, axis, i, i + 1) / (b - a)
        shape = list(g.shape)
        shape[axis] = b - a
        piece = jnp.pad(jnp.broadcast_to(share, shape), [(0, 0)] * axis + [(a, n - b)] + [(0, 0)] * (g.ndim - axis - 1))
        total = piece if total is None else total + piece
    return (total,)


_adaptive_mean_p.defvjp(_adaptive_mean_fwd, _adaptive_mean_bwd)


def _window_max(x, axis, a, b):
    """The maximum over x[a:b] along `axis` and the offset of its first occurrence (strictly greater replaces)."""
    best = _axis_window(x, axis, a, a + 1)
    winner = jnp.zeros(best.shape, jnp.int32)
    for t in range(1, b - a):
        candidate = _axis_window(x, axis, a + t, a + t + 1)
        better = candidate > best
        best, winner = jnp.where(better, candidate, best), jnp.where(better, t, winner)
    return best, winner


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _adaptive_max_p(x, axis: int, windows: tuple):
    return jnp.concatenate([_window_max(x, axis, a, b)[0] for a, b in windows], axis=axis)


def _adaptive_max_fwd(x, axis, windows):
    return _adaptive_max_p(x, axis, windows), x


def _adaptive_max_bwd(axis, windows, x, g):
    """dx[P_i] += g[i], P_i the first maximum of window i: g placed at its winner, padded into place and summed."""
    n = x.shape[axis]
    total = None
    for i, (a, b) in enumerate(windows):
        _, winner = _window_max(x, axis, a, b)
        gi = _axis_window(g, axis, i, i + 1)
        offsets = lax.broadcasted_iota(jnp.int32, [b - a if d == axis else 1 for d in range(g.ndim)], axis)
        piece = jnp.where(offsets == winner, gi, jnp.zeros((), g.dtype))
        piece = jnp.pad(piece, [(0, 0)] * axis + [(a, n - b)] + [(0, 0)] * (g.ndim - axis - 1))
        total = piece if total is None else total + piece
    return (total,)


_adaptive_max_p.defvjp(_adaptive_max_fwd, _adaptive_max_bwd)


# ----------------------------------------------------------------------------------------------------------------
# global average pooling


@jax.custom_vjp
def _global_avg_pool_p(x):
    acc = accumulation_dtype(x.dtype)
    return jnp.mean(x.astype(acc), axis=tuple(range(1, x.ndim - 1))).astype(x.dtype)


def _global_avg_pool_p_fwd(x):
    return _global_avg_pool_p(x), x.shape


def _global_avg_pool_p_bwd(x_shape, g):
    """dx[n, *s, c] = g[n, c] / prod(spatial sizes)."""
    spatial = int(np.prod(x_shape[1:-1]))
    expanded = (g / spatial).reshape(g.shape[0], *(1,) * (len(x_shape) - 2), g.shape[-1])
    return (jnp.broadcast_to(expanded, x_shape),)


_global_avg_pool_p.defvjp(_global_avg_pool_p_fwd, _global_avg_pool_p_bwd)


# ----------------------------------------------------------------------------------------------------------------
# public API


def pool_geometry(name, x_shape, window, stride=None, padding="VALID", ceil_mode=False):
    """The window geometry and, in ceil mode, how far the last windows hang over the padded input's end.

    Ceil mode (PyTorch's rule): out = ceil((N + P_lo + P_hi - K) / S) + 1, less one when the last window would start
    in the high padding; that window is padded further at the end (-inf for max, nothing counted for mean and p-norm).
    Public: the pooling layers size their outputs with it (`geo.out_sizes`).
    """
    nd = len(x_shape) - 2
    check_nonempty_spatial(name, "x", x_shape)
    stride = window if stride is None else stride
    geo = make_geometry(name, x_shape, window, stride, padding, 1)
    for axis, ((lo, hi), k) in enumerate(zip(geo.padding, geo.window)):
        if lo >= k or hi >= k:
            raise ValueError(
                f"{name}: padding {geo.padding} must be smaller than the window {geo.window} on every side "
                f"(spatial axis {axis}), or some windows would hold padding only (x shape {tuple(x_shape)})"
            )
    if not isinstance(ceil_mode, bool):
        raise ValueError(f"{name}: ceil_mode must be True or False, got {ceil_mode!r}")
    overhang = [0] * nd
    if ceil_mode:
        pads = list(geo.padding)
        for axis, (n, (lo, hi), k, s) in enumerate(zip(x_shape[1:-1], geo.padding, geo.window, geo.stride)):
            out = -(-(n + lo + hi - k) // s) + 1
            if (out - 1) * s >= n + lo:  # the last window must start inside the input or the low padding
                out -= 1
            overhang[axis] = max(0, (out - 1) * s + k - (n + lo + hi))
            pads[axis] = (lo, hi + overhang[axis])
        geo = geo._replace(padding=tuple(pads))
    return geo, tuple(overhang)


def _pool_geometry(name, x, nd, window, stride, padding, ceil_mode=False):
    check_rank(name, "x", x.shape, nd + 2, _LAYOUT[nd])
    return pool_geometry(name, x.shape, window, stride, padding, ceil_mode)


def _max_pool(x, window, stride, padding, ceil_mode=False, *, nd, name):
    x = as_float(name, "x", x)
    return _max_pool_p(x, _pool_geometry(name, x, nd, window, stride, padding, ceil_mode)[0])


def _avg_pool(x, window, stride, padding, count_include_pad, ceil_mode=False, *, nd, name):
    x = as_float(name, "x", x)
    geo, overhang = _pool_geometry(name, x, nd, window, stride, padding, ceil_mode)
    return _avg_pool_p(x, geo, bool(count_include_pad), overhang)


def _lp_pool(x, p, window, stride, padding, ceil_mode=False, *, nd, name):
    x = as_float(name, "x", x)
    if isinstance(p, (bool, str, bytes)):
        raise ValueError(f"{name}: p must be a Python number (a static exponent), got {p!r}")
    try:
        p = float(p)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        raise ValueError(f"{name}: p must be a Python number (a static exponent), got {p!r}") from None
    if not p > 0 or not np.isfinite(p):
        raise ValueError(f"{name}: p must be a finite number > 0, got {p!r}")
    geo, overhang = _pool_geometry(name, x, nd, window, stride, padding, ceil_mode)
    return _lp_pool_p(x, geo, p, overhang)


def _global_avg_pool(x, *, nd, name):
    x = as_float(name, "x", x)
    check_rank(name, "x", x.shape, nd + 2, _LAYOUT[nd])
    check_nonempty_spatial(name, "x", x.shape)
    return _global_avg_pool_p(x)


def _adaptive(prim, x, output_size, *, nd, name):
    x = as_float(name, "x", x)
    check_rank(name, "x", x.shape, nd + 2, _LAYOUT[nd])
    check_nonempty_spatial(name, "x", x.shape)
    sizes = as_tuple(output_size, nd, f"{name}: output_size")
    for axis in range(nd, 0, -1):  # the last spatial axis first
        x = prim(x, axis, adaptive_windows(x.shape[axis], sizes[axis - 1]))
    return x


@reverse_mode_only("adaptive_avg_pool2d")
def adaptive_avg_pool2d(x, output_size):
    """Mean pooling to a given output size: x (N, H, W, C) -> (N, O_h, O_w, C), window i of an axis of size H
    covering [floor(i H / O), ceil((i+1) H / O)) (PyTorch's rule). output_size: an int or (O_h, O_w).
    Gradient: g[i] / |W_i| spread over window i, "+=" where windows overlap."""
    return _adaptive(_adaptive_mean_p, x, output_size, nd=2, name="adaptive_avg_pool2d")


@reverse_mode_only("adaptive_max_pool2d")
def adaptive_max_pool2d(x, output_size):
    """Max pooling to a given output size (windows as in adaptive_avg_pool2d). Gradient: g to the first maximum of
    each window in row-major order, "+=" where windows overlap."""
    return _adaptive(_adaptive_max_p, x, output_size, nd=2, name="adaptive_max_pool2d")


@reverse_mode_only("adaptive_avg_pool1d")
def adaptive_avg_pool1d(x, output_size):
    """1-D adaptive mean pooling over (N, W, C); see `adaptive_avg_pool2d`."""
    return _adaptive(_adaptive_mean_p, x, output_size, nd=1, name="adaptive_avg_pool1d")


@reverse_mode_only("adaptive_max_pool1d")
def adaptive_max_pool1d(x, output_size):
    """1-D adaptive max pooling over (N, W, C); see `adaptive_max_pool2d`."""
    return _adaptive(_adaptive_max_p, x, output_size, nd=1, name="adaptive_max_pool1d")


@reverse_mode_only("max_pool2d")
def max_pool2d(x, window, stride=None, padding="VALID", ceil_mode=False):
    """2-D max pooling: x (N, H, W, C) -> (N, H_out, W_out, C), H_out = floor((H + P_lo + P_hi - K) / S) + 1
    (ceil instead of floor with ceil_mode=True, PyTorch's rule: a last window that starts in the high padding is
    dropped).

    `stride` defaults to `window`; padded positions hold -inf and never win. Gradient (lecture 004): each g goes to
    the argmax of its window, "+=" where windows overlap; on ties exactly one input per window receives it, the first
    in row-major window order. NaN inputs propagate to y and receive no gradient.
    """
    return _max_pool(x, window, stride, padding, ceil_mode, nd=2, name="max_pool2d")


@reverse_mode_only("avg_pool2d")
def avg_pool2d(x, window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False):
    """2-D mean pooling: y = (1/|W|) sum over the window, |W| = K_h K_w or, with count_include_pad=False, the number
    of real (unpadded) inputs in the window. With ceil_mode=True the last windows may hang over the padded input's end
    (see max_pool2d); what hangs over is not counted (PyTorch's rule). Gradient (lecture 004): g/|W| spread over the
    window, "+=" over overlaps."""
    return _avg_pool(x, window, stride, padding, count_include_pad, ceil_mode, nd=2, name="avg_pool2d")


@reverse_mode_only("lp_pool2d")
def lp_pool2d(x, p, window, stride=None, padding="VALID", ceil_mode=False):
    """2-D p-norm pooling: y = ((1/|W|) sum over the window of |x|^p)^(1/p), |W| = K_h K_w; padded zeros count (in
    ceil mode, what a last window hangs over the padded input's end does not).

    Gradient: dx = g * sign(x) |x|^(p-1) * y^(1-p) / |W|, summed over the windows containing x; taken as 0 where
    x = 0 or y = 0 (the formula's kinks and poles). Large p overflows |x|^p in low precision: p <= 16 is safe in
    float32 for |x| <= 100.
    """
    return _lp_pool(x, p, window, stride, padding, ceil_mode, nd=2, name="lp_pool2d")


@reverse_mode_only("global_avg_pool2d")
def global_avg_pool2d(x):
    """Mean over all spatial positions: (N, H, W, C) -> (N, C). Gradient: g / (H*W) everywhere."""
    return _global_avg_pool(x, nd=2, name="global_avg_pool2d")


@reverse_mode_only("max_pool1d")
def max_pool1d(x, window, stride=None, padding="VALID", ceil_mode=False):
    """1-D max pooling over (N, W, C); see `max_pool2d`."""
    return _max_pool(x, window, stride, padding, ceil_mode, nd=1, name="max_pool1d")


@reverse_mode_only("avg_pool1d")
def avg_pool1d(x, window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False):
    """1-D mean pooling over (N, W, C); see `avg_pool2d`."""
    return _avg_pool(x, window, stride, padding, count_include_pad, ceil_mode, nd=1, name="avg_pool1d")


@reverse_mode_only("lp_pool1d")
def lp_pool1d(x, p, window, stride=None, padding="VALID", ceil_mode=False):
    """1-D p-norm pooling over (N, W, C), |W| = K; see `lp_pool2d`."""
    return _lp_pool(x, p, window, stride, padding, ceil_mode, nd=1, name="lp_pool1d")


@reverse_mode_only("global_avg_pool1d")
def global_avg_pool1d(x):
    """Mean over all positions: (N, W, C) -> (N, C). Gradient: g / W everywhere."""
    return _global_avg_pool(x, nd=1, name="global_avg_pool1d")


# ----------------------------------------------------------------------------------------------------------------
# the configurations `python -m funcnn.verify` checks: tiling and overlapping windows, paddings, ties

from ..verify.registry import register_cases  # noqa: E402


@register_cases("max_pool2d", "avg_pool2d", "lp_pool2d", "global_avg_pool2d", "max_pool1d", "avg_pool1d",
                "lp_pool1d", "global_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool1d",
                "adaptive_max_pool1d")
def _verify_cases(make):
    from ..verify import reference as ref

    def case(name, shape, *args, quick=False, x=None, **kw):
        prim, refn = globals()[name], getattr(ref, name)
        x = make.normal(*shape) if x is None else x
        return make.case(name, f"{shape} {args} {kw}", lambda x: prim(x, *args, **kw),
                         lambda x: refn(x, *args, **kw), x, quick=quick)

    yield case("max_pool1d", (2, 9, 3), 3, 2, quick=True)  # first: the family's structural checks run on it
    configs = [((3, 2), dict(padding=1)), (((2, 3), (1, 2)), dict(padding=((1, 0), (0, 2)))), ((2,), {}),
               ((3, 2), {}), ((3, 1), {}), ((3, 3), dict(padding="SAME"))]
    for i, (args, kw) in enumerate(configs):
        quick = i == 0
        yield case("max_pool2d", (2, 7, 8, 3), *args, quick=quick, **kw)
        yield case("avg_pool2d", (2, 7, 8, 3), *args, quick=quick, **kw)
        if "padding" in kw:
            yield case("avg_pool2d", (2, 7, 8, 3), *args, quick=quick, count_include_pad=False, **kw)
        for p in (1.0, 2.0, 5.0):
            yield case("lp_pool2d", (2, 7, 8, 3), p, *args, quick=quick and p == 2.0, **kw)
    ties = make.integers(0, 3, 2, 6, 6, 2).astype(float)  # ties everywhere: the first maximum takes g
    yield case("max_pool2d", (2, 6, 6, 2), 3, 1, quick=True, x=ties)
    yield case("avg_pool1d", (2, 9, 3), 3, 2, quick=True, padding=1)
    yield case("lp_pool1d", (2, 9, 3), 3.0, 3, 2, quick=True)
    yield case("global_avg_pool2d", (3, 5, 4, 2), quick=True)
    yield case("global_avg_pool1d", (3, 5, 2), quick=True)
    for i, (args, kw) in enumerate([((3, 2), dict(padding=1)), ((2, 3), {})]):  # ceil mode: overhanging windows
        yield case("max_pool2d", (2, 7, 8, 3), *args, quick=i == 0, ceil_mode=True, **kw)
        yield case("avg_pool2d", (2, 7, 8, 3), *args, quick=i == 0, ceil_mode=True, **kw)
        yield case("avg_pool2d", (2, 7, 8, 3), *args, ceil_mode=True, count_include_pad=False, **kw)
        yield case("lp_pool2d", (2, 7, 8, 3), 3.0, *args, quick=i == 0, ceil_mode=True, **kw)
    for i, size in enumerate([(3, 4), (1, 1), (7, 8), (9, 5)]):  # overlapping, global, identity, larger than x
        yield case("adaptive_avg_pool2d", (2, 7, 8, 3), size, quick=i == 0)
        yield case("adaptive_max_pool2d", (2, 7, 8, 3), size, quick=i == 0)
    yield case("adaptive_max_pool2d", (2, 6, 6, 2), (4, 4), x=make.integers(0, 3, 2, 6, 6, 2).astype(float))  # ties
    yield case("adaptive_avg_pool1d", (2, 9, 3), 4, quick=True)
    yield case("adaptive_max_pool1d", (2, 9, 3), 4, quick=True)
