"""3-D convolution and pooling, padding modes, return_indices and max unpooling: against PyTorch float64 (values
and gradients), the literal reference, adjoint identities, and their bad inputs.

The verifier's registered cases (tests/verify) already check every new rule against jax.vjp / jax.jvp of the literal
reference and float64 finite differences; this file adds the independent PyTorch oracle and the properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn.primitives as P
from ..helpers import check_vjp, torch_or_skip
from funcnn.primitives.conv import force_algorithm
from funcnn.verify import reference as R

MODES = ("reflect", "replicate", "circular")


_torch = torch_or_skip  # float64 is on for every test (conftest.py)


def _t(torch, a):
    """NDHWC / NHWC -> PyTorch's channels-first, float64, requiring grad."""
    return torch.tensor(np.moveaxis(np.asarray(a), -1, 1).copy(), requires_grad=True)


def _back(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def _compare(torch, ours, theirs, *arrays, rtol=1e-10):
    """ours(*arrays) and theirs(*torch tensors) equal, and so are their VJPs for one random cotangent."""
    y = ours(*arrays)
    tensors = [_t(torch, a) for a in arrays]
    yt = theirs(*tensors)
    np.testing.assert_allclose(y, _back(yt), rtol=rtol, atol=rtol)
    g = np.random.default_rng(7).normal(size=y.shape)
    grads_t = torch.autograd.grad(yt, tensors, _t(torch, g))
    grads = jax.vjp(ours, *arrays)[1](jnp.asarray(g))
    for a, b in zip(grads, grads_t):
        np.testing.assert_allclose(a, _back(b), rtol=rtol, atol=rtol)


# ----------------------------------------------------------------------------------------------------------------
# 3-D convolution


@pytest.mark.parametrize("algorithm", [None, "canonical", "banded", "tap_matmuls", "batch_chunks"])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(stride=(1, 2, 3), padding=(2, 1, 0),
                                                                         dilation=(2, 1, 1)), dict(groups=2)])
