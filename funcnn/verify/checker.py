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
    vjp                     f's VJP against jax.vjp of the reference, for random cotangents (again at the point
                            moved off kinks and ties where the two differ at a kink, as for every reference row)
    jvp                     f's JVP against jax.jvp of the reference, a tangent in one argument at a time
    finite_differences      f's VJP against central differences in float64, at a point moved off kinks and ties
    jvp_finite_differences  f's JVP against central differences along random directions, in float64
    adjoint                 <J u, v> = <u, J^T v>: f's JVP and f's VJP are transposes of each other
    grad_of_grad            the gradient of <VJP(ct)_i, p> against the reference's (second derivatives)
    hvp                     Hessian-vector products of <f, ct>: forward-over-reverse against reverse-over-reverse,
                            per argument (its diagonal block) and per pair of arguments (their cross blocks)
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

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .checks import CHECKS, DEFAULT_CHECKS, NEEDS, PLATFORMS, Setup, check, random_like, salt, scatter_ops
from .finite import fd_modes
from .primal import has_custom_vjp, has_rules, primal_of
from .result import ArgumentReport, Row, VJPReport, default_rtol

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
        floating = bool(jnp.issubdtype(leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf), jnp.floating))
        leaves.append(jnp.asarray(leaf) if floating else leaf)  # the others as given: an int for nondiff_argnums
        names.append(name)
        mask.append(floating)
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
              num_cotangents, hlo_platforms, seed):
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
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"check_vjp: seed must be an int >= 0, got {seed!r}")
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
    if not checks and not hlo_platforms:  # a report with no row would pass while checking nothing
        raise ValueError(f"check_vjp: checks is empty, so nothing would be checked; name at least one of "
                         f"{', '.join(CHECKS)}")
    return tuple(hlo_platforms)


def _cast_to(r, like):
    """r with each output cast to the dtype of `like`'s leaf (f's output types)."""
    def cast(*d):
        return jax.tree_util.tree_map(lambda o, spec: o.astype(spec.dtype), r(*d), like)
    return cast


def _find_reference(f, g, reference, leaves, treedef, mask, diff):
    if reference is not None:
        r = _closure(reference, leaves, treedef, mask)
        out_f, out_r = jax.eval_shape(g, *diff), jax.eval_shape(r, *diff)
        shapes = lambda t: [(tuple(x.shape), x.dtype) for x in jax.tree_util.tree_leaves(t)]  # noqa: E731
        if jax.tree_util.tree_structure(out_f) != jax.tree_util.tree_structure(out_r) or \
                [s for s, _ in shapes(out_f)] != [s for s, _ in shapes(out_r)]:
            raise ValueError(f"check_vjp: the reference's output {[s for s, _ in shapes(out_r)]} does not match f's "
                             f"{[s for s, _ in shapes(out_f)]}")
        theirs, mine = [d for _, d in shapes(out_r)], [d for _, d in shapes(out_f)]
        if theirs != mine:  # a float64 reference of a float32 op: computed in its dtype, compared in f's
            return _cast_to(r, out_f), (f"given (its {', '.join(sorted({str(d) for d in theirs}))} outputs cast to "
                                        f"f's {', '.join(sorted({str(d) for d in mine}))})")
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
      kinks: move argument entries that are exactly 0 or tied before the finite differences, and compare the
        reference rows again at that moved point where f and the reference differ at the original one (a rule's
        choice at a kink); a step that straddles a kink inside f moves the point again with a smaller step.
      nondet_tol: largest difference allowed between two runs (as PyTorch's gradcheck; 0 means bitwise equal).
      hlo_platforms: platforms to lower the VJP for and audit for scatter operations (e.g. ("cuda",)); needs no
        device of that platform.
    """
    hlo_platforms = _validate(f, reference, checks, rtol, fd_rtol, fd_eps, fd_mode, fd_max_elements, fd_directions,
                              nondet_tol, num_cotangents, hlo_platforms, seed)
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
    cts = [random_like(salt(key, 100 + k), out_shape) for k in range(num_cotangents)]
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
        if "reference" in NEEDS[name] and r is None:
            continue
        if "forward_mode" in NEEDS[name] and forward_mode:
            rows.append(Row.skip(name, forward_mode))
            continue
        try:
            rows.extend(run(setup))
        except Exception as err:  # noqa: BLE001 - a rule that breaks this check fails its row, with the error
            rows.append(Row(name, "-", (), ok=False, note=f"{type(err).__name__}: {_first_line(err)}"))
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
