"""Pooling: forward vs reference and lax, VJP vs reference and finite differences, ties, lecture numbers, errors."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax import lax

import funcnn as fn
from funcnn.verify import reference as ref

from ..helpers import check_vjp, normal, pool_configs

LECTURE_MAP = jnp.array([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]).reshape(1, 4, 4, 1)


def _lax_pool(x, init, op, window, stride, padding):
    pads = padding if not isinstance(padding, str) else lax.padtype_to_pads(x.shape[1:-1], window, stride, padding)
    return lax.reduce_window(x, init, op, (1, *window, 1), (1, *stride, 1), ((0, 0), *pads, (0, 0)))


# ---------------------------------------------------------------------------------------------------------------
# the lecture's worked numbers


def test_lecture_max_and_mean_pool_example():
    np.testing.assert_array_equal(fn.max_pool2d(LECTURE_MAP, 2)[0, ..., 0], [[6, 8], [3, 4]])
    np.testing.assert_allclose(fn.avg_pool2d(LECTURE_MAP, 2)[0, ..., 0], [[3.25, 5.25], [2, 2]])


def test_lecture_p_norm_example_against_the_formula():
    """p = 5, 2x2/2. The slide prints [[4.86, 8], [2.38, 3.16]]; its top-right 8 is a slide error: the formula gives
    ((2^5 + 4^5 + 7^5 + 8^5) / 4)^(1/5) = 6.614."""
    y = np.asarray(fn.lp_pool2d(LECTURE_MAP, 5, 2)[0, ..., 0])
    np.testing.assert_allclose(y, [[4.865, 6.614], [2.384, 3.164]], atol=5e-4)
    assert abs(y[0, 1] - 8) > 1
    np.testing.assert_allclose(y[0, 1], ((2**5 + 4**5 + 7**5 + 8**5) / 4) ** 0.2, rtol=1e-12)


def test_lecture_max_pool_gradient_goes_to_the_argmax():
    g = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    dx = jax.vjp(lambda x: fn.max_pool2d(x, 2), LECTURE_MAP)[1](g)[0][0, ..., 0]
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[2, 0], expected[3, 3] = 1, 2, 3, 4  # 6, 8, 3, 4
    np.testing.assert_array_equal(dx, expected)
    dx_mean = jax.vjp(lambda x: fn.avg_pool2d(x, 2), LECTURE_MAP)[1](g)[0][0, ..., 0]
    np.testing.assert_allclose(dx_mean, np.kron([[1, 2], [3, 4]], np.ones((2, 2))) / 4)


# ---------------------------------------------------------------------------------------------------------------
# forward and backward against the reference


@given(pool_configs())
def test_max_pool_forward_and_vjp_match_reference(cfg):
    x = normal(np.random.default_rng(0), *cfg["x_shape"])
    args = (cfg["window"], cfg["stride"], cfg["padding"])
    np.testing.assert_array_equal(fn.max_pool2d(x, *args), _lax_pool(x, -jnp.inf, lax.max, *args))
    check_vjp(lambda x: fn.max_pool2d(x, *args), lambda x: ref.max_pool2d(x, *args), x, fd=False).raise_if_failed()


@given(pool_configs())
def test_avg_pool_forward_and_vjp_match_reference(cfg):
    x = normal(np.random.default_rng(1), *cfg["x_shape"])
    args = (cfg["window"], cfg["stride"], cfg["padding"])
    total = _lax_pool(x, 0.0, lax.add, *args)
    np.testing.assert_allclose(fn.avg_pool2d(x, *args), total / np.prod(cfg["window"]), rtol=1e-12, atol=1e-12)
    for include in (True, False):
        check_vjp(lambda x: fn.avg_pool2d(x, *args, count_include_pad=include),
                  lambda x: ref.avg_pool2d(x, *args, count_include_pad=include), x, fd=False).raise_if_failed()


@given(pool_configs())
def test_lp_pool_forward_and_vjp_match_reference(cfg):
    x = normal(np.random.default_rng(2), *cfg["x_shape"])
    args = (cfg["window"], cfg["stride"], cfg["padding"])
    for p in (1.0, 2.0, 3.5):
        check_vjp(lambda x: fn.lp_pool2d(x, p, *args), lambda x: ref.lp_pool2d(x, p, *args), x,
                  fd=False).raise_if_failed()


@pytest.mark.parametrize(
    "prim, args",
    [
        ("max_pool2d", ((3, 3), (2, 2), "VALID")),
        ("max_pool2d", ((2, 3), (1, 2), ((1, 0), (2, 1)))),
        ("avg_pool2d", ((3, 3), (2, 1), "SAME")),
        ("lp_pool2d", (3.0, (2, 2), None, ((1, 1), (0, 1)))),
        ("global_avg_pool2d", ()),
    ],
)
def test_pool_vjp_finite_differences_float64(prim, args):
    x = normal(np.random.default_rng(3), 2, 7, 6, 3)
    check_vjp(lambda x: getattr(fn, prim)(x, *args), lambda x: getattr(ref, prim)(x, *args), x).raise_if_failed()


def test_one_dimensional_pools():
    x = normal(np.random.default_rng(4), 2, 11, 3)
    check_vjp(lambda x: fn.max_pool1d(x, 3, 2, 1), lambda x: ref.max_pool1d(x, 3, 2, 1), x).raise_if_failed()
    check_vjp(lambda x: fn.avg_pool1d(x, 2), lambda x: ref.avg_pool1d(x, 2), x).raise_if_failed()


def test_avg_pool_count_include_pad():
    x = jnp.ones((1, 3, 3, 1))
    with_pad = fn.avg_pool2d(x, 3, 1, padding=1)[0, ..., 0]
    without = fn.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)[0, ..., 0]
    np.testing.assert_allclose(with_pad, [[4 / 9, 6 / 9, 4 / 9], [6 / 9, 1, 6 / 9], [4 / 9, 6 / 9, 4 / 9]])
    np.testing.assert_allclose(without, np.ones((3, 3)))
    # the backward agrees with the forward's count: each corner output spreads over 4 real inputs
    g = jnp.zeros((1, 3, 3, 1)).at[0, 0, 0, 0].set(1.0)
    dx = jax.vjp(lambda x: fn.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False), x)[1](g)[0][0, ..., 0]
    np.testing.assert_allclose(dx, [[0.25, 0.25, 0], [0.25, 0.25, 0], [0, 0, 0]])


def test_global_avg_pool():
    x = normal(np.random.default_rng(5), 2, 3, 4, 5)
    np.testing.assert_allclose(fn.global_avg_pool2d(x), x.mean(axis=(1, 2)), rtol=1e-12)
    g = normal(np.random.default_rng(6), 2, 5)
    dx = jax.vjp(fn.global_avg_pool2d, x)[1](g)[0]
    np.testing.assert_allclose(dx, jnp.broadcast_to(g[:, None, None, :] / 12, x.shape), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# ties, properties, kinks


def test_max_pool_ties_route_to_exactly_one_input_the_first_in_row_major_order():
    x = jnp.zeros((1, 4, 4, 1))  # every entry ties
    dx = jax.grad(lambda x: fn.max_pool2d(x, 2).sum())(x)[0, ..., 0]
    np.testing.assert_array_equal(dx, [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    # overlapping 3x3/1 windows on a constant map: window (i, j) routes to its top-left entry (i, j)
    x = jnp.ones((1, 5, 5, 1))
    dx = jax.grad(lambda x: fn.max_pool2d(x, 3, 1).sum())(x)[0, ..., 0]
    expected = np.zeros((5, 5))
    expected[:3, :3] = 1
    np.testing.assert_array_equal(dx, expected)


@given(pool_configs())
def test_max_pool_ties_agree_with_reference_argmax_and_with_xla(cfg):
    """Inputs from {0, 1, 2} tie everywhere; the gradient must equal the lecture's first-argmax routing, and JAX's
    own select_and_scatter on CPU (which also picks the first)."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.integers(0, 3, size=cfg["x_shape"]).astype(np.float64))
    args = (cfg["window"], cfg["stride"], cfg["padding"])
    y, vjp = jax.vjp(lambda x: fn.max_pool2d(x, *args), x)
    g = normal(rng, *y.shape)
    mine = vjp(g)[0]
    np.testing.assert_array_equal(mine, jax.vjp(lambda x: ref.max_pool2d(x, *args), x)[1](g)[0])
    np.testing.assert_allclose(mine, jax.vjp(lambda x: _lax_pool(x, -jnp.inf, lax.max, *args), x)[1](g)[0],
                               rtol=1e-12, atol=1e-12)


