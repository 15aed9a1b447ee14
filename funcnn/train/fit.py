"""The training loop: epochs of compiled steps, validation, logging, checkpoints, resuming, early stopping.

Determinism: the example order of epoch e is a permutation drawn from fold_in(data_key, e) and the key of global
step t is fold_in(step_key, t), so a run is a function of (initial parameters, data, key, settings), bitwise on CPU,
and a resumed run repeats exactly what the uninterrupted one would have done.

Checkpoints (`<out_dir>/checkpoint.npz`, see `funcnn.save`) hold the parameters, model state, optimiser state,
the key, the step, the position in the data order (epoch, batch), the running epoch metrics and the early-stopping
and plateau counters. They are written atomically: a crash while writing leaves the previous one intact.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..catalog import BEST, CHECKPOINT, METRICS
from ..data.batching import batch_indices, batches, num_batches
from ..io import CorruptFileError, atomic_path, load, save
from .distributed import is_main
from .loop import Loop, Progress, log, train as train_loop
from .parallel import data_mesh, local_copy, make_data_parallel_train_step, replicate, shard_batch
from .recipes import Plateau, get_learning_rate
from .settings import FitSettings, settings_for
from .steps import classification_loss, evaluate, logits_of, make_eval_step, make_train_step


@dataclasses.dataclass
class FitResult:
    params: object
    state: object
    opt_state: object
    history: list
    step: int
    stopped_early: bool
    best_val_accuracy: float | None  # None when nothing was validated, or the model is not a classifier
    best_val_loss: float | None = None


def _result(trees, progress: Progress) -> FitResult:
    """progress.best is the best validation score: an accuracy for classifiers, minus the loss otherwise."""
    history = progress.history[0]
    validated = [r for r in history if "val_loss" in r]
    classifier = any("val_accuracy" in r for r in validated)
    best_loss = min((r["val_loss"] for r in validated), default=None)
    best = float(progress.best)
    accuracy = best if classifier and best != -math.inf else None
    return FitResult(*trees, history, progress.step, progress.stopped == "early", accuracy, best_loss)


def _raw_key(key):
    key = jnp.asarray(key) if not hasattr(key, "dtype") else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


FIT_FILES = (CHECKPOINT, METRICS, BEST)  # what fit writes in out_dir

# the scalars a checkpoint holds besides the trees, with their types (the load template is derived from this)
COUNTERS = {"step": np.int64, "epoch": np.int64, "batch": np.int64, "batch_size": np.int64, "stale": np.int64,
            "plateau_bad": np.int64, "best": np.float64, "plateau_best": np.float64, "loss_sum": np.float64,
            "correct": np.float64, "count": np.float64, "epoch_seconds": np.float64}


def _counters(progress: Progress, batch_size: int, plateau: Plateau | None) -> dict:
    """The checkpoint's counters (COUNTERS) for `progress`, as 0-d arrays of their declared types."""
    sums = {k: float(progress.sums.get(k, 0.0)) for k in ("loss_sum", "count")}
    values = dict(step=progress.step, epoch=progress.epoch, batch=progress.batch, batch_size=batch_size,
                  stale=int(progress.stale), best=float(progress.best), epoch_seconds=progress.epoch_seconds,
                  plateau_bad=plateau.bad_epochs if plateau else 0,
                  plateau_best=plateau.best if plateau and plateau.best is not None else -math.inf,
                  correct=float(progress.sums.get("correct", math.nan)), **sums)
    return {k: np.asarray(values[k], COUNTERS[k]) for k in COUNTERS}


def _progress(counters: dict, history: list, plateau: Plateau | None) -> Progress:
    """The Progress a checkpoint's counters describe (the inverse of `_counters`)."""
    c = {k: v.item() for k, v in counters.items()}
    sums = {k: np.float64(c[k]) for k in ("loss_sum", "count", "correct") if math.isfinite(c[k])}
    if plateau is not None:
        plateau.best = None if c["plateau_best"] == -math.inf else c["plateau_best"]
        plateau.bad_epochs = c["plateau_bad"]
    return Progress(step=c["step"], epoch=c["epoch"], batch=c["batch"], sums=sums, epoch_seconds=c["epoch_seconds"],
                    best=np.float64(c["best"]), stale=np.int64(c["stale"]), history=[history])


