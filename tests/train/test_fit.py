"""fit: learns, is deterministic, resumes bitwise, stops on NaN keeping the checkpoint, early stopping, plateau."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import data, layers as L, train


@pytest.fixture(scope="module")
def digits():
    ds = data.digits(size=16)
    return ds.train[0][:256], ds.train[1][:256], ds.val[0][:96], ds.val[1][:96]


def _model():
    return L.serial(L.Conv(4, 3), L.BatchNorm(), L.Relu(), L.MaxPool(2), L.Flatten(), L.Dropout(0.1), L.Dense(10))


def _start(model, shape=(1, 16, 16, 1)):
    _, params, state = model.init(jax.random.PRNGKey(0), shape)
    return params, state


def _equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_fit_learns_and_logs(digits, tmp_path):
    x, y, xv, yv = digits
    model = _model()
    params, state = _start(model)
    result = train.fit(model.apply, params, state, train.adam(3e-3), (x, y), (xv, yv), key=jax.random.PRNGKey(1),
                       epochs=4, batch_size=32, out_dir=tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] == [r["epoch"] for r in result.history]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and rows[-1]["val_accuracy"] > 0.6
    assert {"images_per_s", "learning_rate", "val_loss", "epoch_time_s"} <= set(rows[0])
    assert (tmp_path / "checkpoint.npz").exists() and (tmp_path / "best.npz").exists()
    assert result.step == 4 * (256 // 32)


def test_same_seed_same_result_bitwise(digits):
    x, y, xv, yv = digits
    model = _model()
    runs = []
    for _ in range(2):
        params, state = _start(model)
        runs.append(train.fit(model.apply, params, state, train.sgd(0.05), (x, y), key=jax.random.PRNGKey(5),
                              epochs=1, batch_size=32, progress=False))
    _equal(runs[0].params, runs[1].params)
    _equal(runs[0].state, runs[1].state)


def test_a_settings_object_is_the_keywords(digits):
    """fit(settings=FitSettings(...)) trains exactly as the same keywords; keywords replace the object's fields; the
    run configuration of `funcnn train` makes the same object (plateau -> plateau_patience)."""
    x, y, _, _ = digits
    model = _model()
    runs = []
    for call in ({"epochs": 1, "batch_size": 32, "progress": False},
                 {"settings": train.FitSettings(epochs=1, batch_size=32, progress=False)},
                 {"settings": train.FitSettings(epochs=5, batch_size=32, progress=False), "epochs": 1}):
        params, state = _start(model)
        runs.append(train.fit(model.apply, params, state, train.sgd(0.05), (x, y), key=jax.random.PRNGKey(5), **call))
    assert {r.step for r in runs} == {256 // 32}
    _equal(runs[0].params, runs[1].params)
    _equal(runs[0].params, runs[2].params)
    settings = train.RunConfig(epochs=3, batch_size=16, plateau=2, early_stopping=4, progress=False).fit_settings("d")
    assert settings == train.FitSettings(epochs=3, batch_size=16, plateau_patience=2, early_stopping=4,
                                         progress=False, out_dir="d")
    with pytest.raises(train.RunError, match=r"--plateau must be an integer >= 1, got 0"):
        train.RunConfig(plateau=0).check()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 4


def test_callers_params_survive_fit(digits):
    """The compiled step donates its buffers; fit must train on copies, not delete the caller's arrays."""
    x, y, _, _ = digits
    model = _model()
    params, state = _start(model)
    before = jax.tree.map(np.asarray, (params, state))
    train.fit(model.apply, params, state, train.sgd(0.05), (x, y), key=jax.random.PRNGKey(5), epochs=1,
              batch_size=32, progress=False)
    _equal((params, state), before)  # still readable, and unchanged


@pytest.mark.parametrize("stop_at", [5, 8, 13])  # mid-epoch, at an epoch boundary, in the second epoch
def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(digits, tmp_path, stop_at):
    x, y, xv, yv = digits
    model = _model()
    settings = dict(key=jax.random.PRNGKey(2), epochs=2, batch_size=32, progress=False, plateau_patience=1)
    params, state = _start(model)
    full = train.fit(model.apply, params, state, train.sgd(0.05), (x, y), (xv, yv), out_dir=tmp_path / "full",
                     **settings)
    params, state = _start(model)
    part = train.fit(model.apply, params, state, train.sgd(0.05), (x, y), (xv, yv), out_dir=tmp_path / "cut",
                     max_steps=stop_at, **settings)
    assert part.step == stop_at
    params, state = _start(model)  # a fresh process would start from scratch and find the checkpoint
    resumed = train.fit(model.apply, params, state, train.sgd(0.05), (x, y), (xv, yv), out_dir=tmp_path / "cut",
                        resume=True, **settings)
    assert resumed.step == full.step == 16
    _equal(full.params, resumed.params)
    _equal(full.state, resumed.state)
    _equal(full.opt_state, resumed.opt_state)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    np.testing.assert_equal([r["val_accuracy"] for r in resumed.history], [r["val_accuracy"] for r in full.history])
    with pytest.raises(ValueError, match="batch_size=32"):
        train.fit(model.apply, params, state, train.sgd(0.05), (x, y), (xv, yv), out_dir=tmp_path / "cut",
                  resume=True, **dict(settings, batch_size=16))


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    x, y, _, _ = digits
    model = L.serial(L.Flatten(), L.Dense(10))
    params, state = _start(model)
    key = jax.random.PRNGKey(3)
    order = data.epoch_order(len(x), jax.random.fold_in(jax.random.fold_in(key, 0), 0))  # fit's epoch-1 order
    x_bad = np.array(x)
    x_bad[order[32 * 5 + 3]] = np.nan  # lands in batch 6 of epoch 1
    settings = dict(key=key, epochs=1, batch_size=32, out_dir=tmp_path, checkpoint_every=2, progress=False)
    with pytest.raises(train.TrainingDiverged, match=r"loss is nan at step 6 \(epoch 1, batch 6\).*checkpoint is kept"):
        train.fit(model.apply, params, state, train.sgd(0.05), (x_bad, y), **settings)
    # the kept checkpoint is the one of step 4: resuming for one more step ends at step 5
    resumed = train.fit(model.apply, params, state, train.sgd(0.05), (x, y), resume=True, max_steps=5, **settings)
    assert resumed.step == 5
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(resumed.params))


