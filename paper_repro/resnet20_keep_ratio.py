"""ResNet-20 on a CIFAR-shaped teacher task: test error vs keep ratio for magnitude, IMP, PFP and SiPP.

The comparison of Liebenwein et al. (2020, "Provable filter pruning for efficient neural networks", Fig. 3:
ResNet-20 on CIFAR-10) and Baykal et al. (2022, "Sensitivity-informed provable pruning of neural networks",
SiPP) against magnitude pruning (Han et al. 2015) and iterative magnitude pruning (IMP), on data whose true
risk is measurable: inputs are smooth random 3x32x32 images (Gaussians upsampled ``upsample``-fold: 16x in the
quick preset, an easier task, 4x in the full one) labelled by a fixed random convolutional teacher
(:func:`prunebound.data.conv_teacher_task`), and "test error" is the 0-1 error on ``n_test`` *fresh* samples
(the same seeded fresh sample for every method of a seed, so methods are compared on paired data).

Protocol (one trial = one method and one seed; the seed fixes the initialisation, the training order and every
random choice of the method):

* dense network: :func:`prunebound.zoo.resnet20` (He et al. 2016, option-A shortcuts, ``width`` filters in the
  first stage; 16 in the paper) trained ``epochs`` epochs with ``optimizer`` at ``lr`` on ``n_train`` samples;
* every method starts from that trained network and is asked for each ``keep_ratio`` (fraction of weights
  kept; sparsity = 1 - keep_ratio), then gets the **same retraining budget**: ``retrain_epochs`` epochs at
  ``retrain_lr`` with the mask fixed (:func:`prunebound.train.fit`). IMP spends that budget inside its
  prune/retrain rounds instead: ``imp_rounds`` rounds of ``retrain_epochs / imp_rounds`` epochs each, round
  ``r`` pruning to keep ratio ``keep_ratio^(r / imp_rounds)`` (Han et al. 2015's iterative schedule,
  :func:`prunebound.pruning.magnitude` with ``iterations``), so every method trains the same number of epochs
  after the dense network;
* ``magnitude``: global magnitude pruning, one shot (``pruning.magnitude(scope="global")``); ``imp``: the same
  criterion, iterated (no rewinding to the initialisation: the lottery-ticket variant would retrain from
  ``theta_0`` and spend a larger budget); ``pfp`` and ``sipp``: ``prunebound.coresets.prune(model, train,
  method=..., keep_ratio=...)`` (PFP removes whole filters, SiPP samples individual weights).

Every method prunes the same BatchNorm-folded copy of the dense network
(:func:`prunebound.network.fold_batchnorm`: the same function in eval mode), so all retraining happens without
BatchNorm, identically for every method. A method that refuses the model (a
:class:`~prunebound.errors.PruneboundError`, e.g. SiPP where only fully-connected layers are supported) is
recorded with its reason and left out of the figure; the table shows the refusal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.errors import InvalidParameterError, PruneboundError
from prunebound.paper_repro._base import (
    BAND,
    Caption,
    Protocol,
    check_choices,
    check_config,
    config_dict,
    finish_figure,
    group_by,
    log_axis,
    make_run,
    se_bands,
    summary,
    write_outputs,
)
from prunebound.plotting import MARKERS, OKABE_ITO, line_with_band, new_figure, styled

NAME = "resnet20_keep_ratio"
TITLE = "ResNet-20 on a CIFAR-shaped teacher task: test error vs keep ratio (magnitude, IMP, PFP, SiPP)"
METHODS = ("magnitude", "imp", "pfp", "sipp")


@dataclass(frozen=True)
class Config:
    """Teacher: ``conv_teacher_task((3, 32, 32), teacher_width, n_classes, upsample=upsample, seed=task_seed)``
    (``upsample``: side of the square of pixels each latent Gaussian value is spread over, i.e. the spatial
    smoothness of the inputs: 3 x (32 / upsample)^2 latent dimensions);
    ``n_train`` training samples, error on ``n_test`` fresh ones. ResNet-20 of ``width`` trained ``epochs``
    epochs (``optimizer``, ``lr``, ``batch_size``); every method at every ``keep_ratios`` entry, then
    ``retrain_epochs`` at ``retrain_lr`` (IMP: in ``imp_rounds`` rounds; see the module docstring).
    ``delta``: failure probability of the coreset methods."""

    n_classes: int = 2
    teacher_width: int = 16
    upsample: int = 16
    task_seed: int = 0
    n_train: int = 1000
    n_test: int = 5000
    width: int = 4
    epochs: int = 4
    optimizer: str = "adam"
    lr: float = 3e-3
    batch_size: int = 64
    keep_ratios: tuple[float, ...] = (0.5, 0.2, 0.05)
    methods: tuple[str, ...] = METHODS
    retrain_epochs: int = 2
    retrain_lr: float = 1e-3
    imp_rounds: int = 2
    delta: float = 0.05
    seeds: tuple[int, ...] = (0,)

    @classmethod
    def quick(cls) -> Config:
        """Reduced for 2 CPU cores: width 4 (not 16), 2 classes, 1,000 training samples, 4 epochs, 1 seed, and
        an easier task: inputs upsampled 16x (3 x 2 x 2 = 12 latent dimensions instead of 192). On the full
        preset's task (``upsample=4``) this network overfits the 1,000 samples (train error 0.17) and its test
        error stays at 0.44 against chance 0.5; with ``upsample=16`` the same training reaches 0.19 (seed 0)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Paper scale: width 16 (0.27 M parameters), 10 classes, 50,000 training samples (CIFAR-10's size),
        60 epochs, 5 seeds, 20 epochs of retraining (IMP: 4 rounds of 5), on the harder task of ``upsample=4``
        (3 x 8 x 8 = 192 latent dimensions; 50 times more samples than the quick preset)."""
        return cls(n_classes=10, upsample=4, n_train=50_000, n_test=100_000, width=16, epochs=60, lr=1e-3,
                   batch_size=128, keep_ratios=(0.5, 0.3, 0.2, 0.1, 0.05, 0.02), retrain_epochs=20, retrain_lr=3e-4,
                   imp_rounds=4, seeds=(0, 1, 2, 3, 4))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    check_choices("method", config.methods, METHODS)
    for k in config.keep_ratios:
        if not 0.0 < k <= 1.0:
            raise InvalidParameterError(f"keep_ratios must lie in (0, 1], got {k}")
    if config.retrain_epochs < 0 or config.imp_rounds < 1:
        raise InvalidParameterError("retrain_epochs must be >= 0 and imp_rounds >= 1")
    if "imp" in config.methods and config.retrain_epochs % config.imp_rounds:
        raise InvalidParameterError(f"retrain_epochs ({config.retrain_epochs}) must be a multiple of imp_rounds "
                                    f"({config.imp_rounds}): IMP spends the same budget in equal rounds")
    if not isinstance(config.upsample, int) or config.upsample < 1:
        raise InvalidParameterError(f"upsample must be a positive integer, got {config.upsample!r}")
    if config.optimizer not in ("sgd", "adam"):
        raise InvalidParameterError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("methods", "seeds")}
    return [{"experiment": NAME, **base, "method": m, "seed": s} for s in config.seeds for m in config.methods]


@functools.lru_cache(maxsize=2)
def _task(n_classes: int, teacher_width: int, upsample: int, task_seed: int):
    from prunebound.data import conv_teacher_task

    return conv_teacher_task((3, 32, 32), teacher_width, n_classes, seed=task_seed, upsample=upsample)


def _train_data(t: dict):
    """The training sample of trial ``t``'s seed."""
    task = _task(int(t["n_classes"]), int(t["teacher_width"]), int(t["upsample"]), int(t["task_seed"]))
    return task.sample(int(t["n_train"]), seed=1000 + int(t["seed"]))


def _test_data(t: dict):
    """The fresh test sample of trial ``t``'s seed (independent of the training sample: another seed)."""
    task = _task(int(t["n_classes"]), int(t["teacher_width"]), int(t["upsample"]), int(t["task_seed"]))
    return task.sample(int(t["n_test"]), seed=2000 + int(t["seed"]))


def _model(t: dict):
    from prunebound.zoo import resnet20

    return resnet20(num_classes=int(t["n_classes"]), width=int(t["width"]), seed=int(t["seed"]))


_DENSE_KEYS = ("n_classes", "teacher_width", "upsample", "task_seed", "n_train", "width", "epochs", "optimizer", "lr",
               "batch_size", "seed")


@functools.lru_cache(maxsize=2)
def _dense_state(key: tuple) -> dict:
    """State dict of the trained dense network of one seed (cached: the methods of a seed that run in the same
    worker train it once; deterministic given ``key``)."""
    from prunebound.train import fit

    t = dict(zip(_DENSE_KEYS, key))
    train = _train_data(t)
    m = _model(t)
    fit(m, train, epochs=int(t["epochs"]), lr=float(t["lr"]), batch_size=int(t["batch_size"]),
        optimizer=t["optimizer"], seed=int(t["seed"]))
    return {k: v.clone() for k, v in m.state_dict().items()}


def dense_model(t: dict, *, folded: bool = False):
    """The trained dense ResNet-20 of trial ``t``'s seed (a fresh module every call); ``folded``: with every
    BatchNorm folded into the convolution before it (the same function in eval mode; what every method prunes)."""
    from prunebound.network import fold_batchnorm

    m = _model(t)
    m.load_state_dict(_dense_state(tuple(t[k] for k in _DENSE_KEYS)))
    m.eval()
    return fold_batchnorm(m).eval() if folded else m


def protocol(t: dict) -> Protocol:
    per = int(t["retrain_epochs"]) // int(t["imp_rounds"])
    return Protocol(int(t["retrain_epochs"]), float(t["retrain_lr"]),
                    note=f"{t['optimizer']}; IMP: {int(t['imp_rounds'])} prune/retrain rounds of {per} "
                         f"epoch{'s' if per != 1 else ''} (same total)")


def prune_and_retrain(t: dict, keep: float, train):
    """The network of trial ``t``'s method at ``keep`` after the shared retraining budget."""
    from prunebound import pruning
    from prunebound.coresets import prune as coreset_prune
    from prunebound.train import fit

    method, seed = t["method"], int(t["seed"])
    model = dense_model(t, folded=True)
    R, lr, bs = int(t["retrain_epochs"]), float(t["retrain_lr"]), int(t["batch_size"])
    if method == "imp":  # the budget is spent inside the rounds
        rounds = int(t["imp_rounds"])
        return pruning.prune(model, train, method="magnitude", sparsity=1.0 - keep, scope="global",
                             iterations=rounds, epochs=R // rounds, lr=lr, batch_size=bs, optimizer=t["optimizer"],
                             weight_decay=0.0, seed=seed).module
    if method == "magnitude":
        m = pruning.prune(model, train, method="magnitude", sparsity=1.0 - keep, scope="global", epochs=0,
                          seed=seed).module
    else:
        m = coreset_prune(model, train, method=method, keep_ratio=keep, delta=float(t["delta"]), seed=seed).module
    if R:
        fit(m, train, epochs=R, lr=lr, batch_size=bs, optimizer=t["optimizer"], seed=seed + 1)
    return m


def run_trial(t: dict) -> dict:
    from prunebound.network import sparsity
    from prunebound.train import evaluate
    from prunebound.zoo import count_params

    torch.set_num_threads(1)
    train, test = _train_data(t), _test_data(t)
    dense = dense_model(t)
    errs, train_errs, kept, refused = [], [], [], None
    for keep in t["keep_ratios"]:
        try:
            m = prune_and_retrain(t, float(keep), train)
        except PruneboundError as e:  # recorded, shown in the table, left out of the figure
            refused = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            errs, train_errs, kept = [None] * len(t["keep_ratios"]), [None] * len(t["keep_ratios"]), []
            break
        errs.append(evaluate(m, test).error)
        train_errs.append(evaluate(m, train).error)
        kept.append(1.0 - sparsity(m).total)
    return {"keep_ratio": list(t["keep_ratios"]), "measured_keep_ratio": kept or [None] * len(t["keep_ratios"]),
            "test_error": errs, "train_error": train_errs, "refused": refused,
            "dense_test_error": evaluate(dense, test).error, "dense_train_error": evaluate(dense, train).error,
            "n_train": len(train), "n_test": len(test), "n_params": int(count_params(dense))}


run = make_run(NAME, run_trial, trials)


def table(results: list[dict]) -> list[dict]:
    """One row per (method, keep ratio): test error mean / std / standard error over seeds (refusals: the
    reason, errors empty)."""
    rows = []
    for (method,), recs in group_by(results, "method").items():
        dense = summary([r["result"]["dense_test_error"] for r in recs])
        refused = next((r["result"]["refused"] for r in recs if r["result"]["refused"]), None)
        for j, k in enumerate(recs[0]["result"]["keep_ratio"]):
            y = [r["result"]["test_error"][j] for r in recs if r["result"]["test_error"][j] is not None]
            mk = [r["result"]["measured_keep_ratio"][j] for r in recs
                  if r["result"]["measured_keep_ratio"][j] is not None]
            st, sk = summary(y), summary(mk)
            rows.append({"method": method, "keep_ratio": k, "measured_keep_ratio": sk["mean"],
                         "test_error_mean": st["mean"], "test_error_std": st["std"],
                         "test_error_se": st["std"] / np.sqrt(st["n"]) if st["n"] > 1 else float("nan"),
                         "n_seeds": st["n"], "dense_test_error_mean": dense["mean"],
                         "protocol_text": protocol(recs[0]["trial"]).text(), "refused": refused or ""})
    return rows


def caption(results: list[dict]) -> Caption:
    t0, r0 = results[0]["trial"], results[0]["result"]
    seeds = len({r["trial"]["seed"] for r in results})
    model = (f"ResNet-20 (option A, width {t0['width']}, {r0['n_params']:,} parameters), {t0['optimizer']} "
             f"{t0['epochs']} epochs at lr {float(t0['lr']):g}")
    data = (f"CIFAR-shaped conv teacher (3x32x32, {t0['n_classes']} classes, teacher width {t0['teacher_width']}, "
            f"inputs upsampled {int(t0['upsample'])}x); test error on fresh samples")
    extra = "x: measured keep ratio (fraction of weights kept)."
    refused = sorted({r["trial"]["method"] for r in results if r["result"]["refused"]})
    if refused:
        extra += f" Not drawn (method refused the model, see the table): {', '.join(refused)}."
    if int(t0["width"]) < 16 or int(t0["n_train"]) < 50_000:
        extra += (f" Reduced from the paper's setting (width 16, 50,000 samples) to width {t0['width']} and "
                  f"{t0['n_train']} samples so that it runs on 2 CPU cores.")
    if int(t0["upsample"]) > 4:
        u = int(t0["upsample"])
        extra += (f" Inputs upsampled {u}x (3x{-(-32 // u)}x{-(-32 // u)} latent Gaussians; the full preset: 4x, "
                  "3x8x8), an easier task, so that the dense network is well above chance from so few samples.")
    return Caption(model=model, data=data, n=r0["n_train"], n_test=r0["n_test"], seeds=seeds,
                   bands=se_bands(seeds) if seeds > 1 else None, protocols=(protocol(t0),), extra=extra)


def _style(k: int) -> dict:
    return {"color": OKABE_ITO[k % len(OKABE_ITO)], "marker": MARKERS[k % len(MARKERS)]}


@styled
def figure(results: list[dict]):
    """Test error (mean ± s.e. over seeds when more than one) against the measured keep ratio (log axis, mean
    over seeds); the dense network's error as a dotted line."""
    fig, ax = new_figure(1, 1, aspect=0.75)
    rows = table(results)
    for k, (method, recs) in enumerate(group_by(results, "method").items()):
        method = method[0]
        ok = [r for r in recs if not r["result"]["refused"]]
        if not ok:
            continue
        x = np.mean([r["result"]["measured_keep_ratio"] for r in ok], axis=0)
        y = np.array([r["result"]["test_error"] for r in ok], dtype=np.float64)
        line_with_band(ax, x, y, label=method if method != "imp" else "IMP", band=BAND, alpha=0.15, **_style(k))
    ax.axhline(rows[0]["dense_test_error_mean"], color="0.3", linestyle=":", linewidth=1.0, zorder=0,
               label="dense")
    log_axis(ax, "x")
    ax.set_xlabel("keep ratio (fraction of weights kept)")
    ax.set_ylabel("test error (fresh samples)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
