"""Where a run lives: run directories never mix two runs (a new run takes the first free runs/<model>-<dataset>[-N],
an occupied --out is refused unless overwritten or resumed), and a resumed run continues with its own settings
(config.json), the options given on resuming refused or reported as overrides."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .. import catalog
from ..io import load_flat
from .runconfig import RunConfig, RunError

RUN_FILES, RUN_MARKERS = tuple(catalog.RUN_FILES), catalog.RUN_MARKERS




def holds_run(directory: Path) -> bool:
    """Whether a directory already holds a run's outputs."""
    return directory.is_dir() and any((directory / name).exists() for name in RUN_MARKERS)


def _numbered(base: Path):
    yield base
    n = 2
    while True:
        yield base.with_name(f"{base.name}-{n}")
        n += 1


def run_directory(config: RunConfig, root: Path = Path("runs")) -> Path:
    """Where a run writes (see the module docstring); RunError when the choice would mix or lose runs."""
    if config.out is not None:
        out = Path(config.out).expanduser()
        if config.resume:
            if not (out / "checkpoint.npz").exists():
                raise RunError(f"--resume: there is no checkpoint to resume in {out} (no checkpoint.npz); start a "
                               "new run without --resume")
            return out
        if holds_run(out) and not config.overwrite:
            raise RunError(f"output directory {out} already holds a run; pass --overwrite to replace it, --resume "
                           "to continue it, or another --out (without --out, each run gets a new directory)")
        return out
    base = root / f"{config.model}-{config.dataset}"
    if config.resume:
        existing = []
        for candidate in _numbered(base):
            if not candidate.exists():
                break
            if (candidate / "checkpoint.npz").exists():
                existing.append(candidate)
        if not existing:
            raise RunError(f"--resume: no run of {config.model} on {config.dataset} with a checkpoint under "
                           f"{root}/ (looked for {base}/checkpoint.npz and its numbered siblings); pass --out DIR")
        return existing[-1]
    if config.overwrite:
        return base
    return next(d for d in _numbered(base) if not holds_run(d))


def clear_run(directory: Path) -> None:
    """Delete a run's outputs (the files funcnn writes), leaving anything else in the directory alone."""
    for name in RUN_FILES:
        (directory / name).unlink(missing_ok=True)
    for sub in directory.glob("replica_*"):
        if sub.is_dir():
            shutil.rmtree(sub)


def writable(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".funcnn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunError(f"output directory {directory} is not writable: {err.strerror or err}") from None
    return directory


# a resumed run keeps what defines it; these may be extended (reported as overrides); the rest is per invocation
RUN_DEFINING = ("model", "dataset", "batch_size", "optimizer", "lr", "seed", "precision", "augment", "replicas",
                "sweep")
EXTENDABLE = ("epochs", "early_stopping", "plateau", "checkpoint_every")


def resumed_settings(config: RunConfig, out: Path) -> tuple:
    """The settings a resumed run continues with (as Keras and Lightning resume): its config.json's, except the
    options given here (those that differ from RunConfig's defaults). A run-defining option that differs from the
    run's is refused; an extendable one is taken and reported. Returns (config, the run's resumptions: those
    config.json records, then this one's description, the banner's line)."""
    saved = saved_config(out)
    default, given = RunConfig(), {}
    for name in RUN_DEFINING + EXTENDABLE:
        value, theirs = getattr(config, name), saved.get(name, getattr(default, name))
        if name == "sweep":
            value, theirs = tuple(value), tuple(theirs or ())
        if value != getattr(default, name) and value != theirs:
            given[name] = (theirs, value)
    refused = {k: v for k, v in given.items() if k in RUN_DEFINING}
    if refused:
        name, (theirs, value) = next(iter(refused.items()))
        flag = f"--{name.replace('_', '-')}"
        theirs = f"{flag} {theirs}" if theirs not in (None, ()) else f"no {flag} (the default)"
        raise RunError(f"--resume: the run in {out} is {saved.get('model')} on {saved.get('dataset')} with "
                       f"{theirs}; {flag} {value} would make it another run (resume takes the run's settings; "
                       "start a new run without --resume)")
    taken = {k: saved[k] for k in RUN_DEFINING + EXTENDABLE if k in saved and k not in given}
    taken["sweep"] = tuple(taken.get("sweep") or ())
    config = dataclasses.replace(config, **taken)
    config.check()
    progress = _checkpoint_position(out)
    overrides = ", ".join(f"--{k.replace('_', '-')} {theirs} -> {value}" for k, (theirs, value) in given.items())
    if progress is None:
        where = "resuming from its checkpoint"
    elif progress[0] < config.epochs:
        where = f"resuming from epoch {progress[0] + 1}, step {progress[1]}"
    else:  # nothing to train: refuse before anything is written (config.json, results.json stay the run's)
        done = f"{progress[0]} epoch{'s' if progress[0] != 1 else ''}"
        raise RunError(f"--resume: the run in {out} has finished {done} (step {progress[1]}){_held(out)}; "
                       f"--epochs {config.epochs} trains nothing more, so nothing was changed: pass --epochs N "
                       f"with N > {progress[0]} to train on")
    return config, list(saved.get("resumed", [])) + [where + (f"; overriding {overrides}" if overrides else "")]


def _held(out: Path) -> str:
    """", test accuracy 0.9313 (results.json)" when the run's results say so; "" otherwise."""
    try:
        accuracy = json.loads((out / "results.json").read_text()).get("test_accuracy")
    except (OSError, ValueError, AttributeError):
        return ""
    return f", test accuracy {accuracy:.4f} (results.json)" if isinstance(accuracy, (int, float)) else ""


def saved_config(out: Path) -> dict:
    path = out / "config.json"
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not an object")
    except FileNotFoundError:
        raise RunError(f"--resume: {path} is missing: the run's settings are unknown (was it written by funcnn "
                       "train?)") from None
    except (OSError, ValueError) as err:
        raise RunError(f"--resume: {path} is not a readable run configuration: {err}") from None
    return saved


def _checkpoint_position(out: Path):
    """(epoch, step) of the run's last complete checkpoint; None where it does not say (written by an older funcnn,
    or damaged: fit then names what is wrong with it)."""
    try:
        flat = load_flat(out / catalog.CHECKPOINT)
        return int(flat["['counters']['epoch']"]), int(flat["['counters']['step']"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


__all__ = ["RUN_FILES", "RUN_MARKERS", "holds_run", "run_directory", "clear_run", "writable", "resumed_settings",
           "RUN_DEFINING", "EXTENDABLE"]
