"""The checker's table: `CHECKS` maps each row name of `check_vjp` to a function Setup -> rows, registered with
`@check` in the order the rows run, and `Setup` is what every check reads (f and the reference as functions of the
differentiated leaves, the cotangents and tangents, the outputs and VJPs computed once). A new check is one
decorated function here (see the module docstring of funcnn.verify.checker for what each row compares).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .finite import jvp_against_differences, point_off_kinks, vjp_against_differences
from .result import Comparison, Row, compare, worse

# ----------------------------------------------------------------------------------------------------------------
# the setup every check reads: f and the reference as functions of the differentiated leaves, cotangents, tangents


def random_like(key, tree, scale=1.0):
    """Standard normal arrays shaped like the leaves of `tree`, from NumPy's generator seeded by `key` (an int):
    test vectors need no JAX PRNG, whose threefry program XLA compiles anew for every shape (seconds on a CPU)."""
    rng = np.random.default_rng(key)
    return jax.tree_util.tree_map(lambda x: np.asarray(rng.standard_normal(x.shape) * scale, np.float32).astype(
        np.dtype(x.dtype)), tree)


def salt(key, salt: int) -> int:
    """A seed derived from `key` for one purpose (the cotangents, the tangents, the probes, ...)."""
    return int(np.random.SeedSequence([key, salt]).generate_state(1)[0])


def fast_jit(fun):
    """jax.jit for the checker's own comparison programs: compiled without XLA's backend optimisations (the values
    are compared at float64 or dtype tolerances, and compiling is most of a check's time). The `jit` and
    `determinism` checks compile as users do (`jax.jit`), since what they test is the optimised program."""
    return jax.jit(fun, compiler_options={"xla_backend_optimization_level": 0})


def _leaves(tree):
    """The leaves of a pytree, in order."""
    return jax.tree_util.tree_leaves(tree)


def _dot(a, b):
    """<a, b> summed over every leaf, in float64 (NumPy: on the host, nothing to compile)."""
    return sum(float(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64))) for x, y in
               zip(_leaves(a), _leaves(b)))


@dataclasses.dataclass
class Setup:
    f: Callable                    # f as a function of the differentiated leaves
    r: Callable | None             # the reference, likewise (None: no reference)
    diff: list
    names: list
    shapes: list
    rtol: float
    fd_rtol: float
    options: dict
    key: int                       # the seed every random test vector derives from
    cts: list
    forward_mode: str              # "" when f has a forward mode, else why it has none

    @functools.cached_property
    def pull(self):
        def apply(diff, ct):
            return list(jax.vjp(self.f, *diff)[1](ct))
        return apply

    @functools.cached_property
    def pull_jit(self):
        return jax.jit(self.pull)  # optimised, as users compile it: the jit and determinism checks run it

    @functools.cached_property
    def tangents(self):
        """One random tangent per argument (in the argument's dtype)."""
        return random_like(salt(self.key, 1), self.diff)

    def only(self, i, tangent):
        """A tangent in argument i alone: zeros elsewhere."""
        return tuple(tangent if j == i else np.zeros(x.shape, np.dtype(x.dtype)) for j, x in enumerate(self.diff))

    @functools.cached_property
    def outputs(self):
        """f's and the reference's outputs at the point, each by a forward pass alone (so that a backward rule that
        fails, fails the rows that run it, not the forward row)."""
        forward = lambda fun: fast_jit(lambda d: fun(*d))(self.diff)  # noqa: E731
        return forward(self.f), (forward(self.r) if self.r is not None else None)

    @functools.cached_property
    def moved(self):
        """(this setup at the point moved off kinks and ties, how many entries moved); (self, 0) where none is at
        one, or kinks=False. Where f's rule and the reference differ at an exact kink (ReLU at 0: the derivative is
        not defined there, and any value in the subdifferential is a rule's choice), the rows comparing them are
        run again here, as the finite-difference rows are."""
        if not self.options["kinks"]:
            return self, 0
        points, total = point_off_kinks(self.diff, self.options["seed"])
        if not total:
            return self, 0
        moved = [p.astype(np.dtype(x.dtype)) for p, x in zip(points, self.diff)]
        return dataclasses.replace(self, diff=moved), total

    @functools.cached_property
    def _computed(self):
        """For f and the reference, in one compiled program each: the output, the VJP of every cotangent, and (with
        a forward mode) J_i u_i, the JVP for each argument's tangent alone."""
        def run(fun):
            def apply(diff, cts, ts):
                out, vjp = jax.vjp(fun, *diff)
                alone = lambda i, t: tuple(t if j == i else jnp.zeros_like(x) for j, x in enumerate(diff))  # noqa
                jvps = [] if self.forward_mode else [jax.jvp(fun, tuple(diff), alone(i, t))[1] for i, t in
                                                     enumerate(ts)]
                return out, [list(vjp(ct)) for ct in cts], jvps
            return fast_jit(apply)(self.diff, self.cts, self.tangents)
        return {"f": run(self.f), "reference": run(self.r) if self.r is not None else None}

    @property
    def values(self):
        """((f's output, f's VJPs), (the reference's, or None))."""
        f, r = self._computed["f"], self._computed["reference"]
        return f[:2], (r[:2] if r is not None else None)

    def jvp(self, fun, i):
        """J_i u_i of `fun` (f or the reference): its JVP for the tangent in argument i alone."""
        return self._computed["f" if fun is self.f else "reference"][2][i]

    def per_argument(self, check, comparisons, tol, note=""):
        return [Row.of(check, n, s, c, tol, note) for n, s, c in zip(self.names, self.shapes, comparisons)]


CHECKS: dict[str, Callable] = {}
NEEDS: dict[str, set] = {}


def check(name: str, *needs: str):
    """Register a check (a function Setup -> rows) under `name`; `needs`: "reference" and/or "forward_mode"."""
    def register(fn):
        CHECKS[name] = fn
        NEEDS[name] = set(needs)
        return fn
    return register


def _compare_trees(a, b) -> Comparison | None:
    out = None
    for x, y in zip(_leaves(a), _leaves(b)):
        out = worse(out, compare(x, y))
    return out


# ----------------------------------------------------------------------------------------------------------------
# the checks, one function each, in the order they run


def off_kinks_if_needed(rows_at):
    """A reference check run at the point, and again at the point moved off kinks and ties when it failed there and
    an entry sat on one (see `Setup.moved`): the rows of the second run then stand, saying so."""
    @functools.wraps(rows_at)
    def run(s: Setup):
        rows = rows_at(s)
        moved, count = s.moved
        if all(row.ok for row in rows) or not count:
            return rows
        note = (f"{count} entries moved off kinks/ties (at the original point f and the reference differ where the "
                "derivative is not defined)")
        return [dataclasses.replace(row, note="; ".join(filter(None, [row.note, note]))) for row in rows_at(moved)]
    return run


@check("forward", "reference")
def _forward(s: Setup):
    out_f, out_r = s.outputs
    mine, theirs = _leaves(out_f), _leaves(out_r)
    if len(mine) == 1:
        return [Row.of("forward", "output", tuple(np.shape(mine[0])), compare(mine[0], theirs[0]), s.rtol)]
    return [Row.of("forward", f"output {k}", tuple(np.shape(a)), compare(a, b), s.rtol)  # each output its own row
            for k, (a, b) in enumerate(zip(mine, theirs))]


@check("vjp", "reference")
@off_kinks_if_needed
def _vjp(s: Setup):
    (_, got), (_, want) = s.values
    worst = [None] * len(s.diff)
    for mine, theirs in zip(got, want):
        for i, (a, b) in enumerate(zip(mine, theirs)):
            worst[i] = worse(worst[i], compare(a, b))
    return s.per_argument("vjp", worst, s.rtol)


@check("jvp", "reference", "forward_mode")
@off_kinks_if_needed
def _jvp(s: Setup):
    """J_i u_i of f against the reference's, relative to the larger of its own size and |(J^T v)_i| |u_i| / |v|
    (the reference's VJP of the first cotangent v): a JVP is a sum of products whose float error scales with the
    products, not with the sum, which can cancel (the JVP of a scalar loss along a bias: a dot product)."""
    _, (_, vjps) = s.values
    rows = []
    for i in range(len(s.diff)):
        products = (np.linalg.norm(np.asarray(vjps[0][i], np.float64)) * _norm(s.tangents[i]) /
                    max(_norm(s.cts[0]), np.finfo(np.float64).tiny))
        worst = None
        for got, want in zip(_leaves(s.jvp(s.f, i)), _leaves(s.jvp(s.r, i))):
            c = compare(got, want)
            scale = max(float(np.max(np.abs(np.asarray(want, np.float64)), initial=0.0)), products)
            worst = worse(worst, c._replace(rel_err=c.abs_err / scale) if scale > 0 else c)
        rows.append(worst)
    return s.per_argument("jvp", rows, s.rtol)


def _norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in _leaves(tree))))


