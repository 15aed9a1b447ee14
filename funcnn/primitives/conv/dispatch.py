"""The algorithm table: which path computes each rule of a convolution (forward, dX, dW), as data.

    TABLE[rule] = ((condition, path), ...)     the first condition that holds picks the path

Every path passes the same gradient checks (the tests sweep all of them); the table only decides speed. Which engine
XLA's CPU backend runs a path's convolutions in (YNNPACK or Eigen) is `engines.engine`; the table was measured with
both (`benchmarks/engines.py`). The "CPU" paths were measured on CPU and are taken there alone: on other backends
the canonical form stays, the one XLA maps to vendor kernels (cuDNN), chosen at lowering time by
`lax.platform_dependent`. Why each path exists is in its module's docstring (`paths/`), and the measurements are in
the README's Performance section.

`force_algorithm(name)` pins one path for every rule it applies to (tests and benchmarks); it is part of the jit
cache key, so a function traced under one setting is traced again under another. The chosen path is the `algorithm`
parameter of each conv-family equation in a jaxpr, which is where `funcnn summary --paths` reads it.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Callable, NamedTuple

import jax
from jax import lax

from ... import catalog
from .spec import ConvSpec, dx_zero_fraction
from .paths import banded, batch_chunks, canonical, onednn, tap_matmuls, taps

PATHS = {"onednn": onednn, "taps": taps, "banded": banded, "tap_matmuls": tap_matmuls, "batch_chunks": batch_chunks,
         "canonical": canonical}
ALGORITHMS = tuple(PATHS)
CPU_ONLY = frozenset({"onednn", "banded", "tap_matmuls", "batch_chunks"})
RULES = ("forward", "dx", "dw")

BANDED_MAX_CHANNEL_PRODUCT = 128
ZERO_FRACTION_FOR_TAPS = 0.5
LOOP_SMALL_BATCH = 8  # a looped dW of at most this many images takes the tap matmuls (per-example gradients)
UNROLL_MAX_SLICES = 16  # the CPU batch rule writes out at most this many slices of more than LOOP_SMALL_BATCH images


class Case(NamedTuple):
    """What a condition sees: the static configuration, the filter's shape, the forward input's spatial sizes, the
    batch and the operands' dtype."""

    spec: ConvSpec
    w_shape: tuple
    in_sizes: tuple | None
    batch: int | None = None
    dtype: object = None


# ----------------------------------------------------------------------------------------------------------------
# conditions (their docstrings are the table's text)


def in_onednn(case: Case) -> bool:
    """the oneDNN engine is built and on (`use_onednn`), takes the dtype (float32; bfloat16 on CPUs with its
    kernels) and the sizes (no empty axis), the output has more than one position (a conv onto one position,
    MobileNet's last 1x1 maps, is one matmul, and XLA's ran 2-6x faster than oneDNN's call: README, "The oneDNN
    engine"), and it is not a loop body's rule on a few images (per-example gradients: one image per iteration,
    where a call's fixed cost is most of it; `few_images_in_a_loop`)"""
    one_position = case.in_sizes is not None and math.prod(case.spec.geo.out_sizes(case.in_sizes)) == 1
    return (not one_position and not few_images_in_a_loop(case) and onednn_enabled()
            and onednn.takes(case.w_shape, case.in_sizes, case.batch, case.dtype))


def strided_one_by_one_in_onednn(case: Case) -> bool:
    """the engine would take it, but groups == 1, a 1x1 window and a stride > 1: dX is one matmul onto the strided
    positions (the tap matmuls ran it in 0.36-0.39 ms against oneDNN's 0.57-1.43 on ResNet-20's 16 -> 32
    projection: README, "The oneDNN engine")"""
    return (case.spec.groups == 1 and math.prod(case.spec.geo.window) == 1 and max(case.spec.geo.stride) > 1
            and in_onednn(case))


def depthwise(case: Case) -> bool:
    """depth-wise: groups == C_in > 1"""
    return case.spec.is_depthwise(case.w_shape)


def grouped(case: Case) -> bool:
    """grouped, not depth-wise: 1 < groups < C_in"""
    return case.spec.groups > 1


def few_channels(case: Case) -> bool:
    """groups == 1 and C_in x C_out <= 128 (LeNet's layers, a 3-channel stem)"""
    return case.w_shape[-2] * case.w_shape[-1] <= BANDED_MAX_CHANNEL_PRODUCT


