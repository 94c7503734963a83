"""Lueker's random subset-sum curve: how many samples eps-approximate every target in [-1, 1].

Lueker (1998, "Exponentially small bounds on the expected optimum of the partition and subset sum
problems", Random Structures & Algorithms 12(1)), as used by Pensia et al. (2020, "Optimal lottery tickets
via SubsetSum", Corollary 3.3): ``n = O(log(1/eps))`` i.i.d. Uniform[-1, 1] values suffice, with high
probability, for every ``z in [-1, 1]`` to be within ``eps`` of some subset sum.

Left panel: empirical success probability vs ``n``, one line per ``eps`` (mean ± standard error over seed
blocks, each
block ``reps`` trials, computed by :func:`prunebound.subnet_search.subset_sum.lueker_experiment` with the
exact meet-in-the-middle solver).  Right panel: the smallest ``n`` reaching success >= 0.9 against
``log2(1/eps)`` (one point per seed block) and the reference line ``n = C log2(1/eps)`` (``C`` =
:data:`LUEKER_C`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro._base import (
    BAND,
    Caption,
    check_config,
    config_dict,
    finish_figure,
    group_by,
    make_run,
    se_bands,
    stack_over_seeds,
    summary,
    write_outputs,
)
from prunebound.plotting import OKABE_ITO, line_with_band, new_figure, styled
from prunebound.subnet_search.subset_sum import LUEKER_C, lueker_experiment

NAME = "lueker_subset_sum"
TITLE = "Random subset sum (Lueker 1998): P[all targets in [-1,1] eps-approximable] vs n"


@dataclass(frozen=True)
class Config:
    """``n_grid`` sample sizes (<= 40), ``eps_grid`` accuracies, ``reps`` trials per (n, eps, seed block),
    ``seeds`` seed blocks, ``dist`` the value distribution, ``grid_factor`` target-grid refinement."""

    n_grid: tuple[int, ...] = tuple(range(2, 17, 2))
    eps_grid: tuple[float, ...] = (0.3, 0.1, 0.03)
    reps: int = 20
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dist: str = "uniform[-1,1]"
    grid_factor: float = 2.0

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(n_grid=tuple(range(2, 31, 2)), eps_grid=(0.1, 0.05, 0.02, 0.01, 0.005), reps=100,
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    if max(config.n_grid) > 40:
        raise InvalidParameterError(f"n_grid entries must be <= 40 (exact solver), got {max(config.n_grid)}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("eps_grid", "seeds")}
    return [{"experiment": NAME, **base, "eps": e, "seed": s} for s in config.seeds for e in config.eps_grid]


def run_trial(t: dict) -> dict:
    # a distinct, deterministic stream per (seed, eps)
    seed = int(t["seed"]) * 1_000_003 + int(round(float(t["eps"]) * 1e6))
    r = lueker_experiment(t["n_grid"], [t["eps"]], t["reps"], dist=t["dist"], grid_factor=t["grid_factor"],
                          seed=seed)
    return {"n": list(r.n_grid), "success": r.success[:, 0].tolist(), "n_at_90": r.n_at_90[0],
            "theory_n": r.theory_n[0], "C": r.C}


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    rows = []
    for (eps,), recs in group_by(results, "eps").items():
        y = stack_over_seeds(recs, "success")
        n90 = [r["result"]["n_at_90"] for r in recs]
        n90f = [math.nan if v is None else v for v in n90]
        for j, n in enumerate(recs[0]["result"]["n"]):
            st = summary(y[:, j])
            rows.append({"eps": eps, "n": n, "success_mean": st["mean"], "success_std": st["std"],
                         "n_seeds": st["n"], "trials_per_seed": recs[0]["trial"]["reps"],
                         "n_at_90_mean": summary(n90f)["mean"], "theory_n": recs[0]["result"]["theory_n"]})
    return rows


def caption(results: list[dict]) -> Caption:
    t = results[0]["trial"]
    seeds = len({r["trial"]["seed"] for r in results})
    return Caption(model=f"subset sums of n i.i.d. {t['dist']} values (exact meet-in-the-middle)",
                   data="every target z in [-1, 1]", n=t["reps"], n_label="trials per point and seed block",
                   seeds=seeds, bands=se_bands(seeds).replace("seeds", "seed blocks"))


@styled
def figure(results: list[dict]):
    fig, (ax, ax2) = new_figure(2, 1, width=2 * 3.3, aspect=0.75)
    groups = group_by(results, "eps")
    xs, ys = [], []
    for (eps,), recs in groups.items():
        line_with_band(ax, recs[0]["result"]["n"], stack_over_seeds(recs, "success"), label=f"ε = {eps:g}",
                       band=BAND)
        for r in recs:
            if r["result"]["n_at_90"] is not None:
                xs.append(math.log2(1.0 / eps))
                ys.append(r["result"]["n_at_90"])
    ax.axhline(0.9, color=OKABE_ITO[-1], linewidth=0.6, linestyle=":")
    ax.set_xlabel("number of samples n")
    ax.set_ylabel("P[every z ∈ [-1,1] within ε]")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(loc="best")
    ax2.scatter(xs, ys, color=OKABE_ITO[0], s=12, label="measured n at P ≥ 0.9", zorder=3)
    lg = np.linspace(min(math.log2(1 / e) for (e,) in groups), max(math.log2(1 / e) for (e,) in groups), 50)
    C = results[0]["result"]["C"] if results else LUEKER_C
    ax2.plot(lg, C * lg, color=OKABE_ITO[-1], linestyle="--", label=f"n = {C:g}·log₂(1/ε)")
    ax2.set_xlabel("log₂(1/ε)")
    ax2.set_ylabel("samples needed")
    ax2.legend(loc="best")
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
