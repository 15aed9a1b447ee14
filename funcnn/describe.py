"""count_params and summary: parameter counts and a per-layer table computed from `init` alone (no data)."""

from __future__ import annotations

import math

import jax

from .layers.base import recording


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays (or of ShapeDtypeStructs)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _shape_text(shape) -> str:
    if shape and isinstance(shape[0], (tuple, list)):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")"


def summary(init, input_shape, *, rng=None, print_table: bool = True) -> str:
    """A table of every layer (nested by combinator), its output shape and parameter count, and the totals.

    Runs `init` under `jax.eval_shape`, so no parameter is allocated (VGG-16's 138M included).
    """
    rng = jax.random.PRNGKey(0) if rng is None else rng
    captured = {}

    def shapes_only(r):
        out_shape, params, state = init(r, tuple(input_shape))
        captured["out"] = out_shape
        return params, state

    with recording() as rows:
        params, state = jax.eval_shape(shapes_only, rng)
    width = max([len("  " * d + name) for d, name, *_ in rows] + [5]) + 2
    lines = [f"{'Layer':<{width}}{'Output shape':<28}{'Params':>14}", "-" * (width + 42)]
    for depth, name, out_shape, n, container in rows:
        count = f"({n:,})" if container else f"{n:,}"
        lines.append(f"{'  ' * depth + name:<{width}}{_shape_text(out_shape):<28}{count:>14}")
    lines.append("-" * (width + 42))
    lines.append(f"Input shape: {_shape_text(tuple(input_shape))}   Output shape: {_shape_text(captured['out'])}")
    lines.append(f"Total parameters: {count_params(params):,}   State (not trained): {count_params(state):,}")
    table = "\n".join(lines)
    if print_table:
        print(table)
    return table
