"""Normalisation family: batch_norm, layer_norm, group_norm; one rule over the set R of entries normalised together.

Layout (N, *spatial, C), the channels split into G groups of C/G. R is, per channel group:

    batch_norm:  every example and position of one channel       (G = C, over the batch)
    layer_norm:  every position and channel of one example        (G = 1)
    group_norm:  every position and channel of one example's group

    mu = mean_R x,  var = mean_R (x - mu)^2,  sigma = sqrt(var + eps),  x_hat = (x - mu) / sigma,
    y = scale * x_hat + bias                                       (scale, bias: one per channel)

Tangent rule (docs/primitives.md, "Normalisation"), linear in (dx, dscale, dbias), and the backward rule it transposes
to (the chain rule through mu and sigma), with g = dL/dy and h = g * scale:

    dmu = mean_R dx,  dvar = 2 mean_R((x - mu)(dx - dmu)),  dx_hat = (dx - dmu - x_hat mean_R(x_hat dx)) / sigma
    dy  = scale * dx_hat + dscale * x_hat + dbias
    dbias  = sum g,  dscale = sum g * x_hat                        (summed over everything but the channel)
    dx     = (1 / sigma) * (h - mean_R(h) - x_hat * mean_R(h * x_hat))  + g_mu / m + 2 g_var (x - mu) / m

(the last two terms are the statistics outputs' cotangents, m = |R|; they are symbolic zeros unless a loss uses the
returned mean or var). One pass over the activations for the statistics, one for the backward. Numerics: both
statistics passes run on x minus one of its own entries per set (an exact subtraction; a two-pass variance, never
mean(x^2) - mu^2), in float32 or wider whatever the input's dtype, so they keep float32's relative accuracy at any
mean. Under `axis_name` (vmap or shard_map over a batch split across devices) batch_norm's means are taken over the
global batch, each pass from the global result of the one before, and JAX differentiates that forward (a primitive's
rules cannot see a vmapped axis name).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from . import carrier
from .arguments import as_float, names_forward_mode_error
from .cases import cases_for


class NormSpec(NamedTuple):
    groups: int            # G: the channels split into G groups of C/G
    over_batch: bool       # R includes the batch axis (batch_norm)
    epsilon: float
    axis_name: object      # a mapped axis to average over (batch_norm only), or None


def _axes(ndim: int, spec: NormSpec) -> tuple:
    """The axes of R in the grouped (N, *S, G, C/G) array of rank `ndim`: the positions and C/G (and the batch)."""
    return tuple(range(0 if spec.over_batch else 1, ndim - 2)) + (ndim - 1,)


def _grouped(x, spec: NormSpec):
    """(N, *S, C) -> (N, *S, G, C/G)."""
    return x.reshape(*x.shape[:-1], spec.groups, x.shape[-1] // spec.groups)


def _per_channel(v, xg):
    """A (C,) parameter shaped to broadcast against the grouped (N, *S, G, C/G) array."""
    return v.reshape(xg.shape[-2:])


def moments(x, axes: tuple, axis_name=None):
    """(mean, var, x - mean) of x over `axes` (and over the mapped axis `axis_name`, when given), kept as size-1
    axes, in x's dtype (pass float32 or wider): the shifted two-pass form. Both passes run on x minus one of its own
    entries per set (an exact subtraction for values within a factor of 2 of it), so the sums stay small and the
    statistics keep the dtype's relative accuracy at any mean; the variance is mean((x - mean)^2), never
    mean(x^2) - mean^2. Under `axis_name` each pass starts from the global result of the one before. The one
    statistics function of the norm primitives and of `layers.BatchNorm`."""
    def mean(v):
        m = jnp.mean(v, axes, keepdims=True)
        return m if axis_name is None else lax.pmean(m, axis_name)

    pivot = lax.stop_gradient(x[tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))])
    if axis_name is not None:
        pivot = lax.pmean(pivot, axis_name)
    shifted = x - pivot
    offset = mean(shifted)
    centred = shifted - offset
    return pivot + offset, mean(jnp.square(centred)), centred


def _forward(x, scale, bias, spec: NormSpec):
    """(y, mean, var) and the residuals (x_hat, 1/sigma)."""
    acc = jnp.promote_types(x.dtype, jnp.float32)
    xg = _grouped(x.astype(acc), spec)
    axes = _axes(xg.ndim, spec)
    mean, var, centred = moments(xg, axes, spec.axis_name)
    rstd = lax.rsqrt(var + spec.epsilon)
    x_hat = centred * rstd
    y = x_hat * _per_channel(scale.astype(acc), xg) + _per_channel(bias.astype(acc), xg)
    outputs = y.reshape(x.shape).astype(x.dtype), jnp.squeeze(mean, axes), jnp.squeeze(var, axes)
    return outputs, (x_hat, rstd)


def _stat_shape(xg, spec: NormSpec):
    """A statistic (one per normalised set) broadcast against the grouped (N, *S, G, C/G) array."""
    return lambda v: v.reshape((1,) * (xg.ndim - 2) + (v.shape[-1], 1)) if spec.over_batch else \
        v.reshape((v.shape[0],) + (1,) * (xg.ndim - 3) + (v.shape[-1], 1))


def _centred(x, var, spec: NormSpec):
    """(x - mu, 1 / sigma, the reshape of a statistic), in the accumulation dtype. x - mu is computed as the forward
    computes it, (x - pivot) - mean_R(x - pivot), never as x minus the stored mean: at x = 300 + 0.1 N(0, 1) the mean
    rounded to float32 is off by 1.5e-5, 1e-4 of the spread. The variance is the forward's output (relative
    accuracy is all it needs)."""
    acc = jnp.promote_types(x.dtype, jnp.float32)
    xg = _grouped(x.astype(acc), spec)
    _, _, centred = moments(xg, _axes(xg.ndim, spec))
    return centred, lax.rsqrt(_stat_shape(xg, spec)(var.astype(acc)) + spec.epsilon), _stat_shape(xg, spec)


def _normalize_impl(x, scale, bias, **params):
    return _forward(x, scale, bias, NormSpec(**params, axis_name=None))[0]


def _tangent_impl(x, scale, mean, var, dx, dscale, dbias, **params):
    """(dy, dmu, dvar): the tangent rule of the module docstring."""
    spec = NormSpec(**params, axis_name=None)
    xc, rstd, _ = _centred(x, var, spec)
    axes = _axes(xc.ndim, spec)
    x_hat = xc * rstd
    dxg = _grouped(dx.astype(xc.dtype), spec)
    dmu = jnp.mean(dxg, axes, keepdims=True)
    dvar = 2 * jnp.mean(xc * (dxg - dmu), axes, keepdims=True)
    dx_hat = rstd * (dxg - dmu - x_hat * jnp.mean(x_hat * dxg, axes, keepdims=True))
    dy = (_per_channel(scale.astype(xc.dtype), xc) * dx_hat + _per_channel(dscale.astype(xc.dtype), xc) * x_hat
          + _per_channel(dbias.astype(xc.dtype), xc))
    return (dy.reshape(x.shape).astype(dx.dtype), jnp.squeeze(dmu, axes).astype(mean.dtype),
            jnp.squeeze(dvar, axes).astype(var.dtype))


def _backward_impl(x, scale, mean, var, gy, gmu, gvar, **params):
    """(dx, dscale, dbias) = the fused rule of the module docstring, plus the statistics' cotangents."""
    spec = NormSpec(**params, axis_name=None)
    xc, rstd, expand = _centred(x, var, spec)
    axes = _axes(xc.ndim, spec)
    x_hat = xc * rstd
    gg = _grouped(gy.astype(xc.dtype), spec)
    h = gg * _per_channel(scale.astype(xc.dtype), xc)
    m = math.prod(xc.shape[a] for a in axes)
    dx = rstd * (h - jnp.mean(h, axes, keepdims=True) - x_hat * jnp.mean(h * x_hat, axes, keepdims=True))
    dx = dx + expand(gmu.astype(xc.dtype)) / m
    dx = dx + 2 * expand(gvar.astype(xc.dtype)) * (xc - jnp.mean(xc, axes, keepdims=True)) / m
    batch_axes = tuple(range(gg.ndim - 2))
    dscale = jnp.sum(gg * x_hat, batch_axes).reshape(scale.shape)
    dbias = jnp.sum(gg, batch_axes).reshape(scale.shape)
    return dx.reshape(x.shape).astype(gy.dtype), dscale.astype(scale.dtype), dbias.astype(scale.dtype)


