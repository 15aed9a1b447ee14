"""The lax view of a function: every funcnn primitive it applies replaced by the forward computation it holds.

    view = funcnn.as_lax(f)                 # same values; its jaxpr holds lax operations only
    jax.make_jaxpr(view)(x)                 # conv_general_dilated, reduce_window, dot_general, ... no `funcnn.*`
    jax2onnx.to_onnx(view, [x])             # what tools that read jaxprs by lax's names need

funcnn's ops are JAX primitives (`carrier`), one equation each, `funcnn.conv[...]`; tools that walk a jaxpr and
know lax's operations by name (ONNX converters, K-FAC's layer matchers, kernel-level rewriters) do not know them.
The view rewrites the program: f is traced to a jaxpr and evaluated equation by equation, each funcnn equation as
its op's `impl` (the lax operations funcnn's lowering emits), every other equation bound as it was, and any
equation holding a jaxpr with a funcnn op in it (jit, checkpoint, scan, cond, while, a custom_jvp / custom_vjp of
yours) rebuilt around that jaxpr's view. Found by structure, not by the names JAX gives its wrappers, which change
between releases.

Under `jax.grad` the view is JAX's own autodiff of those forward computations, not funcnn's hand-written rules:
the rules are what funcnn itself runs; the view is for tools that need lax operations (and is the reference the
checker differentiates, `funcnn.verify.primal_of`, which also inlines custom_vjp / custom_jvp bodies).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from jax.extend import core as jcore

from .carrier import NAMESPACE, OPS, op_of
from .conv.tracing import PLATFORMS, for_platform, use_onednn

# the JAX names the rewrite reads jaxprs with (documented in jax.extend); a test names any that moves
REQUIRED_API = ("jax.extend.core.ClosedJaxpr", "jax.extend.core.Jaxpr", "jax.extend.core.Literal",
                "jax.extend.core.DropVar", "jax.make_jaxpr")
CUSTOM_VJP = "custom_vjp_call"
CUSTOM_CALLS = frozenset({CUSTOM_VJP, "custom_jvp_call"})


def sub_jaxprs(params):
    """The (closed or open) jaxprs held in an equation's parameters."""
    for value in params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                yield item


def open_jaxpr(jaxpr):
    return jaxpr.jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jaxpr


def funcnn_equations(jaxpr) -> list[str]:
    """The names of the funcnn primitives a jaxpr applies, nested jaxprs included (empty for a lax program)."""
    names = []
    for eqn in open_jaxpr(jaxpr).eqns:
        if op_of(eqn.primitive) is not None:
            names.append(eqn.primitive.name)
        for sub in sub_jaxprs(eqn.params):
            names.extend(funcnn_equations(sub))
    return names


class Rewrite:
    """A program rewrite: funcnn equations become their ops' forward computations; `custom_calls` (the checker's
    primal) also inlines every custom_vjp / custom_jvp call as the body it wraps, where the lax view inlines only
    those whose body holds a funcnn op (a custom rule of jax.nn's, with no funcnn op in it, stays as it is). The ops
    in `keep` (full names, "funcnn.max_pool") stay as they are."""

    def __init__(self, custom_calls: bool, keep=frozenset()):
        self.custom_calls = custom_calls
        self.keep = frozenset(keep)

    def replaced(self, eqn):
        """The funcnn Op an equation applies, when this rewrite replaces it (else None)."""
        op = op_of(eqn.primitive)
        return None if op is None or eqn.primitive.name in self.keep else op

    def holds(self, jaxpr) -> bool:
        """Whether a jaxpr, or one nested in it, holds an equation this rewrite replaces."""
        for eqn in open_jaxpr(jaxpr).eqns:
            if (self.custom_calls and eqn.primitive.name in CUSTOM_CALLS) or self.replaced(eqn) is not None or any(
                    self.holds(j) for j in sub_jaxprs(eqn.params)):
                return True
        return False

    def evaluate(self, jaxpr, consts, args):
        env = {}

        def read(v):
            return v.val if isinstance(v, jcore.Literal) else env[v]

        def write(v, value):
            if not isinstance(v, jcore.DropVar):
                env[v] = value

        for v, c in zip(jaxpr.constvars, consts):
            write(v, c)
        for v, a in zip(jaxpr.invars, args):
            write(v, a)
        for eqn in jaxpr.eqns:
            outs = self.equation(eqn, [read(v) for v in eqn.invars])
            if not eqn.primitive.multiple_results:
                outs = [outs]
            for v, out in zip(eqn.outvars, outs):
                write(v, out)
        return [read(v) for v in jaxpr.outvars]

    def evaluate_closed(self, closed, args):
        if isinstance(closed, jcore.ClosedJaxpr):
            return self.evaluate(closed.jaxpr, closed.consts, args)
        return self.evaluate(closed, (), args)

    def rewritten_jaxpr(self, jaxpr):
        """`jaxpr` (closed or open) rewritten: the same input and output types, retraced. None for an open jaxpr
        whose retrace picked up constants (it cannot hold them)."""
        inner = open_jaxpr(jaxpr)
        consts = jaxpr.consts if isinstance(jaxpr, jcore.ClosedJaxpr) else ()
        specs = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype, weak_type=getattr(v.aval, "weak_type", False))
                 for v in inner.invars]
        closed = jax.make_jaxpr(lambda *a: self.evaluate(inner, consts, a))(*specs)
        if isinstance(jaxpr, jcore.ClosedJaxpr):
            return closed
        return None if closed.consts else closed.jaxpr

    def rewritten_params(self, params):
        """An equation's parameters with every jaxpr that holds a replaced equation rewritten (None where one
        cannot be: see `rewritten_jaxpr`)."""
        failed = []

        def swap(item):
            if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)) and self.holds(item):
                new = self.rewritten_jaxpr(item)
                if new is None:
                    failed.append(item)
                return new
            return item

        new = {key: type(value)(swap(v) for v in value) if isinstance(value, (tuple, list)) else swap(value)
               for key, value in params.items()}
        return None if failed else new

    def equation(self, eqn, invals):
        """One equation, rewritten. An equation that holds a jaxpr with a replaced equation in it is bound again with
        each such jaxpr rewritten (control flow: cond, scan, while, `lax.platform_dependent`; calls: jit,
        checkpoint), or, where that jaxpr cannot be rebuilt, evaluated inline when it is a call-like wrapper."""
        if eqn.primitive.name in CUSTOM_CALLS and (self.custom_calls or self.holds(eqn.params["call_jaxpr"])):
            return self.evaluate_closed(eqn.params["call_jaxpr"], invals)
        op = self.replaced(eqn)
        if op is not None:
            with use_onednn(False):  # lax's operations: a conv that took the oneDNN engine takes XLA's path instead
                out = op.impl(*invals, **eqn.params)
            return list(out) if op.multiple_results else out
        params = eqn.params
        if any(self.holds(j) for j in sub_jaxprs(params)):
            params = self.rewritten_params(eqn.params)
            if params is None:
                subs = list(sub_jaxprs(eqn.params))
                if len(subs) == 1 and _same_types(subs[0], eqn):
                    return self.evaluate_closed(subs[0], invals)
                raise NotImplementedError(f"funcnn: a funcnn op or custom rule inside a {eqn.primitive.name!r} "
                                          "operation whose body cannot be rebuilt")
        return eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))

    def apply(self, f: Callable, args, kwargs, *, require: str | None = None):
        """f(*args, **kwargs) rewritten: f traced over its array arguments (anything else, a Python number or
        string, a None, stays static, as a rule's nondiff arguments take them) and the jaxpr evaluated. `require`:
        raise TypeError with this text when the jaxpr holds nothing to replace."""
        leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
        traced = [i for i, leaf in enumerate(leaves) if _is_array(leaf)]

        def over_traced(*values):
            full = list(leaves)
            for i, v in zip(traced, values):
                full[i] = v
            a, k = jax.tree_util.tree_unflatten(treedef, full)
            return f(*a, **k)

        closed, out_shape = jax.make_jaxpr(over_traced, return_shape=True)(*[leaves[i] for i in traced])
        if require is not None and not self.holds(closed):
            raise TypeError(require)
        outs = self.evaluate(closed.jaxpr, closed.consts, [leaves[i] for i in traced])
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outs)


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic)) or hasattr(x, "aval")


