"""Coreset pruning: test error vs retained parameters (CoreNet, data-independent, SiPP, PFP, uniform, magnitude).

The figure of Baykal et al. (2019, "Data-dependent coresets for compressing neural networks with
applications to generalization bounds", ICLR, Fig. 2) and Liebenwein et al. (2020, "Provable filter pruning",
ICLR) for issue 4: LeNet-300-100-shaped MLPs (``d_in-300-100-k``, :func:`prunebound.network.lenet300_100`)
trained on MNIST-1D and on a teacher task (:func:`prunebound.data.teacher_task`, ``d_in = 40``, ``k = 10``
classes, like MNIST-1D), pruned *without fine-tuning* by each method to kept fractions 10 %, 20 %, ..., 100 %
of the weights, and plotted against the retained weights actually achieved (mean over seeds):

* top row: the test error of the pruned network (dotted: the dense network);
* bottom row: the mean relative output error ``||f(x) - f̂(x)||_2 / ||f(x)||_2`` over test inputs ``x`` --
  the quantity the coreset theorems bound (per output coordinate, with probability ``1 - delta``); symlog
  scale (linear below 0.01) because keeping every weight gives error exactly 0.

Mean ± standard error over seeds; each seed trains its own network (initialisation and SGD order) and draws its own
samples; the data sets are fixed. Pruning goes through :func:`prunebound.coresets.prune` with ``keep_ratio``
(the method inverts its sample-size formula by bisection on ``eps``), see :func:`coreset_prune`. A keep
ratio of 1 is the dense network itself: every method then keeps every weight exactly (a row whose sample
size reaches its number of edges is kept dense), so :func:`coreset_prune` returns the network unchanged
(with all-ones masks) instead of bisecting ``eps`` towards 0.

Deviation to note when reading the figure: CoreNet leaves a layer dense when its inputs are signed (the
first layer on MNIST-1D and on the Gaussian teacher inputs; see :mod:`prunebound.coresets.corenet`), so it
cannot keep fewer than ~28 % of LeNet-300-100's weights there; its points pile up at that fraction.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.data import Split, digits, mnist1d, teacher_task
from prunebound.defaults import DEFAULT_DELTA
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, apply_masks, count_nonzero, mlp
from prunebound.paper_repro._base import (
    BAND,
    Caption,
    Protocol,
    check_choices,
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
from prunebound.plotting import PAGE_WIDTH, line_with_band, new_figure, styled
from prunebound.train import evaluate, fit

NAME = "coreset_error"
TITLE = "Coreset pruning: test error and relative output error vs retained weights"
DATASETS = ("mnist1d", "teacher", "digits")
#: the methods of issue 4's figure
ISSUE_METHODS = ("corenet", "data_independent", "sipp", "pfp", "uniform", "magnitude")


@dataclass(frozen=True)
class Config:
    """For each data set in ``datasets`` (``"mnist1d"`` with ``n_samples`` examples, ``"teacher"``: a
    ``teacher_task(teacher_d_in, teacher_width, teacher_classes, teacher_noise, seed=0)`` with ``n_train``
    training and ``n_test`` test points, or ``"digits"``), an MLP ``d_in-widths-k`` trained with SGD for
    ``epochs``; each method in ``methods`` (names of :data:`prunebound.coresets.METHODS`) prunes it to every
    ``keep_ratios`` entry with failure probability ``delta`` (``iters`` bisection steps on ``eps``); every
    test input measures the output error."""

    datasets: tuple[str, ...] = ("digits", "teacher")
    n_samples: int = 4000
    teacher_d_in: int = 12
    teacher_width: int = 16
    teacher_classes: int = 4
    teacher_noise: float = 0.0
    n_train: int = 1000
    n_test: int = 2000
    widths: tuple[int, ...] = (48,)
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 64
    keep_ratios: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0)
    methods: tuple[str, ...] = ("corenet", "pfp", "uniform", "magnitude")
    delta: float = 0.1
    iters: int = 10
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(datasets=("mnist1d", "teacher"), teacher_d_in=40, teacher_width=64, teacher_classes=10,
                   n_train=3200, n_test=10_000, widths=(300, 100), epochs=40, iters=20,
                   keep_ratios=tuple(round(0.1 * i, 1) for i in range(1, 11)), methods=ISSUE_METHODS,
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    from prunebound.coresets import METHODS

    check_choices("coreset method", config.methods, METHODS)
    check_choices("dataset", config.datasets, DATASETS)
    for k in config.keep_ratios:
        if not 0.0 < k <= 1.0:
            raise InvalidParameterError(f"keep_ratios must lie in (0, 1], got {k}")
    teacher_keys = ("teacher_d_in", "teacher_width", "teacher_classes", "teacher_noise", "n_train", "n_test")
    base = {k: v for k, v in config_dict(config).items() if k not in ("methods", "seeds", "datasets")}
    out = []
    for d in config.datasets:
        # a trial holds only the parameters that change its result (so its key is stable across presets)
        b = {k: v for k, v in base.items()
             if (k not in teacher_keys or d == "teacher") and (k != "n_samples" or d == "mnist1d")}
        out += [{"experiment": NAME, "dataset": d, **b, "method": m, "seed": s}
                for s in config.seeds for m in config.methods]
    return out


@functools.lru_cache(maxsize=2)
def _split(dataset: str, n_samples: int = 4000, teacher: tuple = ()) -> Split:
    if dataset == "digits":
        return digits(seed=0)
    if dataset == "mnist1d":
        return mnist1d(int(n_samples), seed=0)
    if dataset == "teacher":
        d_in, width, k, noise, n_train, n_test = teacher
        task = teacher_task(int(d_in), int(width), int(k), float(noise), seed=0)
        return Split(task.sample(int(n_train), 1), task.sample(int(n_test), 2))
    raise InvalidParameterError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def _data(t: dict) -> Split:
    if t["dataset"] == "teacher":
        return _split("teacher", teacher=(t["teacher_d_in"], t["teacher_width"], t["teacher_classes"],
                                          t["teacher_noise"], t["n_train"], t["n_test"]))
    return _split(t["dataset"], int(t.get("n_samples", 4000)))


def relative_output_error(model, pruned, x: torch.Tensor) -> float:
    """Mean over rows of ``||model(x) - pruned(x)||_2 / ||model(x)||_2``."""
    with torch.no_grad():
        a, b = model(x).double(), pruned(x).double()
    return float(((a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)).mean())


def coreset_prune(model, data, *, method: str, keep_ratio: float, delta: float = DEFAULT_DELTA, seed: int = 0,
                  iters: int = 30, with_guarantee: bool = False):
    """``prunebound.coresets.prune(model, data, method=method, keep_ratio=keep_ratio, ...)``; at
    ``keep_ratio == 1`` a copy of ``model`` with all-ones masks (see the module docstring). The warning that a
    keep ratio is unreachable is silenced: callers read the achieved ratio from the module.

    Returns the pruned module, or ``(module, guarantee_or_None)`` with ``with_guarantee``.
    """
    from prunebound.coresets import prune

    if not 0.0 < keep_ratio <= 1.0:
        raise InvalidParameterError(f"keep_ratio must lie in (0, 1], got {keep_ratio}")
    if keep_ratio >= 1.0:
        m = copy.deepcopy(model)
        apply_masks(m, {ly.path: torch.ones_like(ly.weight) for ly in Network.from_module(m).layers})
        g = None
    else:
        with warnings.catch_warnings():  # an unreachable keep ratio is expected here: the achieved one is recorded
            warnings.filterwarnings("ignore", message=".*is not reachable.*", category=UserWarning)
            res = prune(model, data, method=method, keep_ratio=keep_ratio, delta=delta, seed=seed, iters=iters)
            m, g = res.module, res.guarantee
    return (m, g) if with_guarantee else m


_NOT_TRAINING = ("method", "keep_ratios", "delta", "iters", "experiment")


@functools.lru_cache(maxsize=4)
def _dense_state(key: str) -> dict:
    """State dict of the trained dense network of one (data set, seed, training setup), given as the JSON of
    those trial parameters (deterministic; cached so the methods of one seed in one worker train it once)."""
    t = json.loads(key)
    split = _data(t)
    model = mlp(split.train.input_shape[0], t["widths"], split.train.n_classes, seed=t["seed"])
    fit(model, split.train, epochs=t["epochs"], lr=t["lr"], batch_size=t["batch_size"], seed=t["seed"])
    return {k: v.clone() for k, v in model.state_dict().items()}


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    split = _data(t)
    model = mlp(split.train.input_shape[0], t["widths"], split.train.n_classes, seed=t["seed"])
    model.load_state_dict(_dense_state(json.dumps({k: t[k] for k in sorted(t) if k not in _NOT_TRAINING})))
    model.eval()
    dense = evaluate(model, split.test).error
    total = count_nonzero(model, include_bias=False)
    kept, kept_frac, rel, err, eps = [], [], [], [], []
    for k in t["keep_ratios"]:
        pruned, g = coreset_prune(model, split.train, method=t["method"], keep_ratio=float(k),
                                  delta=t["delta"], seed=t["seed"], iters=int(t["iters"]), with_guarantee=True)
        pruned.eval()
        n_kept = count_nonzero(pruned, include_bias=False)
        kept.append(n_kept)
        kept_frac.append(n_kept / total)
        rel.append(relative_output_error(model, pruned, split.test.x))
        err.append(evaluate(pruned, split.test).error)
        eps.append(None if g is None or g.eps is None else float(g.eps))
    return {"keep_ratio": list(t["keep_ratios"]), "kept_weights": kept, "achieved_keep_ratio": kept_frac,
            "relative_output_error": rel, "test_error": err, "eps": eps, "dense_test_error": dense,
            "total_weights": total, "n_train": len(split.train), "n_test": len(split.test),
            "d_in": int(split.train.input_shape[0]), "n_classes": int(split.train.n_classes)}


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    rows = []
    for (dataset, method), recs in group_by(results, "dataset", "method").items():
        kept = stack_over_seeds(recs, "kept_weights")
        frac = stack_over_seeds(recs, "achieved_keep_ratio")
        rel = stack_over_seeds(recs, "relative_output_error")
        err = stack_over_seeds(recs, "test_error")
        dense = summary([r["result"]["dense_test_error"] for r in recs])
        for j, k in enumerate(recs[0]["result"]["keep_ratio"]):
            sr, se, sf = summary(rel[:, j]), summary(err[:, j]), summary(frac[:, j])
            rows.append({"dataset": dataset, "method": method, "keep_ratio": k,
                         "kept_weights_mean": float(kept[:, j].mean()),
                         "achieved_keep_ratio_mean": sf["mean"], "achieved_keep_ratio_std": sf["std"],
                         "test_error_mean": se["mean"], "test_error_std": se["std"],
                         "relative_output_error_mean": sr["mean"], "relative_output_error_std": sr["std"],
                         "dense_test_error_mean": dense["mean"], "dense_test_error_std": dense["std"],
                         "n_seeds": se["n"]})
    return rows


_LABELS = {"mnist1d": "MNIST-1D", "teacher": "teacher task", "digits": "digits"}


def caption(results: list[dict]) -> Caption:
    by_ds = {ds: recs[0] for (ds,), recs in group_by(results, "dataset").items()}
    t0 = results[0]["trial"]
    seeds = len({r["trial"]["seed"] for r in results})
    widths = "-".join(map(str, t0["widths"]))
    models = ", ".join(f"{r['result'].get('d_in', '?')}-{widths}-{r['result'].get('n_classes', '?')} "
                       f"({_LABELS.get(ds, ds)})" for ds, r in by_ds.items())
    ns = ", ".join(f"{r['result'].get('n_train', '?')} ({_LABELS.get(ds, ds)})" for ds, r in by_ds.items())
    return Caption(model=f"MLP {models}, SGD {t0['epochs']} epochs", data=" / ".join(_LABELS.get(d, d)
                   for d in by_ds), n=ns, seeds=seeds, bands=se_bands(seeds),
                   protocols=(Protocol(0, note=f"every method pruned with failure probability {t0['delta']:g}"),),
                   extra="x: retained weights achieved (mean over seeds). CoreNet keeps layers with signed "
                         "inputs dense.")


@styled
def figure(results: list[dict]):
    """Columns: data sets; rows: test error, relative output error; x: retained weights in % (achieved, mean
    over seeds)."""
    by_ds = group_by(results, "dataset")
    n = len(by_ds)
    fig, axes = new_figure(n, 2, width=PAGE_WIDTH if n > 1 else 3.6, aspect=0.62 if n > 1 else 1.2,
                           sharex="col")
    axes = np.asarray(axes).reshape(2, n)
    for c, ((dataset,), recs_ds) in enumerate(by_ds.items()):
        top, bottom = axes[0, c], axes[1, c]
        for (method,), recs in group_by(recs_ds, "method").items():
            x = 100.0 * stack_over_seeds(recs, "achieved_keep_ratio").mean(axis=0)
            line_with_band(top, x, stack_over_seeds(recs, "test_error"), label=method.replace("_", " "),
                           band=BAND)
            line_with_band(bottom, x, stack_over_seeds(recs, "relative_output_error"),
                           label=method.replace("_", " "), band=BAND)
        dense = summary([r["result"]["dense_test_error"] for r in recs_ds])["mean"]
        top.axhline(dense, color="0.3", linestyle=":", linewidth=1.0, zorder=0)
        top.set_title(_LABELS.get(dataset, dataset))
        bottom.set_yscale("symlog", linthresh=1e-2)
        bottom.set_ylim(bottom=0.0)
        bottom.set_xlabel("retained weights (%)")
        bottom.set_xlim(0, 102)
    axes[0, 0].set_ylabel("test error (no fine-tuning)")
    axes[1, 0].set_ylabel("relative output error")
    axes[0, 0].legend(loc="best")
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
