"""The algorithm table: which path computes each rule of a convolution (forward, dX, dW), as data.

    TABLE[rule] = ((condition, path), ...)     the first condition that holds picks the path

Every path passes the same gradient checks (the tests sweep all of them); the table only decides speed. The
"CPU" paths were measured on CPU and are taken there alone: on other backends the canonical form stays, the one XLA
maps to vendor kernels (cuDNN), chosen at lowering time by `lax.platform_dependent`. Why each path exists is in its
module's docstring (`paths/`), and the measurements are in the README's Performance section.

`force_algorithm(name)` pins one path for every rule it applies to (tests and benchmarks); it is part of the jit
cache key, so a function traced under one setting is traced again under another. `recording()` collects the
choices of the convolutions traced inside it, named by the layers (`funcnn summary --paths`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Callable, NamedTuple

import jax
from jax import lax

from .geometry import ConvSpec, dx_zero_fraction
from .paths import banded, batch_chunks, canonical, tap_matmuls, taps

PATHS = {"taps": taps, "banded": banded, "tap_matmuls": tap_matmuls, "batch_chunks": batch_chunks,
         "canonical": canonical}
ALGORITHMS = tuple(PATHS)
CPU_ONLY = frozenset({"banded", "tap_matmuls", "batch_chunks"})
RULES = ("forward", "dx", "dw")

BANDED_MAX_CHANNEL_PRODUCT = 128
ZERO_FRACTION_FOR_TAPS = 0.5


class Case(NamedTuple):
    """What a condition sees: the static configuration, the filter's shape and the forward input's spatial sizes."""

    spec: ConvSpec
    w_shape: tuple
    in_sizes: tuple | None


# ----------------------------------------------------------------------------------------------------------------
# conditions (their docstrings are the table's text)


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


def one_by_one(case: Case) -> bool:
    """a 1x1 window (dW is one matmul)"""
    return math.prod(case.spec.geo.window) == 1


def always(case: Case) -> bool:
    """otherwise"""
    return True


TABLE: dict[str, tuple[tuple[Callable, str], ...]] = {
    "forward": ((depthwise, "taps"), (grouped, "canonical"), (few_channels, "banded"), (always, "canonical")),
    "dx": ((depthwise, "taps"), (grouped, "canonical"), (few_channels, "banded"), (mostly_zeros, "tap_matmuls"),
           (always, "canonical")),
    "dw": ((depthwise, "taps"), (grouped, "canonical"), (few_channels, "banded"), (one_by_one, "tap_matmuls"),
           (always, "batch_chunks")),
}


def table_text() -> str:
    """The table as text: one line per (rule, condition, path)."""
    lines = []
    for rule, entries in TABLE.items():
        for condition, path in entries:
            where = " (CPU; canonical elsewhere)" if path in CPU_ONLY else ""
            lines.append(f"{rule:<8} {condition.__doc__:<100} {path}{where}")
    return "\n".join(lines)


def applies(path: str, rule: str, case: Case) -> bool:
    """Whether a forced path can compute this rule: taps need a depth-wise filter, the band and the tap matmuls no
    groups, and batch chunks are a dW path only."""
    if path == "taps":
        return depthwise(case)
    if path in ("banded", "tap_matmuls"):
        return case.spec.groups == 1
    if path == "batch_chunks":
        return rule == "dw"
    return True


# ----------------------------------------------------------------------------------------------------------------
# force_algorithm: part of the jit cache key


def _forced_state():
    """A JAX configuration state included in the jit cache key (a function traced with one forced path is traced
    again with another). It uses JAX's private config module; without it, a context variable plus
    `jax.clear_caches()` on every change does the same, more slowly."""
    try:
        from jax._src import config as jax_config

        return jax_config.State("funcnn_conv_algorithm", "", "the conv path funcnn.force_algorithm pins ('' = the "
                                "table)", include_in_jit_key=True, include_in_trace_context=True)
    except Exception:  # noqa: BLE001 - any change of JAX's private API: fall back
        return None


_FORCED_STATE = _forced_state()
_FORCED_VAR: contextvars.ContextVar = contextvars.ContextVar("funcnn_conv_algorithm", default="")


def forced() -> str | None:
    """The path pinned by an enclosing `force_algorithm`, or None."""
    value = _FORCED_STATE.value if _FORCED_STATE is not None else _FORCED_VAR.get()
    return value or None


@contextlib.contextmanager
def force_algorithm(name: str | None):
    """Use one path for every rule it applies to (for tests and benchmarks): one of `ALGORITHMS`, or None for the
    table. A rule the path cannot compute (see `applies`) falls back to the canonical form."""
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"force_algorithm: unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}")
    if _FORCED_STATE is not None:
        with _FORCED_STATE(name or ""):
            yield
        return
    token = _FORCED_VAR.set(name or "")
    jax.clear_caches()
    try:
        yield
    finally:
        _FORCED_VAR.reset(token)
        jax.clear_caches()


# ----------------------------------------------------------------------------------------------------------------
# choosing and running


_RECORDING: contextvars.ContextVar = contextvars.ContextVar("funcnn_conv_recording", default=None)
_LABEL: contextvars.ContextVar = contextvars.ContextVar("funcnn_conv_label", default="")


class Choice(NamedTuple):
    label: str      # the layer being traced (see `labelled`), "" outside a labelled region
    role: str       # what the primitive computes with it: "forward", "dX", "dW" (or "dY" for a transposed conv)
    path: str       # the table's (or the forced) path
    backend: str    # what runs on the default backend: `path`, or "canonical" for a CPU path elsewhere


@contextlib.contextmanager
def recording():
    """Collect the `Choice`s of every convolution traced inside the block: each primitive notes the paths of its
    forward and of both backward rules when its forward is traced (its backward is traced later, outside any layer)."""
    choices: list = []
    token = _RECORDING.set(choices)
    try:
        yield choices
    finally:
        _RECORDING.reset(token)


def is_recording() -> bool:
    return _RECORDING.get() is not None


@contextlib.contextmanager
def labelled(part: str):
    """Name the convolutions traced inside the block (nested blocks join their names with "/")."""
    outer = _LABEL.get()
    token = _LABEL.set(f"{outer}/{part}" if outer else part)
    try:
        yield
    finally:
        _LABEL.reset(token)


def note(role: str, rule: str, spec: ConvSpec, w_shape, in_sizes):
    """Record, when `recording()` is active, which path computes `rule` in the role `role`."""
    choices = _RECORDING.get()
    if choices is not None:
        path = choose(rule, spec, w_shape, in_sizes)
        backend = path if path not in CPU_ONLY or spec.forced or jax.default_backend() == "cpu" else "canonical"
        choices.append(Choice(_LABEL.get(), role, path, backend))


def choose(rule: str, spec: ConvSpec, w_shape, in_sizes=None) -> str:
    """The path for one rule ("forward", "dx" or "dw"): the one `spec.forced` pins where it applies, else the
    table's. `in_sizes` (the forward input's spatial sizes) is needed for rule "dx"."""
    case = Case(spec, tuple(w_shape), None if in_sizes is None else tuple(in_sizes))
    pinned = spec.forced
    if pinned is not None:
        return pinned if applies(pinned, rule, case) else "canonical"
    return next(path for condition, path in TABLE[rule] if condition(case))


def run(rule: str, spec: ConvSpec, w_shape, in_sizes, a, b):
    """Compute `rule` with the chosen path: forward conv(x, w), dx(g, w) for an input of `in_sizes`, or dw(x, g)
    for a filter of `w_shape`. A CPU path is wrapped in `lax.platform_dependent`, which lowers the CPU branch for
    CPU and the canonical form for every other platform; a forced path runs everywhere."""
    path = choose(rule, spec, w_shape, in_sizes)

    def with_path(name):
        module = PATHS[name]
        if rule == "forward":
            return lambda a, b: module.conv(a, b, spec)
        if rule == "dx":
            return lambda a, b: module.dx(a, b, spec, tuple(in_sizes))
        return lambda a, b: module.dw(a, b, spec, tuple(w_shape))

    if path not in CPU_ONLY or spec.forced is not None:
        return with_path(path)(a, b)
    return lax.platform_dependent(a, b, cpu=with_path(path), default=with_path("canonical"))


__all__ = ["ALGORITHMS", "CPU_ONLY", "RULES", "TABLE", "PATHS", "Case", "Choice", "applies", "choose", "run",
           "force_algorithm", "forced", "recording", "is_recording", "labelled", "note", "table_text"]
