"""Experiment reports: the command line every `experiments/` script shares, and its results as markdown + JSON.

    parser = report.experiment_parser(__doc__, "pooling_study", epochs=(2, 8))
    args = parser.parse_args()                  # --quick, --out runs/pooling_study, --seed, --epochs
    report.write_results(args.out, rows, title="Pooling study", settings={...})
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence


def experiment_parser(doc: str | None, name: str, **sizes: tuple[Any, Any]) -> argparse.ArgumentParser:
    """An argument parser with --quick, --out (default runs/NAME) and --seed, plus one option per `sizes` entry.

    sizes: option name -> (quick value, default value), e.g. epochs=(1, 10) gives --epochs, which is 1 under
    --quick and 10 otherwise unless given explicitly. Underscores in names become dashes on the command line.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny version that runs in seconds")
    parser.add_argument("--out", default=f"runs/{name}", help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    for option, (quick, default) in sizes.items():
        parser.add_argument("--" + option.replace("_", "-"), type=type(default), default=None,
                            help=f"default {default} ({quick} with --quick)")
    original = parser.parse_args

    def parse_args(argv: Sequence[str] | None = None, namespace=None):
        args = original(argv, namespace)
        for option, (quick, default) in sizes.items():
            if getattr(args, option) is None:
                setattr(args, option, quick if args.quick else default)
        return args

    parser.parse_args = parse_args
    return parser


def median_seconds(fn: Callable[[], Any], repeats: int = 10, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` calls after `warmup` untimed ones (compilation), waiting for JAX's
    asynchronous results (`jax.block_until_ready`) before each clock reading."""
    import jax  # here: the benchmarks' PyTorch processes import this module and must not load JAX

    if repeats < 1:
        raise ValueError(f"median_seconds: repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """The CPU model (from /proc/cpuinfo on Linux, else `platform`) and the core count, for benchmark headers."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def versions(modules: Iterable[str] = ("jax", "jaxlib", "optax", "flax", "equinox", "torch")) -> dict[str, str]:
    """The installed version of each named module that imports (the others are left out)."""
    found = {}
    for module in modules:
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def environment(modules: Iterable[str] = ("jax", "jaxlib", "optax", "flax", "equinox", "torch")) -> dict:
    """{"machine": machine(), "versions": versions(modules)}: what a benchmark's JSON records about where it ran."""
    return {"machine": machine(), "versions": versions(modules)}


def environment_line(env: dict) -> str:
    """`environment()` as the one line a benchmark prints above its table: "CPU, N cores; jax 0.x, ..."."""
    return f"{env['machine']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e6):
            return f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A markdown table of `rows` (dicts); columns default to the keys of the first row, in order. Numbers are
    right-aligned, floats shown with `digits` decimals (scientific notation when tiny or huge)."""
    if not rows:
        raise ValueError("markdown_table: no rows")
    columns = list(columns or rows[0].keys())
    missing = [c for c in columns if any(c not in r for r in rows)]
    if missing:
        raise ValueError(f"markdown_table: column(s) {missing} missing from some rows")
    numeric = [all(isinstance(r[c], (int, float)) and not isinstance(r[c], bool) for r in rows) for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_cell(r[c], digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy / jax scalars and arrays
        return value.tolist()
    return value


def write_results(out_dir, rows: Sequence[Mapping[str, Any]], *, title: str, settings: Mapping[str, Any] | None = None,
                  notes: Iterable[str] = (), columns: Sequence[str] | None = None, digits: int = 4,
                  extra: Mapping[str, Any] | None = None, echo: bool = True) -> Path:
    """Write out_dir/results.md (title, settings, the table, notes) and out_dir/results.json (the same data,
    plus `extra`); print the markdown unless echo=False. Returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(settings or {})
    text = [f"# {title}", ""]
    if settings:
        text += [", ".join(f"{k} = {_cell(v, digits) if isinstance(v, float) else v}" for k, v in settings.items()), ""]
    text += [markdown_table(rows, columns, digits), ""]
    text += [f"- {n}" for n in notes]
    markdown = "\n".join(text).rstrip() + "\n"
    (out / "results.md").write_text(markdown)
    payload = {"title": title, "settings": settings, "rows": list(rows), "notes": list(notes), **dict(extra or {})}
    (out / "results.json").write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
    if echo:
        print(markdown)
    return out
