"""check_vjp: every check a hand-written derivative rule should pass, run at one point, in one report.

    from funcnn.verify import check_vjp, assert_vjp
    report = check_vjp(my_op, x, w)                    # my_op: a jax.custom_vjp, a jax.custom_jvp, a funcnn
                                                       # primitive, or a function that calls any of them
    print(report)                                      # one table: each check, each argument, the worst entry
    assert_vjp(my_op, x, w)                            # the same, raising AssertionError with the table (pytest)
    check_vjp(my_op, x, w, reference=my_reference)     # against an independent implementation instead

The checks are the table `CHECKS` below, one small function each, run in its order; each gives a row per
differentiated argument (pytree leaf), so an error in one argument's rule shows on that argument's rows:

    forward                 f(args) against the reference's output
    vjp                     f's VJP against jax.vjp of the reference, for random cotangents
    jvp                     f's JVP against jax.jvp of the reference, a tangent in one argument at a time
    finite_differences      f's VJP against central differences in float64, at a point moved off kinks and ties
    jvp_finite_differences  f's JVP against central differences along random directions, in float64
    adjoint                 <J u, v> = <u, J^T v>: f's JVP and f's VJP are transposes of each other
    grad_of_grad            the gradient of <VJP(ct)_i, p> against the reference's (second derivatives)
    hvp                     Hessian-vector products of <f, ct>: forward-over-reverse against reverse-over-reverse
    symbolic_zeros          with several outputs, the VJP of each output alone (the others' cotangents symbolic
                            zeros) against the reference's
    dtype                   the VJP of each argument and the JVP have the argument's and the output's dtype
    vmap                    the VJP under jax.vmap over a batch of points and cotangents against a loop
    vmap_tangents           the JVP under jax.vmap over a stack of tangents against a loop
    vmap_cotangents         the VJP under jax.vmap over a stack of cotangents against a loop
    jit                     the VJP under jax.jit against eager evaluation
    determinism             two runs of the compiled VJP: equal within nondet_tol (0: bitwise)
    no_scatter              (with hlo_platforms=) the VJP lowered for each platform holds no scatter operation, the
                            operation that is non-deterministic on GPUs

The reference is `reference` when given; otherwise, when f holds a hand-written rule (a jax.custom_vjp,
jax.custom_jvp or funcnn primitive), f's primal (`primal_of`: each rule replaced by the forward computation it
wraps) differentiated by JAX; otherwise there is none, and the checks against it are skipped. A jax.custom_vjp has
no forward mode in JAX, so its forward-mode rows are skipped with a note. Errors are normwise: rel = max|a - b| /
max|b| over an argument's entries (the largest over the cotangents); a row that compared only zeros (or NaN) on both
sides says so in its pass column instead of "yes". A check that raises is a failing row with the error.

Arguments may be pytrees (a parameter dict, say): every floating leaf is differentiated, integer leaves (labels) are
held fixed.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .primal import has_custom_vjp, has_rules, primal_of
from .result import ArgumentReport, Comparison, Row, VJPReport, compare, default_rtol, worse

# ----------------------------------------------------------------------------------------------------------------
# the setup every check reads: f and the reference as functions of the differentiated leaves, cotangents, tangents


def _random_like(key, tree, scale=1.0):
    """Standard normal arrays shaped like the leaves of `tree`, from NumPy's generator seeded by `key` (an int):
    test vectors need no JAX PRNG, whose threefry program XLA compiles anew for every shape (seconds on a CPU)."""
    rng = np.random.default_rng(key)
    return jax.tree_util.tree_map(lambda x: np.asarray(rng.standard_normal(x.shape) * scale, np.float32).astype(
        np.dtype(x.dtype)), tree)


def _salt(key, salt: int) -> int:
    """A seed derived from `key` for one purpose (the cotangents, the tangents, the probes, ...)."""
    return int(np.random.SeedSequence([key, salt]).generate_state(1)[0])


def _fast_jit(fun):
    """jax.jit for the checker's own comparison programs: compiled without XLA's backend optimisations (the values
    are compared at float64 or dtype tolerances, and compiling is most of a check's time). The `jit` and
    `determinism` checks compile as users do (`jax.jit`), since what they test is the optimised program."""
    return jax.jit(fun, compiler_options={"xla_backend_optimization_level": 0})


def _leaves(tree):
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
        return _random_like(_salt(self.key, 1), self.diff)

    def only(self, i, tangent):
        """A tangent in argument i alone: zeros elsewhere."""
        return tuple(tangent if j == i else np.zeros(x.shape, np.dtype(x.dtype)) for j, x in enumerate(self.diff))

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
            return _fast_jit(apply)(self.diff, self.cts, self.tangents)
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
_NEEDS: dict[str, set] = {}


def check(name: str, *needs: str):
    """Register a check (a function Setup -> rows) under `name`; `needs`: "reference" and/or "forward_mode"."""
    def register(fn):
        CHECKS[name] = fn
        _NEEDS[name] = set(needs)
        return fn
    return register


def _compare_trees(a, b) -> Comparison | None:
    out = None
    for x, y in zip(_leaves(a), _leaves(b)):
        out = worse(out, compare(x, y))
    return out


# ----------------------------------------------------------------------------------------------------------------
# the checks, one function each, in the order they run


@check("forward", "reference")
def _forward(s: Setup):
    (out_f, _), (out_r, _) = s.values
    return [Row.of("forward", "output", tuple(np.shape(_leaves(out_f)[0])), _compare_trees(out_f, out_r), s.rtol)]


@check("vjp", "reference")
def _vjp(s: Setup):
    (_, got), (_, want) = s.values
    worst = [None] * len(s.diff)
    for mine, theirs in zip(got, want):
        for i, (a, b) in enumerate(zip(mine, theirs)):
            worst[i] = worse(worst[i], compare(a, b))
    return s.per_argument("vjp", worst, s.rtol)


@check("jvp", "reference", "forward_mode")
def _jvp(s: Setup):
    return s.per_argument("jvp", [_compare_trees(s.jvp(s.f, i), s.jvp(s.r, i)) for i in range(len(s.diff))], s.rtol)


@check("finite_differences")
def _finite_differences(s: Setup):
    from .finite import vjp_against_differences

    comparisons, note = vjp_against_differences(s)
    return s.per_argument("finite_differences", comparisons, s.fd_rtol, note)


@check("jvp_finite_differences", "forward_mode")
def _jvp_finite_differences(s: Setup):
    from .finite import jvp_against_differences

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
def _grad_of_grad(s: Setup):
    probes = _random_like(_salt(s.key, 2), s.diff)

    def second(fun):
        def phi(d, i):  # <VJP(ct)_i (d), p_i>: the derivative of argument i's backward rule
            return jnp.sum((jax.vjp(fun, *d)[1](s.cts[0])[i] * probes[i]).astype(jnp.promote_types(
                s.diff[i].dtype, jnp.float32)))
        return _fast_jit(lambda d: [jax.grad(phi)(d, i) for i in range(len(d))])(s.diff)

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

    pairs = _fast_jit(both)(s.diff, us)
    return s.per_argument("hvp", [_compare_trees(fwd, rev) for fwd, rev in pairs], _second_order_tol(s.rtol),
                          "fwd-over-rev vs rev-over-rev")


@check("symbolic_zeros", "reference")
def _symbolic_zeros(s: Setup):
    (out_f, _), _ = s.values
    outputs = _leaves(out_f)
    if len(outputs) < 2:
        return [Row.skip("symbolic_zeros", "one output: nothing to leave out")]
    worst = [None] * len(s.diff)
    for k in range(len(outputs)):
        ct = _random_like(_salt(s.key, 10 + k), outputs[k])

        def pulled(fun):  # the VJP of output k alone: the other outputs' cotangents are symbolic zeros
            return _fast_jit(lambda d: jax.vjp(lambda *x: _leaves(fun(*x))[k], *d)[1](ct))(s.diff)

        for i, (a, b) in enumerate(zip(pulled(s.f), pulled(s.r))):
            worst[i] = worse(worst[i], compare(a, b))
    return s.per_argument("symbolic_zeros", worst, s.rtol, f"each of {len(outputs)} outputs alone")


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
               zip(s.diff, _random_like(_salt(s.key, 3), s.diff))]
    batch = [np.stack([np.asarray(a), b]) for a, b in zip(s.diff, shifted)]
    ct_batch = _stacked(s.cts[0], _random_like(_salt(s.key, 4), s.cts[0]))
    mapped = _fast_jit(jax.vmap(s.pull))(batch, ct_batch)
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

    pairs = _fast_jit(both)(s.diff, stacks)
    return s.per_argument("vmap_tangents", [_compare_trees(m, _stacked(*loop)) for m, loop in pairs], s.rtol)


@check("vmap_cotangents")
def _vmap_cotangents(s: Setup):
    stack = _stacked(s.cts[0], _random_like(_salt(s.key, 7), s.cts[0]))

    def both(d, cts):  # mapped and looped, in one compiled program
        _, vjp = jax.vjp(s.f, *d)
        return jax.vmap(vjp)(cts), [vjp(_unstacked(cts, k)) for k in range(2)]

    mapped, looped = _fast_jit(both)(s.diff, stack)
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


# ----------------------------------------------------------------------------------------------------------------
# the entry point


def _split(args):
    """Flatten the arguments; return (leaves, names, treedef, mask of differentiated leaves)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    names, leaves, mask = [], [], []
    for path, leaf in flat:
        name = "arg" + jax.tree_util.keystr(path)
        if isinstance(leaf, (str, bytes)) or leaf is None or (isinstance(leaf, np.ndarray) and leaf.dtype == object):
            raise TypeError(f"check_vjp: {name} must be an array (or a number), got {type(leaf).__name__} "
                            f"{leaf!r:.40}")
        leaf = jnp.asarray(leaf)
        leaves.append(leaf)
        names.append(name)
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


def _validate(f, reference, checks, rtol, fd_rtol, fd_eps, fd_mode, fd_max_elements, fd_directions, nondet_tol,
              num_cotangents, hlo_platforms):
    if not callable(f):
        raise TypeError(f"check_vjp: f must be a function, got {type(f).__name__} {f!r:.40}")
    if reference is not None and not callable(reference):
        raise TypeError(f"check_vjp: reference must be a function or None, got {type(reference).__name__}")
    if isinstance(checks, str):
        raise TypeError(f"check_vjp: checks must be a sequence of names, got the string {checks!r} "
                        f"(write checks=({checks!r},))")
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"check_vjp: unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
    if fd_mode not in ("auto", "full", "directional"):
        raise ValueError(f'check_vjp: fd_mode must be "auto", "full" or "directional", got {fd_mode!r}')
    for name, value in (("rtol", rtol), ("fd_rtol", fd_rtol), ("nondet_tol", nondet_tol)):
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < np.inf):
            raise ValueError(f"check_vjp: {name} must be a finite number >= 0, got {value!r}")
    if not (isinstance(fd_eps, (int, float)) and 0 < fd_eps < 1):
        raise ValueError(f"check_vjp: fd_eps must be a number in (0, 1), got {fd_eps!r}")
    for name, value in (("fd_max_elements", fd_max_elements), ("fd_directions", fd_directions),
                        ("num_cotangents", num_cotangents)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"check_vjp: {name} must be an int >= 1, got {value!r}")
    if isinstance(hlo_platforms, str):
        hlo_platforms = (hlo_platforms,)
    unknown = [p for p in hlo_platforms if p not in PLATFORMS]
    if unknown:
        raise ValueError(f"check_vjp: hlo_platforms: unknown platform {unknown[0]!r}; known: {', '.join(PLATFORMS)}")
    return tuple(hlo_platforms)


