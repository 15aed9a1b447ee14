"""save / load pytrees of arrays without pickle, as `.npz` (funcnn's own) or `.safetensors` (what other tools read).

npz: a NumPy archive (a zip of `.npy` files, read with allow_pickle=False) holding the leaves as `leaf_0`, `leaf_1`,
... and a JSON `__funcnn__` entry with the format version, the tree skeleton (nested dicts, lists, tuples and None)
and each leaf's dtype (bfloat16 is stored as its uint16 bits).

safetensors (`format="safetensors"`, or a path ending in .safetensors): one tensor per leaf, named by its key path
("params/0_Conv/w"), with the same skeleton in the file's metadata; PyTorch (`safetensors.torch.load_file`), the
safetensors package and other frameworks open it. `load` of a .safetensors file written by another tool returns its
flat {name: array} dict.

Trees with other node types (optax states are NamedTuples) load with `like=`, a template of the same structure.
Writes are atomic: the file goes to a temporary file in the same directory, is flushed to disk, and renamed over the
target, so a file at `path` is always complete, and a failed or interrupted save leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

FORMAT = "funcnn-tree"
VERSION = 1


class CorruptFileError(ValueError):
    """A file that is not a complete funcnn archive (truncated, another format, or inconsistent)."""


def _skeleton(tree, leaves: list):
    """A JSON-able description of the tree with leaves replaced by their index; None where not representable."""
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            return None
        # number the leaves in JAX's flattening order (sorted keys), keep the dict's own key order in the file
        parts = {k: _skeleton(tree[k], leaves) for k in sorted(tree)}
        return None if any(p is None for p in parts.values()) else {"dict": {k: parts[k] for k in tree}}
    if isinstance(tree, (list, tuple)) and type(tree) in (list, tuple):
        parts = [_skeleton(v, leaves) for v in tree]
        return None if any(p is None for p in parts) else {type(tree).__name__: parts}
    if tree is None:
        return {"none": None}
    if hasattr(tree, "shape") and hasattr(tree, "dtype") or np.isscalar(tree):
        leaves.append(tree)
        return {"leaf": len(leaves) - 1}
    return None


def _rebuild(node, leaves):
    (kind, value), = node.items()
    if kind == "dict":
        return {k: _rebuild(v, leaves) for k, v in value.items()}
    if kind in ("list", "tuple"):
        items = [_rebuild(v, leaves) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "none":
        return None
    return leaves[value]


def _to_numpy(leaf):
    array = np.asarray(leaf)
    if array.dtype == jnp.bfloat16:
        return array.view(np.uint16), "bfloat16"
    return array, array.dtype.str


def _check_leaves(path, tree):
    """Every leaf must be an array or a number (what `load` reads back); TypeError naming the leaf otherwise."""
    for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        where = jax.tree_util.keystr(keypath) or "(the root)"
        if isinstance(leaf, (str, bytes)) or not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")
                                                  or isinstance(leaf, (bool, int, float, complex, np.generic))):
            raise TypeError(f"funcnn.save: {path}: the leaf at {where} is a {type(leaf).__name__} ({leaf!r:.40}); "
                            "only arrays and numbers can be saved (keep strings in a JSON file beside it)")
        if np.asarray(leaf).dtype.kind not in "biufc" and np.asarray(leaf).dtype != jnp.bfloat16:
            raise TypeError(f"funcnn.save: {path}: the leaf at {where} has dtype {np.asarray(leaf).dtype}; only "
                            "numeric arrays can be saved")


FORMATS = ("npz", "safetensors")


def _format(path, format):
    if format is None:
        return "safetensors" if os.fspath(path).endswith(".safetensors") else "npz"
    if format not in FORMATS:
        raise ValueError(f"funcnn.save: format must be one of {', '.join(FORMATS)}, got {format!r}")
    return format


def _key_name(keypath) -> str:
    """A leaf's key path as a tensor name: "params/0_Conv/w"."""
    parts = []
    for key in keypath:
        parts.append(str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))))
    return "/".join(parts) or "leaf"


