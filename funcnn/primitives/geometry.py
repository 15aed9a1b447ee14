"""Argument checking, padding arithmetic and window helpers shared by the primitive families.

Everything here runs at trace time on static shapes: errors are raised before any computation and name the
argument and the shapes involved.
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

Pads = tuple[tuple[int, int], ...]


class Geometry(NamedTuple):
    """Static description of a sliding window over the spatial axes (hashable: used as a nondiff argument)."""

    window: tuple[int, ...]  # kernel or pooling window size per spatial axis
    stride: tuple[int, ...]
    padding: Pads  # (lo, hi) per spatial axis, already resolved
    dilation: tuple[int, ...]

    @property
    def effective_window(self) -> tuple[int, ...]:
        """K_eff = D*(K-1)+1 per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.window, self.dilation))

    def out_sizes(self, in_sizes: Sequence[int]) -> tuple[int, ...]:
        """floor((N + P_lo + P_hi - K_eff) / S) + 1 per axis (lecture: output size)."""
        return tuple(
            (n + lo + hi - ke) // s + 1
            for n, (lo, hi), ke, s in zip(in_sizes, self.padding, self.effective_window, self.stride)
        )

    def dropped(self, in_sizes: Sequence[int]) -> tuple[int, ...]:
        """Rows at the high end of the padded input that the floor in the output size leaves unused."""
        return tuple(
            (n + lo + hi - ke) % s
            for n, (lo, hi), ke, s in zip(in_sizes, self.padding, self.effective_window, self.stride)
        )


# ----------------------------------------------------------------------------------------------------------------
# argument normalisation


def as_tuple(value, n: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or a length-n sequence of ints, each >= minimum, as a tuple; ValueError naming `name` otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}") from None
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
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
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
            if isinstance(entry, (int, np.integer)):
                pairs.append((int(entry), int(entry)))
            else:
                lo_hi = tuple(int(v) for v in entry)
                if len(lo_hi) != 2:
                    raise ValueError(f"each padding entry must be an int or a (lo, hi) pair, got {entry!r}")
                pairs.append(lo_hi)
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
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    try:
        pads = resolve_padding(padding, x_shape[1:-1], k_eff, stride)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    geo = Geometry(window, stride, pads, dilation)
    for axis, (size, (lo, hi), ke) in enumerate(zip(x_shape[1:-1], pads, k_eff)):
        if size + lo + hi < ke:
            what = window_name if dilation[axis] == 1 else f"dilated {window_name} (K_eff = D*(K-1)+1)"
            raise ValueError(
                f"{name}: {what} {ke} is larger than the padded input {size}+{lo}+{hi}={size + lo + hi} "
                f"on spatial axis {axis} (input shape {tuple(x_shape)}, {window_name} {window}, padding {pads})"
            )
    return geo


def check_rank(name: str, arg: str, shape, rank: int, layout: str):
    if len(shape) != rank:
        raise ValueError(f"{name}: {arg} must have rank {rank} ({layout}), got shape {tuple(shape)}")


def float_dtype(name: str, *arrays):
    """The common floating dtype of the arrays (None entries ignored); TypeError for integer or bool inputs."""
    dtype = jnp.result_type(*[a for a in arrays if a is not None])
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating-point inputs, got dtype {dtype}")
    return dtype


