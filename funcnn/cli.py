"""The `funcnn` command (also `python -m funcnn`): train, gradcheck, summary.

    funcnn train                      # LeNet-5 on the digits scikit-learn ships, 10 epochs, into runs/lenet5-digits
    funcnn train --model resnet20 --dataset cifar10 --data-dir ~/data/cifar --epochs 30 --optimizer resnet
    funcnn gradcheck                  # every primitive's rules: both modes, finite differences, vmap, jit, ...
    funcnn summary --model vgg16      # the layer table and parameter count (--paths: which conv algorithm runs)
    funcnn export --model lenet5 --params runs/lenet5-digits/params.npz --out lenet5.jaxexport

The command only parses: training is `funcnn.train.run`, the checker `funcnn.verify.run_sweep`. Nothing imports JAX
before a command needs it, so `--help` and `--version` answer at once.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__, catalog

OUTPUTS = "The output directory holds:\n" + "".join(
    f"  {name:<18} {what}\n" for name, what in catalog.RUN_FILES.items()) + """
Without --out each run gets a new directory: runs/MODEL-DATASET, then runs/MODEL-DATASET-2, -3, ...
An --out that already holds a run is refused unless --overwrite (replace it) or --resume (continue it, with the
settings it was started with).
"""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default in its help, once (not where the help already says it or there is none to show), and
    the epilog's layout kept."""

    def _get_help_string(self, action):
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "default" in text or nothing or action.default == []:
            return text
        return f"{text} (default: %(default)s)"


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model and write metrics, checkpoints and plots",
                       description="Train a model of the zoo on a data set.", epilog=OUTPUTS,
                       formatter_class=_Formatter)
    p.add_argument("--model", default="lenet5", help=f"one of: {', '.join(catalog.MODELS)}")
    p.add_argument("--dataset", default="digits", help=f"one of: {', '.join(catalog.DATASETS)}")
    p.add_argument("--data-dir", help="folder holding the data files (MNIST / Fashion-MNIST IDX files, CIFAR-10 "
                                      "python archive); default: the cache ($FUNCNN_DATA or ~/.cache/funcnn)")
    p.add_argument("--download", action="store_true", help="download missing data files into the data directory "
                                                           "(SHA-256 verified); without it the network is never used")
    p.add_argument("--epochs", type=int, default=10, help="epochs to train (>= 1)")
    p.add_argument("--batch-size", type=int, default=32, help="examples per step (>= 1, at most the training set)")
    p.add_argument("--optimizer", default="adam", help=f"one of: {', '.join(catalog.OPTIMIZERS)}")
    p.add_argument("--lr", type=float, default=None, help="learning rate (> 0; default: the recipe's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation, data order and dropout")
    p.add_argument("--out", default=None, help="output directory (default: a new runs/MODEL-DATASET[-N])")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (default: the newest run of "
                                                         "MODEL on DATASET) from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run an existing --out holds")
    p.add_argument("--checkpoint-every", type=int, default=None, help="also checkpoint every N steps")
    p.add_argument("--early-stopping", type=int, default=None, help="stop after N epochs without val improvement")
    p.add_argument("--plateau", type=int, default=None, help="divide the learning rate by 10 after N epochs "
                                                             "without val improvement")
    p.add_argument("--augment", type=float, default=0.0, help="scale of the lecture's augmentations (0 = off)")
    p.add_argument("--precision", default="float32", choices=list(catalog.PRECISIONS),
                   help="compute dtype; parameters stay float32 (float16 adds dynamic loss scaling)")
    p.add_argument("--replicas", type=int, default=None,
                   help="train N independent models in one compiled step (vmapped on accelerators, a loop inside the "
                        "step on the CPU, where XLA runs that faster); replica r uses seed --seed + r")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="one value per replica of lr or wd (repeatable); without --replicas, one replica per value, "
                        "all with seed --seed; a single value is shared")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    d = p.add_argument_group("several processes (data parallel; see funcnn.train.distributed)")
    d.add_argument("--processes", type=int, default=None, help="start N processes on this machine, one run "
                                                               "(coordinator on 127.0.0.1)")
    d.add_argument("--local-devices", type=int, default=None, help="with --processes: simulated CPU devices per "
                                                                   "process")
    d.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="on a cluster: process 0's address (with --num-processes and --process-id; SLURM and Open "
                        "MPI need none of the three)")
    d.add_argument("--num-processes", type=int, default=None, help="on a cluster: the number of processes")
    d.add_argument("--process-id", type=int, default=None, help="on a cluster: this process's id, 0 .. N-1")


LAUNCHER_OPTIONS = {"--processes": 1, "--local-devices": 1}
CLUSTER_OPTIONS = ("coordinator", "num_processes", "process_id", "processes", "local_devices")


