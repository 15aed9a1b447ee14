"""Export for deployment: a trained model's inference function as a serialised `jax.export` artifact (StableHLO).

    exported = funcnn.export(apply, params, state, (32, 32, 1), platforms=("cpu", "cuda"))
    funcnn.deploy.write(exported, "model.jaxexport")           # or: funcnn export --model lenet5 --params ...

or, from a run's saved parameters, the whole path the command takes:

    report = funcnn.deploy.export_saved("lenet5", "runs/lenet5-digits/params.npz", "lenet5.jaxexport")

and where it runs, with JAX alone (no funcnn, no Python model code):

    from jax import export
    model = export.deserialize(open("model.jaxexport", "rb").read())
    logits = model.call(images)                                 # images: (batch, 32, 32, 1) float32, any batch

The parameters and state are constants of the program; the batch dimension is symbolic, so one artifact serves every
batch size; the model runs in evaluation mode (BatchNorm's running statistics, no dropout).
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import export as jax_export

from . import models
from .describe import count_params
from .io import CorruptFileError, atomic_path, load

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def export(apply: Callable, params, state, input_shape: Sequence[int], *, platforms: Sequence[str] = ("cpu",),
           dtype="float32"):
    """x -> the model's output (the logits), for inputs (batch, *input_shape), lowered for `platforms`; returns a
    `jax.export.Exported` (`.serialize()` gives the bytes, `.call(x)` runs it)."""
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


class ExportArgumentError(ValueError):
    """An argument of `export_saved` that cannot be exported; `argument` names it ("model", "params",
    "input_shape", "platforms" or "out"), so a caller such as the CLI can name its own flag."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


class SavedExport(NamedTuple):
    """What `export_saved` wrote."""
    path: str
    model: str
    parameters: int          # the number of trained parameters the artifact holds
    input_shape: tuple       # one example's shape; the batch is symbolic
    platforms: tuple


def export_saved(model: str, params_file, out, *, input_shape: Sequence[int] | None = None,
                 platforms: Sequence[str] = ("cpu",)) -> SavedExport:
    """Export the zoo model `model` with the parameters and state a run saved (`params_file`: the params.npz or
    best.npz `funcnn train` writes) to the file `out`, atomically; what `funcnn export` does.

    The classes are read from the saved parameters, the model is built for them and `input_shape` (default: the
    model's own, `funcnn.models.INPUT_SHAPES`; of the model's rank), and the file is loaded again against that
    model's parameter tree, so that shapes and key paths are checked before anything is written.

    Raises FileNotFoundError for a missing params_file and ExportArgumentError (a ValueError) naming the argument
    for anything else: an unknown model, a file that holds no trained model or another model's parameters, an
    input shape of the wrong rank or that the model cannot take, an unknown platform, an out that is a directory
    or cannot be written.
    """
    try:
        constructor = models.get(model)
    except ValueError as err:
        raise ExportArgumentError("model", str(err)) from None
    default = models.INPUT_SHAPES[model]
    shape = tuple(default if input_shape is None else input_shape)
    if len(shape) != len(default) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ExportArgumentError("input_shape", f"input_shape must be {len(default)} positive integers for {model} "
                                  f"(one example's shape, {default} by default), got {shape}")
    params_file = os.fspath(params_file)
    try:
        saved = load(params_file)
    except (CorruptFileError, ValueError) as err:
        raise ExportArgumentError("params", f"{err} (export takes the params.npz or best.npz of a run, not its "
                                            "checkpoint.npz)") from None
    if not isinstance(saved, dict) or set(saved) != {"params", "state"}:
        raise ExportArgumentError("params", f"{params_file} does not hold {{'params', 'state'}} as funcnn train "
                                            "writes them")
    try:
        classes = models.num_classes(saved["params"])
    except (TypeError, ValueError) as err:
        raise ExportArgumentError("params", f"{params_file}: {err}") from None
    network = constructor(classes)
    try:
        _, params_like, state_like = jax.eval_shape(lambda r: network.init(r, (1, *shape)), jax.random.PRNGKey(0))
    except (ValueError, TypeError) as err:
        raise ExportArgumentError("input_shape", f"input_shape {shape} does not fit {model}: "
                                                 f"{str(err).splitlines()[0]}") from None
    try:
        trees = load(params_file, like={"params": params_like, "state": state_like})
    except (CorruptFileError, ValueError) as err:
        raise ExportArgumentError("params", f"{params_file} does not hold {model}'s parameters: {err}") from None
    try:
        exported = export(network.apply, trees["params"], trees["state"], shape, platforms=platforms)
    except ValueError as err:
        raise ExportArgumentError("platforms" if "platforms" in str(err) else "input_shape", str(err)) from None
    try:
        write(exported, out)
    except OSError as err:
        raise ExportArgumentError("out", f"{os.fspath(out)} cannot be written: {err.strerror or err}") from None
    return SavedExport(os.fspath(out), model, count_params(trees["params"]), shape, tuple(exported.platforms))


__all__ = ["PLATFORMS", "export", "write", "read", "export_saved", "SavedExport", "ExportArgumentError",
           "NotAnExportError"]
