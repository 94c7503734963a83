"""Strong lottery tickets: size of the random network needed to contain an eps-approximation of a target.

Malach et al. (2020, "Proving the lottery ticket hypothesis: pruning is all you need", Thm. 2.1) need a
random network polynomially wider in ``1/eps``; Pensia et al. (2020, "Optimal lottery tickets via SubsetSum",
Thm. 1) and Orseau, Hutter & Rivasplata (2020, "Logarithmic pruning is all you need") only a factor
``O(log(1/eps))``.  For random bias-free ReLU targets ``d_in-widths-d_out`` this experiment builds the tickets
with :func:`prunebound.subnet_search.construct_ticket` for each ``eps`` and plots

* left: random-network parameters per target weight vs ``1/eps`` (log-log; mean and min-max band over
  target seeds -- log axes, so the range rather than ± standard error); the star is the published number of
  Pensia et al. (2020, Experiment 1, authors' README): 21 random coefficients per target weight at
  ``eps = 0.01`` (8.337 M candidates for the 397 000 weights of a 784-500-10 MNIST network, each weight one
  subset-sum instance of ``n = 3 round(log2(1/eps)) = 21``). Their experiment approximates each weight
  separately with one layer of coefficients, ours builds the two-layer network of their theorem, so the
  star is a scale reference, not the same quantity;
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
    Caption,
    PaperNumber,
    check_choices,
    check_config,
    config_dict,
    finish_figure,
    group_by,
    make_run,
    stack_over_seeds,
    summary,
    with_paper,
    write_outputs,
)
from prunebound.plotting import MARKERS, OKABE_ITO, line_with_band, mark_paper, new_figure, styled

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
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

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
    out["target_params"] = int(sum(p.numel() for p in target.parameters()))
    return out


run = make_run(NAME, run_trial, trials)

#: Pensia et al. (2020), Experiment 1 (official repository README / run.sh): eps = 0.01, n = 21 coefficients
#: per target weight (8.337 M candidates for 397 000 target weights).
PENSIA_EXP1 = PaperNumber(21.0, "random_per_target_mean", "Pensia et al. 2020, Exp. 1 (README)",
                          "784-500-10 MNIST target, one subset sum of n = 21 coefficients per weight")


def paper_number(row) -> PaperNumber | None:
    """The published number comparable with a table row (only Pensia et al.'s construction at eps = 0.01)."""
    return PENSIA_EXP1 if row["method"] == "pensia" and row["eps"] == 0.01 else None


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
            tp = np.array([r["result"].get("target_params", np.nan) for r in recs], dtype=np.float64)
            row["random_per_target_mean"] = float(np.mean(arrs["random_params"][:, j] / tp))
            row["kept_per_target_mean"] = float(np.mean(arrs["kept_params"][:, j] / tp))
            row["n_seeds"] = len(recs)
            rows.append(row)
    return with_paper(rows, paper_number)


def caption(results: list[dict]) -> Caption:
    t = results[0]["trial"]
    seeds = len({r["trial"]["seed"] for r in results})
    arch = f"{t['d_in']}-{'-'.join(map(str, t['widths']))}-{t['d_out']}"
    return Caption(model=f"random bias-free ReLU targets {arch} (PyTorch init), tickets by construction",
                   data=f"uniform points in the ball of radius {t['radius']:g} (empirical error)",
                   n=t["n_samples"], n_label="n points", seeds=seeds, delta=t["delta"],
                   bands=f"min-max over {seeds} target seeds (log axes)",
                   extra="Star: published number (Pensia et al. 2020, Exp. 1), a scale reference.")


@styled
def figure(results: list[dict]):
    fig, (ax, ax2) = new_figure(2, 1, width=2 * 3.3, aspect=0.75)
    eps_all: list[float] = []
    for i, ((method,), recs) in enumerate(group_by(results, "method").items()):
        eps = np.asarray(recs[0]["result"]["eps"], dtype=float)
        eps_all.extend(eps.tolist())
        c, mk = OKABE_ITO[i % 7], MARKERS[i % len(MARKERS)]
        tp = np.array([[r["result"]["target_params"]] for r in recs], dtype=np.float64)
        line_with_band(ax, 1.0 / eps, stack_over_seeds(recs, "random_params") / tp, label=method, color=c,
                       marker=mk, band="minmax")
        line_with_band(ax2, eps, stack_over_seeds(recs, "certified_error"), label=f"{method} certified",
                       color=c, marker=mk, band="minmax")
        line_with_band(ax2, eps, stack_over_seeds(recs, "empirical_error"), label=f"{method} empirical",
                       color=c, marker=mk, linestyle="--", markerfacecolor="none", band="minmax")
    stars = [r for r in table(results) if r["paper"] is not None]
    if stars:
        mark_paper(ax, [1.0 / r["eps"] for r in stars], [r["paper"] for r in stars],
                   label="paper (Pensia Exp. 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/ε")
    ax.set_ylabel("random-network parameters per target weight")
    ax.legend(loc="best")
    lo, hi = min(eps_all), max(eps_all)
    ax2.plot([lo, hi], [lo, hi], color=OKABE_ITO[-1], linestyle=":", linewidth=0.8, label="error = ε")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("requested ε")
    ax2.set_ylabel("sup-norm error on the ball")
    ax2.legend(ncol=2, fontsize=5.5, loc="best")
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
