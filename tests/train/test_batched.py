"""Replicas (vmapped or mapped) equal separate runs; per-example gradients equal a loop over examples."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import layers as L, train

MODEL = L.serial(L.Conv(4, 3), L.Relu(), L.MaxPool(2), L.Flatten(), L.Dropout(0.2), L.Dense(10))
SHAPE = (1, 12, 12, 1)


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, 12, 12, 1)), jnp.float32), jnp.asarray(rng.integers(0, 10, n))


@pytest.mark.parametrize("strategy", ["vmap", "map"])
def test_replicas_equal_separate_runs_with_the_same_seeds_and_learning_rates(strategy):
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    rates = [1e-3, 3e-3, 1e-2]
    params, state = train.init_replicas(MODEL.init, SHAPE, keys)
    opt = train.adam()
    opt_state = train.init_replica_optimizer(opt, params, learning_rate=rates)
    step = train.make_replica_train_step(MODEL.apply, opt, strategy=strategy)
    step_keys = [jax.random.split(jax.random.PRNGKey(10 + t), 3) for t in range(3)]
    for t in range(3):
        params, state, opt_state, metrics = step(params, state, opt_state, _batch(seed=t), step_keys[t])
    assert metrics["loss_sum"].shape == (3,)
    for r in range(3):
        _, p, s = MODEL.init(keys[r], SHAPE)
        single_opt = train.adam(rates[r])
        o = single_opt.init(p)
        single = train.make_train_step(MODEL.apply, single_opt)
        for t in range(3):
            p, s, o, m = single(p, s, o, _batch(seed=t), step_keys[t][r])
        for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(params)):
            np.testing.assert_allclose(b[r], a, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(metrics["loss_sum"][r], m["loss_sum"], rtol=2e-5)


def test_the_replica_strategy_follows_the_backend_and_rejects_unknown_names():
    from funcnn.train.batched import replica_strategy

    assert replica_strategy("auto", "cpu") == "map"
    assert replica_strategy("auto", "gpu") == replica_strategy("auto", "tpu") == "vmap"
    assert replica_strategy("vmap", "cpu") == "vmap"
    with pytest.raises(ValueError, match="unknown 'pmap'; known: auto, vmap, map"):
        train.make_replica_train_step(MODEL.apply, train.adam(), strategy="pmap")


@pytest.mark.parametrize("strategy", ["vmap", "map"])
def test_replica_batches_and_unknown_hyperparameters(strategy):
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    params, state = train.init_replicas(MODEL.init, SHAPE, keys)
    opt = train.sgd(0.1)
    opt_state = train.init_replica_optimizer(opt, params, learning_rate=0.05)
    np.testing.assert_allclose(opt_state.hyperparams["learning_rate"], [0.05, 0.05])
    step = train.make_replica_train_step(MODEL.apply, opt, shared_batch=False, strategy=strategy)
    x, y = _batch(8)
    batches = (jnp.stack([x, x[::-1]]), jnp.stack([y, y[::-1]]))
    before = jax.tree.map(jnp.copy, (params, state))  # the step donates its inputs
    new, _, _, metrics = step(params, state, opt_state, batches, keys)
    params, state = before
    assert metrics["count"].tolist() == [8, 8]
    single = train.make_train_step(MODEL.apply, train.sgd(0.05))
    for r in range(2):  # each replica trained on its own batch
        p, _, _, m = single(train.replica(params, r), train.replica(state, r), train.sgd(0.05).init(
            train.replica(params, r)), (batches[0][r], batches[1][r]), keys[r])
        np.testing.assert_allclose(metrics["loss_sum"][r], m["loss_sum"], rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(train.replica(new, r))):
            np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)
    with pytest.raises(ValueError, match="no injected hyperparameter 'beta'"):
        train.init_replica_optimizer(opt, params, beta=[1, 2])


def test_per_example_grads_equal_a_loop_over_examples():
    _, params, state = MODEL.init(jax.random.PRNGKey(2), SHAPE)
    x, y = _batch(6)

    def loss(params, batch):
        logits, _ = MODEL.apply(params, state, batch[0])
        return fn.softmax_cross_entropy(logits, batch[1]).mean()

    grads = train.per_example_grads(loss, params, (x, y))
    for i in range(6):
        single = jax.grad(loss)(params, (x[i:i + 1], y[i:i + 1]))
        for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(single)):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
    # the mean of per-example gradients is the batch gradient
    batch_grad = jax.grad(loss)(params, (x, y))
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(batch_grad)):
        np.testing.assert_allclose(a.mean(0), b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", ["vmap", "map"])
def test_fit_replicas_equals_separate_fit_runs(tmp_path, strategy):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 40).astype(np.int32)
    val = (x[:12], y[:12])
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    rates = [3e-3, 1e-2]
    params, state = train.init_replicas(MODEL.init, SHAPE, keys)
    result = train.fit_replicas(MODEL.apply, params, state, train.adam(), (x, y), val, keys=keys,
                                hyperparams={"learning_rate": rates}, epochs=2, batch_size=8, out_dir=tmp_path,
                                progress=False, strategy=strategy)
    for r in range(2):
        _, p, s = MODEL.init(keys[r], SHAPE)
        single = train.fit(MODEL.apply, p, s, train.adam(rates[r]), (x, y), val, key=keys[r], epochs=2,
                           batch_size=8, progress=False)
        for a, b in zip(jax.tree_util.tree_leaves(single.params), jax.tree_util.tree_leaves(result.params)):
            np.testing.assert_allclose(b[r], a, rtol=2e-5, atol=2e-6)
        for mine, theirs in zip(result.histories[r], single.history):
            for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                assert mine[k] == pytest.approx(theirs[k], rel=1e-4), k
        rows = [json.loads(line) for line in (tmp_path / f"replica_{r}" / "metrics.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in rows] == [1, 2]
        saved = fn.load(tmp_path / f"replica_{r}" / "params.npz")
        np.testing.assert_array_equal(saved["params"]["0_Conv"]["w"], train.replica(result.params, r)["0_Conv"]["w"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["learning_rate"] for row in summary["replicas"]] == pytest.approx(rates)


def test_fit_replicas_rejects_mismatched_keys():
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    params, state = train.init_replicas(MODEL.init, SHAPE, keys)
    x, y = _batch(16)
    with pytest.raises(ValueError, match="3 keys but stacked params"):
        train.fit_replicas(MODEL.apply, params, state, train.adam(), (x, y), keys=jax.random.split(keys[0], 3))


def test_fit_and_fit_replicas_share_the_settings_checks():
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    params, state = train.init_replicas(MODEL.init, SHAPE, keys)
    x, y = _batch(16)
    for bad in ({"epochs": 0}, {"batch_size": 0}, {"epochs": 1.5}, {"eval_batch_size": True}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"fit_replicas: {name} must be an int >= 1"):
            train.fit_replicas(MODEL.apply, params, state, train.adam(), (x, y), keys=keys, progress=False, **bad)
        _, p, s = MODEL.init(keys[0], SHAPE)
        with pytest.raises(ValueError, match=f"fit: {name} must be an int >= 1"):
            train.fit(MODEL.apply, p, s, train.adam(), (x, y), key=keys[0], progress=False, **bad)


def test_a_diverging_replica_is_reported_and_the_others_train_on(capsys):
    """One loop, one divergence policy: a replica whose loss stops being finite is reported once and the others go
    on; when every replica has diverged the run stops with TrainingDiverged, as fit does at once."""
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    params, state = train.init_replicas(MODEL.init, SHAPE, keys)
    x, y = _batch(32, seed=5)
    result = train.fit_replicas(MODEL.apply, params, state, train.sgd(), (x, y), keys=keys, epochs=2, batch_size=8,
                                hyperparams={"learning_rate": [1e-2, 1e30]}, progress=False)
    reported = capsys.readouterr()
    assert "replicas [1] diverged (loss is nan" in reported.out + reported.err
    assert all(np.isfinite(row["train_loss"]) for row in result.histories[0])
    assert not np.isfinite(result.histories[1][-1]["train_loss"])
    assert np.all(np.isfinite(train.replica(result.params, 0)["0_Conv"]["w"]))
    with pytest.raises(train.TrainingDiverged, match=r"every replica has diverged: loss is nan at step \d+"):
        train.fit_replicas(MODEL.apply, params, state, train.sgd(), (x, y), keys=keys, epochs=1, batch_size=8,
                           hyperparams={"learning_rate": [1e30, 1e31]}, progress=False)


def _replica_step_module(platform, replicas=4, batch_size=8):
    """The vmapped replica step of LeNet-5 exported (lowered only: no device needed) for one platform."""
    import re

    from funcnn import models
    from funcnn.train.batched import map_replicas
    from funcnn.train.steps import make_train_step

    model = models.lenet5(10)
    keys = jax.random.split(jax.random.PRNGKey(0), replicas)
    params, state = train.init_replicas(model.init, (1, 32, 32, 1), keys)
    opt = train.adam()
    opt_state = train.init_replica_optimizer(opt, params, learning_rate=jnp.linspace(1e-4, 1e-3, replicas))
    batch = (jnp.ones((replicas, batch_size, 32, 32, 1)), jnp.zeros((replicas, batch_size), jnp.int32))
    step = map_replicas(make_train_step(model.apply, opt, jit=False), (0, 0, 0, 0, 0), "vmap")
    text = jax.export.export(jax.jit(step), platforms=[platform])(params, state, opt_state, batch,
                                                                   keys).mlir_module()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("#loc"))  # no source locations
    convs = re.findall(r"stablehlo\.convolution[^\n]*", text)
    return text, convs, [int(g) for c in convs for g in re.findall(r"feature_group_count = (\d+)", c)]


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_the_vmapped_replica_step_on_accelerators_is_grouped_convolutions_with_no_loop_and_no_scatter(platform):
    """On GPUs and TPUs the replicas of a conv with per-replica filters fold into one grouped convolution (the form
    cuDNN and TPUs run well) and the dense layers into batched matmuls: the exported program holds no loop over the
    replicas and no scatter."""
    import re

    text, convs, groups = _replica_step_module(platform)
    assert not re.findall(r"stablehlo\.(?:while|scatter|select_and_scatter)\b", text)
    assert convs and 4 in groups, groups  # conv2 (6 -> 16) of 4 replicas: one convolution with 4 groups
    assert "stablehlo.dot_general" in text


@pytest.mark.parametrize("replicas, batch_size, loops", [(4, 16, False), (17, 16, True), (4, 8, True)])
def test_the_vmapped_replica_step_on_the_cpu_writes_few_replicas_out_and_loops_over_many(replicas, batch_size, loops):
    """On the CPU, up to UNROLL_MAX_SLICES replicas of real batches (more than LOOP_SMALL_BATCH images) are written
    out, one single-model convolution each, with no loop; more replicas, or per-example sized slices, loop."""
    import re

    from funcnn.primitives.conv import rules

    assert (replicas <= rules.UNROLL_MAX_SLICES and batch_size > rules.LOOP_SMALL_BATCH) != loops
    text, convs, groups = _replica_step_module("cpu", replicas, batch_size)
    assert bool(re.findall(r"stablehlo\.while\b", text)) == loops
    assert not [g for g in groups if g > 1]  # never the grouped fold on the CPU
    if not loops:  # every conv rule of every replica written out: at least forward, dX (conv2) and dW per layer
        assert len(convs) >= replicas * 5, len(convs)


def test_the_vmapped_replica_step_on_the_cpu_loops_over_single_replica_convolutions():
    """On the CPU (where a grouped convolution is slow) each conv rule runs per replica in a loop, with the
    single-model paths chosen for a loop body (no batch chunks); the dense layers stay batched matmuls."""
    from funcnn import models
    from funcnn.describe import _equations
    from funcnn.train.batched import map_replicas
    from funcnn.train.steps import make_train_step

    model = models.lenet5(10)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    params, state = train.init_replicas(model.init, (1, 32, 32, 1), keys)
    opt = train.adam()
    opt_state = train.init_replica_optimizer(opt, params, learning_rate=[1e-3, 1e-3])
    batch = (jnp.ones((2, 8, 32, 32, 1)), jnp.zeros((2, 8), jnp.int32))
    step = map_replicas(make_train_step(model.apply, opt, jit=False), (0, 0, 0, 0, 0), "vmap")
    eqns = list(_equations(jax.make_jaxpr(step)(params, state, opt_state, batch, keys).jaxpr))
    looped = {e.params["algorithm"] for e in eqns if e.primitive.name.startswith("funcnn.conv") and e.params["looped"]}
    assert looped == {"banded"}  # LeNet's few-channel layers: the band, as one model's step takes it in a loop
    from funcnn.verify.checks import scatter_ops

    assert not scatter_ops(step, (params, state, opt_state, batch, keys), "cpu")
