"""Pooling study (lecture 004): the same LeNet-5-shaped network with max, mean and p-norm (p = 2, 5) pooling, and
with the lecture's "all convolutional" alternatives, where downsampling is learned by a convolution.

    python experiments/pooling_study.py

Variants (each 32x32x1 -> conv 6@5x5 -> ReLU -> DOWN -> conv 16@5x5 -> ReLU -> DOWN -> 120 -> 84 -> 10):
  max, mean, p-norm p=2, p-norm p=5: DOWN is a 2x2/2 pool;
  conv 2x2/2 instead of pooling: DOWN is a learned 2x2 stride-2 convolution ("replacing the maxpooling layer
  with a conv layer");
  strided conv, no pooling: the 5x5 convolutions themselves take stride 2 and DOWN is gone.
Every variant trains with the same seed, data order and optimiser (Adam 1e-3, batch 64) on digits. The table has
test accuracy (mean and spread over seeds), parameters, and the median compiled training-step time.
"""

import jax
import numpy as np

from funcnn import count_params, data, layers as L, report, train, viz


def lenet(down=None, conv_stride=1):
    """LeNet-5 with `down(channels)` after each conv block (None: no downsampling layer)."""
    block = lambda ch: [L.Conv(ch, 5, stride=conv_stride), L.Relu()] + ([down(ch)] if down else [])
    return L.serial(*block(6), *block(16), L.Flatten(), L.Dense(120), L.Relu(), L.Dense(84), L.Relu(), L.Dense(10))


VARIANTS = {
    "max pool 2x2/2": lambda: lenet(lambda ch: L.MaxPool(2)),
    "mean pool 2x2/2": lambda: lenet(lambda ch: L.AvgPool(2)),
    "p-norm pool p=2": lambda: lenet(lambda ch: L.LpPool(2, 2)),
    "p-norm pool p=5": lambda: lenet(lambda ch: L.LpPool(5, 2)),
    "conv 2x2/2 instead of pool": lambda: lenet(lambda ch: L.Conv(ch, 2, stride=2)),
    "strided conv, no pooling": lambda: lenet(None, conv_stride=2),
}


def step_time(model, params, state, x, y, repeats):
    """Median wall time of one compiled training step on a batch (after compiling)."""
    optimizer = train.adam()
    step = train.make_train_step(model.apply, optimizer, donate=False)
    opt_state = optimizer.init(params)
    key = jax.random.PRNGKey(0)
    return report.median_seconds(lambda: step(params, state, opt_state, (x, y), key), repeats)


def run(args):
    ds = data.digits()
    limit = 256 if args.quick else None
    (x, y), val, test = (ds.train.x[:limit], ds.train.y[:limit]), (ds.val.x, ds.val.y), (ds.test.x, ds.test.y)
    rows, curves = [], {}
    for name, build in VARIANTS.items():
        model = build()
        accuracies = []
        for seed in range(args.seeds):
            _, params, state = model.init(jax.random.PRNGKey(args.seed + seed), (1, 32, 32, 1))
            result = train.fit(model.apply, params, state, train.adam(1e-3), (x, y), val,
                               key=jax.random.PRNGKey(args.seed + seed), epochs=args.epochs, progress=False)
            evaluate = train.make_eval_step(model.apply)
            accuracies.append(train.evaluate(evaluate, result.params, result.state, *test)["accuracy"])
            if seed == 0:
                curves[name] = [h["val_accuracy"] for h in result.history]
        rows.append({"variant": name, "test accuracy (mean)": float(np.mean(accuracies)),
                     "min": float(np.min(accuracies)), "max": float(np.max(accuracies)),
                     "parameters": count_params(params),
                     "step ms (batch 64)": 1e3 * step_time(model, params, state, x[:64], y[:64], args.repeats)})
    return rows, curves


def main(argv=None):
    parser = report.experiment_parser(__doc__, "pooling_study", epochs=(1, 10), seeds=(1, 3), repeats=(5, 30))
    args = parser.parse_args(argv)
    rows, curves = run(args)
    viz.plot_series({k: (np.arange(1, len(v) + 1), v) for k, v in curves.items()}, f"{args.out}/val_accuracy.png",
                    title="validation accuracy (first seed)", xlabel="epoch", ylabel="accuracy")
    viz.plot_bars({r["variant"]: {"test accuracy": r["test accuracy (mean)"]} for r in rows},
                  f"{args.out}/accuracy.png", title=f"test accuracy, mean of {args.seeds} seeds")
    report.write_results(args.out, rows, title="Pooling study: LeNet-5 on digits with six kinds of downsampling",
                         settings={"epochs": args.epochs, "seeds": args.seeds, "optimizer": "Adam 1e-3, batch 64"},
                         notes=["step time: median of the compiled forward + backward + Adam step on this machine"])


if __name__ == "__main__":
    main()
