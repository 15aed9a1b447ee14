"""The public convolution functions: argument checks and thin N-d wrappers around the ops of `rules.py`.

The bias is added here, after the op: z = conv(x, w) + b. Its derivative rule, db[f] = sum_{n, i} g[n, i, f], is the
transpose of that broadcast (JAX's own, a sum over every axis but the channels); its tangent is db broadcast."""

from __future__ import annotations

from ..cases import cases_for
from ..borders import BORDER_FOLD, check_fits, check_mode, pad_border
from ..arguments import as_array, check_rank, float_dtype, names_forward_mode_error
from ..geometry import SPATIAL_AXES, layout, make_geometry
from . import tracing
from .spec import ConvSpec, transpose_geometry
from .rules import conv, conv_dx

LAYOUTS = {nd: (layout(nd), layout(nd, "", "IO")) for nd in SPATIAL_AXES}  # NHWC / HWIO and the 1-D, 3-D forms


def _check_conv_args(name, nd, x, w, b, groups):
    act, fil = LAYOUTS[nd]
    check_rank(name, "x", x.shape, nd + 2, act)
    check_rank(name, "w", w.shape, nd + 2, fil)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{name}: groups must be an int >= 1, got {groups!r}")
    cin, cout = x.shape[-1], w.shape[-1]
    if cin == 0 or cout == 0 or w.shape[-2] == 0:
        raise ValueError(f"{name}: channel counts must be >= 1, got x shape {tuple(x.shape)} (C_in = {cin}) and "
                         f"w shape {tuple(w.shape)} (C_in / groups = {w.shape[-2]}, C_out = {cout})")
    if cin % groups or cout % groups:
        raise ValueError(
            f"{name}: groups={groups} must divide both the input channels (x shape {tuple(x.shape)}) "
            f"and the output channels (w shape {tuple(w.shape)})"
        )
    if w.shape[-2] * groups != cin:
        raise ValueError(
            f"{name}: channel mismatch: x has {cin} channels (shape {tuple(x.shape)}) but w expects "
            f"{w.shape[-2]} x groups={groups} = {w.shape[-2] * groups} (w shape {tuple(w.shape)})"
        )
    _check_bias(name, b, cout, w.shape)


def _check_bias(name, b, channels, w_shape):
    if b is not None and tuple(b.shape) != (channels,):
        raise ValueError(f"{name}: b must have shape ({channels},) to match w shape {tuple(w_shape)}, "
                         f"got {tuple(b.shape)}")


def _cast(name, arrays: dict):
    """jnp arrays of one common floating dtype, each checked to be numeric by name (only the bias b may be None)."""
    arrays = {k: None if a is None and k == "b" else as_array(name, k, a) for k, a in arrays.items()}
    dtype = float_dtype(name, *arrays.values())
    return [None if a is None else a.astype(dtype) for a in arrays.values()]


def _conv_nd(x, w, b, *, nd, stride, padding, dilation, groups, name, padding_mode="zeros"):
    x, w, b = _cast(name, {"x": x, "w": w, "b": b})
    _check_conv_args(name, nd, x, w, b, groups)
    mode = check_mode(name, padding_mode)
    geo = make_geometry(name, x.shape, w.shape[:-2], stride, padding, dilation, window_name="kernel")
    if mode != "zeros":  # the border filled from x first, then a VALID convolution of the padded input
        x, geo = pad_border(name, x, geo.padding, mode), geo._replace(padding=((0, 0),) * nd)
    return _with_bias(conv(x, w, ConvSpec(geo, groups, tracing.forced(), tracing.looped())), b)


def _with_bias(z, b):
    return z if b is None else z + b.astype(z.dtype)


