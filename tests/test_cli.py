"""The funcnn command: the main job end to end (short), run directories that never mix, kill and resume, help and
version, summary and gradcheck. One-line errors for bad arguments are in tests/test_bad_input.py."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from funcnn import catalog, cli
from funcnn.train import pipeline


def _run(*args, cwd=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "funcnn", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def _epochs(run_dir):
    return [json.loads(r)["epoch"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_every_output_and_reports_test_accuracy(tmp_path):
    out = tmp_path / "run"
    result = _run("train", "--epochs", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert "compiling the training step" in result.stdout  # said before the first step, not inside its timing
    expected = {"config.json", "metrics.jsonl", "checkpoint.npz", "best.npz", "params.npz", "results.json",
                "curves.png", "filters.png", "feature_maps.png", "confusion.png"}
    assert expected <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["test_accuracy"] > 0.8
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 2 and config["model"] == "lenet5"
    # --resume with more epochs continues from the checkpoint
    again = _run("train", "--epochs", "3", "--out", str(out), "--no-progress", "--resume", "--no-plots")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    assert _epochs(out) == [1, 2, 3]
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["images_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_default_job_reaches_95_percent(tmp_path):
    result = _run("train", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "runs" / "lenet5-digits" / "results.json").read_text())
    assert results["test_accuracy"] >= 0.95 and results["train_seconds"] < 180


def test_two_runs_never_mix(tmp_path, monkeypatch, capsys):
    """Without --out each run gets a new directory; an --out that holds a run is refused without --overwrite, and
    nothing in it changes; --overwrite replaces it."""
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert cli.main(["train", "--epochs", "1", "--no-progress", "--no-plots"]) == 0
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["lenet5-digits", "lenet5-digits-2"]
    assert _epochs(runs / "lenet5-digits") == [1] and _epochs(runs / "lenet5-digits-2") == [1]
    first = runs / "lenet5-digits"
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    capsys.readouterr()
    assert cli.main(["train", "--epochs", "2", "--out", str(first), "--no-progress"]) == 2
    assert "already holds a run; pass --overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before  # untouched
    (first / "notes.txt").write_text("mine")
    assert cli.main(["train", "--epochs", "2", "--out", str(first), "--overwrite", "--no-progress",
                     "--no-plots"]) == 0
    assert _epochs(first) == [1, 2] and (first / "notes.txt").read_text() == "mine"
    assert json.loads((first / "config.json").read_text())["epochs"] == 2
    # --resume without --out continues the newest run of that model and data set
    assert cli.main(["train", "--epochs", "2", "--resume", "--no-progress", "--no-plots"]) == 0
    assert _epochs(runs / "lenet5-digits-2") == [1, 2]


def test_killed_halfway_then_resumed(tmp_path):
    """SIGKILL during training: the last complete checkpoint survives, and --resume finishes the run with every
    epoch logged once."""
    out = tmp_path / "k"
    process = subprocess.Popen([sys.executable, "-m", "funcnn", "train", "--epochs", "8", "--checkpoint-every", "5",
                                "--out", str(out), "--no-progress", "--no-plots"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "metrics.jsonl").exists() and len(_epochs(out)) >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert (out / "checkpoint.npz").exists()
    done = len(_epochs(out))
    assert 2 <= done < 8, "the run was not killed halfway"
    again = _run("train", "--epochs", "8", "--checkpoint-every", "5", "--out", str(out), "--resume", "--no-progress",
                 "--no-plots")
    assert again.returncode == 0, again.stderr
    assert _epochs(out) == list(range(1, 9))
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 8


def test_help_is_fast_complete_and_shows_defaults():
    started = time.perf_counter()
    probe = ("import sys, funcnn.cli\ntry:\n    funcnn.cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
             "print('jax' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert seconds < 1.0, f"--help took {seconds:.2f} s"
    assert result.stdout.strip().endswith("False")  # JAX was not imported
    text = result.stdout
    parser = cli.build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        for option in action.option_strings:
            assert option in text, option
        if action.help and action.default not in (None, False, [], "==SUPPRESS==") and action.dest != "help":
            assert f"(default: {action.default})" in " ".join(text.split()), action.dest
    for name in catalog.MODELS:
        assert name in text
    version = subprocess.run([sys.executable, "-m", "funcnn", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip().startswith("funcnn 0.")
    for command, option in (("gradcheck", "--primitive"), ("summary", "--paths")):
        sub = subprocess.run([sys.executable, "-m", "funcnn", command, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0 and option in sub.stdout and "(default:" in sub.stdout


def test_every_registry_is_the_catalogs_table():
    """One table per kind of name (funcnn.catalog), every registry derived from it: the same names, each resolving
    to a real function (a constructor whose model builds at its input shape, a loader, a recipe, ...)."""
    import jax

    import funcnn.primitives as P
    from funcnn import data, interop, layers, models, train
    from funcnn.train import pipeline, precision

    assert list(models.MODELS) == list(catalog.MODELS) and list(models.INPUT_SHAPES) == list(catalog.MODELS)
    for name, spec in catalog.MODELS.items():
        init, _ = models.MODELS[name](**({"num_classes": 3} if name != "localizer" else {}))
        jax.eval_shape(lambda r: init(r, (1, *spec.input_shape)), jax.random.PRNGKey(0))
        if spec.torch_keys:
            assert name in interop.MODELS and callable(models.resolve(spec.torch_keys))
    assert set(interop.MODELS) == {"lenet5", "alexnet", "vgg16", "resnet18", "resnet20", "r3d_18"}
    assert list(data.LOADERS) == list(catalog.DATASETS) and list(train.RECIPES) == list(catalog.OPTIMIZERS)
    assert precision.Policy.PRESETS is catalog.PRECISIONS and pipeline.PRECISIONS == tuple(catalog.PRECISIONS)
    assert pipeline.RUN_FILES == tuple(catalog.RUN_FILES) and set(catalog.RUN_MARKERS) <= set(catalog.RUN_FILES)
    assert P.__all__ == list(catalog.PRIMITIVES) and all(callable(getattr(P, n)) for n in catalog.PRIMITIVES)
    for name in catalog.RUN_FILES:
        assert name in cli.OUTPUTS
    assert callable(layers.walk)


def test_summary_and_gradcheck_subcommands(capsys, monkeypatch):
    assert cli.main(["summary", "--model", "lenet5", "--paths", "--cpu-engine", "eigen"]) == 0
    out = capsys.readouterr().out
    assert "Total parameters: 61,706" in out and "Convolution paths / engines on cpu, batch 128" in out
    assert "0_Conv" in out and "banded / matmul" in out
    from funcnn.primitives.conv.paths import onednn

    if onednn.available():  # the default where the engine is built: every LeNet-5 rule in oneDNN
        assert cli.main(["summary", "--model", "lenet5", "--paths"]) == 0
        out = capsys.readouterr().out
        assert "cpu_engine='onednn'" in out and "onednn / oneDNN" in out and "banded" not in out
    assert cli.main(["summary", "--model", "resnet20", "--paths", "--cpu-engine", "xla", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "batch 16, cpu_engine='xla'" in out and "canonical / YNNPACK" in out
    assert "canonical / Eigen" in out  # the 16-channel layers: YNNPACK takes more than 16 features only
    assert cli.main(["summary", "--model", "lenet5", "--paths", "--batch-size", "0"]) == 2
    assert cli.main(["summary", "--model", "r3d_18", "--input-shape", "8", "32", "32", "3"]) == 0  # the model's rank
    assert "Input shape: (1, 8, 32, 32, 3)" in capsys.readouterr().out
    result = _run("gradcheck", "--primitive", "relu", "--no-progress")
    assert result.returncode == 0 and "relu" in result.stdout and "all passed" in result.stdout
    assert cli.main(["gradcheck", "--list"]) == 0 and "conv2d" in capsys.readouterr().out.split()
    # a failing rule exits 1
    import jax

    from funcnn.primitives import cases as registry

    @jax.custom_vjp
    def double(x):
        return 2 * x

    double.defvjp(lambda x: (2 * x, None), lambda _, g: (3 * g,))
    monkeypatch.setattr(registry, "_EXTENSIONS", [])
    registry.register_cases("double")(lambda make, ref: iter([make.case("double", "wrong", double, lambda x: 2 * x,
                                                                        make.normal(3))]))
    assert cli.main(["gradcheck", "--primitive", "double", "--no-progress"]) == 1
    assert "FAILED double wrong" in capsys.readouterr().out


def test_console_script_is_installed():
    import shutil

    script = shutil.which("funcnn", path=os.path.dirname(sys.executable))
    assert script is not None
    assert subprocess.run([script, "--help"], capture_output=True, text=True).returncode == 0


def test_parse_sweep():
    assert pipeline.parse_sweep(["lr=1e-3,3e-3", "wd=0"], None) == (2, {"learning_rate": [1e-3, 3e-3],
                                                                        "weight_decay": [0.0]})
    assert pipeline.parse_sweep([], 4) == (4, {})
    assert pipeline.parse_sweep([], None) == (1, {})
    for items, replicas, message in [(["lr=1,2", "wd=1,2,3"], None, "different lengths"),
                                     (["lr=1,2"], 3, "--replicas 3 but --sweep gives 2"),
                                     (["wd=-1"], None, "wd values must be finite and >= 0")]:
        with pytest.raises(pipeline.RunError, match=message):
            pipeline.parse_sweep(items, replicas)


def test_run_from_python_with_the_same_options(tmp_path):
    from funcnn import train

    result = train.run(out=str(tmp_path / "py"), epochs=1, progress=False, plots=False, log=lambda line: None)
    assert result.out_dir == tmp_path / "py" and result.results["epochs_run"] == 1
    with pytest.raises(train.RunError, match="already holds a run"):
        train.run(out=str(tmp_path / "py"), epochs=1, progress=False)


def test_train_with_a_sweep_writes_every_replica(tmp_path):
    result = _run("train", "--epochs", "1", "--sweep", "lr=1e-3,1e-2", "--out", str(tmp_path / "s"),
                  "--no-progress", "--no-plots")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [r["learning_rate"] for r in results["replicas"]] == [1e-3, 1e-2]
    assert [r["seed"] for r in results["replicas"]] == [0, 0]
    for r in range(2):
        assert (tmp_path / "s" / f"replica_{r}" / "params.npz").exists()
    assert "2 replicas trained" in result.stdout


def test_train_in_bfloat16(tmp_path):
    result = _run("train", "--epochs", "1", "--precision", "bfloat16", "--out", str(tmp_path / "b"), "--no-progress",
                  "--no-plots")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "b" / "results.json").read_text())["test_accuracy"] > 0.5


def test_a_resumed_run_takes_its_settings_from_config_json(tmp_path):
    """Resume as Keras and Lightning users expect: the run's own settings, a run-defining option that differs is
    refused naming the run, an extendable one is an override said in one line, and config.json records it."""
    from funcnn import train

    out, lines = str(tmp_path / "r"), []
    quiet = dict(out=out, progress=False, plots=False, log=lines.append)
    train.run(epochs=1, lr=3e-3, batch_size=64, **quiet)
    for wrong, message in (({"model": "resnet20"}, r"is lenet5 on digits with --model lenet5; --model resnet20"),
                           ({"lr": 0.1}, r"--lr 0.003; --lr 0.1 would make it another run"),
                           ({"batch_size": 16}, r"--batch-size 64; --batch-size 16")):
        with pytest.raises(train.RunError, match=message):
            train.run(resume=True, **wrong, **quiet)
    # a finished run: nothing to train, so no file changes and the error says what the run holds (before, it
    # re-evaluated, rewrote results.json's train_seconds and, with --epochs 1 of a longer run, config.json's epochs)
    files = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    with pytest.raises(train.RunError, match=r"has finished 1 epoch \(step \d+\), test accuracy 0\.\d{4} "
                                             r"\(results.json\); --epochs 1 trains nothing more, so nothing was changed"):
        train.run(resume=True, **quiet)  # no option given: the run's epochs (1)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()} == files
    lines.clear()
    longer = train.run(resume=True, epochs=2, **quiet)
    assert longer.results["epochs_run"] == 2 and _epochs(tmp_path / "r") == [1, 2]
    assert "resuming from epoch 2, step" in lines[0] and "overriding --epochs 1 -> 2" in lines[0]
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["epochs"] == 2 and record["lr"] == 3e-3 and record["batch_size"] == 64
    assert len(record["resumed"]) == 1 and "overriding --epochs 1 -> 2" in record["resumed"][-1]
    with pytest.raises(train.RunError, match=r"has finished 2 epochs .*--epochs 1 trains nothing more"):
        train.run(resume=True, epochs=1, **quiet)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["epochs"] == 2
    (tmp_path / "r" / "config.json").write_text("[1, 2")
    with pytest.raises(train.RunError, match=r"config.json is not a readable run configuration"):
        train.run(resume=True, **quiet)


def test_help_says_each_default_once():
    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            text = formatter._expand_help(action) if action.help else ""
            assert text.count("default") <= 1, (name, action.dest, text)
            if action.default is not None and action.default is not False and action.default not in ([], "==SUPPRESS=="):
                assert "default" in text, (name, action.dest, text)  # 0 and 0.0 too


def test_the_sweep_summary_counts_in_words(capsys):
    from funcnn.verify import sweep

    assert sweep.run_sweep(["global_avg_pool1d"], progress=False)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("1 configuration of 1 primitive (the bounded set") and "all passed" in last, last


@pytest.mark.parametrize("variable, value, message", [
    ("FUNCNN_CPU_ENGINE", "bogus", "FUNCNN_CPU_ENGINE must be one of onednn, eigen, xla, ynn-dots, got 'bogus'"),
    ("FUNCNN_ONEDNN_THREADS", "-1", "FUNCNN_ONEDNN_THREADS must be a whole number of threads"),
])
def test_a_misspelt_engine_variable_is_named_before_any_work(tmp_path, variable, value, message):
    """Not reported as data that "does not fit the model" after the data loaded: the variable, at the start."""
    done = subprocess.run([sys.executable, "-m", "funcnn", "train", "--epochs", "1", "--out", str(tmp_path / "run"),
                           "--no-plots", "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, variable: value})
    assert done.returncode == 2 and f"funcnn: error: environment: {message}" in done.stderr, done.stderr
    assert "does not fit" not in done.stderr and not (tmp_path / "run").exists()
