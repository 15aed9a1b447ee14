"""Activations: relu, sigmoid, tanh (elementwise) and softmax, log_softmax (over one axis).

Gradients (lecture 004, "Backpropagating through the activation": dDiv/dz = dDiv/dy f'(z)); each local derivative
is written in terms of the output y, which is the residual kept from the forward pass:

    relu:        dz = g * (y > 0)                    (0 at z = 0)
    sigmoid:     dz = g * y (1 - y)
    tanh:        dz = g * (1 - y^2)
    softmax:     dz = y * (g - sum_j g_j y_j)
    log_softmax: dz = g - softmax(z) * sum_j g_j
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .checks import accumulation_dtype, as_float, reverse_mode_only


def _elementwise(name: str, forward, local_derivative, doc: str):
    """An elementwise activation y = f(z) whose derivative f'(z) is a function of y alone."""

    @jax.custom_vjp
    def prim(z):
        acc = accumulation_dtype(z.dtype)
        return forward(z.astype(acc)).astype(z.dtype)

    def fwd(z):
        y = prim(z)
        return y, y

    def bwd(y, g):
        return ((g * local_derivative(y)).astype(y.dtype),)

    prim.defvjp(fwd, bwd)

    @reverse_mode_only(name)
    def activation(z):
        return prim(as_float(name, "z", z))

    activation.__name__ = activation.__qualname__ = name
    activation.__doc__ = doc
    return activation


relu = _elementwise(
    "relu",
    lambda z: jnp.maximum(z, jnp.zeros((), z.dtype)),
    lambda y: y > 0,
    "max(z, 0) elementwise (NaN propagates). Gradient: g * (z > 0); the derivative at z = 0 is taken as 0.",
)
sigmoid = _elementwise(
    "sigmoid",
    jax.nn.sigmoid,
    lambda y: y * (1 - y),
    "1 / (1 + exp(-z)) elementwise. Gradient: g * y * (1 - y).",
)
tanh = _elementwise(
    "tanh",
    jnp.tanh,
    lambda y: 1 - y * y,
    "tanh(z) elementwise. Gradient: g * (1 - y^2).",
)


def _softmax(z, axis):
    shifted = z - jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def _log_softmax(z, axis):
    shifted = z - jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def _over_axis(forward, backward):
    """A primitive over one axis, y = forward(z, axis), whose backward(y, g, axis) needs only the output y."""

    @partial(jax.custom_vjp, nondiff_argnums=(1,))
    def prim(z, axis):
        return forward(z.astype(accumulation_dtype(z.dtype)), axis).astype(z.dtype)

    def fwd(z, axis):
        y = prim(z, axis)
        return y, y

    def bwd(axis, y, g):
        return (backward(y, g, axis),)

    prim.defvjp(fwd, bwd)
    return prim


# dz_i = y_i (g_i - sum_j g_j y_j)
_softmax_p = _over_axis(_softmax, lambda y, g, axis: y * (g - jnp.sum(g * y, axis=axis, keepdims=True)))
# dz_i = g_i - softmax(z)_i sum_j g_j, with softmax(z) = exp(log_softmax(z))
_log_softmax_p = _over_axis(_log_softmax, lambda y, g, axis: g - jnp.exp(y) * jnp.sum(g, axis=axis, keepdims=True))


def _check_axis(name, z, axis):
    if not isinstance(axis, int) or not -z.ndim <= axis < z.ndim:
        raise ValueError(f"{name}: axis must be an int in [-{z.ndim}, {z.ndim}) for z of shape {z.shape}, got {axis!r}")
    return axis % z.ndim


@reverse_mode_only("softmax")
def softmax(z, axis=-1):
    """exp(z_i) / sum_j exp(z_j) along `axis`. Gradient: y * (g - sum(g * y))."""
    z = as_float("softmax", "z", z)
    return _softmax_p(z, _check_axis("softmax", z, axis))


@reverse_mode_only("log_softmax")
def log_softmax(z, axis=-1):
    """z_i - log sum_j exp(z_j) along `axis`. Gradient: g - softmax(z) * sum(g)."""
    z = as_float("log_softmax", "z", z)
    return _log_softmax_p(z, _check_axis("log_softmax", z, axis))


from ..verify.registry import register_cases  # noqa: E402


@register_cases("relu", "sigmoid", "tanh", "softmax", "log_softmax")
def _verify_cases(make):
    from ..verify import reference as ref

    for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax"):
        yield make.case(name, "(4, 6)", globals()[name], getattr(ref, name), make.normal(4, 6))
    yield make.case("softmax", "axis=0", lambda z: softmax(z, axis=0), lambda z: ref.softmax(z, axis=0),
                    make.normal(4, 6), quick=False)
    yield make.case("relu", "zeros on purpose (the kink)", relu, ref.relu,
                    make.normal(3, 5) * (make.normal(3, 5) > 0), quick=False)
