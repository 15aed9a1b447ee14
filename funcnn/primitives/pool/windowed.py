"""Max, mean and p-norm pooling over a sliding window, each rule followed by its public function (see
funcnn.primitives.pool for the formulas)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import carrier
from ..arguments import accumulation_dtype
from ..geometry import Geometry, spatial_sizes
from ..windows import first_max, pad_spatial, place_windows, spread_windows, window_offsets, window_slice
from .common import (bordered, checked_input, geometry_of, geometry_params, pool_geometry, ranked, reduce_window,
                     window_counts)

# ----------------------------------------------------------------------------------------------------------------
# max pooling


def _first_max(x, geo: Geometry):
    """P: for every output position, the row-major index t of the first window offset holding the window's maximum
    (`first_max` over the window slices; padding holds -inf and never wins)."""
    xp = pad_spatial(x, geo.padding, -jnp.inf)
    out_sizes = geo.out_sizes(x.shape[1:-1])
    return first_max(window_slice(xp, u, geo, out_sizes) for u in window_offsets(geo.window))[1]


def _max_pool_impl(x, **params):
    return reduce_window(x, -jnp.inf, lax.max, geometry_of(**params))


def _max_pool_tangent_impl(x, t, **params):
    """dy[n, i, c] = dx[P[n, i, c]]: the tangent read at each window's first maximum."""
    geo = geometry_of(**params)
    winner = _first_max(x, geo)
    tp = pad_spatial(t, geo.padding)
    dy = jnp.zeros(winner.shape, t.dtype)
    for k, u in enumerate(window_offsets(geo.window)):
        dy = jnp.where(winner == k, window_slice(tp, u, geo, winner.shape[1:-1]), dy)
    return dy


def _max_pool_backward_impl(x, g, *, sizes, **params):
    """dx[P[n, i, c]] += g[n, i, c]: each window's g placed at its first maximum (interior padding, no scatter)."""
    geo = geometry_of(**params)
    winner = _first_max(x, geo)
    zero = jnp.zeros((), g.dtype)
    return place_windows(lambda k, u: jnp.where(winner == k, g, zero), geo, sizes)


MAX_POOL_TANGENT, MAX_POOL_BACKWARD = carrier.define_adjoint_pair(
    "max_pool_tangent", _max_pool_tangent_impl, "max_pool_backward", _max_pool_backward_impl, fixed=1,
    adjoint_params=spatial_sizes, constant=True, batch=carrier.fold_into_batch)
MAX_POOL = carrier.define("max_pool", _max_pool_impl, batch=carrier.fold_into_batch,
                          tangent=lambda args, y, ts, **params: MAX_POOL_TANGENT(args[0], ts[0], **params))


def flat_indices(x, geo: Geometry):
    """PyTorch's `return_indices`: for every output position, the flat index into its channel plane of the unpadded
    input (sum over the axes of position * the sizes after it) of the window's first maximum, as int32."""
    winner = _first_max(x, geo)
    sizes = x.shape[1:-1]
    index = jnp.zeros(winner.shape, jnp.int32)
    rest = winner
    for axis in range(len(sizes)):
        inner = int(np.prod(geo.window[axis + 1:]))
        u, rest = rest // inner, rest % inner            # the window offset along this axis
        i = lax.broadcasted_iota(jnp.int32, winner.shape, axis + 1)
        position = geo.stride[axis] * i + u - geo.padding[axis][0]
        index = index * sizes[axis] + position
    return index


def max_pool(x, window, stride=None, padding="VALID", ceil_mode=False, return_indices=False, padding_mode="zeros",
             *, nd, name):
    x = checked_input(name, nd, x)
    geo, overhang = pool_geometry(name, x.shape, window, stride, padding, ceil_mode)
    if not isinstance(return_indices, bool):
        raise ValueError(f"{name}: return_indices must be True or False, got {return_indices!r}")
    if return_indices and padding_mode != "zeros":
        raise ValueError(f"{name}: return_indices needs padding_mode='zeros' (an index into the input); with "
                         f"padding_mode={padding_mode!r} the maximum may be a border copy")
    x, geo = bordered(name, x, geo, overhang, padding_mode)
    y = MAX_POOL(x, **geometry_params(geo))
    return (y, flat_indices(x, geo)) if return_indices else y


