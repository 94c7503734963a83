"""Searching a random network for a good subnetwork: edge-popup vs greedy forward selection vs a random mask.

Two tasks, both with a frozen random two-layer ReLU network ``d_in - N - C`` (bias-free):

* ``"planted"`` -- the planted-ticket task of Fischer & Burkholz (2022, "Plant 'n' seek: can you find the
  winning ticket?", ICLR): a sparse target ``d_in - h - C`` hidden inside the random network
  (:func:`prunebound.subnet_search.planted.plant_ticket`, ``N = width_factor * h``), labels = the target's
  argmax, so the planted mask has test error 0 and is the reference;
* ``"mnist1d"`` -- MNIST-1D (Greydanus 2020; :func:`prunebound.data.mnist1d`), 40 inputs, 10 classes, a random
  network ``40 - N - 10`` (full preset);
* ``"digits"`` -- scikit-learn's 8x8 digits (:func:`prunebound.data.digits`), 64 inputs, 10 classes, a random
  network ``64 - N - 10`` (quick preset: on MNIST-1D a small random network's best subnetworks sit near
  chance, 0.8 test error against 0.9, which shows nothing at quick-preset scale).

Methods at *matched per-layer weight budgets*: greedy forward selection (Ye et al. 2020, "Good subnetworks
provably exist: pruning via greedy forward selection", ICML, Alg. 1;
:func:`~prunebound.subnet_search.search.greedy_forward_selection`) runs ``n`` steps for each ``n`` of
``n_select``; the number of weights its distinct units keep in each layer is then given to edge-popup
(Ramanujan et al. 2020, "What's hidden in a randomly weighted neural network?", CVPR, Alg. 1;
:func:`~prunebound.subnet_search.search.edge_popup`) and to a uniformly random mask
(:func:`~prunebound.subnet_search.search.random_mask`). Deviation (as in the library): greedy selection rescales
the kept output weights (the subnetwork is the average of the chosen units), edge-popup and the random mask do
not touch the weights.

Figure: (a, b) test error vs fraction of weights kept on each task (mean ± standard error over seeds; the
planted ticket's error and chance level as reference lines); (c) on the planted task, the fraction of the
planted mask recovered by each method (mask overlap); (d) greedy selection's training loss ``L(f_n)`` vs ``n``
on each task next to
the ``O(1/n)`` reference ``L_0 + c / n`` of Ye et al. (Thm. 1; see the search module for ``L_0`` and ``c``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro._base import (
    BAND,
    Caption,
    Protocol,
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

NAME = "ticket_search"
TITLE = "Ticket search in a random network: edge-popup vs greedy forward selection vs random mask"
METHODS = ("edge_popup", "greedy", "random")
TASKS = ("planted", "mnist1d", "digits")
_TASK_TITLES = {"planted": "planted ticket", "mnist1d": "MNIST-1D", "digits": "digits"}
_COLORS = {"edge_popup": OKABE_ITO[0], "greedy": OKABE_ITO[1], "random": OKABE_ITO[3]}
_MARKERS = {"edge_popup": "o", "greedy": "s", "random": "^"}


@dataclass(frozen=True)
class Config:
    """``tasks``; planted task: target ``planted_d_in - planted_hidden - planted_classes`` with density
    ``planted_density`` inside a random network ``width_factor`` times wider; MNIST-1D: ``mnist1d_samples``
    examples, random network of ``mnist1d_hidden`` units; digits: random network of ``digits_hidden`` units;
    ``n_train`` / ``n_test`` examples (planted);
    ``n_select`` greedy steps (one budget each); edge-popup ``epochs`` and ``lr``; ``seeds``."""

    tasks: tuple[str, ...] = ("planted", "digits")
    planted_d_in: int = 20
    planted_hidden: int = 16
    planted_classes: int = 4
    planted_density: float = 0.5
    width_factor: int = 4
    n_train: int = 1000
    n_test: int = 1000
    mnist1d_samples: int = 2000
    mnist1d_hidden: int = 128
    digits_hidden: int = 64
    n_select: tuple[int, ...] = (4, 12, 24)
    epochs: int = 15
    lr: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(tasks=("planted", "mnist1d"), planted_d_in=40, planted_hidden=32, planted_classes=10,
                   n_train=5000, n_test=5000,
                   mnist1d_samples=10000, mnist1d_hidden=512, n_select=(8, 16, 32, 64, 128, 256), epochs=30,
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    bad = [t for t in config.tasks if t not in TASKS]
    if bad:
        raise InvalidParameterError(f"tasks must be among {TASKS}, got {bad}")
    if min(config.n_select) < 1:
        raise InvalidParameterError(f"n_select entries must be >= 1, got {config.n_select}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("tasks", "seeds")}
    own = {"planted": ("planted_", "width_factor", "n_train", "n_test"), "mnist1d": ("mnist1d_",),
           "digits": ("digits_",)}
    prefixes = tuple(p for v in own.values() for p in v)

    def keep(k: str, task: str) -> bool:  # a trial holds only the parameters that change its result
        return not k.startswith(prefixes) or k.startswith(own[task])

    return [{"experiment": NAME, **{k: v for k, v in base.items() if keep(k, task)}, "task": task, "seed": s}
            for task in config.tasks for s in config.seeds]


def _task(t: dict):
    """(random network, train, test, planted masks or None, planted ticket or None)."""
    from prunebound.data import mnist1d
    from prunebound.network import mlp
    from prunebound.subnet_search.planted import plant_ticket

    if t["task"] == "planted":
        task = plant_ticket(t["planted_d_in"], [t["planted_hidden"]], t["planted_classes"],
                            width_factor=t["width_factor"], target_density=t["planted_density"],
                            n_train=t["n_train"], n_test=t["n_test"], seed=t["seed"])
        return task.random_net, task.data.train, task.data.test, task.planted_masks, task.ticket()
    if t["task"] == "digits":
        from prunebound.data import digits

        split, hidden = digits(seed=0), t["digits_hidden"]
    else:
        split, hidden = mnist1d(t["mnist1d_samples"], seed=0), t["mnist1d_hidden"]
    net = mlp(split.train.x.shape[1], [hidden], 10, bias=False, seed=t["seed"])
    return net, split.train, split.test, None, None


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    from prunebound.network import Network, masks_of
    from prunebound.subnet_search.planted import mask_overlap
    from prunebound.subnet_search.search import edge_popup, greedy_forward_selection, random_mask
    from prunebound.train import evaluate

    net, train, test, planted, ticket = _task(t)
    n_weights = sum(ly.n_weights for ly in Network.from_module(net).layers)
    out: dict = {"n_select": list(t["n_select"]), "kept_fraction": [], "keep": [], "n_weights": n_weights}
    for m in METHODS:
        out[f"{m}_test_error"], out[f"{m}_test_loss"], out[f"{m}_overlap"] = [], [], []
    curve = None
    for n in t["n_select"]:
        gr = greedy_forward_selection(net, train, n_select=int(n))
        keep = [int(mk.sum()) for mk in masks_of(gr.module).values()]
        found = {"greedy": gr.module,
                 "edge_popup": edge_popup(net, train, keep=keep, epochs=t["epochs"], lr=t["lr"],
                                          seed=t["seed"]).module,
                 "random": random_mask(net, keep=keep, seed=t["seed"])}
        out["keep"].append(keep)
        out["kept_fraction"].append(sum(keep) / n_weights)
        for m, mod in found.items():
            ev = evaluate(mod, test)
            out[f"{m}_test_error"].append(ev.error)
            out[f"{m}_test_loss"].append(ev.cross_entropy)
            ov = mask_overlap(list(masks_of(mod).values()), planted)[-1] if planted is not None else None
            out[f"{m}_overlap"].append(ov)
        curve = gr
    out["greedy_loss_curve"] = list(curve.loss_curve)
    out["greedy_rate_reference"] = list(curve.rate_reference)
    out["greedy_full_loss"] = curve.full_loss
    out["planted_test_error"] = evaluate(ticket, test).error if ticket is not None else None
    out.update(n_train=len(train), n_test=len(test), d_in=int(train.x.shape[1]),
               n_classes=int(train.n_classes or int(train.y.max()) + 1),
               hidden=int(Network.from_module(net).layers[0].fan_out))
    return out


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    rows = []
    for (task,), recs in group_by(results, "task").items():
        kept = stack_over_seeds(recs, "kept_fraction")
        for j, n in enumerate(recs[0]["result"]["n_select"]):
            row = {"task": task, "n_select": n, "kept_fraction_mean": float(kept[:, j].mean()),
                   "n_seeds": len(recs)}
            for m in METHODS:
                err = summary(stack_over_seeds(recs, f"{m}_test_error")[:, j])
                row[f"{m}_test_error_mean"] = err["mean"]
                row[f"{m}_test_error_std"] = err["std"]
                row[f"{m}_test_loss_mean"] = summary(stack_over_seeds(recs, f"{m}_test_loss")[:, j])["mean"]
                ov = [r["result"][f"{m}_overlap"][j] for r in recs]
                row[f"{m}_overlap_mean"] = summary([np.nan if v is None else v for v in ov])["mean"]
            pl = [r["result"]["planted_test_error"] for r in recs]
            row["planted_test_error_mean"] = summary([np.nan if v is None else v for v in pl])["mean"]
            rows.append(row)
    return rows


def caption(results: list[dict]) -> Caption:
    by = {task: recs[0] for (task,), recs in group_by(results, "task").items()}
    seeds = len({r["trial"]["seed"] for r in results})
    nets, data, ns = [], [], []
    for task, r in by.items():
        res, t = r["result"], r["trial"]
        net = f"{res['d_in']}-{res['hidden']}-{res['n_classes']}"
        if task == "planted":
            net += f" (target {t['planted_d_in']}-{t['planted_hidden']}-{t['planted_classes']})"
        nets.append(f"{net} on {_TASK_TITLES[task]}")
        data.append(_TASK_TITLES[task])
        ns.append(f"{res['n_train']} ({_TASK_TITLES[task]})")
    t0 = results[0]["trial"]
    return Caption(model="frozen random bias-free ReLU nets " + ", ".join(nets), data=" / ".join(data),
                   n=", ".join(ns), seeds=seeds, bands=se_bands(seeds),
                   protocols=(Protocol(0, note=f"weights never trained; budgets matched per layer to greedy's; "
                                               f"edge-popup scores trained {t0['epochs']} epochs at lr "
                                               f"{t0['lr']:g}"),),
                   extra="Dashed grey: chance level.")


@styled
def figure(results: list[dict]):
    fig, axes = new_figure(2, 2, width=2 * 3.3, aspect=0.75)
    (ax_p, ax_m), (ax_o, ax_g) = axes
    groups = group_by(results, "task")
    real = [t for t in ("digits", "mnist1d") if (t,) in groups]
    for task, ax in (("planted", ax_p), (real[0] if real else "digits", ax_m)):
        if (task,) not in groups:
            ax.set_visible(False)
            continue
        recs = groups[(task,)]
        x = 100.0 * stack_over_seeds(recs, "kept_fraction").mean(axis=0)
        for m in METHODS:
            line_with_band(ax, x, stack_over_seeds(recs, f"{m}_test_error"), label=m.replace("_", "-"),
                           color=_COLORS[m], marker=_MARKERS[m], band=BAND)
        if task == "planted":
            pl = float(np.mean([r["result"]["planted_test_error"] for r in recs]))
            ax.axhline(pl, color=OKABE_ITO[-1], linestyle=":", linewidth=0.8, label="planted ticket")
        k = recs[0]["result"]["n_classes"]
        ax.axhline(1.0 - 1.0 / k, color="0.5", linestyle="--", linewidth=0.7, label="chance")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("weights kept (%)")
        ax.set_ylabel("test error")
        ax.set_title(_TASK_TITLES[task])
        ax.legend(loc="best")
    if ("planted",) in groups:
        recs = groups[("planted",)]
        x = 100.0 * stack_over_seeds(recs, "kept_fraction").mean(axis=0)
        for m in METHODS:
            line_with_band(ax_o, x, stack_over_seeds(recs, f"{m}_overlap"), label=m.replace("_", "-"),
                           color=_COLORS[m], marker=_MARKERS[m], band=BAND)
        ax_o.set_xlabel("weights kept (%)")
        ax_o.set_ylabel("planted mask recovered")
        ax_o.set_ylim(-0.03, 1.03)
        ax_o.set_title("planted ticket: mask overlap")
        ax_o.legend(loc="best")
    else:
        ax_o.set_visible(False)
    for k, ((task,), recs) in enumerate(groups.items()):
        y = stack_over_seeds(recs, "greedy_loss_curve")
        ref = stack_over_seeds(recs, "greedy_rate_reference").mean(axis=0)
        n = np.arange(1, y.shape[1] + 1)
        line_with_band(ax_g, n, y, label=f"greedy, {_TASK_TITLES[task]}", color=OKABE_ITO[k], marker="",
                       band=BAND)
        ax_g.plot(n, ref, color=OKABE_ITO[k], linestyle="--", linewidth=0.8,
                  label=f"L₀ + c/n, {_TASK_TITLES[task]}")
    ax_g.set_xlabel("greedy steps n")
    ax_g.set_ylabel("training loss L(f_n)")
    ax_g.set_title("greedy selection: loss vs O(1/n)")
    ax_g.legend(loc="best")
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
