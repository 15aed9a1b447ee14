"""funcnn's primitives: each a jax.custom_vjp whose backward rule is written by hand from lecture 004.

One module per family: `conv/` (a package: rules, paths and the algorithm table), `pool`, `norm`, `dense`,
`activations`, `losses`. Each holds the forward, the forward-with-residuals and the backward next to each other, followed by
`defvjp`. Shared: `geometry` (window sizes and padding), `windows` (window slices and their adjoint), `checks`
(argument checks and dtype rules).
"""

from .activations import log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .dense import dense
from .losses import softmax_cross_entropy
from .norm import batch_norm, group_norm, layer_norm
from .pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d, avg_pool1d,
                   avg_pool2d, global_avg_pool1d, global_avg_pool2d, lp_pool1d, lp_pool2d, max_pool1d, max_pool2d)

__all__ = [
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "global_avg_pool1d",
    "global_avg_pool2d", "batch_norm", "layer_norm", "group_norm", "dense", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "softmax_cross_entropy",
]
