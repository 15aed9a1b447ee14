"""The researcher's workflow: derive a backward rule by hand, write it as a `jax.custom_vjp`, and check it with
`funcnn.verify.check_vjp` before trusting it. Then see what the check says about rules with the classic
mistakes.

    python experiments/vjp_verification.py

Rules checked (each against `jax.vjp` of an independent reference and against float64 central differences):
- sigmoid: dz = g s (1 - s) (lecture 002's "sigmoid gate"); and a wrong one, dz = g s (the (1 - s) forgotten).
- strided 2-D convolution (VALID, stride 2, NHWC / HWIO), dX by lecture 004's steps: upsample g with S - 1 zeros,
  zero-pad by K - 1, correlate with the filter flipped in both spatial axes with its channel axes swapped; dW as
  the correlation of X with g. Two wrong dX rules that return the right shape: the kernel flip missing, and the
  stride upsampling forgotten (g padded to size instead). A wrong rule fails loudly; a right one passes.
"""

from pathlib import Path

import jax
import jax.numpy as jnp

from funcnn import report, viz
from funcnn.verify import check_vjp

jax.config.update("jax_enable_x64", True)
STRIDE = 2


# ---- sigmoid
def make_sigmoid(backward):
    @jax.custom_vjp
    def sigmoid(z):
        return 1 / (1 + jnp.exp(-z))

    def fwd(z):
        s = sigmoid(z)
        return s, s

    sigmoid.defvjp(fwd, lambda s, g: (backward(s, g),))
    return sigmoid


SIGMOID_RULES = {"sigmoid: g s (1 - s)": lambda s, g: g * s * (1 - s),
                 "sigmoid, wrong: g s": lambda s, g: g * s}


# ---- strided convolution
def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (STRIDE, STRIDE), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def dw_rule(x, w, g):
    """dW[k, l, i, o] = sum_{n,p,q} X[n, pS + k, qS + l, i] g[n, p, q, o]."""
    kh, kw = w.shape[:2]
    ho, wo = g.shape[1:3]
    rows = [[jnp.einsum("npqi,npqo->io", x[:, k:k + STRIDE * (ho - 1) + 1:STRIDE,
                                            l:l + STRIDE * (wo - 1) + 1:STRIDE], g) for l in range(kw)]
            for k in range(kh)]
    return jnp.stack([jnp.stack(r) for r in rows])


def dx_rule(x_shape, w, g, flip=True, upsample=True):
    """Lecture 004's dX: upsample g, zero-pad by K - 1, correlate with the flipped filter, channels swapped."""
    kh, kw = w.shape[:2]
    if upsample:  # S - 1 zeros between neighbours
        g = jax.lax.pad(g, 0.0, [(0, 0, 0), (0, 0, STRIDE - 1), (0, 0, STRIDE - 1), (0, 0, 0)])
    # rows the forward stride skipped at the far end get no gradient: pad g to the input size minus K - 1
    h_needed, w_needed = x_shape[1] - kh + 1, x_shape[2] - kw + 1
    g = jnp.pad(g, [(0, 0), (0, h_needed - g.shape[1]), (0, w_needed - g.shape[2]), (0, 0)])
    g = jnp.pad(g, [(0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)])
    w_back = w[::-1, ::-1] if flip else w
    w_back = jnp.swapaxes(w_back, 2, 3)  # (K, K, C_out, C_in)
    return jax.lax.conv_general_dilated(g, w_back, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def make_conv(**dx_options):
    @jax.custom_vjp
    def hand_conv(x, w):
        return conv(x, w)

    def fwd(x, w):
        return conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        return dx_rule(x.shape, w, g, **dx_options), dw_rule(x, w, g)

    hand_conv.defvjp(fwd, bwd)
    return hand_conv


CONV_RULES = {"conv stride 2: lecture's dX and dW": {},
              "conv, wrong: kernel not flipped": {"flip": False},
              "conv, wrong: stride upsampling forgotten": {"upsample": False}}


def run(args):
    key = jax.random.PRNGKey(args.seed)
    kz, kx, kw = jax.random.split(key, 3)
    z = jax.random.normal(kz, (4, 5), jnp.float64)
    x = jax.random.normal(kx, (2, args.size, args.size + 1, 3), jnp.float64)  # the stride skips the last column
    w = jax.random.normal(kw, (3, 3, 3, 4), jnp.float64)
    rows, texts = [], {}
    cases = [(name, make_sigmoid(rule), lambda z: 1 / (1 + jnp.exp(-z)), (z,)) for name, rule in SIGMOID_RULES.items()]
    cases += [(name, make_conv(**options), conv, (x, w)) for name, options in CONV_RULES.items()]
    for name, f, reference, point in cases:
        result = check_vjp(f, *point, reference=reference, checks=("forward", "vjp", "finite_differences"),
                           seed=args.seed)
        texts[name] = str(result)
        rows.append({"rule": name, "worst rel. error vs jax.vjp": result.worst_rel_vs_reference,
                     "worst rel. error vs finite differences": result.worst_rel_vs_fd,
                     "verdict": "PASS" if result.ok else "FAIL"})
    return rows, texts


def main(argv=None):
    parser = report.experiment_parser(__doc__, "vjp_verification", size=(7, 11))
    args = parser.parse_args(argv)
    rows, texts = run(args)
    expected = {name: not name.split(":")[0].endswith("wrong") for name in texts}
    verdicts_right = all((r["verdict"] == "PASS") == expected[r["rule"]] for r in rows)
    viz.plot_bars({r["rule"].replace(": ", ":\n"): {"vs jax.vjp": max(r["worst rel. error vs jax.vjp"], 1e-17),
                                                     "vs finite differences":
                                                         max(r["worst rel. error vs finite differences"], 1e-17)}
                   for r in rows}, f"{args.out}/errors.png", logy=True, ylabel="worst relative error",
                  title="right rules sit at rounding level; wrong ones at order 1")
    (Path(args.out) / "reports.txt").write_text("\n\n".join(f"== {k}\n{v}" for k, v in texts.items()) + "\n")
    report.write_results(
        args.out, rows, title="Checking hand-written VJPs with funcnn.verify.check_vjp",
        settings={"dtype": "float64", "conv input": f"2x{args.size}x{args.size + 1}x3", "filter": "3x3x3x4",
                  "stride": STRIDE},
        notes=["every right rule passes and every wrong one fails" if verdicts_right else
               "UNEXPECTED: a right rule failed or a wrong one passed",
               "the full check_vjp reports (per argument: absolute and relative errors) are in reports.txt"],
        extra={"reports": texts})
    if not verdicts_right:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
