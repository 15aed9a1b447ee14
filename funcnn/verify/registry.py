"""The checker's view of the configurations the primitives define beside their rules: funcnn's table
(`funcnn.primitives.CASE_GENERATORS`) and the generators registered with `register_cases`, every generator handed
the literal oracle `funcnn.verify.reference` to build its references from.

    from funcnn.verify.registry import cases
    for case in cases(["conv2d"], full=True):
        check_vjp(case.f, *case.args, reference=case.reference)
"""

from __future__ import annotations

from typing import Iterable

from ..primitives import CASE_GENERATORS
from ..primitives.cases import Case, CaseMaker, cases_for, extensions, register_cases
from ..primitives.cases import cases as _cases, primitive_names as _names
from . import reference


def generators() -> tuple:
    """funcnn's table, then the registered extensions."""
    return (*CASE_GENERATORS, *extensions())


def primitive_names() -> list[str]:
    """The primitives that have cases, sorted."""
    return _names(generators())


def cases(only: Iterable[str] | None = None, *, full: bool = False, seed: int = 0) -> list[Case]:
    """The cases (of the primitives in `only`, when given); the bounded set unless `full`."""
    return _cases(generators(), reference, only, full=full, seed=seed)


__all__ = ["Case", "CaseMaker", "cases", "cases_for", "generators", "primitive_names", "register_cases"]
