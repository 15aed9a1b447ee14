"""The one timing loop the JAX benchmark scripts share (imported by its file name: the scripts run from this folder)."""

from __future__ import annotations

import statistics
import time

import jax


def median_seconds(fun, args, calls: int) -> float:
    """The median wall time of `calls` calls of fun(*args), each waited for with `jax.block_until_ready`."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fun(*args))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
