"""Convolution geometry: the static configuration of one convolution, the transposed convolution's sizes, and the
padding arithmetic of its rules (public: layers and models size themselves with it).

    out = floor((N + P_lo + P_hi - K_eff) / S) + 1                         (the forward; `Geometry.out_sizes`)
    N   = (O-1)*S + K_eff - P_lo - P_hi + output_padding                   (the transposed conv, solving for N)
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..geometry import SPATIAL_AXES, Geometry, as_tuple, effective_window, make_geometry, resolve_padding


class ConvSpec(NamedTuple):
    """Static convolution configuration: the window geometry, the number of groups, the path an enclosing
    `force_algorithm` pinned when the forward was traced (so that the backward, traced later, takes it too), and
    whether the forward was traced as a loop's body (`tracing.loop_body`; its backward runs in the loop too)."""

    geo: Geometry
    groups: int
    forced: str | None = None
    looped: bool = False

    def is_depthwise(self, w_shape) -> bool:
        """groups == C_in > 1: one input channel per group (the filter's C_in / groups axis is 1)."""
        return self.groups > 1 and w_shape[-2] == 1


def dimension_numbers(nd: int, lhs: str, rhs: str, out: str):
    """Dimension-number strings with the spatial letters filled in, e.g. ("N*C", "*IO", "N*C") -> NHWC, HWIO, NHWC."""
    sp = SPATIAL_AXES[nd]
    return tuple(s.replace("*", sp) for s in (lhs, rhs, out))


def dx_zero_fraction(spec: ConvSpec, in_sizes) -> float:
    """The share of the canonical dX convolution's multiplies that hit inserted or padded zeros of g.

    The canonical form evaluates the window at every (padded-input) position, prod(in) of them; only the prod(out)
    entries of g are non-zero, each meeting every tap once: useful work prod(out) * prod(K) of prod(in) * prod(K).
    """
    out = spec.geo.out_sizes(in_sizes)
    return 1.0 - math.prod(out) / math.prod(in_sizes)


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
    k_eff = effective_window(window, dilation)
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


__all__ = ["ConvSpec", "dimension_numbers", "dx_zero_fraction", "transpose_geometry"]
