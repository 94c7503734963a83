"""Shared plumbing for the ``paper_repro`` experiments.

Every experiment module defines

* ``NAME`` and ``TITLE``;
* ``Config``: a frozen dataclass with ``quick()`` (< 1 min on 2 cores, used by the tests and ``make figures``)
  and ``full()`` (the paper's scale) presets and ``to_dict()``;
* ``trials(config) -> list[dict]``: complete, JSON-serialisable parameters of every trial (everything that
  changes the result is in the trial, so a trial's key identifies its result across presets and reruns);
* ``run_trial(trial) -> dict``: one trial, deterministic given the trial (module-level, so it pickles);
* ``run(config, out_dir, *, backend, scheduler, n_jobs, progress) -> list[dict]``: the sweep, resumable,
  results in ``out_dir/results.jsonl`` (see :func:`prunebound.sweep.run_sweep`);
* ``table(results) -> list[dict]`` and ``figure(results) -> matplotlib Figure``;
* ``plot(results, out_dir) -> list[Path]``: ``NAME.pdf``, ``NAME.png``, ``NAME.csv`` and ``NAME.json``.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from prunebound.errors import DataError, InvalidParameterError
from prunebound.plotting import savefig, write_csv
from prunebound.sweep import run_sweep, to_jsonable

__all__ = [
    "RESULTS_FILE",
    "config_dict",
    "check_config",
    "default_out_dir",
    "run_trials",
    "write_outputs",
    "group_by",
    "stack_over_seeds",
    "summary",
    "log_axis",
]

RESULTS_FILE = "results.jsonl"


def config_dict(config) -> dict:
    """A config dataclass as a plain JSON dict (tuples become lists)."""
    return to_jsonable(asdict(config))


def check_config(config, cls) -> None:
    if not isinstance(config, cls):
        raise InvalidParameterError(f"config must be a {cls.__qualname__}, got {type(config).__name__}")
    for f in fields(config):
        v = getattr(config, f.name)
        if isinstance(v, (tuple, list)) and len(v) == 0:
            raise InvalidParameterError(f"config.{f.name} must not be empty")


def check_choices(what: str, values, allowed) -> None:
    """Raise :class:`InvalidParameterError` unless every one of ``values`` is in ``allowed``."""
    for v in values:
        if v not in allowed:
            raise InvalidParameterError(f"unknown {what} {v!r}; allowed: {', '.join(map(str, allowed))}")


def seed_trials(name: str, config) -> list[dict]:
    """One trial per seed in ``config.seeds``: the config's other fields plus ``experiment`` and ``seed``."""
    base = {k: v for k, v in config_dict(config).items() if k != "seeds"}
    return [{"experiment": name, **base, "seed": s} for s in config.seeds]


def classification_data(t: Mapping):
    """The ``Split`` named by a trial: ``dataset`` = ``digits`` or ``mnist1d`` (with ``n_samples``), seed 0."""
    from prunebound.data import digits, mnist1d

    if t["dataset"] == "digits":
        return digits(seed=0)
    if t["dataset"] == "mnist1d":
        return mnist1d(int(t["n_samples"]), seed=0)
    raise InvalidParameterError(f"dataset must be 'digits' or 'mnist1d', got {t['dataset']!r}")


def make_run(name: str, run_trial: Callable[[dict], dict], trials: Callable[[Any], list[dict]]):
    """The ``run(config, out_dir, *, backend, scheduler, n_jobs, progress)`` function of an experiment module:
    expand ``config`` with ``trials`` and sweep ``run_trial`` over them (see :func:`run_trials`)."""

    def run(config, out_dir, *, backend: str = "local", scheduler=None, n_jobs: int = 1,
            progress: bool = True) -> list[dict]:
        return run_trials(name, run_trial, trials(config), config, out_dir, backend=backend, scheduler=scheduler,
                          n_jobs=n_jobs, progress=progress)

    run.__doc__ = f"Run the ``{name}`` sweep (resumable JSONL in ``out_dir``); returns the result records."
    return run


def run_trials(name: str, run_trial: Callable[[dict], dict], trials: Sequence[dict], config, out_dir,
               *, backend: str = "local", scheduler=None, n_jobs: int = 1, progress: bool = True
               ) -> list[dict]:
    """Run (or resume) the sweep of an experiment in ``out_dir`` and return its records in trial order.

    Writes ``out_dir/config.json`` (the config of the latest run) and appends to ``out_dir/results.jsonl``.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"experiment": name, "config": config_dict(config)}, indent=2,
                                              sort_keys=True) + "\n")
    return run_sweep(run_trial, list(trials), d / RESULTS_FILE, backend=backend, n_jobs=n_jobs,
                     scheduler=scheduler, progress=progress, desc=name)


def write_outputs(fig, rows: Sequence[Mapping[str, Any]], out_dir, name: str,
                  columns: Sequence[str] | None = None) -> list[Path]:
    """Save ``fig`` (PDF + PNG) and the table ``rows`` (CSV + JSON) as ``out_dir/name.*``; return paths.

    The JSON table is strict JSON: NaN/inf become ``null`` (the CSV keeps ``nan``/``inf``)."""
    d = Path(out_dir)
    paths = savefig(fig, d, name)
    paths.append(write_csv(d / f"{name}.csv", rows, columns))
    jp = d / f"{name}.json"
    jp.write_text(json.dumps(_finite_or_null(to_jsonable(list(rows))), indent=1, allow_nan=False) + "\n")
    paths.append(jp)
    return paths


def _finite_or_null(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_finite_or_null(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite_or_null(x) for k, x in v.items()}
    return v


def group_by(records: Iterable[Mapping], *keys: str) -> dict[tuple, list[Mapping]]:
    """Group sweep records by the values of trial parameters ``keys`` (insertion order kept)."""
    out: dict[tuple, list[Mapping]] = defaultdict(list)
    for r in records:
        t = r["trial"]
        out[tuple(_hashable(t[k]) for k in keys)].append(r)
    return dict(out)


def _hashable(v):
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def stack_over_seeds(records: Sequence[Mapping], field: str) -> np.ndarray:
    """``result[field]`` (a list, one value per x) of each record, stacked to (n_records, n_x), float64."""
    if not records:
        raise DataError("no records to stack")
    rows = [np.asarray(r["result"][field], dtype=np.float64) for r in records]
    if len({a.shape for a in rows}) != 1:
        raise DataError(f"results disagree on the length of {field!r}: {[a.shape for a in rows]}")
    return np.stack(rows)


def summary(values) -> dict[str, float]:
    """mean, sample std (ddof=1, 0 for one value), and count of the finite ``values``."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    n = int(a.size)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if n > 1 else 0.0, "n": n}


def default_out_dir(name: str, preset: str) -> Path:
    """``$PRUNEBOUND_OUT/repro/NAME/PRESET`` (``PRUNEBOUND_OUT`` defaults to ``out``)."""
    return Path(os.environ.get("PRUNEBOUND_OUT", "out")) / "repro" / name / preset


def log_axis(ax, which: str = "x") -> None:
    """Log scale with plain-number labels at 1, 2, 5 x 10^k (readable at column width), no minor labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())
