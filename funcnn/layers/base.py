"""The layer contract, and the recorder behind `funcnn.summary`.

Every layer is a pair `(init, apply)`:

    init(rng, input_shape) -> (output_shape, params, state)
    apply(params, state, x, *, train=False, rng=None) -> (y, state)

`params` are the trainable arrays (a pytree with readable keys, e.g. {"w": ..., "b": ...}); `state` holds what a
layer updates without gradients (BatchNorm's running mean and variance). Stateless layers have `state == {}` and
return it unchanged, so a model without BatchNorm can ignore state. `train` switches BatchNorm to batch statistics and
turns Dropout on; `rng` is the explicit PRNG key that Dropout needs in training (combinators split it per layer).
`init` computes output shapes without running the layer.

Stateless layers are written stax-style with `stateless(name, init, apply)`: `init(rng, shape) -> (shape, params)` and
`apply(params, x, *, train, rng) -> y`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Callable, NamedTuple

import jax

from .. import primitives
from ..primitives.geometry import SPATIAL_AXES


class Layer(NamedTuple):
    """An `(init, apply)` pair; unpack it as `init, apply = layer`."""

    init: Callable
    apply: Callable


# ----------------------------------------------------------------------------------------------------------------
# a recorder: while `summary` runs a model's init, every layer reports its name, output shape and parameter count


_RECORDER: contextvars.ContextVar = contextvars.ContextVar("funcnn_recorder", default=None)
_DEPTH: contextvars.ContextVar = contextvars.ContextVar("funcnn_depth", default=0)
_KEY: contextvars.ContextVar = contextvars.ContextVar("funcnn_key", default=None)  # the child's key in its parent


@contextlib.contextmanager
def recording():
    rows: list = []
    token = _RECORDER.set(rows)
    try:
        yield rows
    finally:
        _RECORDER.reset(token)


def _count(tree) -> int:
    return sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree_util.tree_leaves(tree))


class Row(NamedTuple):
    """What a layer reports to `funcnn.summary`'s recorder while its init runs."""

    depth: int
    name: str
    out_shape: tuple
    params: int
    container: bool
    flops: int | None      # per example, forward pass; None for a container (the sum of its children)
    key: str | None = None  # the layer's key in its parent's params ("0_Conv"); None for the outermost layer


def _batch(input_shape) -> int:
    """The batch size of an input shape (the first of several inputs)."""
    while input_shape and isinstance(input_shape[0], (tuple, list)):
        input_shape = input_shape[0]
    return input_shape[0] if input_shape else 1


def named(name: str, init: Callable, apply: Callable, *, container: bool = False,
          flops: Callable | None = None) -> Layer:
    """Wrap a layer's init so that it reports a `Row` (depth, name, output shape, parameter count, FLOPs) to an
    active recorder. `flops(input_shape, output_shape, params)` counts the forward pass of the whole input batch
    (a multiply-add is 2; see `funcnn.describe`); the row holds it per example.

    Containers (combinators) report their own row, and their children report one level deeper.
    """

    def recorded_init(rng, input_shape):
        rows = _RECORDER.get()
        if rows is None:
            return init(rng, input_shape)
        depth, key = _DEPTH.get(), _KEY.get()
        index = len(rows)
        rows.append(None)
        token, unkeyed = _DEPTH.set(depth + 1), _KEY.set(None)  # a layer's inner layers are not its parent's children
        try:
            out_shape, params, state = init(rng, input_shape)
        finally:
            _DEPTH.reset(token)
            _KEY.reset(unkeyed)
        per_example = None
        if not container:
            total = flops(input_shape, out_shape, params) if flops is not None else 0
            per_example = int(total // max(_batch(input_shape), 1))
        rows[index] = Row(depth, name, out_shape, _count(params), container, per_example, key)
        return out_shape, params, state

    recorded_init.layer_name = name
    return Layer(recorded_init, apply)


def init_child(key: str, layer: Layer, rng, input_shape):
    """Initialise a combinator's child, telling an active recorder its key (`funcnn.summary` shows the params keys,
    the names `describe.conv_paths` and the named scopes use)."""
    token = _KEY.set(key)
    try:
        return layer.init(rng, input_shape)
    finally:
        _KEY.reset(token)


def apply_child(key: str, layer: Layer, params, state, x, **kwargs):
    """Apply a combinator's child under `jax.named_scope(key)`: every operation traced inside, and its derivatives,
    carry the layer's path ("3_Conv", "1_BasicBlock/0_residual/...") in jaxprs, compiled programs and profiles
    (`funcnn.describe.conv_paths` reads it)."""
    with jax.named_scope(key):
        return layer.apply(params, state, x, **kwargs)


def by_rank(kind: str, name: str, shape) -> Callable:
    """The primitive `funcnn.primitives.{kind}{nd}d` for an input of this shape (nd = its spatial axes, 1 to 3);
    ValueError naming the layer and the shape otherwise. Layers take their spatial rank from the input."""
    nd = len(shape) - 2
    if nd not in SPATIAL_AXES:
        shapes = [f"(N, {', '.join(letters)}, C)" for letters in SPATIAL_AXES.values()]
        raise ValueError(f"{name}: input must be {', '.join(shapes[:-1])} or {shapes[-1]}, got shape {tuple(shape)}")
    return getattr(primitives, f"{kind}{nd}d")


def elementwise(ops_per_entry: int = 1) -> Callable:
    """A FLOPs count of `ops_per_entry` operations per entry of the output."""
    return lambda input_shape, out_shape, params: ops_per_entry * math.prod(out_shape)


def stateless(name: str, init: Callable, apply: Callable, *, flops: Callable | None = None) -> Layer:
    """Lift a stax-style stateless pair into the layer contract (state {} passes through unchanged)."""

    def full_init(rng, input_shape):
        out_shape, params = init(rng, input_shape)
        return out_shape, params, {}

    def full_apply(params, state, x, *, train=False, rng=None):
        return apply(params, x, train=train, rng=rng), state

    return named(name, full_init, full_apply, flops=flops)


def parameterless(name: str, shape_fn: Callable, fn: Callable, *, flops: Callable | None = None) -> Layer:
    """A layer with neither parameters nor state: y = fn(x), output shape = shape_fn(input_shape)."""
    return stateless(name, lambda rng, s: (shape_fn(s), {}), lambda params, x, **_: fn(x), flops=flops)
