"""save / load pytrees of arrays without pickle.

Format: a NumPy `.npz` archive (a zip of `.npy` files, read with allow_pickle=False) holding the leaves as
`leaf_0`, `leaf_1`, ... and a JSON `__funcnn__` entry with the format version, the tree skeleton (nested dicts,
lists, tuples and None) and each leaf's dtype (bfloat16 is stored as its uint16 bits). Trees with other node types
(optax states are NamedTuples) load with `like=`, a template of the same structure.

Writes are atomic: the archive goes to a temporary file in the same directory, is flushed to disk, and renamed over
the target, so a file at `path` is always complete, and a failed or interrupted save leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

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


def save(path, tree) -> None:
    """Write a pytree of arrays to `path` (an .npz archive), atomically; the directory is created if missing."""
    path = os.fspath(path)
    _check_leaves(path, tree)
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    skeleton = _skeleton(tree, [])
    arrays, dtypes = {}, []
    for i, leaf in enumerate(leaves):
        arrays[f"leaf_{i}"], dtype = _to_numpy(leaf)
        dtypes.append(dtype)
    meta = {"format": FORMAT, "version": VERSION, "num_leaves": len(leaves), "dtypes": dtypes,
            "skeleton": skeleton, "treedef": str(treedef)}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __funcnn__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path, like=None):
    """Read a pytree written by `save`. With `like`, the leaves are placed into like's tree structure, their shapes and
    dtypes checked against it (and NumPy leaves of `like` come back as NumPy arrays, bit for bit); without, the
    saved skeleton (dicts / lists / tuples) is rebuilt.

    Raises FileNotFoundError for a missing file and CorruptFileError (a ValueError) naming the file for a truncated
    file, a file of another format, or a structure, shape or dtype that does not match `like`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"funcnn.load: no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "__funcnn__" not in archive.files:
                raise CorruptFileError(f"funcnn.load: {path} is an .npz archive but not one written by funcnn.save")
            meta = json.loads(archive["__funcnn__"].tobytes().decode())
            arrays = []
            for i, dtype in enumerate(meta["dtypes"]):
                array = archive[f"leaf_{i}"]
                arrays.append(array.view(jnp.bfloat16) if dtype == "bfloat16" else array)
    except CorruptFileError:
        raise
    except Exception as err:  # noqa: BLE001 - zip, zlib, npy-header and JSON errors of a damaged file alike
        raise CorruptFileError(f"funcnn.load: {path} is not a complete funcnn file (truncated, corrupt or another "
                               f"format): {type(err).__name__}: {err}") from err
    if meta.get("format") != FORMAT or meta.get("version", 0) > VERSION:
        raise CorruptFileError(f"funcnn.load: {path} has format {meta.get('format')} v{meta.get('version')}, "
                               f"expected {FORMAT} v<={VERSION}")
    if like is not None:
        flat, treedef = jax.tree_util.tree_flatten_with_path(like)
        if len(flat) != len(arrays):
            raise CorruptFileError(f"funcnn.load: {path} holds {len(arrays)} arrays but the template has "
                                   f"{len(flat)} (saved structure: {meta['treedef']})")
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
        raise ValueError(f"funcnn.load: {path} holds a tree with custom node types ({meta['treedef']}); "
                         "pass like=<a tree of the same structure>")
    return _rebuild(meta["skeleton"], [jnp.asarray(a) for a in arrays])
