"""The checker's view of the cases the primitives register beside their rules (`funcnn.primitives.cases`): the
same registry, with every generator handed the literal oracle `funcnn.verify.reference` to build its references
from.

    from funcnn.verify.registry import cases
    for case in cases(["conv2d"], full=True):
        check_vjp(case.f, *case.args, reference=case.reference)
"""

from __future__ import annotations

from typing import Iterable

from ..primitives.cases import Case, CaseMaker, primitive_names, register_cases
from ..primitives.cases import cases as _registered


def cases(only: Iterable[str] | None = None, *, full: bool = False, seed: int = 0) -> list[Case]:
    """The registered cases (of the primitives in `only`, when given); the bounded set unless `full`."""
    from . import reference

    return _registered(reference, only, full=full, seed=seed)


__all__ = ["Case", "CaseMaker", "cases", "primitive_names", "register_cases"]
