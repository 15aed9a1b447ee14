"""Images/s of a full training step (forward, backward, optimiser) in funcnn and other frameworks, same architectures.

    python -m pip install ".[bench]"            # flax, equinox, torch (benchmark-only dependencies)
    python benchmarks/train_step.py             # LeNet-5, ResNet-20, MobileNet-v1: every framework, own processes
    python benchmarks/train_step.py --quick     # fewer steps
    python benchmarks/train_step.py --rounds 3 --steps 10 --repeats 3    # the README's table: 3 interleaved rounds
    python benchmarks/train_step.py --models lenet5 --frameworks funcnn --precision float32 bfloat16
    python benchmarks/train_step.py --device gpu --models resnet18 --batch 256 --precision bfloat16 --others bfloat16

Models: LeNet-5 (32x32x1, Adam) in funcnn, jax.example_libraries.stax, Flax linen, Equinox and PyTorch; ResNet-20
(32x32x3, BatchNorm with running statistics, SGD momentum 0.9), MobileNet-v1 (width 0.5 on 32x32x3, 10 classes,
SGD momentum 0.9) and ResNet-18 (224x224x3, 1000 classes, SGD momentum 0.9) in funcnn, Flax linen and PyTorch (stax
has no running statistics and Equinox's BatchNorm needs a state-threading rewrite: both left out). Every framework
runs in a process of its own: thread pools of two frameworks in one process distort both. Per worker: the first
step's time (for the JAX frameworks, tracing and compiling), then `repeats` runs of `steps` steps; images/s is the
median over runs. `--rounds K` runs the whole set K times, one round after another; the table gives the median
images/s and funcnn's speed-up as the median (and range) of the K per-round ratios. `--precision` runs funcnn once per policy (funcnn.train.precision: float32 master weights, compute
in the named dtype, float16 with dynamic loss scaling); `--others bfloat16` runs Flax in bfloat16 (dtype=) and PyTorch
under autocast with channels_last (a GPU setting). Writes benchmarks/results/train_step-<device>.json (or --out)
and prints a markdown table; "speed-up" is funcnn's images/s over the row's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from funcnn import report
from funcnn.primitives.conv.engines import CPU_ENGINES

FRAMEWORKS = {"lenet5": ["funcnn", "stax", "flax", "equinox", "torch"], "resnet20": ["funcnn", "flax", "torch"],
              "mobilenet": ["funcnn", "flax", "torch"], "resnet18": ["funcnn", "flax", "torch"]}
SHAPES = {"lenet5": (32, 32, 1), "resnet20": (32, 32, 3), "mobilenet": (32, 32, 3), "resnet18": (224, 224, 3)}
CLASSES = {"lenet5": 10, "resnet20": 10, "mobilenet": 10, "resnet18": 1000}
DEFAULT_MODELS = ["lenet5", "resnet20", "mobilenet"]  # resnet18 at 224x224 is for accelerators (benchmarks/gpu.py)
OPTIMIZER = {"lenet5": "adam", "resnet20": "sgd", "mobilenet": "sgd", "resnet18": "sgd"}
MOBILENET_WIDTH = 0.5
MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                    (512, 1), (512, 1), (1024, 2), (1024, 1))


def _width(n):
    return max(8, int(n * MOBILENET_WIDTH))


# ----------------------------------------------------------------------------------------------------------------
# JAX frameworks: each builds (params, state, step) with step(params, state, opt_state, x, y) jit-compiled


def _jax_data(model, batch, dtype="float32"):
    import jax

    x = jax.random.normal(jax.random.PRNGKey(0), (batch, *SHAPES[model])).astype(dtype)
    y = jax.random.randint(jax.random.PRNGKey(1), (batch,), 0, CLASSES[model])
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


def _optax(name):
    import optax

    return optax.adam(1e-3) if name == "adam" else optax.sgd(0.05, momentum=0.9)


def bench_funcnn(model, batch, steps, repeats, precision="float32", optimizer="adam", cpu_engine=None):
    import jax

    from funcnn import models, train

    if model == "mobilenet":
        init, apply = models.mobilenet_v1(CLASSES[model], width=MOBILENET_WIDTH)
    else:
        init, apply = models.get(model)(CLASSES[model])
    _, params, state = init(jax.random.PRNGKey(0), (batch, *SHAPES[model]))
    apply, opt = train.with_precision(precision, apply, _optax(optimizer))
    step = train.make_train_step(apply, opt, cpu_engine=cpu_engine)
    x, y = _jax_data(model, batch)
    key = jax.random.PRNGKey(2)

    def run(params, state, opt_state, x, y):
        params, state, opt_state, _ = step(params, state, opt_state, (x, y), key)
        return params, state, opt_state

    return _time_jax(run, (params, state, opt.init(params)), x, y, steps, repeats)


def _optax_step(loss_fn, optimizer):
    import jax
    import optax

    opt = _optax(optimizer)

    @jax.jit
    def step(params, state, opt_state, x, y):
        (_, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state

    return opt, step


def _xent(logits, y):
    import jax
    import jax.numpy as jnp

    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), y[:, None], axis=1))


def bench_stax(model, batch, steps, repeats, optimizer="adam", **_):
    import jax
    from jax.example_libraries import stax

    init, apply = stax.serial(
        stax.Conv(6, (5, 5)), stax.Relu, stax.MaxPool((2, 2), (2, 2)),
        stax.Conv(16, (5, 5)), stax.Relu, stax.MaxPool((2, 2), (2, 2)), stax.Flatten,
        stax.Dense(120), stax.Relu, stax.Dense(84), stax.Relu, stax.Dense(10))
    _, params = init(jax.random.PRNGKey(0), (batch, *SHAPES[model]))
    opt, step = _optax_step(lambda p, s, x, y: (_xent(apply(p, x), y), s), optimizer)
    x, y = _jax_data(model, batch)
    return _time_jax(step, (params, {}, opt.init(params)), x, y, steps, repeats)


def _flax_models(dtype):
    import flax.linen as nn

    def bn(train):
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype)

    class LeNet5(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = nn.max_pool(nn.relu(nn.Conv(6, (5, 5), padding="VALID", dtype=dtype)(x)), (2, 2), (2, 2))
            x = nn.max_pool(nn.relu(nn.Conv(16, (5, 5), padding="VALID", dtype=dtype)(x)), (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(10, dtype=dtype)(nn.relu(nn.Dense(84, dtype=dtype)(nn.relu(nn.Dense(120, dtype=dtype)(x)))))

    class Block(nn.Module):
        channels: int
        stride: int

        @nn.compact
        def __call__(self, x, train=True):
            conv = lambda c, k, s: nn.Conv(c, (k, k), s, padding=k // 2, use_bias=False, dtype=dtype)  # noqa: E731
            h = nn.relu(bn(train)(conv(self.channels, 3, self.stride)(x)))
            h = bn(train)(conv(self.channels, 3, 1)(h))
            if self.stride != 1 or x.shape[-1] != self.channels:
                x = bn(train)(conv(self.channels, 1, self.stride)(x))
            return nn.relu(h + x)

    class ResNet20(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = nn.relu(bn(train)(nn.Conv(16, (3, 3), padding=1, use_bias=False, dtype=dtype)(x)))
            for i, channels in enumerate((16, 32, 64)):
                for j in range(3):
                    x = Block(channels, 2 if j == 0 and i > 0 else 1)(x, train)
            return nn.Dense(10, dtype=dtype)(x.mean((1, 2)))

    class MobileNet(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = nn.relu(bn(train)(nn.Conv(_width(32), (3, 3), 2, padding=1, use_bias=False, dtype=dtype)(x)))
            for channels, stride in MOBILENET_BLOCKS:
                c = x.shape[-1]
                x = nn.relu(bn(train)(nn.Conv(c, (3, 3), stride, padding=1, feature_group_count=c, use_bias=False,
                                              dtype=dtype)(x)))
                x = nn.relu(bn(train)(nn.Conv(_width(channels), (1, 1), use_bias=False, dtype=dtype)(x)))
            return nn.Dense(10, dtype=dtype)(x.mean((1, 2)))

    class ResNet18(nn.Module):
        @nn.compact
        def __call__(self, x, train=True):
            x = nn.relu(bn(train)(nn.Conv(64, (7, 7), 2, padding=3, use_bias=False, dtype=dtype)(x)))
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
            for i, channels in enumerate((64, 128, 256, 512)):
                for j in range(2):
                    x = Block(channels, 2 if j == 0 and i > 0 else 1)(x, train)
            return nn.Dense(1000, dtype=dtype)(x.mean((1, 2)))

    return {"lenet5": LeNet5, "resnet20": ResNet20, "mobilenet": MobileNet, "resnet18": ResNet18}


def bench_flax(model, batch, steps, repeats, optimizer="adam", others="float32"):
    import jax
    import jax.numpy as jnp

    net = _flax_models(jnp.bfloat16 if others == "bfloat16" else jnp.float32)[model]()
    x, y = _jax_data(model, batch)
    variables = net.init(jax.random.PRNGKey(0), x)
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def loss_fn(params, state, x, y):
        logits, updates = net.apply({"params": params, **state}, x, mutable=list(state))
        return _xent(logits, y), updates

    opt, step = _optax_step(loss_fn, optimizer)
    return _time_jax(step, (params, state, opt.init(params)), x, y, steps, repeats)


def bench_equinox(model, batch, steps, repeats, optimizer="adam", **_):
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

    opt, step = _optax_step(loss_fn, optimizer)
    return _time_jax(step, (params, {}, opt.init(params)), x, y, steps, repeats)


def _torch_model(model):
    import torch
    from torch import nn

    if model == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))
    if model == "mobilenet":
        def unit(cin, cout, stride):
            return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                    nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        layers, cin = [nn.Conv2d(3, _width(32), 3, 2, 1, bias=False), nn.BatchNorm2d(_width(32)), nn.ReLU()], _width(32)
        for channels, stride in MOBILENET_BLOCKS:
            layers += unit(cin, _width(channels), stride)
            cin = _width(channels)
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                      nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                          if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    if model == "resnet18":  # torchvision.models.resnet18's layers (torchvision need not be installed)
        layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            for i in range(2):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for cout, stride in [(16, 1), (32, 2), (64, 2)]:
        for i in range(3):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def bench_torch(model, batch, steps, repeats, optimizer="adam", others="float32", device="cpu"):
    import torch
    from torch import nn

    torch.manual_seed(0)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    net = _torch_model(model).to(dev)
    h, w, c = SHAPES[model]
    x, y = torch.randn(batch, c, h, w, device=dev), torch.randint(0, CLASSES[model], (batch,), device=dev)
    low = others == "bfloat16"
    if low:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    opt = (torch.optim.Adam(net.parameters(), 1e-3) if optimizer == "adam"
           else torch.optim.SGD(net.parameters(), 0.05, momentum=0.9))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=low):
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(steps * batch / (time.perf_counter() - start))
    return first, statistics.median(rates)


BENCH = {"funcnn": bench_funcnn, "stax": bench_stax, "flax": bench_flax, "equinox": bench_equinox,
         "torch": bench_torch}


def _label(framework, precision, cpu_engine=None):
    """"funcnn" for funcnn's default settings (float32, the process's default CPU engine: oneDNN where built), with
    what differs in parentheses; the other frameworks by name (and precision)."""
    if framework == "funcnn" and cpu_engine is not None:
        from funcnn.primitives.conv import tracing

        cpu_engine = None if cpu_engine == tracing.default_cpu_engine() else cpu_engine
    notes = [n for n in (precision != "float32" and precision, cpu_engine and f"{cpu_engine} engines") if n]
    return f"{framework} ({', '.join(notes)})" if notes else framework


def worker(framework, model, batch, steps, repeats, precision, optimizer, others, device, cpu_engine=None):
    label = _label(framework, precision if framework == "funcnn" else others,
                   cpu_engine if framework == "funcnn" else None)
    try:
        if framework == "funcnn":
            first, rate = bench_funcnn(model, batch, steps, repeats, precision, optimizer, cpu_engine)
        elif framework == "torch":
            first, rate = bench_torch(model, batch, steps, repeats, optimizer, others, device)
        else:
            first, rate = BENCH[framework](model, batch, steps, repeats, optimizer=optimizer, others=others)
        row = {"framework": label, "model": model, "batch": batch, "optimizer": optimizer, "images_per_s": rate,
               "first_step_s": first}
    except ImportError as err:
        row = {"framework": label, "model": model, "error": f"not installed: {err.name}"}
    print(json.dumps(row))


def combine(measured: list[list[dict]]) -> list[dict]:
    """One row per (model, framework) from several rounds: median images/s and first step, the per-round values, and
    funcnn's speed-up as the median (and range) of the per-round ratios: each round's workers ran back to back, so
    a ratio within a round cancels most of a shared machine's drift."""
    rows = []
    for i, first in enumerate(measured[0]):
        same = [rounds[i] for rounds in measured]
        ok = [r for r in same if "images_per_s" in r]
        if not ok:
            rows.append(first)
            continue
        row = dict(ok[0], images_per_s=statistics.median(r["images_per_s"] for r in ok),
                   first_step_s=statistics.median(r["first_step_s"] for r in ok),
                   images_per_s_rounds=[r["images_per_s"] for r in ok])
        ratios = []
        for rounds in measured:
            ours = next((r for r in rounds if r["model"] == first["model"] and r["framework"].startswith("funcnn")
                         and "images_per_s" in r), None)
            theirs = rounds[i]
            if ours is not None and "images_per_s" in theirs:
                ratios.append(ours["images_per_s"] / theirs["images_per_s"])
        if ratios:
            row["speedup"], row["speedup_range"] = statistics.median(ratios), [min(ratios), max(ratios)]
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every worker this many times, interleaved (a shared machine drifts)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS, choices=list(FRAMEWORKS))
    parser.add_argument("--frameworks", nargs="*", default=None)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default=None,
                        help="default: Adam for LeNet-5, SGD with momentum 0.9 for the others")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON file to write (default benchmarks/results/train_step-<device>.json)")
    parser.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16", "float16"],
                        help="funcnn's precision policies to run (the speed-up column compares with the first)")
    parser.add_argument("--others", default="float32", choices=["float32", "bfloat16"],
                        help="the other frameworks' compute dtype (bfloat16: Flax dtype=, PyTorch autocast)")
    parser.add_argument("--cpu-engine", nargs="+", default=None, choices=list(CPU_ENGINES),
                        help="funcnn's CPU engine settings to run (funcnn.train.make_train_step(cpu_engine=...); "
                             "default: the process's default, onednn where funcnn's oneDNN engine is built, else "
                             "eigen): onednn, eigen = XLA's paths without YNNPACK fusions, xla = XLA's default, "
                             "ynn-dots = YNNPACK for dots only")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 5, 2
    known = sorted({name for names in FRAMEWORKS.values() for name in names})
    unknown = sorted(set(args.frameworks or []) - set(known))
    if unknown:
        parser.error(f"--frameworks: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    if min(args.batch, args.steps, args.repeats, args.rounds) < 1:
        parser.error(f"--batch, --steps, --repeats and --rounds must be >= 1 (got {args.batch}, {args.steps}, "
                     f"{args.repeats}, {args.rounds})")
    if args.worker:
        framework, model = args.worker
        worker(framework, model, args.batch, args.steps, args.repeats, args.precision[0],
               args.optimizer or OPTIMIZER[model], args.others, args.device,
               args.cpu_engine[0] if args.cpu_engine else None)
        return
    runs = [(model, framework, precision, engine) for model in args.models for framework in FRAMEWORKS[model]
            for precision in (args.precision if framework == "funcnn" else ["float32"])
            for engine in (args.cpu_engine or [None] if framework == "funcnn" else [None])
            if not args.frameworks or framework in args.frameworks]
    measured = []  # one list of rows per round
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
        measured.append([])
        for model, framework, precision, engine in runs:
            cmd = [sys.executable, __file__, "--worker", framework, model, "--batch", str(args.batch),
                   "--steps", str(args.steps), "--repeats", str(args.repeats), "--precision", precision,
                   "--optimizer", args.optimizer or OPTIMIZER[model], "--others", args.others, "--device",
                   args.device] + (["--cpu-engine", engine] if engine else [])
            env = dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="") if args.device == "cpu" else None
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            label = _label(framework, precision, engine)
            row = json.loads(lines[-1]) if lines else {"framework": label, "model": model,
                                                       "error": done.stderr.strip().splitlines()[-1:]}
            measured[-1].append(row)
            print(f"  {model:9s} {row['framework']:8s} " + (f"{row['images_per_s']:9.0f} images/s, first step "
                  f"{row['first_step_s']:.2f} s" if "images_per_s" in row else str(row.get("error"))), flush=True)
    rows = combine(measured)
    env = report.environment()
    print("\n" + report.environment_line(env))
    rounds = f" (median of {args.rounds} rounds; speed-up: median and range of the per-round ratios)" \
        if args.rounds > 1 else ""
    print(f"\nbatch {args.batch}, {args.steps} steps x {args.repeats} repeats per worker{rounds}")
    print("\n| model | framework | images/s | funcnn speed-up | first step (compile) s |\n|---|---|---:|---:|---:|")
    for row in rows:
        if "images_per_s" not in row:
            print(f"| {row['model']} | {row['framework']} | {row['error']} | | |")
            continue
        ratio = "-"
        if "speedup" in row:
            low, high = row["speedup_range"]
            ratio = f"{row['speedup']:.2f}x" + (f" ({low:.2f}-{high:.2f})" if args.rounds > 1 else "")
        print(f"| {row['model']} | {row['framework']} | {row['images_per_s']:.0f} | {ratio} | "
              f"{row['first_step_s']:.2f} |")
    out = args.out or Path(__file__).parent / "results" / f"train_step-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**env, "batch": args.batch,
                               "steps": args.steps, "repeats": args.repeats, "rounds": args.rounds, "rows": rows},
                              indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
