"""The `funcnn` command (also `python -m funcnn`): train, gradcheck, summary.

    funcnn train                      # LeNet-5 on the digits scikit-learn ships, 10 epochs, into runs/lenet5-digits
    funcnn train --model resnet20 --dataset cifar10 --data-dir ~/data/cifar --epochs 30 --optimizer resnet
    funcnn gradcheck                  # every primitive's VJP vs autodiff and finite differences
    funcnn summary --model vgg16      # the layer table and parameter count
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

OUTPUTS = """\
The output directory holds:
  config.json        the command's settings
  metrics.jsonl      one JSON line per epoch: losses, accuracies, learning rate, epoch time, images/s
  checkpoint.npz     the last complete checkpoint (parameters, state, optimiser state, step, data position)
  best.npz           parameters and state of the epoch with the best validation accuracy
  params.npz         the final parameters and state (load with funcnn.load)
  results.json       test loss and accuracy, training time
  curves.png         loss and accuracy per epoch
  filters.png        the first convolution layer's filters
  feature_maps.png   the maps of the first two convolution layers for one test image
  confusion.png      the test confusion matrix
"""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _train_parser(sub):
    from .data import LOADERS
    from .models import MODELS
    from .train import RECIPES

    p = sub.add_parser("train", help="train a model and write metrics, checkpoints and plots",
                       description="Train a model of the zoo on a data set.", epilog=OUTPUTS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet5", help=f"one of: {', '.join(sorted(MODELS))} (default lenet5)")
    p.add_argument("--dataset", default="digits", help=f"one of: {', '.join(sorted(LOADERS))} (default digits)")
    p.add_argument("--data-dir", help="folder holding the data files (MNIST / Fashion-MNIST IDX files, CIFAR-10 "
                                      "python archive); default: the cache")
    p.add_argument("--download", action="store_true", help="download missing data files into the cache (verified)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", default="adam", help=f"one of: {', '.join(sorted(RECIPES))} (default adam)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default runs/<model>-<dataset>)")
    p.add_argument("--resume", action="store_true", help="continue from the output directory's checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=None, help="also checkpoint every N steps")
    p.add_argument("--early-stopping", type=int, default=None, help="stop after N epochs without val improvement")
    p.add_argument("--plateau", type=int, default=None, help="divide the learning rate by 10 after N epochs "
                                                             "without val improvement")
    p.add_argument("--augment", type=float, default=0.0, help="scale of the lecture's augmentations (0 = off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _writable(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".funcnn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CliError(f"output directory {directory} is not writable: {err.strerror or err}") from None
    return directory


def train_command(args) -> int:
    import jax

    from . import data, models, train, viz
    from .io import save

    try:
        constructor = models.get(args.model)
    except ValueError as err:
        raise CliError(str(err)) from None
    if args.dataset not in data.LOADERS:
        raise CliError(f"unknown dataset {args.dataset!r}; known datasets: {', '.join(sorted(data.LOADERS))}")
    if args.optimizer not in train.RECIPES:
        raise CliError(f"unknown optimizer {args.optimizer!r}; known: {', '.join(sorted(train.RECIPES))}")
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise CliError(f"data directory does not exist: {args.data_dir}")
    out = _writable(Path(args.out or f"runs/{args.model}-{args.dataset}"))

    try:
        kwargs = {"download": args.download} if args.dataset in ("mnist", "fashion_mnist", "cifar10") else {}
        ds = data.load(args.dataset, Path(args.data_dir).expanduser() if args.data_dir else None, **kwargs)
    except (data.DataError, ValueError) as err:
        raise CliError(str(err)) from None
    shape = models.INPUT_SHAPES[args.model]
    try:
        splits = [data.fit_to_shape(s.x, shape) for s in (ds.train, ds.val, ds.test)]
    except ValueError as err:
        raise CliError(f"{args.dataset} does not fit {args.model}'s input {shape}: {err}") from None
    (x_train, x_val, x_test), labels = splits, (ds.train.y, ds.val.y, ds.test.y)

    model = constructor(ds.num_classes)
    init, apply = model
    key = jax.random.PRNGKey(args.seed)
    _, params, state = init(jax.random.fold_in(key, 0), (1, *shape))
    recipe = train.RECIPES[args.optimizer]
    optimizer = recipe() if args.lr is None else recipe(args.lr)
    augment = data.augment.lecture_augmentations(args.augment) if args.augment > 0 else None
    config = {k: v for k, v in vars(args).items() if k != "func"}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"funcnn: training {args.model} on {args.dataset} ({len(x_train)} train / {len(x_val)} val / "
          f"{len(x_test)} test) for {args.epochs} epochs into {out}")

    started = time.perf_counter()
    try:
        result = train.fit(apply, params, state, optimizer, (x_train, labels[0]), (x_val, labels[1]),
                           key=jax.random.fold_in(key, 1), epochs=args.epochs, batch_size=args.batch_size,
                           augment=augment, out_dir=out, checkpoint_every=args.checkpoint_every, resume=args.resume,
                           early_stopping=args.early_stopping, plateau_patience=args.plateau,
                           progress=not args.no_progress)
    except train.TrainingDiverged as err:
        raise CliError(str(err)) from None
    seconds = time.perf_counter() - started
    eval_step = train.make_eval_step(apply)
    test = train.evaluate(eval_step, result.params, result.state, x_test, labels[2])
    save(out / "params.npz", {"params": result.params, "state": result.state})
    results = {"model": args.model, "dataset": args.dataset, "test_loss": test["loss"],
               "test_accuracy": test["accuracy"], "best_val_accuracy": result.best_val_accuracy,
               "epochs_run": len(result.history), "steps": result.step, "train_seconds": seconds}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    if not args.no_plots:
        viz.plot_classifier(model, result.params, result.state, x_test, labels[2], ds.class_names, out,
                            metrics=out / "metrics.jsonl", title=f"{args.model} on {args.dataset}")
    print(f"funcnn: test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) after {seconds:.1f} s; "
          f"outputs in {out}")
    return 0


def gradcheck_command(args) -> int:
    from .gradcheck import main as gradcheck_main

    return gradcheck_main((["--verbose"] if args.verbose else []) + sum((["--primitive", p] for p in
                                                                         args.primitive or []), []))


def summary_command(args) -> int:
    from . import models
    from .summary import summary

    try:
        constructor = models.get(args.model)
    except ValueError as err:
        raise CliError(str(err)) from None
    shape = tuple(args.input_shape) if args.input_shape else models.INPUT_SHAPES[args.model]
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    try:
        summary(constructor(**kwargs).init, (1, *shape))
    except ValueError as err:
        raise CliError(str(err)) from None
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="funcnn", description="funcnn: functional CNNs in JAX with hand-written VJPs")
    sub = parser.add_subparsers(dest="command")
    _train_parser(sub)
    g = sub.add_parser("gradcheck", help="check every primitive's VJP against autodiff and finite differences")
    g.add_argument("--primitive", action="append")
    g.add_argument("--verbose", action="store_true")
    s = sub.add_parser("summary", help="print a model's layer table and parameter count")
    s.add_argument("--model", required=True)
    s.add_argument("--num-classes", type=int, default=None)
    s.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command or "train"
    if args.command is None:
        args = parser.parse_args(["train"])
    handlers = {"train": train_command, "gradcheck": gradcheck_command, "summary": summary_command}
    try:
        return handlers[command](args)
    except CliError as err:
        print(f"funcnn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("funcnn: interrupted; the last complete checkpoint is kept (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