@given(pool_configs())
def test_gradient_mass_is_conserved(cfg):
    """Max pool routes each g to exactly one input; mean pool with count_include_pad=False spreads each g over its
    real inputs with weights summing to 1: in both, sum(dx) = sum(g)."""
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.integers(0, 2, size=cfg["x_shape"]).astype(np.float64))
    args = (cfg["window"], cfg["stride"], cfg["padding"])
    for f in (lambda x: fn.max_pool2d(x, *args), lambda x: fn.avg_pool2d(x, *args, count_include_pad=False)):
        y, vjp = jax.vjp(f, x)
        g = normal(rng, *y.shape)
        np.testing.assert_allclose(vjp(g)[0].sum(), g.sum(), rtol=1e-10)


def test_max_pool_nan_propagates_forward_and_gets_no_gradient():
    x = jnp.array([[1.0, jnp.nan], [2.0, 3.0]]).reshape(1, 2, 2, 1)
    assert np.isnan(fn.max_pool2d(x, 2)).all()
    dx = jax.grad(lambda x: fn.max_pool2d(x, 2).sum())(x)
    assert not np.isnan(dx).any()


def test_lp_pool_at_zero_and_negative_inputs():
    x = jnp.array([[0.0, 0.0, -2.0, 1.0], [0.0, 0.0, 3.0, 0.0]]).reshape(1, 2, 4, 1)
    for p in (0.5, 1.0, 2.0, 5.0):
        y, vjp = jax.vjp(lambda x: fn.lp_pool2d(x, p, 2), x)
        dx = vjp(jnp.ones_like(y))[0][0, ..., 0]
        assert np.all(np.isfinite(dx))
        np.testing.assert_array_equal(dx[:, :2], 0)  # a window of zeros (y = 0) gets no gradient
        assert dx[1, 3] == 0  # x = 0 inside a live window: derivative taken as 0
        assert dx[0, 2] < 0 < dx[0, 3]  # sign(x): |x| pooling pushes a negative input down
        expected = jax.grad(lambda v: ref.lp_pool2d(v, p, 2).sum())(x)[0, ..., 0]  # fine where x != 0, y != 0
        np.testing.assert_allclose(dx[0, 2:], expected[0, 2:], rtol=1e-10)
    second = jax.grad(lambda x: jnp.sum(jax.grad(lambda x: fn.lp_pool2d(x, 3.0, 2).sum())(x) ** 2))(x)
    assert np.all(np.isfinite(second))


