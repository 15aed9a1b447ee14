"""A batching iterator: shuffling by PRNG key, optional drop-last, a start position for resuming, on-device prefetch."""

from __future__ import annotations

import collections
import itertools
import math

import jax
import numpy as np


def epoch_order(n: int, key=None) -> np.ndarray:
    """The example order of one epoch: a permutation drawn from `key`, or 0..n-1 without a key."""
    if key is None:
        return np.arange(n)
    return np.asarray(jax.random.permutation(key, n))


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def batch_indices(n: int, batch_size: int, *, key=None, drop_last: bool = False, start: int = 0):
    """The example indices of each batch of one epoch over n examples, from batch `start` on: the one place an
    epoch is cut into batches (`batches`, `fit`'s multi-process rows and `fit_replicas` all take theirs from here).

    key: the order is jax.random.permutation(key, n) (same key, same order); None keeps 0..n-1.
    drop_last: leave out a final partial batch (a compiled step then sees one shape only)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = epoch_order(n, key)
    for i in range(start, num_batches(n, batch_size, drop_last)):
        yield order[i * batch_size:(i + 1) * batch_size]


def batches(x, y, batch_size: int, *, key=None, drop_last: bool = False, start: int = 0, prefetch: int = 2):
    """Yield (x_batch, y_batch) device arrays over one epoch.

    x and y may be arrays or pytrees of arrays (e.g. y = (labels, boxes)) whose leaves share the leading length.

    key: shuffle with jax.random.permutation(key, n) (same key, same order); None keeps the order.
    drop_last: skip a final partial batch (a jit-compiled step then sees one shape only).
    start: the index of the first batch to yield (resuming mid-epoch gives the same remaining batches).
    prefetch: how many batches are transferred to the device ahead of the one being used.
    """
    lengths = {len(leaf) for leaf in jax.tree.leaves((x, y))}
    if len(lengths) != 1:
        shapes = jax.tree.map(lambda a: tuple(a.shape), (x, y))
        raise ValueError(f"x and y must have the same length, got shapes {shapes}")
    indices = batch_indices(lengths.pop(), batch_size, key=key, drop_last=drop_last, start=start)
    queue = collections.deque(jax.device_put(jax.tree.map(lambda a: a[index], (x, y)))
                              for index in itertools.islice(indices, max(prefetch, 1)))
    while queue:
        batch = queue.popleft()
        for index in itertools.islice(indices, 1):  # the next transfer starts before this batch is used
            queue.append(jax.device_put(jax.tree.map(lambda a: a[index], (x, y))))
        yield batch
