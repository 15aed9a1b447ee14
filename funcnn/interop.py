"""PyTorch weights in and out: torchvision (and plain nn.Sequential) state dicts to funcnn's (params, state) and back.

    from funcnn import interop, models
    sd = interop.read_state_dict("resnet18.safetensors")       # or a .pth (torch.load(weights_only=True))
    params, state = interop.from_torch("resnet18", sd)          # funcnn's resnet18 now computes torchvision's logits
    sd_again = interop.to_torch("resnet18", params, state)       # NumPy arrays under torchvision's key names

Supported: the zoo models torchvision also has, `alexnet` (its layout: `models.alexnet(variant="torchvision")`),
`vgg16` and `resnet18`, under torchvision's key names; `lenet5` under an nn.Sequential's indices (the same layer
order as funcnn's); `resnet20` under torchvision's ResNet naming (conv1, bn1, layer1.0.conv1, ..., fc). A state dict
with other names but the same tensors in the same order is matched by position. The conversion:

    Conv2d weight (O, I, kH, kW)       -> HWIO w (kH, kW, I, O)
    Linear weight (out, in)            -> w (in, out); after a flatten, the inputs re-ordered from PyTorch's
                                          (C, H, W) flattening to funcnn's (H, W, C)
    BatchNorm2d weight, bias           -> scale, bias (params); running_mean, running_var -> mean, var (state);
                                          num_batches_tracked is dropped (to_torch writes 0)

Reading never unpickles anything but tensors: `.safetensors` through the safetensors package (no PyTorch needed),
`.pth` / `.pt` only through torch.load(..., weights_only=True). A state dict that does not fit the model raises
StateDictMismatch listing the missing, unexpected and mis-shaped keys; so does `to_torch` for parameters that are
not the model's. The layers are read from funcnn's parameter tree (`layers.walk`) and named by each model's key
function, which sits beside the model (`models.classic.sequential_keys`, `torchvision_keys`,
`models.resnet.torchvision_keys`) and is named in the one table of models, `funcnn.catalog.MODELS`.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from . import catalog, layers, models
from .io import atomic_path
from .models import num_classes

MODELS = tuple(name for name, spec in catalog.MODELS.items() if spec.torch_keys)  # the zoo models with a layout
WEIGHTED = ("Conv", "DepthwiseConv", "Dense", "BatchNorm")


class StateDictMismatch(ValueError):
    """A state dict whose keys or shapes do not fit the model; the message lists what is missing, unexpected and
    mis-shaped."""


class _Entry(NamedTuple):
    key: str          # the PyTorch name
    path: tuple       # where in funcnn's tree
    tree: str         # "params" or "state"
    kind: str         # "conv", "dense", "dense_after_flatten", "vector"
    shape: tuple      # funcnn's shape
    flatten: tuple    # (H, W, C) before a flatten, for "dense_after_flatten"


def _spec(name):
    if name not in MODELS:
        raise ValueError(f"interop: no PyTorch layout for model {name!r}; supported: {', '.join(MODELS)}")
    return catalog.MODELS[name]


def _template(name, num_classes):
    """(params, state) shapes of funcnn's `name` in its PyTorch layout, without allocating anything."""
    spec = _spec(name)
    model = models.MODELS[name](num_classes, **dict(spec.torch_options))
    shape = (1, *(spec.torch_input or spec.input_shape))
    _, params, state = jax.eval_shape(lambda r: model.init(r, shape), jax.random.PRNGKey(0))
    return params, state


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _entries(name, params, state):
    """Every tensor of `name`'s PyTorch state dict, in its order: where it lives in funcnn's trees and how it
    converts. The layers come from the parameter tree itself (`layers.walk`), their PyTorch names from the model's
    key function (beside the model, named in funcnn.catalog)."""
    walked = list(layers.walk(params))
    prefixes = iter(models.resolve(_spec(name).torch_keys)(name, walked))
    entries, channels, flattened = [], None, False
    for path, kind in walked:
        if kind == "Flatten":
            flattened = True
        if kind not in WEIGHTED:
            continue
        prefix, p = next(prefixes), _get(params, path)
        if kind in ("Conv", "DepthwiseConv"):
            entries.append(_Entry(f"{prefix}.weight", path + ("w",), "params", "conv", p["w"].shape, ()))
            channels = p["w"].shape[-1]
        elif kind == "Dense":
            flatten = _flattened_maps(name, p["w"].shape[0], channels) if flattened else ()
            entries.append(_Entry(f"{prefix}.weight", path + ("w",), "params",
                                  "dense_after_flatten" if flatten else "dense", p["w"].shape, flatten))
            flattened = False
        if kind == "BatchNorm":
            s = _get(state, path)
            entries += [_Entry(f"{prefix}.weight", path + ("scale",), "params", "vector", p["scale"].shape, ()),
                        _Entry(f"{prefix}.bias", path + ("bias",), "params", "vector", p["bias"].shape, ()),
                        _Entry(f"{prefix}.running_mean", path + ("mean",), "state", "vector", s["mean"].shape, ()),
                        _Entry(f"{prefix}.running_var", path + ("var",), "state", "vector", s["var"].shape, ())]
        elif "b" in p:
            entries.append(_Entry(f"{prefix}.bias", path + ("b",), "params", "vector", p["b"].shape, ()))
    return entries


