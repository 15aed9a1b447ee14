"""The sweep behind `python -m funcnn.verify` (and `funcnn gradcheck`): every registered case of every primitive
through `check_vjp`, with a progress bar, one summary row per primitive, and exit status 1 on any failure.

The module imports nothing but the standard library at load time, so that `funcnn gradcheck --help` (whose
options are `add_options` below) answers before JAX is imported."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

CORE_CHECKS = ("forward", "vjp", "jvp", "finite_differences", "adjoint")          # every case
PRIMITIVE_CHECKS = CORE_CHECKS + ("jvp_finite_differences", "hvp", "symbolic_zeros", "dtype", "vmap_tangents",
                                  "vmap_cotangents")                             # each primitive's first case
STRUCTURAL = ("symbolic_zeros", "dtype", "vmap", "vmap_tangents", "vmap_cotangents", "jit", "determinism")


def run_sweep(only: Sequence[str] | None = None, *, full: bool = False, verbose: bool = False, seed: int = 0,
              progress: bool = True, out=None) -> bool:
    """Check every registered case (of the primitives in `only`), in float64; print a table per primitive and the
    report of every failure; return True when all passed.

    The default set is bounded (about 1.5 minutes on two cores): every case runs the forward, VJP, JVP, finite-
    difference and adjoint checks; the first case of each primitive also the JVP's finite differences, the Hessian-
    vector products, symbolic-zero cotangents, dtypes and vmap over tangents and cotangents; and the first case of
    each family (conv, pool, norm, dense, activations, losses) every check. `full=True` runs every registered
    configuration with every check."""
    # here, not at the top: the parser (DESCRIPTION, add_options) builds `funcnn --help` without loading JAX
    import jax
    from tqdm.auto import tqdm

    from .checker import DEFAULT_CHECKS, check_vjp
    from .registry import cases, primitive_names

    out = sys.stdout if out is None else out
    if only:
        known = primitive_names()
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise ValueError(f"unknown primitive {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    rows: dict[str, list] = {}
    failures, families, primitives = [], set(), set()
    with jax.enable_x64(True):
        todo = cases(only, full=full, seed=seed)
        worst = 0.0
        bar = tqdm(todo, desc="verify", unit="case", disable=None if progress else True, file=sys.stderr,
                   dynamic_ncols=True)
        for case in bar:
            bar.set_postfix_str(f"{case.primitive} {case.label[:30]} | worst rel err {worst:.1e}")
            checks = (DEFAULT_CHECKS if full or case.family not in families else
                      PRIMITIVE_CHECKS if case.primitive not in primitives else CORE_CHECKS)
            families.add(case.family)
            primitives.add(case.primitive)
            report = check_vjp(case.f, *case.args, reference=case.reference, seed=seed, checks=checks,
                               **case.options)
            worst = max([worst] + [r.rel_err for r in report.rows if r.rel_err is not None
                                   and r.check != "determinism"])
            rows.setdefault(case.primitive, []).append(report)
            if verbose:
                print(f"{case.primitive} {case.label}\n{report}\n", file=out)
            if not report.ok:
                failures.append((case, report))
        bar.close()
    _print_table(rows, out)
    for case, report in failures:
        print(f"\nFAILED {case.primitive} {case.label}\n{report}", file=out)
    if not rows:
        print("no case matched", file=out)
        return False
    configs = sum(len(r) for r in rows.values())
    print(f"\n{configs} configuration{'s' * (configs != 1)} of {len(rows)} primitive{'s' * (len(rows) != 1)}"
          + ("" if full else " (the bounded set; --full for every configuration)") + ": "
          + ("all passed" if not failures else f"{len(failures)} FAILED"), file=out)
    return not failures


def _print_table(rows: dict, out) -> None:
    """One line per primitive: its configurations' worst errors per check and whether all passed."""
    header = (f"{'primitive':<22} {'configs':>7} {'vjp vs ref':>11} {'jvp vs ref':>11} {'vs FD (f64)':>12} "
              f"{'adjoint':>9} {'grad of grad':>13} {'hvp':>9} {'vmap/jit/determinism':>21}  pass")
    print(header, file=out)
    print("-" * len(header), file=out)
    for name, reports in rows.items():
        def worst_of(check):
            values = [r.worst(check) for r in reports if r.worst(check) is not None]
            return f"{max(values):.2e}" if values else "-"

        structural = all(row.ok for r in reports for row in r.rows if row.check in STRUCTURAL)
        fd = max([float(v) for v in (worst_of("finite_differences"), worst_of("jvp_finite_differences"))
                  if v != "-"], default=None)
        print(f"{name:<22} {len(reports):>7} {worst_of('vjp'):>11} {worst_of('jvp'):>11} "
              f"{'-' if fd is None else f'{fd:.2e}':>12} {worst_of('adjoint'):>9} {worst_of('grad_of_grad'):>13} "
              f"{worst_of('hvp'):>9} {'ok' if structural else 'FAILED':>21}  "
              f"{'yes' if all(r.ok for r in reports) else 'NO'}", file=out)


DESCRIPTION = ("Check every funcnn primitive's hand-written rules: the VJP and the JVP against autodiff of the literal "
               "reference, float64 finite differences, the adjoint identity, second derivatives both ways, vmap, jit "
               "and determinism. Exit status 1 on a failure.")


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The sweep's options, on `python -m funcnn.verify` and on `funcnn gradcheck` alike."""
    parser.add_argument("--primitive", action="append", metavar="NAME",
                        help="check only this primitive (repeatable; --list shows the names)")
    parser.add_argument("--full", action="store_true", help="every registered configuration with every check "
                                                            "(minutes), not the bounded default set (about 110 s on "
                                                            "2 cores)")
    parser.add_argument("--verbose", action="store_true", help="print the report of every configuration")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs and cotangents")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list the registered primitives and exit")
    return parser


def build_parser(prog: str = "python -m funcnn.verify") -> argparse.ArgumentParser:
    return add_options(argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                               formatter_class=argparse.ArgumentDefaultsHelpFormatter))


def run_args(args) -> int:
    """What the parsed options ask for (`--list`, or the sweep): the exit status, 0 or 1 (1: a check failed).
    ValueError for an unknown primitive. Shared by `python -m funcnn.verify` and `funcnn gradcheck`."""
    if args.seed < 0:
        raise ValueError(f"--seed must be an integer >= 0 (NumPy's generator seeds the inputs), got {args.seed}")
    if args.list:
        from .registry import primitive_names  # here: as in run_sweep, the parser loads no JAX

        print("\n".join(primitive_names()))
        return 0
    ok = run_sweep(args.primitive, full=args.full, verbose=args.verbose, seed=args.seed,
                   progress=not args.no_progress)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None, prog: str = "python -m funcnn.verify") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return run_args(args)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2


__all__ = ["run_sweep", "add_options", "build_parser", "run_args", "main", "DESCRIPTION"]
