"""Check a hand-written VJP: against `jax.vjp` of a reference, and against central finite differences in float64.

    from funcnn.gradcheck import check_vjp
    report = check_vjp(my_conv, my_reference_conv, x, w)
    print(report)          # a table: max abs / rel error per argument, vs the reference and vs finite differences
    report.raise_if_failed()

Arguments may be pytrees (a parameter dict, say); every floating leaf is differentiated, integer leaves (labels) are
held fixed. Only reverse mode is used, so functions defined with `jax.custom_vjp` can be checked.

Errors are normwise: rel = max|a - b| / max|b| over an argument's entries, the largest over the random cotangents.

`python -m funcnn.gradcheck` runs the check on every funcnn primitive over a sweep of configurations and prints one
row per primitive; it exits with status 1 if any configuration fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ArgumentReport", "VJPReport", "check_vjp", "default_rtol", "run_sweep", "main"]


def default_rtol(dtype) -> float:
    """Normwise relative tolerance for comparing two computations of the same quantity in `dtype`."""
    bits = jnp.finfo(dtype).bits
    return {64: 1e-9, 32: 2e-5, 16: 3e-2}.get(bits, 3e-2)


@dataclasses.dataclass
class ArgumentReport:
    """Errors of one differentiated argument (one pytree leaf)."""

    name: str
    shape: tuple
    abs_vs_reference: float | None
    rel_vs_reference: float | None
    abs_vs_fd: float | None
    rel_vs_fd: float | None
    ok: bool


@dataclasses.dataclass
class VJPReport:
    """The outcome of `check_vjp`: forward and per-argument errors, the tolerances, and pass/fail."""

    forward_rel: float | None
    arguments: list[ArgumentReport]
    rtol: float
    fd_rtol: float
    fd_mode: str

    @property
    def ok(self) -> bool:
        forward_ok = self.forward_rel is None or self.forward_rel <= self.rtol
        return forward_ok and all(a.ok for a in self.arguments)

    @property
    def worst_rel_vs_reference(self) -> float | None:
        values = [a.rel_vs_reference for a in self.arguments if a.rel_vs_reference is not None]
        return max(values) if values else None

    @property
    def worst_rel_vs_fd(self) -> float | None:
        values = [a.rel_vs_fd for a in self.arguments if a.rel_vs_fd is not None]
        return max(values) if values else None

    def __str__(self) -> str:
        def fmt(v):
            return "-" if v is None else f"{v:.2e}"

        lines = [
            f"forward rel error vs reference: {fmt(self.forward_rel)} (rtol {self.rtol:.1e}); "
            f"finite differences: {self.fd_mode}, rtol {self.fd_rtol:.1e}",
            f"{'argument':<24} {'shape':<18} {'abs vs ref':>10} {'rel vs ref':>10} {'abs vs FD':>10} "
            f"{'rel vs FD':>10}  pass",
        ]
        for a in self.arguments:
            lines.append(
                f"{a.name:<24} {str(a.shape):<18} {fmt(a.abs_vs_reference):>10} {fmt(a.rel_vs_reference):>10} "
                f"{fmt(a.abs_vs_fd):>10} {fmt(a.rel_vs_fd):>10}  {'yes' if a.ok else 'NO'}"
            )
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)

    def raise_if_failed(self):
        if not self.ok:
            raise AssertionError("VJP check failed:\n" + str(self))


def _errors(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    scale = float(np.max(np.abs(expected), initial=0.0))
    return err, err / scale if scale > 0 else err


def _split(args):
    """Flatten the arguments; return (leaves, names, treedef, mask of differentiated leaves)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    names, leaves, mask = [], [], []
    for path, leaf in flat:
        leaf = jnp.asarray(leaf)
        leaves.append(leaf)
        names.append("arg" + jax.tree_util.keystr(path))
        mask.append(jnp.issubdtype(leaf.dtype, jnp.inexact))
    return leaves, names, treedef, mask


def _closure(fun, leaves, treedef, mask):
    """fun as a function of the differentiated leaves alone."""
    fixed = [leaf for leaf, m in zip(leaves, mask) if not m]

    def wrapped(*diff):
        diff_it, fixed_it = iter(diff), iter(fixed)
        full = [next(diff_it) if m else next(fixed_it) for m in mask]
        return fun(*jax.tree_util.tree_unflatten(treedef, full))

    return wrapped


def _pullbacks(fun, diff, cts):
    """fun's output and its VJP applied to each cotangent (traced once, under jit)."""
    out, vjp_fun = jax.vjp(fun, *diff)
    return out, [vjp_fun(ct) for ct in cts]


def _random_like(key, tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    )