@check("finite_differences")
def _finite_differences(s: Setup):
    comparisons, note = vjp_against_differences(s)
    return s.per_argument("finite_differences", comparisons, s.fd_rtol, note)


@check("jvp_finite_differences", "forward_mode")
def _jvp_finite_differences(s: Setup):
    comparisons, note = jvp_against_differences(s)
    return s.per_argument("jvp_finite_differences", comparisons, s.fd_rtol, note)


@check("adjoint", "forward_mode")
def _adjoint(s: Setup):
    """<J_i u_i, v> against <u_i, (J^T v)_i>, normwise: |a - b| / max(|J_i u_i| |v|, |u_i| |(J^T v)_i|)."""
    (_, got), _ = s.values
    rows = []
    for i, (name, shape) in enumerate(zip(s.names, s.shapes)):
        ju, u, jtv = s.jvp(s.f, i), s.tangents[i], got[0][i]
        a, b = _dot(ju, s.cts[0]), _dot(u, jtv)
        norm = lambda t: np.sqrt(_dot(t, t))  # noqa: E731
        scale = max(norm(ju) * norm(s.cts[0]), norm(u) * norm(jtv))
        err = abs(a - b)
        rel = err / scale if scale > 0 else err
        rows.append(Row.of("adjoint", name, shape, Comparison(err, rel, None, a, b, "zeros" if scale == 0 else ""),
                           s.rtol, "<J u, v> vs <u, J^T v>"))
    return rows


