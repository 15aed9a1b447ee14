"""The regression guard: every benchmark's quick form, each ratio compared with the committed results.

    python benchmarks/guard.py                 # ~15 minutes on 2 cores; exit 1 if a ratio got > 15% worse
    python benchmarks/guard.py --only replicas vmapped
    python benchmarks/guard.py --tiny          # the smallest sizes: that every step runs (its test); not judged

Run it before a stop that touches a primitive, the carrier, a conv path or a compiled step. It compares ratios, not
times (the machine changes between sessions): each is "higher is better for funcnn" and measured in one run of one
script (funcnn against the framework or form named, each framework in its own process where the script does so).
The quick forms keep the committed results' sizes and cut the repeats, so a ratio is comparable with the committed
one; the table says which machine measured the committed numbers. A ratio missing from the committed results is
printed as new.

| benchmark | committed results | ratios |
|---|---|---|
| train steps | train_step-cpu.json | funcnn's images/s over each other framework's, per model; the first step (trace + compile + run): the other framework's seconds over funcnn's |
| primitives | primitives-cpu.json | funcnn's forward+backward over JAX autodiff of lax, per case |
| replicas | replicas.json | the replica step over R sequential steps, per strategy and R |
| vmapped | vmapped.json | per-example gradients: the batch gradient's time over theirs; an ensemble's vmapped forward over E calls |
| engines | engines-cpu.json | per conv rule of ResNet-20: the fastest measured path's time over the chosen path's |
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORSE = 0.15  # a ratio that fell by more than this share of its committed value is a regression


def _train_step(data):
    out, by_model = {}, {}
    for row in data.get("rows", []):
        by_model.setdefault(row.get("model"), {})[row.get("framework")] = row
    for model, rows in by_model.items():
        ours = rows.get("funcnn")
        if not ours or "images_per_s" not in ours:
            continue
        for framework, row in rows.items():
            if framework == "funcnn" or "images_per_s" not in row:
                continue
            out[f"train step {model}: funcnn / {framework}"] = ours["images_per_s"] / row["images_per_s"]
            out[f"first step {model}: {framework} s / funcnn s"] = row["first_step_s"] / ours["first_step_s"]
    return out


def _primitives(data):
    return {f"primitive {r['case']}: funcnn / JAX autodiff": r["speedup"] for r in data.get("rows", [])
            if "speedup" in r}


def _replicas(data):
    out = {}
    for r in data.get("rows", []):
        for strategy in ("map", "vmap"):
            if f"{strategy} speed-up" in r:
                out[f"replicas R={r['replicas']}: {strategy} / sequential"] = r[f"{strategy} speed-up"]
    return out


def _vmapped(data):
    """The first tree of the file is the one measured (vmapped.py lists it first); other trees keep their label."""
    out = {}
    rows = data.get("rows", [])
    first = rows[0].get("tree") if rows else None
    for r in rows:
        label = f" ({r['tree']})" if r.get("tree") != first else ""
        out[f"per-example grads {r['model']}{label}: batch grad / per-example"] = 1 / r["per-example / batch grad"]
        out[f"ensemble {r['model']}{label}: sequential / vmap"] = r["ensemble speed-up"]
    return out


def _engines(data):
    out, groups = {}, {}
    for r in data.get("rows", []):
        key = (r["model"], r["rule"], json.dumps(r["shapes"]), tuple(r["stride"]), r["groups"])
        groups.setdefault(key, []).append(r)
    for (model, rule, shapes, stride, groups_), rows in groups.items():
        chosen = [r for r in rows if r.get("chosen")]
        if not chosen:
            continue
        best = min(min(r["ms_default"], r["ms_eigen"]) for r in rows)
        out[f"engines {model} {rule} {shapes} s{stride[0]} g{groups_}: best path / chosen"] = best / chosen[0][
            "ms_eigen"]
    return out


# name -> (committed file, script, quick arguments, tiny arguments, extractor)
BENCHMARKS = {
    "train steps": ("train_step-cpu.json", "train_step.py", ["--quick"],
                    ["--models", "lenet5", "--frameworks", "funcnn", "stax", "--precision", "float32", "bfloat16",
                     "--batch", "8", "--steps", "1", "--repeats", "1", "--rounds", "2"], _train_step),
    "primitives": ("primitives-cpu.json", "primitives.py", ["--rounds", "3", "--calls", "3", "--no-torch"],
                   ["--quick", "--rounds", "1", "--calls", "1", "--no-torch", "--only", "LeNet conv1"], _primitives),
    "replicas": ("replicas.json", "replicas.py", ["--replicas", "4", "16", "--repeats", "2"],
                 ["--replicas", "1", "2", "--batch", "8", "--repeats", "1"], _replicas),
    "vmapped": ("vmapped.json", "vmapped.py", ["--repeats", "3"], ["--quick", "--models", "lenet5"], _vmapped),
    "engines": ("engines-cpu.json", "engines.py", ["--models", "resnet20", "--calls", "3"],
                ["--models", "lenet5", "--batch", "8", "--calls", "1"], _engines),
}


def run_one(name, tiny, folder):
    """Run one benchmark into `folder`; (ratios now, ratios committed, machine of the committed results, error)."""
    committed_file, script, quick, tiny_args, extract = BENCHMARKS[name]
    out = folder / committed_file
    cmd = [sys.executable, str(HERE / script), *(tiny_args if tiny else quick), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    out.with_suffix(".txt").write_text(done.stdout)  # the script's own tables, kept with its results by --keep
    if done.returncode != 0 or not out.exists():
        return {}, {}, None, f"{' '.join(cmd[1:])} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    committed_path = RESULTS / committed_file
    committed = json.loads(committed_path.read_text()) if committed_path.exists() else {}
    return extract(json.loads(out.read_text())), extract(committed), committed.get("machine"), None


def compare(now: dict, committed: dict, worse: float = WORSE):
    """Rows (ratio, committed, now, change, verdict) for every ratio measured now."""
    rows = []
    for key, value in now.items():
        before = committed.get(key)
        if before is None:
            rows.append((key, None, value, None, "new"))
            continue
        change = value / before - 1
        rows.append((key, before, value, change, "WORSE" if change < -worse else "ok"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--tiny", action="store_true", help="the smallest sizes: every step runs; ratios not judged")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the new results in this folder (each script's JSON and its printed tables, .txt)")
    args = parser.parse_args(argv)
    if args.keep is None:  # the new results go with the run
        with tempfile.TemporaryDirectory(prefix="funcnn-guard-") as folder:
            return _guard(args, Path(folder))
    args.keep.mkdir(parents=True, exist_ok=True)
    return _guard(args, args.keep)


def _guard(args, folder: Path) -> int:
    """Run the chosen benchmarks into `folder`, print the table, and return the exit status."""
    lines = ["| benchmark | ratio (higher is better for funcnn) | committed | now | change | |",
             "|---|---|---:|---:|---:|---|"]
    worse, errors, machines = [], [], {}
    for name in args.only:
        started = time.perf_counter()
        now, committed, machine, error = run_one(name, args.tiny, folder)
        print(f"{name}: {time.perf_counter() - started:.0f} s" + (f", {error}" if error else ""), flush=True)
        if error:
            errors.append(name)
            continue
        machines[name] = machine
        for key, before, value, change, verdict in compare(now, committed):
            verdict = "-" if args.tiny and verdict != "new" else verdict
            lines.append(f"| {name} | {key} | {'' if before is None else f'{before:.3g}'} | {value:.3g} | "
                         f"{'' if change is None else f'{100 * change:+.0f}%'} | {verdict} |")
            if verdict == "WORSE":
                worse.append(f"{key}: {before:.3g} -> {value:.3g} ({100 * change:+.0f}%)")
    print("\n" + "\n".join(lines))
    print("\ncommitted results measured on: " + "; ".join(f"{k}: {v or 'not recorded'}" for k, v in machines.items()))
    if args.tiny:
        print(f"tiny sizes: every step ran{'' if not errors else ' except ' + ', '.join(errors)}; ratios not judged")
        return 1 if errors else 0
    if worse:
        print(f"\n{len(worse)} ratio(s) more than {100 * WORSE:.0f}% worse than committed:\n  " + "\n  ".join(worse))
    else:
        print(f"\nno ratio more than {100 * WORSE:.0f}% worse than committed")
    return 1 if worse or errors else 0


if __name__ == "__main__":
    sys.exit(main())
