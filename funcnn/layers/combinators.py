"""Combinators: serial, parallel, fan_out, fan_in_sum, fan_in_concat, residual.

Parameters and state of a combinator are dicts keyed by "<index>_<LayerName>" (e.g. "0_Conv", "1_Relu"), so a
model's parameter tree reads like its architecture. The PRNG key is split once per child.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .base import Layer, apply_child, init_child, named, parameterless
from .core import Identity


def _keys(layers):
    """Readable parameter keys: "<index>_<LayerName>"."""
    return [f"{i}_{getattr(layer.init, 'layer_name', 'Layer')}" for i, layer in enumerate(layers)]


def _index(key) -> int | None:
    """The index of a child key "<index>_<LayerName>" (None for any other key)."""
    head, sep, _ = str(key).partition("_")
    return int(head) if sep and head.isdigit() else None


def walk(tree, path: tuple = ()):
    """(path, layer name) of every leaf layer of a params (or state) tree that combinators built, in the order the
    model applies them: children are visited by their index (JAX sorts dict keys as strings, so "10_Dense" would
    come before "9_Dense"), a dict whose keys are all child keys is a combinator, anything else (a layer's
    {"w", "b"}, or {} for a layer without parameters) is a leaf layer."""
    children = sorted(tree, key=lambda k: (_index(k) is None, _index(k) or 0, str(k)))
    for key in children:
        value = tree[key]
        if _index(key) is None:
            raise ValueError(f"walk: {'/'.join(map(str, path + (key,)))} is not a layer key '<index>_<Name>' of a "
                             "combinator's tree")
        if isinstance(value, dict) and value and all(_index(k) is not None for k in value):
            yield from walk(value, path + (key,))
        else:
            yield path + (key,), str(key).partition("_")[2]


def _split(rng, n):
    return [None] * n if rng is None else list(jax.random.split(rng, n))


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """Compose layers in sequence: y = layer_n(... layer_1(x))."""
    keys = _keys(layers)

    def init(rng, input_shape):
        params, state = {}, {}
        shape = input_shape
        for key, layer, r in zip(keys, layers, jax.random.split(rng, len(layers))):
            shape, params[key], state[key] = init_child(key, layer, r, shape)
        return shape, params, state

    def apply(params, state, x, *, train=False, rng=None):
        new_state = {}
        for key, layer, r in zip(keys, layers, _split(rng, len(layers))):
            x, new_state[key] = apply_child(key, layer, params[key], state[key], x, train=train, rng=r)
        return x, new_state

    layer = named(name, init, apply, container=True)
    layer.init.sublayers = tuple(zip(keys, layers))
    return layer


def truncate(model: Layer, upto: str) -> Layer:
    """The first layers of a `serial` model, up to and including the one keyed `upto` (e.g. "3_Conv").

    Its parameters and state are the corresponding entries of the full model's: apply it with the same trees to
    read intermediate feature maps.
    """
    sub = getattr(model.init, "sublayers", None)
    if sub is None:
        raise ValueError("truncate: the model is not a serial() combination of layers")
    keys = [k for k, _ in sub]
    if upto not in keys:
        raise ValueError(f"truncate: no layer {upto!r}; the model's layers are {', '.join(keys)}")
    kept = sub[: keys.index(upto) + 1]

    def apply(params, state, x, *, train=False, rng=None):
        for key, layer in kept:
            x, _ = layer.apply(params[key], state[key], x, train=train, rng=None)
        return x, state

    return Layer(model.init, apply)


def parallel(*layers: Layer, name: str = "parallel") -> Layer:
    """Apply layer i to input i of a tuple of inputs; returns the tuple of outputs."""
    keys = _keys(layers)

    def init(rng, input_shapes):
        if len(input_shapes) != len(layers):
            raise ValueError(f"parallel: expected {len(layers)} inputs, got shapes {input_shapes}")
        params, state, shapes = {}, {}, []
        for key, layer, r, shape in zip(keys, layers, jax.random.split(rng, len(layers)), input_shapes):
            out, params[key], state[key] = init_child(key, layer, r, shape)
            shapes.append(out)
        return tuple(shapes), params, state

    def apply(params, state, xs, *, train=False, rng=None):
        outs, new_state = [], {}
        for key, layer, r, x in zip(keys, layers, _split(rng, len(layers)), xs):
            y, new_state[key] = apply_child(key, layer, params[key], state[key], x, train=train, rng=r)
            outs.append(y)
        return tuple(outs), new_state

    return named(name, init, apply, container=True)


def fan_out(n: int) -> Layer:
    """x -> (x, x, ..., x), n copies."""
    return parameterless("FanOut", lambda s: (s,) * n, lambda x: (x,) * n)


def fan_in_sum() -> Layer:
    """(x_1, ..., x_n) -> x_1 + ... + x_n (shapes must agree)."""

    def shape_fn(shapes):
        if len({tuple(s[1:]) for s in shapes}) != 1:
            raise ValueError(f"fan_in_sum: input shapes must agree, got {shapes}")
        return shapes[0]

    return parameterless("FanInSum", shape_fn, lambda xs: sum(xs[1:], xs[0]),
                         flops=lambda shapes, out_shape, params: (len(shapes) - 1) * math.prod(out_shape))


def fan_in_concat(axis: int = -1) -> Layer:
    """(x_1, ..., x_n) -> concatenate along `axis` (channels by default)."""

    def shape_fn(shapes):
        ax = axis % len(shapes[0])
        return (*shapes[0][:ax], sum(s[ax] for s in shapes), *shapes[0][ax + 1:])

    return parameterless("FanInConcat", shape_fn, lambda xs: jnp.concatenate(xs, axis))


def residual(block: Layer, shortcut: Layer | None = None, name: str = "residual") -> Layer:
    """y = block(x) + shortcut(x), the shortcut the identity unless given (e.g. a 1x1 strided projection)."""
    return serial(fan_out(2), parallel(block, shortcut or Identity()), fan_in_sum(), name=name)


def remat(layer: Layer) -> Layer:
    """The same layer with its apply under `jax.checkpoint`: activations inside it are recomputed in the backward
    pass instead of stored (less memory, more compute)."""
    init, apply = layer

    def remat_apply(params, state, x, *, train=False, rng=None):
        return jax.checkpoint(lambda p, s, x, r: apply(p, s, x, train=train, rng=r))(params, state, x, rng)

    return Layer(init, remat_apply)


__all__ = ["truncate", "remat", "serial", "parallel", "fan_out", "fan_in_sum", "fan_in_concat", "residual"]
