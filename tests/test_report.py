import json

import numpy as np
import pytest

from funcnn import report


def test_parser_sizes_follow_quick_unless_given():
    parser = report.experiment_parser("doc", "demo", epochs=(1, 10), lr=(0.5, 0.1))
    quick, full, given = parser.parse_args(["--quick"]), parser.parse_args([]), parser.parse_args(["--epochs", "3"])
    assert (quick.epochs, quick.lr, quick.out) == (1, 0.5, "runs/demo")
    assert (full.epochs, full.lr, full.seed) == (10, 0.1, 0)
    assert given.epochs == 3 and isinstance(given.epochs, int)
    assert parser.parse_args(["--quick", "--epochs", "4", "--out", "x"]).epochs == 4


def test_markdown_table_formats_and_aligns():
    table = report.markdown_table([{"name": "a", "n": 1234, "acc": 0.5, "tiny": 1e-9, "ok": True}])
    header, rule, row = table.splitlines()
    assert header == "| name | n | acc | tiny | ok |"
    assert rule == "|---|---:|---:|---:|---|"
    assert row == "| a | 1,234 | 0.5000 | 1.000e-09 | yes |"


def test_markdown_table_rejects_missing_columns():
    with pytest.raises(ValueError, match="missing"):
        report.markdown_table([{"a": 1}, {"b": 2}])
    with pytest.raises(ValueError, match="no rows"):
        report.markdown_table([])


def test_write_results_writes_markdown_and_json(tmp_path, capsys):
    rows = [{"method": "x", "accuracy": np.float32(0.75)}]
    report.write_results(tmp_path / "r", rows, title="T", settings={"epochs": 2}, notes=["a note"],
                         extra={"curve": np.arange(3)})
    text = (tmp_path / "r" / "results.md").read_text()
    assert text.startswith("# T\n") and "epochs = 2" in text and "- a note" in text and "| x |" in text
    payload = json.loads((tmp_path / "r" / "results.json").read_text())
    assert payload["rows"][0]["accuracy"] == 0.75 and payload["curve"] == [0, 1, 2]
    assert "# T" in capsys.readouterr().out


def test_median_seconds_times_and_waits():
    import time

    calls = []
    seconds = report.median_seconds(lambda: calls.append(time.sleep(0.01)), repeats=3, warmup=2)
    assert len(calls) == 5 and 0.009 < seconds < 0.5
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        report.median_seconds(lambda: None, repeats=0)


def test_environment_names_the_machine_and_only_installed_versions():
    from funcnn import report

    env = report.environment(("jax", "no_such_module_xyz"))
    assert env["machine"] == report.machine() and "cores" in env["machine"]
    assert list(env["versions"]) == ["jax"]  # a module that does not import is left out
    import jax

    assert report.environment_line(env) == f"{env['machine']}; jax {jax.__version__}"
