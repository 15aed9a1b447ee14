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
StateDictMismatch listing the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

MODELS = ("alexnet", "vgg16", "resnet18", "resnet20", "lenet5")


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


def _torch_model(name, num_classes):
    from . import models

    if name not in MODELS:
        raise ValueError(f"interop: no PyTorch layout for model {name!r}; supported: {', '.join(MODELS)}")
    if name == "alexnet":
        return models.alexnet(num_classes, variant="torchvision"), (1, 224, 224, 3)
    return models.get(name)(num_classes), (1, *models.INPUT_SHAPES[name])


def _layers(model, input_shape):
    """The leaf layers with parameters or state, in forward order: (path, name, input shape, output shape)."""
    import jax

    from .layers.base import recording

    with recording() as rows:
        _, params, state = jax.eval_shape(lambda r: model.init(r, tuple(input_shape)), jax.random.PRNGKey(0))
    keys, children, previous, leaves = [], {1: 0}, tuple(input_shape), []
    for row in rows[1:]:  # rows[0] is the model itself
        del keys[row.depth - 1:]
        children = {d: n for d, n in children.items() if d <= row.depth}
        index = children.get(row.depth, 0)
        children[row.depth], children[row.depth + 1] = index + 1, 0
        keys.append(f"{index}_{row.name}")  # the key serial / parallel give the child ("3_Conv")
        if not row.container:
            leaves.append((tuple(keys), row.name, previous, row.out_shape))
            previous = row.out_shape
    return leaves, params, state


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _names(name, leaves):
    """PyTorch key prefixes of the parameterised layers, in order."""
    kinds = [leaf[1] for leaf in leaves if leaf[1] in ("Conv", "Dense", "BatchNorm", "DepthwiseConv")]
    if name == "lenet5":  # an nn.Sequential of the same layers: the index of each layer
        return [str(i) for i, leaf in enumerate(leaves) if leaf[1] in ("Conv", "Dense")]
    if name in ("alexnet", "vgg16"):
        feature_end = next(i for i, leaf in enumerate(leaves) if leaf[1] == "AdaptiveAvgPool")
        names = [f"features.{i}" for i, leaf in enumerate(leaves[:feature_end]) if leaf[1] == "Conv"]
        classifier = leaves[feature_end + 2:]  # after the pool and the flatten, as torchvision's classifier indexes
        return names + [f"classifier.{i}" for i, leaf in enumerate(classifier) if leaf[1] == "Dense"]
    # ResNets: conv1, bn1, layer{s}.{b}.conv1 / bn1 / conv2 / bn2 / downsample.0 / downsample.1, fc
    names = ["conv1", "bn1"]
    blocks = {"resnet18": [2, 2, 2, 2], "resnet20": [3, 3, 3]}[name]
    for stage, count in enumerate(blocks, start=1):
        for b in range(count):
            prefix = f"layer{stage}.{b}"
            names += [f"{prefix}.conv1", f"{prefix}.bn1", f"{prefix}.conv2", f"{prefix}.bn2"]
            if b == 0 and (stage > 1):
                names += [f"{prefix}.downsample.0", f"{prefix}.downsample.1"]
    names.append("fc")
    assert len(names) == len(kinds), (len(names), len(kinds))
    return names


def _entries(name, num_classes):
    model, input_shape = _torch_model(name, num_classes)
    leaves, params, state = _layers(model, input_shape)
    prefixes = iter(_names(name, leaves))
    entries, after_flatten = [], None
    for path, layer, in_shape, out_shape in leaves:
        if layer == "Flatten":
            after_flatten = tuple(in_shape[1:])
            continue
        if layer not in ("Conv", "Dense", "BatchNorm", "DepthwiseConv"):
            continue
        prefix, p = next(prefixes), _get(params, path)
        if layer in ("Conv", "DepthwiseConv"):
            entries.append(_Entry(f"{prefix}.weight", path + ("w",), "params", "conv", p["w"].shape, ()))
        elif layer == "Dense":
            kind = "dense_after_flatten" if after_flatten and len(after_flatten) == 3 else "dense"
            entries.append(_Entry(f"{prefix}.weight", path + ("w",), "params", kind, p["w"].shape,
                                  after_flatten or ()))
            after_flatten = None
        if layer == "BatchNorm":
            s = _get(state, path)
            entries += [_Entry(f"{prefix}.weight", path + ("scale",), "params", "vector", p["scale"].shape, ()),
                        _Entry(f"{prefix}.bias", path + ("bias",), "params", "vector", p["bias"].shape, ()),
                        _Entry(f"{prefix}.running_mean", path + ("mean",), "state", "vector", s["mean"].shape, ()),
                        _Entry(f"{prefix}.running_var", path + ("var",), "state", "vector", s["var"].shape, ())]
        elif "b" in p:
            entries.append(_Entry(f"{prefix}.bias", path + ("b",), "params", "vector", p["b"].shape, ()))
    return model, input_shape, entries, params, state


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
    """The number of classes: the rows of the last linear layer's weight (the last 2-D tensor)."""
    weights = [v for v in state_dict.values() if np.ndim(v) == 2]
    if not weights:
        raise StateDictMismatch(f"interop: the state dict has no linear layer, so it cannot be funcnn's {name}")
    return int(np.shape(weights[-1])[0])


