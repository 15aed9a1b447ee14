"""Data: loaders (digits ships with scikit-learn; MNIST, Fashion-MNIST and CIFAR-10 from their standard files),
a batching iterator, and augmentation."""

from . import augment
from .batching import batches, epoch_order, num_batches
from .datasets import (LOADERS, Dataset, Split, check_labels, cifar10, digits, fashion_mnist, fit_to_shape, load,
                       mnist, patterns3x3, resize, spiral)
from .scenes import Scenes, make_scenes
from .files import DataError, read_cifar10_archive, read_idx, write_idx

__all__ = ["check_labels", "augment", "batches", "epoch_order", "num_batches", "Dataset", "Split", "cifar10", "digits",
           "fashion_mnist", "fit_to_shape", "load", "mnist", "patterns3x3", "resize", "LOADERS", "DataError",
           "read_cifar10_archive", "read_idx", "write_idx",
           "Scenes", "make_scenes", "spiral"]
