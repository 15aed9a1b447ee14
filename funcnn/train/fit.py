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
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..data.batching import batches, epoch_order, num_batches
from ..io import atomic_path, load, save
from .recipes import Plateau, get_learning_rate, set_learning_rate
from .parallel import data_mesh, local_copy, make_data_parallel_train_step, replicate, shard_batch
from .steps import classification_loss, evaluate, make_eval_step, make_train_step

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
BEST = "best.npz"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the checkpoint that was kept."""


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


def _result(params, state, opt_state, history, step, stopped_early, best) -> FitResult:
    """best is the best validation score: an accuracy for classifiers, minus the loss otherwise."""
    validated = [r for r in history if "val_loss" in r]
    classifier = any("val_accuracy" in r for r in validated)
    best_loss = min((r["val_loss"] for r in validated), default=None)
    accuracy = best if classifier and best != -math.inf else None
    return FitResult(params, state, opt_state, history, step, stopped_early, accuracy, best_loss)


def _raw_key(key):
    key = jnp.asarray(key) if not hasattr(key, "dtype") else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


# the scalars a checkpoint holds besides the trees, with their types (the load template is derived from this)
COUNTERS = {"step": np.int64, "epoch": np.int64, "batch": np.int64, "batch_size": np.int64, "stale": np.int64,
            "plateau_bad": np.int64, "best": np.float64, "plateau_best": np.float64, "loss_sum": np.float64,
            "correct": np.float64, "count": np.float64, "epoch_seconds": np.float64}


def _counters(**values):
    """The checkpoint's counters as 0-d arrays of their declared types; every field of COUNTERS must be given."""
    if set(values) != set(COUNTERS):
        raise ValueError(f"checkpoint counters {sorted(values)} differ from {sorted(COUNTERS)}")
    return {k: np.asarray(values[k], COUNTERS[k]) for k in COUNTERS}


def _read_history(path: Path, completed_epochs: int) -> list:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["epoch"] <= completed_epochs]


def _write_history(path: Path, history: list) -> None:
    with atomic_path(path, suffix=".jsonl") as tmp:
        Path(tmp).write_text("".join(json.dumps(row) + "\n" for row in history))


def _positive(name, value, *, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fit: {name} must be an int >= 1, got {value!r}")


def _length(tree, what):
    lengths = {len(leaf) for leaf in jax.tree_util.tree_leaves(tree)}
    if len(lengths) != 1:
        raise ValueError(f"fit: the arrays of {what} have different lengths {sorted(lengths)}")
    return lengths.pop()


def check_examples(apply, params, state, split, what, loss) -> int:
    """The number of examples in `split` = (x, y), after checking that x and y have one entry per example and, for
    the default classification loss, that y holds integer labels in [0, number of logits)."""
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"fit: {what} must be a pair (x, y), got {type(split).__name__}")
    x, y = split
    n, m = _length(x, f"{what} x"), _length(y, f"{what} y")
    if n != m:
        raise ValueError(f"fit: {what} has {n} inputs but {m} labels: one label per example")
    if n == 0:
        raise ValueError(f"fit: {what} holds no example")
    if loss is classification_loss:
        from .steps import logits_of

        labels = np.asarray(y[0] if isinstance(y, (tuple, list)) else y)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"fit: {what} labels must be integer class indices for the classification loss, got "
                             f"dtype {labels.dtype} (pass loss= for regression targets)")
        sample = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((1, *np.shape(a)[1:]), jnp.asarray(a).dtype),
                                        x)
        classes = jax.eval_shape(lambda p, s, xb: logits_of(apply(p, s, xb, train=False)[0]), params, state,
                                 sample).shape[-1]
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if bad.size:
            raise ValueError(f"fit: {what} label {labels[bad[0]]} at index {bad[0]} is outside [0, {classes}), the "
                             f"model's {classes} classes ({bad.size} labels out of range)")
    return n


