"""Pooling family: max, mean and p-norm pooling (each with ceil_mode), adaptive mean and max pooling, global mean
pooling, over (N, *spatial, C) with one or two spatial axes.

Pooling acts on each channel separately. The window offset u runs over the |W| = prod(K) positions of a window
(K^2 in the lecture's square 2-D case), output position i over the output:

    max:    y[n, i, c] = max_u x_pad[n, S*i + u, c],   P[n, i, c] = argmax (first in row-major window order)
    mean:   y[n, i, c] = (1/|W|) sum_u x_pad[n, S*i + u, c]
    p-norm: y[n, i, c] = ((1/|W|) sum_u |x_pad[n, S*i + u, c]|^p)^(1/p)

Tangent (JVP) rules, each linear in dx (`shared/notes/derivations.md`), and the backward rules they transpose to
(lecture 004, "Derivative of max pooling", "Derivative of mean pooling"), "+=" over overlapping windows:

    max:    dy[n, i, c] = dx[P[n, i, c]]                  dx[P[n, i, c]] += g[n, i, c]   (one input per window)
    mean:   dy = mean of dx over the window (the op)      dx[n, S*i + u, c] += g[n, i, c] / |W|
    p-norm: dy[i] = sum_u c[i, u] dx[S*i + u]             dx[S*i + u] += c[i, u] g[i]
            c[i, u] = sign(x_u) (|x_u| / y_i)^(p-1) / |W|

Each pair (tangent, backward) is two linear ops that transpose into each other (`carrier.define_adjoint_pair`), so
`jax.jvp` runs the tangent, `jax.grad` the backward, and their derivatives again one of the two. The mean pools are
linear themselves: the forward and its backward are such a pair. Every backward places values with interior
padding (`place_windows`) instead of a scatter: no index arrays, deterministic on every backend.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import carrier
from .cases import register_cases
from .checks import accumulation_dtype, as_float, check_nonempty_spatial, check_rank, reverse_mode_only
from .geometry import Geometry, as_tuple, make_geometry
from .windows import pad_spatial, place_windows, spread_windows, window_offsets, window_slice

_LAYOUT = {1: "NWC", 2: "NHWC"}


def _geo(window, stride, padding) -> Geometry:
    return Geometry(window, stride, padding, (1,) * len(window))


def _geo_params(geo: Geometry) -> dict:
    return dict(window=geo.window, stride=geo.stride, padding=geo.padding)


def _sizes(params, specs):
    """The adjoint's extra parameter: the spatial sizes of the input it maps back to."""
    return {"sizes": tuple(specs[0].shape[1:-1])} if specs else {"sizes": None}


# every pool op treats examples independently: vmap folds the mapped axis into the batch axis
# (`carrier.fold_into_batch`)


def _reduce_window(x, init, op, geo: Geometry):
    """lax.reduce_window with a NumPy scalar init, so that JAX emits its differentiable reduce_window_max / _sum
    (`verify.primal_of` differentiates the forward as a reference)."""
    return lax.reduce_window(x, np.asarray(init, x.dtype), op, (1, *geo.window, 1), (1, *geo.stride, 1),
                             ((0, 0), *geo.padding, (0, 0)))


def _window_counts(geo: Geometry, in_sizes, out_sizes, include_pad: bool, overhang=None):
    """|W| per output position: the window's positions inside the padded input (prod(K), except for the last
    windows of ceil mode, which hang over its end by `overhang`), or, with include_pad=False, its real (unpadded)
    inputs. Computed with NumPy at trace time; the count separates over the spatial axes."""
    overhang = overhang or (0,) * len(in_sizes)
    if include_pad and not any(overhang):
        return float(np.prod(geo.window))
    counts = np.ones((), np.float64)
    for k, s, (lo, hi), n, o, extra in zip(geo.window, geo.stride, geo.padding, in_sizes, out_sizes, overhang):
        first, last = (0, n + lo + hi - extra) if include_pad else (lo, lo + n)
        starts = np.arange(o) * s
        counts = np.multiply.outer(counts, np.clip(starts + k, first, last) - np.clip(starts, first, last))
    return counts[..., None]  # broadcast over channels