def _read_history(path: Path, completed_epochs: int) -> list:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["epoch"] <= completed_epochs]


def _write_history(path: Path, history: list) -> None:
    with atomic_path(path, suffix=".jsonl") as tmp:
        Path(tmp).write_text("".join(json.dumps(row) + "\n" for row in history))


def _length(tree, what, where="fit"):
    for leaf in jax.tree_util.tree_leaves(tree):
        if np.ndim(leaf) == 0:  # a Python list of labels is a pytree of scalars, not one array
            raise TypeError(f"{where}: {what} must be arrays with one row per example, got a "
                            f"{type(tree).__name__} holding {type(leaf).__name__} values (np.asarray it)")
    lengths = {len(leaf) for leaf in jax.tree_util.tree_leaves(tree)}
    if len(lengths) != 1:
        raise ValueError(f"{where}: the arrays of {what} have different lengths {sorted(lengths)}")
    return lengths.pop()


def check_examples(apply, params, state, split, what, loss, where: str = "fit") -> int:
    """The number of examples in `split` = (x, y), after checking that x and y have one entry per example and, for
    the default classification loss, that y holds integer labels in [0, number of logits). `where` names the caller
    in the errors (fit, fit_replicas)."""
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"{where}: {what} must be a pair (x, y), got {type(split).__name__}")
    x, y = split
    n, m = _length(x, f"{what} x", where), _length(y, f"{what} y", where)
    if n != m:
        raise ValueError(f"{where}: {what} has {n} inputs but {m} labels: one label per example")
    if n == 0:
        raise ValueError(f"{where}: {what} holds no example")
    sample = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((1, *np.shape(a)[1:]), jnp.asarray(a).dtype), x)
    try:  # one example through the model, shapes only: a wrong input shape is named here, not deep in a layer
        outputs = jax.eval_shape(lambda p, s, xb: apply(p, s, xb, train=False)[0], params, state, sample)
    except (ValueError, TypeError) as err:
        shapes = jax.tree_util.tree_map(np.shape, x)
        raise ValueError(f"{where}: {what} x of shape {shapes} does not fit the model: {str(err).splitlines()[0]}") \
            from None
    if loss is classification_loss:
        labels = np.asarray(y[0] if isinstance(y, (tuple, list)) else y)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{where}: {what} labels must be integer class indices for the classification loss, got "
                             f"dtype {labels.dtype} (pass loss= for regression targets)")
        classes = logits_of(outputs).shape[-1]
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if bad.size:
            raise ValueError(f"{where}: {what} label {labels[bad[0]]} at index {bad[0]} is outside [0, {classes}), the "
                             f"model's {classes} classes ({bad.size} labels out of range)")
    return n


