"""Winograd F(2x2, 3x3) forward against XLA's CPU convolution on ResNet-20's 3x3 stride-1 layers (a probe).

    python benchmarks/winograd.py            # batch 128, the 16-, 32- and 64-channel layers
    python benchmarks/winograd.py --quick    # batch 8, a smoke test

The lever issue 17 asked to measure before building: 2x2 outputs per 4x4 input tile, Y = A^T [(G g G^T) . (B^T d
B)] A (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), the input and output transforms as
additions of strided slices, the element-wise stage as 16 matmuls [tiles, C_in] @ [C_in, C_out] in one batched
dot. 2.25x fewer multiplies than the direct convolution, but the transformed input holds 16 values per 4 outputs:
4x the activations, written and read once more. Prints each layer's median time (interleaved rounds), the ratio
XLA / Winograd (> 1: Winograd faster) and Winograd's relative error against the float32 convolution. Writes
benchmarks/results/winograd.json. It is a probe: funcnn has no Winograd path (README, Performance, says why).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn import report
from timing import median_seconds

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)  # filter transform, 4x3


def _bt(r0, r1, r2, r3):
    """B^T d along one axis, B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]."""
    return r0 - r2, r1 + r2, r2 - r1, r1 - r3


def _at(m0, m1, m2, m3):
    """A^T m along one axis, A^T = [[1,1,1,0],[0,1,-1,-1]]."""
    return m0 + m1 + m2, m1 - m2 - m3


def winograd_conv(x, w):
    """y = conv(x, w), NHWC x HWIO, 3x3, stride 1, SAME padding; H and W even."""
    n, h, wd, c = x.shape
    f = w.shape[-1]
    th, tw = h // 2, wd // 2
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = _bt(*[xp[:, a:a + 2 * th:2] for a in range(4)])                      # 4 x (n, th, W + 2, c)
    v = [col for r in rows for col in _bt(*[r[:, :, b:b + 2 * tw:2] for b in range(4)])]  # 16 x (n, th, tw, c)
    v = jnp.stack(v).reshape(16, n * th * tw, c)
    u = jnp.einsum("ia,abcf,jb->ijcf", G, w, G).reshape(16, c, f)
    m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,)))).reshape(4, 4, n, th, tw, f)
    rows = _at(*[m[i] for i in range(4)])                                       # 2 x (4, n, th, tw, f)
    y = jnp.stack([jnp.stack(_at(*[r[j] for j in range(4)]), axis=3) for r in rows], axis=2)  # n, th, 2, tw, 2, f
    return y.reshape(n, h, wd, f)


def xla_conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 round of 2 calls")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "winograd.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.calls = 8, 1, 2
    if min(args.batch, args.rounds, args.calls) < 1:
        parser.error(f"--batch, --rounds and --calls must be >= 1 (got {args.batch}, {args.rounds}, {args.calls})")
    rows = []
    for size, channels in ((32, 16), (16, 32), (8, 64)):
        x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, size, size, channels))
        w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, channels, channels)) * 0.1
        ours, theirs = jax.jit(winograd_conv), jax.jit(xla_conv)
        y, want = ours(x, w), theirs(x, w)
        err = float(jnp.max(jnp.abs(y - want)) / jnp.max(jnp.abs(want)))
        assert err < 1e-5, f"Winograd F(2x2, 3x3) is wrong at {size}x{size}x{channels}: relative error {err:.1e}"
        t_w, t_x = [], []
        for _ in range(args.rounds):
            t_w.append(1e3 * median_seconds(ours, (x, w), args.calls))
            t_x.append(1e3 * median_seconds(theirs, (x, w), args.calls))
        row = {"layer": f"{size}x{size}x{channels} -> {channels}", "winograd_ms": statistics.median(t_w),
               "xla_ms": statistics.median(t_x), "relative_error": err}
        row["speedup"] = row["xla_ms"] / row["winograd_ms"]
        rows.append(row)
    env = report.environment(("jax", "jaxlib"))
    print(report.environment_line(env))
    print(f"forward, batch {args.batch}\n\n| layer (3x3, stride 1) | Winograd F(2x2,3x3) ms | XLA conv ms | XLA / "
          "Winograd | relative error |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['layer']} | {r['winograd_ms']:.2f} | {r['xla_ms']:.2f} | {r['speedup']:.2f}x | "
              f"{r['relative_error']:.1e} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**env, "batch": args.batch, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
