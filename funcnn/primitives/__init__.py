"""funcnn's primitives: each a jax.custom_vjp whose backward rule is written by hand from lecture 004.

One module per family: `conv/` (a package: rules, paths and the algorithm table), `pool`, `dense`, `activations`,
`losses`. Each holds the forward, the forward-with-residuals and the backward next to each other, followed by
`defvjp`. Shared: `geometry` (window sizes and padding), `windows` (window slices and their adjoint), `checks`
(argument checks and dtype rules).
"""

from .activations import log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .dense import dense
from .losses import softmax_cross_entropy
from .pool import (avg_pool1d, avg_pool2d, global_avg_pool1d, global_avg_pool2d, lp_pool1d, lp_pool2d, max_pool1d,
                   max_pool2d)

__all__ = [
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d", "global_avg_pool1d",
    "global_avg_pool2d", "dense", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "softmax_cross_entropy",
]
