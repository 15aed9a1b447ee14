"""Central finite differences in float64 for `check_vjp`: the VJP against differences per entry (or along random
directions), and the JVP against differences along random directions. Both run at a point moved off kinks and ties
(ReLU at 0, a tied max-pool window), where central differences straddle a kink and measure nothing."""

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


def _central(fun, diff, index, vs, h):
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
    diff64, moved = [], 0
    for i, x in enumerate(s.diff):
        x64 = np.asarray(x, np.float64)
        if o["kinks"]:
            x64, n = off_kinks(x64, o["seed"] + i)
            moved += n
        diff64.append(x64)
    # the step follows the spread of the argument, not its magnitude: x = 100 + N(0, 1) varies on the scale 1
    steps = [o["fd_eps"] * max(1.0, float(np.std(x)) if x.size > 1 else float(np.max(np.abs(x), initial=0.0)))
             for x in diff64]
    return s.f, diff64, steps, (f"{moved} entries moved off kinks/ties" if moved else "")


def vjp_against_differences(s):
    """Per differentiated leaf: the comparison of f's float64 VJP with central differences, and a note."""
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
        def in_float64(diff64, cts, vs):
            out64, vjp64 = jax.vjp(g64, *diff64)
            cts = [jax.tree_util.tree_map(lambda t, o: t.astype(o.dtype), ct, out64) for ct in cts]
            analytic = [vjp64(ct) for ct in cts]
            fds = [[_contract(_central(g64, diff64, i, v, h), ct) for ct in cts]
                   for i, (v, h) in enumerate(zip(vs, steps))]
            return analytic, fds

        analytic, fds = in_float64(diff64, s.cts, vs)
        comparisons = []
        for i, (v, mode) in enumerate(zip(vs, modes)):
            worst = None
            for c in range(len(s.cts)):
                worst = worse(worst, _compare_vjp(analytic[c][i], fds[i][c], v, mode))
            comparisons.append(worst)
    return comparisons, note


def jvp_against_differences(s):
    """Per differentiated leaf: f's float64 JVP along random directions in that leaf against central differences
    along the same directions (every output compared, normwise)."""
    o = s.options
    with jax.enable_x64(True):
        g64, diff64, steps, note = _float64_point(s)
        rng = np.random.default_rng([s.key, 6])
        vs = [rng.standard_normal((max(2, o["fd_directions"] // 2), *x.shape)) for x in diff64]

        @functools.partial(jax.jit, compiler_options=_OPTIONS)
        def in_float64(diff64, vs):
            exact, fds = [], []
            for i, (v, h) in enumerate(zip(vs, steps)):
                def along(t, i=i):
                    tangents = tuple(t if j == i else jnp.zeros_like(x) for j, x in enumerate(diff64))
                    return jax.jvp(g64, tuple(diff64), tangents)[1]
                exact.append(jax.lax.map(along, v))
                fds.append(_central(g64, diff64, i, v, h))
            return exact, fds

        exact, fds = in_float64(diff64, vs)
        comparisons = []
        for e, d in zip(exact, fds):
            worst = None
            for a, b in zip(jax.tree_util.tree_leaves(e), jax.tree_util.tree_leaves(d)):
                worst = worse(worst, compare(a, b))
            comparisons.append(worst)
    return comparisons, note + ("; " if note else "") + "directional"


__all__ = ["fd_modes", "off_kinks", "vjp_against_differences", "jvp_against_differences"]