def fit(apply: Callable, params, state, optimizer, train, val=None, *, key, loss: Callable = classification_loss,
        augment: Callable | None = None, settings: FitSettings | None = None, **options) -> FitResult:
    """Train `apply` on `train` = (x, y) for `epochs` epochs, validating on `val` = (x, y) after each.

    Args:
      apply, params, state: the model (see funcnn.layers) and its initial parameters and state.
      optimizer: an optax GradientTransformation (funcnn.train.recipes for the lectures' ones).
      key: PRNG key for the data order, the augmentation and Dropout.
      loss: (outputs, labels) -> per-example losses; augment: an optional (key, image) -> image.
      settings: a `FitSettings` (epochs, batch_size, out_dir, early_stopping, ...; its docstring says each);
        keyword `options` are its fields and replace the given (or default) settings' values:
        `fit(..., epochs=3)` is `fit(..., settings=FitSettings(epochs=3))`.

    The settings in short: out_dir is where metrics.jsonl, checkpoint.npz and best.npz go (None: nothing is
    written); runs never mix: an out_dir that already holds them is refused unless resume=True (continue from its
    checkpoint; the result equals an uninterrupted run) or overwrite=True (delete them first). early_stopping stops
    when the validation score has not improved for that many epochs (best.npz keeps the best parameters); the score
    is the accuracy for a classifier (integer labels, logits one axis longer), minus the validation loss for any
    other model (regression, autoencoders; labels may be a pytree). plateau_patience needs an optimiser with an
    injectable learning rate.

    Raises:
      ValueError: a setting out of range (`SettingError`: epochs, batch_size, ... < 1, a learning rate <= 0), a
        batch larger than the training set, or data that does not fit the model (labels outside its classes, x
        and y of different lengths), naming the argument.
      TypeError: a keyword that is no setting, an optimiser, loss or key of the wrong kind.
      TrainingDiverged: the loss became NaN or infinite; the last good checkpoint is kept.
    """
    settings = settings_for("fit", settings, options)
    batch_size = settings.batch_size
    _check_parts(optimizer, loss, augment, key, settings.out_dir)
    n_train = _check_settings(apply, params, state, loss, train, val, settings)
    train, val = tuple(train), None if val is None else tuple(val)  # (x, y): a Split or list becomes a plain pair
    out = Path(settings.out_dir) if settings.out_dir is not None else None
    writer = out is not None and is_main()  # in a multi-process run, process 0 writes the files
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        if settings.overwrite:
            for name in FIT_FILES:
                (out / name).unlink(missing_ok=True)
    key = _raw_key(key)
    # the compiled step donates its buffers; train on copies so the caller's params and state stay usable
    params, state = jax.tree.map(jnp.copy, (params, state))
    trees = (params, state, optimizer.init(params))
    plateau = Plateau(settings.plateau_patience, settings.plateau_factor) if settings.plateau_patience else None
    _check_learning_rate(trees[2], plateau)
    progress = Progress()
    if settings.resume:
        trees, progress = _restore(out, trees, key, batch_size, plateau, rewrite_history=writer)
    mesh = data_mesh() if jax.process_count() > 1 else None  # several processes: one Mesh over all their devices
    if mesh is not None:
        trees = replicate(trees, mesh)
    show = settings.progress and is_main()
    files = _Files(out, key, batch_size, plateau, mesh) if writer else None
    loop = Loop(epochs=settings.epochs, per_epoch=num_batches(n_train, batch_size, settings.drop_last),
                batches=_epoch_batches(train, n_train, key, batch_size, settings.drop_last, mesh),
                step=_compiled_step(apply, optimizer, loss, augment, trees, train, batch_size, key, mesh, show),
                validate=None if val is None else _validation(apply, loss, val, settings.eval_batch_size, mesh),
                checkpoint=files.checkpoint if files else Loop.checkpoint,
                record=files.record if files else Loop.record, save_best=files.save_best if files else Loop.save_best,
                kept=lambda: _kept(out), checkpoint_every=settings.checkpoint_every, max_steps=settings.max_steps,
                early_stopping=settings.early_stopping, plateau=plateau, show=show)
    trees = train_loop(loop, trees, progress)
    return _result(_host(trees, mesh), progress)