def _same_types(jaxpr, eqn) -> bool:
    """Whether a sub-jaxpr takes and returns exactly the equation's operand and result types (a call-like wrapper:
    jit, checkpoint / remat, a closed call), so that evaluating it inline is the equation itself."""
    inner = open_jaxpr(jaxpr)
    shapes = lambda vs: [(tuple(v.aval.shape), v.aval.dtype) for v in vs]  # noqa: E731
    return shapes(inner.invars) == shapes(eqn.invars) and shapes(inner.outvars) == shapes(eqn.outvars)


def as_lax(f: Callable, *, platform: str | None = None, keep=()) -> Callable:
    """f with every funcnn op it applies (directly, or inside jit, checkpoint, scan, cond, while or a custom rule
    of yours) replaced by the op's forward computation: the same values, a jaxpr of lax operations only.

    Args:
      f: any function of arrays (a model's apply, a loss, a primitive); its non-array arguments stay static.
      platform: whose forward computations to take: "cpu" (funcnn's CPU paths: tap matmuls, banded convolutions),
        or "cuda", "rocm", "tpu", "default" (the canonical form, one `lax.conv_general_dilated` per convolution,
        which every platform but the CPU runs); None: JAX's default backend.
      keep: names of funcnn ops to leave as they are ("max_pool", say: for a converter with a rule of its own for
        them, as `funcnn.deploy.export_onnx` has); default none.

    The view composes with `jax.jit` and `jax.vmap`. Under `jax.grad` it is JAX's autodiff of the forward
    computations, not funcnn's hand-written rules (those are what funcnn itself runs): use it for tools that read
    lax programs (ONNX export, K-FAC's layer matching), not to train with."""
    if not callable(f):
        raise TypeError(f"as_lax: f must be callable, got {type(f).__name__}")
    if platform is not None and platform not in PLATFORMS:
        raise ValueError(f"as_lax: unknown platform {platform!r}; known: {', '.join(PLATFORMS)} (or None: JAX's "
                         "default backend)")
    keep = (keep,) if isinstance(keep, str) else tuple(keep)
    unknown = [name for name in keep if NAMESPACE + str(name) not in OPS]
    if unknown:
        raise ValueError(f"as_lax: keep names ops funcnn does not have: {unknown}; known: "
                         f"{', '.join(sorted(name[len(NAMESPACE):] for name in OPS))}")
    rewrite = Rewrite(custom_calls=False, keep={NAMESPACE + name for name in keep})

    @functools.wraps(f)
    def view(*args, **kwargs):
        # funcnn's forms differ only between the CPU and every other platform
        with for_platform(platform or ("cpu" if jax.default_backend() == "cpu" else "default")):
            return rewrite.apply(f, args, kwargs)

    return view


__all__ = ["as_lax", "funcnn_equations", "Rewrite", "REQUIRED_API", "CUSTOM_CALLS", "sub_jaxprs", "open_jaxpr"]
