"""Combinators: serial / parallel / fan_out / fan_in_* / residual / remat, readable keys, state threading."""

import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn import layers as L

KEY = jax.random.PRNGKey(0)


def test_serial_keys_are_readable_and_shapes_flow():
    init, apply = L.serial(L.Conv(4, 3), L.BatchNorm(), L.Relu(), L.Flatten(), L.Dense(2))
    out_shape, params, state = init(KEY, (2, 6, 6, 1))
    assert list(params) == ["0_Conv", "1_BatchNorm", "2_Relu", "3_Flatten", "4_Dense"]
    assert set(params["0_Conv"]) == {"w", "b"} and set(state["1_BatchNorm"]) == {"mean", "var"}
    y, new_state = apply(params, state, jnp.ones((2, 6, 6, 1)), train=True)
    assert y.shape == out_shape == (2, 2)
    assert not np.allclose(new_state["1_BatchNorm"]["var"], state["1_BatchNorm"]["var"])


def test_inception_and_dense_style_blocks():
    inception = L.serial(
        L.fan_out(3),
        L.parallel(L.Conv(2, 1), L.Conv(3, 3, padding="SAME"), L.serial(L.MaxPool(3, 1, padding=1), L.Conv(1, 1))),
        L.fan_in_concat(),
    )
    out_shape, params, state = inception.init(KEY, (2, 8, 8, 4))
    y, _ = inception.apply(params, state, jnp.ones((2, 8, 8, 4)))
    assert y.shape == out_shape == (2, 8, 8, 6)
    dense_block = L.serial(L.fan_out(2), L.parallel(L.Identity(), L.Conv(3, 3, padding="SAME")), L.fan_in_concat())
    out_shape, params, state = dense_block.init(KEY, (1, 5, 5, 2))
    assert out_shape == (1, 5, 5, 5) == dense_block.apply(params, state, jnp.ones((1, 5, 5, 2)))[0].shape


def test_residual_adds_the_shortcut():
    block = L.residual(L.serial(L.Dense(3, w_init=jax.nn.initializers.zeros)))
    out_shape, params, state = block.init(KEY, (2, 3))
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(block.apply(params, state, x)[0], x)  # zero block: identity
    projected = L.residual(L.Dense(4), shortcut=L.Dense(4))
    out_shape, params, state = projected.init(KEY, (2, 3))
    assert out_shape == (2, 4) and fn.count_params(params) == 2 * (3 * 4 + 4)


def test_remat_gives_the_same_values_and_gradients():
    layer = L.serial(L.Conv(4, 3, padding="SAME"), L.BatchNorm(), L.Relu())
    _, params, state = layer.init(KEY, (2, 6, 6, 2))
    x = jax.random.normal(KEY, (2, 6, 6, 2))

    def loss(apply, p):
        y, s = apply(p, state, x, train=True)
        return jnp.sum(y**2), s

    plain = jax.grad(loss, argnums=1, has_aux=True)(layer.apply, params)
    remat = jax.grad(loss, argnums=1, has_aux=True)(L.remat(layer).apply, params)
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(remat)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_truncate_runs_the_first_layers_with_the_full_models_trees():
    import pytest

    model = L.serial(L.Conv(3, 3), L.Relu(), L.MaxPool(2), L.Flatten(), L.Dense(2))
    _, params, state = model.init(KEY, (2, 8, 8, 1))
    x = jax.random.normal(KEY, (2, 8, 8, 1))
    maps, _ = L.truncate(model, "1_Relu").apply(params, state, x)
    expected = jnp.maximum(fn.conv2d(x, params["0_Conv"]["w"], params["0_Conv"]["b"]), 0)
    np.testing.assert_allclose(maps, expected, rtol=1e-6)
    assert L.truncate(model, "4_Dense").apply(params, state, x)[0].shape == (2, 2)
    with pytest.raises(ValueError, match="no layer '9_Conv'; the model's layers are 0_Conv, 1_Relu"):
        L.truncate(model, "9_Conv")
    with pytest.raises(ValueError, match="not a serial"):
        L.truncate(L.Relu(), "0_Relu")
