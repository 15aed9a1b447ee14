"""Sharpness over training: the top Hessian eigenvalues of LeNet-5's loss on digits, epoch by epoch.

    python experiments/hessian_spectrum.py            # plain SGD at lr 0.1, 20 epochs, the top 3 eigenvalues
    python experiments/hessian_spectrum.py --quick    # a tiny version in seconds

Trained with plain SGD (no momentum) at learning rate eta, gradient descent is stable on a quadratic only while
the Hessian's largest eigenvalue stays below 2 / eta; Cohen et al. (2021, "Gradient descent on neural networks
typically occurs at the edge of stability") found that full-batch training drives the top eigenvalue up to that
threshold and holds it there. This script measures the top eigenvalues of the training loss on a fixed subset of the
training set after every epoch, by Lanczos iteration on Hessian-vector products (`funcnn.curvature`: forward mode
over funcnn's backward rules), and compares them with 2 / eta. Writes runs/hessian_spectrum/results.md,
results.json and sharpness.png.
"""

import time

import jax
import jax.numpy as jnp
import optax

import funcnn as fn
from funcnn import curvature, data, models, report, train, viz


def run(args):
    ds = data.digits()
    n = min(args.train_size, len(ds.train.x))
    x, y = ds.train.x[:n], ds.train.y[:n]
    probe_x, probe_y = x[: args.probe], y[: args.probe]  # the fixed subset whose loss's Hessian is measured
    init, apply = models.lenet5(10)
    _, params, state = init(jax.random.PRNGKey(args.seed), (1, 32, 32, 1))

    def loss(params, x, y):
        logits, _ = apply(params, state, x)
        return jnp.mean(fn.softmax_cross_entropy(logits, y))

    optimizer = optax.sgd(args.lr)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    eval_step = train.make_eval_step(apply)
    rows, start = [], time.perf_counter()

    def measure(epoch, train_loss):
        began = time.perf_counter()
        eigen = curvature.hessian_eigenvalues(loss, params, probe_x, probe_y, k=args.k, iterations=args.iterations,
                                              seed=args.seed)
        val = train.evaluate(eval_step, params, state, ds.val.x, ds.val.y)
        row = {"epoch": epoch, "train loss": train_loss, "val accuracy": val["accuracy"],
               "top eigenvalue": float(eigen.values[0]), "top / (2/lr)": float(eigen.values[0]) * args.lr / 2,
               "residual": float(eigen.residuals[0]), "Lanczos seconds": time.perf_counter() - began}
        for i, value in enumerate(eigen.values[1:], start=2):
            row[f"eigenvalue {i}"] = float(value)
        rows.append(row)

    measure(0, float(loss(params, probe_x, probe_y)))
    for epoch in range(1, args.epochs + 1):
        losses = []
        for xb, yb in data.batches(x, y, args.batch_size, key=jax.random.PRNGKey(args.seed + epoch),
                                   drop_last=True):
            params, opt_state, value = step(params, opt_state, xb, yb)
            losses.append(float(value))
        measure(epoch, sum(losses) / len(losses))
    return rows, time.perf_counter() - start


def main(argv=None):
    parser = report.experiment_parser(__doc__, "hessian_spectrum", epochs=(2, 20), train_size=(256, 1258),
                                      probe=(64, 512), iterations=(10, 30))
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument("--k", type=int, default=3, help="how many top eigenvalues (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("epochs", "train_size", "probe", "iterations", "batch_size", "k"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    rows, seconds = run(args)
    threshold = 2 / args.lr
    epochs = [r["epoch"] for r in rows]
    series = {"top eigenvalue": (epochs, [r["top eigenvalue"] for r in rows]),
              "2 / lr (edge of stability)": (epochs, [threshold] * len(rows))}
    for i in range(2, args.k + 1):
        series[f"eigenvalue {i}"] = (epochs, [r[f"eigenvalue {i}"] for r in rows])
    viz.plot_series(series, f"{args.out}/sharpness.png", xlabel="epoch", ylabel="Hessian eigenvalue", logy=True,
                    title=f"LeNet-5 on digits, SGD lr {args.lr}: sharpness over training")
    peak = max(rows, key=lambda r: r["top eigenvalue"])
    report.write_results(
        args.out, rows, title="Sharpness over training: LeNet-5's top Hessian eigenvalues on digits",
        settings={"optimizer": f"SGD lr {args.lr} (no momentum)", "batch": args.batch_size, "epochs": args.epochs,
                  "training images": args.train_size, "Hessian of the loss on": f"{args.probe} training images",
                  "Lanczos iterations": args.iterations, "2 / lr": threshold, "seconds": round(seconds, 1)},
        notes=[f"the top eigenvalue peaks at {peak['top eigenvalue']:.3g} after epoch {peak['epoch']}, "
               f"{peak['top / (2/lr)']:.2f} of 2 / lr = {threshold:.3g}",
               "residual: |H v - lambda v| of the top pair (Lanczos convergence)"])


if __name__ == "__main__":
    main()
