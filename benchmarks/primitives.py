"""Forward+backward time of funcnn's primitives vs `jax.grad` of the `lax` equivalents, in one process.

    python benchmarks/primitives.py                      # CPU, writes benchmarks/results/primitives-cpu.json
    python benchmarks/primitives.py --device gpu         # same on a GPU, plus a check for cuDNN convolutions
    python benchmarks/primitives.py --quick              # fewer repetitions (for a smoke test)

Per case: A/B rounds interleaved (funcnn, then JAX, then funcnn, ...), each round the median of several calls of a
jit-compiled function that runs the forward pass and the VJP of every floating input; the table reports the medians
over rounds and the ratios JAX / funcnn and PyTorch / funcnn (> 1: funcnn is faster). PyTorch runs the same cases on
NCHW tensors (forward, then `backward` for every input's gradient) in a process of its own, before this one starts
JAX's thread pool. FLOPs count multiply-adds as 2 (forward + dX + dW for
convolutions); "floor" is the time the minimal bytes (every input, output and gradient touched once) would take at the
DRAM bandwidth measured here (a 128 MB stream), or the FLOPs at the measured matmul peak, whichever is larger. Cases
whose data fit in the caches can run below that floor (ratio < 1).
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

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import funcnn as fn
from timing import median_seconds as _time

DN = {2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def _lax_conv(stride=1, padding="VALID", groups=1, nd=2):
    def f(x, w):
        return lax.conv_general_dilated(x, w, (stride,) * nd, padding, dimension_numbers=DN[nd],
                                        feature_group_count=groups)
    return f


def _lax_conv_transpose(stride, padding):
    """XLA's transposed conv: the VJP of the strided conv, expressed with lax.conv_transpose."""
    def f(y, w):
        k = w.shape[0]
        pads = [(k - 1 - padding, k - 1 - padding)] * 2
        return lax.conv_transpose(y, w, (stride, stride), pads, dimension_numbers=DN[2], transpose_kernel=True)
    return f


def _lax_pool(op, init, window, stride, scale=1.0, nd=2):
    def f(x):
        y = lax.reduce_window(x, init, op, (1, *(window,) * nd, 1), (1, *(stride,) * nd, 1), "VALID")
        return y * scale if scale != 1.0 else y
    return f


