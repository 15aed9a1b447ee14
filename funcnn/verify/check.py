"""check_vjp: every check a hand-written VJP should pass, run at one point, in one report.

    from funcnn.verify import check_vjp, assert_vjp
    report = check_vjp(my_op, x, w)                    # my_op a jax.custom_vjp, or a function that calls one
    print(report)                                      # one table: each check, each argument, the worst entry
    assert_vjp(my_op, x, w)                            # the same, raising AssertionError with the table (pytest)
    check_vjp(my_op, x, w, reference=my_reference)     # against an independent implementation instead

The checks, each a row per differentiated argument (pytree leaf) in the report:

    forward             f(args) against the reference's output
    vjp                 f's VJP against jax.vjp of the reference, for random cotangents
    finite_differences  f's VJP against central differences in float64, at a point moved off kinks and ties
    grad_of_grad        the gradient of <VJP(ct), v> against the reference's (second derivatives)
    vmap                the VJP under jax.vmap against a loop over the batch
    jit                 the VJP under jax.jit against eager evaluation
    determinism         two runs of the compiled VJP: equal within nondet_tol (0: bitwise)
    no_scatter          (with hlo_platforms=) the VJP lowered for each platform holds no scatter operation, the
                        operation that is non-deterministic on GPUs

The reference is `reference` when given; otherwise, when f is a jax.custom_vjp or calls one, f's own primal (the
undecorated functions the custom_vjps hold, `primal_of`) differentiated by JAX; otherwise there is none, and the
forward, vjp and grad_of_grad checks are skipped. Errors are normwise: rel = max|a - b| / max|b| over an argument's
entries (the largest over the cotangents); the worst entry's index and both values are shown.

Arguments may be pytrees (a parameter dict, say): every floating leaf is differentiated, integer leaves (labels) are
held fixed. Only reverse mode is used, so functions defined with jax.custom_vjp can be checked.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .primal import primal_of

CHECKS = ("forward", "vjp", "finite_differences", "grad_of_grad", "vmap", "jit", "determinism", "no_scatter")
DEFAULT_CHECKS = CHECKS[:-1]
_NEEDS_REFERENCE = {"forward", "vjp", "grad_of_grad"}


def default_rtol(dtype) -> float:
    """Normwise relative tolerance for comparing two computations of the same quantity in `dtype`."""
    info = jnp.finfo(dtype)
    if info.bits >= 64:
        return 1e-9
    if info.bits == 32:
        return 2e-5
    return 3e-2 if info.nmant < 8 else 5e-3  # bfloat16 (7-bit mantissa), float16 (10-bit)


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
    """The outcome of `check_vjp`: one `Row` per (check, argument); `ok` when every row passed."""

    rows: list
    reference: str
    dtype: str
    rtol: float
    fd_rtol: float
    fd_mode: str

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list:
        return [r for r in self.rows if not r.ok]

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

        header = (f"{'check':<19} {'argument':<20} {'shape':<16} {'abs err':>9} {'rel err':>9} {'tol':>8} "
                  f"{'worst at':<14} {'got':>12} {'want':>12}  pass")
        lines = [f"reference: {self.reference}; dtype {self.dtype}; finite differences: {self.fd_mode}", header,
                 "-" * len(header)]
        for r in self.rows:
            where = "-" if r.index is None else str(tuple(int(i) for i in r.index)).replace(" ", "")
            lines.append(f"{r.check:<19} {r.argument:<20} {str(r.shape).replace(' ', ''):<16} {num(r.abs_err):>9} "
                         f"{num(r.rel_err):>9} {num(r.tol):>8} {where:<14} {val(r.got):>12} {val(r.want):>12}  "
                         f"{'yes' if r.ok else 'NO'}" + (f"  ({r.note})" if r.note else ""))
        failed = sorted({r.check for r in self.failures}, key=CHECKS.index)
        lines.append("PASS" if self.ok else "FAIL: " + ", ".join(failed))
        return "\n".join(lines)

    def raise_if_failed(self):
        if not self.ok:
            raise AssertionError("VJP check failed:\n" + str(self))


# ----------------------------------------------------------------------------------------------------------------
# comparing arrays


def _compare(got, want):
    """(abs err, normwise rel err, index of the worst entry, got there, want there) of two arrays."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise ValueError(f"shapes differ: {got.shape} vs {want.shape}")
    if got.size == 0:
        return 0.0, 0.0, None, None, None
    diff = np.abs(got - want)
    diff = np.where(np.isnan(got) != np.isnan(want), np.inf, np.nan_to_num(diff, nan=0.0))
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    err = float(diff[index])
    scale = float(np.max(np.abs(np.nan_to_num(want)), initial=0.0))
    return err, (err / scale if scale > 0 else err), index, float(got[index]), float(want[index])


