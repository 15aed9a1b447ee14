"""funcnn's oneDNN CPU engine (`funcnn/primitives/conv/paths/onednn.py`, `native/onednn_conv.cc`): the same values
as XLA's paths over a randomized grid, the verifier's conv cases in float32 against the float64 reference, every
transform, exports without the custom call, determinism, errors, threads and plans. Skipped, saying why, where the
engine is not built (no C++ compiler at install time); CI builds it (README, Install)."""

import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.primitives.conv import engines, force_algorithm, rules, tracing, use_onednn
from funcnn.primitives.conv.paths import onednn
from funcnn.primitives.conv.spec import ConvSpec
from funcnn.primitives.geometry import Geometry

pytestmark = pytest.mark.skipif(not onednn.available(),
                                reason=f"funcnn's oneDNN engine is not built: {onednn.unavailable_reason()}")


def _grid(count, seed):
    """Random conv configurations: rank 1-3, batch 1 included, odd sizes, kernel larger than stride, dilation,
    asymmetric padding (zero included), groups from 1 to depth-wise."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        nd = int(rng.integers(1, 4))
        groups = int(rng.choice([1, 1, 2, 3]))
        c_in = groups * int(rng.integers(1, 4))
        depthwise = rng.random() < 0.25
        if depthwise:
            groups = c_in = int(rng.integers(2, 6))
        c_out = groups * int(rng.integers(1, 4))
        window = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd))
        dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
        padding = tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 3, (nd, 2)))
        k_eff = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
        sizes = tuple(int(max(s, k - lo - hi)) for s, k, (lo, hi) in zip(rng.integers(1, 10, nd), k_eff, padding))
        batch = int(rng.choice([1, 2, 3]))
        out.append(dict(x=(batch, *sizes, c_in), w=(*window, c_in // groups, c_out), stride=stride,
                        padding=padding, dilation=dilation, groups=groups))
    return out


def _inputs(config, dtype):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=config["x"]), dtype)
    w = jnp.asarray(rng.normal(size=config["w"]), dtype)
    kw = {k: config[k] for k in ("stride", "padding", "dilation", "groups")}
    return rng, x, w, kw


def _rules(config, dtype, path):
    """(forward, dX, dW, the transposed conv) of one configuration, every rule on `path`."""
    rng, x, w, kw = _inputs(config, dtype)
    conv = {1: fn.conv1d, 2: fn.conv2d, 3: fn.conv3d}[len(config["x"]) - 2]
    with force_algorithm(path):
        z, vjp = jax.vjp(lambda x, w: conv(x, w, **kw), x, w)
        g = jnp.asarray(rng.normal(size=z.shape), dtype)
        dx, dw = jax.jit(vjp)(g)
        y = jax.jit(lambda g, w: fn.primitives.conv.rules.conv_dx(g, w, _spec(config), x.shape[1:-1]))(g, w)
    return z, dx, dw, y


def _literal(config):
    """The same four from autodiff of the literal loop-level reference, in float64 (no XLA convolution: XLA's own
    algebraic simplifier aborts the process on a few of these small configurations, lax's autodiff included)."""
    rng, x, w, kw = _inputs(config, jnp.float64)
    z, vjp = jax.vjp(lambda x, w: fn.verify.reference.conv_nd(x, w, **kw), x, w)
    g = jnp.asarray(rng.normal(size=z.shape), jnp.float64)
    dx, dw = vjp(g)
    return z, dx, dw, dx


def _spec(config):
    return ConvSpec(Geometry(config["w"][:-2], config["stride"], config["padding"], config["dilation"]),
                    config["groups"])


def _close(a, b, tol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1.0)
    assert a.shape == b.shape and np.abs(a - b).max(initial=0.0) <= tol * scale, (what, np.abs(a - b).max())


@pytest.mark.parametrize("config", _grid(24, seed=0), ids=lambda c: f"x{c['x']}w{c['w']}s{c['stride']}"
                         f"p{c['padding']}d{c['dilation']}g{c['groups']}")
def test_the_engine_gives_xla_s_values_over_a_random_grid(config):
    """Forward, dX, dW and the transposed conv's forward (a backward-data), float32, against the float64 literal
    reference."""
    got, want = _rules(config, jnp.float32, "onednn"), _literal(config)
    for name, a, b in zip(("forward", "dX", "dW", "transposed"), got, want):
        _close(a, b, 1e-5, name)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 9))
def test_the_engine_gives_xla_s_values_over_a_larger_grid(seed):
    for config in _grid(25, seed):
        got, want = _rules(config, jnp.float32, "onednn"), _literal(config)
        for name, a, b in zip(("forward", "dX", "dW", "transposed"), got, want):
            _close(a, b, 1e-5, (name, config))


