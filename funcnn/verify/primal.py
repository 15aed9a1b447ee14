"""The primal of a function with hand-written rules: every rule carrier replaced by the forward computation it
holds, so that JAX differentiates that computation itself.

    reference = primal_of(f)        # f may be a custom_vjp, a custom_jvp, a funcnn primitive, or any function that
                                    # calls one (funcnn.conv2d, a model)
    jax.vjp(reference, x)           # JAX's own autodiff of f's forward: an independent check of f's rules

The rewrite is `funcnn.primitives.lax_view`'s (the one `funcnn.as_lax` makes), with custom_vjp / custom_jvp calls
inlined too: a `custom_vjp_call` or `custom_jvp_call` equation is evaluated as its primal jaxpr (the body the
decorator wraps), a funcnn primitive as its forward `impl` (lax operations), and any other equation that holds a
jaxpr with a rule in it (control flow, jit, checkpoint / remat, closed calls) is bound again around the primal of
that jaxpr. Unlike `as_lax`, the conv paths stay as both platforms' forms (`lax.platform_dependent`), as funcnn
runs them.
"""

from __future__ import annotations

import functools
from typing import Callable

from ..primitives.lax_view import CUSTOM_VJP, REQUIRED_API, Rewrite, open_jaxpr, sub_jaxprs

_PRIMAL = Rewrite(custom_calls=True)


def has_custom_vjp(jaxpr) -> bool:
    """Whether a jaxpr, or one nested in it, calls a custom_vjp."""
    for eqn in open_jaxpr(jaxpr).eqns:
        if eqn.primitive.name == CUSTOM_VJP or any(has_custom_vjp(j) for j in sub_jaxprs(eqn.params)):
            return True
    return False


def has_rules(jaxpr) -> bool:
    """Whether a jaxpr, or one nested in it, holds a hand-written rule: a custom_vjp, a custom_jvp or a funcnn
    primitive."""
    return _PRIMAL.holds(jaxpr)


def primal_of(f: Callable) -> Callable:
    """f with every rule carrier it calls (directly or nested: custom_vjp, custom_jvp, funcnn primitives) replaced by
    the forward computation it holds.

    Raises TypeError when f holds no such rule: its own autodiff would then be compared with itself."""

    @functools.wraps(f)
    def primal(*args):
        return _PRIMAL.apply(f, args, {}, require=(
            f"funcnn.verify: {getattr(f, '__name__', f)!r} holds no hand-written rule (a jax.custom_vjp, "
            "jax.custom_jvp or funcnn primitive) to check against its primal; pass reference= (an independent "
            "implementation) instead"))

    return primal


__all__ = ["primal_of", "has_custom_vjp", "has_rules", "REQUIRED_API"]