def _worse(a, b):
    """The comparison with the larger relative error (None-safe)."""
    if a is None:
        return b
    return b if b[1] > a[1] else a


def _row(check, name, shape, comparison, tol, note=""):
    if comparison is None:
        return Row(check, name, shape, ok=True, note=note or "skipped")
    err, rel, index, got, want = comparison
    return Row(check, name, shape, err, rel, tol, index, got, want, ok=bool(rel <= tol), note=note)


# ----------------------------------------------------------------------------------------------------------------
# the arguments


def _split(args):
    """Flatten the arguments; return (leaves, names, treedef, mask of differentiated leaves)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    names, leaves, mask = [], [], []
    for path, leaf in flat:
        leaf = jnp.asarray(leaf)
        leaves.append(leaf)
        names.append("arg" + jax.tree_util.keystr(path))
        mask.append(bool(jnp.issubdtype(leaf.dtype, jnp.floating)))
    return leaves, names, treedef, mask


def _closure(fun, leaves, treedef, mask):
    """fun as a function of the differentiated leaves alone."""
    fixed = [leaf for leaf, m in zip(leaves, mask) if not m]

    def wrapped(*diff):
        diff_it, fixed_it = iter(diff), iter(fixed)
        full = [next(diff_it) if m else next(fixed_it) for m in mask]
        return fun(*jax.tree_util.tree_unflatten(treedef, full))

    return wrapped


def _random_like(key, tree, scale=1.0):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree_util.tree_unflatten(
        treedef, [(jax.random.normal(k, x.shape, jnp.float32) * scale).astype(x.dtype) for k, x in zip(keys, leaves)])


def _pullback(fun):
    """(diff, ct) -> the VJP of fun at diff applied to ct (a list, one entry per differentiated leaf)."""

    def apply(diff, ct):
        _, vjp = jax.vjp(fun, *diff)
        return list(vjp(ct))

    return apply


def _forward_and_pullbacks(fun):
    """(diff, cts) -> (fun(diff), [VJP(ct) for ct in cts]): one compiled function for the forward and every VJP."""

    def apply(diff, cts):
        out, vjp = jax.vjp(fun, *diff)
        return out, [list(vjp(ct)) for ct in cts]

    return jax.jit(apply)


def _off_kinks(x, seed: int):
    """x with every entry that is exactly 0 or tied with another entry moved by a small random amount (float64):
    where ReLU, |x| or a max-pool window has a kink, central differences straddle it and measure nothing."""
    a = np.asarray(x, np.float64).ravel()
    if a.size == 0:
        return x, 0
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    at_kink = (counts[inverse] > 1) | (a == 0)
    moved = int(at_kink.sum())
    if not moved:
        return x, 0
    rng = np.random.default_rng(seed)
    shift = rng.uniform(0.5, 1.0, a.size) * rng.choice([-1.0, 1.0], a.size) * 1e-3 * max(np.max(np.abs(a)), 1.0)
    return jnp.asarray(np.where(at_kink, a + shift, a).reshape(np.shape(x))), moved


def _central_differences(fun, diff, index, vs, h):
    """(f(x + h v) - f(x - h v)) / 2h for each direction v of leaf `index`, stacked on axis 0 (traceable)."""

    def one(v):
        plus, minus = list(diff), list(diff)
        plus[index], minus[index] = diff[index] + h * v, diff[index] - h * v
        return jax.tree_util.tree_map(lambda a, b: (a - b) / (2 * h), fun(*plus), fun(*minus))

    return jax.lax.map(one, vs, batch_size=64)


def _contract(stacked, tree):
    """<stacked[k], tree> for every k: the directional derivatives of phi = <cotangent, f>."""
    return sum(jnp.tensordot(s, t, axes=t.ndim)
               for s, t in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(tree)))


def _fd_comparison(exact, fd, vs, mode):
    """Compare the analytic VJP entry `exact` with the finite differences `fd` (per entry, or per direction)."""
    if mode == "full":
        return _compare(exact, np.asarray(fd).reshape(exact.shape))
    want = np.asarray(jnp.tensordot(vs, exact, axes=exact.ndim))
    err, _, index, got, wanted = _compare(np.asarray(fd), want)
    scale = float(jnp.linalg.norm(exact.ravel()) * jnp.max(jnp.linalg.norm(vs.reshape(len(vs), -1), axis=1)))
    return err, (err / scale if scale > 0 else err), index, got, wanted


def scatter_ops(fun, args, platform: str) -> list:
    """The scatter operations in fun(*args) lowered (exported) for `platform`: op names, not source locations."""
    text = jax.export.export(jax.jit(fun), platforms=[platform])(*args).mlir_module()
    return sorted(set(re.findall(r"stablehlo\.(?:select_and_)?scatter\b", text)))


def check_vjp(
    f: Callable,
    *args: Any,
    reference: Callable | None = None,
    checks: Sequence[str] = DEFAULT_CHECKS,
    seed: int = 0,
    num_cotangents: int = 2,
    rtol: float | None = None,
    fd_rtol: float = 1e-6,
    fd_eps: float = 1e-6,
    fd_mode: str = "auto",
    fd_max_elements: int = 512,
    fd_directions: int = 6,
    kinks: bool = True,
    nondet_tol: float = 0.0,
    hlo_platforms: Sequence[str] = (),
) -> VJPReport:
    """Run the checks of the module docstring on f at `args`; return one report (see `VJPReport`).

    Args:
      f: the function under test: a jax.custom_vjp, or a function that calls one (directly or nested).
      *args: the point to check at; pytrees of arrays. Floating leaves are differentiated, others held fixed.
      reference: an independent implementation of the same map, differentiated by JAX; default: f's primal.
      checks: which checks to run (names from `CHECKS`; "no_scatter" also runs when hlo_platforms is given).
      seed: PRNG seed of the cotangents, directions and kink offsets.
      rtol: normwise tolerance of the comparisons in the arguments' dtype (default by dtype: `default_rtol`).
      fd_rtol, fd_eps: tolerance and relative step of the central differences (always in float64); the step is
        fd_eps times the argument's standard deviation (at least fd_eps).
      fd_mode: "full" (every entry: 2 evaluations each), "directional" (random directions), or "auto" (full for
        arguments of at most `fd_max_elements` entries).
      kinks: move argument entries that are exactly 0 or tied before the finite differences.
      nondet_tol: largest difference allowed between two runs (as PyTorch's gradcheck; 0 means bitwise equal).
      hlo_platforms: platforms to lower the VJP for and audit for scatter operations (e.g. ("cuda",)); needs no
        device of that platform.
    """
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"check_vjp: unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
    if fd_mode not in ("auto", "full", "directional"):
        raise ValueError(f'check_vjp: fd_mode must be "auto", "full" or "directional", got {fd_mode!r}')
    checks = set(checks) | ({"no_scatter"} if hlo_platforms else set())
    leaves, names, treedef, mask = _split(args)
    if not any(mask):
        raise ValueError("check_vjp: no floating-point argument to differentiate")
    diff = [leaf for leaf, m in zip(leaves, mask) if m]
    diff_names = [n for n, m in zip(names, mask) if m]
    shapes = [tuple(x.shape) for x in diff]
    g = _closure(f, leaves, treedef, mask)
    dtype = jnp.result_type(*diff)
    rtol = default_rtol(dtype) if rtol is None else rtol

    if reference is not None:
        r, described = _closure(reference, leaves, treedef, mask), "given"
    else:
        try:
            jax.eval_shape(primal_of(g), *diff)
            r, described = _closure(primal_of(f), leaves, treedef, mask), "f's primal (custom_vjp bodies inlined)"
        except TypeError as err:
            if "calls no jax.custom_vjp" not in str(err):
                raise
            r, described = None, "none (f calls no custom_vjp; pass reference=)"

    key = jax.random.PRNGKey(seed)
    out_shape = jax.eval_shape(g, *diff)
    cts = []
    for _ in range(num_cotangents):
        key, sub = jax.random.split(key)
        cts.append(_random_like(sub, out_shape))
    pull = _pullback(g)
    pull_jit = jax.jit(pull)
    out_f, got = _forward_and_pullbacks(g)(diff, cts)
    rows: list[Row] = []

    def per_argument(check, comparisons, tol, note=""):
        for name, shape, comparison in zip(diff_names, shapes, comparisons):
            rows.append(_row(check, name, shape, comparison, tol, note))

    if r is not None and checks & {"forward", "vjp"}:
        out_r, want = _forward_and_pullbacks(r)(diff, cts)
        if "forward" in checks:
            comparison = None
            for a, b in zip(jax.tree_util.tree_leaves(out_f), jax.tree_util.tree_leaves(out_r)):
                comparison = _worse(comparison, _compare(a, b))
            rows.append(_row("forward", "output", tuple(np.shape(jax.tree_util.tree_leaves(out_f)[0])),
                             comparison, rtol))
        if "vjp" in checks:
            worst = [None] * len(diff)
            for mine, theirs in zip(got, want):
                for i, (a, b) in enumerate(zip(mine, theirs)):
                    worst[i] = _worse(worst[i], _compare(a, b))
            per_argument("vjp", worst, rtol)

    if "finite_differences" in checks:
        comparisons, note = _finite_differences(f, leaves, treedef, mask, diff, cts, key, seed, fd_mode,
                                                fd_max_elements, fd_directions, fd_eps, kinks)
        per_argument("finite_differences", comparisons, fd_rtol, note)

    if r is not None and "grad_of_grad" in checks:
        key, sub = jax.random.split(key)
        probes = _random_like(sub, diff)

        def second(fun):
            pull_fun = _pullback(fun)
            def phi(d):  # <VJP(ct)(d), probes>, accumulated in float32 or wider
                return sum(jnp.sum((a * p).astype(jnp.promote_types(a.dtype, jnp.float32)))
                           for a, p in zip(pull_fun(d, cts[0]), probes))

            return jax.jit(jax.grad(phi))(diff)

        try:
            mine, theirs = second(g), second(r)
            per_argument("grad_of_grad", [_compare(a, b) for a, b in zip(mine, theirs)], _loosen(rtol))
        except Exception as err:  # noqa: BLE001 - a rule that cannot be differentiated fails this check
            rows.append(Row("grad_of_grad", "-", (), ok=False, note=f"{type(err).__name__}: {str(err)[:120]}"))

    if "vmap" in checks:
        key, sub = jax.random.split(key)
        shifted = [x + 0.25 * n for x, n in zip(diff, _random_like(sub, diff))]
        batch = [jnp.stack([a, b]) for a, b in zip(diff, shifted)]
        key, sub = jax.random.split(key)
        ct_batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), cts[0], _random_like(sub, out_shape))
        try:
            mapped = jax.jit(jax.vmap(pull))(batch, ct_batch)
            looped = [pull_jit([b[k] for b in batch], jax.tree_util.tree_map(lambda c: c[k], ct_batch))
                      for k in range(2)]
            per_argument("vmap", [_compare(m, jnp.stack([looped[0][i], looped[1][i]])) for i, m in
                                  enumerate(mapped)], rtol)
        except Exception as err:  # noqa: BLE001 - a rule without a batching path fails this check
            rows.append(Row("vmap", "-", (), ok=False, note=f"{type(err).__name__}: {str(err)[:120]}"))

    if "jit" in checks:
        eager = pull(diff, cts[0])
        per_argument("jit", [_compare(a, b) for a, b in zip(got[0], eager)], rtol)

    if "determinism" in checks:
        again = pull_jit(diff, cts[0])
        comparisons = [_compare(a, b) for a, b in zip(again, got[0])]
        for name, shape, (err, rel, index, a, b) in zip(diff_names, shapes, comparisons):
            rows.append(Row("determinism", name, shape, err, rel, nondet_tol, index, a, b, ok=err <= nondet_tol,
                            note="two runs" + (", bitwise" if nondet_tol == 0 else "")))

    if "no_scatter" in checks:
        for platform in hlo_platforms or ("cuda",):
            found = scatter_ops(pull, (diff, cts[0]), platform)
            rows.append(Row("no_scatter", f"VJP for {platform}", (), ok=not found,
                            note=("found " + ", ".join(found)) if found else "no scatter op"))

    order = {c: i for i, c in enumerate(CHECKS)}
    rows.sort(key=lambda row: order[row.check])
    modes = _fd_modes(diff, fd_mode, fd_max_elements) if "finite_differences" in checks else "off"
    return VJPReport(rows, described, str(jnp.dtype(dtype)), rtol, fd_rtol, modes)


def _loosen(rtol: float) -> float:
    """Second derivatives pass through one more rounded computation: twice the tolerance."""
    return 2 * rtol


def _fd_modes(diff, fd_mode, fd_max_elements) -> str:
    modes = {fd_mode if fd_mode != "auto" else ("full" if x.size <= fd_max_elements else "directional")
             for x in diff}
    return "+".join(sorted(modes))


def _finite_differences(f, leaves, treedef, mask, diff, cts, key, seed, fd_mode, fd_max_elements, fd_directions,
                        fd_eps, kinks):
    """Per differentiated leaf: the comparison of f's float64 VJP with central differences, and a note."""
    with jax.enable_x64(True):
        keys = jax.random.split(key, len(diff))
        diff64, moved = [], 0
        for i, x in enumerate(diff):
            x64 = x.astype(jnp.float64)
            if kinks:
                x64, n = _off_kinks(x64, seed + i)
                moved += n
            diff64.append(x64)
        g64 = _closure(f, [jnp.asarray(leaf) for leaf in leaves], treedef, mask)
        modes = [fd_mode if fd_mode != "auto" else ("full" if x.size <= fd_max_elements else "directional")
                 for x in diff64]
        # the step follows the spread of the argument, not its magnitude: x = 100 + N(0, 1) varies on the scale 1
        steps = [fd_eps * max(1.0, float(jnp.std(x)) if x.size > 1 else float(jnp.max(jnp.abs(x), initial=0.0)))
                 for x in diff64]

        def directions(k, x, mode):
            if mode == "full":
                return jnp.eye(x.size, dtype=x.dtype).reshape(x.size, *x.shape)
            return jax.random.normal(k, (fd_directions, *x.shape), x.dtype)

        vs = [directions(k, x, m) for k, x, m in zip(keys, diff64, modes)]

        @jax.jit
        def in_float64(diff64, cts, vs):
            out64, vjp64 = jax.vjp(g64, *diff64)
            cts = [jax.tree_util.tree_map(lambda t, o: t.astype(o.dtype), ct, out64) for ct in cts]
            analytic = [vjp64(ct) for ct in cts]
            fds = [[_contract(_central_differences(g64, diff64, i, v, h), ct) for ct in cts]
                   for i, (v, h) in enumerate(zip(vs, steps))]
            return analytic, fds

        analytic, fds = in_float64(diff64, cts, vs)
        comparisons = []
        for i, (v, mode) in enumerate(zip(vs, modes)):
            worst = None
            for c in range(len(cts)):
                worst = _worse(worst, _fd_comparison(analytic[c][i], fds[i][c], v, mode))
            comparisons.append(worst)
    note = f"{moved} entries moved off kinks/ties" if moved else ""
    return comparisons, note


def assert_vjp(f: Callable, *args: Any, **options) -> VJPReport:
    """`check_vjp(f, *args, **options)`, raising AssertionError with the report's table when a check fails; for a
    test suite. Returns the report when every check passed."""
    report = check_vjp(f, *args, **options)
    report.raise_if_failed()
    return report


__all__ = ["CHECKS", "DEFAULT_CHECKS", "scatter_ops", "Row", "ArgumentReport", "VJPReport", "check_vjp", "assert_vjp",
           "default_rtol"]
