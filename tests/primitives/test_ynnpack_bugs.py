"""The YNNPACK bugs of jaxlib 0.10.2 (and 0.11.0) on CPU: funcnn's compiled steps avoid them, and funcnn's ops do not
emit the forms that meet them even under a user's plain `jax.jit`.

Each reproducer is the one its JAX issue gives; it runs in its own process (one crashes, one hangs where the bug is
present) under the per-executable options funcnn's steps compile with (`compiler_options()`: "onednn", which is
"eigen" on these jaxlibs, or "eigen"). On a fixed jaxlib the same programs also pass with YNNPACK on; on 0.10.2 they
fail there (checked by hand; see engines.YNN_BUGS).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import funcnn as fn
from funcnn.primitives.conv import engines

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the bugs are in XLA's CPU backend")

_PROLOGUE = """
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from funcnn.primitives.conv.engines import compiler_options
jit = lambda f: jax.jit(f, compiler_options=compiler_options())   # as funcnn's compiled steps do
"""

REPRODUCERS = {
    "jax#39103 (wrong result)": """
        for dtype, n in ((jnp.float64, 16_385), (jnp.float32, 32_769)):
            i = jnp.arange(n, dtype=dtype)
            x = jnp.stack((i, jnp.zeros_like(i), jnp.zeros_like(i)), axis=1)
            m = jnp.eye(3, dtype=dtype)
            f = lambda x: jax.vmap(lambda row: jnp.sum((m @ row) ** 2))(x)
            got = float(jit(f)(x)[-1])
            assert got == float(n - 1) ** 2, (dtype.__name__, got)
        """,
    "jax#39257 (crash or hang)": """
        def f(obs, A):
            lik = jnp.sum(obs[..., None, None, None, None, None] * A, axis=2)
            return jnp.log(jnp.maximum(lik, 2.220446049250313e-16))
        r = jit(f)(jnp.ones((10, 4, 6), jnp.float32), jnp.ones((10, 4, 6, 9, 9, 9, 9, 9), jnp.float32))
        assert float(jnp.abs(r - jnp.log(6.0)).max()) < 1e-6
        """,
    "jax#40412 (crash)": """
        S = (3, 1, 2, 2, 8, 8, 8)
        u = jax.random.normal(jax.random.PRNGKey(0), S, dtype=jnp.float32)
        v = jax.random.normal(jax.random.PRNGKey(1), S, dtype=jnp.float32)
        r = jit(lambda a, b: jnp.sum(a * b, axis=3))(u, v)
        assert float(jnp.abs(r - jnp.sum(u * v, axis=3)).max()) < 1e-5
        """,
}


@pytest.mark.parametrize("bug", sorted(REPRODUCERS))
def test_funcnns_compiled_steps_do_not_meet_the_known_ynnpack_bugs(bug):
    code = _PROLOGUE + textwrap.dedent(REPRODUCERS[bug]) + "\nprint('ok')\n"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{bug}: hung for 240 s under funcnn's compiler options")
    assert done.returncode == 0 and done.stdout.strip() == "ok", (
        f"{bug} under funcnn's compiler options: exit {done.returncode}\n{done.stderr[-2000:]}")


_COMPUTATION = re.compile(r"^(?:ENTRY )?(%[\w.\-]+) \(")
_YNN_CALL = re.compile(r"calls=(%[\w.\-]+)[^\n]*__ynn_fusion")
_SHAPE = re.compile(r"\b(?:f|bf|s|u|pred)\d*\[([\d,]*)\]")


def _ynn_ranks(f, *args) -> dict:
    """For f compiled by a plain jit: the highest rank of any array inside a YNNPACK fusion that holds a reduce,
    and of one that holds a dot ({"reduce": r, "dot": r}, a kind absent when no such fusion exists)."""
    text = jax.jit(f).lower(*args).compile().as_text()
    fused, current, bodies = set(_YNN_CALL.findall(text)), None, {}
    for line in text.splitlines():
        start = _COMPUTATION.match(line)
        if start:
            current = start.group(1)
        if current in fused:
            bodies.setdefault(current, []).append(line)
    ranks = {}
    for lines in bodies.values():
        body = "\n".join(lines)
        rank = max((len(s.split(",")) if s else 0 for s in _SHAPE.findall(body)), default=0)
        for kind in ("reduce", "dot"):
            if f" {kind}(" in body:
                ranks[kind] = max(ranks.get(kind, 0), rank)
    return ranks


def _sum_sq(f):
    return lambda *a: jnp.sum(f(*a) ** 2)


def test_funcnn_ops_under_a_plain_jit_keep_ynnpack_reduces_and_dots_below_rank_7():
    """jax#39257 and #40412 need a rank-7 or rank-8 reduce in a YNNPACK fusion. The ops with the most axes (3-D
    conv and pools, vmapped as replicas are, and their gradients) compiled with YNNPACK on stay below that."""
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (2, 6, 8, 8, 20), jnp.float32)
    w = jax.random.normal(key, (3, 3, 3, 20, 24), jnp.float32)
    cases = {
        "conv3d grads": (jax.grad(_sum_sq(lambda x, w: fn.conv3d(x, w, padding=1)), (0, 1)), x, w),
        "replicas of conv3d": (jax.vmap(jax.grad(_sum_sq(lambda w, x: fn.conv3d(x, w, stride=2)))),
                               jnp.stack([w, w]), jnp.stack([x, x])),
        "max_pool3d grad, vmapped": (jax.vmap(jax.grad(_sum_sq(lambda x: fn.max_pool3d(x, 3, 2, padding=1)))),
                                     jnp.stack([x, x])),
        "avg/lp pool3d grads": (jax.grad(_sum_sq(lambda x: fn.avg_pool3d(x, 2) + fn.lp_pool3d(x, 2.0, 2))), x),
        "per-example dense grads": (jax.vmap(jax.grad(_sum_sq(lambda w, r: fn.dense(r[None], w))), (None, 0)),
                                    jnp.ones((20, 5)), jnp.ones((7, 20))),
    }
    for name, (f, *args) in cases.items():
        ranks = _ynn_ranks(f, *args)
        assert all(r < 7 for r in ranks.values()), (name, ranks)


def test_funcnn_dense_under_vmap_and_jit_is_right_where_jax_39103_is_wrong():
    """jax#39103's pattern written with funcnn's dense (rows through a 3x3 matrix, squared and summed, vmapped) at
    the sizes that expose the bug, compiled by a plain jit (YNNPACK on): the exact answer, (n - 1)^2."""
    for dtype, n in ((jnp.float64, 16_385), (jnp.float32, 32_769)):
        i = jnp.arange(n, dtype=dtype)
        x = jnp.stack((i, jnp.zeros_like(i), jnp.zeros_like(i)), axis=1)
        m = jnp.eye(3, dtype=dtype)
        got = jax.jit(jax.vmap(lambda row: jnp.sum(fn.dense(row[None], m) ** 2)))(x)[-1]
        assert float(got) == float(n - 1) ** 2, (jnp.dtype(dtype).name, float(got))


def test_asking_for_xla_on_a_jaxlib_with_known_ynnpack_bugs_warns_once(monkeypatch):
    import jaxlib

    monkeypatch.setattr(engines, "_warned", set())
    monkeypatch.setitem(engines.YNN_BUGS, jaxlib.__version__, "jax#00000 (a test entry)")
    with pytest.warns(RuntimeWarning, match=r"jax#00000.*cpu_engine='eigen' or 'onednn' \(the defaults\) avoid them"):
        assert engines.compiler_options("xla") is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engines.compiler_options("xla")  # once only
        assert engines.compiler_options("eigen") == {engines.CPU_ENGINE_OPTION: ""}
        assert engines.option_value("onednn") == ""  # on such a jaxlib the engine's steps compile as "eigen" too
