"""Mixed precision: bfloat16 compute with float32 master weights, tested against float32 on a short LeNet-5 run;
dynamic loss scaling for float16."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import data, layers as L, models, train
from funcnn.train import precision


@pytest.fixture(scope="module")
def digits():
    ds = data.digits()
    return ds.train.x[:512], ds.train.y[:512], ds.val.x, ds.val.y


def test_policy_presets_and_unknown_name():
    policy = precision.Policy.get("bfloat16")
    assert (policy.param_dtype, policy.compute_dtype, policy.output_dtype) == (jnp.float32, jnp.bfloat16, jnp.float32)
    tree = {"w": jnp.ones(2), "n": jnp.arange(3)}
    cast = policy.cast_to_compute(tree)
    assert cast["w"].dtype == jnp.bfloat16 and cast["n"].dtype == tree["n"].dtype  # integers untouched
    with pytest.raises(ValueError, match="unknown precision policy 'fp8'"):
        precision.Policy.get("fp8")


def test_bfloat16_compute_float32_gradients(digits):
    x, y = digits[0][:64], digits[1][:64]
    model = models.lenet5()
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    mixed = precision.mixed_precision(model.apply, precision.Policy.get("bfloat16"))
    closed = jax.make_jaxpr(lambda p: mixed(p, state, x)[0])(params)
    convs = [e for e in closed.jaxpr.eqns if e.primitive.name == "funcnn.conv"]
    assert len(convs) == 2 and all(v.aval.dtype == jnp.bfloat16 for e in convs for v in e.invars)  # bf16 convs
    assert "bf16[64,32,32,1]" in str(closed)
    out = mixed(params, state, x)[0]
    assert out.dtype == jnp.float32
    grad = lambda apply: jax.grad(lambda p: train.classification_loss(apply(p, state, x)[0], y).mean())(params)
    g32, g16 = grad(model.apply), grad(mixed)
    for a, b in zip(jax.tree.leaves(g32), jax.tree.leaves(g16)):
        assert b.dtype == jnp.float32
        assert float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a)) < 0.08  # bfloat16 has 8 bits of mantissa


def test_short_lenet_run_in_bfloat16_matches_float32(digits):
    x, y, xv, yv = digits
    model = models.lenet5()
    results = {}
    for name in ("float32", "bfloat16"):
        _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
        apply = precision.mixed_precision(model.apply, precision.Policy.get(name))
        results[name] = train.fit(apply, params, state, train.adam(2e-3), (x, y), (xv, yv),
                                  key=jax.random.PRNGKey(1), epochs=3, batch_size=32, progress=False)
    full, mixed = results["float32"].history[-1], results["bfloat16"].history[-1]
    assert full["val_accuracy"] > 0.85
    assert abs(mixed["val_accuracy"] - full["val_accuracy"]) < 0.05
    assert mixed["train_loss"] == pytest.approx(full["train_loss"], rel=0.25)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(results["bfloat16"].params))


def test_loss_scale_skips_overflow_halves_and_grows():
    inner = optax.sgd(0.1)
    opt = precision.loss_scaled(inner, initial_scale=8.0, period=2)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.array([8.0, 16.0, jnp.inf])}, state, params)
    np.testing.assert_array_equal(updates["w"], 0.0)
    assert float(state.loss_scale) == 4.0 and int(state.good_steps) == 0
    updates, state = opt.update({"w": jnp.array([4.0, 8.0, 0.0])}, state, params)  # scaled by 4
    np.testing.assert_allclose(updates["w"], [-0.1, -0.2, 0.0])
    assert float(state.loss_scale) == 4.0 and int(state.good_steps) == 1
    _, state = opt.update({"w": jnp.zeros(3)}, state, params)
    assert float(state.loss_scale) == 8.0 and int(state.good_steps) == 0  # 2 finite steps: grow


def test_float16_with_loss_scaling_trains_like_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    model = L.serial(L.Dense(16), L.Relu(), L.Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 8))
    runs = {}
    for name, optimizer in (("float32", train.sgd(0.1)), ("float16", precision.loss_scaled(train.sgd(0.1), 2.0**10))):
        apply = precision.mixed_precision(model.apply, precision.Policy.get(name))
        step = train.make_train_step(apply, optimizer, donate=False)
        p, s, o = params, state, optimizer.init(params)
        for i in range(50):
            p, s, o, metrics = step(p, s, o, (x, y), jax.random.PRNGKey(i))
        runs[name] = (p, float(metrics["correct"]) / len(x), o)
    assert runs["float16"][1] > 0.9 and abs(runs["float16"][1] - runs["float32"][1]) < 0.05
    assert float(runs["float16"][2].loss_scale) == 2.0**10  # no overflow at this scale: never halved
    for a, b in zip(jax.tree.leaves(runs["float32"][0]), jax.tree.leaves(runs["float16"][0])):
        np.testing.assert_allclose(b, a, atol=0.05)


def test_the_step_finds_the_loss_scale_inside_a_chain():
    """`loss_scale(opt_state)` is the interface: a loss_scaled optimiser inside optax.chain scales the loss too. Before,
    the step read `opt_state.loss_scale` at the top only, so inside a chain the loss went unscaled while the optimiser
    still divided the gradients by 2**10: updates 1024 times too small."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = L.serial(L.Dense(4), L.Relu(), L.Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 8))
    results = []
    for optimizer in (optax.sgd(0.1), optax.chain(optax.identity(), precision.loss_scaled(optax.sgd(0.1), 2.0**10)),
                      precision.loss_scaled(optax.sgd(0.1), 2.0**10)):
        opt_state = optimizer.init(params)
        scale = precision.loss_scale(opt_state)
        assert (scale is None) == (not results)  # only the plain sgd has none
        step = train.make_train_step(model.apply, optimizer, donate=False)
        results.append(step(params, state, opt_state, (x, y), jax.random.PRNGKey(0))[0])
    for scaled in results[1:]:
        for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(scaled)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert float(precision.loss_scale(precision.loss_scaled(optax.sgd(1.0), 8.0).init(params))) == 8.0
    twice = optax.chain(precision.loss_scaled(optax.sgd(0.1)), precision.loss_scaled(optax.sgd(0.1)))
    with pytest.raises(ValueError, match="holds 2 loss_scaled states; wrap the optimiser in loss_scaled once"):
        precision.loss_scale(twice.init(params))


