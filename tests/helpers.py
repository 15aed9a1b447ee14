"""Shared test helpers: random inputs and hypothesis strategies for valid window geometries."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st


def normal(rng, *shape, dtype=jnp.float64):
    return jnp.asarray(rng.normal(size=shape), dtype)


def paddings(nd: int):
    """VALID, SAME, an int (0 included), or asymmetric (lo, hi) pairs."""
    pair = st.tuples(st.integers(0, 2), st.integers(0, 2))
    return st.one_of(
        st.sampled_from(["VALID", "SAME"]),
        st.integers(0, 2),
        st.tuples(*([pair] * nd)),
    )


@st.composite
def conv_configs(draw, nd=None, max_groups=3):
    """A valid convolution: shapes, stride 1-3, padding, dilation 1-2, groups (depth-wise included), odd sizes."""
    nd = draw(st.sampled_from([1, 2])) if nd is None else nd
    groups = draw(st.integers(1, max_groups))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = draw(paddings(nd))
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = tuple(ke + draw(st.integers(0, 5)) for ke in k_eff)
    batch = draw(st.integers(1, 2))
    return dict(x_shape=(batch, *size, cin), w_shape=(*kernel, cin // groups, cout),
                kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


@st.composite
def pool_configs(draw, nd=2):
    """A valid pooling geometry: window 1-3 (overlapping when stride < window), stride 1-3, padding < window."""
    window = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))) for k in window)
    padding = draw(st.one_of(st.just("VALID"), st.just(pads)))
    size = tuple(k + draw(st.integers(0, 5)) for k in window)
    channels = draw(st.integers(1, 3))
    return dict(x_shape=(draw(st.integers(1, 2)), *size, channels), window=window, stride=stride, padding=padding)


def lax_padding(padding, x_shape, w_shape, stride, dilation):
    """The (lo, hi) pairs funcnn resolves, for feeding lax directly."""
    from funcnn.primitives.geometry import resolve_padding

    nd = len(x_shape) - 2
    stride = (stride,) * nd if isinstance(stride, int) else stride
    dilation = (dilation,) * nd if isinstance(dilation, int) else dilation
    k_eff = [d * (k - 1) + 1 for k, d in zip(w_shape[:nd], dilation)]
    return resolve_padding(padding, x_shape[1:-1], k_eff, stride), stride, dilation


def dropped_rows(x_shape, w_shape, stride, padding, dilation):
    """Rows the forward floor drops: the output_padding that makes conv_transpose the exact adjoint."""
    pads, stride, dilation = lax_padding(padding, x_shape, w_shape, stride, dilation)
    nd = len(x_shape) - 2
    k_eff = [d * (k - 1) + 1 for k, d in zip(w_shape[:nd], dilation)]
    return tuple((n + lo + hi - ke) % s for n, (lo, hi), ke, s in zip(x_shape[1:-1], pads, k_eff, stride))


def inner(a, b):
    return float(np.vdot(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()))


def torch_or_skip():
    """PyTorch, the independent float64 oracle, or a visible skip where it is not installed."""
    return pytest.importorskip("torch", reason="PyTorch is the independent oracle here; pip install torch")


def check_vjp(f, reference, *args, fd=True, **options):
    """`funcnn.verify.check_vjp` restricted to the forward and VJP against `reference` (None: none) and, with fd=True,
    finite differences: the checks these tests were written for (the full table runs in tests/verify)."""
    from funcnn.verify import check_vjp as full

    checks = (("forward", "vjp") if reference is not None else ()) + (("finite_differences",) if fd else ())
    return full(f, *args, reference=reference if reference is not None else f, checks=checks, **options)
