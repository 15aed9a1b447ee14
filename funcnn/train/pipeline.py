"""The main job as a library function: `funcnn train ...` is `funcnn.train.run(RunConfig(...))`.

    from funcnn import train
    result = train.run(model="lenet5", dataset="digits", epochs=10)      # what `funcnn train` does
    result.out_dir, result.results["test_accuracy"]

A run loads the data set (the network only with download=True), builds the model and the optimiser (with the
precision policy), trains it with `fit` (or `fit_replicas` for a sweep), evaluates on the test split and writes
every output into one run directory: config.json, metrics.jsonl, checkpoint.npz, best.npz, params.npz,
results.json and the plots.

Run directories never mix two runs: without `out`, a run goes to runs/<model>-<dataset>, or to the first of
runs/<model>-<dataset>-2, -3, ... that holds no run yet; an `out` that already holds a run is refused unless
`overwrite=True` (its earlier outputs are deleted first) or `resume=True` (the run continues from its checkpoint;
without `out`, the newest run of that model and dataset).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import data, models, viz
from ..data.files import DataError
from ..io import atomic_path, save
from . import recipes
from .batched import fit_replicas, init_replicas, replica
from .distributed import DistributedError, agree, broadcast_text, is_main, peers_watched
from .fit import fit
from .precision import with_precision
from .rundir import RUN_FILES, RUN_MARKERS, clear_run, holds_run, resumed_settings, run_directory, writable
from .runconfig import PRECISIONS, SWEEPABLE, RunConfig, RunError, parse_sweep
from .steps import evaluate, make_eval_step, predict


@dataclasses.dataclass
class RunResult:
    out_dir: Path
    results: dict           # what results.json holds
    fit: object             # the FitResult (one model) or ReplicaResult (a sweep)


@dataclasses.dataclass(frozen=True)
class Job:
    """A run made ready: its settings, where it writes, the model and optimiser built, the data loaded."""
    config: RunConfig
    out: Path
    model: object           # the zoo constructor's result (init, apply)
    apply: Callable         # model.apply under the precision policy
    optimizer: object       # under the precision policy
    augment: Callable | None
    shape: tuple            # the model's input shape (without the batch axis)
    train: tuple            # (x, y) of each split, fitted to the input shape
    val: tuple
    test: tuple
    class_names: list
    replicas: int           # 1, or the number of models a sweep trains in one compiled step
    sweep: dict             # the swept hyperparameters, one value per replica
    log: Callable[[str], None]


def run(config: RunConfig | None = None, *, log: Callable[[str], None] = print, **options) -> RunResult:
    """Train a zoo model on a data set and write every output (see the module docstring).

    `config` and/or keyword options (the fields of RunConfig) give the settings; `log` receives the progress lines
    (`print` by default). Raises RunError for a wrong setting, a missing or corrupt data file, or data that does not
    fit the model, before anything is written; TrainingDiverged when the loss becomes NaN; distributed.PeerLost when
    another process of a multi-process run is gone.
    """
    if config is not None and not isinstance(config, RunConfig):
        raise RunError(f"run: config must be a RunConfig (or pass the settings as keywords), got "
                       f"{type(config).__name__}")
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RunError(f"run: unknown option {unknown[0]!r}; the options are RunConfig's fields: "
                       f"{', '.join(sorted(known))}")
    config = dataclasses.replace(config or RunConfig(), **options)
    config.check()
    if not is_main():
        log = lambda line: None  # noqa: E731 - process 0 speaks for the run
    with peers_watched():  # several processes: a peer gone at any collective is PeerLost, not the collective's error
        return _run_checked(config, log)


def _run_checked(config: RunConfig, log: Callable[[str], None]) -> RunResult:
    """`run` after its settings are checked: the names, the directory, the data, then the training."""
    _check_names(config)
    out = _choose_directory(config)
    resumptions = []
    if config.resume:
        config, resumptions = resumed_settings(config, out)
    job = _prepare(config, out, log)
    if is_main():
        _start_directory(job, resumptions)
    x_train, x_val, x_test = (split[0] for split in (job.train, job.val, job.test))
    log(f"funcnn: training {config.model} on {config.dataset} ({len(x_train)} train / {len(x_val)} val / "
        f"{len(x_test)} test) for {config.epochs} epochs into {job.out}"
        + (f", {job.replicas} replicas in one compiled step" if job.replicas > 1 else "")
        + (f"; {resumptions[-1]}" if resumptions else ""))
    return _run_replicas(job) if job.replicas > 1 else _run_one(job)


def _check_names(config: RunConfig) -> None:
    """RunError for an unknown model, dataset or optimiser, a missing data directory, or (several processes) a
    sweep or settings that differ between the processes."""
    if jax.process_count() > 1:
        if parse_sweep(config.sweep, config.replicas)[0] > 1:
            raise RunError("--replicas / --sweep train in one process; they do not combine with several processes")
        shared = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "progress", "plots")}
        try:
            agree(json.dumps(shared, sort_keys=True))
        except DistributedError as err:
            raise RunError(str(err)) from None
    try:
        models.get(config.model)
    except ValueError as err:
        raise RunError(str(err)) from None
    if config.dataset not in data.LOADERS:
        raise RunError(f"unknown dataset {config.dataset!r}; known datasets: {', '.join(sorted(data.LOADERS))}")
    if config.optimizer not in recipes.RECIPES:
        raise RunError(f"unknown optimizer {config.optimizer!r}; known: {', '.join(sorted(recipes.RECIPES))}")
    if config.data_dir is not None and not Path(config.data_dir).expanduser().is_dir():
        raise RunError(f"data directory does not exist: {config.data_dir}")


def _choose_directory(config: RunConfig) -> Path:
    """`run_directory`; with several processes, process 0 chooses (or refuses) and every process follows."""
    if jax.process_count() == 1:
        return run_directory(config)
    choice = ""
    if is_main():
        try:
            choice = f"ok:{run_directory(config)}"
        except RunError as err:
            choice = f"error:{err}"
    choice = broadcast_text(choice)
    if choice.startswith("error:"):
        raise RunError(choice[len("error:"):])
    return Path(choice[len("ok:"):])


def _prepare(config: RunConfig, out: Path, log) -> Job:
    """Load the data, fit it to the model's input and build the model and the optimiser (RunError for data that
    is missing, corrupt or does not fit)."""
    try:
        ds = data.load(config.dataset, Path(config.data_dir).expanduser() if config.data_dir else None,
                       download=config.download)
    except (DataError, ValueError) as err:
        raise RunError(str(err)) from None
    shape = models.INPUT_SHAPES[config.model]
    try:
        train, val, test = ((data.fit_to_shape(s.x, shape), s.y) for s in (ds.train, ds.val, ds.test))
    except ValueError as err:
        raise RunError(f"{config.dataset} does not fit {config.model}'s input {shape}: {err}") from None
    if config.batch_size > len(train[0]):
        raise RunError(f"--batch-size {config.batch_size} is larger than the {len(train[0])} training examples of "
                       f"{config.dataset}: no step would run")
    model = models.get(config.model)(ds.num_classes)
    recipe = recipes.RECIPES[config.optimizer]
    apply, optimizer = with_precision(config.precision, model.apply, recipe() if config.lr is None else
                                      recipe(config.lr))
    augment = data.augment.lecture_augmentations(config.augment) if config.augment > 0 else None
    replicas, sweep = parse_sweep(config.sweep, config.replicas)
    return Job(config, out, model, apply, optimizer, augment, shape, train, val, test, ds.class_names, replicas,
               sweep, log)


def _start_directory(job: Job, resumptions: list) -> None:
    """Clear an overwritten run, check the directory is writable and record the settings the run goes on with
    (config.json; `resumptions`: a line per resumption saying from where and with which overrides)."""
    if job.config.overwrite and holds_run(job.out):
        clear_run(job.out)
    writable(job.out)
    record = dict(dataclasses.asdict(job.config), processes=jax.process_count(), devices=jax.device_count())
    record["resumed"] = resumptions
    with atomic_path(job.out / "config.json", suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2) + "\n")


def _run_one(job: Job) -> RunResult:
    """fit, then (process 0) the test split's numbers, params.npz, results.json and the plots."""
    config, out, key = job.config, job.out, jax.random.PRNGKey(job.config.seed)
    _, params, state = job.model.init(jax.random.fold_in(key, 0), (1, *job.shape))
    started = time.perf_counter()
    try:
        result = fit(job.apply, params, state, job.optimizer, job.train, job.val, key=jax.random.fold_in(key, 1),
                     augment=job.augment, settings=config.fit_settings(out))
    except (ValueError, FileNotFoundError) as err:
        raise RunError(str(err)) from None
    seconds = time.perf_counter() - started
    if not is_main():  # process 0 evaluates and writes the results
        return RunResult(out, {}, result)
    test = evaluate(make_eval_step(job.apply), result.params, result.state, *job.test)
    save(out / "params.npz", {"params": result.params, "state": result.state})
    results = {"model": config.model, "dataset": config.dataset, "test_loss": test["loss"],
               "test_accuracy": test["accuracy"], "best_val_accuracy": result.best_val_accuracy,
               "epochs_run": len(result.history), "steps": result.step, "train_seconds": seconds}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if config.plots:
        x_test, y_test = job.test
        predictions = np.asarray(predict(job.apply, result.params, result.state, x_test))
        viz.classifier_figures(job.model._replace(apply=job.apply), result.params, result.state, x_test, y_test,
                               predictions, job.class_names, out, metrics=out / "metrics.jsonl",
                               title=f"{config.model} on {config.dataset}")
    job.log(f"funcnn: test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) after {seconds:.1f} s; "
            f"outputs in {out}")
    return RunResult(out, results, result)


