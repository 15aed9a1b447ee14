"""Per convolution rule of a model: every path that can compute it (funcnn's oneDNN engine among them, where built),
the engine it runs in, and its time as compiled by default (YNNPACK fusions on) and with YNNPACK off for that one
executable (Eigen; the oneDNN path's call is the same in both).

    python benchmarks/engines.py                              # ResNet-20, MobileNet-v1/0.5, LeNet-5 at batch 128
    python benchmarks/engines.py --models resnet18 --batch 16 --calls 3
    python benchmarks/engines.py --quick                      # ResNet-20 only, 3 calls (a smoke run)

The rules are the distinct conv-family equations of the gradient of the model's training-mode output (the same
trace `funcnn summary --paths` reads), each compiled alone with its inputs. Rows marked "*" are the path the
algorithm table picks today; "predicted" is `funcnn.primitives.conv.engines.engine`, "compiled" what the compiled
HLO holds (`hlo_engines`). Writes benchmarks/results/engines-cpu.json (or --out) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from funcnn import models
from funcnn.describe import _equations
from funcnn.primitives.conv import engines, paths, rules

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_seconds  # noqa: E402

SHAPES = {"resnet20": (32, 32, 3), "mobilenet_v1": (32, 32, 3), "lenet5": (32, 32, 1), "resnet18": (224, 224, 3)}
BUILD = {"mobilenet_v1": {"width": 0.5, "num_classes": 10}, "resnet18": {}, "resnet20": {}, "lenet5": {}}
BANDED_MAX = 4096  # a band over more channels than this is not worth compiling (the table's limit is 128)


def rules_of(model_name: str, batch: int):
    """{(primitive name, params, operand shapes): count} for the gradient of the model's output at this batch."""
    init, apply = models.get(model_name)(**BUILD[model_name])
    rng = jax.random.PRNGKey(0)
    shape = (batch, *SHAPES[model_name])
    _, params, state = jax.eval_shape(lambda r: init(r, shape), rng)

    def loss(p, s, x):
        out, _ = apply(p, s, x, train=True, rng=rng)
        return jnp.sum(out)

    closed = jax.make_jaxpr(jax.grad(loss))(params, state, jax.ShapeDtypeStruct(shape, jnp.float32))
    found: dict = {}
    for eqn in _equations(closed.jaxpr):
        name = eqn.primitive.name.removeprefix("funcnn.")
        if name not in rules.ROLES:
            continue
        key = (name, tuple(sorted(eqn.params.items())), tuple(v.aval.shape for v in eqn.invars))
        found[key] = found.get(key, 0) + 1
    return found


def rule_function(name: str, params: dict, path: str, shapes):
    """(rule, spec, w_shape, in_sizes, f(a, b)) computing the equation's rule with `path` pinned."""
    rule, spec, w_shape, in_sizes, _ = rules.rule_case(name, params, shapes)
    spec = spec._replace(forced=path)
    return rule, spec, w_shape, in_sizes, lambda a, b: rules.run(path, rule, spec, w_shape, in_sizes, a, b)


def measure(model_name: str, batch: int, calls: int):
    rows = []
    for (name, items, shapes), count in rules_of(model_name, batch).items():
        params = dict(items)
        table_path = params["algorithm"]
        args = [jax.random.normal(jax.random.PRNGKey(i), s, jnp.float32) for i, s in enumerate(shapes)]
        for path in paths.ALGORITHMS:
            rule, spec, w_shape, in_sizes, f = rule_function(name, params, path, shapes)
            case = rules.Case(spec, w_shape, in_sizes, shapes[0][0], jnp.float32)
            if not rules.applies(path, rule, case) or (path == "banded" and w_shape[-1] * w_shape[-2] > BANDED_MAX):
                continue
            lowered = jax.jit(f).lower(*args)
            default = lowered.compile()
            eigen = lowered.compile(compiler_options=engines.compiler_options("eigen"))
            rows.append(dict(
                model=model_name, rule=rule, count=count, shapes=[list(s) for s in shapes],
                window=list(spec.geo.window), stride=list(spec.geo.stride), groups=spec.groups, path=path,
                chosen=path == table_path,
                predicted=engines.engine(path, rule, spec, w_shape, in_sizes, batch),
                compiled=engines.hlo_engines(default.as_text()),
                ms_default=1e3 * median_seconds(default, args, calls),
                ms_eigen=1e3 * median_seconds(eigen, args, calls)))
            print(_line(rows[-1]), flush=True)
    return rows


def _line(r) -> str:
    found = ", ".join(f"{k} {v}" for k, v in r["compiled"].items() if v)
    return (f"| {r['model']} | {r['rule']} x{r['count']} | {r['shapes'][0]} {r['shapes'][1]} s{r['stride'][0]} | "
            f"{'*' if r['chosen'] else ''}{r['path']} | {r['predicted']} | {found or '-'} | "
            f"{r['ms_default']:.2f} | {r['ms_eigen']:.2f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["resnet20", "mobilenet_v1", "lenet5"], choices=list(SHAPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "engines-cpu.json")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.calls < 1:
        parser.error(f"--batch and --calls must be >= 1, got {args.batch} and {args.calls}")
    if args.quick:
        args.models, args.calls = ["resnet20"], 3
    if jax.default_backend() != "cpu":
        parser.error(f"the engines are XLA's CPU backend's; the default backend is {jax.default_backend()}")
    print("| model | rule | lhs, rhs, stride | path (* = table) | predicted | compiled HLO | ms default | ms Eigen |")
    print("|---|---|---|---|---|---|---:|---:|")
    rows = [row for name in args.models for row in measure(name, args.batch, args.calls)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"batch": args.batch, "calls": args.calls, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