# ----------------------------------------------------------------------------------------------------------------
# max pooling


def _first_max(x, geo: Geometry):
    """P: for every output position, the row-major index t of the first window offset holding the window's maximum.

    Lecture: "keep track of which position had the highest value". One pass over the offsets keeps the running
    maximum and its index, replacing it only on a strictly greater value, so ties keep the first. Only comparisons
    among the values of this pass decide, never an equality test against a forward output that XLA may have computed
    with other rounding. Padding holds -inf and never wins."""
    xp = pad_spatial(x, geo.padding, -jnp.inf)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    offsets = list(window_offsets(geo.window))
    best = window_slice(xp, offsets[0], geo, out_sizes)
    winner = jnp.zeros(best.shape, jnp.int32)
    for t, u in enumerate(offsets[1:], start=1):
        candidate = window_slice(xp, u, geo, out_sizes)
        better = candidate > best
        best, winner = jnp.where(better, candidate, best), jnp.where(better, t, winner)
    return winner


def _max_pool_impl(x, **params):
    return _reduce_window(x, -jnp.inf, lax.max, _geo(**params))


def _max_pool_tangent_impl(x, t, **params):
    """dy[n, i, c] = dx[P[n, i, c]]: the tangent read at each window's first maximum."""
    geo = _geo(**params)
    winner = _first_max(x, geo)
    tp = pad_spatial(t, geo.padding)
    dy = jnp.zeros(winner.shape, t.dtype)
    for k, u in enumerate(window_offsets(geo.window)):
        dy = jnp.where(winner == k, window_slice(tp, u, geo, winner.shape[1:-1]), dy)
    return dy


def _max_pool_backward_impl(x, g, *, sizes, **params):
    """dx[P[n, i, c]] += g[n, i, c]: each window's g placed at its first maximum (interior padding, no scatter)."""
    geo = _geo(**params)
    winner = _first_max(x, geo)
    zero = jnp.zeros((), g.dtype)
    return place_windows(lambda k, u: jnp.where(winner == k, g, zero), geo, sizes)


MAX_POOL_TANGENT, MAX_POOL_BACKWARD = carrier.define_adjoint_pair(
    "max_pool_tangent", _max_pool_tangent_impl, "max_pool_backward", _max_pool_backward_impl, fixed=1,
    adjoint_params=_sizes, constant=True, batch=carrier.fold_into_batch)
MAX_POOL = carrier.define("max_pool", _max_pool_impl, batch=carrier.fold_into_batch,
                          tangent=lambda args, y, ts, **params: MAX_POOL_TANGENT(args[0], ts[0], **params))


# ----------------------------------------------------------------------------------------------------------------
# mean pooling (linear: the op and its backward are an adjoint pair)


def _avg_pool_impl(x, *, include_pad, overhang, **params):
    geo = _geo(**params)
    acc = accumulation_dtype(x.dtype)
    total = _reduce_window(x.astype(acc), 0.0, lax.add, geo)
    counts = _window_counts(geo, x.shape[1:-1], total.shape[1:-1], include_pad, overhang)
    return (total / jnp.asarray(counts, acc)).astype(x.dtype)


def _avg_pool_backward_impl(g, *, include_pad, overhang, sizes, **params):
    """dx[n, S*i + u, c] += g[n, i, c] / |W|: the mean's derivative spread evenly over its window."""
    geo = _geo(**params)
    counts = _window_counts(geo, sizes, g.shape[1:-1], include_pad, overhang)
    return spread_windows(g / jnp.asarray(counts, g.dtype), geo, sizes)


AVG_POOL, AVG_POOL_BACKWARD = carrier.define_adjoint_pair(
    "avg_pool", _avg_pool_impl, "avg_pool_backward", _avg_pool_backward_impl, fixed=0, adjoint_params=_sizes,
    batch=carrier.fold_into_batch)


# ----------------------------------------------------------------------------------------------------------------
# p-norm pooling


def _abs_windows(x, geo: Geometry):
    """|x| (in the accumulation dtype, zero-padded) at every window offset: one slice per offset, aligned with y."""
    ax = pad_spatial(jnp.abs(x.astype(accumulation_dtype(x.dtype))), geo.padding)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    return [window_slice(ax, u, geo, out_sizes) for u in window_offsets(geo.window)]