def _find_reference(f, g, reference, leaves, treedef, mask, diff):
    if reference is not None:
        r = _closure(reference, leaves, treedef, mask)
        out_f, out_r = jax.eval_shape(g, *diff), jax.eval_shape(r, *diff)
        shapes = lambda t: [(tuple(x.shape), x.dtype) for x in _leaves(t)]  # noqa: E731
        if jax.tree_util.tree_structure(out_f) != jax.tree_util.tree_structure(out_r) or \
                [s for s, _ in shapes(out_f)] != [s for s, _ in shapes(out_r)]:
            raise ValueError(f"check_vjp: the reference's output {[s for s, _ in shapes(out_r)]} does not match f's "
                             f"{[s for s, _ in shapes(out_f)]}")
        return r, "given"
    if has_rules(jax.make_jaxpr(g)(*diff)):
        return _closure(primal_of(f), leaves, treedef, mask), "f's primal (hand-written rules inlined)"
    return None, "none (f holds no custom_vjp, custom_jvp or funcnn primitive; pass reference=)"


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
      f: the function under test: a jax.custom_vjp or jax.custom_jvp, a funcnn primitive, or a function calling one.
      *args: the point to check at; pytrees of arrays. Floating leaves are differentiated, others held fixed.
      reference: an independent implementation of the same map, differentiated by JAX; default: f's primal.
      checks: which checks to run (names from `CHECKS`; "no_scatter" also runs when hlo_platforms is given).
      seed: PRNG seed of the cotangents, tangents, directions and kink offsets.
      rtol: normwise tolerance of the comparisons in the arguments' dtype (default by dtype: `default_rtol`).
      fd_rtol, fd_eps: tolerance and relative step of the central differences (always in float64); the step is
        fd_eps times the argument's standard deviation (at least fd_eps).
      fd_mode: "full" (every entry: 2 evaluations each), "directional" (random directions), or "auto" (full for
        arguments of at most `fd_max_elements` entries). The JVP's differences are always directional.
      kinks: move argument entries that are exactly 0 or tied before the finite differences.
      nondet_tol: largest difference allowed between two runs (as PyTorch's gradcheck; 0 means bitwise equal).
      hlo_platforms: platforms to lower the VJP for and audit for scatter operations (e.g. ("cuda",)); needs no
        device of that platform.
    """
    hlo_platforms = _validate(f, reference, checks, rtol, fd_rtol, fd_eps, fd_mode, fd_max_elements, fd_directions,
                              nondet_tol, num_cotangents, hlo_platforms)
    wanted = set(checks) | ({"no_scatter"} if hlo_platforms else set())
    leaves, names, treedef, mask = _split(args)
    if not any(mask):
        raise ValueError("check_vjp: no floating-point argument to differentiate")
    diff = [leaf for leaf, m in zip(leaves, mask) if m]
    g = _closure(f, leaves, treedef, mask)
    dtype = jnp.result_type(*diff)
    r, described = _find_reference(f, g, reference, leaves, treedef, mask, diff)
    key = int(seed)
    out_shape = jax.eval_shape(g, *diff)
    cts = [_random_like(_salt(key, 100 + k), out_shape) for k in range(num_cotangents)]
    forward_mode = ("f holds a jax.custom_vjp, which JAX gives no forward mode"
                    if has_custom_vjp(jax.make_jaxpr(g)(*diff)) else "")
    setup = Setup(g, r, diff, [n for n, m in zip(names, mask) if m], [tuple(x.shape) for x in diff],
                  default_rtol(dtype) if rtol is None else rtol, fd_rtol,
                  dict(fd_eps=fd_eps, fd_mode=fd_mode, fd_max_elements=fd_max_elements, fd_directions=fd_directions,
                       kinks=kinks, nondet_tol=nondet_tol, hlo_platforms=hlo_platforms, seed=seed),
                  key, cts, forward_mode)
    rows: list[Row] = []
    for name, run in CHECKS.items():
        if name not in wanted:
            continue
        if "reference" in _NEEDS[name] and r is None:
            continue
        if "forward_mode" in _NEEDS[name] and forward_mode:
            rows.append(Row.skip(name, forward_mode))
            continue
        try:
            rows.extend(run(setup))
        except Exception as err:  # noqa: BLE001 - a rule that breaks this check fails its row, with the error
            rows.append(Row(name, "-", (), ok=False, note=f"{type(err).__name__}: {_first_line(err)}"))
    from .finite import fd_modes

    modes = fd_modes(diff, fd_mode, fd_max_elements) if "finite_differences" in wanted else "off"
    return VJPReport(rows, described, str(jnp.dtype(dtype)), setup.rtol, fd_rtol, modes, tuple(CHECKS))


def _first_line(err) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else "")[:160]


def assert_vjp(f: Callable, *args: Any, **options) -> VJPReport:
    """`check_vjp(f, *args, **options)`, raising AssertionError with the report's table when a check fails; for a
    test suite. Returns the report when every check passed."""
    report = check_vjp(f, *args, **options)
    report.raise_if_failed()
    return report


__all__ = ["CHECKS", "DEFAULT_CHECKS", "PLATFORMS", "scatter_ops", "Row", "ArgumentReport", "VJPReport", "check",
           "check_vjp", "assert_vjp", "default_rtol"]