def _flattened_maps(name, features, channels):
    """(H, W, C) of the square maps a flatten turned into `features` inputs of the first dense layer after it."""
    side = math.isqrt(features // channels) if channels else 0
    if not channels or side * side * channels != features:
        raise ValueError(f"interop: {name}: a dense layer of {features} inputs after a flatten of {channels} "
                         "channels is not a flattened square map")
    return (side, side, channels)


def _torch_shape(entry):
    """The shape PyTorch holds the entry in."""
    if entry.kind == "conv":
        *k, i, o = entry.shape
        return (o, i, *k)
    if entry.kind.startswith("dense"):
        return tuple(reversed(entry.shape))
    return entry.shape


def _to_funcnn(entry, array):
    a = np.asarray(array)
    if entry.kind == "conv":
        return np.transpose(a, tuple(range(2, a.ndim)) + (1, 0))
    if entry.kind == "dense":
        return a.T
    if entry.kind == "dense_after_flatten":  # (out, C*H*W) in NCHW order -> (H*W*C, out)
        h, w, c = entry.flatten
        return a.reshape(a.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, a.shape[0])
    return a


def _to_torch(entry, array):
    a = np.asarray(array)
    if entry.kind == "conv":
        return np.transpose(a, (a.ndim - 1, a.ndim - 2) + tuple(range(a.ndim - 2)))
    if entry.kind == "dense":
        return a.T
    if entry.kind == "dense_after_flatten":
        h, w, c = entry.flatten
        return a.reshape(h, w, c, a.shape[-1]).transpose(3, 2, 0, 1).reshape(a.shape[-1], c * h * w)
    return a


def _numpy(value):
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _match(name, entries, state_dict):
    """{entry key: array}, by name, or (all names differing) by position; StateDictMismatch otherwise."""
    given = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    expected = {e.key: e for e in entries}
    if set(given) != set(expected):
        tensors = list(given.items())
        by_position = len(tensors) == len(entries) and all(
            tuple(np.shape(v)) == _torch_shape(e) for (_, v), e in zip(tensors, entries))
        if by_position:
            return {e.key: v for (_, v), e in zip(tensors, entries)}
    problems = []
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f"{k}: {tuple(np.shape(given[k]))} given, {_torch_shape(expected[k])} expected"
                 for k in expected if k in given and tuple(np.shape(given[k])) != _torch_shape(expected[k])]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            problems.append(f"{label} ({len(items)}): " + ", ".join(items[:8]) + (" ..." if len(items) > 8 else ""))
    if problems:
        raise StateDictMismatch(f"interop: the state dict does not fit funcnn's {name}: " + "; ".join(problems))
    return given


def _classes(name, state_dict):
    """The number of classes: the rows of the classifier's weight, found by its key (not by dict order: a
    .safetensors file sorts its keys as strings), or, for a state dict under other names that matches by position,
    the tensor at the classifier's position. (Keys do not depend on the class count: a model of one class names
    them.)"""
    entries = _entries(name, *_template(name, 1))
    index = max(i for i, e in enumerate(entries) if e.kind.startswith("dense"))
    if entries[index].key in state_dict:
        return int(np.shape(state_dict[entries[index].key])[0])
    tensors = [v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")]
    if len(tensors) == len(entries) and np.ndim(tensors[index]) == 2:
        return int(np.shape(tensors[index])[0])
    raise StateDictMismatch(f"interop: the state dict has no {entries[index].key!r}, the classifier of funcnn's "
                            f"{name}, and its {len(tensors)} tensors cannot match the model's {len(entries)} by "
                            "position; pass num_classes=")


_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "module")  # common checkpoint layouts


