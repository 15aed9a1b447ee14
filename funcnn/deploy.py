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

ONNX, for runtimes that are not JAX (an optional extra: `pip install 'funcnn[onnx]'`, jax2onnx and onnxruntime):

    model = funcnn.deploy.export_onnx(apply, params, state, (32, 32, 1))   # an onnx.ModelProto, batch symbolic
    funcnn.deploy.write(model, "lenet5.onnx")                            # or: funcnn export --format onnx ...

    import onnxruntime
    session = onnxruntime.InferenceSession("lenet5.onnx")
    logits = session.run(None, {session.get_inputs()[0].name: images})[0]

The ONNX graph is jax2onnx's conversion of the model's lax view (`funcnn.as_lax`, in the canonical forms every
platform but the CPU runs: one Conv per convolution), with funcnn's own lowering for the ops `funcnn.onnx_ops` names.
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
from .primitives.conv import force_algorithm
from .primitives.lax_view import as_lax

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
FORMATS = ("jax", "onnx")  # export_saved's formats: jax.export (StableHLO), ONNX through jax2onnx
ONNX_OPSET = 21            # the opset export_onnx writes by default (onnxruntime >= 1.20 runs it)
ONNX_EXTRA = "pip install 'funcnn[onnx]'"


def export(apply: Callable, params, state, input_shape: Sequence[int], *, platforms: Sequence[str] = ("cpu",),
           dtype="float32"):
    """x -> the model's output (the logits), for inputs (batch, *input_shape), lowered for `platforms`; returns a
    `jax.export.Exported` (`.serialize()` gives the bytes, `.call(x)` runs it)."""
    platforms = tuple(platforms)
    unknown = [p for p in platforms if p not in PLATFORMS]
    if not platforms or unknown:
        raise ValueError(f"funcnn.export: platforms must be among {', '.join(PLATFORMS)}, got {list(platforms)}")
    input_shape = _check_input_shape("funcnn.export", input_shape)
    infer = _inference("funcnn.export", apply, params, state, input_shape, dtype)
    (batch,) = jax_export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *input_shape), jnp.dtype(dtype))
    try:
        return jax_export.export(jax.jit(infer), platforms=platforms)(spec)
    except ImportError as err:
        raise ImportError(f"funcnn.export: {err}") from err


def _check_input_shape(where: str, input_shape) -> tuple:
    input_shape = tuple(input_shape)
    if not input_shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"{where}: input_shape is one example's shape, (H, W, C) say, of positive ints; got "
                         f"{input_shape}")
    return input_shape


def _inference(where: str, apply: Callable, params, state, input_shape, dtype):
    """x -> the logits in evaluation mode, after checking that the model takes (1, *input_shape)."""
    def infer(x):
        return apply(params, state, x, train=False)[0]

    try:
        jax.eval_shape(infer, jax.ShapeDtypeStruct((1, *input_shape), jnp.dtype(dtype)))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: the model does not take inputs of shape (batch, *{input_shape}): "
                         f"{str(err).splitlines()[0]}") from None
    return infer


def export_onnx(apply: Callable, params, state, input_shape: Sequence[int], *, batch: int | None = None,
                dtype="float32", opset: int = ONNX_OPSET):
    """x -> the model's output (the logits), for inputs (batch, *input_shape), as an ONNX model (`onnx.ModelProto`)
    converted by jax2onnx; in evaluation mode, parameters and state as initializers.

    batch: None (default) for a symbolic batch dimension ("batch": one graph for every batch size), or a fixed size.
    The graph is the model's lax view (`funcnn.as_lax`, platform "default": the canonical forms, one ONNX Conv per
    convolution, whatever path funcnn's CPU table would take), max pooling lowered by `funcnn.onnx_ops`. ImportError
    naming the extra when jax2onnx is not installed; NotImplementedError naming the operation jax2onnx cannot convert
    (3-D and transposed convolutions)."""
    try:  # here: jax2onnx is an optional extra, and heavy to import
        from jax2onnx import to_onnx

        from . import onnx_ops
    except ImportError as err:
        raise ImportError(f"funcnn.deploy.export_onnx needs jax2onnx ({err}); install the extra: {ONNX_EXTRA}") from err
    input_shape = _check_input_shape("funcnn.deploy.export_onnx", input_shape)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"funcnn.deploy.export_onnx: batch is a positive int or None (symbolic), got {batch!r}")
    infer = _inference("funcnn.deploy.export_onnx", apply, params, state, input_shape, dtype)
    view = as_lax(infer, platform="default", keep=onnx_ops.KEPT)
    try:
        with force_algorithm("canonical"):  # one lax convolution per conv, not the taps' slices: ONNX Conv nodes
            return to_onnx(view, [("batch" if batch is None else batch, *input_shape)], model_name="funcnn",
                           opset=opset, input_names=["images"], output_names=["logits"],
                           enable_double_precision=jnp.dtype(dtype) == jnp.float64)
    except NotImplementedError as err:  # an operation jax2onnx has no lowering for (3-D and transposed convs)
        raise NotImplementedError(f"funcnn.deploy.export_onnx: jax2onnx cannot convert this model: {err} (it "
                                  "converts 2-D convolutions, not 3-D or transposed ones)") from None


