"""The canonical path: each rule is one `lax.conv_general_dilated` call built from the lecture's named steps.

Why it exists: this is the form XLA maps to vendor kernels (cuDNN forward, backward-data and backward-filter on
GPU), so it is the path on every backend but the CPU, and the fallback of every CPU choice. On CPU it is the
forward and the stride-1 dX of layers with many channels, where no hand-written path beat XLA's own convolution.
"""

from __future__ import annotations

from jax import lax

from ...arguments import accumulation_dtype
from ..backward_steps import dw_padding, flip_and_swap, full_pad_then_crop, upsample_dilation
from ..spec import ConvSpec, dimension_numbers


def conv(x, w, spec: ConvSpec):
    """z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f]."""
    nd = x.ndim - 2
    z = lax.conv_general_dilated(
        x, w,
        window_strides=spec.geo.stride,
        padding=spec.geo.padding,
        rhs_dilation=spec.geo.dilation,
        dimension_numbers=dimension_numbers(nd, "N*C", "*IO", "N*C"),
        feature_group_count=spec.groups,
        preferred_element_type=accumulation_dtype(x.dtype),
    )
    return z.astype(x.dtype)


def dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]: steps 1-4 as one stride-1 convolution."""
    nd = g.ndim - 2
    out = lax.conv_general_dilated(
        g, flip_and_swap(w, spec.groups),                    # step 3
        window_strides=(1,) * nd,
        padding=full_pad_then_crop(spec, in_sizes),          # steps 2 and 4
        lhs_dilation=upsample_dilation(spec),                # step 1
        rhs_dilation=spec.geo.dilation,
        dimension_numbers=dimension_numbers(nd, "N*C", "*OI", "N*C"),
        feature_group_count=spec.groups,
        preferred_element_type=accumulation_dtype(g.dtype),
    )
    return out.astype(g.dtype)


def dw(x, g, spec: ConvSpec, w_shape, *, out_dtype=None):
    """dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c].

    A correlation of the padded input with g upsampled by S (rhs_dilation = S), stepping D over the input
    (window_strides = D); batch and channel axes swap roles, and groups become batch groups.
    """
    nd = x.ndim - 2
    out = lax.conv_general_dilated(
        x, g,
        window_strides=spec.geo.dilation,
        padding=dw_padding(spec, x.shape[1:-1]),
        rhs_dilation=upsample_dilation(spec),
        dimension_numbers=dimension_numbers(nd, "C*N", "I*O", "*NC"),
        batch_group_count=spec.groups,
        preferred_element_type=accumulation_dtype(x.dtype),
    )
    return out.astype(out_dtype or x.dtype)
