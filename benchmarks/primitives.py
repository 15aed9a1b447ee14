"""Forward+backward time of funcnn's primitives vs `jax.grad` of the `lax` equivalents, in one process.

    python benchmarks/primitives.py                      # CPU, writes benchmarks/results/primitives-cpu.json
    python benchmarks/primitives.py --device gpu         # same on a GPU, plus a check for cuDNN convolutions
    python benchmarks/primitives.py --quick              # fewer repetitions (for a smoke test)

Per case: A/B rounds interleaved (funcnn, then JAX, then funcnn, ...), each round the median of several calls of a
jit-compiled function that runs the forward pass and the VJP of every floating input; the table reports the medians
over rounds and the ratio JAX / funcnn (> 1: funcnn is faster). FLOPs count multiply-adds as 2 (forward + dX + dW for
convolutions); "floor" is the time the minimal bytes (every input, output and gradient touched once) would take at the
DRAM bandwidth measured here (a 128 MB stream), or the FLOPs at the measured matmul peak, whichever is larger. Cases
whose data fit in the caches can run below that floor (ratio < 1).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import funcnn as fn

DN = ("NHWC", "HWIO", "NHWC")


def _lax_conv(stride=1, padding="VALID", groups=1):
    def f(x, w):
        return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DN,
                                        feature_group_count=groups)
    return f


def _lax_conv_transpose(stride, padding):
    """XLA's transposed conv: the VJP of the strided conv, expressed with lax.conv_transpose."""
    def f(y, w):
        k = w.shape[0]
        pads = [(k - 1 - padding, k - 1 - padding)] * 2
        return lax.conv_transpose(y, w, (stride, stride), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  transpose_kernel=True)
    return f


def _lax_pool(op, init, window, stride, scale=1.0):
    def f(x):
        y = lax.reduce_window(x, init, op, (1, window, window, 1), (1, stride, stride, 1), "VALID")
        return y * scale if scale != 1.0 else y
    return f


def cases(batch_scale: float = 1.0):
    """(name, funcnn function, JAX function, input shapes, FLOPs of forward+backward)."""
    b = lambda n: max(1, int(n * batch_scale))  # noqa: E731

    def conv_flops(n, ho, wo, cout, k, cin_g):
        return 3 * 2 * n * ho * wo * cout * k * k * cin_g  # forward, dX, dW

    out = []
    n = b(128)
    out.append(("LeNet conv1 5x5 1->6", lambda x, w: fn.conv2d(x, w), _lax_conv(),
                [(n, 32, 32, 1), (5, 5, 1, 6)], conv_flops(n, 28, 28, 6, 5, 1)))
    out.append(("LeNet pool1 max 2x2/2", lambda x: fn.max_pool2d(x, 2), _lax_pool(lax.max, -jnp.inf, 2, 2),
                [(n, 28, 28, 6)], 2 * n * 28 * 28 * 6))
    out.append(("LeNet conv2 5x5 6->16", lambda x, w: fn.conv2d(x, w), _lax_conv(),
                [(n, 14, 14, 6), (5, 5, 6, 16)], conv_flops(n, 10, 10, 16, 5, 6)))
    out.append(("LeNet fc 400->120", lambda x, w: fn.dense(x, w), lambda x, w: x @ w,
                [(n, 400), (400, 120)], 3 * 2 * n * 400 * 120))
    n = b(32)
    out.append(("ResNet conv 3x3 64->64 s1", lambda x, w: fn.conv2d(x, w, padding="SAME"), _lax_conv(1, "SAME"),
                [(n, 32, 32, 64), (3, 3, 64, 64)], conv_flops(n, 32, 32, 64, 3, 64)))
    out.append(("ResNet conv 3x3 64->64 s2", lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME"),
                _lax_conv(2, "SAME"), [(n, 32, 32, 64), (3, 3, 64, 64)], conv_flops(n, 16, 16, 64, 3, 64)))
    n = b(128)
    out.append(("ResNet-20 conv 3x3/2 16->32 (batch 128)", lambda x, w: fn.conv2d(x, w, stride=2, padding="SAME"),
                _lax_conv(2, "SAME"), [(n, 32, 32, 16), (3, 3, 16, 32)], conv_flops(n, 16, 16, 32, 3, 16)))
    out.append(("ResNet-20 shortcut 1x1/2 16->32", lambda x, w: fn.conv2d(x, w, stride=2),
                _lax_conv(2), [(n, 32, 32, 16), (1, 1, 16, 32)], conv_flops(n, 16, 16, 32, 1, 16)))
    n = b(32)
    out.append(("max pool 2x2/2, 64 ch", lambda x: fn.max_pool2d(x, 2), _lax_pool(lax.max, -jnp.inf, 2, 2),
                [(n, 32, 32, 64)], 2 * n * 32 * 32 * 64))
    out.append(("max pool 3x3/2 (overlapping)", lambda x: fn.max_pool2d(x, 3, 2), _lax_pool(lax.max, -jnp.inf, 3, 2),
                [(n, 32, 32, 64)], 2 * n * 15 * 15 * 64 * 9))
    out.append(("avg pool 2x2/2, 64 ch", lambda x: fn.avg_pool2d(x, 2), _lax_pool(lax.add, 0.0, 2, 2, 0.25),
                [(n, 32, 32, 64)], 2 * n * 32 * 32 * 64))
    out.append(("depth-wise 3x3, 128 ch", lambda x, w: fn.conv2d(x, w, padding="SAME", groups=128),
                _lax_conv(1, "SAME", 128), [(n, 32, 32, 128), (3, 3, 1, 128)], conv_flops(n, 32, 32, 128, 3, 1)))
    out.append(("transposed 4x4/2, 64->32", lambda y, w: fn.conv_transpose2d(y, w, stride=2, padding=1),
                _lax_conv_transpose(2, 1), [(n, 16, 16, 64), (4, 4, 32, 64)], conv_flops(n, 16, 16, 64, 4, 32)))
    return out