def fit(apply: Callable, params, state, optimizer, train, val=None, *, key, epochs: int = 10, batch_size: int = 64,
        loss: Callable = classification_loss, augment: Callable | None = None, out_dir=None,
        checkpoint_every: int | None = None, resume: bool = False, early_stopping: int | None = None,
        plateau_patience: int | None = None, plateau_factor: float = 0.1, drop_last: bool = True,
        max_steps: int | None = None, progress: bool = True, eval_batch_size: int = 256) -> FitResult:
    """Train `apply` on `train` = (x, y) for `epochs` epochs, validating on `val` = (x, y) after each.

    Args:
      apply, params, state: the model (see funcnn.layers) and its initial parameters and state.
      optimizer: an optax GradientTransformation (funcnn.train.recipes for the lectures' ones).
      key: PRNG key for the data order, the augmentation and Dropout.
      out_dir: where metrics.jsonl, checkpoint.npz and best.npz go (None: nothing is written).
      checkpoint_every: also checkpoint every N steps (always at the end of each epoch and of training).
      resume: continue from out_dir/checkpoint.npz (which must exist); the result equals an uninterrupted run.
      early_stopping: stop when the validation score has not improved for this many epochs (best.npz keeps the
        best parameters). The score is the accuracy for a classifier (integer labels, logits one axis longer),
        minus the validation loss for any other model (regression, autoencoders; labels may be a pytree).
      plateau_patience: divide the learning rate by 1/plateau_factor when the validation score has not improved
        for this many epochs (needs an optimiser with an injectable learning rate).
      max_steps: stop after this many steps in total (a checkpoint is written there).

    Raises:
      ValueError: a setting out of range (epochs, batch_size, ... < 1, a batch larger than the training set, a
        learning rate <= 0), or data that does not fit the model (labels outside its classes, x and y of different
        lengths), naming the argument.
      TrainingDiverged: the loss became NaN or infinite; the last good checkpoint is kept.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        _positive(name, value, allow_none=False)
    for name, value in (("checkpoint_every", checkpoint_every), ("early_stopping", early_stopping),
                        ("plateau_patience", plateau_patience), ("max_steps", max_steps)):
        _positive(name, value)
    if (early_stopping or plateau_patience) and val is None:
        raise ValueError("fit: early_stopping and plateau_patience monitor validation accuracy: pass val=(x, y)")
    if resume and out_dir is None:
        raise ValueError("fit: resume=True needs out_dir (where the checkpoint is)")
    if resume and not (Path(out_dir) / CHECKPOINT).exists():
        raise FileNotFoundError(f"fit: resume=True but there is no checkpoint to resume: {Path(out_dir) / CHECKPOINT} "
                                "does not exist")
    n_train = check_examples(apply, params, state, train, "train", loss)
    if val is not None:
        check_examples(apply, params, state, val, "val", loss)
    if drop_last and batch_size > n_train:
        raise ValueError(f"fit: batch_size={batch_size} is larger than the {n_train} training examples; with "
                         "drop_last no step would run (use a smaller batch_size, or drop_last=False)")
    x_train, y_train = train
    out = Path(out_dir) if out_dir is not None else None
    processes = jax.process_count()
    writer = out is not None and jax.process_index() == 0  # in a multi-process run, process 0 writes the files
    if processes > 1:
        if not drop_last:
            raise ValueError("fit: a multi-process run splits every batch evenly: it needs drop_last=True")
        if batch_size % jax.device_count():
            raise ValueError(f"fit: batch_size={batch_size} must divide evenly over the {jax.device_count()} devices "
                             f"of the {processes} processes")
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    key = _raw_key(key)
    data_key, step_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    # the compiled step donates its buffers; train on copies so the caller's params and state stay usable
    params, state = jax.tree.map(jnp.copy, (params, state))
    opt_state = optimizer.init(params)
    plateau = Plateau(plateau_patience, plateau_factor) if plateau_patience else None
    if plateau is not None:
        get_learning_rate(opt_state)  # fail early without an injectable learning rate
    if hasattr(opt_state, "hyperparams") and "learning_rate" in opt_state.hyperparams:
        lr = float(np.asarray(opt_state.hyperparams["learning_rate"]))
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"fit: the optimiser's learning_rate must be a finite number > 0, got {lr}")

    # ---- where to start: fresh, or from the last complete checkpoint
    step, epoch, batch_index = 0, 0, 0
    best, stale = -math.inf, 0
    running = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    history: list = []
    epoch_seconds = 0.0  # time spent on the current epoch's batches, in this process and the one before a resume
    if resume:
        like = {"params": params, "state": state, "opt_state": opt_state, "key": key,
                "counters": _counters(**dict.fromkeys(COUNTERS, 0))}
        ckpt = load(out / CHECKPOINT, like=like)
        c = {k: v.item() for k, v in ckpt["counters"].items()}
        if c["batch_size"] != batch_size:
            raise ValueError(f"fit: the checkpoint in {out} was written with batch_size={c['batch_size']}, "
                             f"resuming with {batch_size} would change the data order")
        if not np.array_equal(np.asarray(ckpt["key"]), np.asarray(key)):
            raise ValueError(f"fit: the checkpoint in {out} was written with another key")
        params, state, opt_state = ckpt["params"], ckpt["state"], ckpt["opt_state"]
        step, epoch, batch_index, best, stale = c["step"], c["epoch"], c["batch"], c["best"], c["stale"]
        running = {k: c[k] for k in running}
        epoch_seconds = c["epoch_seconds"]
        if plateau is not None:
            plateau.best = None if c["plateau_best"] == -math.inf else c["plateau_best"]
            plateau.bad_epochs = c["plateau_bad"]
        history = _read_history(out / METRICS, epoch)
        if writer:
            _write_history(out / METRICS, history)

    if processes > 1:  # every tree replicated on a Mesh over every device of every process
        mesh = data_mesh()
        params, state, opt_state = replicate((params, state, opt_state), mesh)
        share = batch_size // processes

    def host(tree):
        """The trees as this process holds them (its copy of the replicated arrays in a multi-process run)."""
        return local_copy(tree) if processes > 1 else tree

    def checkpoint():
        if not writer:
            return
        save(out / CHECKPOINT, {
            "params": host(params), "state": host(state), "opt_state": host(opt_state), "key": key,
            "counters": _counters(step=step, epoch=epoch, batch=batch_index, batch_size=batch_size, stale=stale,
                                  plateau_bad=plateau.bad_epochs if plateau else 0, best=float(best),
                                  plateau_best=float(plateau.best) if plateau and plateau.best is not None
                                  else -math.inf, epoch_seconds=epoch_seconds,
                                  **{k: float(v) for k, v in running.items()})})

    if processes > 1:
        train_step = make_data_parallel_train_step(apply, optimizer, loss, mesh=mesh, augment=augment)
    else:
        train_step = make_train_step(apply, optimizer, loss, augment=augment)
    eval_step = make_eval_step(apply, loss)

    def epoch_batches(epoch, start):
        """The epoch's batches from `start` on. In a multi-process run each process takes its rows of every global
        batch (the global order is the one-process order for the same key) and places them on the Mesh."""
        if processes == 1:
            yield from batches(x_train, y_train, batch_size, key=jax.random.fold_in(data_key, epoch),
                               drop_last=drop_last, start=start)
            return
        order, rank = epoch_order(n_train, jax.random.fold_in(data_key, epoch)), jax.process_index()
        for b in range(start, per_epoch):
            rows = order[b * batch_size + rank * share:b * batch_size + (rank + 1) * share]
            yield shard_batch(jax.tree_util.tree_map(lambda a: np.asarray(a)[rows], (x_train, y_train)), mesh,
                              local=True)

    def step_key_at(t):
        key_t = jax.random.fold_in(step_key, t)
        return replicate(key_t, mesh) if processes > 1 else key_t
    per_epoch = num_batches(n_train, batch_size, drop_last)
    stopped_early = False
    from tqdm.auto import tqdm

    # compile once before the first step, so that the first epoch's progress, ETA and images/s measure training
    example = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((batch_size, *np.shape(a)[1:]),
                                                                    jnp.asarray(a[:1]).dtype), (x_train, y_train))
    show = progress and jax.process_index() == 0
    if show:
        tqdm.write("compiling the training step ...")
    compile_started = time.perf_counter()
    compiled = train_step.lower(params, state, opt_state, example, step_key_at(0)).compile()
    if show:
        tqdm.write(f"compiled in {time.perf_counter() - compile_started:.1f} s")

    def run_step(batch, rng):
        same = all(np.shape(a)[0] == batch_size for a in jax.tree_util.tree_leaves(batch))
        return (compiled if same else train_step)(params, state, opt_state, batch, rng)  # a last partial batch

    while epoch < epochs and not stopped_early:
        bar = tqdm(total=per_epoch, initial=batch_index, desc=f"epoch {epoch + 1}/{epochs}",
                   disable=None if show else True, mininterval=0.5, unit="batch", dynamic_ncols=True)
        last = time.perf_counter()  # the epoch's time counts fetching batches and steps, not checkpoints
        for batch in epoch_batches(epoch, batch_index):
            params, state, opt_state, metrics = run_step(batch, step_key_at(step))
            metrics = host(metrics)
            loss_sum = float(metrics["loss_sum"])
            now = time.perf_counter()
            epoch_seconds, last = epoch_seconds + now - last, now
            if not math.isfinite(loss_sum):
                bar.close()
                kept = f"the last good checkpoint is kept at {out / CHECKPOINT}" if out is not None and (
                    out / CHECKPOINT).exists() else "no checkpoint was written"
                raise TrainingDiverged(f"loss is {loss_sum / float(metrics['count'])} at step {step + 1} "
                                       f"(epoch {epoch + 1}, batch {batch_index + 1}); training stopped, {kept}")
            running["loss_sum"] += loss_sum
            running["correct"] += float(metrics.get("correct", math.nan))
            running["count"] += float(metrics["count"])
            step += 1
            batch_index += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running['loss_sum'] / running['count']:.4f}",
                            **({"acc": f"{running['correct'] / running['count']:.3f}"}
                               if math.isfinite(running["correct"]) else {}),
                            img_s=f"{running['count'] / max(epoch_seconds, 1e-9):.0f}")
            if checkpoint_every and step % checkpoint_every == 0:
                checkpoint()
                last = time.perf_counter()
            if max_steps is not None and step >= max_steps:
                bar.close()
                checkpoint()
                return _result(*host((params, state, opt_state)), history, step, False, best)
        bar.close()
        elapsed = epoch_seconds

        row = {"epoch": epoch + 1, "step": step,
               "train_loss": running["loss_sum"] / max(running["count"], 1),
               "train_accuracy": running["correct"] / max(running["count"], 1),
               "epoch_time_s": elapsed, "images_per_s": running["count"] / max(elapsed, 1e-9)}
        if not math.isfinite(row["train_accuracy"]):
            del row["train_accuracy"]  # not a classifier
        if hasattr(opt_state, "hyperparams"):
            row["learning_rate"] = get_learning_rate(opt_state)
        if val is not None:
            v = evaluate(eval_step, *host((params, state)), val[0], val[1], eval_batch_size)
            row["val_loss"] = v["loss"]
            if "accuracy" in v:
                row["val_accuracy"] = v["accuracy"]
            score = v.get("accuracy", -v["loss"])  # higher is better: accuracy, or minus the loss
            if score > best:
                best, stale = score, 0
                if writer:
                    save(out / BEST, {"params": host(params), "state": host(state)})
            else:
                stale += 1
            if plateau is not None and plateau.step(score):
                opt_state = set_learning_rate(opt_state, get_learning_rate(opt_state) * plateau_factor)
            if early_stopping and stale >= early_stopping:
                stopped_early = True
        history.append(row)
        if show:
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            tqdm.write(" ".join(f"{k}={v}" for k, v in shown.items()))
        if writer:  # the log first: a crash before the checkpoint leaves a row that resuming trims
            with open(out / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
        epoch, batch_index, epoch_seconds = epoch + 1, 0, 0.0
        running = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
        checkpoint()
    return _result(*host((params, state, opt_state)), history, step, stopped_early, best)
