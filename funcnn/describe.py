"""Describing a model without data: `count_params`, `summary` (the layer table from `init` alone) and
`paths_table` (which algorithm computes each convolution's rules)."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.extend.core import jaxprs_in_params

from .layers.base import recording
from .primitives.conv import engines, paths, rules


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays (or of ShapeDtypeStructs)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _shape_text(shape) -> str:
    if shape and isinstance(shape[0], (tuple, list)):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _flops_text(n) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def summary(init, input_shape, *, rng=None, print_table: bool = True) -> str:
    """A table of every layer (nested by combinator), its output shape, parameter count and forward FLOPs per
    example, and the totals. Runs `init` under `jax.eval_shape`, so no parameter is allocated (VGG-16's 138M
    included).

    FLOPs count a multiply-add as 2 (convolutions, dense layers), one operation per window entry for pooling, per
    output entry for activations and sums, 4 per entry for normalisation; a combinator's row holds its children's
    sum in parentheses.
    """
    rng = jax.random.PRNGKey(0) if rng is None else rng
    captured = {}

    def shapes_only(r):
        out_shape, params, state = init(r, tuple(input_shape))
        captured["out"] = out_shape
        return params, state

    with recording() as rows:
        params, state = jax.eval_shape(shapes_only, rng)
    flops = [row.flops for row in rows]
    for i, row in enumerate(rows):  # a container's FLOPs: its descendants' (the rows below it, one level deeper)
        if row.container:
            total, j = 0, i + 1
            while j < len(rows) and rows[j].depth > row.depth:
                total += rows[j].flops or 0
                j += 1
            flops[i] = total
    names = [r.key or r.name for r in rows]  # the params keys ("0_Conv"), as in conv_paths; the model's own name
    width = max([len("  " * r.depth + n) for r, n in zip(rows, names)] + [5]) + 2
    lines = [f"{'Layer':<{width}}{'Output shape':<28}{'Params':>14}{'FLOPs':>12}", "-" * (width + 54)]
    for row, f, name in zip(rows, flops, names):
        count = f"({row.params:,})" if row.container else f"{row.params:,}"
        fl = f"({_flops_text(f)})" if row.container else _flops_text(f)
        lines.append(f"{'  ' * row.depth + name:<{width}}{_shape_text(row.out_shape):<28}{count:>14}{fl:>12}")
    lines.append("-" * (width + 54))
    total_flops = sum(row.flops for row in rows if not row.container)
    lines.append(f"Input shape: {_shape_text(tuple(input_shape))}   Output shape: {_shape_text(captured['out'])}")
    lines.append(f"Total parameters: {count_params(params):,}   State (not trained): {count_params(state):,}   "
                 f"Forward FLOPs per example: {total_flops:,} ({_flops_text(total_flops)})")
    table = "\n".join(lines)
    if print_table:
        print(table)
    return table


def total_flops(init, input_shape) -> int:
    """The forward FLOPs per example of a model (the sum of `summary`'s rows), without allocating anything."""
    with recording() as rows:
        jax.eval_shape(lambda r: init(r, tuple(input_shape))[1:], jax.random.PRNGKey(0))
    return sum(row.flops for row in rows if not row.container)


class Choice(NamedTuple):
    """One convolution rule of one layer, as the traced gradient runs it."""

    label: str      # the layer's path ("3_Conv", "1_stage/0_block/..."); "" outside any layer
    role: str       # "forward", "dX", "dW", or "dY" (a transposed convolution's input gradient)
    path: str       # the `algorithm` parameter of the op (the table's or the pinned path)
    backend: str    # what runs on the default backend: `path`, or "canonical" for a CPU path elsewhere
    engine: str     # what runs it on the CPU (`conv.engines.engine`: YNNPACK, Eigen, matmul, loops); "XLA" elsewhere


_TRANSFORM = re.compile(r"\w+\(|\)")  # the transforms wrapped around a name stack: "transpose(jvp(0_Conv))"


def _equations(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in it (jit, remat, control flow), in order."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jaxprs_in_params(eqn.params):
            yield from _equations(sub)


def conv_paths(model, input_shape, *, rng=None, cpu_engine: str | None = None) -> list:
    """Which algorithm computes each convolution's forward, dX and dW on the default backend, by layer, and in which
    engine, for a step traced and compiled for `cpu_engine` (`conv.engines.tracing_for` and `compiler_options`;
    None: the process's default, what funcnn.train's steps and a plain `jax.jit` of funcnn's ops both use, "xla":
    a plain `jax.jit` with the oneDNN engine off).

    Traces the gradient of the model's training-mode output to a jaxpr (nothing is compiled or allocated) and reads
    every conv-family equation: its `algorithm` parameter, its operand shapes (the engine depends on them: `input_shape`
    includes the batch), and its layer from the name scope the layers put around their children (a backward
    equation carries its forward's scope inside "transpose(...)"). Returns `Choice`s, one per (layer, role), in the
    order the gradient computes them.
    """
    cpu_engine = engines.resolve(cpu_engine)  # a named error for an unknown setting
    on_cpu = jax.default_backend() == "cpu"

    init, apply = model
    rng = jax.random.PRNGKey(0) if rng is None else rng
    _, params, state = jax.eval_shape(lambda r: init(r, tuple(input_shape)), rng)
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)

    def loss(params, state, x):
        out, _ = apply(params, state, x, train=True, rng=rng)
        return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(out))

    with engines.tracing_for(cpu_engine):
        closed = jax.make_jaxpr(jax.grad(loss))(params, state, x)
    roles = {(rules.CONV.name, False): "forward", (rules.CONV.name, True): "dY",
             (rules.CONV_TRANSPOSE.name, False): "forward", (rules.CONV_TRANSPOSE.name, True): "dX",
             (rules.CONV_DW.name, False): "dW", (rules.CONV_DW.name, True): "dW"}
    seen, choices = set(), []
    for eqn in _equations(closed.jaxpr):
        stack = str(eqn.source_info.name_stack)
        role = roles.get((eqn.primitive.name.removeprefix("funcnn."), "transpose(" in stack))
        if role is None:
            continue
        label = "/".join(part for part in _TRANSFORM.sub("", stack).split("/") if part)
        if (label, role) not in seen:
            seen.add((label, role))
            path = eqn.params["algorithm"]
            runs = paths.on_backend(path, eqn.params["forced"])
            name = eqn.primitive.name.removeprefix("funcnn.")
            case = rules.rule_case(name, eqn.params, [v.aval.shape for v in eqn.invars])
            engine = (engines.engine(runs, *case, eqn.invars[0].aval.dtype, cpu_engine) if on_cpu else "XLA")
            choices.append(Choice(label, role, path, runs, engine))
    return choices


