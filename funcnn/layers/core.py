"""Dense, Flatten, Identity, activations, Dropout and BatchNorm."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from .. import init as initializers
from .. import primitives as P
from ..primitives.norm import moments
from .base import Layer, elementwise, named, parameterless, stateless


def Dense(features: int, *, use_bias: bool = True, w_init=initializers.glorot_normal, b_init=initializers.zeros):
    """z = x W + b over the last axis (funcnn.dense). Params {"w": (D_in, features), "b": (features,)}."""
    if not isinstance(features, int) or features < 1:
        raise ValueError(f"Dense: features must be a positive int, got {features!r}")

    def init(rng, input_shape):
        k_w, k_b = jax.random.split(rng)
        params = {"w": w_init(k_w, (input_shape[-1], features))}
        if use_bias:
            params["b"] = b_init(k_b, (features,))
        return (*input_shape[:-1], features), params

    def apply(params, x, **_):
        return P.dense(x, params["w"], params.get("b"))

    def flops(input_shape, out_shape, params):  # a multiply-add per weight and input row, plus the bias
        return 2 * math.prod(input_shape) * features + (math.prod(out_shape) if use_bias else 0)

    return stateless("Dense", init, apply, flops=flops)


def Flatten():
    """(N, *dims) -> (N, prod(dims))."""
    return parameterless("Flatten", lambda s: (s[0], math.prod(s[1:])),
                         lambda x: x.reshape(x.shape[0], math.prod(x.shape[1:])))  # no -1: the batch may be empty


def Identity():
    """y = x."""
    return parameterless("Identity", lambda s: s, lambda x: x)


Relu = lambda: parameterless("Relu", lambda s: s, P.relu, flops=elementwise())  # noqa: E731
Sigmoid = lambda: parameterless("Sigmoid", lambda s: s, P.sigmoid, flops=elementwise())  # noqa: E731
Tanh = lambda: parameterless("Tanh", lambda s: s, P.tanh, flops=elementwise())  # noqa: E731
Relu.__doc__, Sigmoid.__doc__, Tanh.__doc__ = "funcnn.relu as a layer.", "funcnn.sigmoid as a layer.", "tanh layer."


def Softmax(axis: int = -1):
    """funcnn.softmax over `axis` as a layer."""
    return parameterless("Softmax", lambda s: s, lambda x: P.softmax(x, axis), flops=elementwise(3))


def LogSoftmax(axis: int = -1):
    """funcnn.log_softmax over `axis` as a layer."""
    return parameterless("LogSoftmax", lambda s: s, lambda x: P.log_softmax(x, axis), flops=elementwise(3))


NORM_FLOPS = 4  # per entry: subtract the mean, divide by sigma, scale, shift


def Dropout(rate: float):
    """Inverted dropout: in training, zero each entry with probability `rate` (the DROP probability) and scale the
    survivors by 1 / (1 - rate); in evaluation the identity. Training needs an explicit `rng` key.

    (stax's Dropout took the keep probability under the name `rate`; funcnn's `rate` is what is dropped.)
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Dropout: rate is the drop probability and must lie in [0, 1), got {rate}")

    def apply(params, x, *, train=False, rng=None):
        if not train or rate == 0.0:
            return x
        if rng is None:
            raise ValueError("Dropout: apply(..., train=True) needs an explicit PRNG key: pass rng=...")
        keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))

    return stateless("Dropout", lambda rng, s: (s, {}), apply)


