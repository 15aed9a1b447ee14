"""LeNet-5 (lecture 004) on handwritten digits: learning curves, first-layer filters, feature maps of both conv
layers, confusion matrix and test accuracy.

    python experiments/lenet5_digits.py                          # scikit-learn's digits (ships offline)
    python experiments/lenet5_digits.py --mnist-dir ~/data/mnist # also MNIST, when its IDX files are there

Trains with `funcnn.train.fit` (Adam 1e-3, batch 64), keeping the best validation epoch, and writes the figures of
`funcnn.viz.plot_classifier` for each dataset into runs/lenet5_digits/DATASET/.
"""

import time
from pathlib import Path

import jax
import numpy as np

from funcnn import count_params, data, models, report, train, viz


def run_one(name, ds, args, out):
    shape = models.INPUT_SHAPES["lenet5"]
    limit = 512 if args.quick else None
    x_train, y_train = data.fit_to_shape(ds.train.x[:limit], shape), ds.train.y[:limit]
    x_val, x_test = data.fit_to_shape(ds.val.x, shape), data.fit_to_shape(ds.test.x, shape)
    model = models.lenet5(ds.num_classes)
    _, params, state = model.init(jax.random.PRNGKey(args.seed), (1, *shape))
    started = time.perf_counter()
    result = train.fit(model.apply, params, state, train.adam(args.lr), (x_train, y_train), (x_val, ds.val.y),
                       key=jax.random.PRNGKey(args.seed + 1), epochs=args.epochs, batch_size=args.batch_size,
                       out_dir=out, overwrite=True, progress=False)  # a rerun replaces the last
    seconds = time.perf_counter() - started
    test = train.evaluate(train.make_eval_step(model.apply), result.params, result.state, x_test, ds.test.y)
    predictions = np.asarray(train.predict(model.apply, result.params, result.state, x_test))
    viz.classifier_figures(model, result.params, result.state, x_test, ds.test.y, predictions, ds.class_names, out,
                           metrics=out / "metrics.jsonl", title=f"LeNet-5 on {name}")
    return {"dataset": name, "train / val / test": f"{len(x_train)} / {len(x_val)} / {len(x_test)}",
            "parameters": count_params(result.params), "epochs": len(result.history),
            "best val accuracy": result.best_val_accuracy, "test accuracy": test["accuracy"],
            "test loss": test["loss"], "train seconds": seconds}


def main(argv=None):
    parser = report.experiment_parser(__doc__, "lenet5_digits", epochs=(1, 15))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mnist-dir", default=None, help="a directory with MNIST's four IDX files (.gz or not)")
    args = parser.parse_args(argv)
    datasets = {"digits": data.digits()}
    if args.mnist_dir:
        datasets["mnist"] = data.mnist(args.mnist_dir)
    rows = [run_one(name, ds, args, Path(args.out) / name) for name, ds in datasets.items()]
    report.write_results(
        args.out, rows, title="LeNet-5 on handwritten digits",
        settings={"optimizer": f"Adam {args.lr}", "batch": args.batch_size, "input": "32x32x1 (digits resized "
                  "bilinearly from 8x8; MNIST zero-padded from 28x28)"},
        notes=["figures per dataset: curves.png, filters.png, feature_maps.png, confusion.png in the dataset's "
               "folder; the test accuracy is of the final parameters"])


if __name__ == "__main__":
    main()
