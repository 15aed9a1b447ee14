"""One script for a GPU machine: funcnn's correctness, determinism and speed there, every result in one folder.

    PYTHONPATH=. python benchmarks/gpu.py --out gpu-results                 # on the GPU machine, ~8 minutes

The GPU machine's image has jax 0.11.2 with CUDA (inside funcnn's supported range, pyproject.toml), PyTorch, Flax and
optax; the script runs there from the tree as it is. environment.json records the versions and devices it ran on
(jax 0.11.x has an open report of wrong per-op results on CUDA 13, jax#40633: step 1 would show it).
    python benchmarks/gpu.py --device cpu --quick --out /tmp/gpu-check      # the same steps, tiny, on a CPU

Steps (each writes a JSON file into --out; summary.md collects the tables):
1. verify.json: every primitive's bounded verifier cases: the VJP computed in float32 (and bfloat16) on the device
   against the literal reference's VJP in float64 on the CPU, with the dtype's tolerance.
2. determinism.json: max-, avg- and lp-pool gradients and a ResNet-20 training step, two runs compared bit for bit,
   in this process and in one with XLA_FLAGS=--xla_gpu_deterministic_ops=true, next to JAX's own max-pool gradient
   (select_and_scatter, which has no deterministic GPU implementation).
3. primitives-gpu.json: benchmarks/primitives.py --device gpu (funcnn vs JAX autodiff / cuDNN, cuDNN call counts).
4. train_step-*.json: benchmarks/train_step.py: ResNet-18 at 224x224x3, batch 256, bfloat16 compute (funcnn's
   policy; Flax dtype=bfloat16; PyTorch autocast + channels_last), and ResNet-20, batch 512, float32; each framework in
   its own process; the ResNet-18 step's share of the GPU's bfloat16 matmul rate (FLOPs from funcnn.describe).
5. replicas.json: benchmarks/replicas.py: 16 LeNet-5 replicas in one vmapped step vs 16 sequential steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEAK_BF16 = {"H200": 790e12, "H100": 790e12}  # dense bfloat16 matmul FLOP/s (SXM), for the share of peak


def _run(cmd, out_dir, name, timeout, env=None):
    """A step as a subprocess; its stdout and stderr are kept in out_dir/name.log."""
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code, text = "timeout", f"timed out after {timeout} s\n{err.output or ''}"
    (out_dir / f"{name}.log").write_text(str(text))
    return {"step": name, "status": code, "seconds": round(time.perf_counter() - started, 1)}


def _environment() -> dict:
    """The versions and the device this run measured."""
    import platform

    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()]}


def verify_on_device(out_dir, quick):
    """Step 1: the registered cases, f on the default device in float32 / bfloat16, the reference in float64 on
    the CPU."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from funcnn.verify import default_rtol, registry

    cpu = jax.devices("cpu")[0]
    rows = []
    cases = registry.cases(full=False)
    if quick:
        cases = [c for i, c in enumerate(cases) if i % 4 == 0]
    for case in cases:
        leaves = [np.asarray(a) for a in case.args]
        floats = [i for i, a in enumerate(leaves) if np.issubdtype(a.dtype, np.floating)]

        def call(fun, args):
            def g(*diff):
                full = list(args)
                for i, d in zip(floats, diff):
                    full[i] = d
                return fun(*full)

            return g

        for dtype in (jnp.float32, jnp.bfloat16):
            args = [jnp.asarray(a, dtype) if i in floats else jnp.asarray(a) for i, a in enumerate(leaves)]
            out, vjp = jax.vjp(call(case.f, args), *[args[i] for i in floats])
            ct = jax.random.normal(jax.random.PRNGKey(0), out.shape, jnp.float32).astype(dtype)
            got = vjp(ct)
            with jax.enable_x64(True):  # the reference at the very same (rounded) point, exactly, on the CPU
                args64 = [jax.device_put(jnp.asarray(np.asarray(a, np.float64) if i in floats else np.asarray(a)),
                                         cpu) for i, a in enumerate(args)]
                _, vjp64 = jax.vjp(call(case.reference, args64), *[args64[i] for i in floats])
                want = [np.asarray(w) for w in vjp64(jax.device_put(jnp.asarray(np.asarray(ct, np.float64)), cpu))]
            worst = max(float(np.max(np.abs(np.asarray(g, np.float64) - w), initial=0.0))
                        / max(float(np.max(np.abs(w), initial=0.0)), 1e-30) for g, w in zip(got, want))
            tol = 10 * default_rtol(dtype) if dtype == jnp.float32 else default_rtol(dtype)
            rows.append({"primitive": case.primitive, "case": case.label, "dtype": jnp.dtype(dtype).name,
                         "rel_err": worst, "tol": tol, "ok": bool(worst <= tol), "device": str(jax.devices()[0])})
    (out_dir / "verify.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


DETERMINISM_WORKER = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from jax import lax
import funcnn as fn
from funcnn import models, train
x = jax.random.normal(jax.random.PRNGKey(0), (8, 32, 32, 16))
cases = {
    "funcnn max_pool2d 3x3/2": lambda x: fn.max_pool2d(x, 3, 2),
    "funcnn avg_pool2d 3x3/2": lambda x: fn.avg_pool2d(x, 3, 2),
    "funcnn lp_pool2d 3x3/2": lambda x: fn.lp_pool2d(x, 2.0, 3, 2),
    "JAX reduce_window max 3x3/2": lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID"),
}
rows = []
for name, f in cases.items():
    try:
        g = jax.jit(jax.grad(lambda x: jnp.sum(f(x) * jnp.cos(jnp.arange(f(x).size).reshape(f(x).shape)))))
        a, b = np.asarray(g(x)), np.asarray(g(x))
        rows.append({"case": name, "bitwise_equal": bool(a.tobytes() == b.tobytes())})
    except Exception as err:
        rows.append({"case": name, "error": f"{type(err).__name__}: {str(err)[:160]}"})
model = models.resnet20(10)
batch = int(sys.argv[1])
_, params, state = model.init(jax.random.PRNGKey(0), (1, 32, 32, 3))
step = train.make_train_step(model.apply, train.sgd(0.05), donate=False)
xb = jax.random.normal(jax.random.PRNGKey(1), (batch, 32, 32, 3)); yb = jnp.arange(batch) % 10
opt = train.sgd(0.05).init(params)
one = step(params, state, opt, (xb, yb), jax.random.PRNGKey(2))[0]
two = step(params, state, opt, (xb, yb), jax.random.PRNGKey(2))[0]
same = all(np.asarray(p).tobytes() == np.asarray(q).tobytes() for p, q in zip(jax.tree.leaves(one), jax.tree.leaves(two)))
rows.append({"case": f"funcnn ResNet-20 train step (batch {batch})", "bitwise_equal": bool(same)})
print(json.dumps(rows))
"""


def determinism(out_dir, quick):
    """Step 2: two runs, bitwise, with and without --xla_gpu_deterministic_ops."""
    tables = {}
    for label, flags in (("default", ""), ("xla_gpu_deterministic_ops", "--xla_gpu_deterministic_ops=true")):
        env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())
        done = subprocess.run([sys.executable, "-c", DETERMINISM_WORKER, "16" if quick else "256"],
                              capture_output=True, text=True, timeout=600, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
        tables[label] = json.loads(lines[-1]) if lines else [{"case": "worker", "error": done.stderr[-400:]}]
    (out_dir / "determinism.json").write_text(json.dumps(tables, indent=2) + "\n")
    return tables


def share_of_peak(out_dir, rows):
    """The ResNet-18 step's FLOP/s (3 x the forward FLOPs per image: forward, dX, dW) over the bfloat16 peak."""
    from funcnn import models
    from funcnn.describe import total_flops

    try:
        import jax

        kind = jax.devices()[0].device_kind
    except Exception:  # noqa: BLE001
        kind = "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
    flops = 3 * total_flops(models.resnet18(1000).init, (1, 224, 224, 3))
    result = []
    for row in rows:
        if row.get("model") == "resnet18" and "images_per_s" in row:
            achieved = flops * row["images_per_s"]
            result.append({"framework": row["framework"], "flop_per_s": achieved,
                           "share_of_bf16_peak": achieved / peak if peak else None, "device": kind})
    (out_dir / "peak.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the folder every result goes into")
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check that every step runs)")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    log = []
    started = time.perf_counter()
    environment = _environment()
    (out / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")

    rows = verify_on_device(out, args.quick)
    log.append({"step": "verify", "status": 0 if all(r["ok"] for r in rows) else 1,
                "failures": [r for r in rows if not r["ok"]]})
    tables = determinism(out, args.quick)
    log.append({"step": "determinism", "status": 0, "tables": tables})

    device = args.device
    quick = ["--quick", "--rounds", "1", "--calls", "1"] if args.quick else []
    log.append(_run([sys.executable, str(HERE / "primitives.py"), "--device", device, *quick, "--out",
                     str(out / f"primitives-{device}.json")], out, "primitives", 300))
    small = ["--steps", "1", "--repeats", "1"] if args.quick else ["--steps", "20", "--repeats", "3"]
    r18_batch, r20_batch = ("4", "8") if args.quick else ("256", "512")
    log.append(_run([sys.executable, str(HERE / "train_step.py"), "--device", device, "--models", "resnet18",
                     "--batch", r18_batch, "--precision", "bfloat16", "--others", "bfloat16", *small, "--out",
                     str(out / "train_step-resnet18.json")], out, "train_step-resnet18", 600))
    log.append(_run([sys.executable, str(HERE / "train_step.py"), "--device", device, "--models", "resnet20",
                     "--batch", r20_batch, *small, "--out", str(out / "train_step-resnet20.json")], out,
                    "train_step-resnet20", 600))
    replicas = ["--replicas", "1", "2", "--batch", "8", "--repeats", "1"] if args.quick else ["--replicas", "1",
                                                                                                 "16"]
    log.append(_run([sys.executable, str(HERE / "replicas.py"), "--device", device, *replicas, "--out",
                     str(out / "replicas.json")], out, "replicas", 300))
    steps = []
    for name in ("train_step-resnet18", "train_step-resnet20"):
        path = out / f"{name}.json"
        if path.exists():
            steps += json.loads(path.read_text())["rows"]
    share_of_peak(out, steps)

    lines = ["# funcnn on " + device, "", ", ".join(f"{k} {v}" for k, v in environment.items()), "",
             f"total {time.perf_counter() - started:.0f} s", "", "| step | status |",
             "|---|---|"]
    lines += [f"| {entry['step']} | {entry['status']} |" for entry in log]
    lines += ["", "| verify: primitive | dtype | worst rel err | tol | ok |", "|---|---|---:|---:|---|"]
    lines += [f"| {r['primitive']} {r['case']} | {r['dtype']} | {r['rel_err']:.2e} | {r['tol']:.0e} | {r['ok']} |"
              for r in rows]
    for label, table in tables.items():
        lines += ["", f"| determinism ({label}) | bitwise equal |", "|---|---|"]
        lines += [f"| {r['case']} | {r.get('bitwise_equal', r.get('error'))} |" for r in table]
    lines += ["", "| train step | framework | images/s |", "|---|---|---:|"]
    lines += [f"| {r.get('model')} | {r.get('framework')} | {r.get('images_per_s', r.get('error'))} |" for r in steps]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "steps.json").write_text(json.dumps(log, indent=2, default=str) + "\n")
    print("\n".join(lines))
    return 0 if all(entry["status"] in (0,) for entry in log) else 1


if __name__ == "__main__":
    sys.exit(main())
