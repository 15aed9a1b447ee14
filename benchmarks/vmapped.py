"""funcnn under jax.vmap: per-example gradients and ensembles over weights, against the same work done without vmap.

    python benchmarks/vmapped.py                                    # LeNet-5 and ResNet-20, this tree
    python benchmarks/vmapped.py --trees . /tmp/old --labels now before   # the same cases from two checkouts

Cases, each for LeNet-5 (32x32x1) and ResNet-20 (32x32x3), compiled with funcnn's CPU compiler options where the
tree has them:
  per-example grads   `train.per_example_grads` of the mean cross-entropy over a batch (vmap(grad) of one example)
  ensemble forward    E models' logits on one shared batch: jax.vmap over the stacked parameters
The reference for each is the same work without vmap: one batch gradient (per-example) and E forward calls of the
single model (ensemble). A ratio > 1 means the vmapped form is faster than that. Every tree runs in its own process
(`--trees`, with PYTHONPATH set to it), so two commits are compared in one run on one machine. Writes
benchmarks/results/vmapped.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"lenet5": ((32, 32, 1), 32, 8), "resnet20": ((32, 32, 3), 16, 4)}  # input, batch, ensemble members


def _worker(models, repeats, quick):
    import jax
    import jax.numpy as jnp

    from funcnn import models as zoo, report, train

    try:
        from funcnn.primitives.conv.engines import compiler_options
        options = compiler_options()
    except ImportError:  # a tree from before per-executable engine options
        options = None
    jit = lambda f: jax.jit(f, compiler_options=options)  # noqa: E731
    rows = []
    for name in models:
        shape, batch, members = SIZES[name]
        if quick:
            batch, members = 4, 2
        model = getattr(zoo, name)(10)
        _, params, state = model.init(jax.random.PRNGKey(0), (1, *shape))
        x = jax.random.normal(jax.random.PRNGKey(1), (batch, *shape))
        y = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, 10)

        def loss(p, data):
            return train.classification_loss(model.apply(p, state, data[0], train=False)[0], data[1]).mean()

        per_example = jit(lambda p, x, y: train.per_example_grads(loss, p, (x, y)))
        batch_grad = jit(jax.grad(lambda p, x, y: loss(p, (x, y))))
        stacked = jax.tree.map(lambda a: jnp.stack([a] * members), params)
        ensemble = jit(jax.vmap(lambda p, x: model.apply(p, state, x, train=False)[0], (0, None)))
        single = jit(lambda p, x: model.apply(p, state, x, train=False)[0])

        def block(f):
            return lambda: jax.block_until_ready(f())

        timed = {
            "per-example grads": block(lambda: per_example(params, x, y)),
            "batch grad": block(lambda: batch_grad(params, x, y)),
            "ensemble (vmap)": block(lambda: ensemble(stacked, x)),
            "ensemble (sequential)": block(lambda: [single(params, x) for _ in range(members)]),
        }
        for f in timed.values():
            f()  # compile
        times = {k: [] for k in timed}
        for _ in range(3):  # interleaved rounds
            for k, f in timed.items():
                times[k].append(report.median_seconds(f, repeats))
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        rows.append({"model": name, "batch": batch, "members": members, **{f"{k} ms": v for k, v in ms.items()},
                     "per-example / batch grad": ms["per-example grads"] / ms["batch grad"],
                     "ensemble speed-up": ms["ensemble (sequential)"] / ms["ensemble (vmap)"]})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 4, 2 members, 1 repeat")
    parser.add_argument("--trees", nargs="+", type=Path, default=None,
                        help="checkouts of funcnn to measure, each in its own process (default: this tree)")
    parser.add_argument("--labels", nargs="+", default=None, help="a label per tree")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "vmapped.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    if args.worker:
        print(json.dumps(_worker(args.models, repeats, args.quick)))
        return 0
    trees = args.trees or [HERE.parent]
    labels = args.labels or [str(t) for t in trees]
    if len(labels) != len(trees):
        parser.error(f"--labels: {len(labels)} labels for {len(trees)} trees")
    rows = []
    for tree, label in zip(trees, labels):
        env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--models", *args.models,
               "--repeats", str(repeats)] + (["--quick"] if args.quick else [])
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(Path(tree).resolve()))
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows += [{"tree": label, **r} for r in json.loads(done.stdout.strip().splitlines()[-1])]
    lines = ["| tree | model | per-example grads ms | batch grad ms | per-example / batch | ensemble vmap ms | "
             "sequential ms | ensemble speed-up |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['tree']} | {r['model']} | {r['per-example grads ms']:.1f} | {r['batch grad ms']:.1f} | "
              f"{r['per-example / batch grad']:.2f} | {r['ensemble (vmap) ms']:.1f} | "
              f"{r['ensemble (sequential) ms']:.1f} | {r['ensemble speed-up']:.2f}x |" for r in rows]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": repeats, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