def cases(batch_scale: float = 1.0):
    """(name, funcnn function, JAX function, input shapes (NHWC / HWIO), FLOPs of forward+backward, the PyTorch op
    and its keyword arguments: the same computation on NCHW / OIHW tensors, timed in a process of its own)."""
    b = lambda n: max(1, int(n * batch_scale))  # noqa: E731

    def conv_flops(n, ho, wo, cout, k, cin_g):
        return 3 * 2 * n * ho * wo * cout * k * k * cin_g  # forward, dX, dW

    out = []
    n = b(128)
    out.append(("LeNet conv1 5x5 1->6", lambda x, w: fn.conv2d(x, w), _lax_conv(),
                [(n, 32, 32, 1), (5, 5, 1, 6)], conv_flops(n, 28, 28, 6, 5, 1), ("conv", {})))
    out.append(("LeNet pool1 max 2x2/2", lambda x: fn.max_pool2d(x, 2), _lax_pool(lax.max, -jnp.inf, 2, 2),
                [(n, 28, 28, 6)], 2 * n * 28 * 28 * 6, ("max_pool", {"kernel_size": 2, "stride": 2})))
    out.append(("LeNet conv2 5x5 6->16", lambda x, w: fn.conv2d(x, w), _lax_conv(),
                [(n, 14, 14, 6), (5, 5, 6, 16)], conv_flops(n, 10, 10, 16, 5, 6), ("conv", {})))
    out.append(("LeNet fc 400->120", lambda x, w: fn.dense(x, w), lambda x, w: x @ w,
                [(n, 400), (400, 120)], 3 * 2 * n * 400 * 120, ("matmul", {})))
    n = b(32)
    out.append(("ResNet conv 3x3 64->64 s1", lambda x, w: fn.conv2d(x, w, padding="SAME"), _lax_conv(1, "SAME"),
                [(n, 32, 32, 64), (3, 3, 64, 64)], conv_flops(n, 32, 32, 64, 3, 64),
                ("conv", {"padding": 1})))
    out.append(("ResNet conv 3x3 64->64 s2", lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME"),
                _lax_conv(2, "SAME"), [(n, 32, 32, 64), (3, 3, 64, 64)], conv_flops(n, 16, 16, 64, 3, 64),
                ("conv", {"stride": 2, "padding": 1})))
    n = b(128)
    out.append(("ResNet-20 conv 3x3/2 16->32 (batch 128)", lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME"),
                _lax_conv(2, "SAME"), [(n, 32, 32, 16), (3, 3, 16, 32)], conv_flops(n, 16, 16, 32, 3, 16),
                ("conv", {"stride": 2, "padding": 1})))
    out.append(("ResNet-20 shortcut 1x1/2 16->32", lambda x, w: fn.conv2d(x, w, stride=2),
                _lax_conv(2), [(n, 32, 32, 16), (1, 1, 16, 32)], conv_flops(n, 16, 16, 32, 1, 16), ("conv", {"stride": 2})))
    n = b(32)
    out.append(("max pool 2x2/2, 64 ch", lambda x: fn.max_pool2d(x, 2), _lax_pool(lax.max, -jnp.inf, 2, 2),
                [(n, 32, 32, 64)], 2 * n * 32 * 32 * 64, ("max_pool", {"kernel_size": 2, "stride": 2})))
    out.append(("max pool 3x3/2 (overlapping)", lambda x: fn.max_pool2d(x, 3, 2), _lax_pool(lax.max, -jnp.inf, 3, 2),
                [(n, 32, 32, 64)], 2 * n * 15 * 15 * 64 * 9, ("max_pool", {"kernel_size": 3, "stride": 2})))
    out.append(("avg pool 2x2/2, 64 ch", lambda x: fn.avg_pool2d(x, 2), _lax_pool(lax.add, 0.0, 2, 2, 0.25),
                [(n, 32, 32, 64)], 2 * n * 32 * 32 * 64, ("avg_pool", {"kernel_size": 2, "stride": 2})))
    out.append(("depth-wise 3x3, 128 ch", lambda x, w: fn.conv2d(x, w, padding="SAME", groups=128),
                _lax_conv(1, "SAME", 128), [(n, 32, 32, 128), (3, 3, 1, 128)], conv_flops(n, 32, 32, 128, 3, 1),
                ("conv", {"padding": 1, "groups": 128})))
    out.append(("transposed 4x4/2, 64->32", lambda y, w: fn.conv_transpose2d(y, w, stride=2, padding=1),
                _lax_conv_transpose(2, 1), [(n, 16, 16, 64), (4, 4, 32, 64)], conv_flops(n, 16, 16, 64, 4, 32),
                ("conv_transpose", {"stride": 2, "padding": 1})))
    n = b(8)
    out.append(("3-D conv 3x3x3 32->32, 16^3", lambda x, w: fn.conv3d(x, w, padding="SAME"), _lax_conv(1, "SAME", nd=3),
                [(n, 16, 16, 16, 32), (3, 3, 3, 32, 32)], 3 * 2 * n * 16 ** 3 * 32 * 27 * 32,
                ("conv3d", {"padding": 1})))
    out.append(("3-D max pool 2x2x2/2, 32 ch", lambda x: fn.max_pool3d(x, 2), _lax_pool(lax.max, -jnp.inf, 2, 2, nd=3),
                [(n, 16, 16, 16, 32)], 2 * n * 16 ** 3 * 32, ("max_pool3d", {"kernel_size": 2, "stride": 2})))
    return out


# ----------------------------------------------------------------------------------------------------------------
# PyTorch: the same cases, NCHW, in a process of its own (two thread pools in one process distort both)


def _torch_inputs(kind, shapes, rng):
    """PyTorch tensors for funcnn's NHWC / HWIO shapes: NCHW activations, (O, I/groups, H, W) filters ((I, O, H, W)
    for a transposed convolution, whose funcnn filter is HWIO of the forward convolution it transposes)."""
    import torch

    arrays = [rng.normal(size=s).astype(np.float32) for s in shapes]
    if kind == "matmul":
        out = arrays
    else:
        nd = arrays[0].ndim - 2  # channels to axis 1; a filter's (*K, I, O) to (O, I, *K)
        out = [np.moveaxis(arrays[0], -1, 1)] + [a.transpose(nd + 1, nd, *range(nd)) for a in arrays[1:]]
    return [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in out]


