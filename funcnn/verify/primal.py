"""The primal of a function with hand-written rules: every rule carrier replaced by the forward computation it
holds, so that JAX differentiates that computation itself.

    reference = primal_of(f)        # f may be a custom_vjp, a custom_jvp, a funcnn primitive, or any function that
                                    # calls one (funcnn.conv2d, a model)
    jax.vjp(reference, x)           # JAX's own autodiff of f's forward: an independent check of f's rules

The function is traced to a jaxpr and evaluated equation by equation; a `custom_vjp_call` or `custom_jvp_call`
equation is evaluated as its primal jaxpr (the body the decorator wraps), a funcnn primitive as its forward `impl`
(lax operations). Any other equation that holds a jaxpr with a rule in it (control flow, jit, checkpoint / remat,
closed calls) is bound again around the primal of that jaxpr: found by structure, so the names JAX gives these
wrappers, which change between releases, are never listed here.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
from jax.extend import core as jcore

# the JAX names the checker reads jaxprs with (documented in jax.extend); a test names any that moves
REQUIRED_API = ("jax.extend.core.ClosedJaxpr", "jax.extend.core.Jaxpr", "jax.extend.core.Literal",
                "jax.extend.core.DropVar", "jax.make_jaxpr")
_CUSTOM_VJP = "custom_vjp_call"
_CUSTOM_CALLS = {_CUSTOM_VJP, "custom_jvp_call"}


def _op(eqn):
    """The funcnn primitive an equation applies (None for any other operation)."""
    from ..primitives.carrier import op_of  # here: checking a user's own op loads none of funcnn's primitives

    return op_of(eqn.primitive)


def _sub_jaxprs(params):
    """The (closed or open) jaxprs held in an equation's parameters."""
    for value in params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                yield item


def _open(jaxpr):
    return jaxpr.jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jaxpr


def has_custom_vjp(jaxpr) -> bool:
    """Whether a jaxpr, or one nested in it, calls a custom_vjp."""
    for eqn in _open(jaxpr).eqns:
        if eqn.primitive.name == _CUSTOM_VJP or any(has_custom_vjp(j) for j in _sub_jaxprs(eqn.params)):
            return True
    return False


def has_rules(jaxpr) -> bool:
    """Whether a jaxpr, or one nested in it, holds a hand-written rule: a custom_vjp, a custom_jvp or a funcnn
    primitive."""
    for eqn in _open(jaxpr).eqns:
        if eqn.primitive.name in _CUSTOM_CALLS or _op(eqn) is not None or any(
                has_rules(j) for j in _sub_jaxprs(eqn.params)):
            return True
    return False


def _evaluate(jaxpr, consts, args):
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
        outs = _equation(eqn, [read(v) for v in eqn.invars])
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for v, out in zip(eqn.outvars, outs):
            write(v, out)
    return [read(v) for v in jaxpr.outvars]


def _evaluate_closed(closed, args):
    if isinstance(closed, jcore.ClosedJaxpr):
        return _evaluate(closed.jaxpr, closed.consts, args)
    return _evaluate(closed, (), args)


def _same_types(jaxpr, eqn) -> bool:
    """Whether a sub-jaxpr takes and returns exactly the equation's operand and result types (a call-like wrapper:
    jit, checkpoint / remat, a closed call), so that evaluating it inline is the equation itself."""
    inner = _open(jaxpr)
    shapes = lambda vs: [(tuple(v.aval.shape), v.aval.dtype) for v in vs]  # noqa: E731
    return shapes(inner.invars) == shapes(eqn.invars) and shapes(inner.outvars) == shapes(eqn.outvars)


def _primal_jaxpr(jaxpr):
    """`jaxpr` (closed or open) with its rules replaced by their forward computations: the same input and output
    types, retraced. None for an open jaxpr whose retrace picked up constants (it cannot hold them)."""
    inner = _open(jaxpr)
    consts = jaxpr.consts if isinstance(jaxpr, jcore.ClosedJaxpr) else ()
    specs = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype, weak_type=getattr(v.aval, "weak_type", False))
             for v in inner.invars]
    closed = jax.make_jaxpr(lambda *a: _evaluate(inner, consts, a))(*specs)
    if isinstance(jaxpr, jcore.ClosedJaxpr):
        return closed
    return None if closed.consts else closed.jaxpr


def _primal_params(params):
    """An equation's parameters with every jaxpr that holds a rule replaced by its primal (None where one cannot
    be: see `_primal_jaxpr`)."""
    failed = []

    def swap(item):
        if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)) and has_rules(item):
            primal = _primal_jaxpr(item)
            if primal is None:
                failed.append(item)
            return primal
        return item

    new = {key: type(value)(swap(v) for v in value) if isinstance(value, (tuple, list)) else swap(value)
           for key, value in params.items()}
    return None if failed else new


def _equation(eqn, invals):
    """One equation evaluated as a primal computation. Found by structure, not by the names JAX gives its wrapper
    primitives (they change between releases: remat2, pjit / jit, closed_call, ...): an equation that holds a jaxpr
    with a rule in it is bound again with each such jaxpr replaced by its primal (control flow: cond, scan, while,
    `lax.platform_dependent`; calls: jit, checkpoint), or, where that jaxpr cannot be replaced, evaluated inline when
    it is a call-like wrapper."""
    if eqn.primitive.name in _CUSTOM_CALLS:
        return _evaluate_closed(eqn.params["call_jaxpr"], invals)
    op = _op(eqn)
    if op is not None:
        out = op.impl(*invals, **eqn.params)
        return list(out) if op.multiple_results else out
    params = eqn.params
    if any(has_rules(j) for j in _sub_jaxprs(params)):
        params = _primal_params(eqn.params)
        if params is None:
            subs = list(_sub_jaxprs(eqn.params))
            if len(subs) == 1 and _same_types(subs[0], eqn):
                return _evaluate_closed(subs[0], invals)
            raise NotImplementedError(f"funcnn.verify.primal_of: a hand-written rule inside a {eqn.primitive.name!r} "
                                      "operation whose body cannot be rebuilt; pass reference= explicitly")
    return eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))


def primal_of(f: Callable) -> Callable:
    """f with every rule carrier it calls (directly or nested: custom_vjp, custom_jvp, funcnn primitives) replaced by
    the forward computation it holds.

    Raises TypeError when f holds no such rule: its own autodiff would then be compared with itself."""

    @functools.wraps(f)
    def primal(*args):
        # Python scalars stay static (a rule's nondiff_argnums take them as they are, never as tracers)
        static = [i for i, a in enumerate(args) if isinstance(a, (bool, int, float, complex, str))]
        traced = [a for i, a in enumerate(args) if i not in static]

        def over_traced(*values):
            it = iter(values)
            return f(*(a if i in static else next(it) for i, a in enumerate(args)))

        closed, out_shape = jax.make_jaxpr(over_traced, return_shape=True)(*traced)
        if not has_rules(closed):
            raise TypeError(f"funcnn.verify: {getattr(f, '__name__', f)!r} holds no hand-written rule (a "
                            "jax.custom_vjp, jax.custom_jvp or funcnn primitive) to check against its primal; pass "
                            "reference= (an independent implementation) instead")
        flat = jax.tree_util.tree_leaves(traced)
        outs = _evaluate(closed.jaxpr, closed.consts, flat)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outs)

    return primal


__all__ = ["primal_of", "has_custom_vjp", "has_rules", "REQUIRED_API"]