def mostly_zeros(case: Case) -> bool:
    """at least half of the canonical dX's multiplies would hit inserted (stride) or padded (K-1 border) zeros"""
    return dx_zero_fraction(case.spec, case.in_sizes) >= ZERO_FRACTION_FOR_TAPS


def few_channels_1d(case: Case) -> bool:
    """groups == 1, C_in x C_out <= 128 and one spatial axis (in 2-D the batch chunks' dW beat the band on
    ResNet-20's stem and LeNet's conv1, with and without YNNPACK: README, "Why each conv path is where it is")"""
    return len(case.spec.geo.window) == 1 and few_channels(case)


def few_channels_in_a_loop(case: Case) -> bool:
    """groups == 1, C_in x C_out <= 128, traced as a loop's body (replicas under lax.map): the band, one matmul,
    not the batch chunks, which a loop runs one after another"""
    return case.spec.looped and few_channels(case)


def few_images_in_a_loop(case: Case) -> bool:
    """traced as a loop's body, on at most LOOP_SMALL_BATCH images (per-example gradients under vmap: one image per
    iteration): a matmul per tap, not a convolution with almost no batch to spread over (README, Performance)"""
    return case.spec.looped and case.batch is not None and case.batch <= LOOP_SMALL_BATCH and case.spec.groups == 1


def in_a_loop(case: Case) -> bool:
    """traced as a loop's body (`loop_body`): XLA's CPU runtime runs the work of a loop body one operation at a
    time, so the batch chunks' eight convolutions would run one after another; one canonical convolution instead"""
    return case.spec.looped


def one_by_one(case: Case) -> bool:
    """a 1x1 window (dW is one matmul)"""
    return math.prod(case.spec.geo.window) == 1


def volumetric(case: Case) -> bool:
    """three spatial axes (batch chunks were measured on 2-D layers; in 3-D the chunked dW made a 3x3x3 layer's
    forward+backward slower than the canonical one: README, "Why each conv path is where it is")"""
    return len(case.spec.geo.window) == 3


def always(case: Case) -> bool:
    """otherwise"""
    return True


TABLE: dict[str, tuple[tuple[Callable, str], ...]] = {
    "forward": ((in_onednn, "onednn"), (depthwise, "taps"), (grouped, "canonical"), (few_channels, "banded"),
                (always, "canonical")),
    "dx": ((strided_one_by_one_in_onednn, "tap_matmuls"), (in_onednn, "onednn"), (depthwise, "taps"),
           (grouped, "canonical"), (few_channels, "banded"), (mostly_zeros, "tap_matmuls"), (always, "canonical")),
    "dw": ((in_onednn, "onednn"), (depthwise, "taps"), (grouped, "canonical"), (few_channels_1d, "banded"),
           (few_channels_in_a_loop, "banded"), (one_by_one, "tap_matmuls"), (volumetric, "canonical"),
           (few_images_in_a_loop, "tap_matmuls"), (in_a_loop, "canonical"), (always, "batch_chunks")),
}


def applies(path: str, rule: str, case: Case) -> bool:
    """Whether a forced path can compute this rule: oneDNN needs the engine built and a configuration it takes (it
    need not be on), taps need a depth-wise filter, the band and the tap matmuls no groups, and batch chunks are a dW
    path only."""
    if path == "onednn":
        return onednn.takes(case.w_shape, case.in_sizes, case.batch, case.dtype)
    if path == "taps":
        return depthwise(case)
    if path in ("banded", "tap_matmuls"):
        return case.spec.groups == 1
    if path == "batch_chunks":
        return rule == "dw"
    return True


# ----------------------------------------------------------------------------------------------------------------
# force_algorithm: part of the jit cache key


_FORCED = jax.make_user_context(default_value="")  # JAX retraces a jitted function when this context changes
_LOOPED = jax.make_user_context(default_value=False)
_PLATFORM = jax.make_user_context(default_value="")
_ONEDNN = jax.make_user_context(default_value="")  # "on", "off", or "": the process's default (`onednn_enabled`)
ENGINE_VARIABLE = "FUNCNN_CPU_ENGINE"  # the process's default CPU engine (`default_cpu_engine`)
CPU_ENGINE_NAMES = tuple(catalog.CPU_ENGINES)  # the `cpu_engine=` settings
_warned_unbuilt: list = []
PLATFORMS = ("cpu", "cuda", "rocm", "tpu", "default")  # lax.platform_dependent's names; "default": every other