def _second_order_tol(rtol: float) -> float:
    """Second derivatives pass through one more rounded computation: twice the tolerance."""
    return 2 * rtol


@check("grad_of_grad", "reference")
@off_kinks_if_needed
def _grad_of_grad(s: Setup):
    probes = random_like(salt(s.key, 2), s.diff)

    def second(fun):
        def phi(d, i):  # <VJP(ct)_i (d), p_i>: the derivative of argument i's backward rule
            return jnp.sum((jax.vjp(fun, *d)[1](s.cts[0])[i] * probes[i]).astype(jnp.promote_types(
                s.diff[i].dtype, jnp.float32)))
        return fast_jit(lambda d: [jax.grad(phi)(d, i) for i in range(len(d))])(s.diff)

    return s.per_argument("grad_of_grad", [_compare_trees(a, b) for a, b in zip(second(s.f), second(s.r))],
                          _second_order_tol(s.rtol))


@check("hvp", "forward_mode")
def _hvp(s: Setup):
    """H u_i of phi = <f, ct> two ways: jvp(grad phi) (forward over reverse) and grad <grad phi, u_i> (reverse over
    reverse); both run f's rules, so they agree when its tangent rules are the derivatives of its backward ones."""
    def phi(*d):
        return _traced_dot(s.f(*d), s.cts[0])

    grad = jax.grad(phi, argnums=tuple(range(len(s.diff))))
    us = [s.only(i, s.tangents[i]) for i in range(len(s.diff))]

    def both(d, us):
        return [(jax.jvp(lambda *x: grad(*x), tuple(d), u)[1], jax.grad(lambda d: _traced_dot(grad(*d), u))(d))
                for u in us]

    pairs = fast_jit(both)(s.diff, us)
    tol, note = _second_order_tol(s.rtol), "fwd-over-rev vs rev-over-rev"
    # argument i's row: the block H_ii (component i of H u_i), its own rules; a pair's row: the blocks H_ij and H_ji,
    # where a wrong rule of either argument shows, so that a rule wrong only in arg[1] leaves arg[0]'s row passing
    rows = s.per_argument("hvp", [_compare_trees(pairs[i][0][i], pairs[i][1][i]) for i in range(len(s.diff))], tol,
                          note)
    for i in range(len(s.diff)):
        for j in range(i + 1, len(s.diff)):
            cross = worse(_compare_trees(pairs[i][0][j], pairs[i][1][j]), _compare_trees(pairs[j][0][i],
                                                                                          pairs[j][1][i]))
            rows.append(Row.of("hvp", f"{s.names[i]} x {s.names[j]}", (), cross, tol, note + ", the cross blocks"))
    return rows