def _lp_pool_impl(x, *, p, overhang, **params):
    """y = m * ((1/|W|) sum_u (|x_u| / m)^p)^(1/p), m = max_u |x_u|: the power mean scaled by the window's largest
    entry (as log-sum-exp is by the max), so |x|^p neither overflows nor underflows for large p or |x|."""
    geo = _geo(**params)
    slices = _abs_windows(x, geo)
    m = functools.reduce(jnp.maximum, slices)
    m_safe = jnp.where(m > 0, m, 1.0)
    counts = jnp.asarray(_window_counts(geo, x.shape[1:-1], m.shape[1:-1], True, overhang), m.dtype)
    mean_p = sum((a / m_safe) ** p for a in slices) / counts
    return (m * mean_p ** (1.0 / p)).astype(x.dtype)


def _lp_coefficients(x, y, geo: Geometry, p, overhang):
    """c[i, u] = sign(x_u) (|x_u| / y_i)^(p-1) / |W| per window offset u, in the accumulation dtype.

    (|x| / y)^(p-1) is the formula's |x|^(p-1) y^(1-p) as one ratio (at most |W|^(1/p)), so it neither overflows
    nor underflows. y = 0 (a window of zeros) and x = 0 are kinks for p <= 1 and poles for p < 1: the derivative
    there is taken as 0, the subgradient of least norm; the `where`s guard both sides so that second derivatives stay
    finite too."""
    acc = accumulation_dtype(x.dtype)
    y = y.astype(acc)
    y_pos = y > 0
    y_safe = jnp.where(y_pos, y, 1.0)
    counts = jnp.asarray(_window_counts(geo, x.shape[1:-1], y.shape[1:-1], True, overhang), acc)
    signs = pad_spatial(jnp.sign(x.astype(acc)), geo.padding)
    coefficients = []
    for a, u in zip(_abs_windows(x, geo), window_offsets(geo.window)):
        ratio = jnp.where(a > 0, a, 1.0) / y_safe
        c = jnp.where(y_pos & (a > 0), ratio ** (p - 1.0), 0.0) / counts
        coefficients.append(c * window_slice(signs, u, geo, y.shape[1:-1]))
    return coefficients


def _lp_pool_tangent_impl(x, y, t, *, p, overhang, **params):
    """dy[i] = sum_u c[i, u] dx[S*i + u]."""
    geo = _geo(**params)
    tp = pad_spatial(t.astype(accumulation_dtype(t.dtype)), geo.padding)
    terms = [c * window_slice(tp, u, geo, y.shape[1:-1])
             for c, u in zip(_lp_coefficients(x, y, geo, p, overhang), window_offsets(geo.window))]
    return sum(terms[1:], terms[0]).astype(t.dtype)


def _lp_pool_backward_impl(x, y, g, *, p, overhang, sizes, **params):
    """dx[S*i + u] += c[i, u] g[i], summed over the windows containing x."""
    geo = _geo(**params)
    coefficients = _lp_coefficients(x, y, geo, p, overhang)
    ga = g.astype(coefficients[0].dtype)
    return place_windows(lambda k, u: coefficients[k] * ga, geo, sizes).astype(g.dtype)


LP_POOL_TANGENT, LP_POOL_BACKWARD = carrier.define_adjoint_pair(
    "lp_pool_tangent", _lp_pool_tangent_impl, "lp_pool_backward", _lp_pool_backward_impl, fixed=2,
    adjoint_params=_sizes, batch=carrier.fold_into_batch)
LP_POOL = carrier.define("lp_pool", _lp_pool_impl, batch=carrier.fold_into_batch,
                         tangent=lambda args, y, ts, **params: LP_POOL_TANGENT(args[0], y, ts[0], **params))


# ----------------------------------------------------------------------------------------------------------------
# adaptive pooling: the output size is given; window i of an axis of size N covers [floor(i N / O), ceil((i+1) N / O))
# (PyTorch's rule; windows may differ in size by one and overlap by one). The N-d pools are 1-D passes, the last
# spatial axis first: the mean and the maximum separate, and the first maximum of the later pass within the first
# row holding the maximum of the earlier one is the first maximum in row-major order.


