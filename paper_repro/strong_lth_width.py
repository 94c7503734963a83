"""Strong lottery tickets: size of the random network needed to contain an eps-approximation of a target.

Malach et al. (2020, "Proving the lottery ticket hypothesis: pruning is all you need", Thm. 2.1) need a
random network polynomially wider in ``1/eps``; Pensia et al. (2020, "Optimal lottery tickets via SubsetSum",
Thm. 1) and Orseau, Hutter & Rivasplata (2020, "Logarithmic pruning is all you need") only a factor
``O(log(1/eps))``.  For random bias-free ReLU targets ``d_in-widths-d_out`` this experiment builds the tickets
with :func:`prunebound.subnet_search.construct_ticket` for each ``eps`` and plots

* left: the number of random-network parameters vs ``1/eps`` (log-log; mean and min-max band over target
  seeds -- log axes, so the range rather than ± std);
* right: the achieved analytic sup-error certificate (solid) and the empirical max error on ``n_samples``
  points of the ball (dashed), against the requested ``eps`` (dotted diagonal: ``error = eps``).

Widths come from each construction's formula (see :mod:`prunebound.subnet_search.construct`, whose constants
are documented there), not from a search for the smallest width that works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.network import mlp
from prunebound.paper_repro._base import (
    check_choices,
    check_config,
    config_dict,
    group_by,
    make_run,
    stack_over_seeds,
    summary,
    write_outputs,
)
from prunebound.plotting import MARKERS, OKABE_ITO, line_with_band, new_figure, styled

NAME = "strong_lth_width"
TITLE = "Strong lottery tickets: random-network size vs eps (Malach, Pensia, Orseau)"
METHODS = ("pensia", "orseau", "malach")


@dataclass(frozen=True)
class Config:
    """Targets ``mlp(d_in, widths, d_out, bias=False, seed)`` (PyTorch default init); each ``method`` builds
    a ticket for every ``eps`` on the ball of ``radius`` with failure budget ``delta``; ``n_samples`` points
    check the error empirically."""

    d_in: int = 4
    widths: tuple[int, ...] = (4,)
    d_out: int = 2
    eps_grid: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01, 0.003)
    methods: tuple[str, ...] = METHODS
    radius: float = 1.0
    delta: float = 0.05
    n_samples: int = 5000
    seeds: tuple[int, ...] = (0, 1, 2)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        # eps = 0.001 is left out: Malach et al.'s random network would have ~10^8 parameters here
        return cls(d_in=8, widths=(8, 8), eps_grid=(0.3, 0.1, 0.03, 0.01, 0.003), n_samples=100_000,
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    check_choices("construction", config.methods, METHODS)
    base = {k: v for k, v in config_dict(config).items() if k not in ("methods", "seeds")}
    return [{"experiment": NAME, **base, "method": m, "seed": s}
            for s in config.seeds for m in config.methods]


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    from prunebound.subnet_search import approximation_error, construct_ticket

    target = mlp(t["d_in"], t["widths"], t["d_out"], bias=False, seed=t["seed"]).double()
    out: dict[str, list] = {k: [] for k in ("eps", "n_per_sign", "random_params", "kept_params",
                                            "certified_error", "empirical_error", "attempts")}
    for eps in t["eps_grid"]:
        tk = construct_ticket(target, method=t["method"], eps=eps, radius=t["radius"], delta=t["delta"],
                              seed=t["seed"])
        ae = approximation_error(target, tk, n_samples=t["n_samples"], seed=t["seed"])
        out["eps"].append(eps)
        out["n_per_sign"].append(max(tk.n_per_sign))
        out["random_params"].append(tk.random_params)
        out["kept_params"].append(tk.kept_params)
        out["certified_error"].append(tk.certified_error)
        out["empirical_error"].append(ae.empirical)
        out["attempts"].append(tk.attempts)
    return out


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    rows = []
    keys = ("n_per_sign", "random_params", "kept_params", "certified_error", "empirical_error")
    for (method,), recs in group_by(results, "method").items():
        arrs = {k: stack_over_seeds(recs, k) for k in keys}
        for j, eps in enumerate(recs[0]["result"]["eps"]):
            row = {"method": method, "eps": eps}
            for k in keys:
                row[f"{k}_mean"] = summary(arrs[k][:, j])["mean"]
            row["random_params_std"] = summary(arrs["random_params"][:, j])["std"]
            row["certified_error_max"] = float(arrs["certified_error"][:, j].max())
            row["empirical_error_max"] = float(arrs["empirical_error"][:, j].max())
            row["n_seeds"] = len(recs)
            rows.append(row)
    return rows


@styled
def figure(results: list[dict]):
    fig, (ax, ax2) = new_figure(2, 1, width=2 * 3.3, aspect=0.75)
    eps_all: list[float] = []
    for i, ((method,), recs) in enumerate(group_by(results, "method").items()):
        eps = np.asarray(recs[0]["result"]["eps"], dtype=float)
        eps_all.extend(eps.tolist())
        c, mk = OKABE_ITO[i % 7], MARKERS[i % len(MARKERS)]
        line_with_band(ax, 1.0 / eps, stack_over_seeds(recs, "random_params"), label=method, color=c,
                       marker=mk, band="minmax")
        line_with_band(ax2, eps, stack_over_seeds(recs, "certified_error"), label=f"{method} certified",
                       color=c, marker=mk, band="minmax")
        line_with_band(ax2, eps, stack_over_seeds(recs, "empirical_error"), label=f"{method} empirical",
                       color=c, marker=mk, linestyle="--", markerfacecolor="none", band="minmax")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/ε")
    ax.set_ylabel("random-network parameters")
    ax.legend()
    lo, hi = min(eps_all), max(eps_all)
    ax2.plot([lo, hi], [lo, hi], color=OKABE_ITO[-1], linestyle=":", linewidth=0.8, label="error = ε")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("requested ε")
    ax2.set_ylabel("sup-norm error on the ball")
    ax2.legend(ncol=2, fontsize=5.5)
    return fig


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME)
