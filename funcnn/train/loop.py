"""The training loop that `fit` and `fit_replicas` share: small named steps over explicit state.

A run is a `Loop`, what is trained and how (the step, the batches of an epoch, validation, where rows and checkpoints
go), and a `Progress`, where it stands (step, epoch, batch, running sums, best score, history). `train` is the loop:

    while progress.epoch < loop.epochs and not progress.stopped:
        trees = run_epoch(loop, trees, progress)     # the epoch's steps from progress.batch on
        if not progress.stopped:                     # max_steps can end a run mid-epoch
            trees = end_epoch(loop, trees, progress) # validate, record the rows, checkpoint, decide to stop

Metrics are float64 numpy arrays: 0-d for one model, shape (R,) for R stacked replicas, so one loop serves both.
A model whose loss is not finite has diverged: it is reported once, and the run stops with `TrainingDiverged` when
no model is left (for `fit`, at once).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from .recipes import Plateau, get_learning_rate, set_learning_rate


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the checkpoint that was kept."""


def log(message: str) -> None:
    """One line above the progress bar (tqdm.write keeps the bar intact)."""
    tqdm.write(message)


def positive(where: str, *, optional: bool = False, **values) -> None:
    """ValueError naming the setting unless each value is an int >= 1 (or, when optional, None: 'not set')."""
    for name, value in values.items():
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{where}: {name} must be an int >= 1, got {value!r}")


@dataclasses.dataclass
class Progress:
    """Where a run stands; with the trees, what a checkpoint holds."""
    models: int = 1                                   # 1, or the number of replicas
    step: int = 0                                     # global steps done
    epoch: int = 0                                    # epochs completed
    batch: int = 0                                    # batches done in the current epoch
    sums: dict = dataclasses.field(default_factory=dict)  # the current epoch's summed metrics (loss_sum, ...)
    epoch_seconds: float = 0.0                        # time on the current epoch's batches, across a resume
    best: Any = -math.inf                             # best validation score (accuracy, or minus the loss)
    stale: Any = 0                                    # epochs since the best
    history: list = dataclasses.field(default_factory=list)  # per model, its rows (one per epoch)
    diverged: Any = None                              # per model, whether its loss has stopped being finite
    stopped: str | None = None                        # "early" (early stopping) or "max_steps"

    def __post_init__(self):
        self.history = self.history or [[] for _ in range(self.models)]
        self.diverged = np.zeros(self.models, bool) if self.diverged is None else self.diverged

    def new_epoch(self) -> None:
        self.epoch, self.batch, self.epoch_seconds, self.sums = self.epoch + 1, 0, 0.0, {}


@dataclasses.dataclass
class Loop:
    """What `fit` and `fit_replicas` each supply to the shared loop."""
    epochs: int
    per_epoch: int                                    # batches per epoch
    batches: Callable[[int, int], Iterable]           # (epoch, first batch) -> that epoch's batches
    step: Callable[[tuple, Any, int], tuple]          # (trees, batch, global step) -> (trees, metrics)
    validate: Callable[[tuple], dict] | None = None   # trees -> {"loss": ..., "accuracy": ...} per model
    record: Callable[[tuple, list, Progress], None] = lambda trees, rows, progress: None  # write an epoch's rows
    checkpoint: Callable[[tuple, Progress], None] = lambda trees, progress: None
    save_best: Callable[[tuple, np.ndarray], None] = lambda trees, improved: None  # improved: which models
    kept: Callable[[], str] = lambda: "no checkpoint was written"
    checkpoint_every: int | None = None
    max_steps: int | None = None
    early_stopping: int | None = None
    plateau: Plateau | None = None
    show: bool = True
    label: str = ""                                   # after "epoch e/E" on the progress bar


def _add(sums: dict, metrics: dict) -> dict:
    """The running sums plus one step's metrics, in float64."""
    out = dict(sums)
    for k, v in metrics.items():
        out[k] = out.get(k, 0.0) + np.asarray(v, np.float64)
    return out


def _check_finite(loop: Loop, metrics: dict, progress: Progress) -> None:
    """Report each model whose loss has just stopped being finite; TrainingDiverged when none is left."""
    loss = np.atleast_1d(np.asarray(metrics["loss_sum"], np.float64) / np.asarray(metrics["count"], np.float64))
    newly = ~np.isfinite(loss) & ~progress.diverged
    if not newly.any():
        return
    progress.diverged = progress.diverged | newly
    where = (f"loss is {loss[newly][0]} at step {progress.step + 1} (epoch {progress.epoch + 1}, "
             f"batch {progress.batch + 1})")
    if progress.diverged.all():
        who = "" if progress.models == 1 else "every replica has diverged: "
        raise TrainingDiverged(f"{who}{where}; training stopped, {loop.kept()}")
    log(f"replicas {np.flatnonzero(newly).tolist()} diverged ({where}); the others go on")


def _postfix(progress: Progress) -> dict:
    """The progress bar's running numbers (the first model's, for replicas)."""
    s = {k: float(np.ravel(v)[0]) for k, v in progress.sums.items()}
    count = max(s.get("count", 0.0), 1.0)
    shown = {"loss": f"{s.get('loss_sum', 0.0) / count:.4f}"}
    if math.isfinite(s.get("correct", math.nan)):
        shown["acc"] = f"{s['correct'] / count:.3f}"
    shown["img_s"] = f"{s.get('count', 0.0) * progress.models / max(progress.epoch_seconds, 1e-9):.0f}"
    return shown