@pytest.mark.skipif(not onednn.supports_dtype(jnp.bfloat16), reason="oneDNN has no bfloat16 kernels on this CPU")
def test_bfloat16_against_float32():
    config = dict(x=(4, 9, 8, 6), w=(3, 3, 3, 8), stride=(2, 1), padding=((1, 1), (0, 2)), dilation=(1, 2), groups=2)
    got, want = _rules(config, jnp.bfloat16, "onednn"), _literal(config)
    for name, a, b in zip(("forward", "dX", "dW", "transposed"), got, want):
        assert a.dtype == jnp.bfloat16
        _close(a, b, 3e-2, name)


def test_the_table_takes_the_engine_for_float32_and_xla_s_paths_otherwise():
    geo = Geometry((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
    spec = ConvSpec(geo, 1)
    for rule in rules.RULES:
        assert rules.choose(rule, spec, (3, 3, 16, 16), (32, 32), 128, jnp.float32) == "onednn"
        assert rules.choose(rule, spec, (3, 3, 16, 16), (32, 32), 128, jnp.float64) != "onednn"
        assert rules.choose(rule, spec, (3, 3, 16, 16), (32, 32), 128, jnp.float16) != "onednn"
        assert rules.choose(rule, spec, (3, 3, 16, 16), (32, 32), 0, jnp.float32) != "onednn"  # empty batch
        with use_onednn(False):
            assert rules.choose(rule, spec, (3, 3, 16, 16), (32, 32), 128, jnp.float32) != "onednn"
        # an output of one position (MobileNet's last 1x1 maps) is one matmul: XLA's paths
        assert rules.choose(rule, spec, (3, 3, 16, 16), (1, 1), 128, jnp.float32) != "onednn"
        assert rules.choose(rule, ConvSpec(geo, 16), (3, 3, 1, 16), (1, 1), 128, jnp.float32) == "taps"
    # a strided 1x1 dX is one matmul, faster in the tap matmuls; its forward and dW stay in the engine
    one = ConvSpec(Geometry((1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1)), 1)
    assert rules.choose("dx", one, (1, 1, 16, 32), (32, 32), 128, jnp.float32) == "tap_matmuls"
    assert rules.choose("forward", one, (1, 1, 16, 32), (32, 32), 128, jnp.float32) == "onednn"
    assert rules.choose("dw", one, (1, 1, 16, 32), (32, 32), 128, jnp.float32) == "onednn"


def _engine_calls(f, *args):
    return jax.jit(f).lower(*args).as_text().count("funcnn_onednn_")


def test_a_plain_jit_of_funcnn_ops_runs_the_engine_and_the_setting_turns_it_off():
    x, w = jnp.ones((2, 8, 8, 4), jnp.float32), jnp.ones((3, 3, 4, 8), jnp.float32)
    loss = lambda x, w: jnp.sum(fn.conv2d(x, w, padding=1) ** 2)
    grads = jax.grad(loss, (0, 1))
    assert _engine_calls(grads, x, w) == 3  # forward, dX, dW
    with use_onednn(False):
        assert _engine_calls(grads, x, w) == 0


def test_train_steps_follow_their_cpu_engine_setting():
    import optax

    from funcnn import train

    model = fn.models.lenet5()
    _, params, state = model.init(jax.random.PRNGKey(0), (4, 32, 32, 1))
    batch = (jnp.ones((4, 32, 32, 1), jnp.float32), jnp.zeros((4,), jnp.int32))
    args = (params, state, optax.sgd(0.1).init(params), batch, jax.random.PRNGKey(1))
    for setting, calls in (("onednn", True), ("eigen", False), (None, True)):
        step = train.make_train_step(model.apply, optax.sgd(0.1), cpu_engine=setting, donate=False)
        assert ("funcnn_onednn_" in step.lower(*args).as_text()) == calls, setting
    assert engines.resolve(None) == "onednn"


def test_every_transform_composes_with_the_engine():
    """jvp, vmap (per-example and mapped filters), hessian, linearize, checkpoint and per-example gradients: the
    same numbers with the engine on as off, float32."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(3, 7, 6, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 4, 6)) * 0.3, jnp.float32)
    ws = jnp.asarray(rng.normal(size=(2, 3, 3, 4, 6)) * 0.3, jnp.float32)
    f = lambda x, w: fn.conv2d(x, w, stride=2, padding=((1, 0), (2, 1)))
    loss = lambda w, x: jnp.sum(jnp.tanh(f(x, w)))

    def all_transforms():
        return dict(
            jvp=jax.jvp(f, (x, w), (x, w))[1],
            vmap_x=jax.vmap(f, (0, None))(x[:, None], w),
            vmap_w=jax.vmap(f, (None, 0))(x, ws),
            vmap_both=jax.vmap(f)(jnp.stack([x, x + 1]), ws),
            hessian=jax.hessian(lambda w: loss(w, x[:1]))(w)[0, 0, 0, 0],
            linearize=jax.linearize(lambda w: f(x, w), w)[1](w),
            checkpoint=jax.grad(jax.checkpoint(loss))(w, x),
            per_example=jax.vmap(jax.grad(loss), (None, 0))(w, x[:, None]),
            replicas=jax.vmap(jax.grad(loss))(ws, jnp.stack([x, x * 2])),
            per_example_hessian=jax.vmap(jax.hessian(loss), (None, 0))(w, x[:, None])[:, 1, 2, 3],
        )

    on = jax.jit(all_transforms)()
    with use_onednn(False):
        off = jax.jit(all_transforms)()
    for name in on:
        _close(on[name], off[name], 3e-5, name)
    assert "funcnn_onednn_" in jax.jit(all_transforms).lower().as_text()


def test_per_example_gradients_are_one_grouped_engine_call_and_export_as_a_loop_over_the_groups():
    """Under vmap, slices of a few images with per-slice operands (per-example dW) fold into the groups of one op
    that the engine computes in one call, not a loop of one-image calls; an exported program computes that op with
    the group loop (one single-group convolution per slice), not XLA's grouped convolution, and gives the same
    numbers."""
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(12, 1, 9, 8, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 4, 8)) * 0.3, jnp.float32)
    loss = lambda w, x: jnp.sum(jnp.tanh(fn.conv2d(x, w, stride=2, padding=1)))
    per_example = jax.jit(jax.vmap(jax.grad(loss), (None, 0)))
    compiled = per_example.lower(w, x).compile().as_text()
    assert "funcnn_onednn_dw" in compiled and " while(" not in compiled
    with use_onednn(False):
        off = jax.jit(jax.vmap(jax.grad(loss), (None, 0)))
        assert " while(" in off.lower(w, x).compile().as_text()  # without the engine: the loop over the slices
        want = off(w, x)
    _close(per_example(w, x), want, 3e-5, "engine")
    exported = jax.export.export(per_example, platforms=["cpu"])(w, x)
    text = exported.mlir_module()
    assert "funcnn_onednn" not in text and "stablehlo.while" in text
    assert set(re.findall(r"feature_group_count = (\d+)", text)) <= {"1"}
    _close(exported.call(w, x), want, 3e-5, "exported")


def test_the_verifier_s_conv_cases_in_float32_with_the_engine_against_the_float64_reference():
    """Every conv case of the bounded sweep, its VJP and JVP computed in float32 with the engine (the path the table
    picks) against the same rules of the literal float64 reference, at float32 tolerance."""
    from funcnn.verify.registry import cases

    names = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
    checked = 0
    for case in cases(names):
        if case.reference is None:
            continue
        args32 = tuple(jnp.asarray(a, jnp.float32) for a in case.args)
        z, vjp = jax.vjp(case.f, *args32)
        assert "funcnn_onednn_" in jax.jit(case.f).lower(*args32).as_text(), case.label
        ref, ref_vjp = jax.vjp(case.reference, *case.args)
        ct = jnp.asarray(np.random.default_rng(0).normal(size=ref.shape))
        _close(z, ref, 1e-5, (case.primitive, case.label, "forward"))
        for i, (a, b) in enumerate(zip(jax.jit(vjp)(ct.astype(jnp.float32)), ref_vjp(ct))):
            _close(a, b, 1e-5, (case.primitive, case.label, f"vjp {i}"))
        tangents = tuple(jnp.ones_like(a) for a in case.args)
        _close(jax.jvp(case.f, args32, tuple(t.astype(jnp.float32) for t in tangents))[1],
               jax.jvp(case.reference, case.args, tangents)[1], 1e-5, (case.primitive, case.label, "jvp"))
        checked += 1
    assert checked >= 10


def test_an_export_holds_no_engine_call_and_loads_without_funcnn(tmp_path):
    """jax.export lowers the engine's op to the XLA path the table gives without it: the artifact has no funcnn
    custom call, and a fresh process that cannot import funcnn runs it to the same values."""
    x, w = jnp.ones((2, 9, 9, 4), jnp.float32), jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 4, 8)), jnp.float32)
    grads = jax.jit(jax.grad(lambda x, w: jnp.sum(fn.conv2d(x, w, stride=2, padding=1) ** 2), (0, 1)))
    exported = jax.export.export(grads)(x, w)
    assert "funcnn_onednn" not in exported.mlir_module() and "custom_call" not in exported.mlir_module()
    (tmp_path / "grads.bin").write_bytes(exported.serialize())
    np.save(tmp_path / "want.npy", np.asarray(grads(x, w)[1]))
    probe = textwrap.dedent(f"""
        import sys; sys.modules["funcnn"] = None
        import jax, jax.numpy as jnp, numpy as np
        from jax import export
        f = export.deserialize(open({str(tmp_path / 'grads.bin')!r}, "rb").read())
        w = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 4, 8)), jnp.float32)
        got = np.asarray(f.call(jnp.ones((2, 9, 9, 4), jnp.float32), w)[1])
        want = np.load({str(tmp_path / 'want.npy')!r})
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), np.abs(got - want).max()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_same_inputs_give_bitwise_the_same_outputs():
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(16, 16, 16, 16)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 16, 16)), jnp.float32)
    grads = jax.jit(jax.grad(lambda x, w: jnp.sum(fn.conv2d(x, w, padding=1) ** 2), (0, 1)))
    first = [np.asarray(a) for a in grads(x, w)]
    for _ in range(3):
        for a, b in zip(first, grads(x, w)):
            assert np.array_equal(a, np.asarray(b))


