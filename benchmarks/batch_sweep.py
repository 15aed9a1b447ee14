"""ResNet-20 train-step time against batch size, funcnn and PyTorch, each batch and framework in its own process.

    python benchmarks/batch_sweep.py                              # batches 16 32 64 128 256 512, funcnn and torch
    python benchmarks/batch_sweep.py --batches 16 64 --quick      # a smoke test
    python benchmarks/batch_sweep.py --model lenet5 --frameworks funcnn flax torch

Each point is one worker of benchmarks/train_step.py (the same models, optimisers and timing: the median over
`repeats` runs of `steps` steps, after a first step that compiles). The table gives ms per step, images/s, and the
"growth": ms per step divided by the smallest batch's ms per step times the batch ratio (1.00 = cost exactly linear
in the batch, below 1 = larger batches amortise fixed costs, above 1 = a larger batch costs more per image). A
framework's throughput saturates at the smallest batch whose images/s is within 5% of its best over the sweep. Writes
benchmarks/results/batch_sweep-<model>.json and, with matplotlib, benchmarks/results/batch_sweep-<model>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from funcnn import report
from train_step import FRAMEWORKS  # the frameworks each model has a worker for

HERE = Path(__file__).parent
TRAIN_STEP = HERE / "train_step.py"
SATURATION = 0.95  # saturated: images/s at least this fraction of the framework's best over the sweep


def run_point(framework: str, model: str, batch: int, steps: int, repeats: int) -> dict:
    """One (framework, batch) in a fresh process: train_step.py's worker, its JSON row."""
    cmd = [sys.executable, str(TRAIN_STEP), "--worker", framework, model, "--batch", str(batch),
           "--steps", str(steps), "--repeats", str(repeats)]
    env = dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"framework": framework, "model": model, "batch": batch, "error": tail[0]}
    row = json.loads(lines[-1])
    row["batch"] = batch
    if "images_per_s" in row:
        row["ms_per_step"] = 1000.0 * batch / row["images_per_s"]
    return row


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per framework: growth against the smallest batch, the best images/s and the batch where it saturates (the
    smallest batch within 5% of the best; the largest batch itself: still growing there)."""
    out = {}
    for framework in dict.fromkeys(r["framework"] for r in rows):
        points = sorted((r for r in rows if r["framework"] == framework and "ms_per_step" in r),
                        key=lambda r: r["batch"])
        if not points:
            continue
        base = points[0]
        growth = {r["batch"]: r["ms_per_step"] / (base["ms_per_step"] * r["batch"] / base["batch"]) for r in points}
        best = max(r["images_per_s"] for r in points)
        saturates = next(r["batch"] for r in points if r["images_per_s"] >= SATURATION * best)
        out[framework] = {"growth": growth, "best_images_per_s": best, "saturates_at": saturates}
    return out


def plot(rows: list[dict], model: str, path: Path) -> bool:
    """images/s and ms/step against batch, log-2 batch axis; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_rate, ax_time) = plt.subplots(1, 2, figsize=(10, 4))
    for framework in dict.fromkeys(r["framework"] for r in rows):
        points = sorted((r for r in rows if r["framework"] == framework and "ms_per_step" in r),
                        key=lambda r: r["batch"])
        batches = [r["batch"] for r in points]
        ax_rate.plot(batches, [r["images_per_s"] for r in points], "o-", label=framework)
        ax_time.plot(batches, [r["ms_per_step"] for r in points], "o-", label=framework)
    for ax, ylabel in ((ax_rate, "images/s"), (ax_time, "ms per step")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_time.set_yscale("log", base=2)
    fig.suptitle(f"{model} train step vs batch ({report.machine()})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", choices=["lenet5", "resnet20", "mobilenet"])
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--frameworks", nargs="+", default=["funcnn", "torch"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 repeat")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default benchmarks/results/"
                        "batch_sweep-<model>.json; the plot goes beside it as .png)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 2, 1
    known = FRAMEWORKS[args.model]
    unknown = sorted(set(args.frameworks) - set(known))
    if unknown:
        parser.error(f"--frameworks: unknown for {args.model}: {', '.join(unknown)}; known: {', '.join(known)}")
    bad = [b for b in args.batches if b < 1]
    if bad:
        parser.error(f"--batches must be >= 1 (got {bad})")
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps and --repeats must be >= 1 (got {args.steps}, {args.repeats})")
    batches = sorted(set(args.batches))
    rows = []
    for batch in batches:
        for framework in args.frameworks:
            row = run_point(framework, args.model, batch, args.steps, args.repeats)
            rows.append(row)
            print(f"  batch {batch:4d} {framework:8s} " + (f"{row['ms_per_step']:9.1f} ms/step "
                  f"{row['images_per_s']:8.0f} images/s" if "ms_per_step" in row else str(row["error"])),
                  flush=True)
    summary = summarise(rows)
    env = report.environment()
    print("\n" + report.environment_line(env))
    head = " | ".join(f"{f} ms/step | {f} images/s | {f} growth" for f in args.frameworks)
    print(f"\n| batch | {head} |\n|---:|" + "---:|" * (3 * len(args.frameworks)))
    for batch in batches:
        cells = []
        for framework in args.frameworks:
            row = next(r for r in rows if r["framework"] == framework and r["batch"] == batch)
            if "ms_per_step" in row:
                growth = summary[framework]["growth"][batch]
                cells += [f"{row['ms_per_step']:.1f}", f"{row['images_per_s']:.0f}", f"{growth:.2f}"]
            else:
                cells += [str(row["error"]), "", ""]
        print(f"| {batch} | " + " | ".join(cells) + " |")
    for framework, info in summary.items():
        where = (f"still growing at batch {batches[-1]}" if info["saturates_at"] == batches[-1] and len(batches) > 1
                 else f"saturates at batch {info['saturates_at']}")
        print(f"{framework}: best {info['best_images_per_s']:.0f} images/s; throughput {where} (the smallest "
              f"batch within {1 - SATURATION:.0%} of the best)")
    out = args.out or HERE / "results" / f"batch_sweep-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**env, "model": args.model,
                               "steps": args.steps, "repeats": args.repeats, "rows": rows,
                               "summary": summary}, indent=2) + "\n")
    print(f"\nwrote {out}")
    png = out.with_suffix(".png")
    if plot(rows, args.model, png):
        print(f"wrote {png}")
    else:
        print("matplotlib not installed: no plot")
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