def test_loss_scaled_state_still_exposes_the_learning_rate():
    opt_state = precision.loss_scaled(train.adam(1e-3)).init({"w": jnp.ones(2)})
    assert train.get_learning_rate(opt_state) == pytest.approx(1e-3)
    train.set_learning_rate(opt_state, 1e-4)
    assert train.get_learning_rate(opt_state) == pytest.approx(1e-4)


def test_with_precision_sets_up_apply_and_optimizer_by_name():
    model = L.serial(L.Dense(4), L.Relu(), L.Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (3, 5))
    x = jnp.ones((3, 5), jnp.float32)
    optimizer = train.adam(1e-3)
    assert precision.with_precision("float32", model.apply, optimizer) == (model.apply, optimizer)

    apply, opt = precision.with_precision("bfloat16", model.apply, optimizer)
    assert opt is optimizer  # bfloat16 has float32's exponent range: no loss scaling
    y, _ = apply(params, state, x)
    np.testing.assert_array_equal(y, precision.mixed_precision(model.apply, precision.Policy.get("bfloat16"))(
        params, state, x)[0])
    assert y.dtype == jnp.float32 and not np.array_equal(y, model.apply(params, state, x)[0])  # computed in bf16

    apply, opt = precision.with_precision("float16", model.apply, optimizer)
    assert isinstance(opt.init(params), precision.LossScaleState)
    assert apply(params, state, x)[0].dtype == jnp.float32
    with pytest.raises(ValueError, match="unknown precision policy 'fp8'"):
        precision.with_precision("fp8", model.apply, optimizer)
