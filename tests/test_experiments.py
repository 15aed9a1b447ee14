"""Every script in experiments/ runs with --quick, so none of them rots."""

import os
import pathlib
import subprocess
import sys

import pytest

SCRIPTS = sorted((pathlib.Path(__file__).resolve().parent.parent / "experiments").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_runs_quick(script, tmp_path):
    """`python experiments/NAME.py --quick --out DIR`; DIR under $FUNCNN_EXPERIMENT_OUT where set (CI: the site's
    docs/figures, whose experiments page shows these runs' figures), else the test's own directory."""
    out = pathlib.Path(os.environ.get("FUNCNN_EXPERIMENT_OUT") or tmp_path) / script.stem
    result = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    # an experiment of an optional tool says so when the tool is missing or cannot run with this JAX (kfac-jax)
    if result.returncode != 0 and result.stderr.strip().startswith(f"{script.stem}: kfac-jax does not"):
        pytest.skip(result.stderr.strip().splitlines()[0])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (out / "results.md").exists() and (out / "results.json").exists()
    assert list(out.rglob("*.png"))