def test_conv3d_against_pytorch(kw, algorithm):
    torch = _torch()
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 5, 6, 7, 4)), rng.normal(size=(3, 2, 3, 4 // kw.get("groups", 1), 6)), \
        rng.normal(size=6)
    torch_kw = {k: v for k, v in kw.items()}

    def theirs(x, w):
        return torch.nn.functional.conv3d(x, w, torch.tensor(b), **torch_kw)

    def ours(x, w):
        with force_algorithm(algorithm):
            return P.conv3d(x, w, b, **kw)

    y = ours(x, w)
    xt, wt = _t(torch, x), torch.tensor(np.transpose(w, (4, 3, 0, 1, 2)).copy(), requires_grad=True)
    yt = theirs(xt, wt)
    np.testing.assert_allclose(y, _back(yt), rtol=1e-10, atol=1e-10)
    g = np.random.default_rng(1).normal(size=y.shape)
    gx, gw = torch.autograd.grad(yt, (xt, wt), _t(torch, g))
    dx, dw = jax.vjp(ours, x, w)[1](jnp.asarray(g))
    np.testing.assert_allclose(dx, _back(gx), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, np.transpose(gw.numpy(), (2, 3, 4, 1, 0)), rtol=1e-10, atol=1e-10)


def test_3d_pools_against_pytorch():
    """Max (ceil mode), mean (count_include_pad=False), p-norm (PyTorch's LPPool sums where funcnn averages: the
    outputs differ by |W|^(1/p)), adaptive mean and max, global mean."""
    torch = _torch()
    F = torch.nn.functional
    x = np.random.default_rng(13).normal(size=(2, 7, 6, 9, 3))
    _compare(torch, lambda x: P.max_pool3d(x, 3, 2, 1, ceil_mode=True),
             lambda t: F.max_pool3d(t, 3, 2, 1, ceil_mode=True), x)
    _compare(torch, lambda x: P.avg_pool3d(x, (3, 2, 3), 2, 1, count_include_pad=False, ceil_mode=True),
             lambda t: F.avg_pool3d(t, (3, 2, 3), 2, 1, count_include_pad=False, ceil_mode=True), x)
    _compare(torch, lambda x: P.lp_pool3d(x, 3.0, (2, 3, 2), 2) * 12.0 ** (1 / 3),
             lambda t: F.lp_pool3d(t.abs(), 3.0, (2, 3, 2), 2), x)
    _compare(torch, lambda x: P.adaptive_avg_pool3d(x, (3, 4, 5)), lambda t: F.adaptive_avg_pool3d(t, (3, 4, 5)), x)
    _compare(torch, lambda x: P.adaptive_max_pool3d(x, (3, 4, 5)), lambda t: F.adaptive_max_pool3d(t, (3, 4, 5)), x)
    _compare(torch, P.global_avg_pool3d, lambda t: t.mean((2, 3, 4)), x)


def test_depthwise_conv3d_takes_the_taps_path_and_matches_the_reference():
    rng = np.random.default_rng(2)
    x, w = jnp.asarray(rng.normal(size=(2, 4, 5, 6, 3))), jnp.asarray(rng.normal(size=(3, 3, 3, 1, 6)))
    jaxpr = str(jax.make_jaxpr(lambda x, w: P.conv3d(x, w, groups=3, padding="SAME"))(x, w))
    assert "algorithm=taps" in jaxpr
    np.testing.assert_allclose(P.conv3d(x, w, groups=3, padding="SAME"), R.conv3d(x, w, groups=3, padding="SAME"),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ("zeros",) + MODES)
def test_conv_transpose3d_is_the_adjoint_of_conv3d_in_every_padding_mode(mode):
    """<conv3d(x), g> = <x, conv_transpose3d(g)>: with a padding mode the transposed conv folds the border back."""
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(2, 7, 6, 5, 3)), rng.normal(size=(3, 3, 2, 3, 4))
    kw = dict(stride=2, padding=((1, 2), 1, (0, 1)), padding_mode=mode)
    y = P.conv3d(x, w, **kw)
    g = rng.normal(size=y.shape)
    t = P.conv_transpose3d(g, w, output_padding=(1, 1, 0), **kw)
    assert t.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, t), rtol=1e-11)
    np.testing.assert_allclose(t, jax.vjp(lambda x: P.conv3d(x, w, **kw), x)[1](jnp.asarray(g))[0], rtol=1e-11,
                               atol=1e-11)