def paths_table(model, input_shape, *, cpu_engine: str | None = None, print_table: bool = True) -> str:
    """`conv_paths` as a table: one row per convolution layer, the path and engine of its forward, dX and dW on
    this backend. `input_shape` includes the batch (a dW's engine can depend on it)."""
    cpu_engine = engines.resolve(cpu_engine)
    choices = conv_paths(model, input_shape, cpu_engine=cpu_engine)
    backend = jax.default_backend()
    by_layer: dict = {}
    for c in choices:
        by_layer.setdefault(c.label or "(unnamed)", {})[c.role] = f"{c.backend} / {c.engine}"
    width = max([len(k) for k in by_layer] + [5]) + 2
    where = f"cpu_engine={cpu_engine!r}" if backend == "cpu" else "engines chosen by XLA"
    lines = [f"Convolution paths / engines on {backend}, batch {input_shape[0]}, {where}",
             "(paths: funcnn.primitives.conv.rules.TABLE; engines: funcnn.primitives.conv.engines)",
             f"{'Layer':<{width}}{'forward':<26}{'dX / dY':<26}{'dW':<26}", "-" * (width + 78)]
    for label, roles in by_layer.items():
        lines.append(f"{label:<{width}}{roles.get('forward', '-'):<26}{roles.get('dX', roles.get('dY', '-')):<26}"
                     f"{roles.get('dW', '-'):<26}")
    if not by_layer:
        lines.append("(no convolution)")
    table = "\n".join(lines)
    if print_table:
        print(table)
    return table