def as_state_dict(state_dict, what="state_dict") -> dict:
    """{key: NumPy array} from a state dict, or from a checkpoint dict holding one under a usual name
    ({"model": sd, "epoch": 3}, {"state_dict": sd}); TypeError naming what was given otherwise."""
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        raise TypeError(f"interop: {what} is a {type(state_dict).__name__} (a model), not a state dict: pass "
                        "model.state_dict()")
    if not isinstance(state_dict, dict) and not (hasattr(state_dict, "keys") and hasattr(state_dict, "items")):
        raise TypeError(f"interop: {what} must be a dict of tensors (a state dict), got {type(state_dict).__name__}")
    state_dict = dict(state_dict)
    if state_dict and not any(hasattr(v, "shape") for v in state_dict.values()):
        inner = [k for k in _WRAPPERS if isinstance(state_dict.get(k), dict)]
        if inner:
            return as_state_dict(state_dict[inner[0]], f"{what}[{inner[0]!r}]")
        raise TypeError(f"interop: {what} holds no tensor (keys {', '.join(map(str, list(state_dict)[:6]))}); a "
                        f"checkpoint's state dict is usually under one of {', '.join(_WRAPPERS)}")
    bad = [k for k, v in state_dict.items() if not hasattr(v, "shape") and not isinstance(v, (int, float))]
    if bad:
        raise TypeError(f"interop: {what}[{bad[0]!r}] is a {type(state_dict[bad[0]]).__name__}, not a tensor")
    return {str(k): _numpy(v) for k, v in state_dict.items()}


def from_torch(name: str, state_dict, num_classes: int | None = None):
    """(params, state) of funcnn's `name` holding a PyTorch state dict's weights (values: torch tensors or NumPy
    arrays; a checkpoint dict holding the state dict under "state_dict", "model", ... is unwrapped); num_classes
    defaults to the rows of the classifier's weight. StateDictMismatch when keys or shapes do not fit."""
    _spec(name)
    state_dict = as_state_dict(state_dict)
    if num_classes is None:
        num_classes = _classes(name, state_dict)
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"interop: num_classes must be an int >= 1, got {num_classes!r}")
    params, state = _template(name, num_classes)
    entries = _entries(name, params, state)
    matched = _match(name, entries, state_dict)
    trees = {"params": _empty(params), "state": _empty(state)}
    for e in entries:
        value = _to_funcnn(e, matched[e.key]).astype(np.float32)
        if value.shape != tuple(e.shape):
            raise StateDictMismatch(f"interop: {e.key} converts to shape {value.shape}, funcnn's {name} expects "
                                    f"{tuple(e.shape)} at {'/'.join(e.path)}")
        _set(trees[e.tree], e.path, jnp.asarray(value))
    return trees["params"], trees["state"]


def _empty(tree):
    """A copy of a tree of dicts with every leaf None (filled by `_set`)."""
    return {k: _empty(v) for k, v in tree.items()} if isinstance(tree, dict) else None


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _tree_mismatch(name, what, given, template) -> str | None:
    """Why `given` does not have `template`'s structure and shapes (None when it does)."""
    if not isinstance(given, dict):
        return f"{what} must be the dict funcnn's {name} init returns, got {type(given).__name__}"
    flat_given = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(given)[0]}
    flat_want = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(template)[0]}
    missing = [k for k in flat_want if k not in flat_given]
    unexpected = [k for k in flat_given if k not in flat_want]
    shapes = [f"{k}: {tuple(np.shape(flat_given[k]))} given, {tuple(flat_want[k].shape)} expected"
              for k in flat_want if k in flat_given and tuple(np.shape(flat_given[k])) != tuple(flat_want[k].shape)]
    parts = [f"{label} {', '.join(items[:4])}" + (" ..." if len(items) > 4 else "")
             for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if items]
    return f"{what} do not fit funcnn's {name}: " + "; ".join(parts) if parts else None


