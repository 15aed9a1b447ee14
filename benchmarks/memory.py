"""Peak temporary memory of a ResNet training step with and without rematerialisation (jax.checkpoint per block).

    python benchmarks/memory.py                  # ResNet-20, batch 128, 32x32x3
    python benchmarks/memory.py --model resnet18 --batch 16

Reads XLA's own accounting of the compiled step (`compiled.memory_analysis()`): temporary buffers (activations
kept for the backward pass and scratch), arguments and outputs. Deterministic: no timing involved. Also times the
step, since remat trades memory for recomputation.
"""

import argparse
import json
from pathlib import Path

import jax
import optax

from funcnn import models, report, train


def measure(model_name, batch, remat, steps=10):
    init, apply = models.get(model_name)(10, remat=remat)
    shape = models.INPUT_SHAPES[model_name]
    _, params, state = init(jax.random.PRNGKey(0), (batch, *shape))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    step = train.make_train_step(apply, opt, donate=False)
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, *shape))
    y = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, 10)
    key = jax.random.PRNGKey(3)
    compiled = step.lower(params, state, opt_state, (x, y), key).compile()
    memory = compiled.memory_analysis()
    step_seconds = report.median_seconds(lambda: compiled(params, state, opt_state, (x, y), key), steps)
    return {"remat": remat, "temp_mb": memory.temp_size_in_bytes / 2**20,
            "argument_mb": memory.argument_size_in_bytes / 2**20, "output_mb": memory.output_size_in_bytes / 2**20,
            "step_ms": step_seconds * 1e3}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", choices=["resnet20", "resnet18"])
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    rows = [measure(args.model, args.batch, remat) for remat in (False, True)]
    print(f"\n{args.model}, batch {args.batch}, on {jax.devices()[0].device_kind}")
    print("| remat | temporary MB | arguments MB | outputs MB | step ms |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'yes' if r['remat'] else 'no'} | {r['temp_mb']:.1f} | {r['argument_mb']:.1f} | "
              f"{r['output_mb']:.1f} | {r['step_ms']:.0f} |")
    out = Path(__file__).parent / "results" / f"memory-{args.model}.json"
    out.write_text(json.dumps({"model": args.model, "batch": args.batch, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
