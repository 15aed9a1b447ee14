"""Images/s of a full training step (forward, backward, Adam) in funcnn and other frameworks, same architectures.

    python -m pip install ".[bench]"            # flax, equinox, torch (benchmark-only dependencies)
    python benchmarks/train_step.py             # every framework x model, each in its own process
    python benchmarks/train_step.py --quick     # fewer steps
    python benchmarks/train_step.py --models lenet5 --frameworks funcnn --precision float32 bfloat16

LeNet-5 (batch 128, 32x32x1) in funcnn, jax.example_libraries.stax, Flax linen, Equinox and PyTorch; ResNet-20
(batch 128, 32x32x3, BatchNorm with running statistics) in funcnn, Flax linen and PyTorch (stax has no running
statistics and Equinox's BatchNorm needs a state-threading rewrite: both left out). Every framework runs in a process
of its own: thread pools of two frameworks in one process distort both. Per worker: the first step's time (for the
JAX frameworks, tracing and compiling), then `repeats` runs of `steps` steps; images/s is the median over runs.
`--precision` runs funcnn once per policy (funcnn.train.precision: float32 master weights, compute in the named
dtype, float16 with dynamic loss scaling); the other frameworks always run in float32.
Writes benchmarks/results/train_step-<device>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

FRAMEWORKS = {"lenet5": ["funcnn", "stax", "flax", "equinox", "torch"], "resnet20": ["funcnn", "flax", "torch"]}
SHAPES = {"lenet5": (32, 32, 1), "resnet20": (32, 32, 3)}


# ----------------------------------------------------------------------------------------------------------------
# JAX frameworks: each builds (params, state, step) with step(params, state, opt_state, x, y) jit-compiled


def _jax_data(model, batch):
    import jax

    x = jax.random.normal(jax.random.PRNGKey(0), (batch, *SHAPES[model]))
    y = jax.random.randint(jax.random.PRNGKey(1), (batch,), 0, 10)
    return x, y


def _time_jax(step, carry, x, y, steps, repeats):
    import jax

    start = time.perf_counter()
    carry = step(*carry, x, y)
    jax.block_until_ready(carry)
    first = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            carry = step(*carry, x, y)
        jax.block_until_ready(carry)
        rates.append(steps * x.shape[0] / (time.perf_counter() - start))
    return first, statistics.median(rates)


def bench_funcnn(model, batch, steps, repeats, precision="float32"):
    import jax
    import optax

    from funcnn import models, train

    init, apply = models.get(model)(10)
    _, params, state = init(jax.random.PRNGKey(0), (batch, *SHAPES[model]))
    apply, opt = train.with_precision(precision, apply, optax.adam(1e-3))
    step = train.make_train_step(apply, opt)
    x, y = _jax_data(model, batch)
    key = jax.random.PRNGKey(2)

    def run(params, state, opt_state, x, y):
        params, state, opt_state, _ = step(params, state, opt_state, (x, y), key)
        return params, state, opt_state

    return _time_jax(run, (params, state, opt.init(params)), x, y, steps, repeats)


def _optax_step(loss_fn):
    import jax
    import optax

    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, state, opt_state, x, y):
        (_, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state

    return opt, step


def _xent(logits, y):
    import jax
    import jax.numpy as jnp

    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def bench_stax(model, batch, steps, repeats):
    import jax
    from jax.example_libraries import stax

    init, apply = stax.serial(
        stax.Conv(6, (5, 5)), stax.Relu, stax.MaxPool((2, 2), (2, 2)),
        stax.Conv(16, (5, 5)), stax.Relu, stax.MaxPool((2, 2), (2, 2)), stax.Flatten,
        stax.Dense(120), stax.Relu, stax.Dense(84), stax.Relu, stax.Dense(10))
    _, params = init(jax.random.PRNGKey(0), (batch, *SHAPES[model]))
    opt, step = _optax_step(lambda p, s, x, y: (_xent(apply(p, x), y), s))
    x, y = _jax_data(model, batch)
    return _time_jax(step, (params, {}, opt.init(params)), x, y, steps, repeats)


def bench_flax(model, batch, steps, repeats):
    import flax.linen as nn
    import jax

    class LeNet5(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = nn.max_pool(nn.relu(nn.Conv(6, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
            x = nn.max_pool(nn.relu(nn.Conv(16, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(10)(nn.relu(nn.Dense(84)(nn.relu(nn.Dense(120)(x)))))

    class Block(nn.Module):
        channels: int
        stride: int

        @nn.compact
        def __call__(self, x, train=True):
            bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)  # noqa: E731
            h = nn.relu(bn()(nn.Conv(self.channels, (3, 3), self.stride, padding=1, use_bias=False)(x)))
            h = bn()(nn.Conv(self.channels, (3, 3), padding=1, use_bias=False)(h))
            if self.stride != 1 or x.shape[-1] != self.channels:
                x = bn()(nn.Conv(self.channels, (1, 1), self.stride, use_bias=False)(x))
            return nn.relu(h + x)

    class ResNet20(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(
                nn.Conv(16, (3, 3), padding=1, use_bias=False)(x)))
            for channels, stride in [(16, 1), (32, 2), (64, 2)]:
                for i in range(3):
                    x = Block(channels, stride if i == 0 else 1)(x, train)
            return nn.Dense(10)(x.mean((1, 2)))

    net = LeNet5() if model == "lenet5" else ResNet20()
    x, y = _jax_data(model, batch)
    variables = net.init(jax.random.PRNGKey(0), x)
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def loss_fn(params, state, x, y):
        logits, updates = net.apply({"params": params, **state}, x, mutable=list(state))
        return _xent(logits, y), updates

    opt, step = _optax_step(loss_fn)
    return _time_jax(step, (params, state, opt.init(params)), x, y, steps, repeats)


def bench_equinox(model, batch, steps, repeats):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(0), 5)

    class LeNet5(eqx.Module):
        c1: eqx.nn.Conv2d
        c2: eqx.nn.Conv2d
        f1: eqx.nn.Linear
        f2: eqx.nn.Linear
        f3: eqx.nn.Linear
        pool: eqx.nn.MaxPool2d

        def __init__(self):
            self.c1, self.c2 = eqx.nn.Conv2d(1, 6, 5, key=keys[0]), eqx.nn.Conv2d(6, 16, 5, key=keys[1])
            self.f1, self.f2 = eqx.nn.Linear(400, 120, key=keys[2]), eqx.nn.Linear(120, 84, key=keys[3])
            self.f3, self.pool = eqx.nn.Linear(84, 10, key=keys[4]), eqx.nn.MaxPool2d(2, 2)

        def __call__(self, x):  # one example, channels first
            x = self.pool(jax.nn.relu(self.c1(x)))
            x = self.pool(jax.nn.relu(self.c2(x))).reshape(-1)
            return self.f3(jax.nn.relu(self.f2(jax.nn.relu(self.f1(x)))))

    net = LeNet5()
    params, static = eqx.partition(net, eqx.is_array)
    x, y = _jax_data(model, batch)
    x = jnp.transpose(x, (0, 3, 1, 2))

    def loss_fn(params, state, x, y):
        return _xent(jax.vmap(eqx.combine(params, static))(x), y), state

    opt, step = _optax_step(loss_fn)
    return _time_jax(step, (params, {}, opt.init(params)), x, y, steps, repeats)


def bench_torch(model, batch, steps, repeats):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if model == "lenet5":
        net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                            nn.ReLU(), nn.Linear(84, 10))
    else:
        class Block(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                          nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
                self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                              if stride != 1 or cin != cout else nn.Identity())

            def forward(self, x):
                return torch.relu(self.body(x) + self.short(x))

        layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
        for cout, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(3):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    h, w, c = SHAPES[model]
    x, y = torch.randn(batch, c, h, w), torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - start))
    return first, statistics.median(rates)


BENCH = {"funcnn": bench_funcnn, "stax": bench_stax, "flax": bench_flax, "equinox": bench_equinox,
         "torch": bench_torch}


def _label(framework, precision):
    return framework if precision == "float32" else f"{framework} ({precision})"


def worker(framework, model, batch, steps, repeats, precision):
    label = _label(framework, precision)
    try:
        if framework == "funcnn":
            first, rate = bench_funcnn(model, batch, steps, repeats, precision)
        else:
            first, rate = BENCH[framework](model, batch, steps, repeats)
        row = {"framework": label, "model": model, "batch": batch, "images_per_s": rate, "first_step_s": first}
    except ImportError as err:
        row = {"framework": label, "model": model, "error": f"not installed: {err.name}"}
    print(json.dumps(row))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="*", default=list(FRAMEWORKS))
    parser.add_argument("--frameworks", nargs="*", default=None)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON file to write (default benchmarks/results/train_step-<device>.json)")
    parser.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16", "float16"],
                        help="funcnn's precision policies to run (the speed-up column compares with float32 funcnn)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 5, 2
    if args.worker:
        worker(*args.worker, args.batch, args.steps, args.repeats, args.precision[0])
        return
    rows = []
    runs = [(model, framework, precision) for model in args.models for framework in FRAMEWORKS[model]
            for precision in (args.precision if framework == "funcnn" else ["float32"])
            if not args.frameworks or framework in args.frameworks]
    for model, framework, precision in runs:
        cmd = [sys.executable, __file__, "--worker", framework, model, "--batch", str(args.batch),
               "--steps", str(args.steps), "--repeats", str(args.repeats), "--precision", precision]
        env = None
        if args.device == "cpu":
            import os
            env = dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        row = json.loads(lines[-1]) if lines else {"framework": _label(framework, precision), "model": model,
                                                   "error": done.stderr.strip().splitlines()[-1:]}
        rows.append(row)
        print(f"  {model:9s} {row['framework']:8s} " + (f"{row['images_per_s']:9.0f} images/s, first step "
              f"{row['first_step_s']:.2f} s" if "images_per_s" in row else str(row.get("error"))), flush=True)
    print("\n| model | framework | images/s | funcnn speed-up | first step (compile) s |\n|---|---|---:|---:|---:|")
    for row in rows:
        if "images_per_s" not in row:
            print(f"| {row['model']} | {row['framework']} | {row['error']} | | |")
            continue
        ours = next((r for r in rows if r["model"] == row["model"] and r["framework"] == "funcnn"
                     and "images_per_s" in r), None)
        ratio = f"{ours['images_per_s'] / row['images_per_s']:.2f}x" if ours else "-"
        print(f"| {row['model']} | {row['framework']} | {row['images_per_s']:.0f} | {ratio} | "
              f"{row['first_step_s']:.2f} |")
    out = args.out or Path(__file__).parent / "results" / f"train_step-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "batch": args.batch,
                               "steps": args.steps, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