def _forward_backward(f, shapes):
    """(jit(inputs, cotangent -> (output, VJP of every input)), a fixed random cotangent).

    The cotangent is an argument: captured as a constant, XLA would constant-fold through it at compile time."""
    out_shape = jax.eval_shape(f, *[jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]).shape
    cotangent = jax.random.normal(jax.random.PRNGKey(9), out_shape)

    def run(cotangent, *args):
        y, vjp = jax.vjp(f, *args)
        return y, vjp(cotangent)

    return jax.jit(run), cotangent


def _time(fun, args, calls):
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fun(*args))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


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
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 2, 2
    device = jax.devices(args.device)[0]
    jax.config.update("jax_default_device", device)
    peak, bandwidth = matmul_peak(), memory_bandwidth()
    print(f"device: {device.device_kind} ({platform.processor() or platform.machine()}), jax {jax.__version__}; "
          f"matmul peak {peak / 1e9:.0f} GFLOP/s, memory {bandwidth / 1e9:.1f} GB/s")
    rows = []
    rng = np.random.default_rng(0)
    for name, mine, theirs, shapes, flops in cases(1 / 8 if args.quick else 1.0):
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
        if args.device == "gpu" and "conv" in name:
            row["cudnn_calls_funcnn"], row["cudnn_calls_jax"] = cudnn_calls(mine, shapes), cudnn_calls(theirs, shapes)
        rows.append(row)
        print(f"  {name:32s} funcnn {t_a * 1e3:8.2f} ms   jax {t_b * 1e3:8.2f} ms   x{t_b / t_a:5.2f}", flush=True)

    header = "| case | funcnn ms | JAX autodiff ms | speed-up | GFLOP/s (funcnn) | funcnn / DRAM-or-peak floor |"
    print("\n" + header + "\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['funcnn_ms']:.2f} | {r['jax_ms']:.2f} | {r['speedup']:.2f}x | "
              f"{r['funcnn_gflop_s']:.1f} | {r['funcnn_over_floor']:.1f} |")
    out = Path(args.out or Path(__file__).parent / "results" / f"primitives-{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device.device_kind), "jax": jax.__version__,
                               "matmul_peak_gflop_s": peak / 1e9, "bandwidth_gb_s": bandwidth / 1e9,
                               "rounds": args.rounds, "calls": args.calls, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
