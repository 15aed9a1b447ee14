"""A run's settings: `RunConfig` (the options of `funcnn train`, one field each), their checks, and the sweep
syntax (`--sweep lr=1e-3,3e-3`). The training loop's part of them is a `FitSettings` (`RunConfig.fit_settings`),
checked by the same code as `fit`'s. Importable without JAX, so that the command answers --help at once."""

from __future__ import annotations

import dataclasses
import math

from .. import catalog
from .settings import FitSettings, SettingError

SWEEPABLE = {"lr": "learning_rate", "wd": "weight_decay"}
PRECISIONS = tuple(catalog.PRECISIONS)


class RunError(ValueError):
    """A run's settings or inputs are wrong (the CLI prints the message as one line, exit status 2)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The settings of one run; the CLI's options, one field each (`funcnn train --help` shows the defaults)."""

    model: str = "lenet5"
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None
    seed: int = 0
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    checkpoint_every: int | None = None
    early_stopping: int | None = None
    plateau: int | None = None
    augment: float = 0.0
    precision: str = "float32"
    replicas: int | None = None
    sweep: tuple = ()          # ("lr=1e-3,3e-3", "wd=0"), as on the command line
    progress: bool = True
    plots: bool = True

    def fit_settings(self, out_dir=None) -> FitSettings:
        """The training loop's settings of this run (`fit` trains with them), writing into `out_dir` (the run
        directory `run_directory` chose). RunError naming the flag for a value out of range."""
        return self._fit_settings(out_dir, self.resume)

    def _fit_settings(self, out_dir, resume: bool) -> FitSettings:
        try:
            return FitSettings(epochs=self.epochs, batch_size=self.batch_size, checkpoint_every=self.checkpoint_every,
                               early_stopping=self.early_stopping, plateau_patience=self.plateau, resume=resume,
                               progress=self.progress, out_dir=out_dir)
        except SettingError as err:
            flag = FLAGS.get(err.field, err.field).replace("_", "-")
            requirement = err.requirement.replace("an int ", "an integer ")
            raise RunError(f"--{flag} must be {requirement}, got {err.value!r}") from None

    def check(self) -> None:
        """RunError naming the first option out of range."""
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()):
            raise RunError(f"--out must name a directory, got {self.out!r} (leave it out for a new "
                           "runs/MODEL-DATASET)")
        self._fit_settings(None, resume=False)  # the ranges; the run directory (and so resume's) is chosen later
        if self.replicas is not None:
            _at_least_one("replicas", self.replicas)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not -2 ** 63 <= self.seed < 2 ** 63:
            raise RunError(f"--seed must be an integer that fits in 64 bits (JAX's PRNG key), got {self.seed!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and 0 < self.lr < math.inf):
            raise RunError(f"--lr must be a finite number > 0, got {self.lr}")
        if not (isinstance(self.augment, (int, float)) and 0 <= self.augment < math.inf):
            raise RunError(f"--augment must be a finite number >= 0 (0 = off), got {self.augment}")
        if self.precision not in PRECISIONS:
            raise RunError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.resume and self.overwrite:
            raise RunError("--resume continues the run in the output directory and --overwrite deletes it: "
                           "pass one of them")
        replicas, _ = parse_sweep(self.sweep, self.replicas)
        if replicas > 1 and (self.resume or self.early_stopping or self.plateau or self.checkpoint_every):
            raise RunError("--resume, --early-stopping, --plateau and --checkpoint-every train one model; "
                           "they do not combine with --replicas / --sweep")


FLAGS = {"plateau_patience": "plateau", "out_dir": "out"}  # FitSettings' fields whose flag has another name


def _at_least_one(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RunError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")


def parse_sweep(items, replicas):
    """["lr=1e-3,3e-3", "wd=0"] -> (R, {"learning_rate": [...], "weight_decay": [...]}); RunError on bad input."""
    sweep = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in SWEEPABLE:
            raise RunError(f"--sweep {item!r}: expected NAME=V1,V2,... with NAME one of {', '.join(SWEEPABLE)}")
        if SWEEPABLE[name] in sweep:
            raise RunError(f"--sweep {item!r}: {name} is swept twice; give all its values in one list "
                           f"({name}=V1,V2,...)")
        try:
            sweep[SWEEPABLE[name]] = [float(v) for v in values.split(",")]
        except ValueError:
            raise RunError(f"--sweep {item!r}: the values must be numbers separated by commas") from None
        bad = [v for v in sweep[SWEEPABLE[name]] if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0)]
        if bad:
            raise RunError(f"--sweep {item!r}: {name} values must be finite and "
                           f"{'> 0' if name == 'lr' else '>= 0'}, got {bad[0]}")
    lengths = {len(v) for v in sweep.values() if len(v) > 1}
    if len(lengths) > 1:
        raise RunError(f"--sweep: the lists have different lengths {sorted(lengths)}")
    count = lengths.pop() if lengths else None
    if replicas is not None and replicas < 1:
        raise RunError(f"--replicas must be >= 1, got {replicas}")
    if replicas is not None and count is not None and replicas != count:
        raise RunError(f"--replicas {replicas} but --sweep gives {count} values per name")
    return replicas or count or 1, sweep


__all__ = ["RunConfig", "RunError", "parse_sweep", "SWEEPABLE", "PRECISIONS"]
