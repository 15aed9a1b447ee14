"""What a conv-family op sees of its context while it is traced: the settings that change which path computes a
rule, each a JAX user context (so a jitted function is traced again when one changes).

    force_algorithm(name)   pin one path for every rule it applies to (tests and benchmarks)
    loop_body()             trace the block as a loop's body (its dW takes the table's `..._in_a_loop` rows)
    for_platform(platform)  emit a CPU path for one platform only (programs read by tools other than XLA)
    use_onednn(enabled)     let the rules take funcnn's oneDNN engine, or keep them on XLA's paths; the process's
                            default is $FUNCNN_CPU_ENGINE, else the engine where built

`force_algorithm` and `loop_body` are recorded in each op's `ConvSpec` (`forced=`, `looped=` in a jaxpr), so the
backward rules, traced later, choose as the forward did.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import jax

from ... import catalog
from .paths import ALGORITHMS, onednn

_FORCED = jax.make_user_context(default_value="")  # JAX retraces a jitted function when this context changes
_LOOPED = jax.make_user_context(default_value=False)
_PLATFORM = jax.make_user_context(default_value="")
_ONEDNN = jax.make_user_context(default_value="")  # "on", "off", or "": the process's default (`onednn_enabled`)
ENGINE_VARIABLE = "FUNCNN_CPU_ENGINE"  # the process's default CPU engine (`default_cpu_engine`)
CPU_ENGINE_NAMES = tuple(catalog.CPU_ENGINES)  # the `cpu_engine=` settings
PLATFORMS = ("cpu", "cuda", "rocm", "tpu", "default")  # lax.platform_dependent's names; "default": every other
_warned_unbuilt: list = []


def forced() -> str | None:
    """The path pinned by an enclosing `force_algorithm`, or None."""
    return _FORCED.value or None


@contextlib.contextmanager
def force_algorithm(name: str | None):
    """Use one path for every rule it applies to (for tests and benchmarks): one of `ALGORITHMS`, or None for the
    table. A rule the path cannot compute (`rules.applies`) falls back to the canonical form. The pinned path is a
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
    platform without a branch of its own), instead of both forms inside `lax.platform_dependent`; the oneDNN
    engine's rules are emitted as the XLA paths the table gives without it. For programs read by tools other than
    XLA (`funcnn.as_lax`, ONNX export), which want one computation, not a branch on the platform index. None: both
    forms, as usual."""
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


__all__ = ["force_algorithm", "forced", "loop_body", "looped", "for_platform", "target_platform", "PLATFORMS",
           "use_onednn", "onednn_enabled", "default_cpu_engine", "ENGINE_VARIABLE", "CPU_ENGINE_NAMES"]
