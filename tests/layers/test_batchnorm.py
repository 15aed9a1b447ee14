"""BatchNorm's numerics: float64 NumPy and PyTorch's BatchNorm2d semantics, at means far larger than the spread."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import layers as L

MOMENTUM, EPS = 0.9, 1e-5


def _numpy_batchnorm(batches, momentum=MOMENTUM, eps=EPS):
    """Float64 batch normalisation over several training steps, then evaluation: (train outputs, running mean,
    running var, eval output of the last batch). Biased variance to normalise, unbiased in the running variance."""
    mean_r, var_r = np.zeros(batches[0].shape[-1]), np.ones(batches[0].shape[-1])
    outputs = []
    for x in batches:
        x = x.astype(np.float64)
        axes = tuple(range(x.ndim - 1))
        m, v = x.mean(axes), x.var(axes)
        outputs.append((x - m) / np.sqrt(v + eps))
        count = x.size // x.shape[-1]
        mean_r = momentum * mean_r + (1 - momentum) * m
        var_r = momentum * var_r + (1 - momentum) * v * count / (count - 1)
    evaluated = (batches[-1].astype(np.float64) - mean_r) / np.sqrt(var_r + eps)
    return outputs, mean_r, var_r, evaluated


def _funcnn_batchnorm(batches, dtype=jnp.float32):
    init, apply = L.BatchNorm(momentum=MOMENTUM, epsilon=EPS)
    _, params, state = init(jax.random.PRNGKey(0), batches[0].shape)
    outputs = []
    for x in batches:
        y, state = apply(params, state, jnp.asarray(x, dtype), train=True)
        outputs.append(np.asarray(y, np.float64))
    evaluated, _ = apply(params, state, jnp.asarray(batches[-1], dtype), train=False)
    return outputs, np.asarray(state["mean"]), np.asarray(state["var"]), np.asarray(evaluated, np.float64)


@pytest.mark.parametrize("mean", [0.0, 1.0, 300.0, 1e3, 1e4])
@pytest.mark.parametrize("spread", [0.1, 1.0])
def test_float32_batchnorm_matches_float64_at_large_means(mean, spread):
    """x = mean + spread N(0, 1), shape (4, 5, 5, 3), three steps: the float32 layer against float64 NumPy on the same
    (float32-rounded) inputs. The naive mean(x^2) - mean^2 was 97 off at mean 300, spread 0.1."""
    rng = np.random.default_rng(0)
    batches = [(mean + spread * rng.normal(size=(4, 5, 5, 3))).astype(np.float32) for _ in range(3)]
    want, mean_r, var_r, evaluated = _numpy_batchnorm(batches)
    got, got_mean, got_var, got_eval = _funcnn_batchnorm(batches)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=2e-6)  # normalised outputs: unit scale
    np.testing.assert_allclose(got_mean, mean_r, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_var, var_r, rtol=1e-5)
    # evaluation subtracts a float32 running mean: its rounding (mean * 6e-8) over the spread bounds the error
    np.testing.assert_allclose(got_eval, evaluated, atol=2e-6 + 2 * mean * 6e-8 / spread)


def test_the_running_variance_moves_at_a_large_mean():
    rng = np.random.default_rng(1)
    x = (300 + 0.1 * rng.normal(size=(4, 5, 5, 3))).astype(np.float32)
    _, _, var_r, _ = _funcnn_batchnorm([x])
    assert np.all(np.abs(var_r - (0.9 + 0.1 * 0.01)) < 2e-3)  # 0.9 * 1 + 0.1 * (unbiased var ~ 0.01)
    assert np.all(var_r != 0.9)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_inputs_take_statistics_in_float32(dtype):
    rng = np.random.default_rng(2)
    x = (50 + rng.normal(size=(8, 4, 4, 2))).astype(np.float32)
    x_low = np.asarray(jnp.asarray(x, dtype), np.float32)  # what the layer sees
    got, mean_r, _, _ = _funcnn_batchnorm([x_low], dtype=dtype)
    want, want_mean, _, _ = _numpy_batchnorm([x_low])
    np.testing.assert_allclose(got[0], want[0], atol=0.05)  # the output is rounded to the input's dtype
    np.testing.assert_allclose(mean_r, want_mean, rtol=1e-6)  # the statistics are not


def test_batchnorm_under_vmap_normalises_over_the_global_batch():
    """axis_name: the statistics are the global batch's, the second pass from the global mean."""
    rng = np.random.default_rng(3)
    x = (1e3 + rng.normal(size=(4, 6, 3, 3, 2))).astype(np.float32)  # 4 shards of 6 examples
    init, apply = L.BatchNorm(axis_name="shards")
    _, params, state = init(jax.random.PRNGKey(0), x.shape[1:])
    y, new_state = jax.vmap(lambda xs: apply(params, state, xs, train=True), axis_name="shards")(jnp.asarray(x))
    whole = x.reshape(24, 3, 3, 2).astype(np.float64)
    m, v = whole.mean((0, 1, 2)), whole.var((0, 1, 2))
    np.testing.assert_allclose(np.asarray(y).reshape(whole.shape), (whole - m) / np.sqrt(v + EPS), atol=3e-6)
    np.testing.assert_allclose(np.asarray(new_state["var"])[0], 0.9 + 0.1 * v * 216 / 215, rtol=1e-5)


def test_gradients_match_float64_autodiff_of_the_formula():
    rng = np.random.default_rng(4)
    x = jnp.asarray(300 + 0.1 * rng.normal(size=(4, 3, 3, 2)))  # float64 (the tests enable x64)
    init, apply = L.BatchNorm()
    _, params, state = init(jax.random.PRNGKey(0), x.shape)
    g = jnp.asarray(rng.normal(size=x.shape))

    def layer(x, scale, bias):
        return apply({"scale": scale, "bias": bias}, state, x, train=True)[0]

    def formula(x, scale, bias):
        m = jnp.mean(x, (0, 1, 2))
        return (x - m) / jnp.sqrt(jnp.mean((x - m) ** 2, (0, 1, 2)) + EPS) * scale + bias

    mine = jax.vjp(layer, x, params["scale"], params["bias"])[1](g)
    theirs = jax.vjp(formula, x, params["scale"], params["bias"])[1](g)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_pytorch_batchnorm2d_semantics():
    """Against torch.nn.BatchNorm2d in float64 (momentum 0.1 there = 0.9 here): three training steps and one
    evaluation, at a mean far from zero."""
    torch = pytest.importorskip("torch", reason="PyTorch is the independent oracle here; pip install torch")
    rng = np.random.default_rng(5)
    batches = [(1e3 + 0.5 * rng.normal(size=(4, 5, 5, 3))) for _ in range(3)]
    bn = torch.nn.BatchNorm2d(3, eps=EPS, momentum=1 - MOMENTUM).double()
    outputs = []
    for x in batches:
        outputs.append(bn(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1))
    bn.eval()
    evaluated = bn(torch.from_numpy(batches[-1].transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1)
    got, mean_r, var_r, got_eval = _funcnn_batchnorm(batches, dtype=jnp.float64)
    for a, b in zip(got, outputs):
        np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(mean_r, bn.running_mean.numpy(), rtol=1e-6)  # funcnn's state is float32
    np.testing.assert_allclose(var_r, bn.running_var.numpy(), rtol=1e-6)
    np.testing.assert_allclose(got_eval, evaluated, atol=1e-3)