@names_forward_mode_error("conv2d")
def conv2d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1, padding_mode="zeros"):
    """2-D convolution (correlation form) with a hand-written VJP.

    Args:
      x: (N, H, W, C_in) activations.
      w: (K_h, K_w, C_in / groups, C_out) filter (HWIO).
      b: optional (C_out,) bias.
      stride, dilation: int or (int, int), >= 1.
      padding: "VALID", "SAME" (output ceil(N/S); P_lo = floor(P/2), P_hi = P - P_lo), an int, two ints, or two
        (lo, hi) pairs.
      groups: grouped convolution; groups = C_in is depth-wise.
      padding_mode: what the padding holds: "zeros", or the input's own entries, "reflect", "replicate" or
        "circular" (PyTorch's modes; `funcnn.primitives.border_pad`). The backward folds the border's cotangent back
        onto the entries it copied.

    Returns:
      (N, H_out, W_out, C_out) with H_out = floor((H + P_lo + P_hi - K_eff) / S) + 1 and K_eff = D*(K-1)+1.

    Gradients (lecture 004): dX = upsample g by S, zero-pad by K_eff-1, convolve with the flipped, channel-swapped
    filter, crop the forward padding; dW = correlation of the padded input with the upsampled g; db = sum of g.
    """
    return _conv_nd(x, w, b, nd=2, stride=stride, padding=padding, dilation=dilation, groups=groups, name="conv2d",
                    padding_mode=padding_mode)


@names_forward_mode_error("conv1d")
def conv1d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1, padding_mode="zeros"):
    """1-D convolution (time-delay network layer): x (N, W, C_in), w (K, C_in / groups, C_out); see `conv2d`."""
    return _conv_nd(x, w, b, nd=1, stride=stride, padding=padding, dilation=dilation, groups=groups, name="conv1d",
                    padding_mode=padding_mode)


@names_forward_mode_error("conv3d")
def conv3d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1, padding_mode="zeros"):
    """3-D convolution over volumes or clips: x (N, D, H, W, C_in), w (K_d, K_h, K_w, C_in / groups, C_out) (DHWIO);
    stride, dilation and padding per axis as in `conv2d`. The same three rules over three spatial axes: z[n, i, f] =
    sum_{u, c} x_pad[n, S*i + D*u, c] w[u, c, f] with i, u running over (d, h, w)."""
    return _conv_nd(x, w, b, nd=3, stride=stride, padding=padding, dilation=dilation, groups=groups, name="conv3d",
                    padding_mode=padding_mode)


def _conv_transpose_nd(y, w, b, *, nd, stride, padding, dilation, output_padding, name, padding_mode="zeros"):
    y, w, b = _cast(name, {"y": y, "w": w, "b": b})
    mode = check_mode(name, padding_mode)
    act, fil = LAYOUTS[nd]
    check_rank(name, "y", y.shape, nd + 2, act)
    check_rank(name, "w", w.shape, nd + 2, fil)
    if y.shape[-1] == 0 or w.shape[-2] == 0:
        raise ValueError(f"{name}: channel counts must be >= 1, got y shape {tuple(y.shape)} and w shape "
                         f"{tuple(w.shape)}")
    if y.shape[-1] != w.shape[-1]:
        raise ValueError(
            f"{name}: channel mismatch: y has {y.shape[-1]} channels (shape {tuple(y.shape)}) but w, the filter of "
            f"the conv this transposes, produces {w.shape[-1]} (w shape {tuple(w.shape)} = (*K, C_out, C_in))"
        )
    _check_bias(name, b, w.shape[-2], w.shape)
    out_sizes, geo = transpose_geometry(name, y.shape, w.shape[:-2], stride, padding, dilation, output_padding)
    if mode == "zeros":
        return _with_bias(conv_dx(y, w, ConvSpec(geo, 1, tracing.forced(), tracing.looped()), out_sizes), b)
    # the adjoint of (border_pad, VALID conv): the VALID conv's transpose onto the padded input, then the border
    # folded back onto the entries it copied
    check_fits(name, mode, (1, *out_sizes, 1), geo.padding)
    padded = geo.padded_sizes(out_sizes)
    valid = ConvSpec(geo._replace(padding=((0, 0),) * nd), 1, tracing.forced(), tracing.looped())
    full = conv_dx(y, w, valid, padded)
    return _with_bias(BORDER_FOLD(full, pads=geo.padding, mode=mode, sizes=out_sizes), b)