def _check_settings(apply, params, state, loss, train, val, settings: FitSettings) -> int:
    """ValueError (FileNotFoundError for a missing checkpoint) naming the setting that does not fit the data or the
    out_dir, or the data that does not fit the model; the number of training examples otherwise. (Each setting's
    own range was checked when `settings` was made.)"""
    out_dir, resume, overwrite, batch_size = settings.out_dir, settings.resume, settings.overwrite, settings.batch_size
    drop_last = settings.drop_last
    if (settings.early_stopping or settings.plateau_patience) and val is None:
        raise ValueError("fit: early_stopping and plateau_patience monitor validation accuracy: pass val=(x, y)")
    if out_dir is not None and not (resume or overwrite):
        held = [name for name in FIT_FILES if (Path(out_dir) / name).exists()]
        if held:
            raise ValueError(f"fit: out_dir {out_dir} already holds a run ({', '.join(held)}); runs never mix: pass "
                             "resume=True to continue it, overwrite=True to replace it, or another out_dir")
    if resume and not (Path(out_dir) / CHECKPOINT).exists():
        raise FileNotFoundError(f"fit: resume=True but there is no checkpoint to resume: {Path(out_dir) / CHECKPOINT} "
                                "does not exist")
    n_train = check_examples(apply, params, state, train, "train", loss)
    if val is not None:
        check_examples(apply, params, state, val, "val", loss)
    if drop_last and batch_size > n_train:
        raise ValueError(f"fit: batch_size={batch_size} is larger than the {n_train} training examples; with "
                         "drop_last no step would run (use a smaller batch_size, or drop_last=False)")
    processes = jax.process_count()
    if processes > 1 and not drop_last:
        raise ValueError("fit: a multi-process run splits every batch evenly: it needs drop_last=True")
    if processes > 1 and batch_size % jax.device_count():
        raise ValueError(f"fit: batch_size={batch_size} must divide evenly over the {jax.device_count()} devices "
                         f"of the {processes} processes")
    return n_train


def _check_parts(optimizer, loss, augment, key, out_dir) -> None:
    """TypeError / ValueError naming the argument: an optimiser that is no optax transformation, a loss or augment
    that cannot be called, a key that is no PRNG key, an out_dir that is a file."""
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"fit: optimizer must be an optax GradientTransformation (train.adam(), optax.sgd(0.1), ...), "
                        f"got {type(optimizer).__name__} {optimizer!r:.40}")
    for name, value in (("loss", loss), ("augment", augment)):
        if value is not None and not callable(value):
            raise TypeError(f"fit: {name} must be a function, got {type(value).__name__} {value!r:.40}")
    raw = _raw_key(key) if hasattr(key, "dtype") else None
    if raw is None or np.ndim(raw) != 1 or not np.issubdtype(np.asarray(raw).dtype, np.unsignedinteger):
        raise TypeError(f"fit: key must be a PRNG key (jax.random.PRNGKey(seed) or jax.random.key(seed)), got "
                        f"{type(key).__name__} {key!r:.60}")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f"fit: out_dir {out_dir} is a file, not a directory")


def _check_learning_rate(opt_state, plateau) -> None:
    if plateau is not None:
        get_learning_rate(opt_state)  # fail early without an injectable learning rate
    if hasattr(opt_state, "hyperparams") and "learning_rate" in opt_state.hyperparams:
        lr = float(np.asarray(opt_state.hyperparams["learning_rate"]))
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"fit: the optimiser's learning_rate must be a finite number > 0, got {lr}")


def _restore(out: Path, trees, key, batch_size: int, plateau, *, rewrite_history: bool):
    """The trees and Progress of out/checkpoint.npz, after checking it was written with this batch size and key;
    metrics.jsonl is trimmed to the epochs the checkpoint completed."""
    params, state, opt_state = trees
    like = {"params": params, "state": state, "opt_state": opt_state, "key": key,
            "counters": {k: np.zeros((), t) for k, t in COUNTERS.items()}}
    try:
        ckpt = load(out / CHECKPOINT, like=like)
    except CorruptFileError as err:
        raise CorruptFileError(f"fit: the checkpoint in {out} does not fit this run's model and optimiser: {err}") \
            from None
    written_with = ckpt["counters"]["batch_size"].item()
    if written_with != batch_size:
        raise ValueError(f"fit: the checkpoint in {out} was written with batch_size={written_with}, "
                         f"resuming with {batch_size} would change the data order")
    if not np.array_equal(np.asarray(ckpt["key"]), np.asarray(key)):
        raise ValueError(f"fit: the checkpoint in {out} was written with another key")
    history = _read_history(out / METRICS, ckpt["counters"]["epoch"].item())
    if rewrite_history:
        _write_history(out / METRICS, history)
    return (ckpt["params"], ckpt["state"], ckpt["opt_state"]), _progress(ckpt["counters"], history, plateau)


