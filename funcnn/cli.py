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
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="compute dtype; parameters stay float32 (float16 adds dynamic loss scaling)")
    p.add_argument("--replicas", type=int, default=None,
                   help="train N independent models in one compiled step (vmap); replica r uses seed --seed + r")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                   help=f"one value per replica of {' or '.join(SWEEPABLE)} (repeatable); without --replicas, one "
                        "replica per value, all with seed --seed; a single value is shared")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


SWEEPABLE = {"lr": "learning_rate", "wd": "weight_decay"}


def parse_sweep(items, replicas):
    """["lr=1e-3,3e-3", "wd=0"] -> (R, {"learning_rate": [...], "weight_decay": [...]}); CliError on bad input."""
    sweep = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in SWEEPABLE:
            raise CliError(f"--sweep {item!r}: expected NAME=V1,V2,... with NAME one of {', '.join(SWEEPABLE)}")
        try:
            sweep[SWEEPABLE[name]] = [float(v) for v in values.split(",")]
        except ValueError:
            raise CliError(f"--sweep {item!r}: the values must be numbers separated by commas") from None
    lengths = {len(v) for v in sweep.values() if len(v) > 1}
    if len(lengths) > 1:
        raise CliError(f"--sweep: the lists have different lengths {sorted(lengths)}")
    count = lengths.pop() if lengths else None
    if replicas is not None and replicas < 1:
        raise CliError(f"--replicas must be >= 1, got {replicas}")
    if replicas is not None and count is not None and replicas != count:
        raise CliError(f"--replicas {replicas} but --sweep gives {count} values per name")
    return replicas or count or 1, sweep


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
    from .layers import Layer

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
    replicas, sweep = parse_sweep(args.sweep, args.replicas)
    if replicas > 1 and (args.resume or args.early_stopping or args.plateau or args.checkpoint_every):
        raise CliError("--resume, --early-stopping, --plateau and --checkpoint-every train one model; "
                       "they do not combine with --replicas / --sweep")
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
    apply, optimizer = train.with_precision(args.precision, apply, optimizer)
    model = Layer(init, apply)
    augment = data.augment.lecture_augmentations(args.augment) if args.augment > 0 else None
    config = {k: v for k, v in vars(args).items() if k != "func"}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"funcnn: training {args.model} on {args.dataset} ({len(x_train)} train / {len(x_val)} val / "
          f"{len(x_test)} test) for {args.epochs} epochs into {out}"
          + (f", {replicas} replicas in one compiled step" if replicas > 1 else ""))
    if replicas > 1:
        return _train_replicas(args, model, shape, optimizer, augment, sweep, replicas, out,
                               (x_train, labels[0]), (x_val, labels[1]), (x_test, labels[2]))

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


def _train_replicas(args, model, shape, optimizer, augment, sweep, replicas, out, train_set, val, test) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from . import train, viz

    seeds = [args.seed + r if args.replicas else args.seed for r in range(replicas)]  # a pure sweep: one seed
    keys = [jax.random.PRNGKey(seed) for seed in seeds]
    params, state = train.init_replicas(model.init, (1, *shape), jnp.stack([jax.random.fold_in(k, 0) for k in keys]))
    hyperparams = {name: np.broadcast_to(values, (replicas,)) for name, values in sweep.items()}
    try:
        result = train.fit_replicas(model.apply, params, state, optimizer, train_set, val,
                                    keys=jnp.stack([jax.random.fold_in(k, 1) for k in keys]), hyperparams=hyperparams,
                                    epochs=args.epochs, batch_size=args.batch_size, augment=augment, out_dir=out,
                                    progress=not args.no_progress)
    except ValueError as err:
        raise CliError(str(err)) from None
    eval_step = train.make_eval_step(model.apply)
    rows = []
    for r in range(replicas):
        test_metrics = train.evaluate(eval_step, train.replica(result.params, r), train.replica(result.state, r),
                                      *test)
        rows.append({"replica": r, "seed": seeds[r], **{k: float(v[r]) for k, v in hyperparams.items()},
                     "val_accuracy": result.histories[r][-1].get("val_accuracy") if result.histories[r] else None,
                     "test_accuracy": test_metrics["accuracy"], "test_loss": test_metrics["loss"]})
    (out / "results.json").write_text(json.dumps({"model": args.model, "dataset": args.dataset,
                                                  "train_seconds": result.seconds, "replicas": rows}, indent=2) + "\n")
    if not args.no_plots and args.epochs > 0:
        label = lambda r: ", ".join([f"seed {seeds[r]}"] + [f"{k} {v[r]:g}" for k, v in hyperparams.items()])
        viz.plot_series({label(r): ([h["epoch"] for h in result.histories[r]],
                                    [h["val_accuracy"] for h in result.histories[r]]) for r in range(replicas)},
                        out / "replicas.png", title=f"{args.model} on {args.dataset}: {replicas} replicas",
                        xlabel="epoch", ylabel="validation accuracy")
    best = max(rows, key=lambda row: row["val_accuracy"] or 0.0)
    for row in rows:
        print(f"funcnn: replica {row['replica']}: " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                             for k, v in row.items() if k != "replica"))
    print(f"funcnn: {replicas} replicas trained in {result.seconds:.1f} s; best validation accuracy: replica "
          f"{best['replica']} (test accuracy {best['test_accuracy']:.4f}); outputs in {out}")
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
