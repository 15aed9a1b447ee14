"""The main job's training step in 1 and in 2 processes on this machine (funcnn train --processes N).

    python benchmarks/processes.py              # LeNet-5 on digits, batch 32 (the global batch), 4 epochs each

Each run is the real command (`funcnn train --processes N ... --no-plots`), so the numbers include the all-reduce of
the gradients over gloo between processes; the images/s per epoch come from its metrics.jsonl (the first epoch, with
the processes' warm-up, is left out). On one 2-core machine several processes cannot be faster than one: they split
the same cores and add communication. The point of several processes is correctness and the path to a cluster.
Writes benchmarks/results/processes.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from funcnn import report


def measure(processes, epochs, batch, out):
    cmd = [sys.executable, "-m", "funcnn", "train", "--epochs", str(epochs), "--batch-size", str(batch), "--out",
           str(out), "--no-plots", "--no-progress"] + (["--processes", str(processes)] if processes > 1 else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rate = statistics.median(r["images_per_s"] for r in rows[1:])
    return {"processes": processes, "global batch": batch, "images/s": rate, "ms per step": 1e3 * batch / rate,
            "test accuracy": json.loads((out / "results.json").read_text())["test_accuracy"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "processes.json")
    args = parser.parse_args(argv)
    if min(args.processes) < 1 or args.batch < 1:
        parser.error(f"--processes and --batch must be >= 1 (got {args.processes}, {args.batch})")
    if args.epochs < 2:
        parser.error(f"--epochs must be >= 2: the first epoch (warm-up, compile) is left out (got {args.epochs})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            rows.append(measure(n, args.epochs, args.batch, Path(tmp) / f"p{n}"))
            print(rows[-1], flush=True)
    env = report.environment(("jax", "jaxlib"))
    print("\n" + report.environment_line(env))
    print("| processes | global batch | images/s | ms per step | test accuracy |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['processes']} | {r['global batch']} | {r['images/s']:.0f} | {r['ms per step']:.2f} | "
              f"{r['test accuracy']:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**env, "epochs": args.epochs, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
