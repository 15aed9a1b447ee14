"""funcnn: functional convolutional networks in JAX with hand-written, lecture-derived VJPs."""

from .primitives import (
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    dense,
    global_avg_pool2d,
    log_softmax,
    lp_pool2d,
    max_pool1d,
    max_pool2d,
    relu,
    sigmoid,
    softmax,
    softmax_cross_entropy,
    tanh,
)

__version__ = "0.1.0"

from . import data, detection, init, layers, models, reference, report, train
from .io import CorruptFileError, load, save
from .summary import count_params, summary
