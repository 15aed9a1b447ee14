"""A batching iterator: shuffling by PRNG key, optional drop-last, a start position for resuming, on-device prefetch."""

from __future__ import annotations

import collections
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


def batches(x, y, batch_size: int, *, key=None, drop_last: bool = False, start: int = 0, prefetch: int = 2):
    """Yield (x_batch, y_batch) device arrays over one epoch.

    x and y may be arrays or pytrees of arrays (e.g. y = (labels, boxes)) whose leaves share the leading length.

    key: shuffle with jax.random.permutation(key, n) (same key, same order); None keeps the order.
    drop_last: skip a final partial batch (a jit-compiled step then sees one shape only).
    start: the index of the first batch to yield (resuming mid-epoch gives the same remaining batches).
    prefetch: how many batches are transferred to the device ahead of the one being used.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = {len(leaf) for leaf in jax.tree.leaves((x, y))}
    if len(lengths) != 1:
        shapes = jax.tree.map(lambda a: tuple(a.shape), (x, y))
        raise ValueError(f"x and y must have the same length, got shapes {shapes}")
    n = lengths.pop()
    order = epoch_order(n, key)
    total = num_batches(n, batch_size, drop_last)
    queue = collections.deque()

    def put(i):
        index = order[i * batch_size:(i + 1) * batch_size]
        return jax.device_put(jax.tree.map(lambda a: a[index], (x, y)))

    next_index = start
    while next_index < total and len(queue) < max(prefetch, 1):
        queue.append(put(next_index))
        next_index += 1
    while queue:
        batch = queue.popleft()
        if next_index < total:
            queue.append(put(next_index))
            next_index += 1
        yield batch
