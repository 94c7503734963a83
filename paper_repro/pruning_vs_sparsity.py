"""Pruning methods vs sparsity: test error of a trained MLP after one-shot pruning, mean ± std over seeds.

The classic comparison of Han et al. (2015, "Learning both weights and connections") and Blalock et al.
(2020, "What is the state of neural network pruning?", Fig. 3 style): train a dense network, remove the
fraction ``s`` of weights chosen by each method, optionally fine-tune, and report test error against ``s``.

Methods (weights only, biases are never pruned).  Implemented here, as the reference:

* ``magnitude_global`` -- keep the ``(1-s)·W`` weights of largest ``|w|`` over all layers together;
* ``magnitude_layerwise`` -- keep the ``(1-s)`` fraction of largest ``|w|`` within each layer;
* ``random`` -- keep a uniformly random ``(1-s)`` fraction within each layer (the baseline).

From :mod:`prunebound.pruning` (``prunebound.pruning.prune(model, train, method=..., sparsity=s,
epochs=finetune_epochs)``):

* ``magnitude_std`` -- Han et al. (2015)'s rule ``|w| < q·std(W_l)`` with one ``q`` hitting ``s``;
* ``snip`` -- connection sensitivity ``|g ⊙ w|`` on one mini-batch (Lee et al. 2019), here on the trained net;
* ``obd`` -- Optimal Brain Damage saliency ``h_ii w_i^2 / 2`` (LeCun et al. 1990).

Exactly ``round(s · n)`` weights are removed (ties in ``|w|`` broken by ``torch.topk``'s order), so the
measured sparsity equals the requested one up to rounding.  Masks go through
:func:`prunebound.network.apply_masks`, so the pruned model is an ordinary ``torch.nn.utils.prune`` model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from prunebound.data import digits, mnist1d
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, apply_masks, mlp, sparsity
from prunebound.paper_repro._base import (
    check_config,
    config_dict,
    group_by,
    run_trials,
    stack_over_seeds,
    summary,
    write_outputs,
)
from prunebound.plotting import line_with_band, new_figure, styled
from prunebound.train import evaluate, fit

NAME = "pruning_vs_sparsity"
TITLE = "Pruning methods vs sparsity (test error, mean ± std over seeds)"
LOCAL_METHODS = ("magnitude_global", "magnitude_layerwise", "random")
#: method name -> (prunebound.pruning registry name, extra keyword arguments)
LIBRARY_METHODS: dict[str, tuple[str, dict]] = {
    "magnitude_std": ("magnitude", {"scope": "std"}),
    "snip": ("snip", {}),
    "obd": ("obd", {"n_hessian": 1000}),
}
METHODS = LOCAL_METHODS + tuple(LIBRARY_METHODS)


@dataclass(frozen=True)
class Config:
    """``dataset``: ``"digits"`` or ``"mnist1d"`` (``n_samples`` examples); an MLP ``d_in-widths-10`` trained
    with SGD for ``epochs``; each sparsity in ``sparsities`` evaluated for every method and seed, after
    ``finetune_epochs`` of fine-tuning with the mask fixed."""

    dataset: str = "digits"
    n_samples: int = 4000
    widths: tuple[int, ...] = (64,)
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 64
    finetune_epochs: int = 0
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
    methods: tuple[str, ...] = ("magnitude_global", "magnitude_layerwise", "magnitude_std", "snip", "random")
    seeds: tuple[int, ...] = (0, 1, 2)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(dataset="mnist1d", n_samples=4000, widths=(300, 100), epochs=60, finetune_epochs=5,
                   sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995), methods=METHODS,
                   seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    for m in config.methods:
        if m not in METHODS:
            raise InvalidParameterError(f"unknown pruning method {m!r}; allowed: {', '.join(METHODS)}")
    for s in config.sparsities:
        if not 0.0 <= s < 1.0:
            raise InvalidParameterError(f"sparsities must lie in [0, 1), got {s}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("methods", "seeds")}
    return [{"experiment": NAME, **base, "method": m, "seed": s}
            for s in config.seeds for m in config.methods]


def _data(t: dict):
    if t["dataset"] == "digits":
        return digits(seed=0)
    if t["dataset"] == "mnist1d":
        return mnist1d(int(t["n_samples"]), seed=0)
    raise InvalidParameterError(f"dataset must be 'digits' or 'mnist1d', got {t['dataset']!r}")


def magnitude_masks(module, s: float, *, scope: str = "global", seed: int = 0) -> list[torch.Tensor]:
    """0/1 masks (one per weighted layer of :class:`Network`) removing the fraction ``s`` of weights.

    ``scope="global"``: smallest ``|w|`` over all layers; ``"layerwise"``: per layer; ``"random"``: uniformly
    random per layer (seeded).
    """
    net = Network.from_module(module)
    ws = [ly.weight.detach() for ly in net.layers]
    if scope == "global":
        flat = torch.cat([w.abs().flatten() for w in ws])
        keep = flat.numel() - int(round(s * flat.numel()))
        m = torch.zeros_like(flat)
        m[torch.topk(flat, keep).indices] = 1.0
        out, i = [], 0
        for w in ws:
            out.append(m[i : i + w.numel()].view_as(w))
            i += w.numel()
        return out
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for w in ws:
        score = w.abs().flatten() if scope == "layerwise" else torch.rand(w.numel(), generator=g)
        keep = w.numel() - int(round(s * w.numel()))
        m = torch.zeros(w.numel(), dtype=w.dtype)
        m[torch.topk(score, keep).indices] = 1.0
        out.append(m.view_as(w))
    return out


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    split = _data(t)
    model = mlp(split.train.input_shape[0], t["widths"], 10, seed=t["seed"])
    fit(model, split.train, epochs=t["epochs"], lr=t["lr"], batch_size=t["batch_size"], seed=t["seed"])
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    errs, train_errs, measured = [], [], []
    method = t["method"]
    for s in t["sparsities"]:
        m = mlp(split.train.input_shape[0], t["widths"], 10, seed=t["seed"])
        m.load_state_dict(dense)
        if s > 0 and method in LIBRARY_METHODS:
            from prunebound.pruning import prune

            name, extra = LIBRARY_METHODS[method]
            m = prune(m, split.train, method=name, sparsity=s, seed=t["seed"], epochs=t["finetune_epochs"],
                      lr=t["lr"], batch_size=t["batch_size"], **extra).module
        elif s > 0:
            scope = {"magnitude_global": "global", "magnitude_layerwise": "layerwise",
                     "random": "random"}[method]
            apply_masks(m, magnitude_masks(m, s, scope=scope, seed=t["seed"]))
            if t["finetune_epochs"] > 0:
                fit(m, split.train, epochs=t["finetune_epochs"], lr=t["lr"], batch_size=t["batch_size"],
                    seed=t["seed"] + 1)
        errs.append(evaluate(m, split.test).error)
        train_errs.append(evaluate(m, split.train).error)
        measured.append(sparsity(m).total)
    return {"sparsity": list(t["sparsities"]), "measured_sparsity": measured, "test_error": errs,
            "train_error": train_errs}


def run(config: Config, out_dir, *, backend: str = "local", scheduler=None, n_jobs: int = 1,
        progress: bool = True) -> list[dict]:
    return run_trials(NAME, run_trial, trials(config), config, out_dir, backend=backend, scheduler=scheduler,
                      n_jobs=n_jobs, progress=progress)


def table(results: list[dict]) -> list[dict]:
    rows = []
    for (method,), recs in group_by(results, "method").items():
        y = stack_over_seeds(recs, "test_error")
        ms = stack_over_seeds(recs, "measured_sparsity")
        for j, s in enumerate(recs[0]["result"]["sparsity"]):
            st = summary(y[:, j])
            rows.append({"method": method, "sparsity": s, "measured_sparsity": float(ms[:, j].mean()),
                         "test_error_mean": st["mean"], "test_error_std": st["std"], "n_seeds": st["n"]})
    return rows


@styled
def figure(results: list[dict]):

    fig, ax = new_figure()
    for (method,), recs in group_by(results, "method").items():
        x = recs[0]["result"]["sparsity"]
        line_with_band(ax, x, stack_over_seeds(recs, "test_error"), label=method.replace("_", " "))
    ax.set_xlabel("sparsity (fraction of weights removed)")
    ax.set_ylabel("test error")
    ax.legend()
    return fig


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME)
