"""conv1d / conv2d / conv_transpose: forward, VJP (reference, finite differences, adjoint), lecture numbers, errors."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from jax import lax

import funcnn as fn
from funcnn.verify import reference as ref
from funcnn.primitives.conv import ALGORITHMS, force_algorithm

from ..helpers import check_vjp, conv_configs, dropped_rows, inner, lax_padding, normal

DN = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


_PATH = [None]  # the path the running sweep forces on funcnn's primitives (see over_algorithms)


def over_algorithms(strategy):
    """Run a hypothesis sweep once per path of the conv algorithm table (a forced path that does not apply to a
    configuration falls back to the canonical one). Only funcnn's primitives (`_prim`) are traced with the path
    forced: the references run outside it, so that their compiled operations are shared by every path (a forced
    path is part of JAX's compilation cache key)."""

    def decorate(body):
        @pytest.mark.parametrize("algorithm", ALGORITHMS)
        @given(cfg=strategy)
        def test(cfg, algorithm):
            _PATH[0] = algorithm
            try:
                body(cfg)
            finally:
                _PATH[0] = None

        test.__name__, test.__doc__ = body.__name__, body.__doc__
        return test

    return decorate


def _prim(nd, transpose=False):
    prim = (fn.conv_transpose1d if nd == 1 else fn.conv_transpose2d) if transpose else \
        (fn.conv1d if nd == 1 else fn.conv2d)
    path = _PATH[0]
    if path is None:
        return prim

    def forced(*args, **kwargs):
        with force_algorithm(path):
            return prim(*args, **kwargs)

    return forced


def _lax_conv(x, w, kw):
    pads, stride, dilation = lax_padding(kw.get("padding", "VALID"), x.shape, w.shape, kw.get("stride", 1),
                                         kw.get("dilation", 1))
    return lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation, dimension_numbers=DN[x.ndim - 2],
                                    feature_group_count=kw.get("groups", 1))


def _inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x, w = normal(rng, *cfg["x_shape"]), normal(rng, *cfg["w_shape"])
    return x, w, normal(rng, cfg["w_shape"][-1])


# ---------------------------------------------------------------------------------------------------------------
# forward


