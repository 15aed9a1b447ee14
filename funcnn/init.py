"""Parameter initialisers: `init(key, shape, dtype) -> array`, with the fan-in / fan-out of conv filters right.

Shapes follow funcnn's layouts: dense (D_in, D_out), conv filters (*K, C_in / groups, C_out), transposed-conv filters
(*K, C_out, C_in). For a filter, fan_in = prod(K) * shape[-2] and fan_out = prod(K) * shape[-1] (the receptive field
times the channels on each side), as in Glorot & Bengio and He et al.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a dense matrix (D_in, D_out) or a filter (*K, C_in, C_out)."""
    if len(shape) < 2:
        raise ValueError(f"fans need a shape of rank >= 2, got {shape}")
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def _variance_scaling(scale: float, mode: str, distribution: str):
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(fan, 1)
        if distribution == "normal":
            return (jax.random.normal(key, shape, jnp.float32) * math.sqrt(variance)).astype(dtype)
        limit = math.sqrt(3 * variance)
        return jax.random.uniform(key, shape, jnp.float32, -limit, limit).astype(dtype)

    return init


he_normal = _variance_scaling(2.0, "fan_in", "normal")
he_normal.__doc__ = "N(0, 2 / fan_in) (He et al. 2015), for ReLU networks."
he_uniform = _variance_scaling(2.0, "fan_in", "uniform")
he_uniform.__doc__ = "U(-sqrt(6 / fan_in), sqrt(6 / fan_in))."
glorot_normal = _variance_scaling(1.0, "fan_avg", "normal")
glorot_normal.__doc__ = "N(0, 2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."
glorot_uniform = _variance_scaling(1.0, "fan_avg", "uniform")
glorot_uniform.__doc__ = "U(-sqrt(6 / (fan_in + fan_out)), sqrt(6 / (fan_in + fan_out)))."


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (biases)."""
    del key
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype=jnp.float32):
    """All ones (BatchNorm scale)."""
    del key
    return jnp.ones(shape, dtype)


def normal(stddev: float = 1e-2):
    """N(0, stddev^2) for any shape."""

    def init(key, shape, dtype=jnp.float32):
        return (jax.random.normal(key, shape, jnp.float32) * stddev).astype(dtype)

    return init


__all__ = ["fans", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "zeros", "ones", "normal"]
