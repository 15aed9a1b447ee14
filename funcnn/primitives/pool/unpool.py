"""Max unpooling: the decoder half of SegNet-style networks, placing each pooled value back where its maximum was.

With the indices a `max_pool{nd}d(..., return_indices=True)` returned (PyTorch's flat index q of the maximum in its
channel plane of the pooled input), over the output's flattened spatial positions q:

    unpool  y[n, q, c] = x[n, i, c]    where q = idx[n, i, c]; 0 everywhere else
    gather  dx[n, i, c] = g[n, idx[n, i, c], c]

Both are linear in their array argument and each is the other's transpose (for indices that are distinct per plane,
as a pool with stride >= window gives; overlapping windows can name one maximum twice, and then both copies carry
the same value, as in PyTorch). So the tangent of unpooling is unpooling the tangent, and its backward is the
gather, PyTorch's `max_unpool` backward. The unpool itself writes at data-dependent places: it is a scatter (the
forward, not a backward; a backward of max pooling never scatters). Indices outside [0, prod(output sizes)) write
nothing and read 0 (PyTorch raises at run time; a traced index cannot be checked at trace time).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .. import carrier
from ..arguments import as_array, check_rank
from ..geometry import as_tuple, resolve_padding, spatial_sizes
from .common import LAYOUT, checked_input, ranked


def _planes(a):
    """(N, *S, C) -> (N, prod(S), C)."""
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _in_range(idx, size):
    """Indices outside [0, size) moved to `size` (JAX would wrap a negative index; these must hit nothing)."""
    return jnp.where((idx >= 0) & (idx < size), idx, size)


def _gather_impl(idx, g):
    """dx[n, i, c] = g[n, idx[n, i, c], c] (0 for an index outside g's plane)."""
    plane = _planes(g)
    flat = _in_range(_planes(idx), plane.shape[1])
    out = jnp.take_along_axis(plane, flat, axis=1, mode="fill", fill_value=0)
    return out.reshape(idx.shape)


def _unpool_impl(idx, x, *, sizes):
    """y[n, idx[n, i, c], c] = x[n, i, c] over a zero (N, *sizes, C) array."""
    n, c = x.shape[0], x.shape[-1]
    q = math.prod(sizes)
    flat = _in_range(_planes(idx), q)
    rows, channels = jnp.arange(n)[:, None, None], jnp.arange(c)[None, None, :]
    out = jnp.zeros((n, q, c), x.dtype).at[rows, flat, channels].set(_planes(x), mode="drop")
    return out.reshape(n, *sizes, c)


MAX_UNPOOL_GATHER, MAX_UNPOOL = carrier.define_adjoint_pair(
    "max_unpool_gather", _gather_impl, "max_unpool", _unpool_impl, fixed=1, adjoint_params=spatial_sizes,
    constant=True, batch=carrier.fold_into_batch)


def unpool_sizes(name, in_sizes, window, stride, padding, output_size):
    """PyTorch's output size, (in - 1) * S - P_lo - P_hi + K per axis, or `output_size`, which must lie within a
    stride of it (the sizes a max pool with this window maps to the same pooled size)."""
    nd = len(in_sizes)
    window = as_tuple(window, nd, f"{name}: window")
    stride = window if stride is None else as_tuple(stride, nd, f"{name}: stride")
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be an int or (lo, hi) pairs (the pool's), got {padding!r}")
    try:
        pads = resolve_padding(padding, in_sizes, window, stride)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    default = tuple((i - 1) * s - lo - hi + k for i, s, (lo, hi), k in zip(in_sizes, stride, pads, window))
    if output_size is None:
        sizes = default
    else:
        sizes = tuple(output_size)[-nd - 1:-1] if len(tuple(output_size)) == nd + 2 else output_size
        sizes = as_tuple(sizes, nd, f"{name}: output_size")
        for axis, (size, d, s) in enumerate(zip(sizes, default, stride)):
            if not d - s < size < d + s:
                raise ValueError(f"{name}: output_size {tuple(sizes)} must lie within a stride of the default "
                                 f"{default} on every axis (spatial axis {axis}: {size} not in ({d - s}, {d + s}))")
    if any(size < 1 for size in sizes):
        raise ValueError(f"{name}: the output would be empty: sizes {sizes} from input sizes {tuple(in_sizes)}, "
                         f"window {window}, stride {stride}, padding {pads}")
    return sizes


def max_unpool(x, indices, window, stride=None, padding=0, output_size=None, *, nd, name):
    x = checked_input(name, nd, x)
    indices = as_array(name, "indices", indices)
    check_rank(name, "indices", indices.shape, nd + 2, LAYOUT[nd])
    if indices.shape != x.shape:
        raise ValueError(f"{name}: indices must have x's shape {tuple(x.shape)} (one index per pooled value), got "
                         f"{tuple(indices.shape)}")
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{name}: indices must be integers (max_pool{nd}d(..., return_indices=True)), got dtype "
                        f"{indices.dtype}")
    sizes = unpool_sizes(name, x.shape[1:-1], window, stride, padding, output_size)
    return MAX_UNPOOL(indices.astype(jnp.int32), x, sizes=sizes)


_MAX_UNPOOL_DOC = """{nd}-D max unpooling: x {layout} and the indices of `max_pool{nd}d(..., return_indices=True)` ->
    (N, *out, C), zeros except each x at its index (PyTorch's `max_unpool{nd}d`). out = (in - 1) * S - P_lo - P_hi +
    K per axis (window, stride and padding those of the pool), or `output_size` within a stride of that.
    Linear in x: its tangent is unpooling dx; gradient: dx = g gathered at the indices."""
max_unpool1d, max_unpool2d, max_unpool3d = (ranked("max_unpool", max_unpool, nd, _MAX_UNPOOL_DOC) for nd in (1, 2, 3))


__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d", "unpool_sizes", "MAX_UNPOOL", "MAX_UNPOOL_GATHER"]