def forced() -> str | None:
    """The path pinned by an enclosing `force_algorithm`, or None."""
    return _FORCED.value or None


@contextlib.contextmanager
def force_algorithm(name: str | None):
    """Use one path for every rule it applies to (for tests and benchmarks): one of `ALGORITHMS`, or None for the
    table. A rule the path cannot compute (see `applies`) falls back to the canonical form. The pinned path is a
    static parameter of the ops traced inside the block (`forced=...` in their jaxpr equations) and part of JAX's
    compilation cache key, so a jitted function traced outside the block is traced again inside it."""
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"force_algorithm: unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}")
    with _FORCED(name or ""):
        yield


def looped() -> bool:
    """Whether the ops are being traced as a loop's body (an enclosing `loop_body`)."""
    return bool(_LOOPED.value)


@contextlib.contextmanager
def loop_body():
    """Trace the block as the body of a loop (`lax.map`, `lax.scan`): a conv's dW then takes a path that is one
    convolution or matmuls (the table's `..._in_a_loop` rows), since XLA's CPU runtime runs the operations of a loop
    body one after another, so the batch chunks would not overlap. Recorded in each op's parameters
    (`looped=True`), so the backward rules, traced later, choose the same way; part of JAX's compilation cache key,
    like `force_algorithm`."""
    with _LOOPED(True):
        yield


def target_platform() -> str | None:
    """The platform an enclosing `for_platform` names, or None (then both forms are lowered, XLA picks)."""
    return _PLATFORM.value or None


@contextlib.contextmanager
def for_platform(platform: str | None):
    """Trace the block for one platform: a CPU path that was not pinned is emitted as itself for "cpu" and as the
    canonical form for any other (one of `PLATFORMS`; "default" is what `lax.platform_dependent` calls every
    platform without a branch of its own), instead of both forms inside `lax.platform_dependent`. For programs read
    by tools other than XLA (`funcnn.as_lax`, ONNX export), which want one computation, not a branch on the
    platform index. None: both forms, as usual."""
    if platform is not None and platform not in PLATFORMS:
        raise ValueError(f"platform: unknown platform {platform!r}; known: {', '.join(PLATFORMS)} (or None)")
    with _PLATFORM(platform or ""):
        yield


def _engine_variable() -> str:
    """$FUNCNN_CPU_ENGINE checked (one of `CPU_ENGINE_NAMES`), or "" where it is unset."""
    name = os.environ.get(ENGINE_VARIABLE, "").strip()
    if name and name not in CPU_ENGINE_NAMES:
        raise ValueError(f"{ENGINE_VARIABLE} must be one of {', '.join(CPU_ENGINE_NAMES)}, got {name!r}")
    return name


def default_cpu_engine() -> str:
    """The CPU engine a step uses when none is named: $FUNCNN_CPU_ENGINE if set, else "onednn" where the engine is
    built, else "eigen" (XLA's CPU convolutions in Eigen)."""
    return _engine_variable() or ("onednn" if onednn.available() else "eigen")


def onednn_enabled() -> bool:
    """Whether a rule traced now may take the oneDNN engine: an enclosing `use_onednn` says, else the process's
    default (`default_cpu_engine() == "onednn"`). Where the engine is not built and nothing turned it off, the first
    conv traced on a CPU warns once, naming the reason and how to build it."""
    value = _ONEDNN.value
    wanted = value == "on" if value else _engine_variable() in ("", "onednn")
    if wanted and not onednn.available():
        if not _warned_unbuilt and jax.default_backend() == "cpu":
            _warned_unbuilt.append(True)
            warnings.warn(f"funcnn: the oneDNN CPU convolution engine is not built ({onednn.unavailable_reason()}); "
                          f"convolutions run on XLA's CPU paths, about half as fast. To build it: {onednn.BUILD_HINT}."
                          f" Set {ENGINE_VARIABLE}=eigen to choose XLA's paths without this warning.",
                          RuntimeWarning, stacklevel=4)
        return False
    return wanted


