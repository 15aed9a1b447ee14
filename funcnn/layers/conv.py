"""Convolution layers: Conv (1-D / 2-D / 3-D), DepthwiseConv, SeparableConv, ConvTranspose, TransformInvariantConv.

Filters are HWIO (WIO in 1-D, DHWIO in 3-D), the spatial rank taken from the input shape at init; the output shape
comes from the same geometry funcnn's primitives use, so `init` also validates the configuration (a kernel larger
than the padded input fails at init, naming the shapes).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .. import init as initializers
from .. import primitives as P
from ..primitives.borders import check_fits, check_mode
from ..primitives.geometry import as_tuple, make_geometry
from ..primitives.conv import transpose_geometry
from .base import by_rank, stateless
from .combinators import serial


def _conv_out_shape(name, input_shape, kernel, stride, padding, dilation, padding_mode="zeros"):
    geo = make_geometry(name, input_shape, kernel, stride, padding, dilation, window_name="kernel")
    check_fits(name, padding_mode, input_shape, geo.padding)
    return tuple(geo.out_sizes(input_shape[1:-1]))


def _conv_fn(x, name="Conv", w=None, kind="conv"):
    """The conv primitive for x's spatial rank; with the layer's filter w, a clear error when the two ranks differ
    (a layer initialised for images applied to clips)."""
    fn = by_rank(kind, name, x.shape)
    if w is not None and w.ndim != x.ndim:
        raise ValueError(f"{name}: the input has {x.ndim - 2} spatial axes (shape {tuple(x.shape)}) but the layer's "
                         f"filter w has {w.ndim - 2} (shape {tuple(w.shape)}): initialise the layer with an input "
                         f"shape of the same rank")
    return fn


def _conv_init(name, out_channels, kernel, stride, padding, dilation, groups, use_bias, w_init, b_init,
               padding_mode="zeros"):
    """The init of a convolution layer (output shape from the shared geometry, He-initialised HWIO filter), shared
    by Conv, DepthwiseConv and TransformInvariantConv without reporting a layer of its own to `summary`.
    `out_channels` and `groups` may be functions of the input channel count (depth-wise: groups = C_in)."""

    def init(rng, input_shape):
        nd = len(input_shape) - 2
        by_rank("conv", name, input_shape)
        channels = input_shape[-1]
        g = groups(channels) if callable(groups) else groups
        cout = out_channels(channels) if callable(out_channels) else out_channels
        window = as_tuple(kernel, nd, f"{name}: kernel")
        if channels < 1 or channels % g or cout % g:
            raise ValueError(f"{name}: groups={g} must divide the input channels {channels} and the output "
                             f"channels {cout} (input shape {tuple(input_shape)})")
        spatial = _conv_out_shape(name, input_shape, window, stride, padding, dilation, padding_mode)
        k_w, k_b = jax.random.split(rng)
        params = {"w": w_init(k_w, (*window, channels // g, cout))}
        if use_bias:
            params["b"] = b_init(k_b, (cout,))
        return (input_shape[0], *spatial, cout), params

    return init


def _conv_flops(input_shape, out_shape, params):
    """2 per multiply-add: every output entry reads prod(K) * C_in / groups inputs; plus the bias."""
    return 2 * math.prod(out_shape) * math.prod(params["w"].shape[:-1]) + (math.prod(out_shape) if "b" in params
                                                                               else 0)


def _check_channels(name, value, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")


def Conv(out_channels: int, kernel, *, stride=1, padding="VALID", dilation=1, groups: int = 1, use_bias=True,
         w_init=initializers.he_normal, b_init=initializers.zeros, padding_mode="zeros"):
    """Convolution over (N, W, C), (N, H, W, C) or (N, D, H, W, C) inputs with funcnn.conv1d / conv2d / conv3d.

    `kernel` is an int (a cube / square / 1-D window, dimension taken from the input) or a tuple. Params {"w", "b"}.
    padding_mode: "zeros", "reflect", "replicate" or "circular" (PyTorch's Conv modes).
    """
    _check_channels("Conv", out_channels, "out_channels")
    _check_channels("Conv", groups, "groups")
    check_mode("Conv", padding_mode)
    init = _conv_init("Conv", out_channels, kernel, stride, padding, dilation, groups, use_bias, w_init, b_init,
                      padding_mode)

    def apply(params, x, **_):
        conv = _conv_fn(x, "Conv", params["w"])
        return conv(x, params["w"], params.get("b"), stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=padding_mode)

    return stateless("Conv", init, apply, flops=_conv_flops)


def DepthwiseConv(kernel, *, multiplier: int = 1, stride=1, padding="VALID", dilation=1, use_bias=True,
                  w_init=initializers.he_normal, b_init=initializers.zeros):
    """Depth-wise convolution: one KxK filter per input channel (groups = C_in), `multiplier` outputs per channel.

    M input channels give M * K^2 * multiplier weights (lecture: "M independent KxK 2D filters").
    """
    _check_channels("DepthwiseConv", multiplier, "multiplier")
    init = _conv_init("DepthwiseConv", lambda c: c * multiplier, kernel, stride, padding, dilation, lambda c: c,
                      use_bias, w_init, b_init)

    def apply(params, x, **_):
        conv = _conv_fn(x, "DepthwiseConv", params["w"])
        return conv(x, params["w"], params.get("b"), stride=stride, padding=padding, dilation=dilation,
                    groups=x.shape[-1])

    return stateless("DepthwiseConv", init, apply, flops=_conv_flops)


def SeparableConv(out_channels: int, kernel, *, stride=1, padding="VALID", dilation=1, use_bias=False,
                  w_init=initializers.he_normal):
    """Depth-wise separable convolution (lecture 004): depth-wise KxK, then a 1x1 convolution to `out_channels`.

    Parameters: M*K^2 (depth-wise) + N*M (point-wise) for M input and N output channels, exactly the lecture's count
    with the default use_bias=False (with use_bias=True, M + N biases more).
    """
    return serial(
        DepthwiseConv(kernel, stride=stride, padding=padding, dilation=dilation, use_bias=use_bias, w_init=w_init),
        Conv(out_channels, 1, use_bias=use_bias, w_init=w_init),
        name="SeparableConv",
    )


def ConvTranspose(out_channels: int, kernel, *, stride=1, padding="VALID", dilation=1, output_padding=0,
                  use_bias=True, w_init=initializers.he_normal, b_init=initializers.zeros, padding_mode="zeros"):
    """Transposed (expanding) convolution with funcnn.conv_transpose1d / 2d / 3d; filter (*K, out_channels, C_in)."""
    check_mode("ConvTranspose", padding_mode)

    def init(rng, input_shape):
        nd = len(input_shape) - 2
        by_rank("conv_transpose", "ConvTranspose", input_shape)
        window = as_tuple(kernel, nd, "ConvTranspose: kernel")
        spatial, geo = transpose_geometry("ConvTranspose", input_shape, window, stride, padding, dilation,
                                          output_padding)
        check_fits("ConvTranspose", padding_mode, (1, *spatial, 1), geo.padding)
        k_w, k_b = jax.random.split(rng)
        # fan_in of a transposed conv is K^2 * C_in, the last filter axis: initialise as the swapped filter
        w = jnp.swapaxes(w_init(k_w, (*window, input_shape[-1], out_channels)), -1, -2)
        params = {"w": w}
        if use_bias:
            params["b"] = b_init(k_b, (out_channels,))
        return (input_shape[0], *spatial, out_channels), params

    def apply(params, x, **_):
        fn = _conv_fn(x, "ConvTranspose", params["w"], "conv_transpose")
        return fn(x, params["w"], params.get("b"), stride=stride, padding=padding, dilation=dilation,
                  output_padding=output_padding, padding_mode=padding_mode)

    def flops(input_shape, out_shape, params):  # every input entry meets every weight of its filter column
        return 2 * math.prod(input_shape[:-1]) * math.prod(params["w"].shape) + (math.prod(out_shape) if "b" in params
                                                                                 else 0)

    return stateless("ConvTranspose", init, apply, flops=flops)


_TRANSFORMS = {
    "rot90": [(k, False) for k in range(4)],
    "dihedral": [(k, flip) for flip in (False, True) for k in range(4)],
    "flip": [(0, False), (0, True)],
}


def transform_filter(w, rotation: int, flip: bool):
    """The filter rotated by rotation*90 degrees in the (H, W) plane, after an optional left-right flip."""
    if flip:
        w = jnp.flip(w, axis=1)
    return jnp.rot90(w, rotation, axes=(0, 1))


def TransformInvariantConv(out_channels: int, kernel, *, transforms: str = "rot90", stride=1, padding="SAME",
                           use_bias=True, pool: bool = True, w_init=initializers.he_normal,
                           b_init=initializers.zeros):
    """Lecture 004 "transform invariance": each filter is applied in a discrete set of rotations / flips, and the
    maps are max-pooled over the set. One shared filter: gradients from every transformed copy flow back to it.

    transforms: "rot90" (4 rotations), "dihedral" (4 rotations x flip: 8), or "flip" (identity and mirror).
    With pool=False the layer returns the pre-pool maps (N, H, W, T, C_out). With a square odd kernel, stride 1 and
    "SAME" padding, rotating the input by 90 degrees rotates (and permutes) the pre-pool maps, and rotates the pooled
    output: a following global pooling is invariant.
    """
    if transforms not in _TRANSFORMS:
        raise ValueError(f"TransformInvariantConv: transforms must be one of {sorted(_TRANSFORMS)}, got {transforms!r}")
    ops = _TRANSFORMS[transforms]

    conv_init = _conv_init("TransformInvariantConv", out_channels, kernel, stride, padding, 1, 1, use_bias, w_init,
                           b_init)

    def init(rng, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"TransformInvariantConv: rotations act on images: the input must be (N, H, W, C), "
                             f"got shape {tuple(input_shape)}")
        shape, params = conv_init(rng, input_shape)
        if params["w"].shape[0] != params["w"].shape[1]:
            raise ValueError(f"TransformInvariantConv: rotations need a square kernel, got {params['w'].shape[:2]}")
        if not pool:
            shape = (*shape[:-1], len(ops), out_channels)
        return shape, params

    def apply(params, x, **_):
        w_all = jnp.concatenate([transform_filter(params["w"], r, f) for r, f in ops], axis=-1)
        maps = P.conv2d(x, w_all, stride=stride, padding=padding)
        maps = maps.reshape(*maps.shape[:-1], len(ops), out_channels)
        if "b" in params:
            maps = maps + params["b"]
        return jnp.max(maps, axis=-2) if pool else maps

    def flops(input_shape, out_shape, params):  # one convolution per transform, then the max over them
        maps = math.prod(out_shape) if pool else math.prod(out_shape) // len(ops)  # one transform's output entries
        per_transform = 2 * maps * math.prod(params["w"].shape[:-1]) + (maps if "b" in params else 0)
        return len(ops) * per_transform + (len(ops) * maps if pool else 0)

    return stateless("TransformInvariantConv", init, apply, flops=flops)


__all__ = ["Conv", "DepthwiseConv", "SeparableConv", "ConvTranspose", "TransformInvariantConv", "transform_filter"]
