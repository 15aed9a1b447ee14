"""The engine prediction (`conv.engines.engine`) against what XLA's CPU backend really compiles, rule by rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from funcnn.primitives.conv import engines, rules
from funcnn.primitives.conv.spec import ConvSpec
from funcnn.primitives.geometry import make_geometry

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the engines are XLA's CPU backend's")


def _compiled(path, rule, spec, w_shape, x_shape, dtype=jnp.float32, options=None):
    """The compiled HLO's engine counts for one rule computed by `path` (pinned)."""
    spec = spec._replace(forced=path)
    in_sizes = x_shape[1:-1]
    out_sizes = spec.geo.out_sizes(in_sizes)
    g_shape = (x_shape[0], *out_sizes, w_shape[-1])
    operands = {"forward": (x_shape, w_shape), "dx": (g_shape, w_shape), "dw": (x_shape, g_shape)}[rule]
    args = [jax.ShapeDtypeStruct(s, dtype) for s in operands]
    lowered = jax.jit(lambda a, b: rules.run(path, rule, spec, w_shape, in_sizes, a, b)).lower(*args)
    return engines.hlo_engines(lowered.compile(compiler_options=options).as_text())


def _spec(x_shape, window, stride=1, padding="SAME", dilation=1, groups=1):
    geo = make_geometry("conv", x_shape, window, stride, padding, dilation, window_name="kernel")
    return ConvSpec(geo, groups)


def _ynn_present() -> bool:
    spec = _spec((8, 16, 16, 32), (3, 3))
    return _compiled("canonical", "forward", spec, (3, 3, 32, 32), (8, 16, 16, 32))["conv YNNPACK"] == 1


needs_ynn = pytest.mark.skipif(not _ynn_present(), reason="this jaxlib's CPU backend has no YNNPACK convolutions")

# (x shape, window, stride, padding, dilation, groups, C_out): each YNN condition on both sides of its boundary
CASES = [
    ((8, 16, 16, 32), (3, 3), 1, "SAME", 1, 1, 32),      # every rule eligible, but dW's batch 8 with C_out 32
    ((8, 16, 16, 16), (3, 3), 1, "SAME", 1, 1, 16),      # 16 features: Eigen, except dW (batch 8: Eigen too)
    ((32, 16, 16, 16), (3, 3), 1, "SAME", 1, 1, 16),     # dW's features are the batch: 32 > 16 -> YNNPACK
    ((8, 16, 16, 16), (3, 3), 1, "SAME", 1, 1, 17),      # 17 output features
    ((8, 16, 16, 32), (3, 3), 2, "SAME", 1, 1, 32),      # strided: dX has base dilation -> Eigen
    ((8, 16, 16, 32), (3, 3), 1, "VALID", 1, 1, 32),     # VALID: dX's output (16) exceeds its input (14)
    ((8, 16, 16, 32), (3, 3), 1, ((3, 3), (3, 3)), 1, 1, 32),  # padding 3: the output exceeds the input
    ((8, 16, 16, 32), (3, 3), 1, "SAME", 2, 1, 32),      # dilated
    ((8, 4, 4, 32), (5, 5), 1, "SAME", 1, 1, 32),        # the kernel exceeds the input
    ((8, 16, 16, 32), (1, 1), 2, "VALID", 1, 1, 64),     # 1x1 strided projection
    ((8, 16, 16, 32), (3, 3), 1, "SAME", 1, 2, 32),      # grouped: dW's batch groups -> Eigen
    ((24, 8, 8, 8, 32), (3, 3, 3), 1, "SAME", 1, 1, 32),  # 3-D -> Eigen
    ((24, 32, 32), (3,), 1, "SAME", 1, 1, 32),           # 1-D -> Eigen
]