def test_a_failure_inside_onednn_is_a_python_error_naming_the_op_and_shapes():
    """The checks before the custom call refuse bad input with funcnn's own errors; a call the engine cannot take
    (here: inconsistent attributes, sent to the FFI target directly) returns an error, not a crash."""
    with pytest.raises(ValueError, match="groups"):
        fn.conv2d(jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 4)), groups=2)
    assert onednn.available()
    call = jax.ffi.ffi_call(onednn.TARGETS["forward"], jax.ShapeDtypeStruct((1, 6, 6, 4), jnp.float32))
    ints = lambda v: np.asarray(v, np.int64)
    with pytest.raises(Exception, match=r"funcnn conv forward in oneDNN: batch 1, input sizes \(8, 8\)"):
        jax.block_until_ready(jax.jit(lambda x, w: call(
            x, w, window=ints([3, 3]), stride=ints([1, 1]), dilation=ints([1, 1]), pad_lo=ints([0, 0]),
            pad_hi=ints([0, 0]), groups=np.int64(3)))(jnp.ones((1, 8, 8, 4), jnp.float32), jnp.ones((3, 3, 4, 4), jnp.float32)))


def test_one_plan_per_configuration_and_threads_are_settable():
    x, w = jnp.ones((3, 11, 5, 2), jnp.float32), jnp.ones((2, 2, 2, 5), jnp.float32)
    conv = jax.jit(lambda x, w: fn.conv2d(x, w, stride=(3, 1)))
    conv(x, w).block_until_ready()
    count = onednn.plan_count()
    for _ in range(5):
        conv(x + 1, w).block_until_ready()
    assert onednn.plan_count() == count
    onednn.set_threads(1)
    try:
        one = np.asarray(conv(x, w))
    finally:
        onednn.set_threads(0)
    assert np.array_equal(one, np.asarray(conv(x, w)))