def write(exported, path) -> None:
    """Serialise an Exported (`export`) or an ONNX model (`export_onnx`) to `path`, atomically (a temporary file
    renamed over the target); OSError naming the path when it is a directory or cannot be written."""
    if os.path.isdir(os.fspath(path)):
        raise IsADirectoryError(f"funcnn.export: the output {os.fspath(path)} is a directory; give a file name "
                                "(model.jaxexport or model.onnx, say)")
    onnx = hasattr(exported, "SerializeToString")
    data = exported.SerializeToString() if onnx else exported.serialize()
    with atomic_path(path, suffix=".onnx" if onnx else ".jaxexport") as tmp, open(tmp, "wb") as f:
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
    platforms: tuple         # what a jax.export artifact was lowered for; () for ONNX (any runtime that reads it)
    format: str = "jax"      # one of FORMATS


def export_saved(model: str, params_file, out, *, input_shape: Sequence[int] | None = None,
                 platforms: Sequence[str] | None = None, format: str = "jax") -> SavedExport:
    """Export the zoo model `model` with the parameters and state a run saved (`params_file`: the params.npz or
    best.npz `funcnn train` writes) to the file `out`, atomically; what `funcnn export` does. `format`: "jax" (a
    jax.export artifact lowered for `platforms`, default cpu) or "onnx" (`export_onnx`; takes no platforms).

    The classes are read from the saved parameters, the model is built for them and `input_shape` (default: the
    model's own, `funcnn.models.INPUT_SHAPES`; of the model's rank), and the file is loaded again against that
    model's parameter tree, so that shapes and key paths are checked before anything is written.

    Raises FileNotFoundError for a missing params_file and ExportArgumentError (a ValueError) naming the argument
    for anything else: an unknown model, a file that holds no trained model or another model's parameters, an
    input shape of the wrong rank or that the model cannot take, an unknown platform or format, an out that is a
    directory or cannot be written. ImportError naming the extra for format="onnx" without jax2onnx.
    """
    if format not in FORMATS:
        raise ExportArgumentError("format", f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx" and platforms is not None:
        raise ExportArgumentError("platforms", f"an ONNX model is not lowered for a platform (got {list(platforms)}); "
                                               "platforms are for format='jax'")
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
        if format == "onnx":
            exported = export_onnx(network.apply, trees["params"], trees["state"], shape)
        else:
            exported = export(network.apply, trees["params"], trees["state"], shape, platforms=platforms or ("cpu",))
    except ValueError as err:
        raise ExportArgumentError("platforms" if "platforms" in str(err) else "input_shape", str(err)) from None
    except NotImplementedError as err:
        raise ExportArgumentError("format", f"{model} cannot go to {format}: {err}") from None
    try:
        write(exported, out)
    except OSError as err:
        raise ExportArgumentError("out", f"{os.fspath(out)} cannot be written: {err.strerror or err}") from None
    return SavedExport(os.fspath(out), model, count_params(trees["params"]), shape,
                       () if format == "onnx" else tuple(exported.platforms), format)


__all__ = ["PLATFORMS", "FORMATS", "export", "export_onnx", "write", "read", "export_saved", "SavedExport",
           "ExportArgumentError", "NotAnExportError"]
