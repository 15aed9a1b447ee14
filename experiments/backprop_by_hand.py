"""Backpropagation by hand (lectures 000 and 002): the lectures' computational graphs differentiated three ways.

    python experiments/backprop_by_hand.py

1. f(x, y, z) = (x + y) z at (-2, 5, -4) (lecture 000): q = x + y, f = q z.
2. The sigmoid neuron f(w, x) = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))) (lecture 002), at the point that CS231n uses
   (w = (2, -3, -3), x = (-1, -2); the transcript lost the slide's numbers), walked gate by gate backwards.
3. The gates of lecture 002: add = gradient distributor, max = gradient router, mul = gradient switcher, shown on
   g(x, y, z, w) = 2 (x y + max(z, w)).

Each gradient is computed by hand-written local gradients (the chain rule, one gate at a time), by `jax.grad`, and by
central finite differences in float64, and printed side by side. Writes runs/backprop_by_hand/results.{md,json} and a
bar chart of the three.
"""

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import report, viz

jax.config.update("jax_enable_x64", True)


def chain_rule_example(x, y, z):
    """Forward, then backward one gate at a time."""
    q = x + y                  # add gate
    f = q * z                  # mul gate
    df_dq, df_dz = z, q        # mul: each input gets the other input times the upstream gradient ("switcher")
    df_dx, df_dy = df_dq * 1.0, df_dq * 1.0  # add: the upstream gradient goes unchanged to both ("distributor")
    return f, {"x": df_dx, "y": df_dy, "z": df_dz}


def sigmoid_neuron(w, x):
    """The staged forward pass of lecture 002 and its backward pass, gate by gate."""
    a = w[0] * x[0]
    b = w[1] * x[1]
    s = a + b + w[2]           # add gates
    e = np.exp(-s)             # *-1 then exp
    d = 1.0 + e                # +1
    f = 1.0 / d                # 1/x
    df_dd = -1.0 / d**2        # d(1/x)/dx = -1/x^2
    df_de = df_dd * 1.0        # +1: local gradient 1
    df_ds = df_de * e * -1.0   # exp: local gradient e^u, then *-1
    # (the same as the sigmoid shortcut (1 - f) f: the lecture's point that gates can be grouped)
    assert np.isclose(df_ds, (1 - f) * f)
    df_dw = np.array([df_ds * x[0], df_ds * x[1], df_ds])  # mul gates switch: w_i's gradient is x_i times upstream
    df_dx = np.array([df_ds * w[0], df_ds * w[1]])
    return f, {"w0": df_dw[0], "w1": df_dw[1], "w2": df_dw[2], "x0": df_dx[0], "x1": df_dx[1]}


def gates_example(x, y, z, w):
    """g = 2 (x y + max(z, w)): the add gate distributes, max routes, mul switches."""
    m = max(z, w)
    g = 2.0 * (x * y + m)
    dg_dsum = 2.0
    dg_dxy, dg_dm = dg_dsum, dg_dsum                          # add: distributor
    dg_dz, dg_dw = (dg_dm, 0.0) if z > w else (0.0, dg_dm)   # max: router (all to the larger input)
    dg_dx, dg_dy = dg_dxy * y, dg_dxy * x                     # mul: switcher (each gets the other)
    return g, {"x": dg_dx, "y": dg_dy, "z": dg_dz, "w": dg_dw}


def finite_differences(f, args, eps=1e-6):
    """Central differences of a scalar f(*args) with respect to every scalar entry of every argument."""
    grads = []
    for i, a in enumerate(args):
        a = np.asarray(a, np.float64)
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            hi, lo = a.copy(), a.copy()
            hi[idx] += eps
            lo[idx] -= eps
            plus = list(args[:i]) + [hi] + list(args[i + 1:])
            minus = list(args[:i]) + [lo] + list(args[i + 1:])
            g[idx] = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
        grads.append(g)
    return grads


