"""Noise stability vs norm-based capacity: effective number of parameters along training.

Arora, Ge, Neyshabur & Zhang (2018, "Stronger generalization bounds for deep nets via a compression approach",
ICML, Fig. 4): the compression quantity of their Theorem 4.1,
``q = c^2 d^2 max_S ||f(x)||^2 sum_i 1/(mu_i^2 mu_{i->}^2) / gamma^2``, is compared on a log scale with the
spectral-norm capacities of Bartlett, Foster & Telgarsky (2017) and Neyshabur, Bhojanapalli & Srebro (2018)
and with the raw parameter count, as training proceeds.  All quantities come from
:func:`prunebound.bounds.noise_stability.comparison_log10` (log10 values); ``gamma`` at each checkpoint is the
``margin_percentile``-th percentile of the positive training margins (Arora et al. pick gamma so that few
training points have margin below it).  Mean ± standard error over seeds (of the log10 values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from prunebound.errors import InvalidParameterError
from prunebound.network import mlp
from prunebound.paper_repro._base import (
    BAND,
    Caption,
    check_config,
    classification_data,
    config_dict,
    finish_figure,
    make_run,
    se_bands,
    seed_trials,
    stack_over_seeds,
    summary,
    write_outputs,
)
from prunebound.plotting import line_with_band, new_figure, styled
from prunebound.train import evaluate, fit, margins

NAME = "noise_stability"
TITLE = "Noise stability (Arora et al. 2018) vs spectral capacities and parameter count along training"
QUANTITIES = (("arora2018", "noise stability (Arora et al.)"),
              ("spectral_bartlett2017", "spectral (Bartlett et al.)"),
              ("spectral_neyshabur2018", "spectral (Neyshabur et al.)"),
              ("params", "parameter count"))


@dataclass(frozen=True)
class Config:
    """MLP ``d_in-widths-10`` on ``dataset`` trained with SGD(``lr``); quantities measured on the training set
    after each epoch count in ``checkpoints``; ``margin_percentile`` sets gamma."""

    dataset: str = "digits"
    n_samples: int = 4000
    widths: tuple[int, ...] = (64, 64)
    checkpoints: tuple[int, ...] = (1, 2, 4, 8, 16)
    lr: float = 0.05
    batch_size: int = 64
    margin_percentile: float = 10.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(dataset="mnist1d", widths=(256, 256, 256), checkpoints=(1, 2, 4, 8, 16, 32, 64, 128),
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    cps = list(config.checkpoints)
    if cps != sorted(set(cps)) or cps[0] < 1:
        raise InvalidParameterError(f"checkpoints must be increasing positive epoch counts, got {cps}")
    if not 0 < config.margin_percentile < 100:
        raise InvalidParameterError(f"margin_percentile must be in (0, 100), got {config.margin_percentile}")
    return seed_trials(NAME, config)


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    from prunebound.bounds.noise_stability import comparison_log10

    split = classification_data(t)
    model = mlp(split.train.input_shape[0], t["widths"], 10, seed=t["seed"])
    out: dict[str, list] = {k: [] for k in ("epoch", "gamma", "train_error", "test_error",
                                            *(q for q, _ in QUANTITIES))}
    done = 0
    for ep in t["checkpoints"]:
        # one continuous SGD run: the shuffling seed of each segment is fixed by (seed, epoch)
        fit(model, split.train, epochs=ep - done, lr=t["lr"], batch_size=t["batch_size"],
            seed=int(t["seed"]) * 10_007 + ep)
        done = ep
        mg = margins(model, split.train)
        pos = mg[mg > 0]
        gamma = float(torch.quantile(pos, t["margin_percentile"] / 100.0)) if pos.numel() else 1e-3
        logs = comparison_log10(model, split.train, gamma=gamma)
        out["epoch"].append(ep)
        out["gamma"].append(gamma)
        out["train_error"].append(evaluate(model, split.train).error)
        out["test_error"].append(evaluate(model, split.test).error)
        for q, _ in QUANTITIES:
            out[q].append(logs[q])
    out.update(n_train=len(split.train), d_in=int(split.train.input_shape[0]))
    return out


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    keys = ("gamma", "train_error", "test_error", *(q for q, _ in QUANTITIES))
    arrs = {k: stack_over_seeds(results, k) for k in keys}
    rows = []
    for j, ep in enumerate(results[0]["result"]["epoch"]):
        row = {"epoch": ep}
        for k in keys:
            st = summary(arrs[k][:, j])
            row[f"{'log10_' if k in dict(QUANTITIES) else ''}{k}_mean"] = st["mean"]
            if k in dict(QUANTITIES) and k != "params":
                row[f"log10_{k}_std"] = st["std"]
        row["n_seeds"] = len(results)
        rows.append(row)
    return rows


def caption(results: list[dict]) -> Caption:
    t, r = results[0]["trial"], results[0]["result"]
    seeds = len({x["trial"]["seed"] for x in results})
    data = "scikit-learn digits" if t["dataset"] == "digits" else "MNIST-1D"
    return Caption(model=f"MLP {r.get('d_in', '?')}-{'-'.join(map(str, t['widths']))}-10, SGD lr {t['lr']:g}",
                   data=f"{data} training set", n=r.get("n_train", "?"), seeds=seeds, bands=se_bands(seeds),
                   extra=f"γ: {t['margin_percentile']:g}th percentile of the positive training margins; "
                         "capacities, not bounds.")


@styled
def figure(results: list[dict]):
    fig, ax = new_figure(width=4.6, aspect=0.6)
    x = results[0]["result"]["epoch"]
    for q, label in QUANTITIES:
        line_with_band(ax, x, stack_over_seeds(results, q), label=label, band=BAND)
    from matplotlib.ticker import FormatStrFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("log10 (effective) parameters")
    ax.legend(fontsize=6, loc="best")
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