def _run_replicas(job: Job) -> RunResult:
    """fit_replicas over the sweep, then each replica's test numbers, results.json and the replicas plot."""
    config, replicas = job.config, job.replicas
    seeds = [config.seed + r if config.replicas else config.seed for r in range(replicas)]  # a pure sweep: one seed
    keys = [jax.random.PRNGKey(seed) for seed in seeds]
    params, state = init_replicas(job.model.init, (1, *job.shape), jnp.stack([jax.random.fold_in(k, 0) for k in keys]))
    hyperparams = {name: np.broadcast_to(values, (replicas,)) for name, values in job.sweep.items()}
    try:
        result = fit_replicas(job.apply, params, state, job.optimizer, job.train, job.val,
                              keys=jnp.stack([jax.random.fold_in(k, 1) for k in keys]), hyperparams=hyperparams,
                              augment=job.augment, settings=config.fit_settings(job.out))
    except ValueError as err:
        raise RunError(str(err)) from None
    eval_step = make_eval_step(job.apply)
    rows = []
    for r in range(replicas):
        test_metrics = evaluate(eval_step, replica(result.params, r), replica(result.state, r), *job.test)
        rows.append({"replica": r, "seed": seeds[r], **{k: float(v[r]) for k, v in hyperparams.items()},
                     "val_accuracy": result.histories[r][-1].get("val_accuracy") if result.histories[r] else None,
                     "test_accuracy": test_metrics["accuracy"], "test_loss": test_metrics["loss"]})
    results = {"model": config.model, "dataset": config.dataset, "train_seconds": result.seconds, "replicas": rows}
    (job.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if config.plots:
        _plot_replicas(job, result, seeds, hyperparams)
    best = max(rows, key=lambda row: row["val_accuracy"] or 0.0)
    for row in rows:
        job.log(f"funcnn: replica {row['replica']}: " + " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "replica"))
    job.log(f"funcnn: {replicas} replicas trained in {result.seconds:.1f} s; best validation accuracy: replica "
            f"{best['replica']} (test accuracy {best['test_accuracy']:.4f}); outputs in {job.out}")
    return RunResult(job.out, results, result)


def _plot_replicas(job: Job, result, seeds, hyperparams) -> None:
    def label(r):
        return ", ".join([f"seed {seeds[r]}"] + [f"{k} {v[r]:g}" for k, v in hyperparams.items()])

    histories = result.histories
    viz.plot_series({label(r): ([h["epoch"] for h in histories[r]], [h["val_accuracy"] for h in histories[r]])
                     for r in range(job.replicas)}, job.out / "replicas.png",
                    title=f"{job.config.model} on {job.config.dataset}: {job.replicas} replicas",
                    xlabel="epoch", ylabel="validation accuracy")


__all__ = ["RunConfig", "RunResult", "RunError", "run", "run_directory", "holds_run", "clear_run", "parse_sweep",
           "SWEEPABLE", "PRECISIONS", "RUN_FILES", "RUN_MARKERS"]