def build_parser():
    parser = argparse.ArgumentParser(prog="funcnn", formatter_class=_Formatter,
                                     description="funcnn: functional CNNs in JAX with hand-written VJPs. Without a "
                                                 "command, `funcnn` runs `funcnn train` with its defaults.")
    parser.add_argument("--version", action="version", version=f"funcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,gradcheck,summary,export}")
    _train_parser(sub)
    from .verify import sweep  # the standard library only: --help stays fast

    sweep.add_options(sub.add_parser("gradcheck", help="check every primitive's rules (python -m funcnn.verify)",
                                     description=sweep.DESCRIPTION, formatter_class=_Formatter))
    s = sub.add_parser("summary", help="print a model's layer table and parameter count",
                       description="The layer table of a zoo model (no parameter is allocated).",
                       formatter_class=_Formatter)
    s.add_argument("--model", required=True, help=f"one of: {', '.join(catalog.MODELS)}")
    s.add_argument("--num-classes", type=int, default=None, help="classes of the output layer (default: the "
                                                                 "model's)")
    s.add_argument("--input-shape", type=int, nargs="+", metavar="SIZE",
                   help="one example's shape, of the model's rank: H W C, or T H W C for the 3-D models (default: "
                        "the model's)")
    s.add_argument("--paths", action="store_true", help="also print which algorithm computes each convolution's "
                                                        "forward, dX and dW on this backend, and in which engine")
    s.add_argument("--batch-size", type=int, default=128, help="the batch the --paths table is traced for (a dW's "
                                                              "CPU engine can depend on it)")
    s.add_argument("--cpu-engine", choices=list(catalog.CPU_ENGINES), default=None,
                   help="the CPU engine setting the --paths table assumes: onednn, eigen (XLA's paths, no "
                        "YNNPACK), xla (YNNPACK where XLA's CPU backend takes the op) or ynn-dots (default: the "
                        "process's, what funcnn train and a plain jax.jit use: onednn where funcnn's oneDNN engine "
                        "is built, else eigen; $FUNCNN_CPU_ENGINE sets it)")
    e = sub.add_parser("export", help="serialise a trained model for deployment (jax.export, or ONNX)",
                       description="Write a trained model's inference function (parameters included, any batch size) "
                                   "as a jax.export artifact that JAX alone can load and run, or (--format onnx) as "
                                   "an ONNX model for onnxruntime and other ONNX runtimes.",
                       formatter_class=_Formatter,
                       epilog="Load it without funcnn:\n  from jax import export\n"
                              "  model = export.deserialize(open(FILE, 'rb').read())\n  logits = model.call(images)\n"
                              "or, for --format onnx:\n  import onnxruntime\n"
                              "  session = onnxruntime.InferenceSession(FILE)\n"
                              "  logits = session.run(None, {'images': images})[0]")
    e.add_argument("--model", required=True, help=f"one of: {', '.join(catalog.MODELS)}")
    e.add_argument("--params", required=True, help="a params.npz or best.npz that funcnn train wrote")
    e.add_argument("--out", required=True, help="the file to write (e.g. model.jaxexport, or model.onnx)")
    e.add_argument("--format", choices=["jax", "onnx"], default="jax",
                   help="jax: a jax.export artifact (StableHLO); onnx: an ONNX model through jax2onnx (needs "
                        "pip install 'funcnn[onnx]')")
    e.add_argument("--platform", action="append", default=None, choices=["cpu", "cuda", "rocm", "tpu"],
                   help="a platform to lower for (repeatable; default: cpu; --format jax only)")
    e.add_argument("--input-shape", type=int, nargs="+", metavar="SIZE",
                   help="one example's shape, of the model's rank: H W C, or T H W C for the 3-D models (default: "
                        "the model's)")
    return parser


def export_command(args) -> int:
    from .deploy import ExportArgumentError, export_saved  # here: --help answers before JAX loads

    flags = {"model": "--model", "params": "--params", "input_shape": "--input-shape", "platforms": "--platform",
             "out": "--out", "format": "--format"}
    try:
        report = export_saved(args.model, args.params, args.out, input_shape=args.input_shape,
                              platforms=args.platform, format=args.format)
    except FileNotFoundError as err:
        raise CliError(f"--params: {err}") from None
    except ExportArgumentError as err:
        raise CliError(f"{flags[err.argument]}: {err}") from None
    except ImportError as err:
        raise CliError(f"--format {args.format}: {err}") from None
    where = f"platforms {', '.join(report.platforms)}" if report.platforms else "ONNX"
    print(f"funcnn: wrote {report.model} ({report.parameters:,} parameters, input (batch, "
          f"{', '.join(map(str, report.input_shape))}), {where}) to {report.path}")
    return 0