_MAX_POOL_DOC = """{nd}-D max pooling: x {layout} -> (N, *out, C), out = floor((H + P_lo + P_hi - K) / S) + 1 per
    spatial axis (ceil instead of floor with ceil_mode=True, PyTorch's rule: a last window that starts in the high
    padding is dropped). `stride` defaults to `window`; padded positions hold -inf and never win.

    Tangent: dy = dx at each window's first maximum. Gradient (lecture 004): each g goes to the argmax of its window,
    "+=" where windows overlap; on ties exactly one input per window receives it, the first in row-major window order.
    NaN inputs propagate to y and receive no gradient."""
max_pool1d, max_pool2d, max_pool3d = (ranked("max_pool", max_pool, nd, _MAX_POOL_DOC) for nd in (1, 2, 3))


# ----------------------------------------------------------------------------------------------------------------
# mean pooling (linear: the op and its backward are an adjoint pair)


def _avg_pool_impl(x, *, include_pad, overhang, **params):
    geo = geometry_of(**params)
    acc = accumulation_dtype(x.dtype)
    total = reduce_window(x.astype(acc), 0.0, lax.add, geo)
    counts = window_counts(geo, x.shape[1:-1], total.shape[1:-1], include_pad, overhang)
    return (total / jnp.asarray(counts, acc)).astype(x.dtype)


def _avg_pool_backward_impl(g, *, include_pad, overhang, sizes, **params):
    """dx[n, S*i + u, c] += g[n, i, c] / |W|: the mean's derivative spread evenly over its window."""
    geo = geometry_of(**params)
    counts = window_counts(geo, sizes, g.shape[1:-1], include_pad, overhang)
    return spread_windows(g / jnp.asarray(counts, g.dtype), geo, sizes)


AVG_POOL, AVG_POOL_BACKWARD = carrier.define_adjoint_pair(
    "avg_pool", _avg_pool_impl, "avg_pool_backward", _avg_pool_backward_impl, fixed=0, adjoint_params=spatial_sizes,
    batch=carrier.fold_into_batch)


def avg_pool(x, window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False, padding_mode="zeros",
             *, nd, name):
    x = checked_input(name, nd, x)
    if not isinstance(count_include_pad, bool):  # bool("False") is True: a string must not pass as a flag
        raise ValueError(f"{name}: count_include_pad must be True or False, got {count_include_pad!r}")
    geo, overhang = pool_geometry(name, x.shape, window, stride, padding, ceil_mode)
    x, geo = bordered(name, x, geo, overhang, padding_mode)
    return AVG_POOL(x, **geometry_params(geo), include_pad=count_include_pad, overhang=overhang)


_AVG_POOL_DOC = """{nd}-D mean pooling over x {layout}: y = (1/|W|) sum over the window, |W| = prod(K) or, with
    count_include_pad=False, the number of real (unpadded) inputs in the window. With ceil_mode=True the last windows
    may hang over the padded input's end (see max_pool2d); what hangs over is not counted (PyTorch's rule). Linear:
    its tangent is the op applied to dx. Gradient (lecture 004): g/|W| spread over the window, "+=" over overlaps.
    padding_mode "reflect", "replicate" or "circular" fills the padding with copies of x (`border_pad`), which then
    count as inputs."""
