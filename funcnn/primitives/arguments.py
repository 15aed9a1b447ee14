"""Argument checks and dtype rules shared by the primitive families.

Every check runs at trace time on static shapes and dtypes and raises before any computation, with a message that
names the primitive, the argument and the shapes involved.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import carrier


def check_rank(name: str, arg: str, shape, rank: int, layout: str):
    if len(shape) != rank:
        raise ValueError(f"{name}: {arg} must have rank {rank} ({layout}), got shape {tuple(shape)}")


def as_array(name: str, arg: str, value):
    """`value` as a JAX array; TypeError naming the argument when it is not numeric (a string, an object, None)."""
    if isinstance(value, (jax.Array, np.ndarray)) and value.dtype != object:
        return jnp.asarray(value)
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{name}: {arg} must be an array of numbers, got {type(value).__name__} {value!r:.60}")
    try:
        array = np.asarray(value) if not isinstance(value, jax.core.Tracer) else value
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: {arg} must be an array of numbers, got {type(value).__name__}: {err}") from None
    if not isinstance(array, jax.core.Tracer) and (array.dtype == object or array.dtype.kind in "USV"):
        raise TypeError(f"{name}: {arg} must be an array of numbers, got {type(value).__name__} of dtype "
                        f"{array.dtype} ({value!r:.60})")
    return jnp.asarray(array)


def float_dtype(name: str, *arrays):
    """The common floating dtype of the arrays (None entries ignored); TypeError for integer or bool inputs."""
    dtype = jnp.result_type(*[a for a in arrays if a is not None])
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating-point inputs, got dtype {dtype}")
    return dtype


def as_float(name: str, arg: str, value):
    """`value` as a floating JAX array (float32 / float64 / bfloat16 / float16 kept); TypeError naming the argument
    for non-numeric, integer or boolean input."""
    array = as_array(name, arg, value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(f"{name}: {arg} must be floating-point (float32, float64, bfloat16, float16), got dtype "
                        f"{array.dtype} with shape {tuple(array.shape)}")
    return array


def check_nonempty_spatial(name: str, arg: str, shape):
    """Reductions over the spatial axes need at least one position: an (N, H, 0, C) input has no mean or max."""
    if any(d == 0 for d in shape[1:-1]):
        raise ValueError(f"{name}: {arg} has an empty spatial axis (shape {tuple(shape)}); every spatial size must "
                         "be >= 1")


def accumulation_dtype(dtype):
    """float32 accumulation for bfloat16 / float16 inputs, the input dtype otherwise."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


def names_forward_mode_error(name: str) -> Callable:
    """Where the primitives run in their fallback form (`carrier.MODE == "custom_vjp"`: a JAX outside the tested
    range), re-raise JAX's forward-mode error with a message that names the funcnn primitive and why."""

    def decorate(fun):
        @functools.wraps(fun)
        def wrapper(*args, **kwargs):
            try:
                return fun(*args, **kwargs)
            except carrier.ForwardModeError as err:  # every op converts JAX's error; name the public function
                raise carrier.ForwardModeError(carrier.forward_mode_message(f"funcnn.{name}")) from err

        return wrapper

    return decorate


__all__ = ["check_rank", "as_array", "as_float", "float_dtype", "check_nonempty_spatial", "accumulation_dtype",
           "names_forward_mode_error"]
