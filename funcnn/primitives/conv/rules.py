"""The convolution's rules: three bilinear ops, each the transpose of the others, carried as JAX primitives.

Layout: activations (N, *spatial, C), filters (*K, C_in/G, C_out). Correlation form, as in the lecture ("don't flip
the kernel"), i and u running over the spatial axes:

    conv            z[n, i, f]  = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f]
    conv_transpose  dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]    upsample g by S, zero-pad by K_eff-1,
                                                                               convolve with the flipped,
                                                                               channel-swapped filter, crop the
                                                                               forward padding (`backward_steps.py`)
    conv_dw         dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]  correlation of the padded input
                                                                               with the upsampled g

(lecture 004, "Computing the derivative for Y(l-1,m)", "Overall algorithm", "The derivatives for the weights"; the
bias's db[f] = sum_{n, i} g[n, i, f] is the transpose of its broadcast, in `api.py`.)

Each is linear in each of its two arguments, so its tangent is the product rule, op(dA, B) + op(A, dB), and its
transposes are the other two ops (the lecture's backward rules):

    conv(x, w)              x-bar = conv_transpose(g, w)     w-bar = conv_dw(x, g)
    conv_transpose(g, w)    g-bar = conv(y-bar, w)           w-bar = conv_dw(y-bar, g)     (the transposed conv's
                                                                                          dY and dW)
    conv_dw(x, g)           x-bar = conv_transpose(g, W-bar) g-bar = conv(x, W-bar)

so every derivative of every order is again one of the three, each computed by the path the algorithm table
(`dispatch.py`) names in the op's `algorithm` parameter. The static parameters (window, stride, padding, dilation,
groups, a pinned path) are the `ConvSpec` spelled out, so that a jaxpr reads `funcnn.conv[window=(3, 3) ...]`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .. import carrier
from ..geometry import Geometry
from . import dispatch
from .spec import ConvSpec


def spec_params(spec: ConvSpec) -> dict:
    """The op parameters of a spec (each a hashable static value, printed in jaxprs)."""
    geo = spec.geo
    return dict(window=geo.window, stride=geo.stride, padding=geo.padding, dilation=geo.dilation,
                groups=spec.groups, forced=spec.forced, looped=spec.looped)


def spec_of(params: dict) -> ConvSpec:
    geo = Geometry(params["window"], params["stride"], params["padding"], params["dilation"])
    return ConvSpec(geo, params["groups"], params["forced"], params["looped"])


def _w_shape(spec: ConvSpec, c_in: int, c_out: int):
    return (*spec.geo.window, c_in // spec.groups, c_out)


# ----------------------------------------------------------------------------------------------------------------
# the three ops' forward computations: the path named by `algorithm`


def _conv_impl(x, w, *, algorithm, **params):
    return dispatch.run(algorithm, "forward", spec_of(params), w.shape, x.shape[1:-1], x, w)


def _conv_transpose_impl(g, w, *, algorithm, sizes, **params):
    return dispatch.run(algorithm, "dx", spec_of(params), w.shape, sizes, g, w)


def _conv_dw_impl(x, g, *, algorithm, **params):
    spec = spec_of(params)
    return dispatch.run(algorithm, "dw", spec, _w_shape(spec, x.shape[-1], g.shape[-1]), x.shape[1:-1], x, g)


# ----------------------------------------------------------------------------------------------------------------
# applying them: the path is chosen here, from the spec and the shapes, and recorded in the equation


def conv(x, w, spec: ConvSpec):
    """z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] * w[u, c, f] (no bias)."""
    path = dispatch.choose("forward", spec, w.shape, x.shape[1:-1], x.shape[0], x.dtype)
    return CONV(x, w, **spec_params(spec), algorithm=path)


def conv_dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, y, c] = sum_{f, i} g_up[n, i, f] * w[y - i, c, f]: the lecture's four dX steps (the transposed conv)."""
    in_sizes = tuple(int(s) for s in in_sizes)
    path = dispatch.choose("dx", spec, w.shape, in_sizes, g.shape[0], g.dtype)
    return CONV_TRANSPOSE(g, w, **spec_params(spec), sizes=in_sizes, algorithm=path)


def conv_dw(x, g, spec: ConvSpec):
    """dW[u, c, f] = sum_{n, i} g[n, i, f] * x_pad[n, S*i + D*u, c]."""
    path = dispatch.choose("dw", spec, _w_shape(spec, x.shape[-1], g.shape[-1]), x.shape[1:-1], x.shape[0], x.dtype)
    return CONV_DW(x, g, **spec_params(spec), algorithm=path)


# ----------------------------------------------------------------------------------------------------------------
# transposes (the backward rules) and batching


def _conv_transpose_rule(ct, x, w, *, algorithm, **params):
    spec = spec_of(params)
    return (conv_dx(ct, w, spec, x.shape[1:-1]) if carrier.undefined(x) else None,
            conv_dw(x, ct, spec) if carrier.undefined(w) else None)


def _conv_transpose_transpose_rule(ct, g, w, *, algorithm, sizes, **params):
    spec = spec_of(params)
    return (conv(ct, w, spec) if carrier.undefined(g) else None,
            conv_dw(ct, g, spec) if carrier.undefined(w) else None)