def adaptive_windows(n: int, out: int) -> tuple:
    """((start, end), ...) of the `out` adaptive windows over an axis of size n."""
    return tuple((i * n // out, -(-(i + 1) * n // out)) for i in range(out))


def _axis_window(x, axis, start, end):
    return lax.slice_in_dim(x, start, end, axis=axis)


def _placed(pieces, axis, windows, n, ndim):
    """sum_i pieces[i] padded into [a_i, b_i) of an axis of size n ("+=" where windows overlap; no scatter)."""
    total = None
    for piece, (a, b) in zip(pieces, windows):
        placed = jnp.pad(piece, [(0, 0)] * axis + [(a, n - b)] + [(0, 0)] * (ndim - axis - 1))
        total = placed if total is None else total + placed
    return total


def _adaptive_mean_impl(x, *, axis, windows):
    acc = accumulation_dtype(x.dtype)
    parts = [jnp.mean(_axis_window(x, axis, a, b).astype(acc), axis=axis, keepdims=True) for a, b in windows]
    return jnp.concatenate(parts, axis=axis).astype(x.dtype)


def _adaptive_mean_backward_impl(g, *, axis, windows, size):
    """dx[j] += g[i] / |W_i| for every window i containing j: each window's share broadcast over it."""
    def share(i, a, b):
        shape = list(g.shape)
        shape[axis] = b - a
        return jnp.broadcast_to(_axis_window(g, axis, i, i + 1) / (b - a), shape)

    return _placed([share(i, a, b) for i, (a, b) in enumerate(windows)], axis, windows, size, g.ndim)


def _axis_size(params, specs):
    return {"size": specs[0].shape[params["axis"]] if specs else None}


ADAPTIVE_MEAN, ADAPTIVE_MEAN_BACKWARD = carrier.define_adjoint_pair(
    "adaptive_mean", _adaptive_mean_impl, "adaptive_mean_backward", _adaptive_mean_backward_impl, fixed=0,
    adjoint_params=_axis_size, batch=carrier.fold_into_batch)


def _window_max(x, axis, a, b):
    """The maximum over x[a:b] along `axis` and the offset of its first occurrence (strictly greater replaces)."""
    best = _axis_window(x, axis, a, a + 1)
    winner = jnp.zeros(best.shape, jnp.int32)
    for t in range(1, b - a):
        candidate = _axis_window(x, axis, a + t, a + t + 1)
        better = candidate > best
        best, winner = jnp.where(better, candidate, best), jnp.where(better, t, winner)
    return best, winner


def _offsets(shape, axis, length):
    return lax.broadcasted_iota(jnp.int32, [length if d == axis else 1 for d in range(len(shape))], axis)


def _adaptive_max_impl(x, *, axis, windows):
    return jnp.concatenate([_window_max(x, axis, a, b)[0] for a, b in windows], axis=axis)


def _adaptive_max_tangent_impl(x, t, *, axis, windows):
    """dy[i] = dx[P_i], P_i the first maximum of window i."""
    parts = []
    for a, b in windows:
        _, winner = _window_max(x, axis, a, b)
        hit = _offsets(x.shape, axis, b - a) == winner
        parts.append(jnp.sum(jnp.where(hit, _axis_window(t, axis, a, b), 0), axis=axis, keepdims=True))
    return jnp.concatenate(parts, axis=axis).astype(t.dtype)


def _adaptive_max_backward_impl(x, g, *, axis, windows, size):
    """dx[P_i] += g[i]: g placed at each window's first maximum."""
    pieces = []
    for i, (a, b) in enumerate(windows):
        _, winner = _window_max(x, axis, a, b)
        hit = _offsets(x.shape, axis, b - a) == winner
        pieces.append(jnp.where(hit, _axis_window(g, axis, i, i + 1), jnp.zeros((), g.dtype)))
    return _placed(pieces, axis, windows, size, g.ndim)


ADAPTIVE_MAX_TANGENT, ADAPTIVE_MAX_BACKWARD = carrier.define_adjoint_pair(
    "adaptive_max_tangent", _adaptive_max_tangent_impl, "adaptive_max_backward", _adaptive_max_backward_impl,
    fixed=1, adjoint_params=_axis_size, constant=True, batch=carrier.fold_into_batch)
ADAPTIVE_MAX = carrier.define("adaptive_max", _adaptive_max_impl, batch=carrier.fold_into_batch,
                              tangent=lambda args, y, ts, **params: ADAPTIVE_MAX_TANGENT(args[0], ts[0], **params))


# ----------------------------------------------------------------------------------------------------------------
# global average pooling (linear)


def _global_avg_pool_impl(x):
    acc = accumulation_dtype(x.dtype)
    return jnp.mean(x.astype(acc), axis=tuple(range(1, x.ndim - 1))).astype(x.dtype)


def _global_avg_pool_backward_impl(g, *, sizes):
    """dx[n, *s, c] = g[n, c] / prod(spatial sizes)."""
    expanded = (g / int(np.prod(sizes))).reshape(g.shape[0], *(1,) * len(sizes), g.shape[-1])
    return jnp.broadcast_to(expanded, (g.shape[0], *sizes, g.shape[-1]))


GLOBAL_AVG_POOL, GLOBAL_AVG_POOL_BACKWARD = carrier.define_adjoint_pair(
    "global_avg_pool", _global_avg_pool_impl, "global_avg_pool_backward", _global_avg_pool_backward_impl,
    fixed=0, adjoint_params=_sizes, batch=carrier.fold_into_batch)


# ----------------------------------------------------------------------------------------------------------------
# public API: one function per kind over any rank, and the 1-D / 2-D names made from it


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


def _checked(name, nd, x):
    x = as_float(name, "x", x)
    check_rank(name, "x", x.shape, nd + 2, _LAYOUT[nd])
    return x


def max_pool(x, window, stride=None, padding="VALID", ceil_mode=False, *, nd, name):
    x = _checked(name, nd, x)
    geo, _ = pool_geometry(name, x.shape, window, stride, padding, ceil_mode)
    return MAX_POOL(x, **_geo_params(geo))


def avg_pool(x, window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False, *, nd, name):
    x = _checked(name, nd, x)
    geo, overhang = pool_geometry(name, x.shape, window, stride, padding, ceil_mode)
    return AVG_POOL(x, **_geo_params(geo), include_pad=bool(count_include_pad), overhang=overhang)


def lp_pool(x, p, window, stride=None, padding="VALID", ceil_mode=False, *, nd, name):
    x = _checked(name, nd, x)
    if isinstance(p, (bool, str, bytes)):
        raise ValueError(f"{name}: p must be a Python number (a static exponent), got {p!r}")
    try:
        p = float(p)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        raise ValueError(f"{name}: p must be a Python number (a static exponent), got {p!r}") from None
    if not p > 0 or not np.isfinite(p):
        raise ValueError(f"{name}: p must be a finite number > 0, got {p!r}")
    geo, overhang = pool_geometry(name, x.shape, window, stride, padding, ceil_mode)
    return LP_POOL(x, **_geo_params(geo), p=p, overhang=overhang)


def global_avg_pool(x, *, nd, name):
    x = _checked(name, nd, x)
    check_nonempty_spatial(name, "x", x.shape)
    return GLOBAL_AVG_POOL(x)


def _adaptive(op, x, output_size, *, nd, name):
    x = _checked(name, nd, x)
    check_nonempty_spatial(name, "x", x.shape)
    sizes = as_tuple(output_size, nd, f"{name}: output_size")
    for axis in range(nd, 0, -1):  # the last spatial axis first
        x = op(x, axis=axis, windows=adaptive_windows(x.shape[axis], sizes[axis - 1]))
    return x


def adaptive_avg_pool(x, output_size, *, nd, name):
    return _adaptive(ADAPTIVE_MEAN, x, output_size, nd=nd, name=name)


def adaptive_max_pool(x, output_size, *, nd, name):
    return _adaptive(ADAPTIVE_MAX, x, output_size, nd=nd, name=name)


_DOCS = {
    "max_pool": """{nd}-D max pooling: x {layout} -> (N, *out, C), out = floor((H + P_lo + P_hi - K) / S) + 1 per spatial axis
    (ceil instead of floor with ceil_mode=True, PyTorch's rule: a last window that starts in the high padding is
    dropped). `stride` defaults to `window`; padded positions hold -inf and never win.

    Tangent: dy = dx at each window's first maximum. Gradient (lecture 004): each g goes to the argmax of its window,
    "+=" where windows overlap; on ties exactly one input per window receives it, the first in row-major window
    order. NaN inputs propagate to y and receive no gradient.""",
    "avg_pool": """{nd}-D mean pooling over x {layout}: y = (1/|W|) sum over the window, |W| = prod(K) or, with
    count_include_pad=False, the number of real (unpadded) inputs in the window. With ceil_mode=True the last windows
    may hang over the padded input's end (see max_pool2d); what hangs over is not counted (PyTorch's rule).
    Linear: its tangent is the op applied to dx. Gradient (lecture 004): g/|W| spread over the window, "+=" over
    overlaps.""",
    "lp_pool": """{nd}-D p-norm pooling over x {layout}: y = ((1/|W|) sum over the window of |x|^p)^(1/p), |W| = prod(K); padded
    zeros count (in ceil mode, what a last window hangs over the padded input's end does not). The forward scales
    each window by its largest |x| (as log-sum-exp by the max), so large p and |x| neither overflow nor underflow.

    Tangent: dy = sum over the window of c * dx, c = sign(x) (|x|/y)^(p-1) / |W|; gradient: dx = c * g summed over
    the windows containing x; both taken as 0 where x = 0 or y = 0 (the formula's kinks and poles).""",
    "global_avg_pool": """Mean over all spatial positions: x {layout} -> (N, C). Linear; gradient: g / (number of positions)
    everywhere.""",
    "adaptive_avg_pool": """Mean pooling of x {layout} to a given output size (an int or one per spatial axis): window i of an
    axis of size H covers [floor(i H / O), ceil((i+1) H / O)) (PyTorch's rule). Linear; gradient: g[i] / |W_i|
    spread over window i, "+=" where windows overlap.""",
    "adaptive_max_pool": """Max pooling of x {layout} to a given output size (windows as in adaptive_avg_pool). Tangent: dx at
    each window's first maximum; gradient: g to that maximum (row-major order), "+=" where windows overlap.""",
}


def _ranked(kind, fn, nd):
    """The public `{kind}{nd}d`: `fn` at rank nd + 2, its errors naming the public function."""
    name = f"{kind}{nd}d"

    @functools.wraps(fn)
    def public(*args, **kwargs):
        return fn(*args, **kwargs, nd=nd, name=name)

    public.__name__ = public.__qualname__ = name
    public.__doc__ = _DOCS[kind].format(nd=nd, layout=f"(N, {'H, W' if nd == 2 else 'W'}, C)")
    return reverse_mode_only(name)(public)


max_pool1d, max_pool2d = (_ranked("max_pool", max_pool, nd) for nd in (1, 2))
avg_pool1d, avg_pool2d = (_ranked("avg_pool", avg_pool, nd) for nd in (1, 2))
lp_pool1d, lp_pool2d = (_ranked("lp_pool", lp_pool, nd) for nd in (1, 2))
global_avg_pool1d, global_avg_pool2d = (_ranked("global_avg_pool", global_avg_pool, nd) for nd in (1, 2))
adaptive_avg_pool1d, adaptive_avg_pool2d = (_ranked("adaptive_avg_pool", adaptive_avg_pool, nd) for nd in (1, 2))
adaptive_max_pool1d, adaptive_max_pool2d = (_ranked("adaptive_max_pool", adaptive_max_pool, nd) for nd in (1, 2))


# ----------------------------------------------------------------------------------------------------------------
# the configurations `python -m funcnn.verify` checks: tiling and overlapping windows, paddings, ties



@register_cases("max_pool2d", "avg_pool2d", "lp_pool2d", "global_avg_pool2d", "max_pool1d", "avg_pool1d",
                "lp_pool1d", "global_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool1d",
                "adaptive_max_pool1d")
def _verify_cases(make, ref):

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


__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d", "global_avg_pool1d",
           "global_avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "pool_geometry", "adaptive_windows"]
