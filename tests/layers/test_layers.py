"""Layers: init predicts apply's shape (swept), jit / vmap, parameter counts, BatchNorm, Dropout, invariance."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import layers as L

from ..helpers import check_vjp

KEY = jax.random.PRNGKey(0)


def _run(layer, input_shape, **kw):
    init, apply = layer
    out_shape, params, state = init(KEY, input_shape)
    x = jax.random.normal(jax.random.PRNGKey(1), input_shape)
    y, new_state = jax.jit(lambda p, s, x: apply(p, s, x, **kw))(params, state, x)
    return out_shape, y, params, state, new_state


CONV_SWEEP = [dict(kernel=k, stride=s, padding=p, dilation=d)
              for k, s, p, d in itertools.product([1, 3, (2, 3)], [1, 2, 3], ["VALID", "SAME", 1, ((0, 2), (1, 0))],
                                                  [1, 2])]


@pytest.mark.parametrize("cfg", CONV_SWEEP[::3], ids=str)
def test_conv_layers_shape_matches_init(cfg):
    shape = (2, 11, 10, 4)
    for layer in [L.Conv(6, **cfg), L.Conv(6, groups=2, **cfg), L.DepthwiseConv(multiplier=2, **cfg),
                  L.SeparableConv(5, **cfg)]:
        out_shape, y, *_ = _run(layer, shape)
        assert out_shape == y.shape
    kw = {k: v for k, v in cfg.items() if k != "kernel"}
    out_shape, y, *_ = _run(L.ConvTranspose(3, cfg["kernel"], **kw), shape)
    assert out_shape == y.shape


@pytest.mark.parametrize(
    "layer, shape",
    [
        (L.Conv(5, 3, stride=2), (2, 17, 4)),  # 1-D (time-delay) convolution
        (L.ConvTranspose(3, 4, stride=2, padding=1), (2, 9, 4)),
        (L.MaxPool(2), (2, 8, 9, 3)), (L.MaxPool(3, 2, padding=1), (2, 8, 9, 3)), (L.MaxPool(3, 2), (2, 11, 3)),
        (L.AvgPool(3, 1, padding="SAME", count_include_pad=False), (2, 7, 7, 3)), (L.AvgPool(2), (1, 9, 3)),
        (L.LpPool(2.0, 2), (2, 8, 8, 3)), (L.GlobalAvgPool(), (2, 5, 6, 3)),
        (L.Dense(7), (3, 5)), (L.Dense(7, use_bias=False), (2, 3, 5)), (L.Flatten(), (2, 3, 4, 5)),
        (L.Relu(), (2, 3)), (L.Sigmoid(), (2, 3)), (L.Tanh(), (2, 3)), (L.Softmax(), (2, 3)),
        (L.LogSoftmax(), (2, 3)), (L.Identity(), (2, 3)), (L.Dropout(0.5), (4, 6)), (L.BatchNorm(), (4, 3, 3, 2)),
        (L.TransformInvariantConv(4, 3), (2, 8, 8, 3)),
        (L.TransformInvariantConv(4, 3, transforms="dihedral", pool=False), (2, 8, 8, 3)),
    ],
    ids=lambda v: getattr(v.init, "layer_name", "layer") if hasattr(v, "init") else str(v),  # stable across workers
)
def test_layer_shape_matches_init_and_vmap(layer, shape):
    out_shape, y, params, state, _ = _run(layer, shape)
    assert out_shape == y.shape
    # vmap over a leading axis of examples gives the batched result
    init, apply = layer
    x = jax.random.normal(jax.random.PRNGKey(2), shape)
    batched = apply(params, state, x)[0]
    mapped = jax.vmap(lambda xi: apply(params, state, xi[None])[0][0])(x)
    np.testing.assert_allclose(mapped, batched, rtol=1e-5, atol=1e-6)


def test_parameter_counts():
    _, params, _ = L.Conv(10, 5).init(KEY, (1, 32, 32, 3))
    assert fn.count_params(params) == 760  # lecture: ten 5x5x3 filters, 76 each
    m, n, k = 8, 16, 3
    _, params, _ = L.SeparableConv(n, k).init(KEY, (1, 10, 10, m))
    assert fn.count_params(params) == m * k * k + n * m  # lecture: NM + MK^2
    _, params, _ = L.Conv(n, k).init(KEY, (1, 10, 10, m))
    assert fn.count_params(params) == n * m * k * k + n
    _, params, _ = L.TransformInvariantConv(4, 3, transforms="dihedral").init(KEY, (1, 8, 8, 2))
    assert fn.count_params(params) == 4 * 2 * 9 + 4  # one shared filter bank, whatever the number of transforms


def test_batchnorm_running_statistics_and_evaluation_mode():
    init, apply = L.BatchNorm(momentum=0.9)
    _, params, state = init(KEY, (64, 3))
    mean, std = jnp.array([1.0, -2.0, 0.5]), jnp.array([2.0, 0.5, 1.0])
    step = jax.jit(lambda s, x: apply(params, s, x, train=True))
    for i in range(200):
        x = mean + std * jax.random.normal(jax.random.PRNGKey(i), (64, 3))
        y, state = step(state, x)
    np.testing.assert_allclose(state["mean"], mean, atol=0.15)
    np.testing.assert_allclose(state["var"], std**2, rtol=0.15)
    # training mode normalises with the batch statistics
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-3)
    # evaluation mode uses the running statistics: one example's output does not depend on the rest of the batch
    x = mean + std * jax.random.normal(jax.random.PRNGKey(999), (8, 3))
    full, unchanged = apply(params, state, x)
    alone, _ = apply(params, state, x[:1])
    np.testing.assert_allclose(full[:1], alone, rtol=1e-6)
    assert unchanged is state
    np.testing.assert_allclose(full, (x - state["mean"]) / jnp.sqrt(state["var"] + 1e-5), rtol=1e-5)


def test_batchnorm_global_statistics_over_a_mapped_axis():
    init, apply = L.BatchNorm(axis_name="devices")
    _, params, state = init(KEY, (8, 2))
    x = jax.random.normal(KEY, (4, 8, 2)) * 3 + 1
    y, new = jax.vmap(lambda xs: apply(params, state, xs, train=True), axis_name="devices")(x)
    y_global, new_global = L.BatchNorm().apply(params, state, x.reshape(32, 2), train=True)
    np.testing.assert_allclose(y.reshape(32, 2), y_global, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new["var"][0], new_global["var"], rtol=1e-5)


def test_dropout_rate_is_the_drop_probability():
    init, apply = L.Dropout(0.3)
    _, params, state = init(KEY, (100, 1000))
    x = jnp.ones((100, 1000))
    y, _ = apply(params, state, x, train=True, rng=KEY)
    dropped = float(jnp.mean(y == 0))
    assert abs(dropped - 0.3) < 0.01  # 100k Bernoulli draws: std 0.0015
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)  # inverted dropout keeps the expectation
    again, _ = apply(params, state, x, train=True, rng=KEY)
    np.testing.assert_array_equal(y, again)  # same key, same mask
    other, _ = apply(params, state, x, train=True, rng=jax.random.PRNGKey(7))
    assert not np.array_equal(y, other)
    assert apply(params, state, x)[0] is x  # evaluation: identity
    with pytest.raises(ValueError, match="needs an explicit PRNG key"):
        apply(params, state, x, train=True)
    with pytest.raises(ValueError, match="drop probability"):
        L.Dropout(1.0)


def test_serial_splits_the_rng_between_dropout_layers():
    init, apply = L.serial(L.Dropout(0.5), L.Dropout(0.5))
    _, params, state = init(KEY, (1, 4000))
    y, _ = apply(params, state, jnp.ones((1, 4000)), train=True, rng=KEY)
    assert abs(float(jnp.mean(y == 0)) - 0.75) < 0.03  # independent masks: 1 - 0.5 * 0.5 dropped


def test_transform_invariant_conv():
    init, apply = L.TransformInvariantConv(5, 3, transforms="rot90", padding="SAME")
    _, params, state = init(KEY, (2, 9, 9, 2))
    x = jax.random.normal(KEY, (2, 9, 9, 2))
    rot = jnp.rot90(x, 1, axes=(1, 2))
    _, apply_maps = L.TransformInvariantConv(5, 3, transforms="rot90", padding="SAME", pool=False)
    maps, maps_rot = apply_maps(params, state, x)[0], apply_maps(params, state, rot)[0]
    # rotating the input rotates every pre-pool map, and moves it to the next filter orientation
    np.testing.assert_allclose(maps_rot, jnp.roll(jnp.rot90(maps, 1, axes=(1, 2)), 1, axis=3), rtol=1e-5, atol=1e-5)
    y, y_rot = apply(params, state, x)[0], apply(params, state, rot)[0]
    np.testing.assert_allclose(y_rot, jnp.rot90(y, 1, axes=(1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_rot.mean((1, 2)), y.mean((1, 2)), rtol=1e-5)  # invariant after global pooling
    # gradients reach the single shared filter correctly
    x64 = x.astype(jnp.float64)
    params64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)

    def reference(w, b, x):
        from funcnn.verify import reference as ref
        maps = [ref.conv2d(x, L.transform_filter(w, r, False), b, padding="SAME") for r in range(4)]
        return jnp.max(jnp.stack(maps), axis=0)

    check_vjp(lambda w, b, x: apply({"w": w, "b": b}, {}, x)[0], reference, params64["w"], params64["b"],
              x64).raise_if_failed()


def test_initialisers_have_the_right_fans_and_scale():
    from funcnn import init as I

    assert I.fans((5, 5, 3, 10)) == (75, 250)
    assert I.fans((784, 100)) == (784, 100)
    w = I.he_normal(KEY, (3, 3, 64, 128))
    np.testing.assert_allclose(float(jnp.std(w)), np.sqrt(2 / (9 * 64)), rtol=0.03)
    w = I.glorot_uniform(KEY, (200, 300))
    assert float(jnp.max(jnp.abs(w))) <= np.sqrt(6 / 500) + 1e-7
    np.testing.assert_allclose(float(jnp.std(w)), np.sqrt(2 / 500), rtol=0.03)
    assert float(jnp.abs(I.zeros(KEY, (3,))).sum()) == 0 and float(I.ones(KEY, (3,)).sum()) == 3
    np.testing.assert_allclose(float(jnp.std(I.normal(0.05)(KEY, (100, 100)))), 0.05, rtol=0.03)


def test_init_validates_configuration_before_any_data():
    with pytest.raises(ValueError, match=r"kernel 7 is larger than the padded input 5"):
        L.Conv(4, 7).init(KEY, (1, 5, 5, 1))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        L.Conv(4, 3, groups=3).init(KEY, (1, 5, 5, 4))
    with pytest.raises(ValueError, match=r"window 4 is larger than the padded input 3"):
        L.MaxPool(4).init(KEY, (1, 3, 3, 1))
    with pytest.raises(ValueError, match="parallel: expected 2 inputs"):
        L.parallel(L.Relu(), L.Relu()).init(KEY, ((1, 2),))
