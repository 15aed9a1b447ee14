"""funcnn's primitives: JAX primitives carrying the tangent and backward rules written by hand from lecture 004.

One module per family: `conv/` (a package: rules, paths and the algorithm table), `pool/` (windowed, adaptive,
unpool), `borders` (padding modes),
`norm`, `dense`, `activations`, `losses`. Each holds an op's forward, tangent and backward rules next to each other
and registers them with `carrier` (the one module that talks to JAX's primitive API). Shared: `geometry` (window
sizes and padding), `windows` (window slices and their adjoint), `arguments` (argument checks and dtype rules),
`cases` (Case, CaseMaker, cases_for). `CASE_GENERATORS` is the table of each family's configurations, which the
verifier sweeps.
"""

from ..catalog import PRIMITIVES
from .activations import activation_cases, log_softmax, relu, sigmoid, softmax, tanh
from .borders import border_cases, border_pad
from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d
from .conv.api import conv_cases
from .dense import dense, dense_cases
from .losses import loss_cases, softmax_cross_entropy
from .norm import batch_norm, group_norm, layer_norm, norm_cases
from .pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d,
                   adaptive_max_pool2d, adaptive_max_pool3d, avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool1d,
                   global_avg_pool2d, global_avg_pool3d, lp_pool1d, lp_pool2d, lp_pool3d, max_pool1d, max_pool2d,
                   max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d)
from .pool.verify_cases import pool_cases

# every family's generator of the configurations `python -m funcnn.verify` checks, written out: nothing registers
# itself on import (a new family adds its generator here; `funcnn.verify.register_cases` is for primitives of yours)
CASE_GENERATORS = (activation_cases, border_cases, conv_cases, dense_cases, loss_cases, norm_cases, pool_cases)

__all__ = list(PRIMITIVES)  # the one list of public primitives: funcnn.catalog.PRIMITIVES
_missing = [name for name in __all__ if name not in globals()]
if _missing:
    raise ImportError(f"funcnn.catalog.PRIMITIVES names {_missing}, which no primitive family defines")
