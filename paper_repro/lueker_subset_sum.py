"""Lueker's random subset-sum theorem: how many samples eps-approximate every target in [-1/2, 1/2].

Lueker (1998, "Exponentially small bounds on the expected optimum of the partition and subset sum
problems", Random Structures & Algorithms 12(1)), Corollary 2.5 as restated: ``X_1..X_n`` i.i.d.
Uniform[-1, 1]; there is a constant ``C`` such that for every ``eps >= exp(-n / (2C))``, with probability at
least

    1 - exp(-(n/2 - C ln(1/eps))^2 / (2n)),

every target ``x in [-1/2, 1/2]`` is within ``eps`` of some subset sum.  Pensia et al. (2020, "Optimal lottery
tickets via SubsetSum") use it (with a restatement for ``[-1, 1]``) for their ``n = O(log(1/eps))`` width.

Left panel: empirical success probability vs ``n`` on Lueker's interval (mean ± standard error over seed blocks, each
block ``reps`` trials, :func:`prunebound.subnet_search.subset_sum.lueker_experiment` with the exact
meet-in-the-middle solver), and the stated lower bound (dashed, same colour; 0 where
``n < 2 C ln(1/eps)``, where it says nothing) for ``C = C*``, the smallest ``C`` on a grid for which the
stated bound lies below every measured probability's 97.5 % Clopper-Pearson upper limit -- i.e. the
tightest version of the theorem our data do not contradict.  Right panel: the smallest ``n`` with success
>= 0.9 against ``log2(1/eps)`` (one point per seed block), the ``n`` at which the stated bound with ``C*``
reaches 0.9 (``sqrt(n) = sqrt(2 ln 10) + sqrt(2 ln 10 + 2 C* ln(1/eps))``), and the reference line
``n = LUEKER_C log2(1/eps)`` used elsewhere in the package.

Uncertain (see the package's notes on Lueker 1998): the corollary is taken from a secondary quote, not the
paper; ``C`` is not given numerically (so ``C*`` is a fit, not Lueker's constant); ``log`` is read as the
natural logarithm; the interval ``[-1/2, 1/2]`` is the quoted one (Pensia et al.'s restatement uses
``[-1, 1]``, which ``Config.half_width = 1`` reproduces).
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
TITLE = "Random subset sum (Lueker 1998): P[all targets in [-1/2,1/2] eps-approximable] vs n"
_C_GRID = np.logspace(-2, 2, 801)


@dataclass(frozen=True)
class Config:
    """``n_grid`` sample sizes (<= 40), ``eps_grid`` accuracies, ``reps`` trials per (n, eps, seed block),
    ``seeds`` seed blocks, ``dist`` the value distribution, ``grid_factor`` target-grid refinement,
    ``half_width`` the target interval ``[-half_width, half_width]`` (Lueker: 1/2)."""

    n_grid: tuple[int, ...] = tuple(range(2, 17, 2))
    eps_grid: tuple[float, ...] = (0.3, 0.1, 0.03)
    reps: int = 20
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dist: str = "uniform[-1,1]"
    grid_factor: float = 2.0
    half_width: float = 0.5

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
                          seed=seed, half_width=float(t["half_width"]))
    return {"n": list(r.n_grid), "success": r.success[:, 0].tolist(), "n_at_90": r.n_at_90[0],
            "theory_n": r.theory_n[0], "C": r.C}


run = make_run(NAME, run_trial, trials)


def lueker_bound(n, eps: float, C: float) -> np.ndarray:
    """Lueker's stated lower bound ``1 - exp(-(n/2 - C ln(1/eps))^2 / (2n))`` where ``n >= 2 C ln(1/eps)``
    (``eps >= exp(-n/(2C))``), else 0 (no statement)."""
    n = np.asarray(n, dtype=np.float64)
    gap = n / 2 - C * math.log(1.0 / eps)
    return np.where(gap >= 0, -np.expm1(-(gap**2) / (2 * n)), 0.0)


def n_at_90_stated(eps: float, C: float) -> float:
    """The ``n`` at which :func:`lueker_bound` reaches 0.9: ``sqrt(n) = sqrt(2 ln 10) + sqrt(2 ln 10 + 2 C
    ln(1/eps))``."""
    a = 2 * math.log(10.0)
    return (math.sqrt(a) + math.sqrt(a + 2 * C * math.log(1.0 / eps))) ** 2


def _upper_limits(results: list[dict]) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Per record: (n, eps, 97.5 % Clopper-Pearson upper limit of the success probability)."""
    from scipy.stats import beta

    out = []
    for rec in results:
        r, t = rec["result"], rec["trial"]
        k = np.rint(np.asarray(r["success"]) * t["reps"])
        up = np.where(k >= t["reps"], 1.0, beta.ppf(0.975, k + 1, t["reps"] - k))
        out.append((np.asarray(r["n"], dtype=np.float64), float(t["eps"]), up))
    return out