def test_conv_transpose3d_against_pytorch():
    torch = _torch()
    rng = np.random.default_rng(4)
    y, w = rng.normal(size=(2, 3, 4, 2, 5)), rng.normal(size=(2, 3, 3, 4, 5))
    ours = P.conv_transpose3d(y, w, stride=(2, 1, 2), padding=1, output_padding=(1, 0, 1))
    wt = torch.tensor(np.transpose(w, (4, 3, 0, 1, 2)).copy())
    theirs = torch.nn.functional.conv_transpose3d(_t(torch, y), wt, stride=(2, 1, 2), padding=1,
                                                  output_padding=(1, 0, 1))
    np.testing.assert_allclose(ours, _back(theirs), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# padding modes


@pytest.mark.parametrize("mode", MODES)
def test_border_pad_against_torch_pad(mode):
    torch = _torch()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 5, 4, 3, 2))
    pads = ((2, 3), (3, 1), (0, 2)) if mode != "reflect" else ((4, 2), (3, 1), (0, 2))
    torch_pads = tuple(p for lo_hi in reversed(pads) for p in lo_hi)
    _compare(torch, lambda x: P.border_pad(x, pads, mode),
             lambda t: torch.nn.functional.pad(t, torch_pads, mode=mode), x)


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_padding_modes_against_pytorch_conv_layers(mode):
    """PyTorch's own Conv2d(padding_mode=...) (its F.pad then a VALID conv), values and both gradients."""
    torch = _torch()
    rng = np.random.default_rng(6)
    conv = torch.nn.Conv2d(3, 4, (3, 2), stride=2, padding=(2, 1), padding_mode=mode, bias=False).double()
    w = np.transpose(conv.weight.detach().numpy(), (2, 3, 1, 0))
    x = rng.normal(size=(2, 7, 6, 3))
    y = P.conv2d(x, w, stride=2, padding=((2, 2), (1, 1)), padding_mode=mode)
    xt = _t(torch, x)
    yt = conv(xt)
    np.testing.assert_allclose(y, _back(yt), rtol=1e-10, atol=1e-10)
    g = rng.normal(size=y.shape)
    gx, gw = torch.autograd.grad(yt, (xt, conv.weight), _t(torch, g))
    dx, dw = jax.vjp(lambda x, w: P.conv2d(x, w, stride=2, padding=((2, 2), (1, 1)), padding_mode=mode), x, w)[1](g)
    np.testing.assert_allclose(dx, _back(gx), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, np.transpose(gw.numpy(), (2, 3, 1, 0)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_pools_with_padding_modes_against_pad_then_pool(mode):
    torch = _torch()
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 6, 7, 5, 2))
    _compare(torch, lambda x: P.max_pool3d(x, 3, 2, 1, padding_mode=mode),
             lambda t: F.max_pool3d(F.pad(t, (1,) * 6, mode=mode), 3, 2), x)
    _compare(torch, lambda x: P.avg_pool3d(x, (2, 3, 3), 2, (1, 1, 1), padding_mode=mode),
             lambda t: F.avg_pool3d(F.pad(t, (1,) * 6, mode=mode), (2, 3, 3), 2), x)
    x2 = x[:, 0]
    _compare(torch, lambda x: P.avg_pool2d(x, 3, 2, ((2, 1), (1, 2)), padding_mode=mode),
             lambda t: F.avg_pool2d(F.pad(t, (1, 2, 2, 1), mode=mode), 3, 2), x2)


def test_padding_mode_border_gradient_folds_onto_the_copied_entries():
    """A 1-D reflect pad of [a b c d] by 2 is [c b a b c d c b]: g on the border lands on the mirrored entries."""
    x = jnp.arange(1.0, 5.0).reshape(1, 4, 1)
    y, vjp = jax.vjp(lambda x: P.border_pad(x, 2, "reflect"), x)
    np.testing.assert_array_equal(y[0, :, 0], [3, 2, 1, 2, 3, 4, 3, 2])
    (dx,) = vjp(jnp.arange(1.0, 9.0).reshape(1, 8, 1))
    # a gets g[2]; b gets g[1], g[3], g[7]; c gets g[0], g[4], g[6]; d gets g[5]
    np.testing.assert_array_equal(dx[0, :, 0], [3, 2 + 4 + 8, 1 + 5 + 7, 6])
    (dr,) = jax.vjp(lambda x: P.border_pad(x, 2, "replicate"), x)[1](jnp.ones((1, 8, 1)))
    np.testing.assert_array_equal(dr[0, :, 0], [3, 1, 1, 3])
    (dc,) = jax.vjp(lambda x: P.border_pad(x, ((1, 3),), "circular"), x)[1](jnp.arange(1.0, 9.0).reshape(1, 8, 1))
    np.testing.assert_array_equal(dc[0, :, 0], [2 + 6, 3 + 7, 4 + 8, 5 + 1])


def test_padding_modes_keep_a_large_mean_exact():
    """Inputs whose mean is large next to their spread: the copies are exact, so the conv of a constant stays
    the constant times the filter sum in every mode (zeros would not: it pulls the border toward 0)."""
    x = 1e4 + 1e-3 * np.random.default_rng(9).normal(size=(1, 6, 6, 1))
    w = np.full((3, 3, 1, 1), 1.0 / 9.0)
    for mode in MODES:
        y = P.conv2d(x, w, padding=1, padding_mode=mode)
        assert np.max(np.abs(np.asarray(y) - 1e4)) < 1e-2