def _host(tree, mesh):
    """The tree as this process holds it (its copy of the replicated arrays in a multi-process run)."""
    return tree if mesh is None else local_copy(tree)


def _kept(out) -> str:
    if out is not None and (out / CHECKPOINT).exists():
        return f"the last good checkpoint is kept at {out / CHECKPOINT}"
    return "no checkpoint was written"


@dataclasses.dataclass(frozen=True)
class _Files:
    """What a run writes in out_dir (process 0 only): the checkpoint, the metrics log and the best parameters."""
    out: Path
    key: Any
    batch_size: int
    plateau: Plateau | None
    mesh: Any

    def checkpoint(self, trees, progress: Progress) -> None:
        params, state, opt_state = _host(trees, self.mesh)
        save(self.out / CHECKPOINT, {"params": params, "state": state, "opt_state": opt_state, "key": self.key,
                                     "counters": _counters(progress, self.batch_size, self.plateau)})

    def record(self, trees, rows, progress) -> None:
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(rows[0]) + "\n")

    def save_best(self, trees, improved) -> None:
        params, state, _ = _host(trees, self.mesh)
        save(self.out / BEST, {"params": params, "state": state})


def _epoch_batches(train, n: int, key, batch_size: int, drop_last: bool, mesh):
    """(epoch, first batch) -> that epoch's batches, in the order fold_in(data key, epoch) draws. In a multi-process
    run each process takes its rows of every global batch (the global order is the one-process order for the same
    key) and places them on the Mesh."""
    x, y = train
    data_key = jax.random.fold_in(key, 0)

    def epoch(e, start):
        order_key = jax.random.fold_in(data_key, e)
        if mesh is None:
            yield from batches(x, y, batch_size, key=order_key, drop_last=drop_last, start=start)
            return
        share, rank = batch_size // jax.process_count(), jax.process_index()
        for index in batch_indices(n, batch_size, key=order_key, drop_last=True, start=start):
            rows = index[rank * share:(rank + 1) * share]
            yield shard_batch(jax.tree.map(lambda a: np.asarray(a)[rows], (x, y)), mesh, local=True)

    return epoch


def _compiled_step(apply, optimizer, loss, augment, trees, train, batch_size: int, key, mesh, show: bool):
    """(trees, batch, global step) -> (trees, metrics on the host). The step is compiled before the first batch, so
    that the first epoch's progress, ETA and images/s measure training; a last partial batch compiles its own."""
    step_key = jax.random.fold_in(key, 1)

    def key_at(t):
        key_t = jax.random.fold_in(step_key, t)
        return key_t if mesh is None else replicate(key_t, mesh)

    if mesh is None:
        train_step = make_train_step(apply, optimizer, loss, augment=augment)
    else:
        train_step = make_data_parallel_train_step(apply, optimizer, loss, mesh=mesh, augment=augment)
    example = jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch_size, *np.shape(a)[1:]), jnp.asarray(a[:1]).dtype),
                           train)
    if show:
        log("compiling the training step ...")
    started = time.perf_counter()
    compiled = train_step.lower(*trees, example, key_at(0)).compile()
    if show:
        log(f"compiled in {time.perf_counter() - started:.1f} s")

    def step(trees, batch, t):
        full = all(np.shape(a)[0] == batch_size for a in jax.tree.leaves(batch))
        *trees, metrics = (compiled if full else train_step)(*trees, batch, key_at(t))
        return tuple(trees), _host(metrics, mesh)

    return step


def _validation(apply, loss, val, eval_batch_size: int, mesh):
    eval_step = make_eval_step(apply, loss)

    def validate(trees):
        params, state = _host(trees[:2], mesh)
        return evaluate(eval_step, params, state, val[0], val[1], eval_batch_size)

    return validate
