"""WeightNorm and SpectralNorm: values and gradients against torch.nn.utils.parametrizations (float64), the power
iteration's state in training and evaluation, and their composition with jit, vmap, replicas and fit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import layers as L
from ..helpers import torch_or_skip


_torch = torch_or_skip  # float64 is on for every test (conftest.py)


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def test_weight_norm_starts_as_the_inner_layer_and_keeps_g_per_output_channel():
    key = jax.random.PRNGKey(0)
    _, inner, _ = L.Conv(5, 3).init(key, (2, 8, 8, 3))
    shape, params, state = L.WeightNorm(L.Conv(5, 3)).init(key, (2, 8, 8, 3))
    assert shape == (2, 6, 6, 5) and sorted(params) == ["b", "w_g", "w_v"] and params["w_g"].shape == (1, 1, 1, 5)
    x = jax.random.normal(key, (2, 8, 8, 3))
    y, _ = L.WeightNorm(L.Conv(5, 3)).apply(params, state, x)
    np.testing.assert_allclose(y, L.Conv(5, 3).apply(inner, {}, x)[0], rtol=1e-5, atol=1e-5)
    _, whole, _ = L.WeightNorm(L.Dense(4), dim=None).init(key, (2, 3))
    assert whole["w_g"].shape == (1, 1)


@pytest.mark.parametrize("dim, torch_dim", [(-1, 0), (None, None)])
def test_weight_norm_against_pytorch(dim, torch_dim):
    torch = _torch()
    layer = L.WeightNorm(L.Conv(4, 3, padding=1), dim=dim)
    _, params, state = layer.init(jax.random.PRNGKey(1), (2, 6, 6, 3))
    rng = np.random.default_rng(0)
    params = _f64({**params, "w_g": rng.uniform(0.5, 2.0, params["w_g"].shape), "b": rng.normal(size=4)})
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv2d(3, 4, 3, padding=1).double(), dim=torch_dim)
    with torch.no_grad():
        conv.parametrizations.weight.original1.copy_(torch.tensor(np.transpose(params["w_v"], (3, 2, 0, 1))))
        conv.parametrizations.weight.original0.copy_(torch.tensor(np.asarray(params["w_g"]).reshape(
            conv.parametrizations.weight.original0.shape)))
        conv.bias.copy_(torch.tensor(np.asarray(params["b"])))
    x = rng.normal(size=(2, 6, 6, 3))
    loss = lambda p: jnp.sum(layer.apply(p, state, x)[0] ** 3)  # noqa: E731
    yt = conv(torch.tensor(x.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(layer.apply(params, state, x)[0], yt.detach().numpy().transpose(0, 2, 3, 1),
                               rtol=1e-10, atol=1e-10)
    (yt ** 3).sum().backward()
    grads = jax.grad(loss)(params)
    np.testing.assert_allclose(grads["w_v"], np.transpose(conv.parametrizations.weight.original1.grad.numpy(),
                                                          (2, 3, 1, 0)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.ravel(grads["w_g"]), np.ravel(conv.parametrizations.weight.original0.grad.numpy()),
                               rtol=1e-9, atol=1e-9)


def test_spectral_norm_against_pytorch_in_training_and_evaluation():
    """Start both from the same W, u and v: each training call runs one power step (u, then v) and divides W by
    u^T W v; the gradient treats u and v as constants; evaluation uses the stored vectors without a step."""
    torch = _torch()
    layer = L.SpectralNorm(L.Dense(5))
    _, params, state = layer.init(jax.random.PRNGKey(2), (3, 7))
    params, state = _f64(params), _f64(state)
    linear = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(7, 5).double())
    sn = linear.parametrizations.weight[0]
    with torch.no_grad():
        linear.parametrizations.weight.original.copy_(torch.tensor(np.asarray(params["w"]).T))
        linear.bias.copy_(torch.tensor(np.asarray(params["b"])))
        sn._u.copy_(torch.tensor(np.asarray(state["u"])))
        sn._v.copy_(torch.tensor(np.asarray(state["v"])))
    x = np.random.default_rng(3).normal(size=(3, 7))
    linear.train()
    for _ in range(3):
        linear.zero_grad()
        yt = linear(torch.tensor(x))
        (yt ** 2).sum().backward()
        y, new_state = layer.apply(params, state, x, train=True)
        grads = jax.grad(lambda p: jnp.sum(layer.apply(p, state, x, train=True)[0] ** 2))(params)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(new_state["u"], sn._u.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(new_state["v"], sn._v.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grads["w"], linear.parametrizations.weight.original.grad.numpy().T, rtol=1e-9,
                                   atol=1e-9)
        state = new_state
    linear.eval()
    y_eval, same = layer.apply(params, state, x)
    np.testing.assert_allclose(y_eval, linear(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-10)
    assert all(np.array_equal(same[k], state[k]) for k in ("u", "v"))


def test_spectral_norm_converges_to_the_largest_singular_value():
    layer = L.SpectralNorm(L.Conv(6, 3))
    _, params, state = layer.init(jax.random.PRNGKey(4), (1, 8, 8, 4))
    x = jnp.ones((1, 8, 8, 4))
    for _ in range(30):
        _, state = layer.apply(params, state, x, train=True)
    w_mat = np.moveaxis(np.asarray(params["w"]), -1, 0).reshape(6, -1)
    sigma = float(np.asarray(state["u"]) @ w_mat @ np.asarray(state["v"]))
    np.testing.assert_allclose(sigma, np.linalg.svd(w_mat, compute_uv=False)[0], rtol=1e-5)


def test_reparametrised_layers_compose_with_jit_vmap_replicas_and_fit():
    model = L.serial(L.SpectralNorm(L.Conv(4, 3, padding=1, padding_mode="reflect")), L.Relu(),
                     L.WeightNorm(L.Conv(4, 3)), L.Relu(), L.GlobalAvgPool(), L.WeightNorm(L.Dense(3)))
    _, params, state = model.init(jax.random.PRNGKey(5), (1, 8, 8, 1))
    x = jax.random.normal(jax.random.PRNGKey(6), (48, 8, 8, 1))
    y = (jnp.arange(48) % 3).astype(jnp.int32)
    result = fn.train.fit(model.apply, params, state, fn.train.adam(1e-2), (x, y), (x[:12], y[:12]),
                          key=jax.random.PRNGKey(7), epochs=2, batch_size=16, progress=False)
    assert np.isfinite(result.history[-1]["train_loss"])
    assert not np.array_equal(result.state["0_SpectralNorm"]["u"], state["0_SpectralNorm"]["u"])  # one step a batch
    stacked = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), (params, state))
    out = jax.jit(jax.vmap(lambda p, s: model.apply(p, s, x[:4], train=True)[0]))(*stacked)
    assert out.shape == (2, 4, 3)
    keys = jax.random.split(jax.random.PRNGKey(8), 2)
    r_params, r_state = fn.train.init_replicas(model.init, (1, 8, 8, 1), keys)
    replicas = fn.train.fit_replicas(model.apply, r_params, r_state, fn.train.adam(1e-2), (x, y), (x[:12], y[:12]),
                                     keys=keys, epochs=1, batch_size=16, progress=False)
    assert len(replicas.histories) == 2 and all(np.isfinite(h[-1]["train_loss"]) for h in replicas.histories)
    assert replicas.state["0_SpectralNorm"]["u"].shape == (2, 4)


@pytest.mark.parametrize("make, match", [
    (lambda: L.WeightNorm(L.Relu()).init(jax.random.PRNGKey(0), (1, 3)),
     r"WeightNorm: the wrapped layer has no weight 'w' in its params \(keys: \[\]\) for input shape \(1, 3\)"),
    (lambda: L.WeightNorm(L.Dense(3), dim=2).init(jax.random.PRNGKey(0), (1, 3)),
     r"WeightNorm: dim must be None or an axis of the 2-axis weight, got 2"),
    (lambda: L.SpectralNorm(L.Dense(3), n_power_iterations=0), r"SpectralNorm: n_power_iterations must be an int >= 1"),
    (lambda: L.SpectralNorm(L.Dense(3), eps=0.0), r"SpectralNorm: eps must be a number > 0"),
    (lambda: L.SpectralNorm("conv"), r"SpectralNorm: layer must be an \(init, apply\) pair, got str"),
])
def test_bad_arguments_name_the_wrapper(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
