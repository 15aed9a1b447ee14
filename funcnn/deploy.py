"""Export for deployment: a trained model's inference function as a serialised `jax.export` artifact (StableHLO).

    exported = funcnn.export(apply, params, state, (32, 32, 1), platforms=("cpu", "cuda"))
    funcnn.deploy.write(exported, "model.jaxexport")           # or: funcnn export --model lenet5 --params ...

and where it runs, with JAX alone (no funcnn, no Python model code):

    from jax import export
    model = export.deserialize(open("model.jaxexport", "rb").read())
    logits = model.call(images)                                 # images: (batch, 32, 32, 1) float32, any batch

The parameters and state are constants of the program; the batch dimension is symbolic, so one artifact serves every
batch size; the model runs in evaluation mode (BatchNorm's running statistics, no dropout).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def export(apply: Callable, params, state, input_shape: Sequence[int], *, platforms: Sequence[str] = ("cpu",),
           dtype="float32"):
    """x -> the model's output (the logits), for inputs (batch, *input_shape), lowered for `platforms`; returns a
    `jax.export.Exported` (`.serialize()` gives the bytes, `.call(x)` runs it)."""
    import jax
    import jax.numpy as jnp
    from jax import export as jax_export

    platforms = tuple(platforms)
    unknown = [p for p in platforms if p not in PLATFORMS]
    if not platforms or unknown:
        raise ValueError(f"funcnn.export: platforms must be among {', '.join(PLATFORMS)}, got {list(platforms)}")
    input_shape = tuple(input_shape)
    if not input_shape or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"funcnn.export: input_shape is one example's shape, (H, W, C) say, of positive ints; got "
                         f"{input_shape}")

    def infer(x):
        return apply(params, state, x, train=False)[0]

    try:
        jax.eval_shape(infer, jax.ShapeDtypeStruct((1, *input_shape), jnp.dtype(dtype)))
    except (ValueError, TypeError) as err:
        raise ValueError(f"funcnn.export: the model does not take inputs of shape (batch, *{input_shape}): "
                         f"{str(err).splitlines()[0]}") from None
    (batch,) = jax_export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *input_shape), jnp.dtype(dtype))
    try:
        return jax_export.export(jax.jit(infer), platforms=platforms)(spec)
    except ImportError as err:
        raise ImportError(f"funcnn.export: {err}") from err


def write(exported, path) -> None:
    """Serialise an Exported to `path`, atomically (a temporary file renamed over the target); OSError naming the
    path when it is a directory or cannot be written."""
    from .io import atomic_path

    if os.path.isdir(os.fspath(path)):
        raise IsADirectoryError(f"funcnn.export: the output {os.fspath(path)} is a directory; give a file name "
                                "(model.jaxexport, say)")
    data = exported.serialize()
    with atomic_path(path, suffix=".jaxexport") as tmp, open(tmp, "wb") as f:
        f.write(data)


class NotAnExportError(ValueError):
    """A file that `read` cannot deserialise: not written by `write` (funcnn export), truncated or damaged."""


def read(path):
    """The Exported in `path` (what the loading snippet of the module docstring does). FileNotFoundError for a
    missing file, NotAnExportError naming the file for one that is not a serialised export."""
    from jax import export as jax_export

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"funcnn.deploy.read: no such file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return jax_export.deserialize(bytearray(data))
    except Exception as err:  # noqa: BLE001 - flatbuffers / struct / version errors of a file that is no export
        raise NotAnExportError(f"funcnn.deploy.read: {path} is not a serialised jax.export (written by funcnn "
                               f"export), or it is damaged: {type(err).__name__}: {str(err)[:120]}") from None


__all__ = ["PLATFORMS", "export", "write", "read", "NotAnExportError"]
