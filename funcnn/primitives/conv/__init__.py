"""The convolution family: conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d (one N-d
function each, with thin 1-D / 2-D / 3-D names).

    api.py             the public functions and their argument checks
    rules.py           the op, read in one file: the derivation, the three bilinear ops (conv, its transpose, dW)
                       carried as JAX primitives, the algorithm table (which path computes each), their transpose
                       and batching rules, the registration
    paths/             beneath it, the named set of paths (onednn, canonical, taps, banded, tap_matmuls,
                       batch_chunks), each with conv(x, w, spec), dx(g, w, spec, in_sizes), dw(x, g, spec, w_shape);
                       `paths.run` emits one for the CPU and the canonical form elsewhere
    backward_steps.py  the lecture's named steps of the backward (upsample, full pad, flip and swap, crop)
    spec.py            ConvSpec, the transposed conv's sizes, the rules' padding arithmetic
    tracing.py         what an enclosing block pins: force_algorithm, loop_body, for_platform, use_onednn
    engines.py         which engine runs a path on a CPU (oneDNN, YNNPACK, Eigen); compiler_options and
                       tracing_for for a `cpu_engine` setting
"""

from .api import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d
from .paths import ALGORITHMS
from .rules import TABLE
from .tracing import PLATFORMS, for_platform, force_algorithm, loop_body, use_onednn
from .engines import CPU_ENGINES, compiler_options, tracing_for
from .spec import ConvSpec, transpose_geometry

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "ALGORITHMS",
           "TABLE", "force_algorithm", "ConvSpec", "transpose_geometry", "CPU_ENGINES", "compiler_options",
           "loop_body", "PLATFORMS", "for_platform", "use_onednn", "tracing_for"]