def consistent_C(results: list[dict]) -> float:
    """``C*``: the smallest ``C`` on a log grid for which the stated bound is at most every measured success
    probability's 97.5 % upper limit (the bound decreases in ``C``, so every larger ``C`` is consistent too)."""
    lims = _upper_limits(results)
    for C in _C_GRID:
        if all(np.all(lueker_bound(n, e, C) <= up + 1e-12) for n, e, up in lims):
            return float(C)
    return math.inf


def table(results: list[dict]) -> list[dict]:
    rows = []
    c_star = consistent_C(results) if results else math.nan
    for (eps,), recs in group_by(results, "eps").items():
        y = stack_over_seeds(recs, "success")
        n90 = [r["result"]["n_at_90"] for r in recs]
        n90f = [math.nan if v is None else v for v in n90]
        for j, n in enumerate(recs[0]["result"]["n"]):
            st = summary(y[:, j])
            rows.append({"eps": eps, "n": n, "success_mean": st["mean"], "success_std": st["std"],
                         "n_seeds": st["n"], "trials_per_seed": recs[0]["trial"]["reps"],
                         "half_width": recs[0]["trial"]["half_width"],
                         "n_at_90_mean": summary(n90f)["mean"], "theory_n": recs[0]["result"]["theory_n"],
                         "C_star": c_star, "lueker_bound_C_star": float(lueker_bound(n, eps, c_star))})
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
    c_star = consistent_C(results)
    xs, ys = [], []
    for i, ((eps,), recs) in enumerate(groups.items()):
        col = OKABE_ITO[i % len(OKABE_ITO)]
        n = recs[0]["result"]["n"]
        line_with_band(ax, n, stack_over_seeds(recs, "success"), label=f"ε = {eps:g}", color=col, band=BAND)
        nn = np.linspace(min(n), max(n), 200)
        ax.plot(nn, lueker_bound(nn, eps, c_star), color=col, linestyle="--", linewidth=0.9)
        for r in recs:
            if r["result"]["n_at_90"] is not None:
                xs.append(math.log2(1.0 / eps))
                ys.append(r["result"]["n_at_90"])
    ax.plot([], [], color="0.3", linestyle="--", label=f"Lueker's bound, C* = {c_star:.2g}")
    ax.axhline(0.9, color=OKABE_ITO[-1], linewidth=0.6, linestyle=":")
    hw = results[0]["trial"]["half_width"] if results else 0.5
    ax.set_xlabel("number of samples n")
    ax.set_ylabel(f"P[every z ∈ [-{hw:g}, {hw:g}] within ε]")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(loc="best", fontsize=6)
    ax2.scatter(xs, ys, color=OKABE_ITO[0], s=12, label="measured n at P ≥ 0.9", zorder=3)
    lg = np.linspace(min(math.log2(1 / e) for (e,) in groups), max(math.log2(1 / e) for (e,) in groups), 50)
    C = results[0]["result"]["C"] if results else LUEKER_C
    ax2.plot(lg, C * lg, color=OKABE_ITO[-1], linestyle="--", label=f"n = {C:g}·log₂(1/ε)")
    ax2.plot(lg, [n_at_90_stated(2.0 ** -v, c_star) for v in lg], color=OKABE_ITO[1], linestyle="-",
             label=f"Lueker's bound = 0.9, C* = {c_star:.2g}")
    ax2.set_xlabel("log₂(1/ε)")
    ax2.set_ylabel("samples needed")
    ax2.legend(loc="best", fontsize=6)
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
