"""The primal of a function with hand-written rules: every rule carrier replaced by the forward computation it
holds, so that JAX differentiates that computation itself.

    reference = primal_of(f)        # f may be a custom_vjp, a custom_jvp, a funcnn primitive, or any function that
                                    # calls one (funcnn.conv2d, a model)
    jax.vjp(reference, x)           # JAX's own autodiff of f's forward: an independent check of f's rules

The function is traced to a jaxpr and evaluated equation by equation; a `custom_vjp_call` or `custom_jvp_call`
equation is evaluated as its primal jaxpr (the body the decorator wraps), a funcnn primitive as its forward `impl`
(lax operations), and so are the calls and checkpoints that contain one. Control flow that contains one (`cond`,
`scan`, `while`, including `lax.platform_dependent`) is rebuilt around primal jaxprs.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
from jax.extend import core as jcore

_CUSTOM_VJP = "custom_vjp_call"
_CUSTOM_CALLS = {_CUSTOM_VJP, "custom_jvp_call"}
_INLINE = {"jit", "pjit", "closed_call", "core_call", "remat", "checkpoint", "custom_lin"}


def _op(eqn):
    """The funcnn primitive an equation applies (None for any other operation)."""
    from ..primitives.carrier import op_of

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


def _control_flow(name, params, invals):
    """cond / scan / while_loop rebuilt around their bodies evaluated as primal computations."""
    from jax import lax

    if name == "cond":
        index, *operands = invals
        branches = [lambda *ops, b=b: _evaluate_closed(b, ops) for b in params["branches"]]
        return lax.switch(index, branches, *operands)
    if name == "scan":
        nc, ncarry = params["num_consts"], params["num_carry"]
        consts, init, xs = invals[:nc], invals[nc:nc + ncarry], invals[nc + ncarry:]

        def body(carry, x):
            outs = _evaluate_closed(params["jaxpr"], [*consts, *carry, *x])
            return outs[:ncarry], outs[ncarry:]

        carry, ys = lax.scan(body, list(init), list(xs), length=params["length"], reverse=params["reverse"],
                             unroll=params["unroll"])
        return [*carry, *ys]
    if name == "while":
        cn, bn = params["cond_nconsts"], params["body_nconsts"]
        cconsts, bconsts, init = invals[:cn], invals[cn:cn + bn], invals[cn + bn:]
        return lax.while_loop(lambda c: _evaluate_closed(params["cond_jaxpr"], [*cconsts, *c])[0],
                              lambda c: _evaluate_closed(params["body_jaxpr"], [*bconsts, *c]), list(init))
    raise NotImplementedError(f"funcnn.verify.primal_of: a custom_vjp inside a {name!r} operation is not supported; "
                              "pass reference= explicitly")


def _equation(eqn, invals):
    name = eqn.primitive.name
    if name in _CUSTOM_CALLS:
        return _evaluate_closed(eqn.params["call_jaxpr"], invals)
    op = _op(eqn)
    if op is not None:
        out = op.impl(*invals, **eqn.params)
        return list(out) if op.multiple_results else out
    if not any(has_rules(j) for j in _sub_jaxprs(eqn.params)):
        return eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    if name in _INLINE:
        return _evaluate_closed(next(_sub_jaxprs(eqn.params)), invals)
    return _control_flow(name, eqn.params, invals)


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


__all__ = ["primal_of", "has_custom_vjp", "has_rules"]
