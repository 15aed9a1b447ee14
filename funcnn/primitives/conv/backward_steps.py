"""The lecture's named steps for the convolution's backward (lecture 004, "Overall algorithm for computing
derivatives w.r.t. Y(l-1)", "The derivatives for the weights"), each one line of math on the static geometry.

dX, for the incoming cotangent g (the lecture's dDiv/dz):
    1. upsample g by S: insert S-1 zeros between entries             `upsample_dilation` -> lhs_dilation = S
    2. zero-pad it by K_eff-1 on every side                           `full_pad_then_crop`
    3. convolve with the filter flipped in every spatial axis and
       with its in/out channels swapped                               `flip_and_swap`
    4. crop the forward padding (P_lo at the start, P_hi plus the
       rows the floor dropped at the end)                             `full_pad_then_crop` (the same pair)
dW: the correlation of the padded input with g upsampled by S         `dw_padding`        -> rhs_dilation = S

`paths/canonical.py` maps each set of steps onto a single `lax.conv_general_dilated` call, the canonical form XLA
sends to vendor kernels; `funcnn.verify.reference.conv_dx_literal` does the same steps with real zeros, as a test
oracle (and shares no code with this module).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .spec import ConvSpec


def upsample_dilation(spec: ConvSpec):
    """Step 1, lecture `upsample(dz, S)`: the dilation S that inserts S-1 zeros between entries of g (XLA does the
    upsampling inside the convolution, as its lhs_dilation)."""
    return spec.geo.stride


def full_pad_then_crop(spec: ConvSpec, in_sizes):
    """Steps 2 and 4: pad the upsampled g by K_eff-1 on every side, then crop the forward padding.

    Both are one (lo, hi) pair per axis: lo = K_eff-1-P_lo, hi = K_eff-1-P_hi + r, where r counts the rows the floor in
    the forward output size dropped (they never reached the output, so their derivative is zero). A negative entry
    crops.
    """
    return tuple(
        (ke - 1 - lo, ke - 1 - hi + r)
        for ke, (lo, hi), r in zip(spec.geo.effective_window, spec.geo.padding, spec.geo.dropped(in_sizes))
    )


def flip_and_swap(w, groups: int):
    """Step 3: flip the filter in every spatial axis and swap its in/out channels.

    The flip is `lax.rev`; the swap is done by relabelling the filter axes in the dimension numbers ("*OI" instead of
    "*IO"), so no copy is made. With groups, the group axis moves from the output to the input channels:
    (*K, C_in/G, C_out) -> (*K, C_in, C_out/G).
    """
    nd = w.ndim - 2
    w = lax.rev(w, tuple(range(nd)))
    if groups > 1:
        *k, cin_g, cout = w.shape
        w = w.reshape(*k, cin_g, groups, cout // groups)
        w = jnp.moveaxis(w, -2, -3).reshape(*k, groups * cin_g, cout // groups)
    return w


def dw_padding(spec: ConvSpec, in_sizes):
    """dW reads the input padded as in the forward pass, less the rows the floor dropped (they met no output)."""
    return tuple((lo, hi - r) for (lo, hi), r in zip(spec.geo.padding, spec.geo.dropped(in_sizes)))


__all__ = ["upsample_dilation", "full_pad_then_crop", "flip_and_swap", "dw_padding"]