def test_pool_grad_of_grad_matches_reference():
    x = normal(np.random.default_rng(9), 1, 6, 6, 2)
    for prim in ("max_pool2d", "avg_pool2d"):
        def second(pool):
            return jax.grad(lambda x: jnp.sum(jnp.sin(jax.grad(lambda x: jnp.sum(pool(x, 3, 2) ** 3))(x))))(x)

        np.testing.assert_allclose(second(getattr(fn, prim)), second(getattr(ref, prim)), rtol=1e-10, atol=1e-12)


def test_pool_under_jit_vmap_and_bfloat16():
    x = normal(np.random.default_rng(10), 4, 8, 8, 3, dtype=jnp.float32)
    per_example = jax.vmap(jax.grad(lambda xi: jnp.sum(fn.max_pool2d(xi[None], 3, 2) ** 2)))(x)
    batched = jax.jit(jax.grad(lambda x: jnp.sum(fn.max_pool2d(x, 3, 2) ** 2)))(x)
    np.testing.assert_allclose(per_example, batched, rtol=1e-6)
    for prim, args in [("max_pool2d", (2,)), ("avg_pool2d", (3, 2, 1)), ("lp_pool2d", (2.0, 2))]:
        low = getattr(fn, prim)(x.astype(jnp.bfloat16), *args)
        assert low.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(low, np.float32),
                                   getattr(fn, prim)(x.astype(jnp.bfloat16).astype(jnp.float32), *args),
                                   rtol=2e-2, atol=2e-2)
        dx = jax.grad(lambda x: jnp.sum(getattr(fn, prim)(x, *args).astype(jnp.float32)))(x.astype(jnp.bfloat16))
        assert dx.dtype == jnp.bfloat16


