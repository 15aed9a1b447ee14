"""funcnn: functional convolutional networks in JAX with hand-written, lecture-derived VJPs.

    import funcnn as fn
    z = fn.conv2d(x, w, padding="SAME")                 # primitives: jax.custom_vjp rules from lecture 004
    init, apply = fn.models.lenet5(10)                  # layers and models: pure (init, apply) pairs
    fn.train.run(model="lenet5", dataset="digits")      # the main job (`funcnn train`)

Submodules and names load on first use (PEP 562), so `import funcnn` and the command's `--help` do not import JAX.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .catalog import PRIMITIVES as _PRIMITIVES  # the standard library only
_NAMES = {**{name: "primitives" for name in _PRIMITIVES}, "CorruptFileError": "io", "load": "io", "save": "io",
          "count_params": "describe", "summary": "describe", "export": "deploy"}
_SUBMODULES = ("data", "deploy", "describe", "detection", "init", "interop", "io", "layers", "models", "primitives",
               "reference", "train", "verify", "viz", "gradcheck", "report", "catalog", "curvature")

__all__ = [*_PRIMITIVES, "CorruptFileError", "load", "save", "count_params", "summary", "export", "curvature", "data",
           "deploy", "detection", "init", "interop", "layers", "models", "primitives", "train", "verify", "viz",
           "__version__"]


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'funcnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