@over_algorithms(conv_configs())
def test_forward_matches_reference_and_lax(cfg):
    x, w, b = _inputs(cfg)
    nd = x.ndim - 2
    out = _prim(nd)(x, w, b, **cfg["kw"])
    np.testing.assert_allclose(out, ref.conv_nd(x, w, b, **cfg["kw"]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, _lax_conv(x, w, cfg["kw"]) + b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, expected",
    [
        (7, 3, 1, 0, 5),  # lecture 002: 7x7 input, 3x3 filter, stride 1 -> 5x5
        (7, 3, 2, 0, 3),  # stride 2 -> 3x3
        (7, 3, 1, 1, 7),  # pad 1, stride 1 -> 7x7
        (5, 3, 2, 0, 2),  # lecture 004: 5x5 image, 3x3 filter, stride 2 -> 2x2
        (32, 5, 1, 0, 28),  # LeNet-5 C1
        (227, 11, 4, 0, 55),  # AlexNet conv1
    ],
)
def test_output_size_lecture_numbers(size, kernel, stride, padding, expected):
    x = jnp.zeros((1, size, size, 1))
    w = jnp.zeros((kernel, kernel, 1, 1))
    assert fn.conv2d(x, w, stride=stride, padding=padding).shape == (1, expected, expected, 1)


def test_stride_that_does_not_fit_drops_the_last_rows():
    """Lecture 002: 7x7 with 3x3 at stride 3 "does not fit"; funcnn floors (like every framework): output 2x2, and
    the dropped last row and column receive zero gradient."""
    x = jnp.arange(49.0).reshape(1, 7, 7, 1)
    w = jnp.ones((3, 3, 1, 1))
    assert fn.conv2d(x, w, stride=3).shape == (1, 2, 2, 1)
    dx = jax.grad(lambda x: fn.conv2d(x, w, stride=3).sum())(x)
    assert np.all(np.asarray(dx)[0, 6, :, 0] == 0) and np.all(np.asarray(dx)[0, :, 6, 0] == 0)
    assert np.all(np.asarray(dx)[0, :6, :6, 0] == 1)


def test_ten_5x5x3_filters_same_padding_lecture_example():
    """32x32x3 input, ten 5x5 filters, stride 1, pad 2 -> 32x32x10; 76 parameters per filter, 760 in total."""
    x = jnp.zeros((1, 32, 32, 3))
    w, b = jnp.zeros((5, 5, 3, 10)), jnp.zeros(10)
    assert fn.conv2d(x, w, b, padding=2).shape == (1, 32, 32, 10)
    assert fn.conv2d(x, w, b, padding="SAME").shape == (1, 32, 32, 10)
    assert w[..., 0].size + 1 == 76 and w.size + b.size == 760


@pytest.mark.parametrize("size", [1, 5, 6, 7, 10, 11])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_padding_rule(size, kernel, stride):
    """Lecture: output ceil(N/S); P_L and P_R differ by at most one (the extra row at the end); matches lax."""
    from funcnn.primitives.geometry import same_padding

    lo, hi = same_padding(size, kernel, stride)
    assert 0 <= hi - lo <= 1
    x = jnp.asarray(np.random.default_rng(size).normal(size=(1, size, 1, 1)))
    w = jnp.asarray(np.random.default_rng(kernel).normal(size=(kernel, 1, 1, 1)))
    out = fn.conv2d(x, w, stride=(stride, 1), padding="SAME")
    assert out.shape[1] == -(-size // stride)
    expected = lax.conv_general_dilated(x, w, (stride, 1), "SAME", dimension_numbers=DN[2])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_depthwise_taps_path_matches_grouped_lax_conv():
    rng = np.random.default_rng(3)
    x, w = normal(rng, 2, 9, 8, 6), normal(rng, 3, 3, 1, 12)  # channel multiplier 2
    for kw in [dict(), dict(stride=2, padding="SAME"), dict(dilation=2, padding=((2, 1), (0, 3)))]:
        out = fn.conv2d(x, w, groups=6, **kw)
        np.testing.assert_allclose(out, _lax_conv(x, w, dict(kw, groups=6)), rtol=1e-12, atol=1e-12)
        g = normal(rng, *out.shape)
        mine = jax.vjp(lambda x, w: fn.conv2d(x, w, groups=6, **kw), x, w)[1](g)
        theirs = jax.vjp(lambda x, w: _lax_conv(x, w, dict(kw, groups=6)), x, w)[1](g)
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# backward


@over_algorithms(conv_configs())
def test_vjp_matches_autodiff_of_reference(cfg):
    x, w, b = _inputs(cfg)
    prim = _prim(x.ndim - 2)
    report = check_vjp(lambda x, w, b: prim(x, w, b, **cfg["kw"]), lambda x, w, b: ref.conv_nd(x, w, b, **cfg["kw"]),
                       x, w, b, fd=False)
    report.raise_if_failed()


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(stride=3, padding=((2, 0), (1, 2))),
        dict(padding="SAME", stride=2, dilation=2),
        dict(groups=2, stride=(1, 2)),
        dict(groups=4, padding=1),  # depth-wise
    ],
)
@pytest.mark.parametrize("algorithm", [None, *ALGORITHMS])
def test_vjp_matches_finite_differences_float64(kw, algorithm):
    rng = np.random.default_rng(1)
    x, w, b = normal(rng, 2, 7, 6, 4), normal(rng, 3, 2, 4 // kw.get("groups", 1), 4), normal(rng, 4)
    with force_algorithm(algorithm):
        check_vjp(lambda x, w, b: fn.conv2d(x, w, b, **kw), None, x, w, b, fd=True).raise_if_failed()


@given(conv_configs(max_groups=1))
def test_adjoint_identity_conv_and_transpose(cfg):
    """<conv(x), y> = <x, conv_transpose(y)> (output_padding = the rows the forward floor dropped)."""
    rng = np.random.default_rng(2)
    x, w, _ = _inputs(cfg)
    nd = x.ndim - 2
    kw = {k: v for k, v in cfg["kw"].items() if k != "groups"}
    z = _prim(nd)(x, w, **kw)
    y = normal(rng, *z.shape)
    extra = dropped_rows(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"])
    if isinstance(kw["padding"], str) and kw["padding"] == "SAME":
        if tuple(n for n in x.shape[1:-1]) != tuple(o * s for o, s in zip(z.shape[1:-1], kw["stride"])):
            return  # "SAME" transposes to O*S rows, the adjoint of a conv on exactly that many
        extra = 0
    back = _prim(nd, transpose=True)(y, w, output_padding=extra, **kw)
    assert back.shape == x.shape
    np.testing.assert_allclose(inner(z, y), inner(x, back), rtol=1e-10)


@given(conv_configs(max_groups=1))
def test_conv_transpose_equals_vjp_of_conv(cfg):
    x, w, _ = _inputs(cfg)
    nd = x.ndim - 2
    kw = {k: v for k, v in cfg["kw"].items() if k != "groups"}
    if isinstance(kw["padding"], str) and kw["padding"] == "SAME":
        kw["padding"] = lax_padding("SAME", x.shape, w.shape, kw["stride"], kw["dilation"])[0]
    z, vjp = jax.vjp(lambda x: _lax_conv(x, w, kw), x)
    g = normal(np.random.default_rng(4), *z.shape)
    extra = dropped_rows(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"])
    out = _prim(nd, transpose=True)(g, w, output_padding=extra, **kw)
    np.testing.assert_allclose(out, vjp(g)[0], rtol=1e-10, atol=1e-10)


@over_algorithms(conv_configs(max_groups=1))
def test_conv_transpose_vjp_matches_reference(cfg):
    x, w, _ = _inputs(cfg)
    nd = x.ndim - 2
    kw = {k: v for k, v in cfg["kw"].items() if k != "groups"}
    z_shape = _prim(nd)(x, w, **kw).shape
    if not (isinstance(kw["padding"], str) and kw["padding"] == "SAME"):
        kw["output_padding"] = dropped_rows(x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"])
    rng = np.random.default_rng(5)
    y, wt, b = normal(rng, *z_shape), w, normal(rng, w.shape[-2])
    check_vjp(lambda y, w, b: _prim(nd, True)(y, w, b, **kw), lambda y, w, b: ref.conv_transpose_nd(y, w, b, **kw),
              y, wt, b, fd=False).raise_if_failed()


def test_conv_transpose_finite_differences_and_sizes():
    rng = np.random.default_rng(6)
    y, w, b = normal(rng, 2, 3, 4, 3), normal(rng, 4, 4, 2, 3), normal(rng, 2)
    out = fn.conv_transpose2d(y, w, b, stride=2, padding=1)
    assert out.shape == (2, (3 - 1) * 2 + 4 - 2, (4 - 1) * 2 + 4 - 2, 2)  # (H-1)*S + K - P_lo - P_hi
    assert fn.conv_transpose2d(y, w, stride=2, padding="SAME").shape == (2, 6, 8, 2)
    assert fn.conv_transpose2d(y, w, stride=3, output_padding=(1, 2)).shape == (2, 11, 15, 2)
    check_vjp(lambda y, w, b: fn.conv_transpose2d(y, w, b, stride=2, padding=1), None, y, w, b).raise_if_failed()


@over_algorithms(conv_configs(max_groups=1))
def test_dx_equals_the_lecture_algorithm_literally(cfg):
    """Upsample g with real zeros, pad by K_eff-1, convolve with the flipped channel-swapped filter, crop."""
    x, w, _ = _inputs(cfg)
    kw = {k: v for k, v in cfg["kw"].items() if k != "groups"}
    z, vjp = jax.vjp(lambda x: _prim(x.ndim - 2)(x, w, **kw), x)
    g = normal(np.random.default_rng(7), *z.shape)
    np.testing.assert_allclose(vjp(g)[0], ref.conv_dx_literal(g, w, x.shape, **kw), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# transformations and dtypes


def test_jit_vmap_per_example_gradients():
    rng = np.random.default_rng(8)
    x, w = normal(rng, 5, 6, 6, 2), normal(rng, 3, 3, 2, 3)

    def loss(w, xi):
        return jnp.sum(jnp.tanh(fn.conv2d(xi[None], w, stride=2, padding="SAME")))

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(w, x)
    looped = jnp.stack([jax.grad(loss)(w, xi) for xi in x])
    np.testing.assert_allclose(per_example, looped, rtol=1e-12, atol=1e-12)


def test_checkpoint_and_grad_of_grad_match_reference():
    rng = np.random.default_rng(9)
    x, w = normal(rng, 2, 6, 5, 2), normal(rng, 3, 2, 2, 4)

    def second_order(conv):
        def inner_loss(x, w):
            return jnp.sum(jnp.sin(conv(x, w, stride=2, padding=1)))

        return jax.grad(lambda w: jnp.sum(jax.grad(inner_loss)(x, w) ** 2))(w)

    np.testing.assert_allclose(second_order(fn.conv2d), second_order(ref.conv2d), rtol=1e-10, atol=1e-10)
    remat = jax.grad(lambda w: jnp.sum(jax.checkpoint(lambda w: fn.conv2d(x, w) ** 2)(w)))(w)
    plain = jax.grad(lambda w: jnp.sum(ref.conv2d(x, w) ** 2))(w)
    np.testing.assert_allclose(remat, plain, rtol=1e-10)


def test_grad_of_grad_depthwise_and_transpose():
    rng = np.random.default_rng(10)
    x, w = normal(rng, 1, 6, 6, 3), normal(rng, 3, 3, 1, 3)
    for mine, theirs in [
        (lambda x, w: fn.conv2d(x, w, groups=3, stride=2), lambda x, w: ref.conv2d(x, w, groups=3, stride=2)),
        (lambda x, w: fn.conv_transpose2d(x, w, stride=2), lambda x, w: ref.conv_transpose2d(x, w, stride=2)),
    ]:
        def hvp(conv):
            return jax.grad(lambda x: jnp.sum(jax.grad(lambda w: jnp.sum(conv(x, w) ** 3))(w) ** 2))(x)

        np.testing.assert_allclose(hvp(mine), hvp(theirs), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("prim", ["conv2d", "conv_transpose2d", "depthwise"])
def test_bfloat16_computes_with_float32_accumulation(prim):
    rng = np.random.default_rng(11)
    x = normal(rng, 2, 8, 8, 4, dtype=jnp.float32)
    if prim == "conv_transpose2d":
        w = normal(rng, 3, 3, 4, 4, dtype=jnp.float32)
        f = lambda x, w: fn.conv_transpose2d(x, w, stride=2)  # noqa: E731
    else:
        groups = 4 if prim == "depthwise" else 1
        w = normal(rng, 3, 3, 4 // groups, 4, dtype=jnp.float32)
        f = lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME", groups=groups)  # noqa: E731
    low = f(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    assert low.dtype == jnp.bfloat16
    high = f(x.astype(jnp.bfloat16).astype(jnp.float32), w.astype(jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(low, np.float32), high, rtol=2e-2, atol=5e-2)
    grads = jax.grad(lambda x, w: jnp.sum(f(x, w).astype(jnp.float32)), argnums=(0, 1))(
        x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    assert all(g.dtype == jnp.bfloat16 for g in grads)
    grads32 = jax.grad(lambda x, w: jnp.sum(f(x, w)), argnums=(0, 1))(
        x.astype(jnp.bfloat16).astype(jnp.float32), w.astype(jnp.bfloat16).astype(jnp.float32))
    for g, g32 in zip(grads, grads32):
        np.testing.assert_allclose(np.asarray(g, np.float32), g32, rtol=3e-2, atol=0.15)


def test_forward_mode_is_the_product_rule():
    """conv is bilinear: its tangent is conv(dx, w) + conv(x, dw) + db, and jacfwd of the transposed conv equals its
    jacrev (the tangent rules and the backward rules are transposes of each other)."""
    rng = np.random.default_rng(7)
    x, w, b = normal(rng, 2, 6, 5, 3), normal(rng, 3, 3, 3, 4), normal(rng, 4)
    dx, dw, db = normal(rng, *x.shape), normal(rng, *w.shape), normal(rng, 4)
    kw = dict(stride=2, padding=1)
    _, dz = jax.jvp(lambda x, w, b: fn.conv2d(x, w, b, **kw), (x, w, b), (dx, dw, db))
    np.testing.assert_allclose(dz, fn.conv2d(dx, w, **kw) + fn.conv2d(x, dw, **kw) + db, rtol=1e-12)
    y = normal(rng, 2, 3, 3, 4)
    transpose = lambda w: fn.conv_transpose2d(y, w, stride=2, padding=1)  # noqa: E731
    np.testing.assert_allclose(jax.jacfwd(transpose)(w), jax.jacrev(transpose)(w), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "x_shape, w_shape, kw, match",
    [
        ((4, 4, 1), (2, 2, 1, 1), {}, r"x must have rank 4 \(NHWC\), got shape \(4, 4, 1\)"),
        ((1, 4, 4, 1), (2, 2, 1), {}, r"w must have rank 4 \(HWIO\)"),
        ((1, 4, 4, 3), (2, 2, 2, 1), {}, r"channel mismatch: x has 3 channels .* w expects 2"),
        ((1, 4, 4, 4), (2, 2, 2, 3), dict(groups=2), r"groups=2 must divide .* output channels"),
        ((1, 4, 4, 4), (2, 2, 4, 4), dict(groups=0), r"groups must be an int >= 1"),
        ((1, 4, 4, 1), (5, 5, 1, 1), {}, r"kernel 5 is larger than the padded input 4\+0\+0=4"),
        ((1, 4, 4, 1), (3, 3, 1, 1), dict(dilation=2), r"dilated kernel .* 5 is larger than the padded input"),
        ((1, 4, 4, 1), (2, 2, 1, 1), dict(stride=0), r"stride must be >= 1, got 0"),
        ((1, 4, 4, 1), (2, 2, 1, 1), dict(dilation=(1, 0)), r"dilation must be >= 1"),
        ((1, 4, 4, 1), (2, 2, 1, 1), dict(padding=-1), r"padding must be non-negative"),
        ((1, 4, 4, 1), (2, 2, 1, 1), dict(padding="FULL"), r"unknown string 'FULL'"),
        ((1, 4, 4, 1), (2, 2, 1, 1), dict(padding=(1, 2, 3)), r"padding must have 2 entries"),
        ((1, 4, 4, 1), (2, 2, 1, 1), dict(stride=(1, 2, 3)), r"stride must have 2 entries"),
    ],
)
def test_conv2d_bad_input_raises_clear_error(x_shape, w_shape, kw, match):
    with pytest.raises(ValueError, match=match):
        fn.conv2d(jnp.ones(x_shape), jnp.ones(w_shape), **kw)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        fn.conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((2, 2, 1, 2)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"conv1d: x must have rank 3 \(NWC\)"):
        fn.conv1d(jnp.ones((1, 4, 4, 1)), jnp.ones((2, 1, 1)))
    with pytest.raises(TypeError, match="floating-point"):
        fn.conv2d(jnp.ones((1, 4, 4, 1), int), jnp.ones((2, 2, 1, 1), int))
    with pytest.raises(ValueError, match=r"conv_transpose2d: channel mismatch: y has 3 channels"):
        fn.conv_transpose2d(jnp.ones((1, 4, 4, 3)), jnp.ones((2, 2, 1, 2)))
    with pytest.raises(ValueError, match=r"output_padding must be < stride"):
        fn.conv_transpose2d(jnp.ones((1, 4, 4, 2)), jnp.ones((2, 2, 1, 2)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"output_padding must be 0 with padding=\"SAME\""):
        fn.conv_transpose2d(jnp.ones((1, 4, 4, 2)), jnp.ones((2, 2, 1, 2)), stride=2, padding="SAME",
                            output_padding=1)
    with pytest.raises(ValueError, match=r"crops the whole output"):
        fn.conv_transpose2d(jnp.ones((1, 1, 1, 2)), jnp.ones((1, 1, 1, 2)), padding=1)


def test_algorithm_table_and_override():
    from funcnn.primitives.conv import ConvSpec
    from funcnn.primitives.conv.rules import choose
    from funcnn.primitives.geometry import Geometry

    def _algorithm(spec, w_shape, rule="forward", in_sizes=None):
        return choose(rule, spec, w_shape, in_sizes)

    geo = Geometry((3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1))
    for rule in ("forward", "dx", "dw"):  # LeNet's layers (1 x 6, 6 x 16) and ResNet's stem (3 x 16)
        band = "batch_chunks" if rule == "dw" else "banded"  # in 2-D the chunks' dW beat the band (few_channels_1d)
        assert _algorithm(ConvSpec(geo, 1), (5, 5, 1, 6), rule, (32, 32)) == band
        assert _algorithm(ConvSpec(geo, 1), (5, 5, 6, 16), rule, (14, 14)) == band
        assert _algorithm(ConvSpec(geo, 1), (3, 3, 3, 16), rule, (32, 32)) == band
    line = Geometry((5,), (1,), ((0, 0),), (1,))
    assert _algorithm(ConvSpec(line, 1), (5, 6, 16), "dw", (14,)) == "banded"
    assert _algorithm(ConvSpec(geo, 1), (3, 3, 16, 16), "forward") == "canonical"
    assert _algorithm(ConvSpec(geo, 1), (3, 3, 16, 16), "dw") == "batch_chunks"
    assert _algorithm(ConvSpec(geo, 1), (3, 3, 64, 64), "forward") == "canonical"
    one = Geometry((1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1))
    assert _algorithm(ConvSpec(one, 1), (1, 1, 16, 32), "dw") == "tap_matmuls"  # a 1x1 window: one matmul
    assert _algorithm(ConvSpec(geo, 8), (3, 3, 1, 8)) == "taps"
    assert _algorithm(ConvSpec(geo, 2), (3, 3, 2, 8)) == "canonical"  # grouped, not depth-wise
    # a dW of at least 4 groups on at most 8 images (per-example slices folded into groups): a loop over the groups
    assert choose("dw", ConvSpec(geo, 4), (3, 3, 2, 16), (16, 16), 8) == "group_loop"
    assert choose("dw", ConvSpec(geo, 4), (3, 3, 2, 16), (16, 16), 9) == "canonical"
    assert choose("dw", ConvSpec(geo, 2), (3, 3, 2, 8), (16, 16), 1) == "canonical"  # two groups: XLA's was faster
    assert choose("dx", ConvSpec(geo, 4), (3, 3, 2, 16), (16, 16), 1) == "canonical"
    assert choose("dw", ConvSpec(geo, 8), (3, 3, 1, 8), (16, 16), 2) == "taps"  # depth-wise first
    # per rule: a stride-2 layer's backward multiplies no inserted zeros
    s2 = Geometry((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1))
    assert _algorithm(ConvSpec(s2, 1), (3, 3, 16, 32), "forward") == "canonical"
    assert _algorithm(ConvSpec(s2, 1), (3, 3, 16, 32), "dx", (32, 32)) == "tap_matmuls"  # 3/4 of g_up is zeros
    assert _algorithm(ConvSpec(s2, 1), (3, 3, 16, 32), "dw") == "batch_chunks"
    same = Geometry((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert _algorithm(ConvSpec(same, 1), (3, 3, 16, 16), "dx", (32, 32)) == "canonical"  # no zeros: 'same' padding
    valid5 = Geometry((5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1))
    assert _algorithm(ConvSpec(valid5, 1), (5, 5, 16, 16), "dx", (14, 14)) == "canonical"  # 1 - 10²/14² = 49% zeros
    assert _algorithm(ConvSpec(valid5, 1), (5, 5, 16, 16), "dx", (12, 12)) == "tap_matmuls"  # 1 - 8²/12² = 56%
    # a forced path travels in the spec (the backward, traced after the forward, takes it too)
    assert _algorithm(ConvSpec(geo, 1, "canonical"), (3, 3, 1, 6)) == "canonical"
    assert _algorithm(ConvSpec(geo, 2, "banded"), (3, 3, 2, 8)) == "canonical"  # no grouped band
    assert _algorithm(ConvSpec(geo, 1, "batch_chunks"), (3, 3, 16, 16), "forward") == "canonical"  # a dW path only
    assert _algorithm(ConvSpec(geo, 2, "batch_chunks"), (3, 3, 2, 8), "dw") == "batch_chunks"  # batch groups
    with pytest.raises(ValueError, match="unknown algorithm 'winograd'; known: onednn, taps"):
        with force_algorithm("winograd"):
            pass


def test_a_conv_traced_as_a_loop_body_takes_no_batch_chunks():
    """Inside a loop the dW's batch chunks would run one after another: under `loop_body` a few-channel dW takes the
    band, a dW of at most 8 images (per-example gradients) the tap matmuls, and any other 2-D dW one canonical
    convolution; forward and dX choose as before. The flag travels in the spec, so a backward traced after the block
    (JAX transposing a scan's body) chooses the same way."""
    from funcnn.primitives.conv import ConvSpec
    from jax.extend import core as jax_core

    from funcnn.primitives.conv.rules import choose
    from funcnn.primitives.conv.tracing import loop_body, looped
    from funcnn.primitives.geometry import Geometry

    geo = Geometry((3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1))
    one = Geometry((1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1))
    for g, groups, w_shape, outside, inside in ((geo, 1, (3, 3, 1, 6), "batch_chunks", "banded"),  # LeNet-like
                                                (geo, 1, (3, 3, 16, 16), "batch_chunks", "canonical"),  # ResNet-20
                                                (one, 1, (1, 1, 16, 32), "tap_matmuls", "tap_matmuls"),
                                                (geo, 8, (3, 3, 1, 8), "taps", "taps")):
        assert choose("dw", ConvSpec(g, groups), w_shape, (16, 16)) == outside, w_shape
        assert choose("dw", ConvSpec(g, groups, None, True), w_shape, (16, 16), 128) == inside, w_shape
    assert choose("dw", ConvSpec(geo, 1, None, True), (3, 3, 16, 16), (16, 16), 1) == "tap_matmuls"  # one image
    assert choose("dw", ConvSpec(geo, 1, None, True), (3, 3, 16, 16), (16, 16), 8) == "tap_matmuls"
    assert choose("dw", ConvSpec(geo, 1, None, True), (3, 3, 16, 16), (16, 16), 9) == "canonical"
    assert choose("dw", ConvSpec(geo, 1), (3, 3, 16, 16), (16, 16), 1) == "batch_chunks"  # not in a loop
    assert choose("forward", ConvSpec(geo, 1, None, True), (3, 3, 16, 16)) == "canonical"
    assert not looped()
    x, w = jnp.ones((3, 16, 8, 8, 16)), jnp.ones((3, 3, 16, 16))

    def loss(w):
        return lax.scan(lambda c, xi: (c + jnp.sum(fn.conv2d(xi, w) ** 2), None), 0.0, x)[0]

    with loop_body():
        closed = jax.make_jaxpr(lambda w: lax.scan(lambda c, xi: (c + jnp.sum(fn.conv2d(xi, w) ** 2), None), 0.0,
                                                   x)[0])(w)
    # the forward was traced in the block and the backward after it: the backward still runs no batch chunks
    backward = jax.make_jaxpr(jax.grad(lambda w: jax_core.jaxpr_as_fun(closed)(w)[0]))(w)
    assert {p for _, p, _ in _conv_paths(backward)} == {"canonical"}
    assert all(e.params["looped"] for e in _equations_of(backward) if e.primitive.name.startswith("funcnn.conv"))
    assert "batch_chunks" in {p for _, p, _ in _conv_paths(jax.make_jaxpr(jax.grad(loss))(w))}


def _equations_of(closed):
    from funcnn.describe import _equations

    return list(_equations(closed.jaxpr))


def _conv_paths(closed) -> set:
    """The `algorithm` parameters of the conv-family equations of a jaxpr (nested ones included)."""
    from funcnn.describe import _equations

    return {(e.primitive.name, e.params["algorithm"], e.params["forced"]) for e in _equations(closed.jaxpr)
            if e.primitive.name.startswith("funcnn.conv")}


def test_force_algorithm_retraces_jitted_functions_and_reaches_the_backward():
    """A jitted function traced with the table is traced again under force_algorithm (the pinned path is a static
    parameter of the ops and part of the compilation cache key), and a backward traced after the forced block still
    takes the forced path (it travels in the forward's parameters)."""
    x, w = jnp.ones((2, 8, 8, 2)), jnp.ones((3, 3, 2, 4))
    traces = []

    def loss(w):
        traces.append(1)
        return jnp.sum(fn.conv2d(x, w) ** 2)

    f = jax.jit(jax.grad(loss))
    f(w)
    with force_algorithm("canonical"):
        f(w)
    f(w)  # back to the first trace: nothing is traced anew
    assert len(traces) == 2
    assert {p for _, p, _ in _conv_paths(jax.make_jaxpr(jax.grad(loss))(w))} == {"banded", "batch_chunks"}
    with force_algorithm("canonical"):
        assert _conv_paths(jax.make_jaxpr(jax.grad(loss))(w)) == {("funcnn.conv", "canonical", "canonical"),
                                                                   ("funcnn.conv_dw", "canonical", "canonical")}
    with force_algorithm("tap_matmuls"):
        y, vjp = jax.vjp(lambda w: fn.conv2d(x, w, stride=2), w)
    lowered = jax.jit(vjp).lower(y).as_text()  # the backward, traced outside the block
    assert "convolution" not in lowered and "dot_general" in lowered


def test_band_block_plan():
    """B: the largest divisor of the last output size whose band spans at most BAND_MAX_INFLATION * K columns."""
    from funcnn.primitives.conv.paths.banded import block_size as _band_block
    from funcnn.primitives.conv.paths.banded import plan as _band
    from funcnn.primitives.geometry import Geometry

    valid5 = Geometry((5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1))
    assert _band_block(valid5, 28) == 7  # LeNet conv1: span 11 <= 15; 14 would span 18
    assert _band_block(valid5, 10) == 10  # LeNet conv2: span 14
    same3 = Geometry((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert _band_block(same3, 32) == 4  # 8 would span 10 > 9
    assert _band_block(valid5, 13) == 1  # a prime size: im2col
    s2 = Geometry((3,), (2,), ((1, 1),), (2,))
    assert _band_block(s2, 4) == 2  # span S*(B-1) + D*(K-1) + 1 = 7 <= 9
    band = _band(s2, (9,), block=3)  # 5 outputs in 2 blocks of 3: the high padding grows to make 6 whole
    assert (band.blocks, band.span, band.geo.padding) == (2, 9, ((1, 1 + 2 * 5 + 4 + 1 - 11),))


@pytest.mark.parametrize("block", [1, 2, 3, 100])
@pytest.mark.parametrize(
    "x_shape, w_shape, kw",
    [
        ((2, 9, 11, 2), (3, 3, 2, 3), dict()),
        ((2, 9, 11, 2), (3, 2, 2, 3), dict(stride=2, padding=((1, 0), (1, 2)))),
        ((1, 12, 10, 3), (2, 2, 3, 2), dict(stride=3, padding=2, dilation=2)),
        ((3, 13, 1), (4, 1, 2), dict(stride=2, padding=(3,))),  # 1-D: no outer axes
    ],
)
def test_banded_every_block_size_matches_reference(monkeypatch, block, x_shape, w_shape, kw):
    """Every block size B (1 = im2col, a partial last block, B >= the output width) gives the oracle's forward and
    VJP; the table only ever picks divisors, so the partial-block padding is exercised here."""
    from funcnn.primitives.conv.paths import banded

    monkeypatch.setattr(banded, "block_size", lambda geo, out_last: min(block, out_last))
    rng = np.random.default_rng(4)
    x, w, b = normal(rng, *x_shape), normal(rng, *w_shape), normal(rng, w_shape[-1])
    prim, reference = (fn.conv1d, ref.conv1d) if len(x_shape) == 3 else (fn.conv2d, ref.conv2d)
    with force_algorithm("banded"):
        check_vjp(lambda x, w, b: prim(x, w, b, **kw), lambda x, w, b: reference(x, w, b, **kw), x, w, b,
                  fd=False).raise_if_failed()


@pytest.mark.parametrize("batch", [1, 5, 20])  # fewer images than chunks, and 20 in 8 uneven chunks
def test_batch_chunks_dw_matches_reference(batch):
    rng = np.random.default_rng(5)
    x, w = normal(rng, batch, 7, 6, 4), normal(rng, 3, 3, 4, 5)
    with force_algorithm("batch_chunks"):
        check_vjp(lambda x, w: fn.conv2d(x, w, padding=1), lambda x, w: ref.conv2d(x, w, padding=1), x, w,
                  fd=False).raise_if_failed()


def test_banded_is_chosen_for_cpu_only():
    """LeNet's conv2 runs its forward and dX as band matmuls when compiled for CPU (its dW as batch chunks), and as
    convolutions for CUDA."""
    x, w = jnp.ones((2, 14, 14, 6)), jnp.ones((5, 5, 6, 16))

    def count(platform):
        f = jax.jit(jax.value_and_grad(lambda x, w: fn.conv2d(x, w).sum(), argnums=(0, 1)))
        text = jax.export.export(f, platforms=[platform])(x, w).mlir_module()
        return text.count("stablehlo.convolution"), text.count("stablehlo.dot_general")

    assert count("cpu") == (2, 2)  # forward and dX: one matmul each; dW: the canonical form on 2 batch chunks
    assert count("cuda") == (3, 0)


def test_tap_matmuls_are_chosen_for_cpu_only():
    """The strided backward runs as tap matmuls when compiled for CPU; for CUDA the canonical convolutions stay (the
    form XLA maps to cuDNN). Checked by exporting the same gradient for both platforms (no GPU needed)."""
    x, w = jnp.ones((2, 8, 8, 16)), jnp.ones((3, 3, 16, 32))  # more channels than the band takes

    def count(platform):  # a fresh function each time: the algorithm is chosen when it is traced
        grads = jax.jit(jax.grad(lambda x, w: fn.conv2d(x, w, stride=2, padding=1).sum(), argnums=(0, 1)))
        text = jax.export.export(grads, platforms=[platform])(x, w).mlir_module()
        return text.count("stablehlo.convolution"), text.count("stablehlo.dot_general")

    # dX: 9 tap matmuls; dW: the canonical form on 2 batch chunks (batch 2); the forward's value is unused
    assert count("cpu") == (2, 9)
    assert count("cuda") == (2, 0)  # one dX and one dW convolution
    with force_algorithm("tap_matmuls"):
        assert count("cuda") == (0, 18)


def _input_dilated_convolutions(text):
    """(the window text, whether its kernel is a reversed array) of every convolution with lhs_dilate in an export."""
    found = []
    for function in text.split("func.func")[1:]:
        flipped = set(re.findall(r"(%[\w#]+) = stablehlo\.reverse", function))
        for name, source in re.findall(r"(%[\w#]+) = stablehlo\.(?:reshape|transpose) (%[\w#]+)", function):
            if source in flipped:  # the groups' regrouping of a flipped filter (steps.flip_and_swap)
                flipped.add(name)
        for operands, window in re.findall(r"stablehlo\.convolution\(([^)]*)\)[^\n]*?window = \{([^}]*)\}", function):
            if "lhs_dilate" in window:
                found.append((window, operands.split(", ")[1] in flipped))
    return found


@pytest.mark.parametrize("name, f, shapes, counts", [  # counts: input-dilated convolutions in the CUDA, CPU exports
    ("conv 3x3/2", lambda x, w: fn.conv2d(x, w, stride=2, padding=1), [(2, 9, 9, 16), (3, 3, 16, 32)], (1, 0)),
    ("conv 1x1/2", lambda x, w: fn.conv2d(x, w, stride=2), [(2, 8, 8, 16), (1, 1, 16, 32)], (1, 0)),
    ("dilated 3x3", lambda x, w: fn.conv2d(x, w, dilation=2, padding=2), [(2, 8, 8, 16), (3, 3, 16, 32)], (0, 0)),
    ("depth-wise 3x3/2", lambda x, w: fn.conv2d(x, w, stride=2, padding=1, groups=16), [(2, 8, 8, 16), (3, 3, 1, 16)],
     (0, 0)),
    ("grouped 3x3/2", lambda x, w: fn.conv2d(x, w, stride=2, padding=1, groups=4), [(2, 8, 8, 16), (3, 3, 4, 32)],
     (1, 1)),
    ("transposed 4x4/2", lambda y, w: fn.conv_transpose2d(y, w, stride=2, padding=1), [(2, 4, 4, 32), (4, 4, 16, 32)],
     (1, 0)),
    ("conv3d 3x3x3/2", lambda x, w: fn.conv3d(x, w, stride=2, padding=1), [(2, 6, 6, 6, 8), (3, 3, 3, 8, 16)], (1, 0)),
    ("conv1d 5/3", lambda x, w: fn.conv1d(x, w, stride=3, padding=2), [(2, 20, 8), (5, 8, 16)], (1, 0)),
])
def test_input_dilation_only_in_the_cudnn_backward_data_form(name, f, shapes, counts):
    """Input (base) dilation, which YNNPACK refuses and cuDNN takes only as its backward-data kernel, appears in the
    CUDA export of a rule only in that kernel's form (stride 1, reversed filter: the strided dX, and the transposed
    conv's forward), and in the CPU export only in the grouped strided dX, which no CPU path without zero insertion
    computes (it stays canonical)."""
    args = [jnp.ones(s, jnp.float32) for s in shapes]
    grads = jax.jit(jax.value_and_grad(lambda *a: f(*a).sum(), argnums=(0, 1)))
    cuda = _input_dilated_convolutions(jax.export.export(grads, platforms=["cuda"])(*args).mlir_module())
    cpu = _input_dilated_convolutions(jax.export.export(grads, platforms=["cpu"])(*args).mlir_module())
    assert (len(cuda), len(cpu)) == counts, (cuda, cpu)
    assert all("stride" not in window and flipped for window, flipped in cuda + cpu), (cuda, cpu)