def test_the_thread_variable_is_checked(tmp_path):
    env = {**os.environ, onednn.THREADS_VARIABLE: "two"}
    probe = "import funcnn.primitives.conv.paths.onednn as o; o.available()"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "FUNCNN_ONEDNN_THREADS must be a whole number" in done.stderr
    env = {**os.environ, tracing.ENGINE_VARIABLE: "fast"}
    probe = "import funcnn as fn, jax.numpy as jnp; fn.conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((1, 1, 1, 1)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "FUNCNN_CPU_ENGINE must be one of onednn, eigen, xla, ynn-dots" in done.stderr


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_a_thousand_resnet20_steps_keep_memory_steady():
    """1,000 ResNet-20 training steps with the engine: no plan is created after the first step, and the resident
    memory of the last 500 steps grows by less than 32 MiB (a leak of one activation per step would be 8 MiB per
    step here)."""
    import optax

    from funcnn import train

    model = fn.models.resnet20()
    _, params, state = model.init(jax.random.PRNGKey(0), (16, 32, 32, 3))
    opt = optax.sgd(0.01, momentum=0.9)
    step = train.make_train_step(model.apply, opt, cpu_engine="onednn")
    opt_state = opt.init(params)
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 32, 32, 3), jnp.float32)
    y = jnp.arange(16) % 10
    rss = []
    for i in range(1000):
        params, state, opt_state, metrics = step(params, state, opt_state, (x, y), jax.random.PRNGKey(i))
        if i == 0:
            jax.block_until_ready(metrics)  # the plans are made when the first step runs
            plans = onednn.plan_count()
        if i % 100 == 99:
            jax.block_until_ready(metrics)
            rss.append(_rss_mib())
    assert onednn.plan_count() == plans
    assert rss[-1] - rss[4] < 32, rss
