"""What `check_vjp` reports: one `Row` per (check, argument), collected in a `VJPReport`, and the comparison that
fills a row (normwise relative error, the worst entry's index and both values there)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


def default_rtol(dtype) -> float:
    """Normwise relative tolerance for comparing two computations of the same quantity in `dtype`."""
    info = jnp.finfo(dtype)
    if info.bits >= 64:
        return 1e-9
    if info.bits == 32:
        return 2e-5
    return 3e-2 if info.nmant < 8 else 5e-3  # bfloat16 (7-bit mantissa), float16 (10-bit)


class Comparison(NamedTuple):
    abs_err: float
    rel_err: float
    index: tuple | None
    got: float | None
    want: float | None
    vacuous: str = ""      # "zeros" or "NaN": every compared entry was 0 (or NaN) on both sides; "empty": none


def compare(got, want) -> Comparison:
    """Normwise comparison of two arrays of one shape: max |got - want| / max |want|. NaN against NaN counts as
    equal, NaN against a number as infinitely far."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise ValueError(f"shapes differ: got {got.shape}, want {want.shape}")
    if got.size == 0:  # an empty batch (N = 0): nothing differs, and nothing was compared
        return Comparison(0.0, 0.0, None, None, None, "empty")
    diff = np.abs(got - want)
    diff = np.where(np.isnan(got) != np.isnan(want), np.inf, np.nan_to_num(diff, nan=0.0))
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    err = float(diff[index])
    scale = float(np.max(np.abs(np.nan_to_num(want)), initial=0.0))
    vacuous = ("NaN" if np.isnan(got).all() and np.isnan(want).all()
               else "zeros" if not np.any(got) and not np.any(want) else "")
    return Comparison(err, err / scale if scale > 0 else err, index, float(got[index]), float(want[index]), vacuous)


def worse(a: Comparison | None, b: Comparison | None) -> Comparison | None:
    """The comparison with the larger relative error; a vacuous one only when both are."""
    if a is None or b is None:
        return a if b is None else b
    worst = b if b.rel_err > a.rel_err else a
    return worst._replace(vacuous=a.vacuous if a.vacuous == b.vacuous else "")


@dataclasses.dataclass
class Row:
    """One check of one argument: the worst error, where it is, and both values there."""

    check: str
    argument: str
    shape: tuple
    abs_err: float | None = None
    rel_err: float | None = None
    tol: float | None = None
    index: tuple | None = None
    got: float | None = None
    want: float | None = None
    ok: bool = True
    note: str = ""
    vacuous: str = ""      # the row compared only zeros (or NaN) with zeros (or NaN): it passed, but proved nothing
    skipped: bool = False  # the check did not apply (the note says why)

    @classmethod
    def skip(cls, check, why: str):
        return cls(check, "-", (), ok=True, note=why, skipped=True)

    @classmethod
    def of(cls, check, argument, shape, comparison: Comparison | None, tol, note=""):
        if comparison is None:
            return cls(check, argument, shape, ok=True, note=note or "skipped", skipped=True)
        c = comparison
        return cls(check, argument, shape, c.abs_err, c.rel_err, tol, c.index, c.got, c.want,
                   ok=bool(c.rel_err <= tol), note=note, vacuous=c.vacuous)

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "NO"
        if self.skipped:
            return "skip"
        return self.vacuous if self.vacuous else "yes"


@dataclasses.dataclass
class ArgumentReport:
    """Compatibility view (funcnn.gradcheck): the errors of one argument against the reference and the FD."""

    name: str
    shape: tuple
    abs_vs_reference: float | None
    rel_vs_reference: float | None
    abs_vs_fd: float | None
    rel_vs_fd: float | None
    ok: bool


@dataclasses.dataclass
class VJPReport:
    """The outcome of `check_vjp`: one `Row` per (check, argument); `ok` when every row passed. A row whose
    pass column reads "zeros" or "NaN" passed without proving anything (both sides were all zero, or all NaN)."""

    rows: list
    reference: str
    dtype: str
    rtol: float
    fd_rtol: float
    fd_mode: str
    order: tuple = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list:
        return [r for r in self.rows if not r.ok]

    @property
    def vacuous(self) -> list:
        return [r for r in self.rows if r.ok and r.vacuous]

    @property
    def checks(self) -> list:
        return list(dict.fromkeys(r.check for r in self.rows))

    def worst(self, check: str) -> float | None:
        """The largest relative error of one check over the arguments (None if it did not run)."""
        values = [r.rel_err for r in self.rows if r.check == check and r.rel_err is not None]
        return max(values) if values else None

    # -- the funcnn.gradcheck view ------------------------------------------------------------------------------
    @property
    def forward_rel(self) -> float | None:
        return self.worst("forward")

    @property
    def worst_rel_vs_reference(self) -> float | None:
        return self.worst("vjp")

    @property
    def worst_rel_vs_fd(self) -> float | None:
        return self.worst("finite_differences")

    @property
    def arguments(self) -> list:
        names = list(dict.fromkeys(r.argument for r in self.rows if r.check not in ("forward", "no_scatter")))
        out = []
        for name in names:
            rows = {r.check: r for r in self.rows if r.argument == name}
            ref, fd = rows.get("vjp"), rows.get("finite_differences")
            shape = next(iter(rows.values())).shape
            out.append(ArgumentReport(name, shape, ref and ref.abs_err, ref and ref.rel_err, fd and fd.abs_err,
                                      fd and fd.rel_err, all(r.ok for r in rows.values())))
        return out

    def __str__(self) -> str:
        def num(v):
            return "-" if v is None else f"{v:.2e}"

        def val(v):
            return "-" if v is None else f"{v:.6g}"

        header = (f"{'check':<22} {'argument':<16} {'shape':<14} {'abs err':>9} {'rel err':>9} {'tol':>8} "
                  f"{'worst at':<12} {'got':>12} {'want':>12}  pass")
        lines = [f"reference: {self.reference}; dtype {self.dtype}; finite differences: {self.fd_mode}", header,
                 "-" * len(header)]
        for r in self.rows:
            where = "-" if r.index is None else str(tuple(int(i) for i in r.index)).replace(" ", "")
            lines.append(f"{r.check:<22} {r.argument:<16} {str(r.shape).replace(' ', ''):<14} {num(r.abs_err):>9} "
                         f"{num(r.rel_err):>9} {num(r.tol):>8} {where:<12} {val(r.got):>12} {val(r.want):>12}  "
                         f"{r.verdict}" + (f"  ({r.note})" if r.note else ""))
        rank = {c: i for i, c in enumerate(self.order)}
        failed = sorted({r.check for r in self.failures}, key=lambda c: rank.get(c, len(rank)))
        lines.append("PASS" if self.ok else "FAIL: " + ", ".join(failed))
        return "\n".join(lines)

    def raise_if_failed(self):
        if not self.ok:
            raise AssertionError("VJP check failed:\n" + str(self))


__all__ = ["default_rtol", "Comparison", "compare", "worse", "Row", "ArgumentReport", "VJPReport"]
