"""The convolution's rules: forward, residuals and backward of `conv` and `conv_transpose`, as `jax.custom_vjp`s.

Layout: activations (N, *spatial, C), filters (*K, C_in/G, C_out). Correlation form, as in the lecture ("don't flip
the kernel"), i and u running over the spatial axes:

    z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f] + b[f]

Gradients, for the incoming cotangent g = dL/dz (lecture 004, "Computing the derivative for Y(l-1,m)", "Overall
algorithm", "The derivatives for the weights"):

    dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]       upsample g by S, zero-pad by K_eff-1, convolve
                                                                  with the flipped, channel-swapped filter, crop the
                                                                  forward padding (`steps.py`, one step each)
    dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]  correlation of the padded input with upsampled g
    db[f]       = sum_{n, i} g[n, i, f]

The transposed (expanding) convolution is the conv's dX map, so its adjoint is the strided conv itself:

    y -> dX(y)                                                    (its forward: insert S-1 zeros, convolve)
    dY[n, i, f] = sum_{u, c} g_pad[n, S*i + D*u, c] * w[u, c, f]  (the forward conv applied to g)
    dW[u, c, f] = sum_{n, i} y[n, i, f] * g_pad[n, S*i + D*u, c]  (the conv's dW with input and g exchanged)

Which algorithm computes each rule is the table in `dispatch.py`; every path computes these same sums.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import dispatch
from .geometry import ConvSpec


def conv(x, w, spec: ConvSpec):
    """z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f] (no bias)."""
    return dispatch.run("forward", spec, w.shape, x.shape[1:-1], x, w)


def conv_dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]: the lecture's four dX steps."""
    return dispatch.run("dx", spec, w.shape, in_sizes, g, w)


def conv_dw(x, g, spec: ConvSpec, w_shape):
    """dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]."""
    return dispatch.run("dw", spec, w_shape, x.shape[1:-1], x, g)


def _with_bias(z, b):
    return z if b is None else z + b.astype(z.dtype)


def _bias_grad(g, b):
    """db[f] = sum over every axis but the channels of g."""
    return None if b is None else jnp.sum(g, axis=tuple(range(g.ndim - 1))).astype(b.dtype)


# ----------------------------------------------------------------------------------------------------------------
# conv


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def conv_p(x, w, b, spec: ConvSpec):
    if dispatch.is_recording():
        for role, rule in (("forward", "forward"), ("dX", "dx"), ("dW", "dw")):
            dispatch.note(role, rule, spec, w.shape, x.shape[1:-1])
    return _with_bias(conv(x, w, spec), b)


def _conv_fwd(x, w, b, spec):
    return conv_p(x, w, b, spec), (x, w, b)


def _conv_bwd(spec, res, g):
    x, w, b = res
    return conv_dx(g, w, spec, x.shape[1:-1]), conv_dw(x, g, spec, w.shape), _bias_grad(g, b)


conv_p.defvjp(_conv_fwd, _conv_bwd)


# ----------------------------------------------------------------------------------------------------------------
# conv_transpose


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def conv_transpose_p(y, w, b, spec: ConvSpec, out_sizes):
    if dispatch.is_recording():
        for role, rule in (("forward", "dx"), ("dY", "forward"), ("dW", "dw")):
            dispatch.note(role, rule, spec, w.shape, out_sizes)
    return _with_bias(conv_dx(y, w, spec, out_sizes), b)


def _conv_transpose_fwd(y, w, b, spec, out_sizes):
    return conv_transpose_p(y, w, b, spec, out_sizes), (y, w, b)


def _conv_transpose_bwd(spec, out_sizes, res, g):
    y, w, b = res
    return conv(g, w, spec), conv_dw(g, y, spec, w.shape), _bias_grad(g, b)


conv_transpose_p.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


__all__ = ["conv", "conv_dx", "conv_dw", "conv_p", "conv_transpose_p"]
