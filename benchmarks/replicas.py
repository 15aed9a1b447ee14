"""R LeNet-5 replicas in one compiled step (vmapped, and mapped) vs R sequential runs of the ordinary step.

    python benchmarks/replicas.py                         # R = 1, 4, 16; batch 128 per replica, 32x32x1
    python benchmarks/replicas.py --replicas 16 --device gpu

"Sequential" is what R separate runs cost: the single-model compiled step called R times per round (the same
work, one model at a time). The replica steps are `train.make_replica_train_step`: one call per round trains all
R, each on its own batch, with strategy "vmap" (the replicas batched into every operation) and "map" (replica
after replica inside the compiled step; what "auto" picks on the CPU). All use the same optimiser (Adam with a
per-replica injected learning rate) and count every step after compilation; the table gives median rounds over
interleaved repeats and each strategy's speed-up over sequential, in replicas trained per second. Writes
benchmarks/results/replicas.json.
"""

import argparse
import json
import statistics
from pathlib import Path

import jax
import jax.numpy as jnp

from funcnn import models, report, train


def measure(replicas, batch, repeats):
    model = models.lenet5(10)
    keys = jax.random.split(jax.random.PRNGKey(0), replicas)
    optimizer = train.adam()
    x = jax.random.normal(jax.random.PRNGKey(1), (replicas, batch, 32, 32, 1))
    y = jax.random.randint(jax.random.PRNGKey(2), (replicas, batch), 0, 10)
    params, state = train.init_replicas(model.init, (1, 32, 32, 1), keys)
    opt_state = train.init_replica_optimizer(optimizer, params, learning_rate=jnp.linspace(1e-4, 1e-3, replicas))
    rounds = {}
    for strategy in ("vmap", "map"):
        stacked = train.make_replica_train_step(model.apply, optimizer, shared_batch=False, strategy=strategy)
        carry = jax.tree.map(jnp.copy, [params, state, opt_state])  # each step donates its inputs

        def replica_round(stacked=stacked, carry=carry):
            carry[:3] = stacked(*carry, (x, y), keys)[:3]
            jax.block_until_ready(carry[0])

        rounds[strategy] = replica_round

    single = train.make_train_step(model.apply, optimizer)
    singles = [[train.replica(params, r), train.replica(state, r), train.replica(opt_state, r)]
               for r in range(replicas)]

    def sequential_round():
        for r, c in enumerate(singles):
            c[:3] = single(*c, (x[r], y[r]), keys[r])[:3]
        jax.block_until_ready(singles[-1][0])

    times = {"sequential": [], **{name: [] for name in rounds}}
    for _ in range(3):  # interleave, so drift in the machine's speed hits every variant
        times["sequential"].append(report.median_seconds(sequential_round, repeats))
        for name, fn in rounds.items():
            times[name].append(report.median_seconds(fn, repeats))
    med = {name: statistics.median(t) for name, t in times.items()}
    row = {"replicas": replicas}
    row.update({f"{name} ms per round": 1e3 * t for name, t in med.items()})
    row.update({f"{name} speed-up": med["sequential"] / med[name] for name in rounds})
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "replicas.json"))
    args = parser.parse_args(argv)
    if min(args.replicas) < 1 or args.batch < 1 or args.repeats < 1:
        parser.error(f"--replicas, --batch and --repeats must be >= 1 (got {args.replicas}, {args.batch}, "
                     f"{args.repeats})")
    if args.device == "gpu" and jax.default_backend() != "gpu":
        raise SystemExit("--device gpu: no GPU backend (jax.default_backend() is "
                         f"{jax.default_backend()!r})")
    rows = [measure(r, args.batch, args.repeats) for r in args.replicas]
    header = list(rows[0])
    env = report.environment()
    print(f"LeNet-5, batch {args.batch} per replica, Adam; {jax.devices()[0].device_kind}: "
          + report.environment_line(env))
    print("| " + " | ".join(header) + " |\n|" + "---:|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) and v < 10 else f"{v:.1f}"
                                if isinstance(v, float) else str(v) for v in row.values()) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": str(jax.devices()[0]), **env, "batch": args.batch, "rows": rows},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
