"""funcnn export: a trained model's inference function as a jax.export artifact that JAX alone loads and runs."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as fn
from funcnn import cli, deploy, models, train

LOADER = """
import sys
import numpy as np
from jax import export
model = export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(model.call(x)))
assert "funcnn" not in sys.modules, "the artifact needs no funcnn"
print(",".join(model.platforms))
"""


def _load_in_a_fresh_process(tmp_path, artifact, x):
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "load.py").write_text(LOADER)
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "load.py"), str(artifact), str(tmp_path / "x.npy"),
                             str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return np.load(tmp_path / "y.npy"), result.stdout.strip()


def test_cli_export_of_a_trained_run_runs_without_funcnn(tmp_path):
    run = train.run(out=str(tmp_path / "run"), epochs=1, progress=False, plots=False, log=lambda line: None)
    artifact = tmp_path / "lenet5.jaxexport"
    assert cli.main(["export", "--model", "lenet5", "--params", str(run.out_dir / "params.npz"), "--out",
                     str(artifact), "--platform", "cpu", "--platform", "cuda"]) == 0
    x = np.asarray(fn.data.digits().test.x[:7], np.float32)
    logits, platforms = _load_in_a_fresh_process(tmp_path, artifact, x)
    saved = fn.load(run.out_dir / "params.npz")
    model = models.lenet5(10)
    expected = model.apply(saved["params"], saved["state"], jnp.asarray(x))[0]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(logits.argmax(-1), train.predict(model.apply, saved["params"], saved["state"], x))
    assert platforms == "cpu,cuda"


def test_export_keeps_the_batch_symbolic_and_batchnorm_in_evaluation(tmp_path):
    model = models.resnet20(10)
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 3))
    state = jax.tree.map(lambda a: a + 0.5, state)  # running statistics that differ from a batch's
    exported = fn.export(model.apply, params, state, (32, 32, 3))
    deploy.write(exported, tmp_path / "r.jaxexport")
    again = deploy.read(tmp_path / "r.jaxexport")
    for batch in (1, 5):
        x = jnp.asarray(np.random.default_rng(batch).normal(size=(batch, 32, 32, 3)), jnp.float32)
        np.testing.assert_allclose(again.call(x), model.apply(params, state, x, train=False)[0], rtol=1e-5,
                                   atol=1e-5)


def test_bad_export_arguments(tmp_path, capsys):
    model = models.lenet5(10)
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    with pytest.raises(ValueError, match=r"platforms must be among cpu, cuda, rocm, tpu, got \['gpu'\]"):
        fn.export(model.apply, params, state, (32, 32, 1), platforms=["gpu"])
    with pytest.raises(ValueError, match=r"input_shape is one example's shape"):
        fn.export(model.apply, params, state, (32, 0, 1))
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    assert cli.main(["export", "--model", "resnet20", "--params", str(tmp_path / "p.npz"), "--out", "x"]) == 2
    assert "does not hold resnet20's parameters" in capsys.readouterr().err
    assert cli.main(["export", "--model", "lenet5", "--params", str(tmp_path / "none.npz"), "--out", "x"]) == 2
    assert "--params: funcnn.load: no such file" in capsys.readouterr().err
    assert cli.main(["export", "--model", "lenet5", "--params", str(tmp_path / "p.npz"), "--out", "x",
                     "--input-shape", "32", "32"]) == 2
    assert "--input-shape: input_shape must be 3 positive integers for lenet5" in capsys.readouterr().err
    assert cli.main(["export", "--model", "lenet5", "--params", str(tmp_path / "p.npz"), "--out", str(tmp_path)]) == 2
    assert "--out: " in capsys.readouterr().err


def test_export_saved_is_what_the_command_does_without_the_command(tmp_path):
    """The library function behind `funcnn export`: load, check against the model's tree, export, write."""
    model = models.lenet5(7)  # the classes come from the file
    _, params, state = model.init(jax.random.PRNGKey(3), (1, 32, 32, 1))
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    report = deploy.export_saved("lenet5", tmp_path / "p.npz", tmp_path / "m.jaxexport", platforms=("cpu", "tpu"))
    assert report == deploy.SavedExport(str(tmp_path / "m.jaxexport"), "lenet5", fn.count_params(params),
                                        (32, 32, 1), ("cpu", "tpu"))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 32, 32, 1)), jnp.float32)
    logits = deploy.read(report.path).call(x)
    assert logits.shape == (3, 7)
    np.testing.assert_allclose(logits, model.apply(params, state, x, train=False)[0], rtol=1e-5, atol=1e-5)


def test_export_saved_names_the_argument_it_refuses(tmp_path):
    model = models.lenet5(10)
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    fn.save(tmp_path / "other.npz", {"weights": params})
    good = dict(model="lenet5", params_file=tmp_path / "p.npz", out=tmp_path / "m.jaxexport")
    cases = [
        (dict(model="lenet6"), "model", "unknown model 'lenet6'"),
        (dict(params_file=tmp_path / "other.npz"), "params", r"does not hold \{'params', 'state'\}"),
        (dict(model="resnet20"), "params", "does not hold resnet20's parameters"),
        (dict(input_shape=(32, 32)), "input_shape", r"must be 3 positive integers for lenet5"),
        (dict(input_shape=(32, 0, 1)), "input_shape", r"must be 3 positive integers"),
        (dict(input_shape=(4, 4, 1)), "input_shape", r"input_shape \(4, 4, 1\) does not fit lenet5"),
        (dict(platforms=("gpu",)), "platforms", r"platforms must be among cpu, cuda, rocm, tpu"),
        (dict(out=tmp_path), "out", "is a directory"),
        (dict(format="tflite"), "format", r"format must be one of jax, onnx, got 'tflite'"),
        (dict(format="onnx", platforms=("cpu",)), "platforms", r"an ONNX model is not lowered for a platform"),
    ]
    for change, argument, message in cases:
        with pytest.raises(deploy.ExportArgumentError, match=message) as caught:
            deploy.export_saved(**{**good, **change})
        assert caught.value.argument == argument, (change, caught.value.argument)
    with pytest.raises(FileNotFoundError, match="no such file"):
        deploy.export_saved(**{**good, "params_file": tmp_path / "none.npz"})
    assert not (tmp_path / "m.jaxexport").exists()  # nothing half-written by any refused call
