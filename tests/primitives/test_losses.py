"""softmax_cross_entropy: the lecture's worked example, VJP = softmax - onehot, label checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn.verify import reference as ref

from ..helpers import check_vjp, normal


def test_lecture_worked_example():
    """Scores (-2.85, 0.86, 0.28), true class 3 -> probabilities (0.016, 0.631, 0.353), loss 1.04."""
    logits = jnp.array([[-2.85, 0.86, 0.28]])
    np.testing.assert_allclose(fn.softmax(logits), [[0.016, 0.631, 0.353]], atol=1e-3)
    np.testing.assert_allclose(fn.softmax_cross_entropy(logits, jnp.array([2])), [1.04], atol=5e-3)


def test_gradient_is_softmax_minus_onehot():
    rng = np.random.default_rng(0)
    logits, labels = normal(rng, 6, 5), jnp.asarray(rng.integers(0, 5, 6))
    g = normal(rng, 6)
    dlogits = jax.vjp(lambda f: fn.softmax_cross_entropy(f, labels), logits)[1](g)[0]
    expected = g[:, None] * (ref.softmax(logits) - jax.nn.one_hot(labels, 5))
    np.testing.assert_allclose(dlogits, expected, rtol=1e-12)
    check_vjp(fn.softmax_cross_entropy, ref.softmax_cross_entropy, logits, labels).raise_if_failed()


def test_extra_leading_axes_grad_of_grad_and_bfloat16():
    rng = np.random.default_rng(1)
    logits, labels = normal(rng, 2, 3, 4), jnp.asarray(rng.integers(0, 4, (2, 3)))
    assert fn.softmax_cross_entropy(logits, labels).shape == (2, 3)
    check_vjp(fn.softmax_cross_entropy, ref.softmax_cross_entropy, logits, labels).raise_if_failed()

    def second(loss):
        return jax.grad(lambda f: jnp.sum(jax.grad(lambda f: loss(f, labels).sum())(f) ** 2))(logits)

    np.testing.assert_allclose(second(fn.softmax_cross_entropy), second(ref.softmax_cross_entropy), rtol=1e-9)
    assert fn.softmax_cross_entropy(logits.astype(jnp.bfloat16), labels).dtype == jnp.bfloat16


def test_bad_labels():
    logits = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got \[3\]"):
        fn.softmax_cross_entropy(logits, jnp.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels shape \(3,\) must equal logits shape \(2, 3\)"):
        fn.softmax_cross_entropy(logits, jnp.array([0, 1, 2]))
    with pytest.raises(TypeError, match="labels must be integers"):
        fn.softmax_cross_entropy(logits, jnp.array([0.0, 1.0]))
    # under jit the labels are not concrete: an out-of-range label gives NaN, which training detects
    out = jax.jit(fn.softmax_cross_entropy)(logits, jnp.array([0, 7]))
    assert np.isfinite(out[0]) and np.isnan(out[1])