def _without(argv, options):
    """argv without the given options and their values (`--name value` or `--name=value`)."""
    kept, skip = [], 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        name = item.split("=", 1)[0]
        if name in options:
            skip = 0 if "=" in item else options[name]
            continue
        kept.append(item)
    return kept


def _launch(args, options) -> int:
    """`funcnn train --processes N`: choose the run directory once, then start N copies of the command."""
    from .train import distributed, pipeline  # here, as every command's imports: --help answers before JAX loads

    config = pipeline.RunConfig(**options)
    try:
        config.check()
        if pipeline.parse_sweep(config.sweep, config.replicas)[0] > 1:
            raise pipeline.RunError("--replicas / --sweep train in one process; they do not combine with --processes")
        out = pipeline.run_directory(config)
    except pipeline.RunError as err:
        raise CliError(str(err)) from None
    command = [sys.executable, "-m", "funcnn", "train",
               *_without(args.raw_argv[1:], {**LAUNCHER_OPTIONS, "--out": 1}), "--out", str(out)]
    return distributed.launch(command, args.processes, local_devices=args.local_devices,
                              log=lambda line: print(line, file=sys.stderr))


def _check_engine_environment() -> None:
    """$FUNCNN_CPU_ENGINE and $FUNCNN_ONEDNN_THREADS, checked before any work (a misspelt value is the user's
    setting, not the data's: named as such, not as a failure of the first step)."""
    from .primitives.conv import tracing  # here: --help answers before JAX loads
    from .primitives.conv.paths import onednn

    try:
        tracing.default_cpu_engine()
        onednn.threads_from_environment()
    except ValueError as err:
        raise CliError(f"environment: {err}") from None


def train_command(args) -> int:
    from .train import distributed, pipeline  # here: --help answers before JAX loads
    from .train.loop import TrainingDiverged

    options = {k: v for k, v in vars(args).items()
               if k not in ("command", "no_progress", "no_plots", "raw_argv", *CLUSTER_OPTIONS)}
    options.update(progress=not args.no_progress, plots=not args.no_plots, sweep=tuple(args.sweep))
    if args.processes is not None and args.processes < 1:
        raise CliError(f"--processes must be an integer >= 1, got {args.processes}")
    if args.local_devices is not None and args.local_devices < 1:
        raise CliError(f"--local-devices must be an integer >= 1, got {args.local_devices}")
    if args.local_devices is not None and args.processes is None:
        raise CliError("--local-devices sets the simulated CPU devices of each process that --processes starts; "
                       "pass --processes N with it")
    _check_engine_environment()
    if args.processes is not None and args.processes > 1 and distributed.settings_from_environment() is None:
        return _launch(args, options)
    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except distributed.DistributedError as err:
        raise CliError(str(err)) from None
    try:
        pipeline.run(pipeline.RunConfig(**options))
    except (pipeline.RunError, TrainingDiverged) as err:
        raise CliError(str(err)) from None
    except distributed.PeerLost as err:
        print(f"funcnn: error: {err}", file=sys.stderr, flush=True)
        distributed.exit_now(3)
    return 0


def gradcheck_command(args) -> int:
    from .verify.sweep import run_args  # here: --help answers before JAX loads

    try:
        return run_args(args)
    except ValueError as err:
        raise CliError(str(err)) from None


def summary_command(args) -> int:
    from . import models  # here: --help answers before JAX loads
    from .describe import paths_table, summary

    try:
        constructor = models.get(args.model)
    except ValueError as err:
        raise CliError(str(err)) from None
    if args.num_classes is not None and args.num_classes < 1:
        raise CliError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    default = models.INPUT_SHAPES[args.model]
    if args.input_shape is not None and (len(args.input_shape) != len(default) or min(args.input_shape) < 1):
        raise CliError(f"--input-shape must be {len(default)} sizes >= 1 for {args.model} (default: "
                       f"{' '.join(map(str, default))}), got {' '.join(map(str, args.input_shape))}")
    shape = tuple(args.input_shape) if args.input_shape else default
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    try:
        model = constructor(**kwargs)
        summary(model.init, (1, *shape))
        if args.paths:
            print()
            paths_table(model, (args.batch_size, *shape), cpu_engine=args.cpu_engine)
    except ValueError as err:
        raise CliError(str(err)) from None
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train", *argv]  # no command: train's options
    args = parser.parse_args(argv)
    args.raw_argv = argv
    handlers = {"train": train_command, "gradcheck": gradcheck_command, "summary": summary_command,
                "export": export_command}
    try:
        return handlers[args.command](args)
    except CliError as err:
        print(f"funcnn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("funcnn: interrupted; the last complete checkpoint is kept (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
