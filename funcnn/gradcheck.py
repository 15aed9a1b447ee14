"""The earlier name of `funcnn.verify`: importing it warns once (a FutureWarning, shown to scripts by default) and it
goes in the release after 0.1. Existing code runs unchanged until then.

`check_vjp(f, reference, *args, fd=True, ...)` here takes the reference as its second positional argument and runs
the checks of the first version: the forward and VJP against the reference, and finite differences (fd=True).
`funcnn.verify.check_vjp(f, *args, reference=None, ...)` runs every check and finds a reference by itself.
`python -m funcnn.gradcheck` is `python -m funcnn.verify`.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

warnings.warn("funcnn.gradcheck is deprecated and goes in the next release: use funcnn.verify.check_vjp(f, *args, "
              "reference=..., checks=...) and python -m funcnn.verify", FutureWarning, stacklevel=2)

from .verify.checker import ArgumentReport, VJPReport, default_rtol  # noqa: E402
from .verify.checker import check_vjp as _check_vjp  # noqa: E402
from .verify.sweep import main, run_sweep  # noqa: E402


def check_vjp(f: Callable, reference: Callable | None, *args: Any, fd: bool = True, **options) -> VJPReport:
    """Compare the VJP of `f` with jax.vjp(reference) (unless reference is None) and, with fd=True, with float64
    central differences: `funcnn.verify.check_vjp` restricted to those checks."""
    checks = (("forward", "vjp") if reference is not None else ()) + (("finite_differences",) if fd else ())
    if not checks:
        raise ValueError("check_vjp: nothing to check (reference=None and fd=False)")
    if reference is None:
        reference = lambda *a: f(*a)  # noqa: E731 - unused: no reference check runs
    return _check_vjp(f, *args, reference=reference, checks=checks, **options)


__all__ = ["ArgumentReport", "VJPReport", "check_vjp", "default_rtol", "run_sweep", "main"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m funcnn.gradcheck"))