@contextlib.contextmanager
def use_onednn(enabled: bool = True):
    """Let the rules traced inside the block take the oneDNN engine (where built and where it takes the
    configuration), or keep them on XLA's paths (`enabled=False`). Part of JAX's compilation cache key, like
    `force_algorithm`; funcnn's compiled steps enter it from their `cpu_engine` setting."""
    with _ONEDNN("on" if enabled else "off"):
        yield


# ----------------------------------------------------------------------------------------------------------------
# choosing and running


def choose(rule: str, spec: ConvSpec, w_shape, in_sizes=None, batch: int | None = None, dtype=None) -> str:
    """The path for one rule ("forward", "dx" or "dw"): the one `spec.forced` pins where it applies, else the
    table's. `in_sizes` (the forward input's spatial sizes) is needed for rule "dx", `batch` for a looped dW, and
    `dtype` for the oneDNN engine (without it, XLA's paths)."""
    case = Case(spec, tuple(w_shape), None if in_sizes is None else tuple(in_sizes), batch, dtype)
    pinned = spec.forced
    if pinned is not None:
        return pinned if applies(pinned, rule, case) else "canonical"
    return next(path for condition, path in TABLE[rule] if condition(case))


def run(path: str, rule: str, spec: ConvSpec, w_shape, in_sizes, a, b):
    """Compute `rule` with `path` (the one `choose` named when the op was applied): forward conv(x, w), dx(g, w)
    for an input of `in_sizes`, or dw(x, g) for a filter of `w_shape`. A CPU path that was not pinned is wrapped in
    `lax.platform_dependent`, which lowers it for CPU and the canonical form for every other platform (or, inside
    `for_platform`, emitted as the one form that platform runs)."""
    module = PATHS[path]

    def with_path(module):
        if rule == "forward":
            return lambda a, b: module.conv(a, b, spec)
        if rule == "dx":
            return lambda a, b: module.dx(a, b, spec, tuple(in_sizes))
        return lambda a, b: module.dw(a, b, spec, tuple(w_shape))

    platform = target_platform()
    fallback = path
    if path == "onednn":
        with use_onednn(False):  # the path the table gives without the engine
            fallback = choose(rule, spec._replace(forced=None), w_shape, in_sizes, a.shape[0], a.dtype)
        if platform is not None or not onednn_enabled():
            # a program for a tool (`for_platform`, `funcnn.as_lax`, the checker's primal) or one traced with the
            # engine off: XLA's operations
            path, module = fallback, PATHS[fallback]
        else:  # the engine's call, which an exported program computes with `fallback` instead
            module = _OnednnWith(PATHS[fallback])
    # every platform but the CPU: the path (for the engine, its fallback), or the canonical form for a CPU path
    other = canonical if fallback in CPU_ONLY else PATHS[fallback]
    if path not in CPU_ONLY or spec.forced is not None:
        return with_path(module)(a, b)
    if platform is not None:
        return with_path(module if platform == "cpu" else other)(a, b)
    return lax.platform_dependent(a, b, cpu=with_path(module), default=with_path(other))


class _OnednnWith(NamedTuple):
    """The oneDNN path with its fallback for `jax.export` bound (a path module's three functions)."""

    fallback: object

    def conv(self, a, b, spec):
        return onednn.conv(a, b, spec, self.fallback)

    def dx(self, a, b, spec, in_sizes):
        return onednn.dx(a, b, spec, in_sizes, self.fallback)

    def dw(self, a, b, spec, w_shape):
        return onednn.dw(a, b, spec, w_shape, self.fallback)


def on_backend(path: str, forced: str | None, backend: str | None = None) -> str:
    """What runs on `backend` (default: JAX's default backend) for a chosen path: the path, or the canonical form
    where a CPU path was not pinned and the backend is not the CPU."""
    backend = backend or jax.default_backend()
    return path if path not in CPU_ONLY or forced or backend == "cpu" else "canonical"


__all__ = ["ALGORITHMS", "CPU_ONLY", "RULES", "TABLE", "PATHS", "Case", "applies", "choose", "run", "on_backend",
           "use_onednn", "onednn_enabled", "default_cpu_engine", "CPU_ENGINE_NAMES", "ENGINE_VARIABLE",
           "force_algorithm", "forced", "loop_body", "looped", "PLATFORMS", "for_platform", "target_platform"]