def _directions(key, x, mode, count):
    """Basis vectors (every entry) or random normal directions for the finite differences of leaf x."""
    if mode == "full":
        return jnp.eye(x.size, dtype=x.dtype).reshape(x.size, *x.shape)
    return jax.random.normal(key, (count, *x.shape), x.dtype)


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


def _fd_errors(exact, fd, vs, mode):
    """(abs, normwise rel) error of the analytic VJP entry `exact` against the finite differences `fd`."""
    if mode == "full":
        return _errors(exact, fd.reshape(exact.shape))
    want = jnp.tensordot(vs, exact, axes=exact.ndim)
    err = float(jnp.max(jnp.abs(fd - want)))
    scale = float(jnp.linalg.norm(exact.ravel()) * jnp.max(jnp.linalg.norm(vs.reshape(len(vs), -1), axis=1)))
    return err, err / scale if scale > 0 else err


def check_vjp(
    f: Callable,
    reference: Callable | None,
    *args: Any,
    seed: int = 0,
    num_cotangents: int = 2,
    rtol: float | None = None,
    fd: bool = True,
    fd_rtol: float = 1e-6,
    fd_eps: float = 1e-6,
    fd_mode: str = "auto",
    fd_max_elements: int = 512,
    fd_directions: int = 6,
) -> VJPReport:
    """Compare the VJP of `f` with `jax.vjp(reference)` and with central finite differences in float64.

    Args:
      f: the function under test (for example a `jax.custom_vjp`).
      reference: an independent implementation of the same map, differentiated by JAX; None to skip that check.
      *args: the point to check at; pytrees of arrays. Floating leaves are differentiated, others held fixed.
      seed: PRNG seed of the random cotangents and finite-difference directions.
      num_cotangents: how many random cotangents to pull back.
      rtol: normwise tolerance vs the reference (default by dtype: `default_rtol`).
      fd: also check against finite differences (evaluated in float64: the arguments are cast up).
      fd_rtol, fd_eps: tolerance and relative step of the central differences.
      fd_mode: "full" (every entry: 2 evaluations each), "directional" (random directions), or "auto" (full for
        arguments of at most `fd_max_elements` entries).

    Returns:
      A `VJPReport`; `report.ok` says whether every comparison is within tolerance.
    """
    if fd_mode not in ("auto", "full", "directional"):
        raise ValueError(f'fd_mode must be "auto", "full" or "directional", got {fd_mode!r}')
    leaves, names, treedef, mask = _split(args)
    if not any(mask):
        raise ValueError("check_vjp: no floating-point argument to differentiate")
    diff = [leaf for leaf, m in zip(leaves, mask) if m]
    diff_names = [n for n, m in zip(names, mask) if m]
    g = _closure(f, leaves, treedef, mask)
    if rtol is None:
        rtol = max(default_rtol(x.dtype) for x in diff)
    key = jax.random.PRNGKey(seed)

    out_shape = jax.eval_shape(g, *diff)
    cotangents = []
    for _ in range(num_cotangents):
        key, sub = jax.random.split(key)
        cotangents.append(_random_like(sub, out_shape))

    forward_and_pullbacks = jax.jit(lambda diff, cts, fun: _pullbacks(fun, diff, cts), static_argnums=2)
    out, got = forward_and_pullbacks(diff, cotangents, g)

    ref_err = [[0.0, 0.0] for _ in diff]
    forward_rel = None
    if reference is not None:
        r = _closure(reference, leaves, treedef, mask)
        ref_out, want = forward_and_pullbacks(diff, cotangents, r)
        forward_rel = max(_errors(a, b)[1] for a, b in zip(jax.tree_util.tree_leaves(out),
                                                           jax.tree_util.tree_leaves(ref_out)))
        for mine, theirs in zip(got, want):
            for i, (a, b) in enumerate(zip(mine, theirs)):
                ref_err[i] = [max(p, q) for p, q in zip(ref_err[i], _errors(a, b))]

    fd_err = [[0.0, 0.0] for _ in diff]
    modes = []
    if fd:
        with jax.enable_x64(True):
            diff64 = [x.astype(jnp.float64 if jnp.issubdtype(x.dtype, jnp.floating) else jnp.complex128)
                      for x in diff]
            g64 = _closure(f, [jnp.asarray(leaf) for leaf in leaves], treedef, mask)
            modes = [fd_mode if fd_mode != "auto" else ("full" if x.size <= fd_max_elements else "directional")
                     for x in diff64]
            steps = [fd_eps * max(1.0, float(jnp.max(jnp.abs(x), initial=0.0))) for x in diff64]
            keys = jax.random.split(key, len(diff64))
            directions = [_directions(k, x, m, fd_directions) for k, x, m in zip(keys, diff64, modes)]

            @jax.jit
            def in_float64(diff64, cts, directions):
                out64, vjp64 = jax.vjp(g64, *diff64)
                cts = [jax.tree_util.tree_map(lambda t, o: t.astype(o.dtype), ct, out64) for ct in cts]
                analytic = [vjp64(ct) for ct in cts]
                fds = [[_contract(_central_differences(g64, diff64, i, vs, h), ct) for ct in cts]
                       for i, (vs, h) in enumerate(zip(directions, steps))]
                return analytic, fds

            analytic, fds = in_float64(diff64, cotangents, directions)
            for i, (vs, mode) in enumerate(zip(directions, modes)):
                for c in range(len(cotangents)):
                    errs = _fd_errors(analytic[c][i], fds[i][c], vs, mode)
                    fd_err[i] = [max(p, q) for p, q in zip(fd_err[i], errs)]

    reports = []
    for i, (name, x) in enumerate(zip(diff_names, diff)):
        rel_ref = ref_err[i][1] if reference is not None else None
        rel_fd = fd_err[i][1] if fd else None
        ok = (rel_ref is None or rel_ref <= rtol) and (rel_fd is None or rel_fd <= fd_rtol)
        reports.append(ArgumentReport(
            name=name, shape=tuple(x.shape),
            abs_vs_reference=ref_err[i][0] if reference is not None else None, rel_vs_reference=rel_ref,
            abs_vs_fd=fd_err[i][0] if fd else None, rel_vs_fd=rel_fd, ok=ok,
        ))
    return VJPReport(forward_rel=forward_rel, arguments=reports, rtol=rtol, fd_rtol=fd_rtol,
                     fd_mode="+".join(sorted(set(modes))) if modes else "off")