avg_pool1d, avg_pool2d, avg_pool3d = (ranked("avg_pool", avg_pool, nd, _AVG_POOL_DOC) for nd in (1, 2, 3))


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
    geo = geometry_of(**params)
    slices = _abs_windows(x, geo)
    m = functools.reduce(jnp.maximum, slices)
    m_safe = jnp.where(m > 0, m, 1.0)
    counts = jnp.asarray(window_counts(geo, x.shape[1:-1], m.shape[1:-1], True, overhang), m.dtype)
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
    counts = jnp.asarray(window_counts(geo, x.shape[1:-1], y.shape[1:-1], True, overhang), acc)
    signs = pad_spatial(jnp.sign(x.astype(acc)), geo.padding)
    coefficients = []
    for a, u in zip(_abs_windows(x, geo), window_offsets(geo.window)):
        ratio = jnp.where(a > 0, a, 1.0) / y_safe
        c = jnp.where(y_pos & (a > 0), ratio ** (p - 1.0), 0.0) / counts
        coefficients.append(c * window_slice(signs, u, geo, y.shape[1:-1]))
    return coefficients


def _lp_pool_tangent_impl(x, y, t, *, p, overhang, **params):
    """dy[i] = sum_u c[i, u] dx[S*i + u]."""
    geo = geometry_of(**params)
    tp = pad_spatial(t.astype(accumulation_dtype(t.dtype)), geo.padding)
    terms = [c * window_slice(tp, u, geo, y.shape[1:-1])
             for c, u in zip(_lp_coefficients(x, y, geo, p, overhang), window_offsets(geo.window))]
    return sum(terms[1:], terms[0]).astype(t.dtype)


def _lp_pool_backward_impl(x, y, g, *, p, overhang, sizes, **params):
    """dx[S*i + u] += c[i, u] g[i], summed over the windows containing x."""
    geo = geometry_of(**params)
    coefficients = _lp_coefficients(x, y, geo, p, overhang)
    ga = g.astype(coefficients[0].dtype)
    return place_windows(lambda k, u: coefficients[k] * ga, geo, sizes).astype(g.dtype)


LP_POOL_TANGENT, LP_POOL_BACKWARD = carrier.define_adjoint_pair(
    "lp_pool_tangent", _lp_pool_tangent_impl, "lp_pool_backward", _lp_pool_backward_impl, fixed=2,
    adjoint_params=spatial_sizes, batch=carrier.fold_into_batch)
LP_POOL = carrier.define("lp_pool", _lp_pool_impl, batch=carrier.fold_into_batch,
                         tangent=lambda args, y, ts, **params: LP_POOL_TANGENT(args[0], y, ts[0], **params))


def lp_pool(x, p, window, stride=None, padding="VALID", ceil_mode=False, padding_mode="zeros", *, nd, name):
    x = checked_input(name, nd, x)
    if isinstance(p, (bool, str, bytes)):
        raise ValueError(f"{name}: p must be a Python number (a static exponent), got {p!r}")
    try:
        p = float(p)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        raise ValueError(f"{name}: p must be a Python number (a static exponent), got {p!r}") from None
    if not p > 0 or not np.isfinite(p):
        raise ValueError(f"{name}: p must be a finite number > 0, got {p!r}")
    geo, overhang = pool_geometry(name, x.shape, window, stride, padding, ceil_mode)
    x, geo = bordered(name, x, geo, overhang, padding_mode)
    return LP_POOL(x, **geometry_params(geo), p=p, overhang=overhang)


_LP_POOL_DOC = """{nd}-D p-norm pooling over x {layout}: y = ((1/|W|) sum over the window of |x|^p)^(1/p), |W| =
    prod(K); padded zeros count (in ceil mode, what a last window hangs over the padded input's end does not). The
    forward scales each window by its largest |x| (as log-sum-exp by the max), so large p and |x| neither overflow nor
    underflow.

    Tangent: dy = sum over the window of c * dx, c = sign(x) (|x|/y)^(p-1) / |W|; gradient: dx = c * g summed over the
    windows containing x; both taken as 0 where x = 0 or y = 0 (the formula's kinks and poles). padding_mode as in
    avg_pool{nd}d."""
lp_pool1d, lp_pool2d, lp_pool3d = (ranked("lp_pool", lp_pool, nd, _LP_POOL_DOC) for nd in (1, 2, 3))


__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "lp_pool1d",
           "lp_pool2d", "lp_pool3d", "flat_indices"]
