"""funcnn.as_lax: every primitive and zoo model rewritten to lax operations, the same values, no funcnn equation left.

"cpu" takes the forward computations funcnn runs here, so under jit the values are bitwise those of funcnn's own
program in float64 (eagerly, op by op, equal to rounding: XLA compiles a fused program differently); "default" takes
the canonical forms (one lax convolution per conv), equal to rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import models
from funcnn.primitives.lax_view import funcnn_equations
from funcnn.verify.registry import cases

CASES = cases()


def _same(a, b):
    return jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda u, v: bool(np.array_equal(np.asarray(u), np.asarray(v), equal_nan=True)), a, b))


def _close(a, b, rtol):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64), rtol=rtol, atol=rtol)


def test_every_primitive_has_cases_here():
    missing = set(fn.catalog.PRIMITIVES) - {c.primitive for c in CASES}
    assert not missing, f"primitives with no case, so no lax view checked: {sorted(missing)}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.primitive}-{i}" for i, c in enumerate(CASES)])
def test_the_view_of_every_primitive_is_lax_with_the_same_values(case):
    f = case.f
    assert funcnn_equations(jax.make_jaxpr(f)(*case.args)), "the case applies no funcnn op: nothing is checked"
    for platform, exact in (("cpu", True), ("default", False)):
        view = fn.as_lax(f, platform=platform)
        assert funcnn_equations(jax.make_jaxpr(view)(*case.args)) == [], platform
        want, got = jax.jit(f)(*case.args), jax.jit(view)(*case.args)
        if exact:
            assert _same(want, got), f"{case.primitive} {case.label}: not bitwise"
        else:
            _close(want, got, 1e-12)
    # eagerly, op by op, the same to rounding (XLA fuses a jitted program: x / n may become x * (1 / n))
    _close(f(*case.args), fn.as_lax(f, platform="cpu")(*case.args), 1e-14)


def test_the_view_composes_with_vmap_and_grad_is_jax_autodiff_of_the_forward():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 2, 9, 8, 3)))
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 4)))

    def f(x, w):
        return jnp.sum(jnp.tanh(fn.max_pool2d(fn.conv2d(x, w, stride=2, padding=1), 2)) ** 2)

    view = fn.as_lax(f, platform="cpu")
    np.testing.assert_array_equal(jax.vmap(view, (0, None))(x, w), jax.vmap(f, (0, None))(x, w))
    grad = jax.grad(view, argnums=(0, 1))
    assert funcnn_equations(jax.make_jaxpr(grad)(x[0], w)) == []  # JAX's autodiff of lax ops, no funcnn rule
    assert funcnn_equations(jax.make_jaxpr(jax.grad(f, argnums=(0, 1)))(x[0], w))  # funcnn's own rules
    _close(grad(x[0], w), jax.grad(f, argnums=(0, 1))(x[0], w), 1e-12)


def test_the_view_reaches_into_jit_scan_cond_checkpoint_and_custom_rules():
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 2, 2)))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 6, 6, 2)))

    @jax.custom_vjp
    def mine(x):
        return fn.relu(fn.conv2d(x, w, padding="SAME"))

    mine.defvjp(lambda x: (mine(x), x), lambda x, g: (g,))

    @jax.jit
    def body(carry, _):
        carry = jax.checkpoint(lambda c: fn.conv2d(c, w, padding="SAME"))(carry)
        return jax.lax.cond(jnp.sum(carry) > 0, lambda c: fn.relu(c), lambda c: jax.nn.relu(c), carry), None

    def f(x):
        return jnp.sum(mine(jax.lax.scan(body, x, None, length=2)[0]))

    view = fn.as_lax(f)
    jaxpr = jax.make_jaxpr(view)(x)
    assert funcnn_equations(jaxpr) == []
    assert "custom_jvp_call" in str(jaxpr)  # jax.nn.relu's own rule, with no funcnn op in it, stays
    assert "custom_vjp_call" not in str(jaxpr)  # yours, around a funcnn op, is inlined as its body
    np.testing.assert_array_equal(view(x), f(x))


def test_keep_leaves_the_named_ops_and_static_arguments_stay_static():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 6, 6, 3)))
    view = fn.as_lax(lambda x, k: fn.max_pool2d(fn.relu(x), k), keep=("max_pool",))
    assert funcnn_equations(jax.make_jaxpr(lambda x: view(x, 2))(x)) == ["funcnn.max_pool"]
    np.testing.assert_array_equal(view(x, 2), fn.max_pool2d(fn.relu(x), 2))
    out = fn.as_lax(lambda d: {"y": fn.relu(d["x"]), "n": d["n"]})({"x": x, "n": None})
    assert out["n"] is None and _same(out["y"], fn.relu(x))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="as_lax: unknown platform 'gpux'"):
        fn.as_lax(fn.relu, platform="gpux")
    with pytest.raises(ValueError, match=r"as_lax: keep names ops funcnn does not have: \['maxpool'\]"):
        fn.as_lax(fn.relu, keep=("maxpool",))
    with pytest.raises(TypeError, match="as_lax: f must be callable, got int"):
        fn.as_lax(3)


SMALL = {"lenet5": (32, 32, 1), "resnet20": (32, 32, 3), "all_conv": (32, 32, 3), "localizer": (64, 64, 1),
         "clip_cnn": (8, 16, 16, 1), "mobilenet_v1": (64, 64, 3), "resnet18": (64, 64, 3)}


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_the_view_of_every_zoo_model(name):
    """Every model's train and eval programs hold no funcnn op (traced abstractly at the model's own input size);
    the small ones' values, at a small input, are bitwise funcnn's own in float64."""
    network = models.get(name)(10)
    shape = (2, *models.INPUT_SHAPES[name])
    _, params, state = jax.eval_shape(lambda r: network.init(r, shape), jax.random.PRNGKey(0))
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    for train in (False, True):
        apply = fn.as_lax(lambda p, s, x: network.apply(p, s, x, train=train, rng=jax.random.PRNGKey(1)))
        assert funcnn_equations(jax.make_jaxpr(apply)(params, state, spec)) == [], train
    if name in SMALL:
        shape = (2, *SMALL[name])
        _, params, state = network.init(jax.random.PRNGKey(0), shape)
        params, state = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), (params, state))
        x = jnp.asarray(np.random.default_rng(0).normal(size=shape))
        infer = lambda p, s, x: network.apply(p, s, x, train=False)[0]  # noqa: E731
        assert _same(jax.jit(fn.as_lax(infer))(params, state, x), jax.jit(infer)(params, state, x))
