"""oneDNN: each rule is one of oneDNN's convolution primitives (forward, backward-data, backward-weights), run by
funcnn's CPU engine through XLA's FFI.

Why it exists: XLA's CPU convolutions (Eigen, or YNNPACK with its slow dW) run funcnn's three ops at about half the
speed PyTorch's CPU backend gets from oneDNN for the same computations, and up to 3x slower for dW
(docs/performance.md). The rules stay funcnn's (the ops' transposes in `rules.py`); only the kernel that computes one
op on a CPU changes: conv is oneDNN's forward, conv_transpose its backward-data (so a transposed convolution's
forward is one too), conv_dw its backward-weights.

The engine is C++ (`native/onednn_conv.cc`, built by `pip install` where a C++ compiler exists, as the extension
`funcnn.primitives.conv._onednn`, linked against oneDNN 3.2 from PyPI's `onednn-cpu-gomp`). Each rule binds the
primitive `funcnn.onednn_conv`, which never reaches a user's jaxpr: it exists only inside the lowering of a
conv-family op, where its CPU lowering is the FFI call; for `jax.export` it lowers to the XLA path the table gives
without the engine (so an exported artifact holds no funcnn custom call and loads where funcnn is not installed),
and on every other platform to the canonical form. `available()` says whether the engine is built and loads,
`takes(...)` whether it computes a configuration (float32, and bfloat16 where this CPU runs it; no empty axis);
everything else stays on XLA's paths (`rules.TABLE`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sysconfig

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import mlir

from ..spec import ConvSpec
from . import canonical

EXTENSION = "funcnn.primitives.conv._onednn"
TARGETS = {"forward": "funcnn_onednn_forward", "dx": "funcnn_onednn_dx", "dw": "funcnn_onednn_dw"}
THREADS_VARIABLE = "FUNCNN_ONEDNN_THREADS"  # oneDNN's threads per call; unset: the cores this process may use
BUILD_HINT = ("pip install again on a machine with a C++ compiler (g++ or clang++) on PATH: the install builds it "
              "against oneDNN from PyPI (onednn-cpu-gomp, Linux x86-64)")


def _preload_onednn() -> None:
    """Load libdnnl.so.3 from the installed `onednn-cpu-gomp` (it lives in the environment's lib/, which the
    extension's RPATH names for a regular install; an editable install or a user site needs it loaded first)."""
    try:
        files = importlib.metadata.distribution("onednn-cpu-gomp").files or ()
    except importlib.metadata.PackageNotFoundError:
        return
    for f in files:
        if f.name == "libdnnl.so.3":
            ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
            return


def _installed_extension():
    """The extension as the installed funcnn holds it, for a funcnn imported from a checkout (the tests and scripts
    run from the repository's root, whose source tree has no build of it), or None."""
    name = "_onednn" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
    # every installed funcnn (a checkout's own egg-info, found first from its root, lists no build)
    found = (f.locate() for dist in importlib.metadata.distributions(name="funcnn") for f in dist.files or ()
             if f.name == name)
    path = next((p for p in found if os.path.exists(p)), None)
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location(EXTENSION, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def threads_from_environment() -> int | None:
    """$FUNCNN_ONEDNN_THREADS checked: a whole number of threads per call (0: every core this process may use), or
    None where it is unset."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{THREADS_VARIABLE} must be a whole number of threads (0: every core this process may use), "
                         f"got {value!r}")
    return int(value)


@functools.cache
def _load():
    """(the extension module, None) or (None, why it is not there)."""
    try:
        _preload_onednn()
        try:
            module = importlib.import_module(EXTENSION)
        except ImportError:
            module = _installed_extension()
            if module is None:
                raise
    except (ImportError, OSError) as err:
        return None, f"{type(err).__name__}: {err}"
    threads = threads_from_environment()  # before registering: a misspelt value leaves nothing half done
    for rule, capsule in module.handlers().items():
        jax.ffi.register_ffi_target(TARGETS[rule], capsule, platform="cpu")
    if threads is not None:
        module.set_threads(threads)
    return module, None


def available() -> bool:
    """Whether the engine is built and loads (registering its FFI targets with JAX on the first call)."""
    return _load()[0] is not None


def unavailable_reason() -> str | None:
    """Why the engine does not load, or None."""
    return _load()[1]


def version() -> str | None:
    """oneDNN's version, or None where the engine is not built."""
    module = _load()[0]
    return module.version() if module is not None else None


@functools.cache
def supports_dtype(dtype) -> bool:
    """Whether the engine computes all three rules in `dtype` on this CPU: float32 always, bfloat16 where oneDNN has
    kernels for it (AVX-512 machines); float16, float64 and integers never."""
    module = _load()[0]
    name = jnp.dtype(dtype).name
    return module is not None and name in ("float32", "bfloat16") and module.supports(name)


def set_threads(count: int) -> None:
    """oneDNN's threads per call in this process (0: OpenMP's default, the cores this process may use)."""
    module = _load()[0]
    if module is None:
        raise RuntimeError(f"funcnn's oneDNN engine is not built ({unavailable_reason()}); {BUILD_HINT}")
    module.set_threads(int(count))


def plan_count() -> int:
    """How many oneDNN primitives the engine has created (one per configuration; tests watch it for leaks)."""
    module = _load()[0]
    return module.plan_count() if module is not None else 0


def takes(w_shape, in_sizes, batch, dtype) -> bool:
    """Whether the engine computes this configuration: built, a dtype it runs here, and no empty axis (the
    geometry is any funcnn accepts: 1-, 2- and 3-D, stride, dilation, asymmetric padding, groups)."""
    sizes = (*w_shape, *(in_sizes or ()), batch if batch is not None else 1)
    # a symbolic size (a batch left open by jax.export) is at least 1
    return dtype is not None and supports_dtype(dtype) and all(s > 0 for s in sizes if isinstance(s, (int, np.integer)))


# ----------------------------------------------------------------------------------------------------------------
# the primitive that stands for one FFI call inside a lowering


ONEDNN = Primitive("funcnn.onednn_conv")


def _xla(a, b, *, rule, spec, sizes, shape, fallback):
    """The rule on the XLA path `fallback` (a path module: the one the table gives without the engine)."""
    if rule == "forward":
        return fallback.conv(a, b, spec)
    if rule == "dx":
        return fallback.dx(a, b, spec, sizes)
    return fallback.dw(a, b, spec, shape)


def _abstract(a, b, *, rule, spec, sizes, shape, fallback):
    return jax.core.ShapedArray(shape, a.dtype)


def _ffi(a, b, *, rule, spec, sizes, shape, fallback):
    geo = spec.geo
    ints = lambda v: np.asarray(v, np.int64)
    call = jax.ffi.ffi_call(TARGETS[rule], jax.ShapeDtypeStruct(shape, a.dtype))
    return call(a, b, window=ints(geo.window), stride=ints(geo.stride), dilation=ints(geo.dilation),
                pad_lo=ints([p[0] for p in geo.padding]), pad_hi=ints([p[1] for p in geo.padding]),
                groups=np.int64(spec.groups))


def _canonical(a, b, **params):
    return _xla(a, b, **{**params, "fallback": canonical})


_lower_xla = mlir.lower_fun(_xla, multiple_results=False)
_lower_ffi = mlir.lower_fun(_ffi, multiple_results=False)


def _lower_cpu(ctx, a, b, **params):
    """The FFI call, or, for `jax.export`, the XLA path (an artifact must load where funcnn is not)."""
    if ctx.module_context.lowering_parameters.for_export:
        return _lower_xla(ctx, a, b, **params)
    return _lower_ffi(ctx, a, b, **params)


ONEDNN.def_abstract_eval(_abstract)
ONEDNN.def_impl(_xla)  # evaluated eagerly only by tools that interpret a lowering's jaxpr
mlir.register_lowering(ONEDNN, mlir.lower_fun(_canonical, multiple_results=False))  # other platforms: vendor kernels
mlir.register_lowering(ONEDNN, _lower_cpu, platform="cpu")


def _bind(rule, a, b, spec: ConvSpec, sizes, shape, fallback):
    if not available():  # a path forced where the engine is not built: `rules.applies` prevents it
        raise RuntimeError(f"funcnn's oneDNN engine is not built ({unavailable_reason()}); {BUILD_HINT}")
    return ONEDNN.bind(a, b, rule=rule, spec=spec, sizes=sizes, shape=tuple(shape), fallback=fallback)


# ----------------------------------------------------------------------------------------------------------------
# the three rules


def conv(x, w, spec: ConvSpec, fallback=canonical):
    """z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f]: oneDNN's convolution forward. `fallback`: the
    path module that computes it in an exported program (`rules.run` passes the table's choice without the
    engine)."""
    out = spec.geo.out_sizes(x.shape[1:-1])
    return _bind("forward", x, w, spec, None, (x.shape[0], *out, w.shape[-1]), fallback)


def dx(g, w, spec: ConvSpec, in_sizes, fallback=canonical):
    """dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]: oneDNN's backward-data (its own upsampling,
    padding and flip: the lecture's four steps in one kernel)."""
    return _bind("dx", g, w, spec, tuple(in_sizes), (g.shape[0], *in_sizes, w.shape[-2] * spec.groups), fallback)


def dw(x, g, spec: ConvSpec, w_shape, fallback=canonical):
    """dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]: oneDNN's backward-weights (accumulating in
    float32 for bfloat16 operands)."""
    return _bind("dw", x, g, spec, None, tuple(w_shape), fallback)