def _torch_op(kind, kwargs):
    import torch
    import torch.nn.functional as F

    return {"conv": lambda x, w: F.conv2d(x, w, **kwargs), "conv_transpose": lambda y, w: F.conv_transpose2d(y, w,
            **kwargs), "max_pool": lambda x: F.max_pool2d(x, **kwargs), "avg_pool": lambda x: F.avg_pool2d(x, **kwargs),
            "conv3d": lambda x, w: F.conv3d(x, w, **kwargs), "max_pool3d": lambda x: F.max_pool3d(x, **kwargs),
            "matmul": torch.matmul}[kind]


def torch_worker(rounds, calls, quick, only):
    """Print one JSON line per case: PyTorch's forward + backward (every input's gradient) in ms, median of rounds of
    the median of `calls` calls."""
    import torch

    rng = np.random.default_rng(0)
    for name, _, _, shapes, _, (kind, kwargs) in cases(1 / 8 if quick else 1.0):
        if only and only not in name:
            continue
        inputs = _torch_inputs(kind, shapes, rng)
        op = _torch_op(kind, kwargs)
        cotangent = torch.randn(op(*inputs).shape)

        def run():
            for t in inputs:
                t.grad = None
            op(*inputs).backward(cotangent)

        run()
        times = []
        for _ in range(rounds):
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            times.append(statistics.median(samples))
        print(json.dumps({"case": name, "torch_ms": statistics.median(times) * 1e3, "torch": torch.__version__}),
              flush=True)


def torch_times(args) -> dict[str, float] | str:
    """{case: ms} from a PyTorch worker process, or the reason there is none."""
    cmd = [sys.executable, __file__, "--torch-worker", "--rounds", str(args.rounds), "--calls", str(args.calls)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--only", args.only] if args.only else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not rows:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return tail[0]
    return {r["case"]: r["torch_ms"] for r in rows}


def _forward_backward(f, shapes):
    """(jit(inputs, cotangent -> (output, VJP of every input)), a fixed random cotangent).

    The cotangent is an argument: captured as a constant, XLA would constant-fold through it at compile time."""
    out_shape = jax.eval_shape(f, *[jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]).shape
    cotangent = jax.random.normal(jax.random.PRNGKey(9), out_shape)

    def run(cotangent, *args):
        y, vjp = jax.vjp(f, *args)
        return y, vjp(cotangent)

    return jax.jit(run), cotangent


def matmul_peak(n=2048, calls=10):
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    return 2 * n**3 / _time(f, (a,), calls)


def memory_bandwidth(n=32 * 1024 * 1024, calls=10):
    a = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda a: a * 1.0001)
    jax.block_until_ready(f(a))
    return 2 * 4 * n / _time(f, (a,), calls)  # read + write