def accumulation_dtype(dtype):
    """float32 accumulation for bfloat16 / float16 inputs, the input dtype otherwise."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


# ----------------------------------------------------------------------------------------------------------------
# windows as strided slices (used by depth-wise taps and every pool)


def window_offsets(window: Sequence[int]):
    """All offsets inside a window, in row-major order (the tie-breaking order of max pooling)."""
    return itertools.product(*(range(k) for k in window))


def window_slice(xp, offset, geo: Geometry, out_sizes):
    """xp[n, S*i + D*u, c] for all output positions i, at one window offset u: one strided slice of the padded input."""
    starts = [0] + [d * u for u, d in zip(offset, geo.dilation)] + [0]
    limits = (
        [xp.shape[0]]
        + [d * u + s * (o - 1) + 1 for u, d, s, o in zip(offset, geo.dilation, geo.stride, out_sizes)]
        + [xp.shape[-1]]
    )
    return lax.slice(xp, starts, limits, [1, *geo.stride, 1])


def window_unslice(v, offset, geo: Geometry, padded_sizes):
    """The adjoint of `window_slice`: place v[n, i, c] at [n, S*i + D*u, c] of a zero array of the padded size.

    Lecture "upsample": S-1 zeros inserted between entries (interior padding), then shifted to the window offset.
    No scatter is involved, so the result is deterministic on every backend.
    """
    config = [(0, 0, 0)]
    for u, d, s, o, p in zip(offset, geo.dilation, geo.stride, v.shape[1:-1], padded_sizes):
        lo = d * u
        config.append((lo, p - lo - (s * (o - 1) + 1), s - 1))
    config.append((0, 0, 0))
    return lax.pad(v, jnp.zeros((), v.dtype), config)


def pad_spatial(x, pads: Pads, value=0.0):
    """Zero-pad (or pad with `value`) the spatial axes of an (N, *spatial, C) array."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    return lax.pad(x, jnp.asarray(value, x.dtype), [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)])


def crop_spatial(xp, pads: Pads):
    """Remove the forward padding again (lecture: "the zero padding regions must be deleted before further backprop")."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return xp
    starts = [0] + [lo for lo, _ in pads] + [0]
    limits = [xp.shape[0]] + [size - hi for size, (_, hi) in zip(xp.shape[1:-1], pads)] + [xp.shape[-1]]
    return lax.slice(xp, starts, limits)


def tiles_exactly(geo: Geometry) -> bool:
    """Windows that neither overlap nor leave gaps, without padding: stride == window, dilation 1."""
    return (geo.stride == geo.window and all(d == 1 for d in geo.dilation)
            and all(lo == 0 and hi == 0 for lo, hi in geo.padding))


def place_windows(per_offset, geo: Geometry, in_sizes):
    """The adjoint of taking every window slice: sum over window offsets u of per_offset(t, u) (t the offset's
    row-major index) placed at S*i + D*u, then the forward padding cropped away.

    This is the "+=" of the lecture's backward loops: overlapping windows accumulate without a scatter.
    """
    padded = [n + lo + hi for n, (lo, hi) in zip(in_sizes, geo.padding)]
    total = None
    for t, u in enumerate(window_offsets(geo.window)):
        term = window_unslice(per_offset(t, u), u, geo, padded)
        total = term if total is None else total + term
    return crop_spatial(total, geo.padding)


def spread_windows(h, geo: Geometry, in_sizes):
    """Every input receives the sum of h over the windows it lies in (pooling backward, lecture "+=").

    When the windows tile the input (stride == window, no padding) each input lies in one window: h is broadcast
    over its window, and the rows the floor dropped get zeros.
    """
    if tiles_exactly(geo):
        n, *out, c = h.shape
        interleaved = [d for o, k in zip(out, geo.window) for d in (o, 1)]
        full = [d for o, k in zip(out, geo.window) for d in (o, k)]
        tiled = jnp.broadcast_to(h.reshape(n, *interleaved, c), (n, *full, c))
        tiled = tiled.reshape(n, *(o * k for o, k in zip(out, geo.window)), c)
        rest = [(0, size - o * k, 0) for size, o, k in zip(in_sizes, out, geo.window)]
        return lax.pad(tiled, jnp.zeros((), h.dtype), [(0, 0, 0), *rest, (0, 0, 0)])
    return place_windows(lambda t, u: h, geo, in_sizes)


# ----------------------------------------------------------------------------------------------------------------
# forward mode


def reverse_mode_only(name: str) -> Callable:
    """Re-raise JAX's forward-mode error for a custom_vjp with a message that names the funcnn primitive."""

    def decorate(fun):
        @functools.wraps(fun)
        def wrapper(*args, **kwargs):
            try:
                return fun(*args, **kwargs)
            except TypeError as err:
                if "forward-mode" not in str(err):
                    raise
                raise TypeError(
                    f"funcnn.{name} has a hand-written reverse-mode rule (jax.custom_vjp) and does not support "
                    "forward-mode autodiff (jax.jvp, jax.jacfwd, jax.hessian, jax.linearize). Use jax.grad, jax.vjp "
                    f"or jax.jacrev, or differentiate funcnn.reference.{name} in forward mode."
                ) from err

        return wrapper

    return decorate
