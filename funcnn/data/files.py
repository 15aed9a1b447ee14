"""Reading the standard dataset files (IDX, the CIFAR-10 "python version"), and downloading them once, verified.

No code is ever unpickled: the CIFAR-10 batches are pickles, so they are read with a restricted unpickler that
admits only NumPy's array-reconstruction globals and plain containers (dict, list, bytes, str, numbers).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A missing, corrupt or unexpected data file; the message names the file."""


# ----------------------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST): big-endian header, magic = 0x00 0x00 <dtype code> <number of dimensions>

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed); DataError naming the file for a bad magic or truncation."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"missing data file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file: bad magic number {data[:4].hex() or '(empty)'}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: the header needs {header} bytes, the file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} is truncated or has trailing bytes: header says shape {shape} "
                        f"({expected} bytes), the file has {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray) -> None:
    """Write an IDX file (gzip-compressed when the name ends in .gz); used by the tests to build small files."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
    array = np.asarray(array)
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10 "python version": tar.gz of pickled dicts {b"data": uint8 (10000, 3072), b"labels": [int]}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Admits NumPy arrays and dtypes and nothing else that could run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def read_cifar_batch(data: bytes, name: str = "CIFAR batch") -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch -> (images uint8 (n, 32, 32, 3), labels int64 (n,))."""
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - any failure of a hostile or broken pickle is a data error
        raise DataError(f"{name} is not a valid CIFAR-10 batch: {err}") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{name} is not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    images = np.asarray(batch[b"data"], np.uint8)
    labels = np.asarray(batch[b"labels"], np.int64)
    if images.ndim != 2 or images.shape[1] != 3072 or len(labels) != len(images):
        raise DataError(f"{name}: data of shape {images.shape} with {len(labels)} labels; expected (n, 3072), n labels")
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_cifar10_archive(path):
    """(x_train, y_train, x_test, y_test) from cifar-10-python.tar.gz or an extracted cifar-10-batches-py folder."""
    path = Path(path)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    parts = {}
    if path.is_dir():
        for name in names:
            file = path / name
            if not file.exists():
                raise DataError(f"missing data file: {file}")
            parts[name] = read_cifar_batch(file.read_bytes(), str(file))
    else:
        if not path.exists():
            raise DataError(f"missing data file: {path}")
        try:
            with tarfile.open(path, "r:gz") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                for name in names:
                    if name not in members:
                        raise DataError(f"{path} has no member {name}")
                    parts[name] = read_cifar_batch(tar.extractfile(members[name]).read(), f"{path}:{name}")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError(f"{path} is not a readable CIFAR-10 archive: {err}") from err
    x_train = np.concatenate([parts[n][0] for n in names[:5]])
    y_train = np.concatenate([parts[n][1] for n in names[:5]])
    return x_train, y_train, parts["test_batch"][0], parts["test_batch"][1]


# ----------------------------------------------------------------------------------------------------------------
# downloading once into a cache, with SHA-256 verification


def cache_dir() -> Path:
    """$FUNCNN_DATA, else $XDG_CACHE_HOME/funcnn, else ~/.cache/funcnn."""
    if os.environ.get("FUNCNN_DATA"):
        return Path(os.environ["FUNCNN_DATA"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "funcnn"


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path, expected_sha256: str) -> Path:
    actual = sha256(path)
    if actual != expected_sha256:
        raise DataError(f"{path} has SHA-256 {actual}, expected {expected_sha256}: the file is corrupt or not the "
                        "published one; delete it to download again")
    return Path(path)


def fetch(url: str, expected_sha256: str, directory, filename: str | None = None, *, download: bool = True,
          timeout: float = 60.0) -> Path:
    """The file for `url` in `directory`: verified if present, else downloaded (atomically) and verified."""
    directory = Path(directory)
    target = directory / (filename or url.rsplit("/", 1)[-1])
    if target.exists():
        return verify(target, expected_sha256)
    if not download:
        raise DataError(f"missing data file: {target} (download=False)")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        actual = sha256(tmp)
        if actual != expected_sha256:
            raise DataError(f"{target} (downloaded from {url}) has SHA-256 {actual}, expected {expected_sha256}: "
                            "not the published file; it was not kept")
        os.replace(tmp, target)
    except OSError as err:
        raise DataError(f"could not download {url} into {directory}: {err}. Put the file there by hand, or pass "
                        "data_dir= pointing at a folder that holds it") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