def from_torch(name: str, state_dict, num_classes: int | None = None):
    """(params, state) of funcnn's `name` holding a PyTorch state dict's weights (values: torch tensors or NumPy
    arrays); num_classes defaults to the last linear layer's. StateDictMismatch when keys or shapes do not fit."""
    import jax.numpy as jnp

    state_dict = {k: _numpy(v) for k, v in dict(state_dict).items()}
    num_classes = _classes(name, state_dict) if num_classes is None else num_classes
    _, _, entries, params, state = _entries(name, num_classes)
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


def to_torch(name: str, params, state=None) -> dict:
    """A PyTorch state dict (key -> NumPy float32 array, in PyTorch's layout and key order) of funcnn's `name`;
    `torch.from_numpy` each value, or save it with `save_safetensors`. BatchNorm's num_batches_tracked is 0."""
    dense = list(_dense_weights(params))
    if not dense:
        raise StateDictMismatch(f"interop: the parameters have no dense layer, so they are not funcnn's {name}")
    num_classes = int(np.shape(_get(params, dense[-1]))[-1])
    _, _, entries, _, _ = _entries(name, num_classes)
    trees = {"params": params, "state": state if state is not None else {}}
    out = {}
    for e in entries:
        out[e.key] = np.ascontiguousarray(_to_torch(e, np.asarray(_get(trees[e.tree], e.path))), np.float32)
        if e.key.endswith(".running_var"):
            out[e.key[: -len("running_var")] + "num_batches_tracked"] = np.zeros((), np.int64)
    return out


def _layer_order(item):
    """Sort key of a combinator's child key "<index>_<Name>" by its index (JAX rebuilds dicts with sorted keys, and
    "10_Dense" sorts before "9_Dense" as a string)."""
    head = item[0].split("_", 1)[0]
    return (int(head), item[0]) if head.isdigit() else (float("inf"), item[0])


def _dense_weights(tree, path=()):
    """The paths of every dense layer's "w" in a tree of dicts, in layer order."""
    for key, value in sorted(tree.items(), key=_layer_order):
        if isinstance(value, dict):
            if key.endswith("_Dense") and "w" in value:
                yield path + (key, "w")
            yield from _dense_weights(value, path + (key,))


# ----------------------------------------------------------------------------------------------------------------
# files


def read_state_dict(path) -> dict:
    """A state dict from a file, as {key: NumPy array}: `.safetensors` through the safetensors package (no PyTorch
    needed), `.pth` / `.pt` through torch.load(weights_only=True); nothing else is unpickled."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"interop: no such file: {path}")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        try:
            return dict(load_file(path))
        except Exception as err:  # noqa: BLE001 - a damaged or foreign file
            raise ValueError(f"interop: {path} is not a readable safetensors file: {err}") from err
    if path.endswith((".pth", ".pt")):
        try:
            import torch
        except ImportError:
            raise ImportError("interop: reading a .pth file needs PyTorch (pip install 'funcnn[torch]'); a "
                              ".safetensors file needs only the safetensors package") from None
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - weights_only refuses anything but tensors and containers
            raise ValueError(f"interop: {path} could not be read with torch.load(weights_only=True): {err}") from err
        if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict):
            raise ValueError(f"interop: {path} holds a {type(loaded).__name__}, not a state dict")
        return {k: _numpy(v) for k, v in loaded.items()}
    raise ValueError(f"interop: {path}: unknown weights format (expected .safetensors, .pth or .pt)")


def save_safetensors(path, state_dict) -> None:
    """Write a state dict (key -> array) as a .safetensors file that PyTorch, safetensors and other tools read."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(_numpy(v)) for k, v in state_dict.items()}, os.fspath(path))


__all__ = ["MODELS", "StateDictMismatch", "from_torch", "to_torch", "read_state_dict", "save_safetensors"]
