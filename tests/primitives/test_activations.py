"""Activations: forward vs reference, VJP vs reference and finite differences, the lecture's local derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.verify import reference as ref

from ..helpers import check_vjp, normal

NAMES = ["relu", "sigmoid", "tanh", "softmax", "log_softmax"]


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_vjp_match_reference_and_finite_differences(name):
    z = normal(np.random.default_rng(0), 4, 6) * 2
    np.testing.assert_allclose(getattr(fn, name)(z), getattr(ref, name)(z), rtol=1e-12, atol=1e-14)
    check_vjp(getattr(fn, name), getattr(ref, name), z).raise_if_failed()


def test_softmax_over_another_axis():
    z = normal(np.random.default_rng(1), 3, 4, 5)
    for axis in (0, 1, -1):
        check_vjp(lambda z: fn.softmax(z, axis), lambda z: ref.softmax(z, axis), z).raise_if_failed()
        check_vjp(lambda z: fn.log_softmax(z, axis), lambda z: ref.log_softmax(z, axis), z).raise_if_failed()
    with pytest.raises(ValueError, match=r"axis must be an int in \[-3, 3\)"):
        fn.softmax(z, axis=3)


def test_local_derivatives_from_the_lecture():
    z = jnp.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    g = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    s = 1 / (1 + np.exp(-np.asarray(z)))
    t = np.tanh(np.asarray(z))
    np.testing.assert_allclose(jax.vjp(fn.relu, z)[1](g)[0], g * (z > 0))
    np.testing.assert_allclose(jax.vjp(fn.sigmoid, z)[1](g)[0], g * s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(jax.vjp(fn.tanh, z)[1](g)[0], g * (1 - t**2), rtol=1e-12)


def test_relu_derivative_at_zero_is_zero():
    assert jax.grad(lambda z: fn.relu(z))(0.0) == 0.0
    assert jax.grad(lambda z: fn.relu(z))(1e-30) == 1.0


def test_softmax_is_stable_for_large_logits():
    z = jnp.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(fn.softmax(z), [[1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(fn.log_softmax(z), [[0, -1000, -2000]], atol=1e-9)
    assert np.all(np.isfinite(jax.grad(lambda z: fn.log_softmax(z)[0, 1])(z)))


def test_grad_of_grad_and_bfloat16():
    z = normal(np.random.default_rng(2), 5)
    for name in ("sigmoid", "tanh", "softmax", "log_softmax"):
        def second(f):
            return jax.grad(lambda z: jnp.sum(jax.grad(lambda z: jnp.sum(f(z) ** 3))(z) ** 2))(z)

        np.testing.assert_allclose(second(getattr(fn, name)), second(getattr(ref, name)), rtol=1e-9)
        assert getattr(fn, name)(z.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_forward_mode_is_the_local_derivative_times_the_tangent():
    """dy = dz * f'(z), written through the output: relu (z > 0), sigmoid y(1-y), tanh 1-y^2; softmax
    y (dz - sum(y dz)) and log-softmax dz - sum(softmax(z) dz)."""
    z = jnp.asarray([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    dz = jnp.asarray([[1.0, 2.0, 3.0, 4.0, 5.0]])
    for f, derivative in ((fn.relu, lambda y: y > 0), (fn.sigmoid, lambda y: y * (1 - y)),
                          (fn.tanh, lambda y: 1 - y * y)):
        y, dy = jax.jvp(f, (z,), (dz,))
        np.testing.assert_allclose(dy, dz * derivative(y), rtol=1e-6)
    s, ds = jax.jvp(fn.softmax, (z,), (dz,))
    np.testing.assert_allclose(ds, s * (dz - jnp.sum(s * dz, -1, keepdims=True)), rtol=1e-6)
    _, dl = jax.jvp(fn.log_softmax, (z,), (dz,))
    np.testing.assert_allclose(dl, dz - jnp.sum(s * dz, -1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(fn.log_softmax)(z[0]), jax.jacrev(fn.log_softmax)(z[0]), rtol=1e-6)
