"""Verification of hand-written derivative rules: `check_vjp` / `assert_vjp`, the literal `reference`, and the sweep
over every funcnn primitive (`python -m funcnn.verify`).

    from funcnn.verify import check_vjp, assert_vjp
    print(check_vjp(my_custom_vjp_op, x, w))          # reference: the op's own primal, differentiated by JAX
    assert_vjp(my_op, x, w, reference=my_reference)   # in a test suite: AssertionError with the report's table

Submodules and names load on first use (PEP 562): importing one piece (the case registry, the command's parser)
does not import the checker, and importing the primitives imports nothing of this package.
"""

from __future__ import annotations

from ..lazy import lazy_attributes

_NAMES = {
    **dict.fromkeys(("CHECKS", "DEFAULT_CHECKS", "Row", "VJPReport", "assert_vjp", "check_vjp", "default_rtol",
                     "scatter_ops"), "checker"),
    "check": "checks",  # the decorator that adds a row to the table of checks
    **dict.fromkeys(("has_custom_vjp", "has_rules", "primal_of"), "primal"),
    **dict.fromkeys(("Case", "CaseMaker", "cases", "cases_for", "primitive_names", "register_cases"), "registry"),
    **dict.fromkeys(("main", "run_sweep"), "sweep"),
}
_SUBMODULES = ("checker", "checks", "finite", "primal", "reference", "registry", "result", "sweep")

__all__ = ["reference", *_NAMES]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _NAMES, _SUBMODULES)