def BatchNorm(*, momentum: float = 0.9, epsilon: float = 1e-5, axis_name=None):
    """Batch normalisation over every axis but the last (channels), with running statistics.

    Training (`train=True`): normalise with the batch mean and (biased) variance, and update the running statistics:
    running = momentum * running + (1 - momentum) * batch (the running variance uses the unbiased batch variance).
    This is PyTorch's BatchNorm2d with its momentum = 1 - funcnn's (0.1 there, 0.9 here). Evaluation
    (`train=False`): normalise with the running statistics, so the output of one example does not depend on the rest
    of the batch. (stax's BatchNorm has no running statistics and always uses the batch.)

    Numerics: the variance is two-pass, mean((x - mean)^2), never mean(x^2) - mean^2, which cancels in float32 when a
    channel's mean is large next to its spread (0-255 images, a layer after a large bias); both passes run on x minus
    one of its own values per channel (an exact subtraction), so the statistics keep float32's relative accuracy at
    any mean. They and the normalisation are computed in float32 (or the input's dtype when wider) whatever the
    activations' dtype.

    `axis_name`: the name of a mapped axis (vmap / shard_map) to average the statistics over, so that data-parallel
    training normalises over the global batch (the second pass starts from the global mean).
    Params {"scale", "bias"}; state {"mean", "var"}.
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"BatchNorm: momentum must lie in [0, 1), got {momentum}")
    if not epsilon > 0:
        raise ValueError(f"BatchNorm: epsilon must be > 0, got {epsilon}")

    def init(rng, input_shape):
        c = input_shape[-1]
        params = {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32)}
        state = {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}
        return input_shape, params, state

    def apply(params, state, x, *, train=False, rng=None):
        axes = tuple(range(x.ndim - 1))
        acc = jnp.promote_types(x.dtype, jnp.float32)
        xf = x.astype(acc)
        if train:
            count = math.prod(x.shape[:-1])
            if count == 0:
                raise ValueError(f"BatchNorm: train=True needs at least one example to take statistics over, got an "
                                 f"input of shape {tuple(x.shape)}")
            mean, var, centred = moments(xf, axes, axis_name)  # shifted two-pass statistics (see norm.moments)
            mean, var = mean.reshape(-1), var.reshape(-1)
            if axis_name is not None:
                count = count * lax.psum(1, axis_name)
            unbiased = var * count / jnp.maximum(count - 1, 1)
            new_state = {
                "mean": (momentum * state["mean"] + (1 - momentum) * lax.stop_gradient(mean)).astype(
                    state["mean"].dtype),
                "var": (momentum * state["var"] + (1 - momentum) * lax.stop_gradient(unbiased)).astype(
                    state["var"].dtype),
            }
        else:
            var, new_state = state["var"].astype(acc), state
            centred = xf - state["mean"].astype(acc)
        y = centred * (lax.rsqrt(var + epsilon) * params["scale"].astype(acc)) + params["bias"].astype(acc)
        return y.astype(x.dtype), new_state

    return named("BatchNorm", init, apply, flops=elementwise(NORM_FLOPS))


def _normalisation(name, normalise, *, epsilon, affine, check=None):
    """A per-example normalisation layer (no state): params {"scale", "bias"} per channel when affine."""
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise ValueError(f"{name}: epsilon must be > 0, got {epsilon!r}")

    def init(rng, input_shape):
        if check is not None:
            check(input_shape)
        c = input_shape[-1]
        params = {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32)} if affine else {}
        return input_shape, params

    def apply(params, x, **_):
        return normalise(x, params.get("scale"), params.get("bias"), epsilon=epsilon)

    return stateless(name, init, apply, flops=elementwise(NORM_FLOPS))


def LayerNorm(*, epsilon: float = 1e-5, affine: bool = True):
    """Layer normalisation (funcnn.layer_norm): each example over all its positions and channels, then a learned
    per-channel scale and bias (affine=True). No running statistics: train and evaluation agree."""
    return _normalisation("LayerNorm", P.layer_norm, epsilon=epsilon, affine=affine)


def GroupNorm(groups: int, *, epsilon: float = 1e-5, affine: bool = True):
    """Group normalisation (funcnn.group_norm): each example's `groups` channel groups normalised separately. Unlike
    BatchNorm it needs no batch, so it stays right under vmap, replicas and per-example gradients."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"GroupNorm: groups must be a positive int, got {groups!r}")

    def check(input_shape):
        if input_shape[-1] % groups:
            raise ValueError(f"GroupNorm: groups={groups} must divide the {input_shape[-1]} channels of input shape "
                             f"{tuple(input_shape)}")

    return _normalisation("GroupNorm", lambda x, s, b, epsilon: P.group_norm(x, groups, s, b, epsilon=epsilon),
                          epsilon=epsilon, affine=affine, check=check)


__all__ = ["Layer", "Dense", "Flatten", "Identity", "Relu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Dropout",
           "BatchNorm", "LayerNorm", "GroupNorm"]
