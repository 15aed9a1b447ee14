"""The convolution family: conv1d, conv2d, conv_transpose1d, conv_transpose2d.

    api.py       the public functions and their argument checks
    rules.py     the derivation, and the two custom_vjp primitives (forward, residuals, backward)
    steps.py     the lecture's named steps of the backward (upsample, full pad, flip and swap, crop)
    geometry.py  ConvSpec, the transposed conv's sizes, the rules' padding arithmetic
    dispatch.py  the algorithm table (which path computes each rule), force_algorithm
    paths/       one module per algorithm, each with conv(x, w, spec), dx(g, w, spec, in_sizes), dw(x, g, spec, w_shape)
"""

from .api import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .dispatch import ALGORITHMS, TABLE, force_algorithm
from .geometry import ConvSpec, transpose_geometry

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "ALGORITHMS", "TABLE", "force_algorithm",
           "ConvSpec", "transpose_geometry"]
