"""funcnn: functional convolutional networks in JAX with hand-written, lecture-derived VJPs.

    import funcnn as fn
    z = fn.conv2d(x, w, padding="SAME")                 # primitives: JAX primitives, rules from lecture 004
    init, apply = fn.models.lenet5(10)                  # layers and models: pure (init, apply) pairs
    fn.train.run(model="lenet5", dataset="digits")      # the main job (`funcnn train`)

Submodules and names load on first use (PEP 562), so `import funcnn` and the command's `--help` do not import JAX.
"""

from __future__ import annotations

from .lazy import lazy_attributes

__version__ = "0.1.0"

from .catalog import PRIMITIVES as _PRIMITIVES  # the standard library only
_NAMES = {**{name: "primitives" for name in _PRIMITIVES}, "CorruptFileError": "io", "load": "io", "save": "io",
          "count_params": "describe", "summary": "describe", "export": "deploy", "as_lax": "primitives.lax_view"}
_SUBMODULES = ("data", "deploy", "describe", "detection", "init", "interop", "io", "layers", "models", "primitives",
               "reference", "train", "verify", "viz", "gradcheck", "report", "catalog", "curvature")

__all__ = [*_PRIMITIVES, "CorruptFileError", "load", "save", "count_params", "summary", "export", "as_lax", "curvature",
           "data", "deploy", "detection", "init", "interop", "layers", "models", "primitives", "train", "verify", "viz",
           "__version__"]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _NAMES, _SUBMODULES)
