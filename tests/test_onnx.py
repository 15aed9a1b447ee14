"""ONNX export through jax2onnx (the `onnx` extra): the zoo's LeNet-5, ResNet-20 and MobileNet-v1 run in onnxruntime
with funcnn's logits, the batch symbolic; funcnn's max-pool lowering against funcnn's max pool; the command; the
error naming the extra when jax2onnx is missing."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import cli, deploy, models

pytest.importorskip("jax2onnx", reason="jax2onnx is not installed: pip install 'funcnn[onnx]' (CI's newest leg has it)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'funcnn[onnx]'")


def _run(model_proto, x):
    session = ort.InferenceSession(model_proto.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: np.asarray(x, np.float32)})[0]


@pytest.mark.parametrize("name, classes, shape", [("lenet5", 10, None), ("resnet20", 10, None),
                                                  ("mobilenet_v1", 1000, (96, 96, 3))])
def test_zoo_models_run_in_onnxruntime_with_funcnn_logits(name, classes, shape):
    network = models.get(name)(classes)
    shape = shape or models.INPUT_SHAPES[name]
    _, params, state = network.init(jax.random.PRNGKey(0), (2, *shape))
    state = jax.tree.map(lambda a: a + 0.25, state)  # running statistics unlike a batch's: evaluation mode shows
    model = deploy.export_onnx(network.apply, params, state, shape)
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["logits"]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value, "the batch is symbolic"
    ops = {node.op_type for node in model.graph.node}
    assert "Conv" in ops and not any(n.domain and n.domain != "ai.onnx" for n in model.graph.node)
    for n in (1, 3):
        x = np.random.default_rng(n).normal(size=(n, *shape)).astype(np.float32)
        want = network.apply(params, state, jnp.asarray(x), train=False)[0]
        np.testing.assert_allclose(_run(model, x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pool, window, options, shape", [
    (fn.max_pool1d, 3, dict(stride=2, padding=1), (2, 9, 3)),
    (fn.max_pool2d, 2, {}, (2, 8, 8, 3)),
    (fn.max_pool2d, 3, dict(stride=2, padding=1, ceil_mode=True), (2, 7, 8, 3)),
    (fn.max_pool2d, (3, 2), dict(stride=(1, 2), padding=((1, 0), (0, 1))), (1, 6, 7, 2)),
    (fn.max_pool3d, 2, dict(stride=2, padding=1), (1, 4, 5, 6, 2)),
])
def test_funcnn_max_pool_lowering_is_funcnn_max_pool(pool, window, options, shape):
    """jax2onnx's own lowering of lax's max pool over (N, *spatial, C) gives a MaxPool onnxruntime refuses; funcnn's
    plugin (funcnn.onnx_ops) transposes to channels first. Negative inputs make the -inf padding matter."""
    from jax2onnx import to_onnx

    from funcnn import onnx_ops

    x = np.random.default_rng(0).normal(size=shape).astype(np.float32) - 3.0
    f = fn.as_lax(lambda x: pool(x, window, **options), keep=onnx_ops.KEPT)
    model = to_onnx(f, [("B", *shape[1:])])
    assert [n.op_type for n in model.graph.node] == ["Transpose", "MaxPool", "Transpose"]
    np.testing.assert_array_equal(_run(model, x), pool(jnp.asarray(x), window, **options))


def test_export_command_writes_onnx_and_refuses_what_onnx_has_not(tmp_path, capsys):
    network = models.lenet5(10)
    _, params, state = network.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    out = tmp_path / "lenet5.onnx"
    args = ["export", "--model", "lenet5", "--params", str(tmp_path / "p.npz"), "--out", str(out)]
    assert cli.main([*args, "--format", "onnx"]) == 0
    assert "to " + str(out) in capsys.readouterr().out
    x = np.asarray(fn.data.digits().test.x[:5], np.float32)
    loader = ("import sys, numpy as np, onnxruntime as ort\n"
              "s = ort.InferenceSession(sys.argv[1])\n"
              "np.save(sys.argv[3], s.run(None, {'images': np.load(sys.argv[2])})[0])\n"
              "assert 'funcnn' not in sys.modules and 'jax' not in sys.modules\n")
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, "-I", "-c", loader, str(out), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), network.apply(params, state, x, train=False)[0],
                               rtol=1e-4, atol=1e-4)
    before = out.read_bytes()
    assert cli.main([*args, "--format", "onnx", "--platform", "cuda"]) == 2
    assert "--platform: an ONNX model is not lowered for a platform" in capsys.readouterr().err
    assert cli.main([*args, "--format", "onnx", "--input-shape", "4", "4", "1"]) == 2
    assert "--input-shape: " in capsys.readouterr().err
    assert out.read_bytes() == before  # a refused export leaves the earlier file as it was


def test_a_missing_jax2onnx_is_named_with_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import jax2onnx now raises ImportError
    network = models.lenet5(10)
    _, params, state = network.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    with pytest.raises(ImportError, match=r"needs jax2onnx .*pip install 'funcnn\[onnx\]'"):
        deploy.export_onnx(network.apply, params, state, (32, 32, 1))
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    assert cli.main(["export", "--model", "lenet5", "--params", str(tmp_path / "p.npz"), "--out",
                     str(tmp_path / "m.onnx"), "--format", "onnx"]) == 2
    assert "--format onnx: funcnn.deploy.export_onnx needs jax2onnx" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_a_model_jax2onnx_cannot_convert_is_named_and_nothing_is_written(tmp_path, capsys):
    network = models.get("clip_cnn")(4)  # 3-D convolutions: jax2onnx 0.17 converts 2-D ones only
    shape = models.INPUT_SHAPES["clip_cnn"]
    _, params, state = network.init(jax.random.PRNGKey(0), (1, *shape))
    with pytest.raises(NotImplementedError, match="export_onnx: jax2onnx cannot convert this model: .*not 3-D"):
        deploy.export_onnx(network.apply, params, state, shape)
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    assert cli.main(["export", "--model", "clip_cnn", "--params", str(tmp_path / "p.npz"), "--out",
                     str(tmp_path / "m.onnx"), "--format", "onnx"]) == 2
    assert "--format: clip_cnn cannot go to onnx: " in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_bad_onnx_arguments_are_named():
    network = models.lenet5(10)
    _, params, state = network.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    with pytest.raises(ValueError, match=r"export_onnx: batch is a positive int or None \(symbolic\), got 0"):
        deploy.export_onnx(network.apply, params, state, (32, 32, 1), batch=0)
    with pytest.raises(ValueError, match=r"export_onnx: input_shape is one example's shape"):
        deploy.export_onnx(network.apply, params, state, (32, 0, 1))
    fixed = deploy.export_onnx(network.apply, params, state, (32, 32, 1), batch=4)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
