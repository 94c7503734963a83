"""Lottery tickets by iterative magnitude pruning: test error vs fraction of weights remaining.

Frankle & Carbin (2019, "The lottery ticket hypothesis: finding sparse, trainable neural networks", ICLR,
Fig. 3/4): iterative magnitude pruning (IMP) with resetting the surviving weights to their initial values;
each round's ticket is retrained and compared with the same mask on a random re-initialisation.  The
hypothesis predicts winning tickets keep (or improve) the dense test error down to small fractions of weights,
while randomly re-initialised sparse networks degrade earlier.

Computed by :func:`prunebound.pruning.lottery.lottery` (``info["curve"]``); the dense network is the same
initialisation trained for the same epochs with the ticket's training seed.  Mean ± standard error over
seeds. Protocol: the ticket and its random re-initialisation get the same training after each round
(``epochs`` epochs of SGD at ``lr``, mask fixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.errors import InvalidParameterError
from prunebound.network import mlp
from prunebound.paper_repro._base import (
    BAND,
    Caption,
    Protocol,
    check_config,
    classification_data,
    config_dict,
    finish_figure,
    group_by,
    log_axis,
    make_run,
    se_bands,
    seed_trials,
    stack_over_seeds,
    summary,
    write_outputs,
)
from prunebound.plotting import OKABE_ITO, line_with_band, new_figure, styled
from prunebound.train import evaluate, fit

NAME = "lottery_imp"
TITLE = "Lottery tickets (IMP, reset to init) vs random re-initialisation"


@dataclass(frozen=True)
class Config:
    """MLP ``d_in-widths-10`` on ``dataset``; ``rounds`` IMP rounds reaching ``sparsity``, each training
    ``epochs`` epochs with SGD(``lr``); ``scope`` ``"layer"`` or ``"global"``; ``rewind_steps`` > 0 for late
    rewinding (Frankle et al. 2020)."""

    dataset: str = "digits"
    n_samples: int = 4000
    widths: tuple[int, ...] = (64,)
    sparsity: float = 0.97
    rounds: int = 5
    epochs: int = 6
    lr: float = 0.05
    batch_size: int = 64
    scope: str = "layer"
    rewind_steps: int = 0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(dataset="mnist1d", widths=(300, 100), sparsity=0.99, rounds=10, epochs=40,
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    if not 0.0 < config.sparsity < 1.0:
        raise InvalidParameterError(f"sparsity must lie in (0, 1), got {config.sparsity}")
    return seed_trials(NAME, config)


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    from prunebound.pruning.lottery import lottery

    split = classification_data(t)
    init = mlp(split.train.input_shape[0], t["widths"], 10, seed=t["seed"])
    dense = mlp(split.train.input_shape[0], t["widths"], 10, seed=t["seed"])
    fit(dense, split.train, epochs=t["epochs"], lr=t["lr"], batch_size=t["batch_size"], seed=t["seed"])
    rep = lottery(init, split.train, sparsity=t["sparsity"], seed=t["seed"], rounds=t["rounds"],
                  epochs=t["epochs"], lr=t["lr"], batch_size=t["batch_size"], scope=t["scope"],
                  rewind_steps=t["rewind_steps"], train_ticket=True, test_data=split.test,
                  compare_random=True)
    curve = rep.info["curve"]
    return {"remaining": [1.0 - row["sparsity"] for row in curve],
            "ticket_test_error": [row["ticket_test_error"] for row in curve],
            "random_reinit_test_error": [row["random_reinit_test_error"] for row in curve],
            "dense_test_error": evaluate(dense, split.test).error, "final_sparsity": rep.total,
            "n_train": len(split.train), "n_test": len(split.test), "d_in": int(split.train.input_shape[0])}


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    rows = []
    rem = stack_over_seeds(results, "remaining")
    tk = stack_over_seeds(results, "ticket_test_error")
    rr = stack_over_seeds(results, "random_reinit_test_error")
    dense = summary([r["result"]["dense_test_error"] for r in results])
    rows.append({"round": 0, "remaining": 1.0, "ticket_test_error_mean": dense["mean"],
                 "ticket_test_error_std": dense["std"], "random_reinit_test_error_mean": dense["mean"],
                 "random_reinit_test_error_std": dense["std"], "n_seeds": dense["n"]})
    for j in range(rem.shape[1]):
        a, b = summary(tk[:, j]), summary(rr[:, j])
        rows.append({"round": j + 1, "remaining": float(rem[:, j].mean()),
                     "ticket_test_error_mean": a["mean"], "ticket_test_error_std": a["std"],
                     "random_reinit_test_error_mean": b["mean"], "random_reinit_test_error_std": b["std"],
                     "n_seeds": a["n"]})
    return rows


def caption(results: list[dict]) -> Caption:
    t, r = results[0]["trial"], results[0]["result"]
    seeds = len({x["trial"]["seed"] for x in results})
    data = "scikit-learn digits" if t["dataset"] == "digits" else "MNIST-1D"
    rewind = f", rewound to step {t['rewind_steps']}" if t["rewind_steps"] else ", reset to init"
    return Caption(model=f"MLP {r.get('d_in', '?')}-{'-'.join(map(str, t['widths']))}-10", data=data,
                   n=r.get("n_train", "?"), n_test=r.get("n_test"), seeds=seeds, bands=se_bands(seeds),
                   protocols=(Protocol(int(t["epochs"]), float(t["lr"]),
                                       note=f"both lines, after each of {t['rounds']} IMP rounds "
                                            f"({t['scope']}-wise{rewind})"),))


@styled
def figure(results: list[dict]):
    fig, ax = new_figure()
    groups = group_by(results, "sparsity", "rounds")
    for recs in groups.values():
        dense = np.array([[r["result"]["dense_test_error"]] for r in recs])
        x = np.concatenate([[100.0], 100.0 * stack_over_seeds(recs, "remaining").mean(axis=0)])
        tk = np.concatenate([dense, stack_over_seeds(recs, "ticket_test_error")], axis=1)
        rr = np.concatenate([dense, stack_over_seeds(recs, "random_reinit_test_error")], axis=1)
        line_with_band(ax, x, tk, label="winning ticket (reset to init)", color=OKABE_ITO[0], band=BAND)
        line_with_band(ax, x, rr, label="random re-init", color=OKABE_ITO[3], marker="s", linestyle="--",
                       band=BAND)
    log_axis(ax, "x")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test error")
    ax.legend(loc="best")
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
