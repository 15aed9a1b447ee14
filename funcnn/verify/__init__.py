"""Verification of hand-written VJPs: `check_vjp` / `assert_vjp`, the literal `reference`, and the sweep over every
funcnn primitive (`python -m funcnn.verify`).

    from funcnn.verify import check_vjp, assert_vjp
    print(check_vjp(my_custom_vjp_op, x, w))          # reference: the op's own primal, differentiated by JAX
    assert_vjp(my_op, x, w, reference=my_reference)   # in a test suite: AssertionError with the report's table
"""

from . import reference
from .check import CHECKS, DEFAULT_CHECKS, Row, VJPReport, assert_vjp, check, check_vjp, default_rtol, scatter_ops
from .primal import has_custom_vjp, has_rules, primal_of
from .registry import Case, CaseMaker, cases, primitive_names, register_cases
from .sweep import main, run_sweep

__all__ = ["reference", "CHECKS", "DEFAULT_CHECKS", "Row", "VJPReport", "assert_vjp", "check_vjp", "default_rtol",
           "scatter_ops", "check", "primal_of", "has_custom_vjp", "has_rules", "Case", "CaseMaker", "cases", "primitive_names",
           "register_cases", "run_sweep", "main"]
