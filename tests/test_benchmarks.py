"""The benchmark scripts run end to end in a bounded form, so the README's commands do not rot.

They time nothing meaningful here (a few calls at a reduced batch); what is checked is that every case runs, that
funcnn and JAX's autodiff agree on every case (primitives.py asserts it before timing), and that the JSON files
hold what the README's tables are made from.
"""

import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


def _run(args):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_primitives_benchmark_every_case(tmp_path):
    out = tmp_path / "primitives.json"
    stdout = _run([str(BENCH / "primitives.py"), "--quick", "--rounds", "1", "--calls", "1", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    names = {r["case"] for r in rows}
    for expected in ("max pool", "avg pool", "depth-wise", "transposed", "LeNet conv1", "ResNet"):
        assert any(expected in name for name in names), (expected, sorted(names))
    for r in rows:
        assert r["funcnn_ms"] > 0 and r["jax_ms"] > 0 and r["gflops"] > 0
        assert r["speedup"] == r["jax_ms"] / r["funcnn_ms"]
    assert "| case | funcnn ms |" in stdout


def test_train_step_benchmark_precisions(tmp_path):
    out = tmp_path / "train_step.json"
    stdout = _run([str(BENCH / "train_step.py"), "--models", "lenet5", "--frameworks", "funcnn", "stax",
                   "--precision", "float32", "bfloat16", "--batch", "16", "--steps", "1", "--repeats", "1",
                   "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["framework"] for r in rows] == ["funcnn", "funcnn (bfloat16)", "stax"]
    for r in rows:
        assert r["images_per_s"] > 0 and r["first_step_s"] > 0 and r["batch"] == 16
    assert "| lenet5 | funcnn (bfloat16) |" in stdout