def save(path, tree, *, format: str | None = None) -> None:
    """Write a pytree of arrays to `path`, atomically; the directory is created if missing. format: "npz" (default)
    or "safetensors" (the default for a path ending in .safetensors)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"funcnn.save: {path} is a directory; give a file name (params.npz, say)")
    format = _format(path, format)
    _check_leaves(path, tree)
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    arrays, dtypes = [], []
    for _, leaf in flat:
        array, dtype = _to_numpy(leaf)
        arrays.append(array)
        dtypes.append(dtype)
    meta = {"format": FORMAT, "version": VERSION, "num_leaves": len(arrays), "dtypes": dtypes,
            "skeleton": _skeleton(tree, []), "treedef": str(treedef),
            "paths": [jax.tree_util.keystr(keypath) for keypath, _ in flat]}  # what load(like=) compares
    with atomic_path(path, suffix="." + format) as tmp:
        if format == "npz":
            with open(tmp, "wb") as f:
                np.savez(f, __funcnn__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                         **{f"leaf_{i}": a for i, a in enumerate(arrays)})
                f.flush()
                os.fsync(f.fileno())
        else:
            names = [_key_name(keypath) for keypath, _ in flat]
            if len(set(names)) != len(names):
                names = [f"{i}:{n}" for i, n in enumerate(names)]
            meta["names"], meta["shapes"] = names, [list(a.shape) for a in arrays]  # 0-d tensors come back (1,)
            save_file({n: np.ascontiguousarray(a) for n, a in zip(names, arrays)}, tmp,
                      metadata={"__funcnn__": json.dumps(meta)})


def _umask() -> int:
    """The process's umask (read by setting it and putting it back: POSIX has no other way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """A temporary file beside `path` to write; renamed over `path` when the block ends, deleted if it raises. A
    reader never sees a half-written file, and a failure leaves what `path` held before (the directory is created
    if missing)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes 0600 (and a writer may replace the file): give it the mode any other file written here gets
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_npz(path):
    with np.load(path, allow_pickle=False) as archive:
        if "__funcnn__" not in archive.files:
            raise CorruptFileError(f"funcnn.load: {path} is an .npz archive but not one written by funcnn.save")
        meta = json.loads(archive["__funcnn__"].tobytes().decode())
        return meta, [archive[f"leaf_{i}"] for i in range(len(meta["dtypes"]))]


def _read_safetensors(path):
    """(meta, arrays), or (None, {name: array}) for a file another tool wrote."""
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
        if "__funcnn__" not in metadata:
            return None, {name: f.get_tensor(name) for name in f.keys()}
        meta = json.loads(metadata["__funcnn__"])
        return meta, [f.get_tensor(name).reshape(shape) for name, shape in zip(meta["names"], meta["shapes"])]


