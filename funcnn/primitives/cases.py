"""Where each primitive registers the configurations it is checked at (`python -m funcnn.verify`, the tests).

A primitive family registers its cases next to its definition, not in a central list:

    from .cases import register_cases

    @register_cases("max_pool2d", "avg_pool2d")
    def _verify_cases(make, ref):            # make: a CaseMaker (random inputs, Case construction);
        x = make.normal(2, 7, 8, 3)          # ref: funcnn.verify.reference, the literal oracle
        yield make.case("max_pool2d", "3x3/2", lambda x: max_pool2d(x, 3, 2), lambda x: ref.max_pool2d(x, 3, 2), x)

This module sits in the primitive layer and imports nothing from funcnn: registering costs a primitive module
nothing, and the checker above (`funcnn.verify`) reads the registry without any arrow pointing back up. The
generators run only when the checker asks for the cases, and receive the reference module from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable


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
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def normal(self, *shape, dtype="float64"):
        import jax.numpy as jnp

        return jnp.asarray(self.rng.normal(size=shape).astype(dtype))

    def integers(self, low, high, *shape):
        import jax.numpy as jnp

        return jnp.asarray(self.rng.integers(low, high, size=shape))

    def case(self, primitive: str, label: str, f: Callable, reference: Callable | None, *args: Any,
             quick: bool = True, **options) -> Case:
        return Case(primitive, label, f, reference, tuple(args), quick, options)


_GENERATORS: list[tuple[tuple[str, ...], Callable[[CaseMaker], Iterable[Case]]]] = []


def register_cases(*primitives: str):
    """Register a generator of Cases for these primitive names (a family registers its members together)."""
    if not primitives:
        raise ValueError("register_cases: name the primitives the generator covers")

    def decorate(generator):
        _GENERATORS.append((primitives, generator))
        return generator

    return decorate


def _load_families():
    """Import every primitive family, so that each has registered."""
    import funcnn.primitives  # noqa: F401


def primitive_names() -> list[str]:
    _load_families()
    return sorted({name for names, _ in _GENERATORS for name in names})


def cases(reference, only: Iterable[str] | None = None, *, full: bool = False, seed: int = 0) -> list[Case]:
    """The registered cases (of the primitives in `only`, when given), built against `reference` (the literal
    oracle module the generators take their references from); the bounded set unless `full`."""
    _load_families()
    wanted = None if only is None else set(only)
    found = []
    for names, generator in _GENERATORS:
        if wanted is not None and not wanted & set(names):
            continue
        for case in generator(CaseMaker(seed), reference):
            if case.primitive not in names:
                raise ValueError(f"register_cases: a generator for {names} made a case of {case.primitive!r}")
            if (wanted is None or case.primitive in wanted) and (full or case.quick):
                found.append(dataclasses.replace(case, family=" ".join(names)))
    return found


__all__ = ["Case", "CaseMaker", "register_cases", "primitive_names", "cases"]