@needs_ynn
@pytest.mark.parametrize("rule", rules.RULES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}-g{c[5]}-o{c[6]}")
def test_predicted_engine_is_the_compiled_one(rule, case):
    dtype = jnp.float32
    x_shape, window, stride, padding, dilation, groups, c_out = case
    spec = _spec(x_shape, window, stride, padding, dilation, groups)
    w_shape = (*window, x_shape[-1] // groups, c_out)
    checked = ("canonical", "batch_chunks") if rule == "dw" else ("canonical",)
    for path in checked + (("group_loop",) if groups > 1 else ()):
        predicted = engines.engine(path, rule, spec, w_shape, x_shape[1:-1], x_shape[0], dtype)
        counts = _compiled(path, rule, spec, w_shape, x_shape, dtype)
        convs = counts["conv YNNPACK"] + counts["conv Eigen"]
        assert convs >= 1, counts
        assert counts[f"conv {predicted}"] == convs, (path, predicted, counts)


@needs_ynn
def test_float64_and_the_engine_option():
    """float64 is taken too, and float16 / bfloat16 (computed in float32); the compiler option "" leaves every
    convolution of that executable to Eigen."""
    x_shape, w_shape = (8, 16, 16, 32), (3, 3, 32, 32)
    spec = _spec(x_shape, (3, 3))
    assert jnp.zeros((), jnp.float64).dtype == jnp.float64  # the tests run with x64 enabled (conftest)
    assert engines.engine("canonical", "forward", spec, w_shape, (16, 16), 8, jnp.float64) == engines.YNN
    assert _compiled("canonical", "forward", spec, w_shape, x_shape, jnp.float64)["conv YNNPACK"] == 1
    for half in (jnp.float16, jnp.bfloat16):
        assert engines.engine("canonical", "dw", spec, w_shape, (16, 16), 8, half) == engines.YNN
        assert _compiled("canonical", "dw", spec, w_shape, x_shape, half)["conv YNNPACK"] == 1
    off = _compiled("canonical", "forward", spec, w_shape, x_shape, options={engines.CPU_ENGINE_OPTION: ""})
    assert off == {"conv YNNPACK": 0, "conv Eigen": 1, "dot YNNPACK": 0, "dot other": 0}


def test_the_paths_without_a_convolution():
    spec = _spec((8, 16, 16, 32), (3, 3))
    assert engines.engine("tap_matmuls", "dw", spec, (3, 3, 32, 32), (16, 16), 8) == engines.MATMUL
    assert engines.engine("banded", "forward", spec, (3, 3, 32, 32), (16, 16), 8) == engines.MATMUL
    dw_spec = _spec((8, 16, 16, 32), (3, 3), groups=32)
    assert engines.engine("taps", "forward", dw_spec, (3, 3, 1, 32), (16, 16), 8) == engines.LOOPS
    counts = _compiled("tap_matmuls", "dw", spec, (3, 3, 32, 32), (8, 16, 16, 32))
    assert counts["conv YNNPACK"] + counts["conv Eigen"] == 0 and counts["dot YNNPACK"] + counts["dot other"] == 9


def _small_net():
    from funcnn import layers as L

    return L.serial(L.Conv(32, 3, padding="SAME"), L.Relu(), L.Conv(32, 3, padding="SAME"), L.Relu(),
                    L.GlobalAvgPool(), L.Dense(10))


def _step_hlo(cpu_engine, batch=32):
    import optax

    from funcnn import train

    model = _small_net()
    _, params, state = model.init(jax.random.PRNGKey(0), (batch, 8, 8, 16))
    opt = optax.sgd(0.1)
    step = train.make_train_step(model.apply, opt, cpu_engine=cpu_engine, donate=False)
    batch_ = (jnp.ones((batch, 8, 8, 16), jnp.float32), jnp.zeros((batch,), jnp.int32))
    return step.lower(params, state, opt.init(params), batch_, jax.random.PRNGKey(1)).compile().as_text()


@needs_ynn
def test_train_steps_compile_with_the_engine_setting_and_summary_predicts_it():
    """funcnn.train's steps have no YNNPACK fusion with "eigen"; with "xla" the compiled step holds exactly the
    YNNPACK convolutions that `conv_paths` (funcnn summary --paths) predicts for it."""
    from funcnn.describe import conv_paths

    eigen = _step_hlo("eigen")
    assert "__ynn_fusion" not in eigen and engines.hlo_engines(eigen)["conv Eigen"] > 0
    counts = engines.hlo_engines(_step_hlo("xla"))
    choices = conv_paths(_small_net(), (32, 8, 8, 16), cpu_engine="xla")
    per_rule = {"batch_chunks": 8, "canonical": 1}  # convolutions one rule emits (batch 32: chunks of 4)
    predicted = sum(per_rule.get(c.backend, 0) for c in choices if c.engine == engines.YNN)
    assert predicted > 0 and counts["conv YNNPACK"] == predicted, (counts, choices)
    assert {c.engine for c in conv_paths(_small_net(), (32, 8, 8, 16), cpu_engine="eigen")} <= {engines.EIGEN,
                                                                                                 engines.MATMUL}


def test_an_unknown_engine_setting_is_refused_by_name():
    from funcnn import train

    with pytest.raises(ValueError, match="cpu_engine must be one of 'onednn', 'eigen', 'xla', 'ynn-dots', got 'fast'"):
        engines.compiler_options("fast")
    with pytest.raises(ValueError, match="cpu_engine"):
        train.make_train_step(lambda *a, **k: None, None, cpu_engine="fast")
    assert engines.compiler_options("eigen", backend="gpu") is None and engines.compiler_options("xla") is None
    assert engines.compiler_options("eigen", backend="cpu") == {engines.CPU_ENGINE_OPTION: ""}