def run_epoch(loop: Loop, trees: tuple, progress: Progress) -> tuple:
    """The current epoch's steps from progress.batch on, with periodic checkpoints; stops at max_steps."""
    bar = tqdm(total=loop.per_epoch, initial=progress.batch, desc=f"epoch {progress.epoch + 1}/{loop.epochs}"
               + loop.label, disable=None if loop.show else True, mininterval=0.5, unit="batch", dynamic_ncols=True)
    last = time.perf_counter()  # the epoch's time counts fetching batches and steps, not checkpoints
    try:
        for batch in loop.batches(progress.epoch, progress.batch):
            trees, metrics = loop.step(trees, batch, progress.step)
            now = time.perf_counter()
            progress.epoch_seconds, last = progress.epoch_seconds + now - last, now
            _check_finite(loop, metrics, progress)
            progress.sums = _add(progress.sums, metrics)
            progress.step, progress.batch = progress.step + 1, progress.batch + 1
            bar.update(1)
            bar.set_postfix(**_postfix(progress))
            if loop.checkpoint_every and progress.step % loop.checkpoint_every == 0:
                loop.checkpoint(trees, progress)
                last = time.perf_counter()
            if loop.max_steps is not None and progress.step >= loop.max_steps:
                progress.stopped = "max_steps"
                loop.checkpoint(trees, progress)
                break
    finally:
        bar.close()
    return trees


def epoch_rows(progress: Progress, learning_rate=None) -> list:
    """The finished epoch's row for each model: training loss and accuracy (for a classifier), time, images/s."""
    rows = []
    for m in range(progress.models):
        s = {k: float(np.ravel(v)[m] if np.ndim(v) else v) for k, v in progress.sums.items()}
        count = max(s.get("count", 0.0), 1.0)
        row = {"epoch": progress.epoch + 1, "step": progress.step, "train_loss": s.get("loss_sum", 0.0) / count}
        if math.isfinite(s.get("correct", math.nan)):
            row["train_accuracy"] = s["correct"] / count
        row |= {"epoch_time_s": progress.epoch_seconds,
                "images_per_s": s.get("count", 0.0) / max(progress.epoch_seconds, 1e-9)}
        if learning_rate is not None:
            row["learning_rate"] = float(np.ravel(learning_rate)[m] if np.ndim(learning_rate) else learning_rate)
        rows.append(row)
    return rows


def _validate(loop: Loop, trees: tuple, rows: list, progress: Progress) -> tuple:
    """Add the validation numbers to the rows, track the best score, lower the learning rate on a plateau and
    decide on early stopping."""
    v = loop.validate(trees)
    for m, row in enumerate(rows):
        row["val_loss"] = float(np.ravel(v["loss"])[m])
        if "accuracy" in v:
            row["val_accuracy"] = float(np.ravel(v["accuracy"])[m])
    score = np.asarray(v["accuracy"] if "accuracy" in v else -np.asarray(v["loss"]), np.float64)
    improved = score > progress.best
    progress.best = np.where(improved, score, progress.best)
    progress.stale = np.where(improved, 0, progress.stale + 1)
    if improved.any():
        loop.save_best(trees, improved)
    if loop.plateau is not None and loop.plateau.step(float(score)):
        params, state, opt_state = trees
        trees = params, state, set_learning_rate(opt_state, get_learning_rate(opt_state) * loop.plateau.factor)
    if loop.early_stopping and np.all(progress.stale >= loop.early_stopping):
        progress.stopped = "early"
    return trees


def _show(rows: list, progress: Progress) -> None:
    """The epoch's row (for replicas: how many, and the best one's row)."""
    best = 0
    if len(rows) > 1:
        best = max(range(len(rows)), key=lambda m: rows[m].get("val_accuracy", -rows[m].get("val_loss", math.inf)))
    shown = " ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in rows[best].items())
    log(shown if len(rows) == 1 else f"{len(rows)} replicas; best replica {best}: {shown}")


def end_epoch(loop: Loop, trees: tuple, progress: Progress) -> tuple:
    """Validate, record the epoch's rows (before the checkpoint: a crash in between leaves a row that resuming
    trims), start the next epoch and checkpoint there."""
    opt_state, lr = trees[2], None
    if "learning_rate" in getattr(opt_state, "hyperparams", {}):  # one model: its (possibly replicated) copy here
        one = progress.models == 1
        lr = get_learning_rate(opt_state) if one else np.asarray(opt_state.hyperparams["learning_rate"])
    rows = epoch_rows(progress, lr)
    if loop.validate is not None:
        trees = _validate(loop, trees, rows, progress)
    for history, row in zip(progress.history, rows):
        history.append(row)
    if loop.show:
        _show(rows, progress)
    loop.record(trees, rows, progress)
    progress.new_epoch()
    loop.checkpoint(trees, progress)
    return trees


def train(loop: Loop, trees: tuple, progress: Progress) -> tuple:
    """Epochs until loop.epochs, early stopping or max_steps; returns the final trees (progress is updated)."""
    while progress.epoch < loop.epochs and not progress.stopped:
        trees = run_epoch(loop, trees, progress)
        if progress.stopped != "max_steps":
            trees = end_epoch(loop, trees, progress)
    return trees
