"""Which engine XLA's CPU backend runs each path's work in: YNNPACK, Eigen, a matmul or fused loops.

Since jaxlib 0.10 the CPU backend wraps a convolution in a YNNPACK fusion (`__ynn_fusion` in the compiled HLO) when
`xla/backends/cpu/ynn_support.cc` accepts it, and leaves it to Eigen otherwise. It accepts a convolution, once XLA has
put its operands in the canonical order (batch, spatial..., feature), only if

    it is 2-D, float32 or float64 (the CPU compiler computes float16 and bfloat16 convolutions in float32 first),
    with batch_group_count = 1,
    max(input features, output features) > 16,
    no output and no kernel spatial size exceeds the input's (unpadded) size,
    no base (input) dilation and no window reversal.

What that means for each rule of the canonical form (`paths/canonical.py`), in its HLO operands:

    forward  lhs x (features C_in), out z (features C_out), kernel K
    dX       lhs g (features C_out), out dX (features C_in, spatial = the input's), kernel K; base dilation S
    dW       lhs x with batch and feature swapped (features N), out dW (features C_out, spatial K), kernel g
             (spatial = the output's); the groups are batch groups

The batch chunks path is the canonical dW on N/8 images at a time, the group loop the canonical form of one group
per loop iteration. The other paths emit no convolution: banded and
tap matmuls are matmuls (`dot`), taps are elementwise loops. `engine` predicts the engine from the shapes alone (no
compiling); `hlo_engines` reads it from a compiled executable's text, and the tests check one against the other.
The measurements that decide which engine a rule should get are in docs/performance.md (`benchmarks/engines.py`).

Known bugs of XLA's YNNPACK fusions (`YNN_BUGS`): on jaxlib 0.10.2 a vmapped matrix-vector product followed by a
sum comes out wrong (jax#39103) and a rank-7/8 multiply-and-reduce crashes or hangs (jax#39257, #40412; #39257 also
on 0.11.0); 0.11.2 and 0.12.x are fixed. funcnn's ops do not emit those forms (a test compiles them and looks), and
funcnn's compiled steps run with "eigen" or, on those jaxlibs, "onednn" compiled as "eigen", which turns the YNNPACK
fusions off, so nothing else in a step meets them either. Asking for "xla" on such a jaxlib warns once.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import jaxlib

from ... import catalog
from . import tracing
from .spec import ConvSpec
from .paths import onednn
from .paths.batch_chunks import CHUNKS

ONEDNN = "oneDNN"
YNN = "YNNPACK"
EIGEN = "Eigen"
MATMUL = "matmul"
LOOPS = "loops"

YNN_DTYPES = tuple(jnp.dtype(t) for t in (jnp.float32, jnp.float64, jnp.float16, jnp.bfloat16))
YNN_MIN_FEATURES = 17  # ynn_support.cc: max(input features, output features) > 16
CPU_ENGINE_OPTION = "xla_cpu_experimental_ynn_fusion_type"  # compiler option: "" leaves every convolution to Eigen
CPU_ENGINES = catalog.CPU_ENGINES  # setting -> per-executable value of CPU_ENGINE_OPTION (one enum name, or none)


def ynn_takes(nd: int, dtype, features: tuple[int, int], in_sizes: Sequence[int], out_sizes: Sequence[int],
              kernel_sizes: Sequence[int], *, base_dilated: bool = False, batch_groups: int = 1) -> bool:
    """ynn_support.cc's test for one convolution in canonical operand order (see the module docstring)."""
    return (nd == 2 and jnp.dtype(dtype) in YNN_DTYPES and batch_groups == 1
            and max(features) >= YNN_MIN_FEATURES and not base_dilated
            and all(o <= i for o, i in zip(out_sizes, in_sizes))
            and all(k <= i for k, i in zip(kernel_sizes, in_sizes)))


def conv_engine(rule: str, spec: ConvSpec, w_shape, in_sizes, batch: int, dtype="float32") -> str:
    """The engine of the one convolution the canonical path emits for `rule` ("forward", "dx" or "dw"), for an
    input of `batch` images with spatial sizes `in_sizes` and a filter of `w_shape` (*K, C_in/G, C_out)."""
    geo = spec.geo
    nd, kernel = len(geo.window), tuple(geo.window)
    c_in, c_out = w_shape[-2] * spec.groups, w_shape[-1]
    in_sizes = tuple(in_sizes)
    out_sizes = geo.out_sizes(in_sizes)
    if rule == "forward":
        takes = ynn_takes(nd, dtype, (c_in, c_out), in_sizes, out_sizes, kernel)
    elif rule == "dx":
        takes = ynn_takes(nd, dtype, (c_out, c_in), out_sizes, in_sizes, kernel,
                          base_dilated=any(s > 1 for s in geo.stride))
    else:
        takes = ynn_takes(nd, dtype, (batch, c_out), in_sizes, kernel, out_sizes, batch_groups=spec.groups)
    return YNN if takes else EIGEN


