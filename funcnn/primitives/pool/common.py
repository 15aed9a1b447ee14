"""What every pool shares: the window geometry (with PyTorch's ceil mode), the input checks, the window counts of
the mean, and how the public 1-D / 2-D names are made from one N-d function per kind."""

from __future__ import annotations

import functools
import inspect

import numpy as np
from jax import lax

from ..arguments import as_float, check_nonempty_spatial, check_rank, names_forward_mode_error
from ..borders import check_mode, pad_border
from ..geometry import SPATIAL_AXES, Geometry, layout, make_geometry

LAYOUT = {nd: layout(nd) for nd in SPATIAL_AXES}


def geometry_of(window, stride, padding) -> Geometry:
    """The Geometry of a pool's window (no dilation)."""
    return Geometry(window, stride, padding, (1,) * len(window))


def geometry_params(geo: Geometry) -> dict:
    """A pool op's parameters from its Geometry."""
    return dict(window=geo.window, stride=geo.stride, padding=geo.padding)


def reduce_window(x, init, op, geo: Geometry):
    """lax.reduce_window with a NumPy scalar init, so that JAX emits its differentiable reduce_window_max / _sum
    (`verify.primal_of` differentiates the forward as a reference)."""
    return lax.reduce_window(x, np.asarray(init, x.dtype), op, (1, *geo.window, 1), (1, *geo.stride, 1),
                             ((0, 0), *geo.padding, (0, 0)))


def window_counts(geo: Geometry, in_sizes, out_sizes, include_pad: bool, overhang=None):
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


def bordered(name, x, geo: Geometry, overhang, padding_mode):
    """With padding_mode other than "zeros": x padded in that mode by the geometry's padding (less a ceil-mode
    overhang, which stays outside the input and counts as nothing), and the geometry left with the overhang alone.
    The pool then sees real values in its border: count_include_pad makes no difference there."""
    mode = check_mode(name, padding_mode)
    if mode == "zeros":
        return x, geo
    pads = tuple((lo, hi - extra) for (lo, hi), extra in zip(geo.padding, overhang))
    return pad_border(name, x, pads, mode), geo._replace(padding=tuple((0, extra) for extra in overhang))


def checked_input(name, nd, x):
    """x as a float array of rank nd + 2 (ValueError naming `name` otherwise)."""
    x = as_float(name, "x", x)
    check_rank(name, "x", x.shape, nd + 2, LAYOUT[nd])
    return x


def ranked(kind: str, fn, nd: int, doc: str):
    """The public `{kind}{nd}d`: `fn` at rank nd + 2, its errors naming the public function, `doc` its docstring
    ({nd} and {layout} filled in)."""
    name = f"{kind}{nd}d"

    @functools.wraps(fn)
    def public(*args, **kwargs):
        return fn(*args, **kwargs, nd=nd, name=name)

    public.__name__ = public.__qualname__ = name
    public.__doc__ = doc.format(nd=nd, layout=f"(N, {', '.join(SPATIAL_AXES[nd])}, C)")
    full = inspect.signature(fn)  # the N-d function's, less the rank and the name this function fixes
    public.__signature__ = full.replace(parameters=[p for p in full.parameters.values()
                                                    if p.name not in ("nd", "name")])
    return names_forward_mode_error(name)(public)


__all__ = ["LAYOUT", "bordered", "geometry_of", "geometry_params", "reduce_window", "window_counts",
           "pool_geometry", "checked_input", "ranked"]
