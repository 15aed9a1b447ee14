"""R LeNet-5 replicas in one vmapped step vs R sequential runs of the ordinary step.

    python benchmarks/replicas.py                         # R = 1, 4, 16; batch 128 per replica, 32x32x1
    python benchmarks/replicas.py --replicas 16 --device gpu

"Sequential" is what R separate runs cost: the single-model compiled step called R times per round (the same
work, one model at a time). The replica steps are `train.make_replica_train_step`: one call per round trains all
R, each on its own batch (vmap: the replicas are batched into every operation). Both use the same optimiser (Adam with a per-replica injected learning rate) and count every
step after compilation; the table gives median rounds over interleaved repeats and the speed-up in replicas
trained per second. Writes benchmarks/results/replicas.json.
"""

import argparse
import json
import platform
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
    stacked = train.make_replica_train_step(model.apply, optimizer, shared_batch=False)
    carry = [params, state, opt_state]

    def replica_round():
        carry[:3] = stacked(*carry, (x, y), keys)[:3]
        jax.block_until_ready(carry[0])

    single = train.make_train_step(model.apply, optimizer)
    singles = [[train.replica(params, r), train.replica(state, r), train.replica(opt_state, r)]
               for r in range(replicas)]

    def sequential_round():
        for r, c in enumerate(singles):
            c[:3] = single(*c, (x[r], y[r]), keys[r])[:3]
        jax.block_until_ready(singles[-1][0])

    t_seq, t_rep = [], []
    for _ in range(3):  # interleave, so drift in the machine's speed hits both
        t_seq.append(report.median_seconds(sequential_round, repeats))
        t_rep.append(report.median_seconds(replica_round, repeats))
    seq, rep = statistics.median(t_seq), statistics.median(t_rep)
    return {"replicas": replicas, "sequential ms per round": 1e3 * seq, "replicas ms per round": 1e3 * rep,
            "sequential replica-steps/s": replicas / seq, "replicas replica-steps/s": replicas / rep,
            "speed-up": seq / rep}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "replicas.json"))
    args = parser.parse_args(argv)
    if args.device == "gpu" and jax.default_backend() != "gpu":
        raise SystemExit("--device gpu: no GPU backend (jax.default_backend() is "
                         f"{jax.default_backend()!r})")
    rows = [measure(r, args.batch, args.repeats) for r in args.replicas]
    header = list(rows[0])
    print(f"LeNet-5, batch {args.batch} per replica, Adam; {jax.devices()[0].device_kind}, {platform.processor()}")
    print("| " + " | ".join(header) + " |\n|" + "---:|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) and v < 10 else f"{v:.1f}"
                                if isinstance(v, float) else str(v) for v in row.values()) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": str(jax.devices()[0]), "batch": args.batch, "rows": rows},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