@names_forward_mode_error("conv_transpose2d")
def conv_transpose2d(y, w, b=None, *, stride=1, padding="VALID", dilation=1, output_padding=0, padding_mode="zeros"):
    """2-D transposed (expanding) convolution: the adjoint of `conv2d(., w, stride, padding, dilation)`.

    Args:
      y: (N, H, W, C_in) activations.
      w: (K_h, K_w, C_out, C_in): the very filter a conv2d from C_out to C_in channels would use.
      b: optional (C_out,) bias.
      output_padding: extra rows at the high end, 0 <= output_padding < stride; it picks among the input sizes
        that the strided conv maps to the same output size.
      padding_mode: "zeros" (PyTorch's only mode here: the padding crops the output), or "reflect", "replicate",
        "circular": then the transposed conv is the adjoint of conv2d with that padding_mode, and the rows the
        padding would crop are folded back onto the output entries the border copied.

    Returns:
      (N, H_out, W_out, C_out) with H_out = (H-1)*S + K_eff - P_lo - P_hi + output_padding, or H*S for "SAME".
      conv_transpose2d(g, w, ...) equals the VJP of conv2d(., w, ...) at an input of size H_out, applied to g.

    Gradients (lecture 004, "transposed convolution"): the forward is the conv's dX expression (insert S-1 zeros,
    convolve with the flipped filter); dY is the strided forward conv of g; dW is the conv's dW expression with the
    input and g exchanged; db = sum of g.
    """
    return _conv_transpose_nd(y, w, b, nd=2, stride=stride, padding=padding, dilation=dilation,
                              output_padding=output_padding, name="conv_transpose2d", padding_mode=padding_mode)


@names_forward_mode_error("conv_transpose1d")
def conv_transpose1d(y, w, b=None, *, stride=1, padding="VALID", dilation=1, output_padding=0, padding_mode="zeros"):
    """1-D transposed convolution: y (N, W, C_in), w (K, C_out, C_in); see `conv_transpose2d`."""
    return _conv_transpose_nd(y, w, b, nd=1, stride=stride, padding=padding, dilation=dilation,
                              output_padding=output_padding, name="conv_transpose1d", padding_mode=padding_mode)


@names_forward_mode_error("conv_transpose3d")
def conv_transpose3d(y, w, b=None, *, stride=1, padding="VALID", dilation=1, output_padding=0, padding_mode="zeros"):
    """3-D transposed convolution: y (N, D, H, W, C_in), w (K_d, K_h, K_w, C_out, C_in); see `conv_transpose2d`."""
    return _conv_transpose_nd(y, w, b, nd=3, stride=stride, padding=padding, dilation=dilation,
                              output_padding=output_padding, name="conv_transpose3d", padding_mode=padding_mode)


__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


# ----------------------------------------------------------------------------------------------------------------
# the configurations `python -m funcnn.verify` checks (strides 1-3, paddings 0 / symmetric / asymmetric / SAME,
# dilation, groups, depth-wise, odd sizes)