def test_max_pool_backward_is_deterministic():
    x = jnp.asarray(np.random.default_rng(11).integers(0, 3, size=(8, 16, 16, 8)).astype(np.float32))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(fn.max_pool2d(x, 3, 2) * jnp.arange(7.0)[:, None, None])))
    first, second = grad(x), grad(x)
    assert np.asarray(first).tobytes() == np.asarray(second).tobytes()


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
def test_pool_backward_has_no_scatter_for_gpu(pool):
    """The source of JAX's non-deterministic max-pool gradient on GPU is select_and_scatter (atomic adds where
    windows overlap). funcnn's pool backwards place g with padding and sums, no scatter: checked on the program
    exported for CUDA (no GPU needed), next to JAX's own gradient, which does contain it."""
    x = jnp.ones((2, 16, 16, 8))

    def scatters(f):
        text = jax.export.export(jax.jit(jax.grad(f)), platforms=["cuda"])(x).mlir_module()
        return len(re.findall(r"stablehlo\.(?:select_and_)?scatter\b", text))  # op names, not source locations

    assert scatters(lambda x: getattr(fn, pool)(x, 3, 2).sum()) == 0
    assert scatters(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID").sum()) > 0


# ---------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: fn.max_pool2d(jnp.ones((4, 4, 1)), 2), ValueError, r"x must have rank 4 \(NHWC\)"),
        (lambda: fn.max_pool2d(jnp.ones((1, 4, 4, 1)), 5), ValueError, r"window 5 is larger than the padded input"),
        (lambda: fn.avg_pool2d(jnp.ones((1, 4, 4, 1)), 2, 0), ValueError, r"stride must be >= 1, got 0"),
        (lambda: fn.max_pool2d(jnp.ones((1, 4, 4, 1)), 2, padding=2), ValueError, r"must be smaller than the window"),
        (lambda: fn.max_pool2d(jnp.ones((1, 4, 4, 1)), 2, padding="same-ish"), ValueError, "unknown string"),
        (lambda: fn.avg_pool2d(jnp.ones((1, 4, 4, 1)), 2, padding=-1), ValueError, "non-negative"),
        (lambda: fn.lp_pool2d(jnp.ones((1, 4, 4, 1)), 0, 2), ValueError, r"p must be a finite number > 0, got 0"),
        (lambda: fn.lp_pool2d(jnp.ones((1, 4, 4, 1)), -1.5, 2), ValueError, r"p must be a finite number > 0"),
        (lambda: fn.global_avg_pool2d(jnp.ones((4, 4, 1))), ValueError, r"x must have rank 4"),
        (lambda: fn.max_pool1d(jnp.ones((1, 4, 4, 1)), 2), ValueError, r"x must have rank 3 \(NWC\)"),
        (lambda: fn.max_pool2d(jnp.ones((1, 4, 4, 1), int), 2), TypeError, "floating-point"),
    ],
)
def test_pool_bad_input_raises_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_max_pool_tangent_is_read_at_each_windows_first_maximum():
    """Lecture map, 2x2/2: the maxima 6, 8, 3, 4 sit at (1,1), (1,3), (2,0) and (3,3); a tangent numbering the
    inputs row-major comes out as their indices. Ties: the first in row-major window order, as the backward."""
    tangent = jnp.arange(16.0).reshape(LECTURE_MAP.shape)
    y, dy = jax.jvp(lambda x: fn.max_pool2d(x, 2), (LECTURE_MAP,), (tangent,))
    np.testing.assert_array_equal(y[0, :, :, 0], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(dy[0, :, :, 0], [[5, 7], [8, 15]])
    ties = jnp.ones((1, 2, 2, 1))
    _, dy = jax.jvp(lambda x: fn.max_pool2d(x, 2), (ties,), (jnp.arange(4.0).reshape(1, 2, 2, 1) + 1,))
    assert float(dy[0, 0, 0, 0]) == 1.0  # the first of four tied inputs
    _, da = jax.jvp(lambda x: fn.avg_pool2d(x, 2), (LECTURE_MAP,), (tangent,))
    np.testing.assert_allclose(da, fn.avg_pool2d(tangent, 2))  # mean pooling is linear: its own tangent


# ---------------------------------------------------------------------------------------------------------------
# ceil mode and adaptive pooling


@st.composite
def adaptive_configs(draw):
    nd = draw(st.sampled_from([1, 2]))
    sizes = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    out = tuple(draw(st.integers(1, 10)) for _ in range(nd))  # smaller, equal and larger than the input
    return dict(shape=(draw(st.integers(1, 2)), *sizes, draw(st.integers(1, 3))), out=out, nd=nd)


@settings(max_examples=5)
@given(adaptive_configs())
def test_adaptive_pools_match_the_literal_windows(cfg):
    rng = np.random.default_rng(11)
    x = normal(rng, *cfg["shape"])
    suffix = "2d" if cfg["nd"] == 2 else "1d"
    for kind in ("avg", "max"):
        name = f"adaptive_{kind}_pool{suffix}"
        check_vjp(lambda x: getattr(fn, name)(x, cfg["out"]), lambda x: getattr(ref, name)(x, cfg["out"]), x,
                  fd=False).raise_if_failed()
    ties = jnp.asarray(rng.integers(0, 2, size=cfg["shape"]).astype(np.float64))
    y, vjp = jax.vjp(lambda x: getattr(fn, f"adaptive_max_pool{suffix}")(x, cfg["out"]), ties)
    g = normal(rng, *y.shape)
    expected = jax.vjp(lambda x: getattr(ref, f"adaptive_max_pool{suffix}")(x, cfg["out"]), ties)[1](g)[0]
    np.testing.assert_allclose(vjp(g)[0], expected, rtol=1e-12, atol=1e-12)  # ties: the first maximum (row-major)


@settings(max_examples=5)
@given(pool_configs())
def test_ceil_mode_matches_the_reference(cfg):
    rng = np.random.default_rng(12)
    x = normal(rng, *cfg["x_shape"])
    args = (cfg["window"], cfg["stride"], cfg["padding"])
    for name, extra in [("max_pool2d", {}), ("avg_pool2d", {}), ("avg_pool2d", {"count_include_pad": False})]:
        check_vjp(lambda x: getattr(fn, name)(x, *args, ceil_mode=True, **extra),
                  lambda x: getattr(ref, name)(x, *args, ceil_mode=True, **extra), x, fd=False).raise_if_failed()
    check_vjp(lambda x: fn.lp_pool2d(x, 3.0, *args, ceil_mode=True),
              lambda x: ref.lp_pool2d(x, 3.0, *args, ceil_mode=True), x, fd=False).raise_if_failed()


def test_ceil_mode_and_adaptive_pools_against_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the independent oracle here; pip install torch")
    F = torch.nn.functional
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 7, 9, 3))
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)

    def both(ours, theirs):
        y, vjp = jax.vjp(ours, jnp.asarray(x))
        g = rng.normal(size=y.shape)
        yt = theirs(xt)
        (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g.transpose(0, 3, 1, 2)))
        np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(vjp(jnp.asarray(g))[0], gt.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)

    for k, s, p in [(2, 2, 0), (3, 2, 1), (2, 3, 0), (3, 3, 1)]:
        both(lambda x: fn.max_pool2d(x, k, s, p, ceil_mode=True), lambda x: F.max_pool2d(x, k, s, p, ceil_mode=True))
        for cip in (True, False):
            both(lambda x: fn.avg_pool2d(x, k, s, p, count_include_pad=cip, ceil_mode=True),
                 lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=True, count_include_pad=cip))
    for out in [(1, 1), (3, 4), (7, 9), (5, 2), (10, 12)]:
        both(lambda x: fn.adaptive_avg_pool2d(x, out), lambda x: F.adaptive_avg_pool2d(x, out))
        both(lambda x: fn.adaptive_max_pool2d(x, out), lambda x: F.adaptive_max_pool2d(x, out))