def cudnn_calls(f, shapes) -> int:
    """Number of cuDNN convolution custom-calls in the optimised HLO of f's forward+backward."""
    run, cotangent = _forward_backward(f, shapes)
    hlo = run.lower(cotangent, *[jnp.zeros(s) for s in shapes]).compile().as_text()
    return hlo.count("__cudnn$conv")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved A/B rounds")
    parser.add_argument("--calls", type=int, default=5, help="calls per round (their median is the round's time)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 calls, batch / 8")
    parser.add_argument("--only", help="run only cases whose name contains this text")
    parser.add_argument("--out", default=None, help="JSON output (default benchmarks/results/primitives-<device>.json)")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch column")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 2, 2
    if args.rounds < 1 or args.calls < 1:
        parser.error(f"--rounds and --calls must be >= 1 (got {args.rounds}, {args.calls})")
    if args.only and not any(args.only in case[0] for case in cases()):
        parser.error(f"--only {args.only!r} matches no case; cases: {', '.join(case[0] for case in cases())}")
    if args.torch_worker:
        torch_worker(args.rounds, args.calls, args.quick, args.only)
        return
    # PyTorch first, in its own process, before this process's JAX thread pool exists (CPU only: the GPU column
    # would need CUDA tensors and synchronisation, a different benchmark)
    torch_ms = "not measured on GPU" if args.device == "gpu" else "--no-torch" if args.no_torch else torch_times(args)
    if isinstance(torch_ms, str):
        print(f"PyTorch column: none ({torch_ms})")
    device = jax.devices(args.device)[0]
    jax.config.update("jax_default_device", device)
    peak, bandwidth = matmul_peak(), memory_bandwidth()
    print(f"device: {device.device_kind} ({platform.processor() or platform.machine()}), jax {jax.__version__}; "
          f"matmul peak {peak / 1e9:.0f} GFLOP/s, memory {bandwidth / 1e9:.1f} GB/s")
    rows = []
    rng = np.random.default_rng(0)
    for name, mine, theirs, shapes, flops, _ in cases(1 / 8 if args.quick else 1.0):
        if args.only and args.only not in name:
            continue
        inputs = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]
        (a, cotangent), (b, _) = _forward_backward(mine, shapes), _forward_backward(theirs, shapes)
        inputs = [cotangent, *inputs]
        out_a, out_b = jax.block_until_ready(a(*inputs)), jax.block_until_ready(b(*inputs))
        for u, v in zip(jax.tree_util.tree_leaves(out_a), jax.tree_util.tree_leaves(out_b)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=2e-3, atol=2e-3 * float(jnp.abs(v).max()))
        times_a, times_b = [], []
        for _ in range(args.rounds):
            times_a.append(_time(a, inputs, args.calls))
            times_b.append(_time(b, inputs, args.calls))
        t_a, t_b = statistics.median(times_a), statistics.median(times_b)
        out_bytes = 4 * int(np.prod(cotangent.shape))
        min_bytes = 2 * sum(4 * int(np.prod(s)) for s in shapes) + 2 * out_bytes
        floor = max(min_bytes / bandwidth, flops / peak)
        row = {"case": name, "shapes": shapes, "funcnn_ms": t_a * 1e3, "jax_ms": t_b * 1e3, "speedup": t_b / t_a,
               "gflops": flops / 1e9, "funcnn_gflop_s": flops / t_a / 1e9, "floor_ms": floor * 1e3,
               "funcnn_over_floor": t_a / floor}
        if isinstance(torch_ms, dict) and name in torch_ms:
            row["torch_ms"], row["speedup_vs_torch"] = torch_ms[name], torch_ms[name] / (t_a * 1e3)
        if args.device == "gpu" and "conv" in name:
            row["cudnn_calls_funcnn"], row["cudnn_calls_jax"] = cudnn_calls(mine, shapes), cudnn_calls(theirs, shapes)
        rows.append(row)
        versus = f"   torch {row['torch_ms']:8.2f} ms   x{row['speedup_vs_torch']:5.2f}" if "torch_ms" in row else ""
        print(f"  {name:32s} funcnn {t_a * 1e3:8.2f} ms   jax {t_b * 1e3:8.2f} ms   x{t_b / t_a:5.2f}{versus}",
              flush=True)

    env = fn.report.environment()
    print("\n" + fn.report.environment_line(env))
    header = ("| case | funcnn ms | JAX autodiff ms | vs JAX | PyTorch ms | vs PyTorch | GFLOP/s (funcnn) "
              "| funcnn / DRAM-or-peak floor |")
    print("\n" + header + "\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        theirs = f"{r['torch_ms']:.2f} | {r['speedup_vs_torch']:.2f}x" if "torch_ms" in r else "- | -"
        print(f"| {r['case']} | {r['funcnn_ms']:.2f} | {r['jax_ms']:.2f} | {r['speedup']:.2f}x | {theirs} | "
              f"{r['funcnn_gflop_s']:.1f} | {r['funcnn_over_floor']:.1f} |")
    out = Path(args.out or Path(__file__).parent / "results" / f"primitives-{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device.device_kind), **env, "jax": jax.__version__,
                               "matmul_peak_gflop_s": peak / 1e9, "bandwidth_gb_s": bandwidth / 1e9,
                               "rounds": args.rounds, "calls": args.calls, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
