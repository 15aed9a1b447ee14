"""dense: forward vs reference, VJP vs reference and finite differences, shapes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.verify import reference as ref

from ..helpers import check_vjp, normal


@pytest.mark.parametrize("x_shape", [(5, 7), (2, 3, 7), (7,)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_forward_and_vjp(x_shape, bias):
    rng = np.random.default_rng(0)
    x, w = normal(rng, *x_shape), normal(rng, 7, 4)
    args = (x, w, normal(rng, 4)) if bias else (x, w)
    np.testing.assert_allclose(fn.dense(*args), ref.dense(*args), rtol=1e-12)
    np.testing.assert_allclose(fn.dense(*args), args[0] @ w + (args[2] if bias else 0), rtol=1e-12)
    check_vjp(fn.dense, ref.dense, *args).raise_if_failed()


def test_dense_rules_are_the_matrix_formulas():
    rng = np.random.default_rng(1)
    x, w, b, g = normal(rng, 5, 3), normal(rng, 3, 2), normal(rng, 2), normal(rng, 5, 2)
    dx, dw, db = jax.vjp(fn.dense, x, w, b)[1](g)
    np.testing.assert_allclose(dx, g @ w.T, rtol=1e-12)
    np.testing.assert_allclose(dw, x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(db, g.sum(0), rtol=1e-12)


def test_dense_bfloat16_and_per_example_grads():
    rng = np.random.default_rng(2)
    x, w = normal(rng, 6, 8, dtype=jnp.float32), normal(rng, 8, 3, dtype=jnp.float32)
    assert fn.dense(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    per = jax.vmap(jax.grad(lambda w, xi: jnp.sum(fn.dense(xi, w) ** 2)), in_axes=(None, 0))(w, x)
    loop = jnp.stack([jax.grad(lambda w: jnp.sum(fn.dense(xi, w) ** 2))(w) for xi in x])
    np.testing.assert_allclose(per, loop, rtol=1e-5)


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, match",
    [
        ((5, 6), (7, 4), None, r"x has 6 features \(shape \(5, 6\)\) but w expects 7"),
        ((5, 7), (7,), None, r"w rank 2"),
        ((5, 7), (7, 4), (3,), r"b must have shape \(4,\)"),
    ],
)
def test_dense_bad_input(x_shape, w_shape, b_shape, match):
    with pytest.raises(ValueError, match=match):
        fn.dense(jnp.ones(x_shape), jnp.ones(w_shape), None if b_shape is None else jnp.ones(b_shape))