def test_early_stopping_and_plateau(digits, tmp_path):
    x, y, xv, yv = digits
    model = L.serial(L.Flatten(), L.Dense(10))  # no state: with lr 1e-30 nothing changes after the first epoch
    params, state = _start(model)
    result = train.fit(model.apply, params, state, train.sgd(1e-30), (x, y), (xv, yv), key=jax.random.PRNGKey(4),
                       epochs=10, batch_size=64, early_stopping=2, plateau_patience=1, progress=False)
    assert result.stopped_early and len(result.history) == 3
    lrs = [r["learning_rate"] for r in result.history]
    np.testing.assert_allclose(lrs, [1e-30, 1e-30, 1e-31], rtol=1e-5)  # logged before each epoch's plateau rule
    params, state = _start(model)
    frozen = train.fit(model.apply, params, state, train.sgd(1e-9), (x, y), (xv, yv), key=jax.random.PRNGKey(4),
                       epochs=4, batch_size=64, plateau_patience=1, progress=False)
    lrs = [r["learning_rate"] for r in frozen.history]
    assert lrs[0] == pytest.approx(1e-9) and lrs[-1] < lrs[0] / 5  # divided by 10 on plateaus
    with pytest.raises(ValueError, match="injectable learning rate"):
        train.fit(model.apply, params, state, optax.sgd(0.1), (x, y), (xv, yv), key=jax.random.PRNGKey(4),
                  epochs=1, plateau_patience=1, progress=False)
    with pytest.raises(ValueError, match="pass val="):
        train.fit(model.apply, params, state, train.sgd(0.1), (x, y), key=jax.random.PRNGKey(4), early_stopping=1)


def test_train_step_is_pure_with_donation_and_augmentation(digits):
    x, y, _, _ = digits
    model = _model()
    params, state = _start(model)
    opt = train.adam(1e-3)
    step = train.make_train_step(model.apply, opt, augment=data.augment.random_flip())
    batch = (jnp.asarray(x[:8]), jnp.asarray(y[:8]))
    p1, s1, o1, m1 = step(params, state, opt.init(params), batch, jax.random.PRNGKey(0))
    params, state = _start(model)
    p2, s2, o2, m2 = step(params, state, opt.init(params), batch, jax.random.PRNGKey(0))
    _equal(p1, p2)
    assert int(m1["count"]) == 8 and 0 <= int(m1["correct"]) <= 8


def test_recipes():
    for name, recipe in train.RECIPES.items():
        opt = recipe()
        state = opt.init({"w": jnp.ones(3)})
        assert train.get_learning_rate(state) > 0
        state = train.set_learning_rate(state, 0.5)
        assert train.get_learning_rate(state) == 0.5
    updates, _ = train.alexnet_recipe(1.0).update({"w": jnp.zeros(3)}, train.alexnet_recipe(1.0).init(
        {"w": jnp.ones(3)}), {"w": jnp.ones(3)})
    np.testing.assert_allclose(updates["w"], -5e-4)  # L2 weight decay 5e-4 with a zero gradient


def test_fit_trains_a_regression_model_and_monitors_its_validation_loss(digits, tmp_path):
    """Not a classifier: no accuracy is logged, best.npz follows the lowest validation loss, labels may be a pytree."""
    x, _, xv, _ = digits
    model = L.serial(L.Flatten(), L.Dense(8), L.Relu(), L.fan_out(2), L.parallel(L.Dense(256), L.Dense(1)))
    params, state = _start(model)

    def loss(outputs, labels):
        image, mean = labels
        return jnp.mean((outputs[0] - image.reshape(len(image), -1)) ** 2, axis=1) + (outputs[1][:, 0] - mean) ** 2

    labels = lambda images: (images, images.mean(axis=(1, 2, 3)))
    result = train.fit(model.apply, params, state, train.adam(1e-2), (x, labels(x)), (xv, labels(xv)), loss=loss,
                       key=jax.random.PRNGKey(0), epochs=3, batch_size=32, out_dir=tmp_path, progress=False)
    assert all("train_accuracy" not in r and "val_accuracy" not in r for r in result.history)
    assert result.best_val_accuracy is None
    assert result.best_val_loss == min(r["val_loss"] for r in result.history) < result.history[0]["train_loss"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == json.loads(json.dumps(result.history))  # valid JSON: no NaN accuracies
    assert (tmp_path / "best.npz").exists()
    evaluated = train.evaluate(train.make_eval_step(model.apply, loss), result.params, result.state, xv,
                               labels(xv))
    assert set(evaluated) == {"loss"}