def engine(path: str, rule: str, spec: ConvSpec, w_shape, in_sizes, batch: int, dtype="float32",
           cpu_engine: str = "xla") -> str:
    """What runs `rule` of `path` on XLA's CPU backend in an executable compiled with `compiler_options(cpu_engine)`
    ("xla": a plain `jax.jit`): YNNPACK or Eigen for a convolution, "matmul" for the paths that are matmuls,
    "loops" for the depth-wise taps."""
    if path == "onednn":
        return ONEDNN
    if path in ("banded", "tap_matmuls"):
        return MATMUL
    if path == "taps":
        return LOOPS
    if option_value(cpu_engine) is not None:  # "eigen", "ynn-dots": no YNNPACK convolution in the executable
        return EIGEN
    if path == "batch_chunks" and rule == "dw":
        batch = -(-batch // max(1, min(CHUNKS, batch)))  # the largest chunk
    if path == "group_loop":  # one single-group convolution per loop iteration
        spec, w_shape = spec._replace(groups=1), (*w_shape[:-1], w_shape[-1] // spec.groups)
    return conv_engine(rule, spec, w_shape, in_sizes, batch, dtype)


# jaxlib releases whose YNNPACK fusions (on with "xla") have known CPU bugs, and the JAX issues that report them
YNN_BUGS = {
    "0.10.2": "jax#39103 (a vmapped matrix-vector product and sum comes out wrong under jit), jax#39257 and "
              "jax#40412 (a rank-7/8 multiply-and-reduce crashes or hangs)",
    "0.11.0": "jax#39257 (a rank-7/8 broadcast-multiply-reduce crashes or hangs)",
}
_warned: set = set()


def resolve(cpu_engine: str | None) -> str:
    """A `cpu_engine=` setting checked, None meaning the process's default (`tracing.default_cpu_engine`: "onednn"
    where funcnn's oneDNN engine is built, else "eigen"). Asking for "onednn" where it is not built is an error
    naming why and how to build it."""
    if cpu_engine is None:
        return tracing.default_cpu_engine()
    if cpu_engine not in CPU_ENGINES:
        raise ValueError(f"cpu_engine must be one of {', '.join(map(repr, CPU_ENGINES))}, got {cpu_engine!r}")
    if cpu_engine == "onednn" and not onednn.available():
        raise ValueError(f"cpu_engine='onednn': funcnn's oneDNN engine is not built ({onednn.unavailable_reason()}); "
                         f"{onednn.BUILD_HINT}")
    return cpu_engine


@contextlib.contextmanager
def tracing_for(cpu_engine: str | None):
    """Trace the block for a `cpu_engine` setting: the convolutions take the oneDNN engine for "onednn" and XLA's
    paths for the others (`tracing.use_onednn`)."""
    with tracing.use_onednn(resolve(cpu_engine) == "onednn"):
        yield


def option_value(cpu_engine: str) -> str | None:
    """The value of CPU_ENGINE_OPTION for a setting (None: XLA's default). "onednn" leaves what is not a convolution
    to XLA's default engines (YNNPACK's reductions are what the normalisations need: with them off, XLA rewrites each
    large reduction into a reduce-window that runs on one core), except on a jaxlib whose YNNPACK fusions have known
    bugs (`YNN_BUGS`), where it compiles as "eigen"."""
    if cpu_engine == "onednn":
        return "" if jaxlib.__version__ in YNN_BUGS else None
    return CPU_ENGINES[cpu_engine]


def compiler_options(cpu_engine: str | None = None, backend: str | None = None) -> dict | None:
    """Per-executable compiler options that pick the CPU engines (`jax.jit(f, compiler_options=...)`): None on
    other backends and for "xla". Never a change of the process's XLA_FLAGS: only the executable built with them.
    "xla" on a jaxlib listed in `YNN_BUGS` warns once (RuntimeWarning) naming the bugs. `cpu_engine` as in
    `resolve`; "onednn" as `option_value` says."""
    cpu_engine = resolve(cpu_engine)
    if (backend or jax.default_backend()) != "cpu":
        return None
    value = option_value(cpu_engine)
    if value is not None:
        return {CPU_ENGINE_OPTION: value}
    bugs = YNN_BUGS.get(jaxlib.__version__)
    if cpu_engine == "xla" and bugs and jaxlib.__version__ not in _warned:
        _warned.add(jaxlib.__version__)
        warnings.warn(f"funcnn: cpu_engine='xla' compiles with XLA's YNNPACK fusions, which on jaxlib "
                      f"{jaxlib.__version__} have known bugs: {bugs}. funcnn's own ops do not meet them, other "
                      "code in the same step can; cpu_engine='eigen' or 'onednn' (the defaults) avoid them, and "
                      "jaxlib >= 0.11.2 fixes them.", RuntimeWarning, stacklevel=2)
    return None


_COMPUTATION = re.compile(r"^(?:ENTRY )?(%[\w.\-]+) \(")
_YNN_CALL = re.compile(r"calls=(%[\w.\-]+)[^\n]*__ynn_fusion")


def hlo_engines(text: str) -> dict:
    """Counts of the convolutions and dots in a compiled CPU executable's HLO text (`compiled.as_text()`), by
    whether they sit in a YNNPACK fusion: {"conv YNNPACK": n, "conv Eigen": n, "dot YNNPACK": n, "dot other": n}."""
    ynn_computations = set(_YNN_CALL.findall(text))
    counts = {"conv YNNPACK": 0, "conv Eigen": 0, "dot YNNPACK": 0, "dot other": 0}
    current = None
    for line in text.splitlines():
        start = _COMPUTATION.match(line)
        if start:
            current = start.group(1)
        inside = current in ynn_computations
        if " convolution(" in line:
            counts["conv YNNPACK" if inside else "conv Eigen"] += 1
        elif " dot(" in line:
            counts["dot YNNPACK" if inside else "dot other"] += 1
    return counts


__all__ = ["ONEDNN", "YNN", "EIGEN", "MATMUL", "LOOPS", "CPU_ENGINE_OPTION", "CPU_ENGINES", "YNN_BUGS",
           "compiler_options", "option_value", "resolve", "tracing_for", "ynn_takes", "conv_engine", "engine",
           "hlo_engines"]