# ----------------------------------------------------------------------------------------------------------------
# return_indices and max unpooling


@pytest.mark.parametrize("nd, shape, kw", [(1, (2, 9, 3), dict(window=3, stride=2, padding=1)),
                                           (2, (2, 8, 9, 3), dict(window=3, stride=2, padding=1)),
                                           (3, (2, 5, 6, 7, 2), dict(window=(2, 3, 2), stride=(2, 2, 3),
                                                                     padding=(1, 0, 1), ceil_mode=True))])
def test_return_indices_equal_pytorchs(nd, shape, kw):
    torch = _torch()
    rng = np.random.default_rng(10)
    x = rng.normal(size=shape)
    x[0, 1] = x[0, 0]  # ties across windows
    y, idx = getattr(P, f"max_pool{nd}d")(x, return_indices=True, **kw)
    assert idx.dtype == jnp.int32
    tk = dict(kernel_size=kw["window"], stride=kw["stride"], padding=kw["padding"],
              ceil_mode=kw.get("ceil_mode", False))
    yt, it = getattr(torch.nn.functional, f"max_pool{nd}d")(_t(torch, x), return_indices=True, **tk)
    np.testing.assert_array_equal(y, _back(yt))
    np.testing.assert_array_equal(idx, _back(it))
    _, ref_idx = getattr(R, f"max_pool{nd}d")(jnp.asarray(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("nd, shape, window, output_size", [(1, (2, 9, 3), 3, None), (2, (2, 8, 9, 3), 2, (8, 9)),
                                                            (3, (1, 4, 6, 5, 2), 2, (4, 6, 5))])
def test_max_unpool_against_pytorch(nd, shape, window, output_size):
    torch = _torch()
    x = np.random.default_rng(11).normal(size=shape)
    y, idx = getattr(P, f"max_pool{nd}d")(x, window, return_indices=True)
    _, it = getattr(torch.nn.functional, f"max_pool{nd}d")(_t(torch, x), window, return_indices=True)
    unpool = getattr(P, f"max_unpool{nd}d")
    torch_unpool = getattr(torch.nn.functional, f"max_unpool{nd}d")
    _compare(torch, lambda y: unpool(y, idx, window, output_size=output_size),
             lambda t: torch_unpool(t, it, window, output_size=output_size), np.asarray(y))


def test_unpooling_the_pooled_maxima_restores_them_and_is_linear():
    rng = np.random.default_rng(12)
    x = jnp.asarray(rng.normal(size=(2, 6, 8, 3)))
    y, idx = P.max_pool2d(x, 2, return_indices=True)
    u = P.max_unpool2d(y, idx, 2)
    np.testing.assert_array_equal(P.max_pool2d(u, 2), y) if bool(jnp.all(y > 0)) else None
    assert int(jnp.sum(u != 0)) == y.size and np.allclose(jnp.where(u != 0, x, 0.0), u)
    t = jnp.asarray(rng.normal(size=y.shape))
    np.testing.assert_allclose(jax.jvp(lambda y: P.max_unpool2d(y, idx, 2), (y,), (t,))[1], P.max_unpool2d(t, idx, 2))
    g = jnp.asarray(rng.normal(size=u.shape))
    (dy,) = jax.vjp(lambda y: P.max_unpool2d(y, idx, 2), y)[1](g)
    np.testing.assert_allclose(np.vdot(P.max_unpool2d(t, idx, 2), g), np.vdot(t, dy), rtol=1e-12)
    batched = jax.vmap(lambda y, i: P.max_unpool2d(y, i, 2))(jnp.stack([y, 2 * y]), jnp.stack([idx, idx]))
    np.testing.assert_allclose(batched[1], 2 * u)


@pytest.mark.parametrize("nd, shape, window, stride, padding", [(1, (2, 33, 2), 3, 2, 1), (2, (2, 16, 15, 3), 3, 2, 1),
                                                             (3, (1, 7, 6, 7, 2), 3, 2, 1), (2, (1, 9, 9, 1), 3, 1, 1)])
def test_max_unpool_under_overlapping_windows_is_the_exact_transpose(nd, shape, window, stride, padding):
    """Overlapping pools name one maximum in several windows. The copies average forward (one value: the maximum)
    and share g backward, so the adjoint identity holds, finite differences agree, and max_unpool(max_pool(x)) has
    the gradient of x masked at its maxima. Before, the forward wrote one copy and the backward gave every copy all
    of g: the composite counted a maximum once per window that chose it, and the adjoint identity failed."""
    rng = np.random.default_rng(13)
    x = jnp.asarray(rng.normal(size=shape))
    pool, unpool = getattr(P, f"max_pool{nd}d"), getattr(P, f"max_unpool{nd}d")
    y, idx = pool(x, window, stride, padding=padding, return_indices=True)
    flat = np.asarray(idx).reshape(shape[0], -1, shape[-1])
    repeated = sum(len(f) - len(np.unique(f)) for f in np.moveaxis(flat, -1, 1).reshape(-1, flat.shape[1]))
    assert repeated / flat.size > 0.1  # the case this test is about: many repeated indices
    sizes = shape[1:-1]

    def f(y):
        return unpool(y, idx, window, stride, padding=padding, output_size=sizes)

    u = f(y)
    assert u.shape == x.shape and np.allclose(jnp.where(u != 0, x, 0.0), u)  # each maximum restored, once
    t, g = jnp.asarray(rng.normal(size=y.shape)), jnp.asarray(rng.normal(size=u.shape))
    (dy,) = jax.vjp(f, y)[1](g)
    np.testing.assert_allclose(np.vdot(f(t), g), np.vdot(t, dy), rtol=1e-12)             # the adjoint identity
    np.testing.assert_allclose(jax.jvp(f, (y,), (t,))[1], f(t), rtol=1e-12)             # linear: tangent = f(t)
    report = check_vjp(f, lambda y: getattr(R, f"max_unpool{nd}d")(y, idx, window, stride, padding=padding,
                                                                       output_size=sizes), t)
    assert report.ok, report
    grad = jax.grad(lambda x: jnp.vdot(unpool(*pool(x, window, stride, padding=padding, return_indices=True),
                                              window, stride, padding=padding, output_size=sizes), g))(x)
    np.testing.assert_allclose(grad, jnp.where(u != 0, g, 0.0), rtol=1e-12, atol=1e-15)


def test_max_unpool_forward_equals_pytorchs_under_overlap():
    """Where this differs from PyTorch is the backward only: forward, the average of equal copies is PyTorch's one
    write, to the rounding of (m a) / m: at most 2 ulps (seen: 1 ulp at one of 1,440 entries, float64)."""
    torch = _torch()
    x = np.random.default_rng(14).normal(size=(2, 16, 15, 3))
    y, idx = P.max_pool2d(x, 3, 2, padding=1, return_indices=True)
    _, it = torch.nn.functional.max_pool2d(_t(torch, x), 3, 2, padding=1, return_indices=True)
    expected = torch.nn.functional.max_unpool2d(_t(torch, np.asarray(y)), it, 3, 2, padding=1, output_size=(16, 15))
    got = np.asarray(P.max_unpool2d(y, idx, 3, 2, padding=1, output_size=(16, 15)))
    np.testing.assert_array_equal(got == 0, _back(expected) == 0)  # the same entries written
    np.testing.assert_allclose(got, _back(expected), rtol=2 * np.finfo(np.float64).eps, atol=0)


def test_the_backward_of_every_3d_pool_holds_no_scatter_in_its_cuda_export():
    from funcnn.verify import scatter_ops

    x = jnp.ones((1, 4, 4, 4, 2), jnp.float32)
    for pool in (lambda x: P.max_pool3d(x, 2), lambda x: P.avg_pool3d(x, 3, 1, 1), lambda x: P.lp_pool3d(x, 2.0, 2),
                 lambda x: P.adaptive_max_pool3d(x, 3), lambda x: P.adaptive_avg_pool3d(x, 3),
                 lambda x: P.max_pool3d(x, 3, 2, 1, padding_mode="reflect")):
        assert scatter_ops(jax.grad(lambda x: pool(x).sum()), (x,), "cuda") == []


# ----------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("call, match", [
    (lambda: P.conv3d(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 3, 2))), r"conv3d: x must have rank 5 \(NDHWC\)"),
    (lambda: P.max_pool3d(jnp.ones((1, 4, 4, 3)), 2), r"max_pool3d: x must have rank 5 \(NDHWC\), got shape"),
    (lambda: P.max_pool2d(jnp.ones((1, 4, 4, 3)), (2, 2, 2)), r"max_pool2d: window must have 2 entries"),
    (lambda: P.conv2d(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 2)), padding_mode="mirror"),
     r"conv2d: padding_mode must be one of zeros, reflect, replicate, circular, got 'mirror'"),
    (lambda: P.conv2d(jnp.ones((1, 3, 4, 3)), jnp.ones((3, 3, 3, 2)), padding=3, padding_mode="reflect"),
     r"conv2d: padding_mode='reflect' needs a padding smaller than the input size on every axis, got padding "
     r"\(3, 3\) on spatial axis 0 of size 3"),
    (lambda: P.border_pad(jnp.ones((1, 3, 2)), 4, "circular"),
     r"border_pad: padding_mode='circular' needs a padding at most the input size"),
    (lambda: P.border_pad(jnp.ones((1, 3, 2)), "SAME"), r"border_pad: padding must be an int or \(lo, hi\) pairs"),
    (lambda: P.avg_pool2d(jnp.ones((1, 4, 4, 3)), 2, padding_mode=3), r"avg_pool2d: padding_mode must be one of"),
    (lambda: P.max_pool2d(jnp.ones((1, 4, 4, 3)), 2, return_indices=True, padding_mode="reflect"),
     r"max_pool2d: return_indices needs padding_mode='zeros'"),
    (lambda: P.max_unpool2d(jnp.ones((1, 2, 2, 3)), jnp.zeros((1, 2, 3, 3), jnp.int32), 2),
     r"max_unpool2d: indices must have x's shape \(1, 2, 2, 3\) \(one index per pooled value\), got \(1, 2, 3, 3\)"),
    (lambda: P.max_unpool2d(jnp.ones((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 3)), 2),
     r"max_unpool2d: indices must be integers"),
    (lambda: P.max_unpool3d(jnp.ones((1, 2, 2, 2, 3)), jnp.zeros((1, 2, 2, 2, 3), jnp.int32), 2, output_size=(9, 4, 4)),
     r"max_unpool3d: output_size \(9, 4, 4\) must lie within a stride of the default \(4, 4, 4\)"),
    (lambda: P.max_unpool2d(jnp.ones((1, 2, 2, 3)), jnp.zeros((1, 2, 2), jnp.int32), 2),
     r"max_unpool2d: indices must have rank 4 \(NHWC\)"),
    (lambda: P.conv_transpose3d(jnp.ones((1, 2, 2, 2, 3)), jnp.ones((2, 2, 2, 2, 3)), padding=1,
                                padding_mode="reflect"),
     r"conv_transpose3d: padding_mode='reflect' needs a padding smaller than the input size"),
])
def test_bad_input_names_the_argument_and_shapes(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
