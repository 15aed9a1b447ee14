"""Dense (fully-connected) layer: z = x W + b over the last axis of x.

Gradients (lecture 001 / 004, backprop through the affine map):

    dX[..., i] = sum_o g[..., o] W[i, o]          (g W^T)
    dW[i, o]   = sum_n x[n, i] g[n, o]            (x^T g, leading axes flattened into n)
    db[o]      = sum_n g[n, o]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .checks import accumulation_dtype, as_array, float_dtype, reverse_mode_only


def _matmul(a, b):
    return jnp.matmul(a, b, preferred_element_type=accumulation_dtype(a.dtype)).astype(a.dtype)


@jax.custom_vjp
def _dense_p(x, w, b):
    z = _matmul(x, w)
    return z if b is None else z + b


def _dense_p_fwd(x, w, b):
    return _dense_p(x, w, b), (x, w, b)


def _dense_p_bwd(res, g):
    x, w, b = res
    dx = _matmul(g, w.T)
    dw = _matmul(x.reshape(-1, x.shape[-1]).T, g.reshape(-1, g.shape[-1]))
    db = None if b is None else jnp.sum(g.reshape(-1, g.shape[-1]), axis=0).astype(b.dtype)
    return dx, dw, db


_dense_p.defvjp(_dense_p_fwd, _dense_p_bwd)


@reverse_mode_only("dense")
def dense(x, w, b=None):
    """z = x W + b: x (..., D_in), w (D_in, D_out), b (D_out,) -> (..., D_out). Gradients: g W^T, x^T g, sum g."""
    x, w = as_array("dense", "x", x), as_array("dense", "w", w)
    b = None if b is None else as_array("dense", "b", b)
    if x.ndim < 1 or w.ndim != 2:
        raise ValueError(f"dense: x must have rank >= 1 and w rank 2 (D_in, D_out), got x {x.shape}, w {w.shape}")
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"dense: x has {x.shape[-1]} features (shape {x.shape}) but w expects {w.shape[0]} "
                         f"(w shape {w.shape})")
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"dense: b must have shape ({w.shape[1]},) to match w shape {w.shape}, got {b.shape}")
    dtype = float_dtype("dense", x, w, b)
    return _dense_p(x.astype(dtype), w.astype(dtype), None if b is None else b.astype(dtype))


from ..verify.registry import register_cases  # noqa: E402


@register_cases("dense")
def _verify_cases(make):
    from ..verify import reference as ref

    yield make.case("dense", "(5, 7) x (7, 4)", dense, ref.dense, make.normal(5, 7), make.normal(7, 4), make.normal(4))
    yield make.case("dense", "(2, 3, 7) x (7, 4), no bias", lambda x, w: dense(x, w), lambda x, w: ref.dense(x, w),
                    make.normal(2, 3, 7), make.normal(7, 4))
