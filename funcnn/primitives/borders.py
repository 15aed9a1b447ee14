"""Padding modes: the border of a padded input filled from the input itself, and the backward that folds the
border's cotangent back onto the entries it copied.

Per spatial axis of size N padded by (lo, hi), the padded entry p (0 <= p < lo + N + hi) copies the input entry
src(p), with j = p - lo the position relative to the input (PyTorch's `torch.nn.functional.pad` semantics):

    zeros      src(p) = j where 0 <= j < N, else nothing (the entry is 0)
    reflect    src(p) = |j|, mirrored again at N-1: j < 0 -> -j, j >= N -> 2(N-1) - j   (the edge is not repeated)
    replicate  src(p) = clamp(j, 0, N-1)                                                  (the edge is repeated)
    circular   src(p) = j mod N                                                           (the input wraps around)

The forward is y[p] = x[src(p)], a copy, so the op is linear: its tangent is the op applied to dx, and its
transpose, the backward, is the adjoint of the copy (dy/dx[j] is 1 at every p with src(p) = j, so the chain rule sums
g over those p, as the lecture's "+=" does for overlapping windows):

    dx[j] = sum_{p : src(p) = j} g[p]      the interior g[lo:lo+N] plus each border entry of g folded back onto the
                                           entry it copied: reflect adds g at the mirrored index, circular at the
                                           wrapped one, replicate sums the whole border onto the edge entry

Axes are independent (the copy separates over them), so the N-d op is one axis after the other, the forward from the
first axis and the fold from the last. Both are slices, reversals, concatenations and pads: no index arrays, no
scatter. A mode other than "zeros" needs lo, hi < N for reflect (PyTorch's limit: the mirror must stay inside the
input) and lo, hi <= N for circular.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from . import carrier
from .arguments import as_float, check_rank
from .cases import cases_for
from .geometry import resolve_padding, spatial_sizes
from .windows import crop_spatial, pad_spatial, padded_sum

MODES = ("zeros", "reflect", "replicate", "circular")


def check_mode(name: str, mode) -> str:
    """The padding mode, or ValueError naming the argument and the modes known."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{name}: padding_mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_fits(name: str, mode: str, x_shape, pads) -> None:
    """Reflect needs lo, hi < N (the mirror image of the border lies inside the input), circular lo, hi <= N, and
    every mode but zeros an input entry to copy (N >= 1); ValueError naming the sizes otherwise."""
    limit = {"reflect": (lambda n: n - 1, "smaller than"), "circular": (lambda n: n, "at most")}.get(mode)
    for axis, (n, (lo, hi)) in enumerate(zip(x_shape[1:-1], pads)):
        if mode != "zeros" and n < 1 and (lo or hi):
            raise ValueError(f"{name}: padding_mode={mode!r} copies from the input, but spatial axis {axis} of x "
                             f"shape {tuple(x_shape)} is empty")
        if limit is not None and max(lo, hi) > limit[0](n):
            raise ValueError(f"{name}: padding_mode={mode!r} needs a padding {limit[1]} the input size on every "
                             f"axis, got padding ({lo}, {hi}) on spatial axis {axis} of size {n} "
                             f"(x shape {tuple(x_shape)})")


# ----------------------------------------------------------------------------------------------------------------
# one axis: the copy and its fold


def _take(x, axis, start, stop, step=1):
    """x[start:stop:step] along `axis` (a reversed slice for step = -1, start and stop as in Python)."""
    if step == 1:
        return lax.slice_in_dim(x, start, stop, axis=axis)
    return lax.rev(lax.slice_in_dim(x, stop + 1, start + 1, axis=axis), (axis,))


def _copy_axis(x, axis, lo, hi, mode):
    """y[p] = x[src(p)] along one axis (a mode other than zeros)."""
    n = x.shape[axis]
    if mode == "reflect":     # p < lo copies lo - p, ..., 1; the high border n-2, n-3, ...
        before, after = _take(x, axis, lo, 0, -1), _take(x, axis, n - 2, n - 2 - hi, -1)
    elif mode == "replicate":
        edge = lambda i, k: jnp.repeat(lax.slice_in_dim(x, i, i + 1, axis=axis), k, axis=axis)  # noqa: E731
        before, after = edge(0, lo), edge(n - 1, hi)
    else:                     # circular: the last lo entries before, the first hi after
        before, after = lax.slice_in_dim(x, n - lo, n, axis=axis), lax.slice_in_dim(x, 0, hi, axis=axis)
    return jnp.concatenate([before, x, after], axis=axis)