def to_torch(name: str, params, state=None) -> dict:
    """A PyTorch state dict (key -> NumPy float32 array, in PyTorch's layout and key order) of funcnn's `name`;
    `torch.from_numpy` each value, or save it with `save_safetensors`. BatchNorm's num_batches_tracked is 0.
    StateDictMismatch when params (or state) do not have the model's structure and shapes."""
    _spec(name)
    try:
        classes = num_classes(params)
    except (TypeError, ValueError) as err:
        raise StateDictMismatch(f"interop: params are not funcnn's {name}: {err}") from None
    params_like, state_like = _template(name, classes)
    if state is None and state_like:
        raise StateDictMismatch(f"interop: funcnn's {name} keeps BatchNorm statistics in its state: pass "
                                "to_torch(name, params, state)")
    for what, given, template in (("params", params, params_like), ("state", state or {}, state_like)):
        problem = _tree_mismatch(name, what, given, template)
        if problem:
            raise StateDictMismatch(f"interop: {problem}")
    trees = {"params": params, "state": state if state is not None else {}}
    out = {}
    for e in _entries(name, params_like, state_like):
        out[e.key] = np.ascontiguousarray(_to_torch(e, np.asarray(_get(trees[e.tree], e.path))), np.float32)
        if e.key.endswith(".running_var"):
            out[e.key[: -len("running_var")] + "num_batches_tracked"] = np.zeros((), np.int64)
    return out


# ----------------------------------------------------------------------------------------------------------------
# files


def read_state_dict(path) -> dict:
    """A state dict from a file, as {key: NumPy array}: `.safetensors` through the safetensors package (no PyTorch
    needed), `.pth` / `.pt` through torch.load(weights_only=True); nothing else is unpickled."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"interop: no such file: {path}")
    if path.endswith(".safetensors"):
        try:
            return dict(load_file(path))
        except Exception as err:  # noqa: BLE001 - a damaged or foreign file
            raise ValueError(f"interop: {path} is not a readable safetensors file: {err}") from err
    if path.endswith((".pth", ".pt")):
        try:
            import torch  # here: PyTorch is optional (the torch extra); only a .pth needs it
        except ImportError:
            raise ImportError("interop: reading a .pth file needs PyTorch (pip install 'funcnn[torch]'); a "
                              ".safetensors file needs only the safetensors package") from None
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - weights_only refuses anything but tensors and containers
            raise ValueError(f"interop: {path} could not be read with torch.load(weights_only=True): {err}") from err
        if not isinstance(loaded, dict):
            raise ValueError(f"interop: {path} holds a {type(loaded).__name__}, not a state dict")
        try:
            return as_state_dict(loaded, path)
        except TypeError as err:
            raise ValueError(str(err)) from None
    raise ValueError(f"interop: {path}: unknown weights format (expected .safetensors, .pth or .pt)")


def save_safetensors(path, state_dict) -> None:
    """Write a state dict (key -> array) as a .safetensors file that PyTorch, safetensors and other tools read,
    atomically (a temporary file renamed over the target)."""
    if not isinstance(state_dict, dict) or not all(isinstance(k, str) for k in state_dict):
        raise TypeError(f"interop.save_safetensors: state_dict must be a dict of name -> array (the order is "
                        f"save_safetensors(path, state_dict)), got {type(state_dict).__name__}")
    if os.path.isdir(os.fspath(path)):
        raise IsADirectoryError(f"interop.save_safetensors: {os.fspath(path)} is a directory; give a file name")
    tensors = {}
    for key, value in state_dict.items():
        array = _numpy(value) if hasattr(value, "detach") or hasattr(value, "__array__") else None
        if array is None or array.dtype.kind not in "biuf":  # a str, None, an object array: no tensor to write
            raise TypeError(f"interop.save_safetensors: state_dict[{key!r}] is a {type(value).__name__}, not an "
                            "array of numbers; a safetensors file holds tensors only")
        tensors[key] = np.ascontiguousarray(array)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, tmp)


__all__ = ["MODELS", "StateDictMismatch", "as_state_dict", "from_torch", "to_torch", "read_state_dict",
           "save_safetensors"]
