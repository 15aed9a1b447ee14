"""Activations: relu, sigmoid, tanh (elementwise) and softmax, log_softmax (over one axis).

Tangent rules, each linear in dz and written in terms of the output y (the residual kept from the forward pass),
and the backward rules they transpose to (lecture 004, "Backpropagating through the activation": dDiv/dz =
dDiv/dy f'(z)):

    relu:        dy = dz * (y > 0)                    g * (y > 0)           (0 at z = 0)
    sigmoid:     dy = dz * y (1 - y)                  g * y (1 - y)
    tanh:        dy = dz * (1 - y^2)                  g * (1 - y^2)
    softmax:     dy = y * (dz - sum_j y_j dz_j)       y * (g - sum_j g_j y_j)
    log_softmax: dy = dz - sum_j softmax(z)_j dz_j    g - softmax(z) * sum_j g_j

Each tangent rule is a few multiplications and sums by coefficients computed from y; JAX transposes them into the
backward rule on the right (the elementwise Jacobians are diagonal, softmax's symmetric, log-softmax's I - 1 s^T
transposes to I - s 1^T), and nothing else runs in reverse mode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import carrier
from .arguments import accumulation_dtype, as_float, names_forward_mode_error
from .cases import cases_for


def _elementwise_batch(op, args, dims):
    """An elementwise op applies to any shape: a mapped argument is just a larger one."""
    return op(*args), dims[0]


def _elementwise(name: str, forward, local_derivative, doc: str):
    """An elementwise activation y = f(z) whose derivative f'(z) is a function of y alone: dy = dz * f'(y)."""

    def impl(z):
        return forward(z.astype(accumulation_dtype(z.dtype))).astype(z.dtype)

    def tangent(args, y, tangents):
        return (tangents[0] * local_derivative(y)).astype(tangents[0].dtype)

    op = carrier.define(name, impl, tangent=tangent, batch=_elementwise_batch)

    @names_forward_mode_error(name)
    def activation(z):
        return op(as_float(name, "z", z))

    activation.__name__ = activation.__qualname__ = name
    activation.__doc__ = doc
    return activation


relu = _elementwise(
    "relu",
    lambda z: jnp.maximum(z, jnp.zeros((), z.dtype)),
    lambda y: y > 0,
    "max(z, 0) elementwise (NaN propagates). Tangent dz * (z > 0), gradient g * (z > 0); the derivative at z = 0 "
    "is taken as 0.",
)
sigmoid = _elementwise(
    "sigmoid",
    jax.nn.sigmoid,
    lambda y: y * (1 - y),
    "1 / (1 + exp(-z)) elementwise. Tangent dz * y * (1 - y), gradient g * y * (1 - y).",
)
tanh = _elementwise(
    "tanh",
    jnp.tanh,
    lambda y: 1 - y * y,
    "tanh(z) elementwise. Tangent dz * (1 - y^2), gradient g * (1 - y^2).",
)


def _softmax(z, axis):
    shifted = z - jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def stable_log_softmax(z, axis):
    """z - log sum exp(z) along `axis`, shifted by the max (log-sum-exp): no overflow for large logits."""
    shifted = z - jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def _over_axis(name, forward, tangent):
    """An op over one axis, y = forward(z, axis), whose tangent(y, dz, axis) needs only the output y."""

    def impl(z, *, axis):
        return forward(z.astype(accumulation_dtype(z.dtype)), axis).astype(z.dtype)

    def batch(op, args, dims, *, axis):  # the mapped axis first, the op's axis one further
        return op(jnp.moveaxis(args[0], dims[0], 0), axis=axis + 1), 0

    return carrier.define(name, impl, batch=batch,
                          tangent=lambda args, y, ts, *, axis: tangent(y, ts[0], axis).astype(ts[0].dtype))


# dy_i = y_i (dz_i - sum_j y_j dz_j)
_SOFTMAX = _over_axis("softmax", _softmax, lambda y, t, axis: y * (t - jnp.sum(y * t, axis=axis, keepdims=True)))
# dy_i = dz_i - sum_j softmax(z)_j dz_j, with softmax(z) = exp(log_softmax(z))
_LOG_SOFTMAX = _over_axis("log_softmax", stable_log_softmax,
                          lambda y, t, axis: t - jnp.sum(jnp.exp(y) * t, axis=axis, keepdims=True))


def _check_axis(name, z, axis):
    if not isinstance(axis, int) or not -z.ndim <= axis < z.ndim:
        raise ValueError(f"{name}: axis must be an int in [-{z.ndim}, {z.ndim}) for z of shape {z.shape}, got {axis!r}")
    return axis % z.ndim


@names_forward_mode_error("softmax")
def softmax(z, axis=-1):
    """exp(z_i) / sum_j exp(z_j) along `axis`. Tangent y * (dz - sum(y * dz)); gradient y * (g - sum(g * y))."""
    z = as_float("softmax", "z", z)
    return _SOFTMAX(z, axis=_check_axis("softmax", z, axis))


@names_forward_mode_error("log_softmax")
def log_softmax(z, axis=-1):
    """z_i - log sum_j exp(z_j) along `axis`. Tangent dz - sum(softmax(z) dz); gradient g - softmax(z) * sum(g)."""
    z = as_float("log_softmax", "z", z)
    return _LOG_SOFTMAX(z, axis=_check_axis("log_softmax", z, axis))




@cases_for("relu", "sigmoid", "tanh", "softmax", "log_softmax")
def activation_cases(make, ref):

    for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax"):
        yield make.case(name, "(4, 6)", globals()[name], getattr(ref, name), make.normal(4, 6))
    yield make.case("softmax", "axis=0", lambda z: softmax(z, axis=0), lambda z: ref.softmax(z, axis=0),
                    make.normal(4, 6), quick=False)
    yield make.case("relu", "zeros on purpose (the kink)", relu, ref.relu,
                    make.normal(3, 5) * (make.normal(3, 5) > 0), quick=False)
