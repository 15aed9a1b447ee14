"""The funcnn command: the main job end to end (short), one-line errors, summary, gradcheck, python -m funcnn."""

import json
import os
import subprocess
import sys

import pytest

from funcnn import cli


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "funcnn", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900)


def test_train_writes_every_output_and_reports_test_accuracy(tmp_path):
    out = tmp_path / "run"
    result = _run("train", "--epochs", "2", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    expected = {"config.json", "metrics.jsonl", "checkpoint.npz", "best.npz", "params.npz", "results.json",
                "curves.png", "filters.png", "feature_maps.png", "confusion.png"}
    assert expected <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["test_accuracy"] > 0.8
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # --resume with more epochs continues from the checkpoint
    again = _run("train", "--epochs", "3", "--out", str(out), "--no-progress", "--resume", "--no-plots")
    assert again.returncode == 0, again.stderr
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.slow
def test_default_job_reaches_95_percent(tmp_path):
    result = _run("train", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "runs" / "lenet5-digits" / "results.json").read_text())
    assert results["test_accuracy"] >= 0.95 and results["train_seconds"] < 180


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "lenet6"], "unknown model 'lenet6'; known models: alexnet"),
    (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'; known datasets: cifar10"),
    (["train", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
    (["train", "--dataset", "mnist", "--data-dir", "/definitely/not/here"], "data directory does not exist"),
    (["summary", "--model", "nope"], "unknown model 'nope'"),
])
def test_bad_arguments_give_one_line_errors(args, message, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("funcnn: error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_data_files_and_unwritable_output(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "missing data file" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli.main(["train", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and len(err.strip().splitlines()) == 1


def test_summary_and_gradcheck_subcommands():
    result = _run("summary", "--model", "lenet5")
    assert result.returncode == 0 and "Total parameters: 61,706" in result.stdout
    result = _run("gradcheck", "--primitive", "relu")
    assert result.returncode == 0 and "relu" in result.stdout


def test_console_script_is_installed():
    import shutil

    script = shutil.which("funcnn", path=os.path.dirname(sys.executable))
    assert script is not None
    assert subprocess.run([script, "--help"], capture_output=True, text=True).returncode == 0


def test_parse_sweep():
    assert cli.parse_sweep(["lr=1e-3,3e-3", "wd=0"], None) == (2, {"learning_rate": [1e-3, 3e-3],
                                                                   "weight_decay": [0.0]})
    assert cli.parse_sweep([], 4) == (4, {})
    assert cli.parse_sweep([], None) == (1, {})
    for items, replicas, message in [(["momentum=0.9"], None, "NAME one of lr, wd"),
                                     (["lr=a,b"], None, "must be numbers"),
                                     (["lr=1,2", "wd=1,2,3"], None, "different lengths"),
                                     (["lr=1,2"], 3, "--replicas 3 but --sweep gives 2"),
                                     ([], 0, "--replicas must be >= 1")]:
        with pytest.raises(cli.CliError, match=message):
            cli.parse_sweep(items, replicas)


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
    bad = _run("train", "--replicas", "2", "--resume", "--out", str(tmp_path / "t"))
    assert bad.returncode == 2 and "do not combine" in bad.stderr


def test_train_in_bfloat16(tmp_path):
    result = _run("train", "--epochs", "1", "--precision", "bfloat16", "--out", str(tmp_path / "b"), "--no-progress",
                  "--no-plots")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "b" / "results.json").read_text())["test_accuracy"] > 0.5
