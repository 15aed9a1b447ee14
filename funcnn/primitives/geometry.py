"""Sliding-window geometry shared by the convolution and pooling families: sizes, strides, padding, dilation.

Everything here runs at trace time on static shapes (plain Python ints): errors are raised before any computation
and name the argument and the shapes involved. The formulas are lecture 004's ("The size of the convolution",
"Zero padding"); docs/primitives.md, "Convolution", restates them:

    K_eff = D*(K-1) + 1                                   (a dilated window)
    out   = floor((N + P_lo + P_hi - K_eff) / S) + 1      (output size per spatial axis)
    "SAME": out = ceil(N/S), P = max((out-1)*S + K_eff - N, 0), P_lo = floor(P/2), P_hi = P - P_lo
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

Pads = tuple[tuple[int, int], ...]

SPATIAL_AXES = {1: "W", 2: "HW", 3: "DHW"}  # the spatial ranks funcnn's primitives take, and their axis letters


def layout(nd: int, lead: str = "N", trail: str = "C") -> str:
    """A layout string with the nd spatial letters between `lead` and `trail`: layout(3) = "NDHWC",
    layout(2, "", "IO") = "HWIO"."""
    return lead + SPATIAL_AXES[nd] + trail


def effective_window(window: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """K_eff = D*(K-1)+1 per axis: the extent a dilated window covers."""
    return tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))


class Geometry(NamedTuple):
    """Static description of a sliding window over the spatial axes (hashable: used as a nondiff argument)."""

    window: tuple[int, ...]  # kernel or pooling window size per spatial axis
    stride: tuple[int, ...]
    padding: Pads  # (lo, hi) per spatial axis, already resolved
    dilation: tuple[int, ...]

    @property
    def effective_window(self) -> tuple[int, ...]:
        """K_eff = D*(K-1)+1 per axis."""
        return effective_window(self.window, self.dilation)

    def padded_sizes(self, in_sizes: Sequence[int]) -> tuple[int, ...]:
        """N + P_lo + P_hi per axis."""
        return tuple(n + lo + hi for n, (lo, hi) in zip(in_sizes, self.padding))

    def out_sizes(self, in_sizes: Sequence[int]) -> tuple[int, ...]:
        """floor((N + P_lo + P_hi - K_eff) / S) + 1 per axis (lecture: output size)."""
        return tuple((p - ke) // s + 1 for p, ke, s in zip(self.padded_sizes(in_sizes), self.effective_window,
                                                          self.stride))

    def dropped(self, in_sizes: Sequence[int]) -> tuple[int, ...]:
        """Rows at the high end of the padded input that the floor in the output size leaves unused."""
        return tuple((p - ke) % s for p, ke, s in zip(self.padded_sizes(in_sizes), self.effective_window,
                                                      self.stride))


def spatial_sizes(params, specs) -> dict:
    """An adjoint pair's extra parameter (`carrier.define_adjoint_pair(adjoint_params=...)`): {"sizes": the spatial
    sizes of the (N, *spatial, C) array the adjoint maps back to}."""
    return {"sizes": tuple(specs[0].shape[1:-1]) if specs else None}


# ----------------------------------------------------------------------------------------------------------------
# argument normalisation


def as_tuple(value, n: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or a length-n sequence of ints, each >= minimum, as a tuple; ValueError naming `name` otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        if isinstance(value, (str, bytes, bool, float)):
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        try:
            entries = list(value)
        except TypeError:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in entries):
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        values = tuple(int(v) for v in entries)
        if len(values) != n:
            raise ValueError(f"{name} must have {n} entries (one per spatial axis), got {value!r}")
    for v in values:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return values


def same_padding(in_size: int, k_eff: int, stride: int) -> tuple[int, int]:
    """Lecture rule for "SAME": output ceil(N/S); total P = max((ceil(N/S)-1)*S + K_eff - N, 0), P_lo = floor(P/2)."""
    out = -(-in_size // stride)
    total = max((out - 1) * stride + k_eff - in_size, 0)
    return total // 2, total - total // 2


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def resolve_padding(padding, in_sizes: Sequence[int], k_eff: Sequence[int], stride: Sequence[int]) -> Pads:
    """Turn "VALID", "SAME", an int, n ints, or n (lo, hi) pairs into n (lo, hi) pairs of non-negative ints."""
    n = len(in_sizes)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            return tuple(same_padding(*args) for args in zip(in_sizes, k_eff, stride))
        raise ValueError(f'padding must be "VALID", "SAME", an int or (lo, hi) pairs, got unknown string {padding!r}')
    if _is_int(padding):
        pairs = ((int(padding), int(padding)),) * n
    else:
        try:
            entries = list(padding)
        except TypeError:
            raise ValueError(f"padding must be a string, an int or a sequence, got {padding!r}") from None
        if len(entries) != n:
            raise ValueError(f"padding must have {n} entries (one per spatial axis), got {padding!r}")
        pairs = []
        for entry in entries:
            if _is_int(entry):
                pairs.append((int(entry), int(entry)))
                continue
            try:
                lo_hi = tuple(entry)
            except TypeError:
                lo_hi = ()
            if len(lo_hi) != 2 or not all(_is_int(v) for v in lo_hi):
                raise ValueError(f"each padding entry must be an int or a (lo, hi) pair of ints, got {entry!r} "
                                 f"in padding {padding!r}")
            pairs.append((int(lo_hi[0]), int(lo_hi[1])))
        pairs = tuple(pairs)
    if any(p < 0 for pair in pairs for p in pair):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pairs


def make_geometry(name, x_shape, window, stride, padding, dilation, *, window_name="window") -> Geometry:
    """Resolve and check a window geometry against the spatial sizes of `x_shape` (N, *spatial, C)."""
    n = len(x_shape) - 2
    window = as_tuple(window, n, f"{name}: {window_name}")
    stride = as_tuple(stride, n, f"{name}: stride")
    dilation = as_tuple(dilation, n, f"{name}: dilation")
    k_eff = effective_window(window, dilation)
    try:
        pads = resolve_padding(padding, x_shape[1:-1], k_eff, stride)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    geo = Geometry(window, stride, pads, dilation)
    for axis, (size, padded, ke) in enumerate(zip(x_shape[1:-1], geo.padded_sizes(x_shape[1:-1]), k_eff)):
        if padded < ke:
            lo, hi = pads[axis]
            what = window_name if dilation[axis] == 1 else f"dilated {window_name} (K_eff = D*(K-1)+1)"
            raise ValueError(
                f"{name}: {what} {ke} is larger than the padded input {size}+{lo}+{hi}={padded} "
                f"on spatial axis {axis} (input shape {tuple(x_shape)}, {window_name} {window}, padding {pads})"
            )
    return geo


__all__ = ["Pads", "SPATIAL_AXES", "layout", "spatial_sizes", "Geometry", "effective_window", "as_tuple",
           "same_padding", "resolve_padding", "make_geometry"]