def test_ceil_mode_sizes_and_the_layers():
    x = jnp.ones((1, 5, 5, 2))
    assert fn.max_pool2d(x, 2).shape == (1, 2, 2, 2)
    assert fn.max_pool2d(x, 2, ceil_mode=True).shape == (1, 3, 3, 2)  # the last window starts inside the input
    assert fn.max_pool2d(jnp.ones((1, 4, 4, 1)), 2, 2, padding=1, ceil_mode=True).shape == (1, 3, 3, 1)
    assert fn.avg_pool2d(jnp.ones((1, 6, 6, 1)), 3, 2, ceil_mode=True).shape == (1, 3, 3, 1)
    np.testing.assert_allclose(fn.avg_pool2d(jnp.ones((1, 5, 5, 1)), 2, ceil_mode=True), 1.0)  # overhang not counted
    for layer, shape in [(fn.layers.MaxPool(2, ceil_mode=True), (1, 3, 3, 2)),
                         (fn.layers.AdaptiveAvgPool((2, 3)), (1, 2, 3, 2)), (fn.layers.AdaptiveMaxPool(1), (1, 1, 1, 2)),
                         (fn.layers.LpPool(2.0, 2, ceil_mode=True), (1, 3, 3, 2))]:
        out_shape, params, state = layer.init(jax.random.PRNGKey(0), x.shape)
        assert out_shape == shape and layer.apply(params, state, x)[0].shape == shape
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1, got 0"):
        fn.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: output_size must have 2 entries"):
        fn.adaptive_max_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"max_pool2d: ceil_mode must be True or False"):
        fn.max_pool2d(x, 2, ceil_mode="yes")