def _conv_dw_transpose_rule(ct, x, g, *, algorithm, **params):
    spec = spec_of(params)
    return (conv_dx(g, ct, spec, x.shape[1:-1]) if carrier.undefined(x) else None,
            conv(x, ct, spec) if carrier.undefined(g) else None)


def _channels_last(a):
    """(B, N, *S, C) -> (N, *S, B*C): the mapped axis folded into the channels, outermost."""
    return jnp.moveaxis(a, 0, -2).reshape(*a.shape[1:-1], a.shape[0] * a.shape[-1])


def _unfold(a, size):
    """(..., B*C) -> (B, ..., C)."""
    return jnp.moveaxis(a.reshape(*a.shape[:-1], size, a.shape[-1] // size), -2, 0)


def _batch_rule(kind):
    """vmap of a conv-family op. An activation mapped alone folds into the batch axis N (per-example work: one op on
    B*N examples). Where both operands carry the mapped axis (replicas, ensembles, per-example dW), the B
    independent convolutions are, on accelerators, one grouped convolution with B times the groups (what cuDNN and
    TPUs run well), and on the CPU B single convolutions: XLA's CPU backend runs a grouped convolution an order of
    magnitude slower than the same work as separate convolutions (README, Performance). Few slices of real batches
    (replicas, ensemble members: at most UNROLL_MAX_SLICES, each of more than LOOP_SMALL_BATCH images) are written
    out one after another, so that each is the single model's convolution, with its paths, and XLA may overlap
    them; many slices, or slices of a few images (per-example gradients), run in a loop (`lax.map`, each traced as
    a loop body so that it takes no batch chunks), where one compiled body serves them all. The forms are picked at
    lowering time by `lax.platform_dependent`. Either way the result is again funcnn ops, their paths chosen for
    their shapes, so the rules run under any mix of vmap and differentiation."""

    def single(a, b, spec, sizes):
        if kind == "conv":
            return conv(a, b, spec)
        if kind == "dx":
            return conv_dx(a, b, spec, sizes)
        return conv_dw(a, b, spec)

    def rule(op, args, dims, *, algorithm, **params):
        spec = spec_of(params)
        sizes = params.pop("sizes", None)
        (a, b), (da, db) = args, dims
        if kind != "dw" and db is None:  # only the activation is mapped: fold into N
            a = jnp.moveaxis(a, da, 0)
            flat = a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])
            out = single(flat, b, spec, sizes)
            return out.reshape(a.shape[0], a.shape[1], *out.shape[1:]), 0
        (a, b), size = carrier.moved_to_front([a, b], [da, db])

        def grouped(a, b):  # the mapped axis folded into the groups: one grouped convolution
            folded = spec._replace(groups=spec.groups * size)
            if kind == "dw":
                return _unfold(conv_dw(_channels_last(a), _channels_last(b), folded), size)
            w = jnp.moveaxis(b, 0, -2).reshape(*b.shape[1:-1], size * b.shape[-1])
            return _unfold(single(_channels_last(a), w, folded, sizes), size)

        def separate(a, b):  # one convolution per slice: written out, or in a loop
            if size <= dispatch.UNROLL_MAX_SLICES and a.shape[1] > dispatch.LOOP_SMALL_BATCH:
                return jnp.stack([single(a[i], b[i], spec, sizes) for i in range(size)])
            return lax.map(lambda ab: single(*ab, spec._replace(looped=True), sizes), (a, b))

        return lax.platform_dependent(a, b, cpu=separate, default=grouped), 0

    return rule


CONV = carrier.define("conv", _conv_impl, linear=(0, 1), multilinear=True, transpose=_conv_transpose_rule,
                      batch=_batch_rule("conv"))
CONV_TRANSPOSE = carrier.define("conv_transpose", _conv_transpose_impl, linear=(0, 1), multilinear=True,
                                transpose=_conv_transpose_transpose_rule, batch=_batch_rule("dx"))
CONV_DW = carrier.define("conv_dw", _conv_dw_impl, linear=(0, 1), multilinear=True, transpose=_conv_dw_transpose_rule,
                         batch=_batch_rule("dw"))

ROLES = {CONV.name: "forward", CONV_TRANSPOSE.name: "dx", CONV_DW.name: "dw"}


def rule_case(name: str, params: dict, shapes):
    """What the path of one conv-family equation sees, from its primitive's name, its parameters and its two operand
    shapes: (rule, spec, filter shape, the forward input's spatial sizes, batch)."""
    rule = ROLES[name]
    spec = spec_of({k: v for k, v in params.items() if k not in ("algorithm", "sizes")})
    a, b = (tuple(s) for s in shapes)
    if rule == "forward":
        return rule, spec, b, a[1:-1], a[0]
    if rule == "dx":
        return rule, spec, b, tuple(params["sizes"]), a[0]
    return rule, spec, _w_shape(spec, a[-1], b[-1]), a[1:-1], a[0]

__all__ = ["conv", "conv_dx", "conv_dw", "spec_params", "spec_of", "CONV", "CONV_TRANSPOSE", "CONV_DW", "ROLES",
           "rule_case"]
