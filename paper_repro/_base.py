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
* ``caption(results) -> Caption``: what a reader needs to judge the figure (model, data, n, delta where a
  bound is drawn, seeds, what the bands are, the comparison :class:`Protocol`);
* ``table(results) -> list[dict]`` and ``figure(results) -> matplotlib Figure`` (which ends with
  :func:`finish_figure`: the caption under the axes, legends moved off the data);
* ``plot(results, out_dir) -> list[Path]``: ``NAME.pdf``, ``NAME.png``, ``NAME.csv`` and ``NAME.json`` (the
  JSON holds ``{"experiment", "caption", "protocol", "columns", "rows"}``; the CSV the same rows).

Published numbers: an experiment with a comparable number from a paper puts it in the rows it compares with
(:func:`with_paper`: columns ``paper``, ``paper_quantity`` -- the column of ours it compares with -- and
``paper_source``), and its figure marks it with :func:`prunebound.plotting.mark_paper` (a star labelled
"paper"). Only numbers read in a paper, its official code or README are used.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from prunebound.errors import DataError, InvalidParameterError
from prunebound.plotting import add_caption, fix_legends, savefig, write_csv
from prunebound.sweep import run_sweep, to_jsonable

__all__ = [
    "RESULTS_FILE",
    "BAND",
    "Protocol",
    "Caption",
    "PaperNumber",
    "with_paper",
    "se_bands",
    "finish_figure",
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
#: the band every experiment draws over seeds (see :func:`prunebound.plotting.mean_band`)
BAND = "se"


@dataclass(frozen=True)
class Protocol:
    """The comparison protocol of one panel: what *every* method in it gets after its mask is chosen.

    ``retrain_epochs`` epochs of SGD at ``retrain_lr`` with the mask fixed (0: none); ``note`` says anything
    else every method shares (e.g. "sparse training from initialisation for 10 epochs")."""

    retrain_epochs: int = 0
    retrain_lr: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if int(self.retrain_epochs) < 0:
            raise InvalidParameterError(f"retrain_epochs must be >= 0, got {self.retrain_epochs}")
        if self.retrain_epochs > 0 and (self.retrain_lr is None or not self.retrain_lr > 0):
            raise InvalidParameterError(f"retrain_lr must be > 0 when retraining, got {self.retrain_lr}")

    def text(self) -> str:
        base = ("no retraining" if self.retrain_epochs == 0 else
                f"retrained {self.retrain_epochs} epoch{'s' if self.retrain_epochs > 1 else ''} "
                f"at lr {self.retrain_lr:g} (mask fixed)")
        return f"{base}; {self.note}" if self.note else base

    def to_dict(self) -> dict:
        return {**asdict(self), "text": self.text()}


@dataclass(frozen=True)
class Caption:
    """What a figure's reader needs: ``model``, ``data``, ``n`` (training examples, or what ``n`` counts when
    ``n_label`` says so), ``seeds``, ``bands`` (what the shaded bands / error bars are; ``None``: none drawn),
    ``delta`` (where a bound is drawn), ``n_test`` (held-out examples, if any), ``protocols`` (one per panel
    that compares methods) and ``extra`` (one more sentence: a deviation the reader must know)."""

    model: str
    data: str
    n: int | str
    seeds: int
    bands: str | None = None
    delta: float | None = None
    protocols: tuple[Protocol, ...] = ()
    extra: str = ""
    n_label: str = "n"
    n_test: int | None = None

    def text(self) -> str:
        test = f" train, {self.n_test} test" if self.n_test is not None else ""
        parts = [f"Model: {self.model}", f"data: {self.data} ({self.n_label} = {self.n}{test})"]
        if self.delta is not None:
            parts.append(f"δ = {self.delta:g}")
        parts.append(f"{self.seeds} seed{'s' if self.seeds != 1 else ''}")
        if self.bands:
            parts.append(f"bands: {self.bands}")
        if self.protocols:
            parts.append("protocol: " + " | ".join(p.text() for p in self.protocols))
        s = "; ".join(parts) + "."
        return f"{s} {self.extra}" if self.extra else s

    def to_dict(self) -> dict:
        return {"model": self.model, "data": self.data, "n": self.n, "n_label": self.n_label, "n_test": self.n_test,
                "seeds": self.seeds, "bands": self.bands, "delta": self.delta,
                "protocols": [p.to_dict() for p in self.protocols], "extra": self.extra, "text": self.text()}


def se_bands(seeds: int) -> str:
    """The caption's words for :data:`BAND`."""
    return f"mean ± standard error over {seeds} seeds"


@dataclass(frozen=True)
class PaperNumber:
    """A number reported in a paper, comparable with column ``quantity`` of our rows: ``value``, where it was
    read (``source``: paper, table/figure or official code file) and ``note`` (what differs from our setting)."""

    value: float
    quantity: str
    source: str
    note: str = ""


def with_paper(rows: Sequence[dict], lookup: Callable[[Mapping], PaperNumber | None]) -> list[dict]:
    """``rows`` with the columns ``paper``, ``paper_quantity`` and ``paper_source`` (empty where ``lookup``
    returns ``None``), so every experiment's CSV has the same published-number columns."""
    out = []
    for r in rows:
        p = lookup(r)
        out.append({**r, "paper": None if p is None else float(p.value),
                    "paper_quantity": None if p is None else p.quantity,
                    "paper_source": None if p is None else (p.source + (f" ({p.note})" if p.note else ""))})
    return out


def finish_figure(fig, caption: Caption):
    """The last step of every ``figure``: the caption under the axes (:func:`prunebound.plotting.add_caption`)
    and every legend moved off the plotted points (:func:`prunebound.plotting.fix_legends`)."""
    add_caption(fig, caption.text())
    fix_legends(fig)
    return fig


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
                  columns: Sequence[str] | None = None, *, caption: Caption | None = None) -> list[Path]:
    """Save ``fig`` (PDF + PNG) and the table ``rows`` (CSV + JSON) as ``out_dir/name.*``; return paths.

    Rows without the published-number columns get them empty (:func:`with_paper`).  The JSON is
    ``{"experiment": name, "caption": caption.to_dict(), "protocol": [...], "columns": [...],
    "rows": [...]}``, strict JSON: NaN/inf become ``null`` (the CSV keeps ``nan``/``inf``)."""
    d = Path(out_dir)
    paths = savefig(fig, d, name)
    if not any("paper" in r for r in rows):  # every table has the published-number columns
        rows = with_paper(rows, lambda r: None)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    paths.append(write_csv(d / f"{name}.csv", rows, columns))
    jp = d / f"{name}.json"
    doc = {"experiment": name, "caption": None if caption is None else caption.to_dict(),
           "protocol": [] if caption is None else [p.to_dict() for p in caption.protocols],
           "columns": list(columns), "rows": [{c: r.get(c) for c in columns} for r in rows]}
    tmp = jp.with_name(jp.name + ".tmp")
    tmp.write_text(json.dumps(_finite_or_null(to_jsonable(doc)), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, jp)
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
