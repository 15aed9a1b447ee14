"""The model zoo: published parameter counts, summary tables, and a few training steps without NaN."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as fn
from funcnn import models

PUBLISHED = {
    "lenet5": 61_706,  # 156 + 2,416 + 48,120 + 10,164 + 850 (full C3 connectivity, 16x6x5x5)
    "alexnet": 62_378_344,  # single-tower AlexNet, the lecture's "60M"
    "vgg16": 138_357_544,  # configuration D, the lecture's "~140M"
    "resnet18": 11_689_512,  # torchvision's count
    "resnet20": 272_474,
    "mobilenet_v1": 4_231_976,
    "all_conv": 1_369_738,
    "r3d_18": 33_371_472,  # torchvision.models.video.r3d_18's count (400 Kinetics classes)
    "clip_cnn": 17_684,  # 224 + 3,472 + 13,856 + 132
}
CLASSES = {"lenet5": 10, "resnet20": 10, "all_conv": 10, "localizer": 10, "r3d_18": 400, "clip_cnn": 4}


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_summary_prints_a_table_with_the_published_total(name, capsys):
    classes = CLASSES.get(name, 1000)
    table = fn.summary(models.get(name)(classes).init, (1, *models.INPUT_SHAPES[name]))
    assert table == capsys.readouterr().out.rstrip("\n")
    assert "Total parameters" in table and "Output shape" in table
    if name in PUBLISHED:
        assert f"Total parameters: {PUBLISHED[name]:,}" in table


# forward FLOPs per example (a multiply-add is 2); the convolution and dense terms are the published MAC counts x 2
FLOPS = {"resnet18": (3.60e9, 3.66e9), "vgg16": (30.9e9, 31.0e9), "resnet20": (8.1e7, 8.4e7),
         "mobilenet_v1": (1.13e9, 1.17e9), "r3d_18": (81.3e9, 81.6e9)}  # r3d_18: torchvision's 40.70 GMACs


def test_flops_per_layer_and_in_total():
    from funcnn.describe import total_flops

    table = fn.summary(models.lenet5(10).init, (1, 32, 32, 1), print_table=False)
    conv1 = 2 * 28 * 28 * 6 * 25 + 28 * 28 * 6  # multiply-adds of a 5x5x1 window per output, plus the bias
    first = table.splitlines()[3]
    assert first.split()[0] == "0_Conv" and first.endswith(f"{conv1 / 1e3:.2f}k")  # the params key, as --paths
    dense = 2 * 400 * 120 + 120
    assert total_flops(models.lenet5(10).init, (1, 32, 32, 1)) == (
        conv1 + 28 * 28 * 6 + 14 * 14 * 6 * 4 + 2 * 10 * 10 * 16 * 150 + 10 * 10 * 16 + 10 * 10 * 16
        + 5 * 5 * 16 * 4 + dense + 120 + 2 * 120 * 84 + 84 + 84 + 2 * 84 * 10 + 10)
    assert "Forward FLOPs per example: 852,370" in table
    for name, (low, high) in FLOPS.items():
        assert low <= total_flops(models.get(name)().init, (1, *models.INPUT_SHAPES[name])) <= high, name
    # per example: the batch size does not change it
    assert total_flops(models.lenet5(10).init, (8, 32, 32, 1)) == total_flops(models.lenet5(10).init, (1, 32, 32, 1))


def test_summary_has_no_phantom_rows_and_paths_name_every_conv():
    from funcnn.describe import conv_paths, paths_table

    table = fn.summary(fn.layers.serial(fn.layers.DepthwiseConv(3, padding="SAME"), fn.layers.Relu()).init,
                       (1, 8, 8, 4), print_table=False)
    assert [line.split()[0] for line in table.splitlines()[2:5]] == ["serial", "0_DepthwiseConv", "1_Relu"]
    lenet = fn.summary(models.lenet5(10).init, (1, 32, 32, 1), print_table=False)
    convs = {line.split()[0] for line in lenet.splitlines() if line.split() and line.split()[0].endswith("_Conv")}
    assert convs == {c.label for c in conv_paths(models.lenet5(10), (2, 32, 32, 1))} == {"0_Conv", "3_Conv"}
    tic = fn.summary(fn.layers.TransformInvariantConv(4, 3).init, (1, 8, 8, 1), print_table=False)
    assert "  Conv" not in tic
    choices = conv_paths(models.resnet20(10), (2, 32, 32, 3), cpu_engine="eigen")  # XLA's paths
    assert len({c.label for c in choices}) == 21  # the stem, 18 3x3 convolutions in 9 blocks, 2 projections
    assert {c.role for c in choices} == {"forward", "dX", "dW"}
    stem = [c for c in choices if c.label == "0_Conv"]
    # read from the traced gradient: the stem's dX is never computed (the image is not differentiated)
    assert [(c.role, c.path) for c in stem] == [("forward", "banded"), ("dW", "batch_chunks")]
    assert "6_BasicBlock/0_BasicBlock/1_parallel/1_projection/0_Conv" in paths_table(models.resnet20(10),
                                                                                      (2, 32, 32, 3),
                                                                                      print_table=False)


def test_volume_models_take_their_rank_from_the_input():
    """R3D-18's stem is (3, 7, 7) with stride (1, 2, 2); its stages stride time and space alike; clip_cnn is the same
    layers on clips and on frames."""
    table = fn.summary(models.r3d_18().init, (1, 16, 112, 112, 3), print_table=False)
    assert table.splitlines()[2].split()[:3] == ["r3d_18", "(1,", "400)"]
    assert "(1, 16, 56, 56, 64)" in table and "(1, 2, 7, 7, 512)" in table
    clip = models.clip_cnn(4)
    for clip_shape, count in [((3, 8, 16, 16, 1), 17_684), ((3, 16, 16, 1), 6_020)]:
        out, params, state = clip.init(jax.random.PRNGKey(0), clip_shape)
        assert out == (3, 4) and fn.count_params(params) == count
        y, _ = clip.apply(params, state, jnp.ones(clip_shape))
        assert y.shape == (3, 4) and bool(jnp.all(jnp.isfinite(y)))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'lenet6'; known models: alexnet"):
        models.get("lenet6")


def _train_a_few_steps(model, input_shape, steps=3, batch=4, classes=10):
    init, apply = model
    out_shape, params, state = init(jax.random.PRNGKey(0), (batch, *input_shape))
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, *input_shape))
    labels = jnp.arange(batch) % classes
    opt = optax.sgd(1e-3, momentum=0.9)
    opt_state = opt.init(params)

    def loss_fn(params, state, rng):
        out, state = apply(params, state, x, train=True, rng=rng)
        logits = out[0] if isinstance(out, tuple) else out
        loss = fn.softmax_cross_entropy(logits, labels).mean()
        if isinstance(out, tuple):
            loss = loss + jnp.mean((out[1] - 0.5) ** 2)
        return loss, state

    @jax.jit
    def step(params, state, opt_state, rng):
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, rng)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    losses = []
    for i in range(steps):
        params, state, opt_state, loss = step(params, state, opt_state, jax.random.PRNGKey(10 + i))
        losses.append(float(loss))
    assert all(np.isfinite(losses)), losses
    leaves = jax.tree_util.tree_leaves(params)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)
    return losses


@pytest.mark.parametrize("name, kwargs, input_shape", [
    ("lenet5", {}, (32, 32, 1)),
    ("resnet20", {}, (32, 32, 3)),
    ("all_conv", {}, (32, 32, 3)),
    ("mobilenet_v1", dict(width=0.25), (96, 96, 3)),
    ("localizer", {}, (64, 64, 1)),
])
def test_small_models_train_without_nan(name, kwargs, input_shape):
    losses = _train_a_few_steps(models.get(name)(10, **kwargs), input_shape)
    if name == "lenet5":
        assert losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet18"])
def test_large_models_train_without_nan(name):
    _train_a_few_steps(models.get(name)(10), models.INPUT_SHAPES[name], steps=2, batch=2)