@check("symbolic_zeros", "reference")
@off_kinks_if_needed
def _symbolic_zeros(s: Setup):
    out_f, _ = s.outputs
    outputs = _leaves(out_f)
    if len(outputs) < 2:
        return [Row.skip("symbolic_zeros", "one output: nothing to leave out")]
    per_output = []  # [output k][argument i]
    for k in range(len(outputs)):
        ct = random_like(salt(s.key, 10 + k), outputs[k])

        def pulled(fun):  # the VJP of output k alone: the other outputs' cotangents are symbolic zeros
            return fast_jit(lambda d: jax.vjp(lambda *x: _leaves(fun(*x))[k], *d)[1](ct))(s.diff)

        per_output.append([compare(a, b) for a, b in zip(pulled(s.f), pulled(s.r))])
    rows = []
    for i, (name, shape) in enumerate(zip(s.names, s.shapes)):
        worst, at = None, 0
        for k, comparisons in enumerate(per_output):
            if worst is None or comparisons[i].rel_err > worst.rel_err:
                worst, at = comparisons[i], k
        rows.append(Row.of("symbolic_zeros", name, shape, worst, s.rtol,
                           f"each of {len(outputs)} outputs alone; worst: output {at}"))
    return rows


@check("dtype")
def _dtype(s: Setup):
    (out_f, got), _ = s.values
    rows = []
    for i, (name, shape, x) in enumerate(zip(s.names, s.shapes, s.diff)):
        wrong = [] if got[0][i].dtype == x.dtype else [f"VJP {got[0][i].dtype} for input {x.dtype}"]
        if not s.forward_mode:
            for t, o in zip(_leaves(s.jvp(s.f, i)), _leaves(out_f)):
                if t.dtype != o.dtype:
                    wrong.append(f"JVP {t.dtype} for output {o.dtype}")
        rows.append(Row("dtype", name, shape, ok=not wrong, note="; ".join(wrong) or str(x.dtype)))
    return rows


def _traced_dot(a, b):
    """<a, b> over every leaf, traceable, accumulated in float32 or wider."""
    return sum(jnp.sum((x * y).astype(jnp.promote_types(x.dtype, jnp.float32))) for x, y in
               zip(_leaves(a), _leaves(b)))


def _stacked(*trees):
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _unstacked(tree, k):
    return jax.tree_util.tree_map(lambda x: x[k], tree)


