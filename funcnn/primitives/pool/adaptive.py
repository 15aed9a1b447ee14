"""Adaptive mean and max pooling (the output size is given) and global mean pooling, each rule followed by its
public function.

Adaptive pooling: the output size is given; window i of an axis of size N covers [floor(i N / O), ceil((i+1) N / O))
(PyTorch's rule; windows may differ in size by one and overlap by one). The N-d pools are 1-D passes, the last
spatial axis first: the mean and the maximum separate, and the first maximum of the later pass within the first
row holding the maximum of the earlier one is the first maximum in row-major order.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import carrier
from ..arguments import accumulation_dtype, check_nonempty_spatial
from ..geometry import as_tuple, spatial_sizes
from ..windows import first_max, padded_sum
from .common import checked_input, ranked

# ----------------------------------------------------------------------------------------------------------------
# adaptive pooling


def adaptive_windows(n: int, out: int) -> tuple:
    """((start, end), ...) of the `out` adaptive windows over an axis of size n."""
    return tuple((i * n // out, -(-(i + 1) * n // out)) for i in range(out))


def _axis_window(x, axis, start, end):
    return lax.slice_in_dim(x, start, end, axis=axis)


def _placed(pieces, axis, windows, n, ndim):
    """sum_i pieces[i] placed at [a_i, b_i) of an axis of size n ("+=" where windows overlap; no scatter)."""
    def config(a, b):
        return [(0, 0, 0)] * axis + [(a, n - b, 0)] + [(0, 0, 0)] * (ndim - axis - 1)

    return padded_sum((piece, config(a, b)) for piece, (a, b) in zip(pieces, windows))


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
    """The maximum over x[a:b] along `axis` and the offset of its first occurrence (`first_max`)."""
    return first_max(_axis_window(x, axis, t, t + 1) for t in range(a, b))


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


def _adaptive(op, x, output_size, *, nd, name):
    x = checked_input(name, nd, x)
    check_nonempty_spatial(name, "x", x.shape)
    sizes = as_tuple(output_size, nd, f"{name}: output_size")
    for axis in range(nd, 0, -1):  # the last spatial axis first
        x = op(x, axis=axis, windows=adaptive_windows(x.shape[axis], sizes[axis - 1]))
    return x


def adaptive_avg_pool(x, output_size, *, nd, name):
    return _adaptive(ADAPTIVE_MEAN, x, output_size, nd=nd, name=name)


def adaptive_max_pool(x, output_size, *, nd, name):
    return _adaptive(ADAPTIVE_MAX, x, output_size, nd=nd, name=name)


_ADAPTIVE_AVG_POOL_DOC = """Mean pooling of x {layout} to a given output size (an int or one per spatial axis): window
    i of an axis of size H covers [floor(i H / O), ceil((i+1) H / O)) (PyTorch's rule). Linear; gradient: g[i] / |W_i|
    spread over window i, "+=" where windows overlap."""
adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (
    ranked("adaptive_avg_pool", adaptive_avg_pool, nd, _ADAPTIVE_AVG_POOL_DOC) for nd in (1, 2, 3))
_ADAPTIVE_MAX_POOL_DOC = """Max pooling of x {layout} to a given output size (windows as in adaptive_avg_pool).
    Tangent: dx at each window's first maximum; gradient: g to that maximum (row-major order), "+=" where windows
    overlap."""
adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = (
    ranked("adaptive_max_pool", adaptive_max_pool, nd, _ADAPTIVE_MAX_POOL_DOC) for nd in (1, 2, 3))


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
    fixed=0, adjoint_params=spatial_sizes, batch=carrier.fold_into_batch)


def global_avg_pool(x, *, nd, name):
    x = checked_input(name, nd, x)
    check_nonempty_spatial(name, "x", x.shape)
    return GLOBAL_AVG_POOL(x)


_GLOBAL_AVG_POOL_DOC = """Mean over all spatial positions: x {layout} -> (N, C). Linear; gradient: g / (number of
    positions) everywhere."""
global_avg_pool1d, global_avg_pool2d, global_avg_pool3d = (
    ranked("global_avg_pool", global_avg_pool, nd, _GLOBAL_AVG_POOL_DOC) for nd in (1, 2, 3))


__all__ = ["adaptive_windows", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "global_avg_pool1d",
           "global_avg_pool2d", "global_avg_pool3d"]
