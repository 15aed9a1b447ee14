"""`FitSettings`: the settings of a training loop, one typed and validated object shared by `fit`, `fit_replicas`
and the run configuration of `funcnn train` (`RunConfig.fit_settings`). Importable without JAX.

    settings = FitSettings(epochs=20, batch_size=128, early_stopping=3, out_dir="runs/mine")
    fit(apply, params, state, optimizer, train, val, key=key, settings=settings)
    fit(apply, params, state, optimizer, train, val, key=key, epochs=20, batch_size=128)   # the same, by keyword
    fit(..., settings=settings, epochs=5)                        # keywords replace fields of the given settings

A setting out of range is refused when the object is made (`SettingError`, a ValueError naming the field), so a
settings object that exists is a valid one.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


class SettingError(ValueError):
    """A setting out of range. `field` names it, `value` is what was given and `requirement` what it must be (an
    int >= 1, ...), so that a caller can name the setting its own way (the CLI names the flag)."""

    def __init__(self, where: str, field: str, value, requirement: str):
        super().__init__(f"{where}: {field} must be {requirement}, got {value!r}")
        self.field, self.value, self.requirement = field, value, requirement


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


COUNTS = ("epochs", "batch_size", "eval_batch_size")                                 # int >= 1
OPTIONAL_COUNTS = ("checkpoint_every", "early_stopping", "plateau_patience", "max_steps")  # None or int >= 1
SWITCHES = ("drop_last", "resume", "overwrite", "progress")                          # bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitSettings:
    """How a model trains: the loop's counts, what it monitors, where it writes.

    Attributes:
      epochs: epochs to train (int >= 1).
      batch_size: examples per step; eval_batch_size: per validation step (ints >= 1).
      drop_last: drop the last partial batch of each epoch (a multi-process run needs it).
      checkpoint_every: also checkpoint every N steps (always at the end of each epoch and of training).
      early_stopping: stop when the validation score has not improved for this many epochs.
      plateau_patience, plateau_factor: multiply the learning rate by plateau_factor (in (0, 1)) when the validation
        score has not improved for plateau_patience epochs.
      max_steps: stop after this many steps in total.
      out_dir: where the run's files go (None: nothing is written); resume: continue the run there; overwrite:
        replace it (not both).
      progress: show a progress bar.
    """

    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 256
    drop_last: bool = True
    checkpoint_every: int | None = None
    early_stopping: int | None = None
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    max_steps: int | None = None
    out_dir: str | os.PathLike | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        self.check("FitSettings")

    def check(self, where: str) -> None:
        """SettingError (ValueError) naming the first setting out of range, its message starting with `where`."""
        for name in COUNTS + OPTIONAL_COUNTS:
            value = getattr(self, name)
            if value is None and name in OPTIONAL_COUNTS:
                continue
            if not _is_int(value) or value < 1:
                raise SettingError(where, name, value, "an int >= 1")
        for name in SWITCHES:
            if not isinstance(getattr(self, name), bool):
                raise SettingError(where, name, getattr(self, name), "True or False")
        factor = self.plateau_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise SettingError(where, "plateau_factor", factor, "a number in (0, 1)")
        if self.out_dir is not None and (not isinstance(self.out_dir, (str, os.PathLike)) or
                                         not os.fspath(self.out_dir)):
            raise SettingError(where, "out_dir", self.out_dir, "a directory path (or None: write nothing)")
        if self.resume and self.overwrite:
            raise ValueError(f"{where}: resume=True continues the run in out_dir and overwrite=True deletes it: "
                             "pass one")
        if self.resume and self.out_dir is None:
            raise ValueError(f"{where}: resume=True needs out_dir (where the checkpoint is)")


FIELDS = tuple(field.name for field in dataclasses.fields(FitSettings))


def settings_for(where: str, settings: FitSettings | None, options: dict) -> FitSettings:
    """`settings` (default: FitSettings()) with the keyword `options` replacing its fields, checked with errors that
    start with `where` (fit, fit_replicas). TypeError for a keyword that is no field, or settings that are not a
    FitSettings."""
    if settings is not None and not isinstance(settings, FitSettings):
        raise TypeError(f"{where}: settings must be a FitSettings, got {type(settings).__name__}")
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}; its settings are "
                        f"{', '.join(FIELDS)} (funcnn.train.FitSettings)")
    base = settings if settings is not None else FitSettings()
    values = {**{name: getattr(base, name) for name in FIELDS}, **options}
    made = object.__new__(FitSettings)  # checked below with `where` in the messages, not as "FitSettings"
    for name, value in values.items():
        object.__setattr__(made, name, value)
    made.check(where)
    return made


__all__ = ["FitSettings", "SettingError", "settings_for", "FIELDS"]
