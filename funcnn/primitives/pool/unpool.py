"""Max unpooling: the decoder half of SegNet-style networks, placing each pooled value back where its maximum was.

With the indices a `max_pool{nd}d(..., return_indices=True)` returned (PyTorch's flat index q of the maximum in its
channel plane of the pooled input), over the output's flattened spatial positions q, and m[n, q, c] the number of
entries i whose index is q (the multiplicity; overlapping windows name one maximum once per window that chose it):

    unpool  y[n, q, c] = sum_{i: idx[n, i, c] = q} x[n, i, c] / m[n, q, c]    (0 where m = 0)
    gather  dx[n, i, c] = g[n, q, c] / m[n, q, c]                              q = idx[n, i, c]

Colliding writes average, so the unpool is linear and well defined for any indices; for the indices of a max pool
every copy of a maximum carries the same value, and the average is that value (to the rounding of (m a) / m, an ulp
or two): the forward is PyTorch's. The gather
is the unpool's exact transpose, <unpool(x), g> = sum_q g_q sum_{i -> q} x_i / m_q = <x, gather(g)>: each copy gets
g divided by its multiplicity. So the tangent of unpooling is unpooling the tangent, the backward is the gather, and
max_unpool(max_pool(x)) has the gradient of x masked at its maxima (each maximum's g once, whatever the number of
windows that chose it). PyTorch's backward gives every copy all of g, so its composite counts a maximum once per
window: the two agree whenever the indices are distinct (windows that tile). The unpool itself writes at
data-dependent places: it is a scatter-add (the forward, not a backward; a backward of max pooling never scatters).
Concrete indices outside [0, prod(output sizes)) are refused; traced ones (under jit) write nothing and read 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import carrier
from ..arguments import as_array, check_rank
from ..geometry import as_tuple, resolve_padding, spatial_sizes
from .common import LAYOUT, checked_input, ranked


def _planes(a):
    """(N, *S, C) -> (N, prod(S), C) (the sizes written out: at N = 0 a -1 has nothing to divide)."""
    return a.reshape(a.shape[0], math.prod(a.shape[1:-1]), a.shape[-1])


def _in_range(idx, size):
    """Indices outside [0, size) moved to `size` (JAX would wrap a negative index; these must hit nothing)."""
    return jnp.where((idx >= 0) & (idx < size), idx, size)


def _scatter_add(flat, values, q):
    """out[n, p, c] = sum_{i: flat[n, i, c] = p} values[n, i, c] over (N, q, C); index q (out of range) is dropped."""
    n, c = values.shape[0], values.shape[-1]
    rows, channels = jnp.arange(n)[:, None, None], jnp.arange(c)[None, None, :]
    return jnp.zeros((n, q, c), values.dtype).at[rows, flat, channels].add(values, mode="drop")


def _multiplicity(flat, q, dtype):
    """m[n, p, c]: how many entries of each plane index position p, as `dtype` (1 where none: nothing divides 0)."""
    count = _scatter_add(flat, jnp.ones(flat.shape, dtype), q)
    return jnp.maximum(count, 1)


def _gather_impl(idx, g):
    """dx[n, i, c] = g[n, q, c] / m[n, q, c] at q = idx[n, i, c] (0 for an index outside g's plane)."""
    plane = _planes(g)
    q = plane.shape[1]
    flat = _in_range(_planes(idx), q)
    shared = plane / _multiplicity(flat, q, plane.dtype)                    # each copy's share of g
    out = jnp.take_along_axis(shared, flat, axis=1, mode="fill", fill_value=0)
    return out.reshape(idx.shape)


def _unpool_impl(idx, x, *, sizes):
    """y[n, q, c] = the mean of the x[n, i, c] whose index is q, over a zero (N, *sizes, C) array."""
    n, c = x.shape[0], x.shape[-1]
    q = math.prod(sizes)
    flat = _in_range(_planes(idx), q)
    summed = _scatter_add(flat, _planes(x), q)
    return (summed / _multiplicity(flat, q, summed.dtype)).reshape(n, *sizes, c)


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


def _check_concrete_range(name, indices, sizes):
    """ValueError for concrete indices outside [0, prod(sizes)) (a traced index cannot be checked at trace time)."""
    try:
        values = np.asarray(indices)
    except (TypeError, jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    q = math.prod(sizes)
    bad = np.flatnonzero((values < 0) | (values >= q))
    if bad.size:
        raise ValueError(f"{name}: indices must lie in [0, {q}), the positions of an output of spatial size "
                         f"{tuple(sizes)}; got {values.flat[bad[0]]} at flat position {bad[0]} ({bad.size} out of "
                         "range: indices of another pool, or output_size too small)")


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
    _check_concrete_range(name, indices, sizes)
    return MAX_UNPOOL(indices.astype(jnp.int32), x, sizes=sizes)


_MAX_UNPOOL_DOC = """{nd}-D max unpooling: x {layout} and the indices of `max_pool{nd}d(..., return_indices=True)` ->
    (N, *out, C), zeros except each x at its index (PyTorch's `max_unpool{nd}d`; values that share an index average,
    which for a max pool's indices is the one maximum). out = (in - 1) * S - P_lo - P_hi + K per axis (window,
    stride and padding those of the pool), or `output_size` within a stride of that. Linear in x: its tangent is
    unpooling dx; gradient: dx = g gathered at the indices, divided by how many entries share each index."""
max_unpool1d, max_unpool2d, max_unpool3d = (ranked("max_unpool", max_unpool, nd, _MAX_UNPOOL_DOC) for nd in (1, 2, 3))


__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d", "unpool_sizes", "MAX_UNPOOL", "MAX_UNPOOL_GATHER"]
