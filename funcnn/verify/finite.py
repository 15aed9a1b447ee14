"""Central finite differences in float64 for `check_vjp`: the VJP against differences per entry (or along random
directions), and the JVP against differences along random directions. Both run at a point moved off kinks and ties
(ReLU at 0, a tied max-pool window), where central differences straddle a kink and measure nothing; a step that
still straddles one (a kink inside the network, a hidden ReLU input a step away from 0) is detected, where the
central differences at steps h and h/2 disagree, and the point moved again."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .result import compare, worse

_OPTIONS = {"xla_backend_optimization_level": 0}  # see checks.fast_jit: compiling is most of a check's time


def fd_modes(diff, fd_mode, fd_max_elements) -> str:
    modes = {_mode(x, fd_mode, fd_max_elements) for x in diff}
    return "+".join(sorted(modes))


def _mode(x, fd_mode, fd_max_elements) -> str:
    return fd_mode if fd_mode != "auto" else ("full" if x.size <= fd_max_elements else "directional")


def off_kinks(x, seed: int):
    """x with every entry that is exactly 0 or tied with another entry moved by a small random amount (float64)."""
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
    return np.where(at_kink, a + shift, a).reshape(np.shape(x)), moved


def point_off_kinks(diff, seed: int):
    """Every leaf of `diff` in float64, moved off kinks and ties (`off_kinks`, leaf i seeded seed + i), and how many
    entries moved in all: the point the finite differences, and the reference rows that fail at a kink, run at."""
    points, moved = [], 0
    for i, x in enumerate(diff):
        point, n = off_kinks(np.asarray(x, np.float64), seed + i)
        points.append(np.asarray(point, np.float64))
        moved += n
    return points, moved


def _central(fun, diff, index, vs, h):
    """For each direction v of leaf `index`, stacked on axis 0 (traceable): the central difference
    (f(x + h v) - f(x - h v)) / 2h, and the same with half the step. For a smooth f the two agree to O(h^2); where
    they do not, a step straddles a kink (`straddled`)."""

    def at(v, step):
        plus, minus = list(diff), list(diff)
        plus[index], minus[index] = diff[index] + step * v, diff[index] - step * v
        return jax.tree_util.tree_map(lambda a, b: (a - b) / (2 * step), fun(*plus), fun(*minus))

    return jax.lax.map(lambda v: (at(v, h), at(v, h / 2)), vs, batch_size=64)


RETRIES = 3  # points tried before the directions that still straddle a kink are left out


def straddled(full, half, rounding, rtol):
    """Per direction (axis 0 of every leaf): whether the central differences at steps h and h/2 disagree by more than
    a tenth of the comparison's tolerance plus the rounding level: a kink inside [x - h, x + h] (a smooth f's two
    agree to O(h^2), far below)."""
    gap, size = 0.0, 0.0
    for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(half)):
        a, b = (np.asarray(t, np.float64) for t in (a, b))
        a, b = (t.reshape(t.shape[0], int(np.prod(t.shape[1:]))) for t in (a, b))  # no -1: at N = 0 it divides by 0
        gap = gap + np.linalg.norm(a - b, axis=1)
        size = size + np.linalg.norm(b, axis=1)
    return np.asarray(gap > 0.1 * rtol * size + rounding)


def _rounding(value, h):
    """The rounding level of a central difference with step h/2 of a function whose value is `value`: 10 eps |f| / h."""
    size = sum(float(np.max(np.abs(np.asarray(leaf, np.float64)), initial=0.0))
               for leaf in jax.tree_util.tree_leaves(value))
    return 10 * np.finfo(np.float64).eps * size / (h / 2)


def _until_no_straddle(run, straddling, diff64, steps, rng):
    """`run(diff64, steps)` -> (results, f(x)); while `straddling(results, rounding)` (one boolean array per leaf,
    per direction) flags a direction, run again at a point moved a little with a quarter of the step, up to RETRIES
    times. Returns (results, the flags of the last run, how many times the point moved)."""
    for attempt in range(RETRIES + 1):
        results, value = run(diff64, steps)
        bad = straddling(results, _rounding(value, min(steps)))
        if not any(b.any() for b in bad) or attempt == RETRIES:
            return results, bad, attempt
        diff64, steps = _moved_again(diff64, steps, rng)


def _moved_again(diff64, steps, rng):
    """The point moved a little further (each entry by up to 100 steps) and the steps quartered: in a network the
    hidden ReLU inputs within a step of 0 are many (their number grows with the step), so a smaller step straddles
    fewer; rounding grows as the step shrinks, which `straddled` and the comparison's tolerance bound."""
    return [x + rng.uniform(-100.0, 100.0, np.shape(x)) * h for x, h in zip(diff64, steps)], [h / 4 for h in steps]


def _contract(stacked, tree):
    """<stacked[k], tree> for every k: the directional derivatives of phi = <cotangent, f>."""
    return sum(jnp.tensordot(s, t, axes=t.ndim)
               for s, t in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(tree)))


def _compare_vjp(exact, fd, vs, mode):
    """The analytic VJP entry `exact` against the differences `fd` (per entry, or per direction)."""
    exact = np.asarray(exact)
    if mode == "full":
        return compare(exact, np.asarray(fd).reshape(exact.shape))
    want = np.tensordot(vs, exact, axes=exact.ndim)
    c = compare(np.asarray(fd), want)
    scale = float(np.linalg.norm(exact.ravel()) * np.max(np.linalg.norm(vs.reshape(len(vs), -1), axis=1)))
    return c._replace(rel_err=c.abs_err / scale if scale > 0 else c.abs_err)


