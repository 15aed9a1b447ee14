"""batch_norm / layer_norm / group_norm: the fused rule against autodiff of the literal formulas and float64 finite
differences, numerics at large means, vmap / per-example gradients, the global batch under axis_name, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import funcnn as fn
from funcnn import layers as L
from funcnn.verify import check_vjp, reference as ref

from ..helpers import normal


@st.composite
def norm_configs(draw):
    nd = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 2, 3]))
    channels = groups * draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    return dict(shape=(draw(st.integers(1, 3)), *spatial, channels), groups=groups,
                mean=draw(st.sampled_from([0.0, 5.0, 100.0])))


def _inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = normal(rng, *cfg["shape"]) + cfg["mean"]
    c = cfg["shape"][-1]
    return x, normal(rng, c), normal(rng, c)


@settings(max_examples=6)
@given(norm_configs())
def test_layer_and_group_norm_match_the_formula_and_finite_differences(cfg):
    x, s, b = _inputs(cfg)
    if x.size // x.shape[0] < 2:
        return  # one entry per example: the variance is 0 and x_hat is 0/sqrt(eps)
    check_vjp(lambda x, s, b: fn.group_norm(x, cfg["groups"], s, b), x, s, b,
              reference=lambda x, s, b: ref.group_norm(x, cfg["groups"], s, b),
              checks=("forward", "vjp", "finite_differences")).raise_if_failed()
    check_vjp(lambda x, s, b: fn.layer_norm(x, s, b), x, s, b, reference=ref.layer_norm,
              checks=("forward", "vjp")).raise_if_failed()


@settings(max_examples=6)
@given(norm_configs())
def test_batch_norm_matches_the_formula(cfg):
    x, s, b = _inputs(cfg)
    if x.size // x.shape[-1] < 2:
        return
    report = check_vjp(lambda x, s, b: fn.batch_norm(x, s, b)[0], x, s, b, reference=ref.batch_norm,
                       checks=("forward", "vjp", "finite_differences"))
    report.raise_if_failed()
    y, mean, var = fn.batch_norm(x, s, b)
    axes = tuple(range(x.ndim - 1))
    np.testing.assert_allclose(mean, np.mean(x, axes), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, np.var(x, axes), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["batch_norm", "layer_norm", "group_norm"])
@pytest.mark.parametrize("mean", [0.0, 300.0, 1e4])
def test_float32_keeps_its_accuracy_at_large_means(name, mean):
    """x = mean + 0.1 N(0, 1): the float32 output against float64 on the same inputs."""
    rng = np.random.default_rng(1)
    x = (mean + 0.1 * rng.normal(size=(4, 5, 5, 6))).astype(np.float32)
    f = {"batch_norm": lambda x: fn.batch_norm(x)[0], "layer_norm": fn.layer_norm,
         "group_norm": lambda x: fn.group_norm(x, 3)}[name]
    r = {"batch_norm": ref.batch_norm, "layer_norm": ref.layer_norm, "group_norm": lambda x: ref.group_norm(x, 3)}[name]
    got = np.asarray(f(jnp.asarray(x, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, np.asarray(r(jnp.asarray(x, jnp.float64))), atol=2e-6)
    g = jax.grad(lambda x: jnp.sum(f(x) * jnp.arange(x.size).reshape(x.shape) / x.size))(jnp.asarray(x, jnp.float32))
    gr = jax.grad(lambda x: jnp.sum(r(x) * jnp.arange(x.size).reshape(x.shape) / x.size))(jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(np.asarray(g, np.float64), gr, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(gr))))


def test_bfloat16_inputs_accumulate_in_float32():
    x = jnp.asarray(50 + np.random.default_rng(2).normal(size=(2, 4, 4, 4)), jnp.bfloat16)
    y = fn.group_norm(x, 2)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), ref.group_norm(x.astype(jnp.float64), 2), atol=0.05)
    assert jax.grad(lambda x: jnp.sum(fn.layer_norm(x).astype(jnp.float32)))(x).dtype == jnp.bfloat16


def test_group_norm_per_example_gradients_equal_a_loop():
    """GroupNorm needs no batch: vmap(grad) over examples equals one example at a time (BatchNorm could not)."""
    rng = np.random.default_rng(3)
    x, s = normal(rng, 5, 4, 4, 6), normal(rng, 6)

    def loss(s, xi):
        return jnp.sum(jnp.tanh(fn.group_norm(xi[None], 3, s)))

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(s, x)
    looped = jnp.stack([jax.grad(loss)(s, xi) for xi in x])
    np.testing.assert_allclose(per_example, looped, rtol=1e-12, atol=1e-12)


def test_batch_norm_under_vmap_uses_the_global_batch_and_its_gradient():
    """axis_name: 3 shards of 4 examples normalise (and differentiate) as one batch of 12."""
    rng = np.random.default_rng(4)
    x, s, b = normal(rng, 3, 4, 2, 2, 5) + 7.0, normal(rng, 5), normal(rng, 5)
    g = normal(rng, *x.shape)

    def sharded(x, s, b):
        y = jax.vmap(lambda xs: fn.batch_norm(xs, s, b, axis_name="shards")[0], axis_name="shards")(x)
        return jnp.sum(y * g)

    def whole(x, s, b):
        return jnp.sum(ref.batch_norm(x.reshape(12, 2, 2, 5), s, b) * g.reshape(12, 2, 2, 5))

    np.testing.assert_allclose(sharded(x, s, b), whole(x, s, b), rtol=1e-12)
    for a, c in zip(jax.grad(sharded, argnums=(0, 1, 2))(x, s, b), jax.grad(whole, argnums=(0, 1, 2))(x, s, b)):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)


def test_layers_and_bad_input():
    x = jnp.ones((2, 4, 4, 6))
    for layer, params in [(L.LayerNorm(), 12), (L.GroupNorm(3), 12), (L.GroupNorm(2, affine=False), 0)]:
        shape, p, state = layer.init(jax.random.PRNGKey(0), x.shape)
        assert shape == x.shape and fn.count_params(p) == params and state == {}
        y, _ = layer.apply(p, state, x + jnp.arange(6.0))
        np.testing.assert_allclose(jnp.mean(y, axis=(1, 2, 3)), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"GroupNorm: groups=4 must divide the 6 channels"):
        L.GroupNorm(4).init(jax.random.PRNGKey(0), x.shape)
    with pytest.raises(ValueError, match=r"group_norm: groups must be an int >= 1 dividing the 6 channels"):
        fn.group_norm(x, 4)
    with pytest.raises(ValueError, match=r"layer_norm: scale must have shape \(6,\)"):
        fn.layer_norm(x, jnp.ones(5))
    with pytest.raises(ValueError, match=r"batch_norm: needs at least one example"):
        fn.batch_norm(jnp.ones((0, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"layer_norm: epsilon must be a finite number > 0"):
        fn.layer_norm(x, epsilon=0.0)
    with pytest.raises(TypeError, match=r"group_norm: x must be floating-point"):
        fn.group_norm(jnp.ones((2, 3, 4), int), 2)
    assert fn.layer_norm(jnp.ones((0, 3, 2))).shape == (0, 3, 2)  # an empty batch: per-example, so it is fine


def test_resnets_with_group_norm():
    """GroupNorm where the papers have BatchNorm: the same parameters, no state, one example's output independent of
    the others in training too."""
    model = fn.models.resnet20(10, norm="group")
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 3))
    assert fn.count_params(params) == 272_474 and fn.count_params(state) == 0
    x = normal(np.random.default_rng(5), 3, 32, 32, 3)
    logits = jax.jit(lambda p, x: model.apply(p, state, x, train=True)[0])(params, x)
    alone = jax.jit(lambda p, x: model.apply(p, state, x, train=True)[0])(params, x[:1])
    np.testing.assert_allclose(logits[:1], alone, rtol=1e-6, atol=1e-6)
    big = fn.models.resnet18(1000, norm="group")
    shapes = jax.eval_shape(lambda r: big.init(r, (1, 224, 224, 3))[1:], jax.random.PRNGKey(0))
    assert fn.count_params(shapes[0]) == 11_689_512 and fn.count_params(shapes[1]) == 0
    with pytest.raises(ValueError, match="unknown norm 'instance'"):
        fn.models.resnet20(10, norm="instance")