# the roles of each op's arguments and outputs, for vmap: activations (N, *S, C), per-channel vectors (C,), and
# statistics (G,) or (N, G); a mapped axis folds into the channels (B independent normalisations are one with B times
# the groups), which keeps each example's and each replica's sets apart for every kind of normalisation
_ROLES = {"normalize": ("acc", "ass"), "norm_tangent": ("acssacc", "ass"), "norm_backward": ("acssass", "acc")}


def _fold(a, role, size, over_batch):
    if role == "a":
        return jnp.moveaxis(a, 0, -2).reshape(*a.shape[1:-1], size * a.shape[-1])
    if role == "c" or over_batch:
        return a.reshape(size * a.shape[-1])
    return jnp.moveaxis(a, 0, -2).reshape(a.shape[1], size * a.shape[-1])


def _unfold(a, role, size, over_batch):
    if role == "a" or not (role == "c" or over_batch):
        return jnp.moveaxis(a.reshape(*a.shape[:-1], size, a.shape[-1] // size), -2, 0)
    return a.reshape(size, a.shape[-1] // size)


def _batch(op, args, dims, **params):
    ins, outs = _ROLES[op.name]
    moved, size = carrier.moved_to_front(args, dims)
    folded = [_fold(a, r, size, params["over_batch"]) for a, r in zip(moved, ins)]
    out = op(*folded, **{**params, "groups": params["groups"] * size})
    return [_unfold(o, r, size, params["over_batch"]) for o, r in zip(out, outs)], [0, 0, 0]


NORM_TANGENT, NORM_BACKWARD = carrier.define_adjoint_pair(
    "norm_tangent", _tangent_impl, "norm_backward", _backward_impl, fixed=4, n_linear=3, batch=_batch)
def _normalize_tangent(args, outs, tangents, **params):
    """(dy, dmu, dvar) = norm_tangent(x, scale, mu, var; dx, dscale, dbias), a zero for an argument not varied."""
    ts = [jnp.zeros_like(a) if t is None else t for a, t in zip(args, tangents)]
    return NORM_TANGENT(*args[:2], *outs[1:], *ts, **params)


NORMALIZE = carrier.define("normalize", _normalize_impl, multiple_results=True, tangent=_normalize_tangent,
                           batch=_batch)


def _bind(x, scale, bias, spec: NormSpec):
    return NORMALIZE(x, scale, bias, groups=spec.groups, over_batch=spec.over_batch, epsilon=spec.epsilon)


# ----------------------------------------------------------------------------------------------------------------
# public API


def _affine(name, x, scale, bias):
    c = x.shape[-1]
    scale = jnp.ones((c,), jnp.float32) if scale is None else as_float(name, "scale", scale)
    bias = jnp.zeros((c,), jnp.float32) if bias is None else as_float(name, "bias", bias)
    for arg, v in (("scale", scale), ("bias", bias)):
        if tuple(v.shape) != (c,):
            raise ValueError(f"{name}: {arg} must have shape ({c},), one per channel of x shape {tuple(x.shape)}, "
                             f"got {tuple(v.shape)}")
    return scale, bias


def _check(name, x, epsilon, min_rank=2):
    if x.ndim < min_rank:
        raise ValueError(f"{name}: x must have rank >= {min_rank} (N, ..., C), got shape {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise ValueError(f"{name}: x has no channel (shape {tuple(x.shape)})")
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < math.inf):
        raise ValueError(f"{name}: epsilon must be a finite number > 0, got {epsilon!r}")


@names_forward_mode_error("batch_norm")
def batch_norm(x, scale=None, bias=None, *, epsilon: float = 1e-5, axis_name=None):
    """Batch normalisation with the batch's statistics: x (N, ..., C) -> (y, mean (C,), var (C,)).

    Every channel is normalised over all examples and positions (and over `axis_name`, a mapped axis, when given);
    var is the biased variance the normalisation uses (the running variance of `layers.BatchNorm` is its unbiased
    m / (m - 1) multiple). All three outputs are differentiable (mean and var by dmu = mean dx and
    dvar = 2 mean((x - mu)(dx - dmu))). Tangent and gradient: the rules of the module docstring.
    """
    x = as_float("batch_norm", "x", x)
    _check("batch_norm", x, epsilon)
    if math.prod(x.shape[:-1]) == 0:
        raise ValueError(f"batch_norm: needs at least one example to take statistics over, got x shape "
                         f"{tuple(x.shape)}")
    scale, bias = _affine("batch_norm", x, scale, bias)
    spec = NormSpec(x.shape[-1], True, float(epsilon), axis_name)
    if axis_name is None:
        return _bind(x, scale, bias, spec)
    return _forward(x, scale, bias, spec)[0]  # a mapped axis name: JAX differentiates the same forward


@names_forward_mode_error("layer_norm")
def layer_norm(x, scale=None, bias=None, *, epsilon: float = 1e-5):
    """Layer normalisation: each example of x (N, ..., C) normalised over all its positions and channels, then
    scaled and shifted per channel (scale, bias of shape (C,), default 1 and 0). Gradient: the fused rule."""
    x = as_float("layer_norm", "x", x)
    _check("layer_norm", x, epsilon)
    scale, bias = _affine("layer_norm", x, scale, bias)
    return _bind(x, scale, bias, NormSpec(1, False, float(epsilon), None))[0]


@names_forward_mode_error("group_norm")
def group_norm(x, groups: int, scale=None, bias=None, *, epsilon: float = 1e-5):
    """Group normalisation (Wu and He 2018): the C channels of x (N, ..., C) in `groups` groups of C/groups, each
    example's group normalised over its positions and channels; then per-channel scale and shift. groups = 1 is
    layer_norm, groups = C instance normalisation. Independent of the other examples, so it stays correct under vmap,
    replicas and per-example gradients. Gradient: the fused rule."""
    x = as_float("group_norm", "x", x)
    _check("group_norm", x, epsilon, min_rank=3)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or x.shape[-1] % groups:
        raise ValueError(f"group_norm: groups must be an int >= 1 dividing the {x.shape[-1]} channels of x shape "
                         f"{tuple(x.shape)}, got {groups!r}")
    scale, bias = _affine("group_norm", x, scale, bias)
    return _bind(x, scale, bias, NormSpec(groups, False, float(epsilon), None))[0]


# ----------------------------------------------------------------------------------------------------------------
# the configurations `python -m funcnn.verify` checks: large means, groups, 1-D and 2-D



@cases_for("batch_norm", "layer_norm", "group_norm")
def norm_cases(make, ref):

    x, s, b = make.normal(4, 3, 5, 6) + 30.0, make.normal(6), make.normal(6)
    yield make.case("layer_norm", "(4, 3, 5, 6), mean 30", layer_norm, ref.layer_norm, x, s, b)
    yield make.case("group_norm", "3 groups", lambda x, s, b: group_norm(x, 3, s, b),
                    lambda x, s, b: ref.group_norm(x, 3, s, b), x, s, b)
    yield make.case("batch_norm", "(4, 3, 5, 6), mean 30", lambda x, s, b: batch_norm(x, s, b)[0],
                    lambda x, s, b: ref.batch_norm(x, s, b), x, s, b)
    x1 = make.normal(3, 7, 4)
    yield make.case("group_norm", "1-D, 2 groups", lambda x: group_norm(x, 2), lambda x: ref.group_norm(x, 2), x1,
                    quick=False)
    yield make.case("batch_norm", "1-D", lambda x: batch_norm(x)[0], lambda x: ref.batch_norm(x), x1, quick=False)


__all__ = ["batch_norm", "layer_norm", "group_norm", "moments", "NormSpec"]
