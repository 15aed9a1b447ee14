"""The configurations each primitive is checked at (`python -m funcnn.verify`, the tests): `Case`, `CaseMaker`, and
`cases_for`, which names the primitives a generator of cases covers.

A primitive family writes its generator next to its definition:

    from .cases import cases_for

    @cases_for("max_pool2d", "avg_pool2d")
    def pool_cases(make, ref):                # make: a CaseMaker (random inputs, Case construction);
        x = make.normal(2, 7, 8, 3)          # ref: funcnn.verify.reference, the literal oracle
        yield make.case("max_pool2d", "3x3/2", lambda x: max_pool2d(x, 3, 2), lambda x: ref.max_pool2d(x, 3, 2), x)

and the table of every family's generator is written out in `funcnn.primitives.CASE_GENERATORS`: nothing is
registered by importing a module. A primitive of your own joins the sweep with `register_cases` (an explicit call,
kept in `extensions()`). This module imports nothing from funcnn; the checker above (`funcnn.verify.registry`) reads
the table and the extensions, and hands each generator the reference module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Case:
    """One configuration of one primitive: f and its reference at the point `args`."""

    primitive: str
    label: str
    f: Callable
    reference: Callable | None
    args: tuple
    quick: bool = True                       # part of the default (bounded) sweep; every case runs with --full
    options: dict = dataclasses.field(default_factory=dict)   # extra check_vjp options (tolerances, fd_mode)
    family: str = ""                         # the primitives registered together (set by `cases`)


class CaseMaker:
    """Random inputs from one seeded generator, and `case(...)` to build a Case."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape, dtype="float64"):
        return jnp.asarray(self.rng.normal(size=shape).astype(dtype))

    def integers(self, low, high, *shape):
        return jnp.asarray(self.rng.integers(low, high, size=shape))

    def case(self, primitive: str, label: str, f: Callable, reference: Callable | None, *args: Any,
             quick: bool = True, **options) -> Case:
        return Case(primitive, label, f, reference, tuple(args), quick, options)


Generator = Callable[[CaseMaker, Any], Iterable[Case]]


def cases_for(*primitives: str):
    """Name the primitives a generator of Cases covers (a family's members together); the generator is returned
    unchanged but for its `primitives` attribute. Listing it in a table is a separate, explicit step."""
    if not primitives:
        raise ValueError("cases_for: name the primitives the generator covers")

    def name(generator):
        generator.primitives = tuple(primitives)
        return generator

    return name


_EXTENSIONS: list[Generator] = []


def register_cases(*primitives: str):
    """`cases_for`, and add the generator to the sweep: for a primitive of your own, outside funcnn's table."""
    named = cases_for(*primitives)

    def register(generator):
        _EXTENSIONS.append(named(generator))
        return generator

    return register


def extensions() -> tuple:
    """The generators `register_cases` added, in the order they were registered."""
    return tuple(_EXTENSIONS)


def primitive_names(generators: Iterable[Generator]) -> list[str]:
    return sorted({name for generator in generators for name in generator.primitives})


def cases(generators: Iterable[Generator], reference, only: Iterable[str] | None = None, *, full: bool = False,
          seed: int = 0) -> list[Case]:
    """The cases `generators` make (of the primitives in `only`, when given), built against `reference` (the
    literal oracle module they take their references from); the bounded set unless `full`."""
    wanted = None if only is None else set(only)
    found = []
    for generator in generators:
        names = generator.primitives
        if wanted is not None and not wanted & set(names):
            continue
        for case in generator(CaseMaker(seed), reference):
            if case.primitive not in names:
                raise ValueError(f"cases_for: a generator for {names} made a case of {case.primitive!r}")
            if (wanted is None or case.primitive in wanted) and (full or case.quick):
                found.append(dataclasses.replace(case, family=" ".join(names)))
    return found


__all__ = ["Case", "CaseMaker", "cases_for", "register_cases", "extensions", "primitive_names", "cases"]