def run(args):
    rows = []

    def add(graph, name, by_hand, autodiff, fd, lecture=None):
        rows.append({"graph": graph, "variable": name, "by hand": float(by_hand), "jax.grad": float(autodiff),
                     "finite differences": float(fd), "lecture": "-" if lecture is None else lecture})

    point = (-2.0, 5.0, -4.0)
    f_jax = lambda x, y, z: (x + y) * z
    value, hand = chain_rule_example(*point)
    auto = jax.grad(f_jax, argnums=(0, 1, 2))(*point)
    fd = finite_differences(f_jax, point)
    lecture = {"x": "-4", "y": "-4", "z": "3"}
    for k, name in enumerate("xyz"):
        add("(x+y)z at (-2,5,-4)", name, hand[name], auto[k], fd[k], lecture[name])
    assert value == -12.0

    w, x = np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])
    f_sig = lambda w, x: 1 / (1 + jnp.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))
    neuron_value, hand = sigmoid_neuron(w, x)
    dw, dx = jax.grad(f_sig, argnums=(0, 1))(w, x)
    fd_w, fd_x = finite_differences(f_sig, (w, x))
    cs231n = {"w0": "-0.20", "w1": "-0.39", "w2": "0.20", "x0": "0.39", "x1": "-0.59"}
    for k in range(3):
        add("sigmoid neuron", f"w{k}", hand[f"w{k}"], dw[k], fd_w[k], cs231n[f"w{k}"])
    for k in range(2):
        add("sigmoid neuron", f"x{k}", hand[f"x{k}"], dx[k], fd_x[k], cs231n[f"x{k}"])

    gate_point = (3.0, -4.0, 2.0, -1.0)
    g_jax = lambda x, y, z, w: 2.0 * (x * y + jnp.maximum(z, w))
    gate_value, hand = gates_example(*gate_point)
    auto = jax.grad(g_jax, argnums=(0, 1, 2, 3))(*gate_point)
    fd = finite_differences(g_jax, gate_point)
    for k, name in enumerate("xyzw"):
        add("2(xy + max(z,w))", name, hand[name], auto[k], fd[k])

    worst_auto = max(abs(r["by hand"] - r["jax.grad"]) for r in rows)
    worst_fd = max(abs(r["by hand"] - r["finite differences"]) for r in rows)
    if worst_auto > 1e-12 or worst_fd > 1e-6:
        raise SystemExit(f"hand-written gradients disagree: {worst_auto:.1e} vs jax.grad, {worst_fd:.1e} vs FD")
    return rows, {"f": value, "sigmoid": neuron_value, "gates": gate_value, "worst_vs_autodiff": worst_auto,
                  "worst_vs_fd": worst_fd}


def main(argv=None):
    args = report.experiment_parser(__doc__, "backprop_by_hand").parse_args(argv)
    rows, values = run(args)
    viz.plot_bars({f"{r['graph'][:14]}: d/d{r['variable']}": {m: r[m] for m in ("by hand", "jax.grad",
                                                                                "finite differences")}
                   for r in rows}, f"{args.out}/gradients.png", title="the same gradients, three ways",
                  ylabel="gradient")
    report.write_results(
        args.out, rows, title="Backpropagation by hand vs jax.grad vs finite differences", digits=6,
        settings={"f(-2,5,-4)": values["f"], "sigmoid neuron output": round(values["sigmoid"], 6),
                  "2(xy+max(z,w)) at (3,-4,2,-1)": values["gates"]},
        notes=[f"largest difference by hand vs jax.grad: {values['worst_vs_autodiff']:.1e}; "
               f"vs central differences (eps 1e-6, float64): {values['worst_vs_fd']:.1e}",
               "the 'lecture' column is lecture 000's worked chain-rule example; for the sigmoid neuron it is "
               "CS231n's numbers at the same point (the transcript lost the slide's values)",
               "gates: the add gate hands the upstream gradient to both inputs (x, y of the first graph), the max "
               "gate routes all of it to the larger input (z = 2 > w = -1, so d/dw = 0), the mul gate switches "
               "(d/dx = 2y, d/dy = 2x)"],
        extra=values)


if __name__ == "__main__":
    main()