@pytest.mark.parametrize("pool", [lambda x: fn.adaptive_max_pool2d(x, (5, 3)), lambda x: fn.adaptive_avg_pool2d(x, 3),
                                  lambda x: fn.max_pool2d(x, 3, 2, ceil_mode=True)])
def test_adaptive_and_ceil_backward_have_no_scatter_for_gpu(pool):
    from funcnn.verify import scatter_ops

    x = jnp.ones((2, 16, 16, 8))
    assert scatter_ops(jax.grad(lambda x: pool(x).sum()), (x,), "cuda") == []


def test_every_public_primitive_has_a_signature_of_its_own():
    """`inspect.signature(fn.max_pool2d)` shows the arguments a caller passes: the rank and the name the 1/2/3-D
    function fixes are not parameters, and the ranks of one family take the same arguments."""
    import inspect

    import funcnn.primitives as P

    signatures = {name: inspect.signature(getattr(P, name)) for name in P.__all__}
    for name, sig in signatures.items():
        assert not {"nd", "name"} & set(sig.parameters), f"{name}{sig}"
    assert str(signatures["max_pool2d"]) == ("(x, window, stride=None, padding='VALID', ceil_mode=False, "
                                             "return_indices=False, padding_mode='zeros')")
    for family in ("max_pool", "avg_pool", "lp_pool", "adaptive_avg_pool", "global_avg_pool", "max_unpool", "conv",
                   "conv_transpose"):
        assert len({str(signatures[f"{family}{nd}d"]) for nd in (1, 2, 3)}) == 1, family
