"""Reproducible experiments that draw the papers' figures on our data (``prunebound repro ...``).

Each experiment is a module with ``Config`` (``quick()`` / ``full()`` presets), ``run(config, out_dir, ...)``
(a resumable sweep: one JSON line per finished trial in ``out_dir/results.jsonl``) and ``plot(results,
out_dir)`` (``NAME.pdf``, ``NAME.png``, ``NAME.csv``, ``NAME.json``); see :mod:`prunebound.paper_repro._base`.

* :func:`list_experiments` -- the names whose dependencies import.
* :func:`get_experiment` -- the module of one experiment.
* :func:`run_experiment` -- run a preset and plot it (what ``prunebound repro run NAME`` calls).
* :func:`make_figures` -- every quick preset, PNGs copied to ``docs/figures`` (``make figures``).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from prunebound.errors import InvalidParameterError

__all__ = ["EXPERIMENTS", "list_experiments", "get_experiment", "run_experiment", "make_figures"]

#: experiment name -> module (imported lazily; an experiment whose dependencies are missing is not listed).
EXPERIMENTS: dict[str, str] = {
    "pruning_vs_sparsity": "prunebound.paper_repro.pruning_vs_sparsity",
    "lueker_subset_sum": "prunebound.paper_repro.lueker_subset_sum",
    "pac_bayes_table": "prunebound.paper_repro.pac_bayes_table",
    "lottery_imp": "prunebound.paper_repro.lottery_imp",
    "coreset_error": "prunebound.paper_repro.coreset_error",
    "strong_lth_width": "prunebound.paper_repro.strong_lth_width",
    "noise_stability": "prunebound.paper_repro.noise_stability",
    "ticket_search": "prunebound.paper_repro.ticket_search",
    "bound_comparison": "prunebound.paper_repro.bound_comparison",
    "pensia_subset_sum": "prunebound.paper_repro.pensia_subset_sum",
    "resnet20_keep_ratio": "prunebound.paper_repro.resnet20_keep_ratio",
}


def get_experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (raises :class:`InvalidParameterError` naming the known ones)."""
    if name not in EXPERIMENTS:
        raise InvalidParameterError(f"unknown experiment {name!r}; known: {', '.join(list_experiments())}")
    try:
        return importlib.import_module(EXPERIMENTS[name])
    except ImportError as e:
        raise InvalidParameterError(
            f"experiment {name!r} is not available: its module or a dependency failed to import ({e})") from e


def list_experiments() -> list[str]:
    """Names of the experiments whose modules (and dependencies) import, in registry order."""
    out = []
    for name, mod in EXPERIMENTS.items():
        try:
            importlib.import_module(mod)
        except ImportError:
            continue
        out.append(name)
    return out


def run_experiment(name: str, preset: str = "quick", out_dir: str | Path | None = None, *,
                   backend: str = "local", scheduler: Any = None, n_jobs: int = 1, progress: bool = True
                   ) -> dict[str, Any]:
    """Run experiment ``name`` at ``preset`` (``"quick"`` or ``"full"``) into ``out_dir`` and plot it.

    Resumable: rerunning with the same arguments skips finished trials.  ``out_dir`` defaults to
    ``out/repro/NAME/PRESET``.  Returns ``{"experiment", "preset", "out_dir", "results_path", "n_trials",
    "files": [paths of the figures and tables], "config": {...}}``.
    """
    from prunebound.paper_repro._base import RESULTS_FILE, config_dict, default_out_dir

    if preset not in ("quick", "full"):
        raise InvalidParameterError(f"preset must be 'quick' or 'full', got {preset!r}")
    mod = get_experiment(name)
    config = getattr(mod.Config, preset)()
    d = Path(out_dir) if out_dir is not None else default_out_dir(name, preset)
    results = mod.run(config, d, backend=backend, scheduler=scheduler, n_jobs=n_jobs, progress=progress)
    files = mod.plot(results, d)
    return {"experiment": name, "preset": preset, "out_dir": str(d), "results_path": str(d / RESULTS_FILE),
            "n_trials": len(results), "files": [str(p) for p in files], "config": config_dict(config)}


def make_figures(out_dir: str | Path = "docs/figures", *, names: list[str] | None = None,
                 work_dir: str | Path | None = None, n_jobs: int = 1, progress: bool = False
                 ) -> dict[str, Path]:
    """Run the quick preset of every available experiment (or ``names``) and copy ``NAME.png`` to ``out_dir``.

    The sweeps run in ``work_dir/NAME`` (a temporary folder when ``None``).  Returns ``{name: png path}``.
    """
    names = list_experiments() if names is None else list(names)
    dest = Path(out_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="prunebound-figures-") as tmp:
        base = Path(work_dir) if work_dir is not None else Path(tmp)
        for name in names:
            info = run_experiment(name, "quick", base / name, n_jobs=n_jobs, progress=progress)
            png = next(Path(p) for p in info["files"] if p.endswith(".png"))
            target = dest / f"{name}.png"
            shutil.copyfile(png, target)
            out[name] = target
    return out
