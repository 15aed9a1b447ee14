"""Datasets as NHWC float32 arrays in [0, 1] with integer labels, split into train / validation / test."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from .. import catalog
from .files import DataError, cache_dir, fetch, read_cifar10_archive, read_idx


class Split(NamedTuple):
    x: np.ndarray  # (n, H, W, C) float32 in [0, 1]
    y: np.ndarray  # (n,) int32


class Dataset(NamedTuple):
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: tuple


def _split_off(x, y, fraction: float, seed: int):
    """Shuffle with a fixed seed and cut off `fraction` of the examples: (rest, cut)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_cut = int(round(len(x) * fraction))
    cut, rest = order[:n_cut], order[n_cut:]
    return Split(x[rest], y[rest]), Split(x[cut], y[cut])


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (n, H, W, C) images to (n, size, size, C)."""
    images = np.asarray(images, np.float32)
    return np.asarray(jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]), "linear"))


def digits(size: int = 32, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The 8x8 handwritten digits that scikit-learn ships (1797 images, 10 classes), bilinearly resized to
    size x size (32 for LeNet-5), scaled to [0, 1]; test and validation sets split off with a fixed seed."""
    from sklearn.datasets import load_digits  # here: scikit-learn takes about a second to import; digits alone reads it

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    if size != 8:
        x = np.clip(resize(x, size), 0.0, 1.0)
    y = bunch.target.astype(np.int32)
    rest, test = _split_off(x, y, test_fraction, seed)
    train, val = _split_off(rest.x, rest.y, val_fraction / (1 - test_fraction), seed + 1)
    return Dataset("digits", train, val, test, 10, tuple(str(i) for i in range(10)))


# ----------------------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX), CIFAR-10 (python version)

MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SHA256 = {  # published checksums of the .gz files (tensorflow-datasets url_checksums)
    "mnist": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
              "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
              "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
              "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    "fashion_mnist": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                      "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                      "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                      "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def check_labels(labels, num_classes: int, source: str) -> np.ndarray:
    """Integer class labels in [0, num_classes), one per example; DataError naming `source`, the offending value
    and its index otherwise. Returns the labels as int32."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must be a 1-D array of class indices, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers (class indices), got dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataError(f"{source}: label {labels[bad[0]]} at index {bad[0]} is outside [0, {num_classes}) "
                        f"({bad.size} labels out of range)")
    return labels.astype(np.int32)


def _check_pairs(images, labels, source, image_ndim):
    if images.ndim != image_ndim or len(images) != len(labels):
        raise DataError(f"{source}: images of shape {images.shape} and {len(labels)} labels do not match "
                        f"(expected {image_ndim}-D images, one label each)")


def _idx_dataset(name, url, data_dir, download, val_fraction, seed, class_names):
    local = data_dir is not None
    directory = Path(data_dir) if local else cache_dir() / name
    if local and not directory.is_dir():
        raise DataError(f"data directory does not exist: {directory}")
    paths = [next((p for p in (directory / (stem + ".gz"), directory / stem) if p.exists()), None)
             for stem in IDX_FILES]
    missing = [stem + ".gz" for stem, path in zip(IDX_FILES, paths) if path is None]
    if missing and not download:
        raise DataError(f"{name}: missing data files in {directory}: {', '.join(missing)} (or the same names without "
                        ".gz). Put them there and pass --data-dir (data_dir=), or pass --download (download=True) to "
                        "fetch the published files into " + str(directory))
    arrays = []
    for stem, digest, path in zip(IDX_FILES, SHA256[name], paths):
        if path is None:
            path = fetch(url + stem + ".gz", digest, directory)
        arrays.append((read_idx(path), path))
    (x_train, xp), (y_train, yp), (x_test, tp), (y_test, lp) = arrays
    _check_pairs(x_train, y_train, f"{xp} / {yp}", 3)
    _check_pairs(x_test, y_test, f"{tp} / {lp}", 3)
    y_train, y_test = check_labels(y_train, 10, str(yp)), check_labels(y_test, 10, str(lp))

    def to_float(images):
        return (images.astype(np.float32) / 255.0)[..., None]

    train, val = _split_off(to_float(x_train), y_train, val_fraction, seed)
    return Dataset(name, train, val, Split(to_float(x_test), y_test), 10, class_names)


def mnist(data_dir=None, *, download: bool = False, val_fraction: float = 1 / 12, seed: int = 0) -> Dataset:
    """MNIST from the four standard IDX files (.gz or not) in `data_dir`, or from the cache (downloaded there once,
    SHA-256 verified, when download=True). 28x28x1; 5000 training images are held out for validation."""
    return _idx_dataset("mnist", MNIST_URL, data_dir, download, val_fraction, seed, tuple(str(i) for i in range(10)))


def fashion_mnist(data_dir=None, *, download: bool = False, val_fraction: float = 1 / 12, seed: int = 0) -> Dataset:
    """Fashion-MNIST, same files and layout as `mnist`."""
    return _idx_dataset("fashion_mnist", FASHION_URL, data_dir, download, val_fraction, seed, FASHION_CLASSES)


def cifar10(data_dir=None, *, download: bool = False, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """CIFAR-10 from cifar-10-python.tar.gz (or the extracted cifar-10-batches-py folder) in `data_dir`, or from the
    cache (downloaded once, SHA-256 verified, when download=True). Parsed without unpickling code. 32x32x3."""
    local = data_dir is not None
    directory = Path(data_dir) if local else cache_dir() / "cifar10"
    if local and not directory.is_dir():
        raise DataError(f"data directory does not exist: {directory}")
    source = directory / "cifar-10-batches-py"
    if not source.is_dir():
        source = directory / "cifar-10-python.tar.gz"
        if not source.exists():
            if not download:
                raise DataError(f"cifar10: missing data file in {directory}: cifar-10-python.tar.gz (or an "
                                "extracted cifar-10-batches-py/). Put it there and pass --data-dir (data_dir=), or "
                                f"pass --download (download=True) to fetch the published file into {directory}")
            source = fetch(CIFAR10_URL, CIFAR10_SHA256, directory)
    x_train, y_train, x_test, y_test = read_cifar10_archive(source)
    y_train = check_labels(y_train, 10, f"{source} (training batches)")
    y_test = check_labels(y_test, 10, f"{source} (test_batch)")
    train, val = _split_off(x_train.astype(np.float32) / 255.0, y_train, val_fraction, seed)
    return Dataset("cifar10", train, val, Split(x_test.astype(np.float32) / 255.0, y_test), 10, CIFAR10_CLASSES)


# ----------------------------------------------------------------------------------------------------------------
# the lecture's "world's smallest network" data

PATTERNS3X3_CLASSES = ("horizontal", "vertical", "diagonal")


def patterns3x3(*, noise: float = 0.1, copies: int = 20, seed: int = 0) -> Dataset:
    """3x3 pixel patterns in three classes, for lecture 000's "world's smallest network".

    The lecture's figures did not survive the transcript, so the patterns are reconstructed: a horizontal line
    (3 placements), a vertical line (3 placements) and a diagonal (2 placements), each drawn `copies` times with
    Gaussian pixel noise of standard deviation `noise`, clipped to [0, 1]. Images (n, 3, 3, 1).
    """
    clean, labels = [], []
    for r in range(3):
        img = np.zeros((3, 3))
        img[r, :] = 1
        clean.append(img), labels.append(0)
        clean.append(img.T.copy()), labels.append(1)
    clean.append(np.eye(3)), labels.append(2)
    clean.append(np.fliplr(np.eye(3))), labels.append(2)
    clean, labels = np.stack(clean).astype(np.float32), np.asarray(labels, np.int32)
    rng = np.random.default_rng(seed)

    def noisy(n_copies):
        x = np.repeat(clean, n_copies, axis=0)
        x = np.clip(x + rng.normal(0, noise, x.shape), 0, 1).astype(np.float32)[..., None]
        return Split(x, np.repeat(labels, n_copies))

    return Dataset("patterns3x3", noisy(copies), noisy(max(copies // 4, 1)), noisy(max(copies // 4, 1)), 3,
                   PATTERNS3X3_CLASSES)


def spiral(points_per_class: int = 100, classes: int = 3, *, noise: float = 0.2, seed: int = 0):
    """The 2-D spiral data of CS231n's "linear vs neural network" demo: `classes` interleaved arms of
    points_per_class points each, angle noise of standard deviation `noise`. Returns (x (n, 2) float32 in about
    [-1, 1], y (n,) int32). No linear classifier separates the arms."""
    if points_per_class < 1 or classes < 2:
        raise ValueError(f"spiral: need points_per_class >= 1 and classes >= 2, got {points_per_class}, {classes}")
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, points_per_class), classes)
    label = np.repeat(np.arange(classes), points_per_class)
    angle = (label * 4.0 + radius * 4.0 + rng.normal(0.0, noise, radius.shape))
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1).astype(np.float32)
    return x, label.astype(np.int32)


LOADERS = {name: globals()[loader] for name, loader in catalog.DATASETS.items()}  # the table: funcnn.catalog


def takes(name: str, option: str) -> bool:
    """Whether the loader of dataset `name` takes `option` ("data_dir", "download")."""
    return option in inspect.signature(LOADERS[name]).parameters


def load(name: str, data_dir=None, *, download: bool = False, **kwargs) -> Dataset:
    """Load a dataset by name; ValueError listing the known names for an unknown one. The network is used only
    with download=True; a dataset that ships with an installed package takes neither data_dir nor download."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(LOADERS))}")
    if data_dir is not None:
        if not takes(name, "data_dir"):
            raise ValueError(f"dataset {name!r} ships with funcnn's dependencies and takes no data directory")
        kwargs["data_dir"] = data_dir
    if download:
        if not takes(name, "download"):
            raise ValueError(f"dataset {name!r} ships with funcnn's dependencies: there is nothing to download")
        kwargs["download"] = True
    return LOADERS[name](**kwargs)


def fit_to_shape(x: np.ndarray, shape) -> np.ndarray:
    """Adapt (n, H, W, C) images to a model's input (H', W', C'): zero-pad centrally when at most 4 pixels smaller
    (MNIST 28 -> LeNet's 32, as LeCun et al. did), resize bilinearly otherwise; replicate grey to RGB or average
    RGB to grey."""
    if len(shape) != 3 or x.ndim != 4:
        raise ValueError(f"images {tuple(x.shape[1:])} can be adapted to an image input (H, W, C) only, not to "
                         f"{tuple(shape)} (a clip or volume model: make its inputs from Python, as "
                         f"experiments/motion_clips.py does)")
    h, w, c = shape
    if x.shape[-1] != c:
        x = np.repeat(x, c, axis=-1) if x.shape[-1] == 1 else x.mean(-1, keepdims=True)
    dh, dw = h - x.shape[1], w - x.shape[2]
    if (dh, dw) == (0, 0):
        return x
    if 0 <= dh <= 4 and 0 <= dw <= 4:
        return np.pad(x, [(0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)])
    if h != w:
        raise ValueError(f"cannot adapt images of shape {x.shape[1:]} to a non-square input {shape}")
    return np.clip(resize(x, h), 0.0, 1.0)
