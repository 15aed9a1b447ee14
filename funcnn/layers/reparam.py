"""Weight reparametrisations as layer wrappers: WeightNorm and SpectralNorm.

Each wraps any layer whose params hold a weight under `name` ("w": Conv, ConvTranspose, Dense, ...) and hands the
inner layer the reparametrised weight; the inner layer's other params and state pass through unchanged.

    WeightNorm     w = g v / |v|                 params: v and g instead of w (Salimans & Kingma, 2016)
    SpectralNorm   w = W / sigma(W)              sigma from power iteration on W as a matrix (Miyato et al., 2018);
                                                 u and v are state, not params

`dim` is the axis kept apart, funcnn's output-channel axis -1 by default (filters are HWIO, Dense weights
(in, out)); it is the axis PyTorch's default dim=0 names in its (out, in, ...) layout, so the two agree layer for
layer. One exception: PyTorch's `spectral_norm` takes dim=1 for its ConvTranspose layers (their output channels),
which is funcnn's dim=-2 for a ConvTranspose filter (*K, C_out, C_in). Gradients flow through the reparametrisation
by JAX's autodiff of these few array operations (no new rule: each step is a `jnp` expression whose derivative JAX
knows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..primitives.arguments import accumulation_dtype
from .base import Layer, named


def _check_wrapped(wrapper: str, layer, name) -> None:
    if not isinstance(layer, Layer) and not (isinstance(layer, tuple) and len(layer) == 2):
        raise TypeError(f"{wrapper}: layer must be an (init, apply) pair, got {type(layer).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"{wrapper}: name must be the params key of the weight (a str), got {name!r}")


def _weight(wrapper: str, params, name: str, input_shape):
    if not isinstance(params, dict) or name not in params:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{wrapper}: the wrapped layer has no weight {name!r} in its params (keys: {keys}) for input "
                         f"shape {tuple(input_shape)}")
    return params[name]


def _axis(wrapper: str, dim, ndim: int):
    if dim is None:
        return None
    if not isinstance(dim, int) or isinstance(dim, bool) or not -ndim <= dim < ndim:
        raise ValueError(f"{wrapper}: dim must be None or an axis of the {ndim}-axis weight, got {dim!r}")
    return dim % ndim


# ----------------------------------------------------------------------------------------------------------------
# weight normalisation


def _norm_except(v, axis):
    """|v| over every axis but `axis` (kept, with the others as size-1 axes), or over all of v for axis None."""
    acc = accumulation_dtype(v.dtype)
    axes = tuple(a for a in range(v.ndim) if a != axis)
    return jnp.sqrt(jnp.sum(jnp.square(v.astype(acc)), axis=axes, keepdims=True))


def WeightNorm(layer, *, name: str = "w", dim: int | None = -1) -> Layer:
    """w = g v / |v|, the norm over every axis of v but `dim` (None: over all of v, one scalar g).

    Params: the inner layer's, with `name` replaced by f"{name}_v" (v, w's shape) and f"{name}_g" (g, size-1 on
    every axis but `dim`). At init v is the inner layer's weight and g = |v|, so the wrapped layer starts as the
    inner one (PyTorch's `torch.nn.utils.parametrizations.weight_norm`).
    """
    _check_wrapped("WeightNorm", layer, name)

    def init(rng, input_shape):
        out_shape, params, state = layer.init(rng, input_shape)
        v = _weight("WeightNorm", params, name, input_shape)
        axis = _axis("WeightNorm", dim, v.ndim)
        rest = {k: p for k, p in params.items() if k != name}
        return out_shape, {**rest, f"{name}_v": v, f"{name}_g": _norm_except(v, axis).astype(v.dtype)}, state

    def apply(params, state, x, **kwargs):
        v, g = params[f"{name}_v"], params[f"{name}_g"]
        w = (g * v / _norm_except(v, _axis("WeightNorm", dim, v.ndim))).astype(v.dtype)
        rest = {k: p for k, p in params.items() if k not in (f"{name}_v", f"{name}_g")}
        return layer.apply({**rest, name: w}, state, x, **kwargs)

    return named("WeightNorm", init, apply, container=True)


# ----------------------------------------------------------------------------------------------------------------
# spectral normalisation


def _matrix(w, axis):
    """W as the matrix power iteration works on: the kept axis as rows, everything else flattened (PyTorch's)."""
    w = w.reshape(1, -1) if axis is None else jnp.moveaxis(w, axis, 0)
    return w.reshape(w.shape[0], -1)


def _normalize(a, eps):
    """a / max(|a|, eps) (torch.nn.functional.normalize)."""
    return a / jnp.maximum(jnp.linalg.norm(a), eps)


def power_iteration(w_mat, u, v, iterations: int, eps: float):
    """`iterations` steps of u = W v / |W v|, v = W^T u / |W^T u| (u first, as PyTorch); no gradient flows."""
    w_mat = jax.lax.stop_gradient(w_mat)
    for _ in range(iterations):
        u = _normalize(w_mat @ v, eps)
        v = _normalize(w_mat.T @ u, eps)
    return u, v


def SpectralNorm(layer, *, name: str = "w", n_power_iterations: int = 1, eps: float = 1e-12,
                 dim: int | None = -1) -> Layer:
    """w = W / sigma, sigma = u^T W v the largest singular value of W as a matrix (`dim` as rows, the rest flattened)
    estimated by power iteration.

    State: {"u", "v", "layer": the inner layer's state}. In training (`train=True`) each call runs
    `n_power_iterations` steps from the stored u, v and returns them updated (one step per training step by
    default); in evaluation the stored vectors are used as they are. u and v carry no gradient: sigma's gradient is
    u v^T, as in PyTorch's `torch.nn.utils.parametrizations.spectral_norm` (which also runs 15 steps at init).
    """
    _check_wrapped("SpectralNorm", layer, name)
    if not isinstance(n_power_iterations, int) or isinstance(n_power_iterations, bool) or n_power_iterations < 1:
        raise ValueError(f"SpectralNorm: n_power_iterations must be an int >= 1, got {n_power_iterations!r}")
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"SpectralNorm: eps must be a number > 0, got {eps!r}")

    def init(rng, input_shape):
        k_layer, k_u, k_v = jax.random.split(rng, 3)
        out_shape, params, state = layer.init(k_layer, input_shape)
        w = _weight("SpectralNorm", params, name, input_shape)
        w_mat = _matrix(w, _axis("SpectralNorm", dim, w.ndim))
        u = _normalize(jax.random.normal(k_u, (w_mat.shape[0],), w.dtype), eps)
        v = _normalize(jax.random.normal(k_v, (w_mat.shape[1],), w.dtype), eps)
        u, v = power_iteration(w_mat, u, v, 15, eps)
        return out_shape, params, {"u": u, "v": v, "layer": state}

    def apply(params, state, x, *, train=False, **kwargs):
        w = params[name]
        w_mat = _matrix(w, _axis("SpectralNorm", dim, w.ndim))
        u, v = state["u"], state["v"]
        if train:
            u, v = power_iteration(w_mat, u, v, n_power_iterations, eps)
        sigma = jnp.vdot(u, w_mat @ v)
        y, inner = layer.apply({**params, name: w / sigma}, state["layer"], x, train=train, **kwargs)
        return y, {"u": u, "v": v, "layer": inner}

    return named("SpectralNorm", init, apply, container=True)


__all__ = ["WeightNorm", "SpectralNorm", "power_iteration"]