def _read(path: str, who: str):
    """(metadata, arrays) of a file: metadata None and {name: array} for a .safetensors file another tool wrote."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{who}: no such file: {path}")
    try:
        meta, arrays = _read_safetensors(path) if path.endswith(".safetensors") else _read_npz(path)
        if meta is None:
            return None, arrays
        arrays = [a.view(jnp.bfloat16) if dtype == "bfloat16" else a for a, dtype in zip(arrays, meta["dtypes"])]
    except Exception as err:  # noqa: BLE001 - zip, zlib, npy-header, safetensors and JSON errors of a damaged file
        if isinstance(err, CorruptFileError):
            raise
        raise CorruptFileError(f"{who}: {path} is not a complete funcnn file (truncated, corrupt or another "
                               f"format): {type(err).__name__}: {err}") from err
    if meta.get("format") != FORMAT or meta.get("version", 0) > VERSION:
        raise CorruptFileError(f"{who}: {path} has format {meta.get('format')} v{meta.get('version')}, "
                               f"expected {FORMAT} v<={VERSION}")
    return meta, arrays


def load_flat(path) -> dict:
    """{key path: array} of a file `save` wrote (key paths as jax.tree_util.keystr writes them, e.g.
    "['counters']['epoch']"), with no template: a few entries of a checkpoint whose tree holds custom nodes."""
    path = os.fspath(path)
    meta, arrays = _read(path, "funcnn.io.load_flat")
    if meta is None or "paths" not in meta:
        raise CorruptFileError(f"funcnn.io.load_flat: {path} records no key paths (written by another tool or an "
                               "older funcnn): use funcnn.load")
    return {k: jnp.asarray(a) for k, a in zip(meta["paths"], arrays)}


def load(path, like=None):
    """Read a pytree written by `save` (.npz or .safetensors). With `like`, the leaves are placed into like's tree
    structure, their shapes and dtypes checked against it (and NumPy leaves of `like` come back as NumPy arrays,
    bit for bit); without, the saved skeleton (dicts / lists / tuples) is rebuilt. A .safetensors file that another
    tool wrote loads (without `like`) as its flat {name: array} dict.

    Raises FileNotFoundError for a missing file and CorruptFileError (a ValueError) naming the file for a truncated
    file, a file of another format, or a structure, shape or dtype that does not match `like`.
    """
    path = os.fspath(path)
    meta, arrays = _read(path, "funcnn.load")
    if meta is None:
        if like is not None:
            raise CorruptFileError(f"funcnn.load: {path} was not written by funcnn.save, so like= cannot place "
                                   "its tensors; load it without like")
        return {name: jnp.asarray(a) for name, a in arrays.items()}
    if like is not None:
        flat, treedef = jax.tree_util.tree_flatten_with_path(like)
        if len(flat) != len(arrays):
            saved = meta["treedef"] if len(meta["treedef"]) <= 300 else meta["treedef"][:300] + " ..."
            raise CorruptFileError(f"funcnn.load: {path} holds {len(arrays)} arrays but the template has "
                                   f"{len(flat)} (saved structure: {saved})")
        saved_paths = meta.get("paths")  # absent in files written before funcnn recorded them: positions only
        wanted = [jax.tree_util.keystr(keypath) for keypath, _ in flat]
        if saved_paths is not None and saved_paths != wanted:
            i = next(i for i, (a, b) in enumerate(zip(saved_paths, wanted)) if a != b)
            raise CorruptFileError(f"funcnn.load: {path}: leaf {i} is {saved_paths[i] or '(the root)'} in the file "
                                   f"but {wanted[i] or '(the root)'} in the template: the key paths differ (a tree "
                                   "of another model, or renamed layers)")
        leaves = []
        for (keypath, t), array in zip(flat, arrays):
            where = jax.tree_util.keystr(keypath) or "(the root)"
            if tuple(np.shape(t)) != tuple(array.shape):
                raise CorruptFileError(f"funcnn.load: {path}: the array at {where} has shape {array.shape}, the "
                                       f"template expects {tuple(np.shape(t))}")
            if hasattr(t, "dtype") and np.dtype(t.dtype) != array.dtype:
                raise CorruptFileError(f"funcnn.load: {path}: the array at {where} has dtype {array.dtype}, the "
                                       f"template expects {np.dtype(t.dtype)}")
            leaves.append(array if isinstance(t, (np.ndarray, np.generic)) else jnp.asarray(array))
        return jax.tree_util.tree_unflatten(treedef, leaves)
    if meta["skeleton"] is None:
        names = ", ".join(sorted(set(re.findall(r"namedtuple\[(\w+)\]", meta["treedef"])))) or "custom nodes"
        raise ValueError(f"funcnn.load: {path} holds a tree with custom node types ({names}); pass like=<a tree of "
                         "the same structure>")
    return _rebuild(meta["skeleton"], [jnp.asarray(a) for a in arrays])