# ----------------------------------------------------------------------------------------------------------------
# the sweep behind `python -m funcnn.gradcheck`


@dataclasses.dataclass
class Case:
    primitive: str
    label: str
    f: Callable
    reference: Callable
    args: Sequence[Any]


def _cases(seed: int = 0):
    """Configurations per primitive: strides 1-3, paddings (0, symmetric, asymmetric, SAME), dilation, groups,
    odd sizes, overlapping windows. Random normal inputs (no ties with probability one)."""
    import funcnn as fn
    from funcnn import reference as ref

    rng = np.random.default_rng(seed)

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape))

    def conv_case(name, n, size, cin, cout, k, **kw):
        x = arr(n, *size, cin)
        w = arr(*k, cin // kw.get("groups", 1), cout)
        prim = fn.conv2d if len(size) == 2 else fn.conv1d
        refn = ref.conv2d if len(size) == 2 else ref.conv1d
        yield Case(name, str(kw), lambda x, w, b: prim(x, w, b, **kw), lambda x, w, b: refn(x, w, b, **kw),
                   (x, w, arr(cout)))

    def pool_case(name, prim, refn, shape, *pargs, **kw):
        yield Case(name, f"{shape} {pargs} {kw}", lambda x: prim(x, *pargs, **kw), lambda x: refn(x, *pargs, **kw),
                   (arr(*shape),))

    conv2d_configs = [
        dict(), dict(stride=2), dict(stride=3, padding=1), dict(padding="SAME"), dict(padding="SAME", stride=2),
        dict(padding=((1, 2), (0, 1)), stride=(2, 1)), dict(dilation=2, padding=2), dict(groups=2),
        dict(groups=4, stride=2, padding="SAME"), dict(stride=2, dilation=(1, 2), padding=((2, 0), (1, 3))),
    ]
    for cfg in conv2d_configs:
        cin = 4
        cout = 8 if cfg.get("groups", 1) != 4 else 4
        yield from conv_case("conv2d", 2, (7, 6), cin, cout, (3, 3), **cfg)
    yield from conv_case("conv2d", 1, (9, 8), 3, 2, (2, 3), stride=3, padding=((2, 1), (0, 2)))
    for cfg in [dict(), dict(stride=2, padding=1), dict(padding="SAME", dilation=3), dict(groups=3, stride=2)]:
        yield from conv_case("conv1d", 2, (11,), 3, 6, (3,), **cfg)

    for cfg in [dict(), dict(stride=2), dict(stride=2, padding=1, output_padding=1), dict(stride=3, padding="SAME"),
                dict(stride=2, dilation=2, padding=((1, 0), (2, 1)))]:
        y, w, b = arr(2, 4, 5, 3), arr(3, 3, 4, 3), arr(4)
        yield Case("conv_transpose2d", str(cfg), lambda y, w, b, cfg=cfg: fn.conv_transpose2d(y, w, b, **cfg),
                   lambda y, w, b, cfg=cfg: ref.conv_transpose2d(y, w, b, **cfg), (y, w, b))
    y, w, b = arr(2, 6, 3), arr(4, 2, 3), arr(2)
    yield Case("conv_transpose1d", "stride=3", lambda y, w, b: fn.conv_transpose1d(y, w, b, stride=3),
               lambda y, w, b: ref.conv_transpose1d(y, w, b, stride=3), (y, w, b))

    for args, kw in [((2,), {}), ((3, 2), {}), ((3, 1), {}), ((3, 2), dict(padding=1)), ((3, 3), dict(padding="SAME")),
                     (((2, 3), (1, 2)), dict(padding=((1, 0), (0, 2))))]:
        yield from pool_case("max_pool2d", fn.max_pool2d, ref.max_pool2d, (2, 7, 8, 3), *args, **kw)
        yield from pool_case("avg_pool2d", fn.avg_pool2d, ref.avg_pool2d, (2, 7, 8, 3), *args, **kw)
        if "padding" in kw:
            kw2 = dict(kw, count_include_pad=False)
            yield from pool_case("avg_pool2d", fn.avg_pool2d, ref.avg_pool2d, (2, 7, 8, 3), *args, **kw2)
        for p in (1.0, 2.0, 5.0):
            yield from pool_case("lp_pool2d", fn.lp_pool2d, ref.lp_pool2d, (2, 7, 8, 3), p, *args, **kw)
    yield from pool_case("max_pool1d", fn.max_pool1d, ref.max_pool1d, (2, 9, 3), 3, 2)
    yield from pool_case("avg_pool1d", fn.avg_pool1d, ref.avg_pool1d, (2, 9, 3), 3, 2, padding=1)
    yield from pool_case("global_avg_pool2d", fn.global_avg_pool2d, ref.global_avg_pool2d, (3, 5, 4, 2))

    yield Case("dense", "(5, 7) x (7, 4)", fn.dense, ref.dense, (arr(5, 7), arr(7, 4), arr(4)))
    yield Case("dense", "(2, 3, 7) x (7, 4), no bias", lambda x, w: fn.dense(x, w), lambda x, w: ref.dense(x, w),
               (arr(2, 3, 7), arr(7, 4)))
    for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax"):
        yield Case(name, "(4, 6)", getattr(fn, name), getattr(ref, name), (arr(4, 6),))
    yield Case("softmax", "axis=0", lambda z: fn.softmax(z, axis=0), lambda z: ref.softmax(z, axis=0), (arr(4, 6),))
    labels = jnp.asarray(rng.integers(0, 5, size=6))
    yield Case("softmax_cross_entropy", "(6, 5)", fn.softmax_cross_entropy, ref.softmax_cross_entropy,
               (arr(6, 5), labels))


def run_sweep(only: Sequence[str] | None = None, verbose: bool = False, seed: int = 0, out=None) -> bool:
    """Run check_vjp over the sweep (float64), print a table per primitive; return True if all passed."""
    out = sys.stdout if out is None else out
    with jax.enable_x64(True):
        rows: dict[str, list] = {}
        failures = []
        for case in _cases(seed):
            if only and case.primitive not in only:
                continue
            report = check_vjp(case.f, case.reference, *case.args, seed=seed)
            rows.setdefault(case.primitive, []).append(report)
            if verbose:
                print(f"{case.primitive} {case.label}\n{report}\n", file=out)
            if not report.ok:
                failures.append((case, report))
    header = f"{'primitive':<22} {'configs':>7} {'worst rel vs autodiff':>22} {'worst rel vs FD':>16}  pass"
    print(header, file=out)
    print("-" * len(header), file=out)
    for name, reports in rows.items():
        worst_ref = max(r.worst_rel_vs_reference or 0.0 for r in reports)
        worst_fd = max(r.worst_rel_vs_fd or 0.0 for r in reports)
        ok = all(r.ok for r in reports)
        print(f"{name:<22} {len(reports):>7} {worst_ref:>22.2e} {worst_fd:>16.2e}  {'yes' if ok else 'NO'}", file=out)
    for case, report in failures:
        print(f"\nFAILED {case.primitive} {case.label}\n{report}", file=out)
    if not rows:
        print("no primitive matched", file=out)
        return False
    return not failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcnn.gradcheck",
                                     description="Check every funcnn primitive's hand-written VJP against autodiff "
                                                 "of the literal reference and against finite differences (float64).")
    parser.add_argument("--primitive", action="append", help="check only this primitive (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print the report of every configuration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return 0 if run_sweep(args.primitive, args.verbose, args.seed) else 1


if __name__ == "__main__":
    sys.exit(main())