def _float64_point(s):
    """f in float64 (its fixed leaves as given), the point moved off kinks, the steps and a note."""
    o = s.options
    if o["kinks"]:
        diff64, moved = point_off_kinks(s.diff, o["seed"])
    else:
        diff64, moved = [np.asarray(x, np.float64) for x in s.diff], 0
    # the step follows the spread of the argument, not its magnitude: x = 100 + N(0, 1) varies on the scale 1
    steps = [o["fd_eps"] * max(1.0, float(np.std(x)) if x.size > 1 else float(np.max(np.abs(x), initial=0.0)))
             for x in diff64]
    return s.f, diff64, steps, (f"{moved} entries moved off kinks/ties" if moved else "")


def vjp_against_differences(s):
    """Per differentiated leaf: the comparison of f's float64 VJP with central differences, and a note. A direction
    whose step straddles a kink (a hidden ReLU input a step away from 0) moves the point, up to RETRIES times; the
    directions that straddle at every point tried are left out, and the note says so."""
    o = s.options
    with jax.enable_x64(True):
        g64, diff64, steps, note = _float64_point(s)
        rng = np.random.default_rng([s.key, 5])
        modes = [_mode(x, o["fd_mode"], o["fd_max_elements"]) for x in diff64]

        def directions(x, mode):
            if mode == "full":
                return np.eye(x.size, dtype=x.dtype).reshape(x.size, *x.shape)
            return rng.standard_normal((o["fd_directions"], *x.shape)).astype(x.dtype)

        vs = [directions(x, m) for x, m in zip(diff64, modes)]

        @functools.partial(jax.jit, compiler_options=_OPTIONS)
        def in_float64(diff64, cts, vs, steps):
            out64, vjp64 = jax.vjp(g64, *diff64)
            cts = [jax.tree_util.tree_map(lambda t, o: t.astype(o.dtype), ct, out64) for ct in cts]
            analytic = [vjp64(ct) for ct in cts]
            sided = [_central(g64, diff64, i, v, h) for i, (v, h) in enumerate(zip(vs, steps))]
            fds = [[(_contract(full, ct), _contract(half, ct)) for ct in cts] for full, half in sided]
            return (analytic, fds), out64

        def straddling(results, rounding):
            return [np.any([straddled(full, half, rounding, s.fd_rtol) for full, half in per_ct], axis=0)
                    for per_ct in results[1]]

        (analytic, fds), bad, attempt = _until_no_straddle(lambda d, h: in_float64(d, s.cts, vs, h), straddling,
                                                           diff64, steps, rng)
        comparisons, left_out = [], 0
        for i, (v, mode) in enumerate(zip(vs, modes)):
            keep = ~bad[i]
            left_out += int((~keep).sum())
            worst = None
            for c in range(len(s.cts)):
                if keep.any():
                    exact, fd = analytic[c][i], np.asarray(fds[i][c][0])
                    if mode == "full":  # per entry: the straddled entries compared as equal
                        fd = np.where(keep, fd, np.asarray(exact).ravel())
                        worst = worse(worst, _compare_vjp(exact, fd, v, mode))
                    else:
                        worst = worse(worst, _compare_vjp(exact, fd[keep], v[keep], mode))
            comparisons.append(worst)
    return comparisons, _note(note, attempt, left_out)


def _note(note, attempt, left_out):
    parts = [note] if note else []
    if attempt:
        parts.append(f"moved {attempt} more time{'s' if attempt > 1 else ''}, the step / {4 ** attempt}: a step "
                     "straddled a kink")
    if left_out:
        parts.append(f"{left_out} direction{'s' if left_out > 1 else ''} straddling a kink at every point left out")
    return "; ".join(parts)


def jvp_against_differences(s):
    """Per differentiated leaf: f's float64 JVP along random directions in that leaf against central differences
    along the same directions (every output compared, normwise); straddled kinks as in `vjp_against_differences`."""
    o = s.options
    with jax.enable_x64(True):
        g64, diff64, steps, note = _float64_point(s)
        rng = np.random.default_rng([s.key, 6])
        vs = [rng.standard_normal((max(2, o["fd_directions"] // 2), *x.shape)) for x in diff64]

        @functools.partial(jax.jit, compiler_options=_OPTIONS)
        def in_float64(diff64, vs, steps):
            exact, fds = [], []
            for i, (v, h) in enumerate(zip(vs, steps)):
                def along(t, i=i):
                    tangents = tuple(t if j == i else jnp.zeros_like(x) for j, x in enumerate(diff64))
                    return jax.jvp(g64, tuple(diff64), tangents)[1]
                exact.append(jax.lax.map(along, v))
                fds.append(_central(g64, diff64, i, v, h))
            return (exact, fds), g64(*diff64)

        def straddling(results, rounding):
            return [straddled(full, half, rounding, s.fd_rtol) for full, half in results[1]]

        (exact, fds), bad, attempt = _until_no_straddle(lambda d, h: in_float64(d, vs, h), straddling, diff64, steps,
                                                        rng)
        comparisons, left_out = [], 0
        for e, (d, _), b in zip(exact, fds, bad):
            keep = ~b
            left_out += int(b.sum())
            worst = None
            if keep.any():
                for x, y in zip(jax.tree_util.tree_leaves(e), jax.tree_util.tree_leaves(d)):
                    worst = worse(worst, compare(np.asarray(x)[keep], np.asarray(y)[keep]))
            comparisons.append(worst)
    return comparisons, "; ".join(filter(None, [_note(note, attempt, left_out), "directional"]))


__all__ = ["fd_modes", "off_kinks", "point_off_kinks", "vjp_against_differences", "jvp_against_differences"]
