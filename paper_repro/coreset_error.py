"""Coreset pruning: output error vs retained parameters (CoreNet / SiPP / PFP vs uniform and magnitude).

The figure of Baykal et al. (2019, "Data-dependent coresets for compressing neural networks with
applications to generalization bounds", ICLR, Fig. 2) and Liebenwein et al. (2020, "Provable filter pruning",
ICLR): train a network, prune it with each method to a range of kept fractions, and plot against the number of
retained (non-zero) weights

* left: the mean relative output error ``||f(x) - f̂(x)||_2 / ||f(x)||_2`` over test inputs ``x`` -- the
  quantity the coreset theorems bound (per output coordinate, with probability ``1 - delta``); symlog scale
  (linear below 0.01) because methods that keep every weight have error exactly 0;
* right: the test error of the pruned network (no fine-tuning).

Mean ± std over seeds; each seed trains its own network and draws its own samples.  Pruning goes through
:func:`prunebound.coresets.prune` with ``keep_ratio`` (the method inverts its sample-size formula).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from prunebound.data import digits, mnist1d
from prunebound.errors import InvalidParameterError
from prunebound.network import count_nonzero, mlp
from prunebound.paper_repro._base import (
    check_config,
    config_dict,
    group_by,
    log_axis,
    run_trials,
    stack_over_seeds,
    summary,
    write_outputs,
)
from prunebound.plotting import line_with_band, new_figure, styled
from prunebound.train import evaluate, fit

NAME = "coreset_error"
TITLE = "Coreset pruning: relative output error and test error vs retained weights"


@dataclass(frozen=True)
class Config:
    """MLP ``d_in-widths-10`` trained ``epochs`` epochs on ``dataset``; each method in ``methods`` (names of
    :data:`prunebound.coresets.METHODS`) prunes it to every ``keep_ratios`` entry with failure probability
    ``delta`` (``iters`` bisection steps on ``eps`` to hit the keep ratio); all test inputs measure the
    output error."""

    dataset: str = "digits"
    n_samples: int = 4000
    widths: tuple[int, ...] = (64,)
    epochs: int = 15
    lr: float = 0.05
    batch_size: int = 64
    keep_ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.7)
    methods: tuple[str, ...] = ("corenet", "sipp", "pfp", "uniform", "magnitude")
    delta: float = 0.1
    iters: int = 12
    seeds: tuple[int, ...] = (0, 1)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(dataset="mnist1d", widths=(300, 100), epochs=60, iters=30,
                   keep_ratios=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8),
                   methods=("corenet", "data_independent", "sipp", "pfp", "uniform", "magnitude",
                            "magnitude_global"),
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    from prunebound.coresets import METHODS

    for m in config.methods:
        if m not in METHODS:
            raise InvalidParameterError(f"unknown coreset method {m!r}; allowed: {', '.join(METHODS)}")
    for k in config.keep_ratios:
        if not 0.0 < k <= 1.0:
            raise InvalidParameterError(f"keep_ratios must lie in (0, 1], got {k}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("methods", "seeds")}
    return [{"experiment": NAME, **base, "method": m, "seed": s}
            for s in config.seeds for m in config.methods]


def _data(t: dict):
    if t["dataset"] == "digits":
        return digits(seed=0)
    if t["dataset"] == "mnist1d":
        return mnist1d(int(t["n_samples"]), seed=0)
    raise InvalidParameterError(f"dataset must be 'digits' or 'mnist1d', got {t['dataset']!r}")


def relative_output_error(model, pruned, x: torch.Tensor) -> float:
    """Mean over rows of ``||model(x) - pruned(x)||_2 / ||model(x)||_2``."""
    with torch.no_grad():
        a, b = model(x).double(), pruned(x).double()
    return float(((a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)).mean())


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    from prunebound.coresets import prune

    split = _data(t)
    model = mlp(split.train.input_shape[0], t["widths"], 10, seed=t["seed"])
    fit(model, split.train, epochs=t["epochs"], lr=t["lr"], batch_size=t["batch_size"], seed=t["seed"])
    model.eval()
    dense = evaluate(model, split.test).error
    kept, kept_frac, rel, err, eps = [], [], [], [], []
    for k in t["keep_ratios"]:
        pruned, g = prune(model, split.train, method=t["method"], keep_ratio=k, delta=t["delta"],
                          seed=t["seed"], iters=t["iters"])
        pruned.eval()
        kept.append(count_nonzero(pruned, include_bias=False))
        kept_frac.append(g.keep_ratio)
        rel.append(relative_output_error(model, pruned, split.test.x))
        err.append(evaluate(pruned, split.test).error)
        eps.append(g.eps)
    return {"keep_ratio": list(t["keep_ratios"]), "kept_weights": kept, "achieved_keep_ratio": kept_frac,
            "relative_output_error": rel, "test_error": err, "eps": eps, "dense_test_error": dense,
            "total_weights": count_nonzero(model, include_bias=False)}


def run(config: Config, out_dir, *, backend: str = "local", scheduler=None, n_jobs: int = 1,
        progress: bool = True) -> list[dict]:
    return run_trials(NAME, run_trial, trials(config), config, out_dir, backend=backend, scheduler=scheduler,
                      n_jobs=n_jobs, progress=progress)


def table(results: list[dict]) -> list[dict]:
    rows = []
    for (method,), recs in group_by(results, "method").items():
        kept = stack_over_seeds(recs, "kept_weights")
        rel = stack_over_seeds(recs, "relative_output_error")
        err = stack_over_seeds(recs, "test_error")
        for j, k in enumerate(recs[0]["result"]["keep_ratio"]):
            sr, se = summary(rel[:, j]), summary(err[:, j])
            rows.append({"method": method, "keep_ratio": k, "kept_weights_mean": float(kept[:, j].mean()),
                         "relative_output_error_mean": sr["mean"], "relative_output_error_std": sr["std"],
                         "test_error_mean": se["mean"], "test_error_std": se["std"],
                         "dense_test_error_mean": summary([r["result"]["dense_test_error"]
                                                           for r in recs])["mean"],
                         "n_seeds": sr["n"]})
    return rows


@styled
def figure(results: list[dict]):
    fig, (ax, ax2) = new_figure(2, 1, width=2 * 3.3, aspect=0.75)
    for (method,), recs in group_by(results, "method").items():
        x = stack_over_seeds(recs, "kept_weights").mean(axis=0)
        line_with_band(ax, x, stack_over_seeds(recs, "relative_output_error"), label=method)
        line_with_band(ax2, x, stack_over_seeds(recs, "test_error"), label=method)
    for a in (ax, ax2):
        log_axis(a, "x")
        a.set_xlabel("retained weights")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("relative output error")
    ax2.set_ylabel("test error (no fine-tuning)")
    ax.legend()
    return fig


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME)