@check("vmap")
def _vmap(s: Setup):
    shifted = [np.asarray(x) + 0.25 * n.astype(np.dtype(x.dtype)) for x, n in
               zip(s.diff, random_like(salt(s.key, 3), s.diff))]
    batch = [np.stack([np.asarray(a), b]) for a, b in zip(s.diff, shifted)]
    ct_batch = _stacked(s.cts[0], random_like(salt(s.key, 4), s.cts[0]))
    mapped = fast_jit(jax.vmap(s.pull))(batch, ct_batch)
    looped = [s.pull_jit([b[k] for b in batch], _unstacked(ct_batch, k)) for k in range(2)]
    return s.per_argument("vmap", [compare(m, np.stack([looped[0][i], looped[1][i]])) for i, m in
                                   enumerate(mapped)], s.rtol)


@check("vmap_tangents", "forward_mode")
def _vmap_tangents(s: Setup):
    stacks = [np.stack([np.asarray(t), (2 * np.asarray(t) + 1).astype(np.asarray(t).dtype)]) for t in s.tangents]

    def one(d, t, i):
        return jax.jvp(s.f, tuple(d), tuple(t if j == i else jnp.zeros_like(x) for j, x in enumerate(d)))[1]

    def both(d, ts):  # mapped and looped, in one compiled program
        return [(jax.vmap(one, (None, 0, None))(d, t, i), [one(d, t[k], i) for k in range(2)])
                for i, t in enumerate(ts)]

    pairs = fast_jit(both)(s.diff, stacks)
    return s.per_argument("vmap_tangents", [_compare_trees(m, _stacked(*loop)) for m, loop in pairs], s.rtol)


@check("vmap_cotangents")
def _vmap_cotangents(s: Setup):
    stack = _stacked(s.cts[0], random_like(salt(s.key, 7), s.cts[0]))

    def both(d, cts):  # mapped and looped, in one compiled program
        _, vjp = jax.vjp(s.f, *d)
        return jax.vmap(vjp)(cts), [vjp(_unstacked(cts, k)) for k in range(2)]

    mapped, looped = fast_jit(both)(s.diff, stack)
    return s.per_argument("vmap_cotangents", [compare(m, np.stack([looped[0][i], looped[1][i]])) for i, m in
                                              enumerate(mapped)], s.rtol)


@check("jit")
def _jit(s: Setup):
    compiled, eager = s.pull_jit(s.diff, s.cts[0]), s.pull(s.diff, s.cts[0])
    return s.per_argument("jit", [compare(a, b) for a, b in zip(compiled, eager)], s.rtol)


@check("determinism")
def _determinism(s: Setup):
    first, second = s.pull_jit(s.diff, s.cts[0]), s.pull_jit(s.diff, s.cts[0])
    tol = s.options["nondet_tol"]
    rows = []
    for name, shape, a, b in zip(s.names, s.shapes, second, first):
        c = compare(a, b)
        rows.append(Row("determinism", name, shape, c.abs_err, c.rel_err, tol, c.index, c.got, c.want,
                        ok=c.abs_err <= tol, note="two runs" + (", bitwise" if tol == 0 else "")))
    return rows


def scatter_ops(fun, args, platform: str) -> list:
    """The scatter operations in fun(*args) lowered (exported) for `platform`: op names, not source locations."""
    text = jax.export.export(jax.jit(fun), platforms=[platform])(*args).mlir_module()
    return sorted(set(re.findall(r"stablehlo\.(?:select_and_)?scatter\b", text)))


@check("no_scatter")
def _no_scatter(s: Setup):
    rows = []
    for platform in s.options["hlo_platforms"] or ("cuda",):
        found = scatter_ops(s.pull, (s.diff, s.cts[0]), platform)
        rows.append(Row("no_scatter", f"VJP for {platform}", (), ok=not found,
                        note=("found " + ", ".join(found)) if found else "no scatter op"))
    return rows


DEFAULT_CHECKS = tuple(c for c in CHECKS if c != "no_scatter")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


__all__ = ["CHECKS", "NEEDS", "DEFAULT_CHECKS", "PLATFORMS", "Setup", "check", "scatter_ops", "random_like", "salt",
           "fast_jit"]
