"""Dense (fully-connected) layer: z = x W + b over the last axis of x.

Bilinear in (x, W), so its tangent is the product rule and its transposes are the backward rules (lecture 001 / 004,
backprop through the affine map):

    dz = dx W + x dW (+ db)
    dX[..., i] = sum_o g[..., o] W[i, o]          (g W^T)
    dW[i, o]   = sum_n x[n, i] g[n, o]            (x^T g, leading axes flattened into n)
    db[o]      = sum_n g[n, o]                    (the transpose of the bias's broadcast)

Under vmap over the weights (replicas, ensembles) the op takes a stack of them, w (B, D_in, D_out) against x
(B, ..., D_in): one batched matmul, with the same two rules batched.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import carrier
from .arguments import accumulation_dtype, as_array, float_dtype, names_forward_mode_error
from .cases import cases_for


def _einsum(spec, a, b):
    return jnp.einsum(spec, a, b, preferred_element_type=accumulation_dtype(a.dtype)).astype(a.dtype)


def _dense_impl(x, w):
    """z = x W (w (D_in, D_out)), or per stacked weight z[b] = x[b] W[b] (w (B, D_in, D_out))."""
    return _einsum("...d,df->...f", x, w) if w.ndim == 2 else _einsum("b...d,bdf->b...f", x, w)


def _dense_transpose(g, x, w):
    """dX = g W^T and dW = x^T g (each only where asked for)."""
    stacked = len(w.shape) == 3
    dx = dw = None
    if carrier.undefined(x):
        dx = _einsum("b...f,bdf->b...d", g, w) if stacked else _einsum("...f,df->...d", g, w)
    if carrier.undefined(w):
        dw = _einsum("b...d,b...f->bdf", x, g) if stacked else _einsum("...d,...f->df", x, g)
    return dx, dw


def _batch(op, args, dims):
    """A mapped x alone: the op already takes any leading axes. Mapped weights: the stacked form."""
    (x, w), (dx, dw) = args, dims
    if dw is None:
        return DENSE(jnp.moveaxis(x, dx, 0), w), 0
    if w.ndim == 4:  # the mapped axis of weights already stacked (nested vmap): a loop over the outer stack
        return carrier.map_batch(op, args, dims)
    (x, w), _ = carrier.moved_to_front([x, w], [dx, dw])
    return DENSE(x, w), 0


DENSE = carrier.define("dense", _dense_impl, linear=(0, 1), multilinear=True, transpose=_dense_transpose,
                       batch=_batch)


@names_forward_mode_error("dense")
def dense(x, w, b=None):
    """z = x W + b: x (..., D_in), w (D_in, D_out), b (D_out,) -> (..., D_out). Tangent: dx W + x dW + db;
    gradients: g W^T, x^T g, sum g."""
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
    z = DENSE(x.astype(dtype), w.astype(dtype))
    return z if b is None else z + b.astype(dtype)




@cases_for("dense")
def dense_cases(make, ref):

    yield make.case("dense", "(5, 7) x (7, 4)", dense, ref.dense, make.normal(5, 7), make.normal(7, 4), make.normal(4))
    yield make.case("dense", "(2, 3, 7) x (7, 4), no bias", lambda x, w: dense(x, w), lambda x, w: ref.dense(x, w),
                    make.normal(2, 3, 7), make.normal(7, 4))