@cases_for("conv2d", "conv1d", "conv_transpose2d", "conv_transpose1d", "conv3d", "conv_transpose3d")
def conv_cases(make, ref):

    def conv_case(nd, n, size, cin, cout, k, quick=False, **kw):
        prim, refn = {1: (conv1d, ref.conv1d), 2: (conv2d, ref.conv2d), 3: (conv3d, ref.conv3d)}[nd]
        x, w, b = make.normal(n, *size, cin), make.normal(*k, cin // kw.get("groups", 1), cout), make.normal(cout)
        return make.case(prim.__name__, str(kw), lambda x, w, b: prim(x, w, b, **kw),
                         lambda x, w, b: refn(x, w, b, **kw), x, w, b, quick=quick)

    # the bounded set (the first case of a family also runs the structural checks: the cheapest goes first) covers
    # every CPU path of the table: banded (3 -> 6, 4 -> 8 channels), taps (depth-wise), and canonical forward with
    # tap-matmul dX and batch-chunk dW (12 -> 12 channels, stride 2)
    for i, cfg in enumerate([dict(stride=2, padding=1), dict(), dict(padding="SAME", dilation=3),
                             dict(groups=3, stride=2)]):
        yield conv_case(1, 2, (11,) if i else (7,), 3, 6, (3,), quick=i == 0, **cfg)
    yield conv_case(2, 2, (5, 6), 4, 8, (3, 3), quick=True, stride=2, padding="SAME")
    yield conv_case(2, 2, (5, 6), 4, 4, (3, 3), quick=True, groups=4, stride=2, padding="SAME")
    yield conv_case(2, 2, (5, 4), 12, 12, (3, 3), quick=True, stride=2, padding=1)
    for cfg in [dict(stride=2, dilation=(1, 2), padding=((2, 0), (1, 3))), dict(), dict(stride=2),
                dict(stride=3, padding=1), dict(padding="SAME"), dict(padding=((1, 2), (0, 1)), stride=(2, 1)),
                dict(dilation=2, padding=2), dict(groups=2)]:
        yield conv_case(2, 2, (7, 6), 4, 8, (3, 3), **cfg)
    yield conv_case(2, 1, (9, 8), 3, 2, (2, 3), stride=3, padding=((2, 1), (0, 2)))
    yield conv_case(2, 2, (9, 9), 16, 12, (3, 3), padding=1)

    for i, cfg in enumerate([dict(stride=2, padding=1, output_padding=1), dict(), dict(stride=2),
                             dict(stride=3, padding="SAME"), dict(stride=2, dilation=2, padding=((1, 0), (2, 1)))]):
        y, w, b = make.normal(2, 3 if i == 0 else 4, 4 if i == 0 else 5, 3), make.normal(3, 3, 4, 3), make.normal(4)
        yield make.case("conv_transpose2d", str(cfg), lambda y, w, b, cfg=cfg: conv_transpose2d(y, w, b, **cfg),
                        lambda y, w, b, cfg=cfg: ref.conv_transpose2d(y, w, b, **cfg), y, w, b, quick=i == 0)
    y, w, b = make.normal(2, 6, 3), make.normal(4, 2, 3), make.normal(2)
    yield make.case("conv_transpose1d", "stride=3", lambda y, w, b: conv_transpose1d(y, w, b, stride=3),
                    lambda y, w, b: ref.conv_transpose1d(y, w, b, stride=3), y, w, b)

    # volumes: the same rules over three spatial axes (every path of the table: banded for few channels, taps for
    # depth-wise, the canonical forward with tap-matmul dX / batch-chunk dW), and the padding modes
    yield conv_case(3, 2, (4, 5, 3), 2, 3, (3, 2, 2), quick=True, stride=(1, 2, 1), padding=((1, 0), (1, 1), (0, 1)))
    yield conv_case(3, 1, (5, 4, 4), 3, 3, (3, 3, 3), groups=3, stride=2, padding="SAME")
    yield conv_case(3, 1, (4, 4, 5), 12, 12, (2, 2, 3), stride=2, padding=1, dilation=(1, 2, 1))
    for i, mode in enumerate(("reflect", "replicate", "circular")):
        yield conv_case(2, 2, (6, 5), 3, 4, (3, 3), quick=i == 0, stride=2, padding=((2, 1), (1, 2)),
                        padding_mode=mode)
        yield conv_case(3, 1, (4, 3, 5), 2, 3, (3, 2, 3), padding="SAME", padding_mode=mode)
    for i, (mode, cfg) in enumerate([("reflect", dict(stride=2, padding=1, output_padding=1)),
                                     ("circular", dict(stride=(2, 1, 3), padding=((1, 2), (0, 1), (2, 0)))),
                                     ("replicate", dict(padding=1))]):
        y, w, b = make.normal(1, 3, 3, 2, 3), make.normal(3, 2, 3, 2, 3), make.normal(2)
        cfg = dict(cfg, padding_mode=mode)
        yield make.case("conv_transpose3d", str(cfg), lambda y, w, b, cfg=cfg: conv_transpose3d(y, w, b, **cfg),
                        lambda y, w, b, cfg=cfg: ref.conv_transpose3d(y, w, b, **cfg), y, w, b, quick=i == 0)
    y, w, b = make.normal(2, 4, 5, 3), make.normal(3, 3, 2, 3), make.normal(2)
    yield make.case("conv_transpose2d", "reflect, stride 2", lambda y, w, b: conv_transpose2d(
        y, w, b, stride=2, padding=1, padding_mode="reflect"), lambda y, w, b: ref.conv_transpose2d(
        y, w, b, stride=2, padding=1, padding_mode="reflect"), y, w, b)