def _fold_axis(g, axis, lo, hi, n, mode):
    """dx[j] = sum_{p : src(p) = j} g[p] along one axis (a mode other than zeros): the interior, plus the borders
    folded back, each placed at its start along an axis of n entries ("+=" where they meet, `padded_sum`)."""
    interior = lax.slice_in_dim(g, lo, lo + n, axis=axis)
    before, after = lax.slice_in_dim(g, 0, lo, axis=axis), lax.slice_in_dim(g, lo + n, lo + n + hi, axis=axis)
    if mode == "reflect":     # before[p] copied x[lo - p]: reversed, it lands on [1, lo + 1); after on [n-1-hi, n-1)
        terms = [(lax.rev(before, (axis,)), 1), (lax.rev(after, (axis,)), n - 1 - hi)]
    elif mode == "replicate":  # every border entry copied the edge
        terms = [(jnp.sum(before, axis=axis, keepdims=True), 0), (jnp.sum(after, axis=axis, keepdims=True), n - 1)]
    else:                     # circular: before copied [n - lo, n), after [0, hi)
        terms = [(before, n - lo), (after, 0)]

    def at(v, start):
        config = [(0, 0, 0)] * v.ndim
        config[axis] = (start, n - start - v.shape[axis], 0)
        return v, config

    return padded_sum(at(v, start) for v, start in [(interior, 0), *terms] if v.shape[axis])


# ----------------------------------------------------------------------------------------------------------------
# the op and its adjoint


def _border_pad_impl(x, *, pads, mode):
    if mode == "zeros":
        return pad_spatial(x, pads)
    for axis, (lo, hi) in enumerate(pads, start=1):
        x = _copy_axis(x, axis, lo, hi, mode)
    return x


def _border_fold_impl(g, *, pads, mode, sizes):
    """dx[n, j, c] = sum over the padded positions p copying j of g[n, p, c], axis by axis (zeros: the crop)."""
    if mode == "zeros":
        return crop_spatial(g, pads)
    for axis in reversed(range(1, len(pads) + 1)):
        lo, hi = pads[axis - 1]
        g = _fold_axis(g, axis, lo, hi, sizes[axis - 1], mode)
    return g


BORDER_PAD, BORDER_FOLD = carrier.define_adjoint_pair(
    "border_pad", _border_pad_impl, "border_fold", _border_fold_impl, fixed=0, adjoint_params=spatial_sizes,
    batch=carrier.fold_into_batch)


def pad_border(name: str, x, pads, mode: str):
    """x (N, *spatial, C) padded by `pads` ((lo, hi) per spatial axis, resolved) in `mode`: the step the convolutions
    and pools take before a VALID window when padding_mode is not "zeros". Checks the sizes, naming `name`."""
    check_fits(name, mode, x.shape, pads)
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    return BORDER_PAD(x, pads=tuple(tuple(int(v) for v in p) for p in pads), mode=mode)


def border_pad(x, padding, mode: str = "reflect"):
    """Pad the spatial axes of x (N, *spatial, C) by `padding` (an int, one int per axis, or (lo, hi) pairs) with
    the input's own entries: "reflect", "replicate", "circular" (PyTorch's `F.pad` modes) or "zeros".

    Linear: its tangent is the op on dx. Gradient: the interior of g plus every border entry of g folded back onto
    the input entry it copied (reflect: the mirrored index; circular: the wrapped one; replicate: the edge)."""
    x = as_float("border_pad", "x", x)
    if x.ndim < 3:
        check_rank("border_pad", "x", x.shape, 3, "(N, *spatial, C) with at least one spatial axis")
    mode = check_mode("border_pad", mode)
    if isinstance(padding, str):
        raise ValueError(f"border_pad: padding must be an int or (lo, hi) pairs, got {padding!r}")
    nd = x.ndim - 2
    try:
        pads = resolve_padding(padding, x.shape[1:-1], (1,) * nd, (1,) * nd)
    except ValueError as err:
        raise ValueError(f"border_pad: {err}") from None
    return pad_border("border_pad", x, pads, mode)


__all__ = ["MODES", "BORDER_PAD", "BORDER_FOLD", "border_pad", "check_mode", "check_fits", "pad_border"]


@cases_for("border_pad")
def border_cases(make, ref):
    configs = [((2, 5, 3), (4,), "reflect"), ((2, 5, 4, 2), ((2, 3), (1, 0)), "reflect"),
               ((2, 4, 3, 2), ((3, 5), (0, 2)), "replicate"), ((2, 4, 3, 2), ((4, 1), (3, 3)), "circular"),
               ((1, 3, 4, 3, 2), 2, "reflect"), ((2, 3, 2), 2, "zeros")]
    for i, (shape, padding, mode) in enumerate(configs):
        yield make.case("border_pad", f"{shape} {padding} {mode}", lambda x, p=padding, m=mode: border_pad(x, p, m),
                        lambda x, p=padding, m=mode: ref.border_pad(x, p, m), make.normal(*shape), quick=i in (1, 3))
