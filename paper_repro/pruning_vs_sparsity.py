"""Pruning methods vs sparsity: test error of every classic and provable method, mean ± std over seeds.

The comparison of Han et al. (2015, "Learning both weights and connections") and Blalock et al. (2020, "What
is the state of neural network pruning?", Fig. 3 style) for issue 7: one network architecture (the
LeNet-300-100 shape ``d_in-300-100-10``, :func:`prunebound.network.lenet300_100`, in the full preset; MNIST-1D),
every method of :data:`prunebound.pruning.REGISTRY` and the provable samplers of :mod:`prunebound.coresets`,
each asked for the same sparsities ``s`` (fraction of *weights* removed; biases are never pruned), and the
test error of the result against the measured sparsity.

Comparison protocol (one trial = one method and one seed; the seed fixes the initialisation ``theta_0``, the
SGD order and every random choice of the method). Every method in a panel gets the *same* training after its
mask is chosen, and the figure says which:

* the dense network is ``theta_0`` trained for ``epochs`` epochs (the dotted reference line);
* methods that *prune a trained network* (``random``, ``magnitude*``, ``deep_compression``, ``obd``, ``apoz``,
  ``neuron_merging``, ``lasso_channel`` and the coreset methods) start from it and are called with their own
  retraining switched off; ``weight_decay`` (Hanson & Pratt 1989) and ``transformed_l1`` (Ma et al. 2019)
  train ``epochs`` from ``theta_0`` with their penalty instead of plainly, then threshold. Their pruned
  networks are evaluated twice: **no retraining** (left panel) and after **retraining** ``finetune_epochs``
  epochs of SGD at ``finetune_lr`` with the mask fixed (:func:`prunebound.train.fit`; the same call for
  every method -- middle panel). (At the training learning rate the reweighted networks of the coreset
  samplers, whose kept weights are scaled up by ``1 / (m q)``, diverge, hence the lower ``finetune_lr``.)
  Deep Compression's retrained network leaves its codebook: what is compared is its pruning step;
* methods defined as *sparse training from initialisation* follow their papers and get a panel of their own
  (their mask is chosen before or during training, so "no retraining" does not exist for them): ``snip``
  (Lee et al. 2019: saliency at ``theta_0``, then ``epochs`` of sparse training), ``rigl`` (Evci et al. 2020:
  ``epochs`` of sparse training with mask updates) and ``lottery`` (Frankle & Carbin 2019: ``rounds`` rounds
  of IMP of ``epochs`` each, survivors reset to ``theta_0``, the final ticket trained ``epochs``).

Structured methods (``apoz``, ``neuron_merging``, ``lasso_channel``) remove a fraction ``u`` of the neurons of
every hidden layer; ``u`` is chosen by :func:`unit_sparsity_for` so that the resulting *weight* sparsity is the
closest achievable to ``s`` (removing a neuron removes its row and the next layer's column). Coreset methods
(``corenet``, ``sipp``, ``pfp``, ``data_independent``, ``uniform``) are called as
``prunebound.coresets.prune(model, train, method=..., keep_ratio=1 - s)`` (``eps`` solved on cached sensitivities; at
``s = 0`` the dense network itself, which every coreset method returns exactly when it keeps every weight).

The x position of a point is the *measured* sparsity (mean over seeds): unstructured classic methods meet
``s`` to the weight, structured ones up to one neuron, coreset samplers up to the keep-ratio search's
resolution.  CoreNet prunes every layer (signed inputs are split into ``a+ - a-``) with one ``eps`` per layer
at a keep ratio.

Provable samplers at moderate sparsity (issue 17). ``corenet``, ``sipp`` (SiPP-Rand with the budget program)
and ``pfp`` are the randomized algorithms as stated in their theorems: ``m`` i.i.d. draws *with replacement*,
kept entries reweighted by ``count / (m q)``. Without retraining that reweighting variance, not the layer
allocation, is what separates them from magnitude pruning at 50 % sparsity (digits, 5 seeds: CoreNet 0.090,
SiPP-Rand 0.083 against 0.041 -- 0.088 before its budget program was solved by its KKT conditions. The
inputs of digits are non-negative, so no layer is on signed inputs;
giving CoreNet magnitude pruning's own per-layer keep ratios -- an oracle layer allocation -- gives 0.068, so
allocation is a secondary cause; keeping the best of 8 CoreNet draws by relative output error on training
inputs -- amplification, each draw at ``delta / 8`` -- gives 0.087). The variants of
:mod:`prunebound.coresets.hybrid` keep every entry with ``m q_j >= 1`` exactly and sample the rest
(``corenet_hybrid``, ``sipp_hybrid``: the same per-neuron ``(eps, delta)`` statement, with the remainder's
total sensitivity), which is the authors' own PFPTop rule; ``pfp_det`` is the deterministic PFP of the
authors' experiments (top-k channels by sensitivity, no reweighting, **no** guarantee). PFP removes whole
neurons: its like-for-like comparator is a structured method (here ``neuron_merging``; the PFP paper compares
with the L1 filter norm of Li et al. 2017, SoftNet and ThiNet), not unstructured magnitude pruning. At these
sparsities every sampler's solved ``eps`` is >= 1, i.e. its statement is vacuous. The caption says so.
The CSV lists requested and measured sparsity for every point, one row per (method, sparsity, protocol),
with the cost of the pruned network next to its error (:func:`prunebound.footprint.report`, one example,
before retraining): ``keep_ratio`` (1 - measured sparsity), ``flops_effective`` (dense FLOPs scaled by each
layer's non-zero fraction), for structured methods (:data:`COMPACTABLE`) ``flops_compacted`` (the dense FLOPs of
the model with its dead neurons physically removed, :func:`prunebound.compact.compact`) and the measured CPU
latency of the masked and of the compacted model (a batch of :data:`LATENCY_BATCH` test inputs; machine
dependent).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.data import digits, mnist1d
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, masks_of, mlp, sparsity
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
from prunebound.plotting import MARKERS, OKABE_ITO, PAGE_WIDTH, line_with_band, new_figure, styled
from prunebound.pruning._common import structured_weight_sparsity, unit_sparsity_for  # noqa: F401 (re-exported)
from prunebound.train import evaluate, fit

NAME = "pruning_vs_sparsity"
TITLE = "Pruning methods vs sparsity: test error without and with retraining (mean ± s.e. over seeds)"

#: classic methods: experiment name -> (prunebound.pruning registry name, fixed keyword arguments)
CLASSIC: dict[str, tuple[str, dict]] = {
    "random": ("random", {"scope": "layer"}),
    "magnitude": ("magnitude", {"scope": "std"}),
    "magnitude_global": ("magnitude", {"scope": "global"}),
    "magnitude_layerwise": ("magnitude", {"scope": "layer"}),
    "weight_decay": ("weight_decay", {}),
    "lottery": ("lottery", {}),
    "deep_compression": ("deep_compression", {}),
    "obd": ("obd", {}),
    "apoz": ("apoz", {}),
    "neuron_merging": ("neuron_merging", {}),
    "lasso_channel": ("lasso_channel", {}),
    "snip": ("snip", {}),
    "rigl": ("rigl", {}),
    "transformed_l1": ("transformed_l1", {}),
}
#: provable samplers of prunebound.coresets (called with keep_ratio = 1 - sparsity)
CORESET = ("corenet", "sipp", "pfp", "data_independent", "uniform", "corenet_hybrid", "sipp_hybrid", "pfp_top",
           "pfp_det")
METHODS = tuple(CLASSIC) + CORESET
#: every registry method once (magnitude with Han et al.'s std rule), then the coreset methods
ALL_METHODS = ("random", "magnitude", "weight_decay", "lottery", "deep_compression", "obd", "apoz",
               "neuron_merging", "lasso_channel", "snip", "rigl", "transformed_l1") + CORESET
#: methods that start from the initialisation theta_0 (see the module docstring)
FROM_INIT = frozenset({"snip", "rigl", "lottery", "weight_decay", "transformed_l1"})
#: sparse training from initialisation: a panel of their own (no "no retraining" network exists)
SPARSE_TRAINING = frozenset({"snip", "rigl", "lottery"})
#: the panels, in order: protocol key -> panel title
PANELS = {"none": "no retraining", "retrained": "retrained", "sparse_training": "sparse training from init"}
#: structured methods: the requested weight sparsity is converted to a neuron fraction
STRUCTURED = frozenset({"apoz", "neuron_merging", "lasso_channel"})
#: methods that remove whole neurons: their compacted FLOPs and latency are reported
COMPACTABLE = STRUCTURED | {"pfp", "data_independent"}
#: test inputs per timed forward pass of the latency columns
LATENCY_BATCH = 64


@dataclass(frozen=True)
class Config:
    """``dataset``: ``"digits"`` or ``"mnist1d"`` (``n_samples`` examples); an MLP ``d_in-widths-10`` trained
    with SGD (``lr``, ``batch_size``) for ``epochs``; every method in ``methods`` (names of :data:`METHODS`)
    at every sparsity in ``sparsities`` and seed in ``seeds``, fine-tuned ``finetune_epochs`` at learning rate
    ``finetune_lr`` (see the module docstring). ``rounds``: IMP rounds of ``lottery``; ``n_hessian``:
    examples for OBD's Hessian diagonal; ``delta`` and ``iters``: failure probability and bisection steps of
    the coreset methods."""

    dataset: str = "digits"
    n_samples: int = 4000
    widths: tuple[int, ...] = (64,)
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 64
    finetune_epochs: int = 2
    finetune_lr: float = 0.01
    sparsities: tuple[float, ...] = (0.5, 0.8, 0.95)
    methods: tuple[str, ...] = ("magnitude_global", "magnitude_layerwise", "random", "neuron_merging",
                                "corenet", "sipp", "pfp", "corenet_hybrid", "sipp_hybrid", "pfp_det")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    rounds: int = 3
    n_hessian: int = 256
    delta: float = 0.1
    iters: int = 12

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(dataset="mnist1d", n_samples=4000, widths=(300, 100), epochs=40, finetune_epochs=10,
                   sparsities=(0.5, 0.7, 0.8, 0.9, 0.95), methods=ALL_METHODS, seeds=(0, 1, 2, 3, 4), iters=20)

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    check_choices("pruning method", config.methods, METHODS)
    for s in config.sparsities:
        if not 0.0 <= s < 1.0:
            raise InvalidParameterError(f"sparsities must lie in [0, 1), got {s}")
    if config.finetune_epochs < 1:
        raise InvalidParameterError(f"finetune_epochs must be >= 1 (the retrained panel), got "
                                    f"{config.finetune_epochs}")
    if config.dataset not in ("digits", "mnist1d"):
        raise InvalidParameterError(f"dataset must be 'digits' or 'mnist1d', got {config.dataset!r}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("methods", "seeds")}
    return [{"experiment": NAME, **base, "method": m, "seed": s}
            for s in config.seeds for m in config.methods]


@functools.lru_cache(maxsize=2)
def _data(dataset: str, n_samples: int):
    if dataset == "digits":
        return digits(seed=0)
    if dataset == "mnist1d":
        return mnist1d(int(n_samples), seed=0)
    raise InvalidParameterError(f"dataset must be 'digits' or 'mnist1d', got {dataset!r}")


@functools.lru_cache(maxsize=4)
def _dense_state(dataset: str, n_samples: int, widths: tuple[int, ...], epochs: int, lr: float,
                 batch_size: int, seed: int) -> dict:
    """State dict of the dense network of one seed (deterministic; cached so the methods of one seed that run
    in the same worker train it once)."""
    split = _data(dataset, n_samples)
    model = mlp(split.train.input_shape[0], widths, split.train.n_classes, seed=seed)
    fit(model, split.train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _model(t: dict, *, trained: bool):
    split = _data(t["dataset"], int(t["n_samples"]))
    m = mlp(split.train.input_shape[0], t["widths"], split.train.n_classes, seed=t["seed"])
    if trained:
        m.load_state_dict(_dense_state(t["dataset"], int(t["n_samples"]), tuple(t["widths"]), int(t["epochs"]),
                                       float(t["lr"]), int(t["batch_size"]), int(t["seed"])))
    return m


def magnitude_masks(module, s: float, *, scope: str = "global", seed: int = 0) -> list[torch.Tensor]:
    """0/1 masks (one per weighted layer of :class:`Network`, in order) removing the fraction ``s`` of weights,
    taken from :mod:`prunebound.pruning` without retraining (kept for experiments that mask a model in place,
    e.g. :mod:`prunebound.paper_repro.pac_bayes_table`).

    ``scope="global"``: smallest ``|w|`` over all layers (``pruning.magnitude(scope="global")``);
    ``"layerwise"``: per layer (``scope="layer"``); ``"random"``: uniformly random per layer
    (``pruning.random_pruning``, seeded).
    """
    from prunebound import pruning

    table = {"global": ("magnitude", "global"), "layerwise": ("magnitude", "layer"), "random": ("random", "layer")}
    if scope not in table:
        raise InvalidParameterError(f"scope must be one of {sorted(table)}; got {scope!r}")
    method, sc = table[scope]
    rep = pruning.prune(module, None, method=method, sparsity=s, seed=seed, scope=sc, epochs=0)
    mk = masks_of(rep.module)
    return [mk[ly.path].float() for ly in Network.from_module(rep.module).layers]


def protocols(t: dict) -> dict[str, Protocol]:
    """The :class:`Protocol` of each panel for trial (or config dict) ``t``."""
    return {"none": Protocol(0),
            "retrained": Protocol(int(t["finetune_epochs"]), float(t["finetune_lr"])),
            "sparse_training": Protocol(0, note=f"sparse training from init, {int(t['epochs'])} epochs "
                                                f"at lr {float(t['lr']):g}")}


def _finetune(m, t: dict, data) -> None:
    """The retrained panel's budget, the same call for every method: ``finetune_epochs`` of SGD at
    ``finetune_lr`` with the mask fixed."""
    fit(m, data, epochs=int(t["finetune_epochs"]), lr=float(t["finetune_lr"]), batch_size=int(t["batch_size"]),
        seed=int(t["seed"]) + 1)


def prune_one(t: dict, s: float):
    """The network of trial ``t``'s method at sparsity ``s`` before any retraining (sparse-training methods:
    after their own training, see the module docstring)."""
    from prunebound import pruning

    train = _data(t["dataset"], int(t["n_samples"])).train
    method = t["method"]
    ep, lr, bs, seed = int(t["epochs"]), float(t["lr"]), int(t["batch_size"]), int(t["seed"])
    model = _model(t, trained=method not in FROM_INIT)
    if method in CORESET:
        from prunebound.paper_repro.coreset_error import coreset_prune

        return coreset_prune(model, train, method=method, keep_ratio=1.0 - s, delta=t["delta"], seed=seed,
                             iters=int(t["iters"]))
    name, fixed = CLASSIC[method]
    kw: dict = {"seed": seed, **fixed}
    if name in ("random", "magnitude", "obd", "apoz"):
        kw.update(epochs=0, batch_size=bs)
    elif name == "deep_compression":
        kw.update(prune_epochs=0, centroid_epochs=0, batch_size=bs)
    elif name in ("snip", "rigl"):
        kw.update(epochs=ep, lr=lr, batch_size=bs)
    elif name == "lottery":
        kw.update(epochs=ep, rounds=int(t["rounds"]), lr=lr, batch_size=bs, compare_random=False)
    elif name in ("weight_decay", "transformed_l1"):
        kw.update(epochs=ep, finetune_epochs=0, lr=lr, batch_size=bs)
    if name == "obd":
        kw.update(n_hessian=int(t["n_hessian"]))
    if method in STRUCTURED:
        kw.update(unit="weight")  # the unit fraction whose weight sparsity is closest to s (unit_sparsity_for)
    return pruning.prune(model, train, method=name, sparsity=s, **kw).module


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    split = _data(t["dataset"], int(t["n_samples"]))
    dense = _model(t, trained=True)
    sparse_training = t["method"] in SPARSE_TRAINING
    errs, retrained, train_errs, measured = [], [], [], []
    cost: dict[str, list] = {"flops_dense": [], "flops_effective": [], "flops_compacted": [], "latency_ms": [],
                             "latency_compacted_ms": []}
    for s in t["sparsities"]:
        m = prune_one(t, float(s))
        errs.append(evaluate(m, split.test).error)
        train_errs.append(evaluate(m, split.train).error)
        measured.append(sparsity(m).total)
        for k, v in _cost(m, split.test.x[:LATENCY_BATCH], t["method"] in COMPACTABLE).items():
            cost[k].append(v)
        if sparse_training:
            retrained.append(None)
        else:
            _finetune(m, t, split.train)
            retrained.append(evaluate(m, split.test).error)
    return {"sparsity": list(t["sparsities"]), "measured_sparsity": measured, "test_error": errs,
            "retrained_test_error": retrained, "train_error": train_errs,
            "dense_test_error": evaluate(dense, split.test).error, "from_init": t["method"] in FROM_INIT,
            "protocol": "sparse_training" if sparse_training else "prune",
            "n_train": len(split.train), "n_test": len(split.test), "d_in": int(split.train.input_shape[0]),
            "n_classes": int(split.train.n_classes), **cost}


def _cost(m, x: torch.Tensor, compactable: bool) -> dict:
    """FLOPs (dense / effective / compacted) and CPU latency of the pruned network ``m`` (see the docstring)."""
    from prunebound.footprint import report

    r = report(m, x, repeats=5, compact=compactable, encode=False)
    return {"flops_dense": r.flops_dense, "flops_effective": r.flops_effective, "flops_compacted": r.compact_flops,
            "latency_ms": r.latency_ms, "latency_compacted_ms": r.compact_latency_ms}


def _mean_at(recs: list[dict], field: str, j: int) -> float:
    """Mean over seeds of ``result[field][j]``; NaN when absent (records of an older run, or not compactable)."""
    vals = [r["result"].get(field, [None] * (j + 1))[j] for r in recs]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


run = make_run(NAME, run_trial, trials)


def family(method: str) -> str:
    """``"coreset"`` for the provable samplers of :mod:`prunebound.coresets`, else ``"classic"``."""
    return "coreset" if method in CORESET else "classic"


def _panel_fields(rec: dict) -> list[tuple[str, str]]:
    """(panel, result field) pairs a record contributes to."""
    if rec["result"].get("protocol") == "sparse_training":
        return [("sparse_training", "test_error")]
    return [("none", "test_error"), ("retrained", "retrained_test_error")]


def table(results: list[dict]) -> list[dict]:
    """One row per (method, sparsity, protocol): test error mean / std / standard error over seeds."""
    rows = []
    for (method,), recs in group_by(results, "method").items():
        ms = stack_over_seeds(recs, "measured_sparsity")
        dense = summary([r["result"]["dense_test_error"] for r in recs])
        prot = protocols(recs[0]["trial"])
        for panel, fld in _panel_fields(recs[0]):
            y = stack_over_seeds(recs, fld)
            for j, s in enumerate(recs[0]["result"]["sparsity"]):
                st, sm = summary(y[:, j]), summary(ms[:, j])
                rows.append({"method": method, "family": family(method), "protocol": panel,
                             "protocol_text": prot[panel].text(), "sparsity": s,
                             "measured_sparsity": sm["mean"], "measured_sparsity_std": sm["std"],
                             "test_error_mean": st["mean"], "test_error_std": st["std"],
                             "test_error_se": st["std"] / np.sqrt(st["n"]) if st["n"] else float("nan"),
                             "dense_test_error_mean": dense["mean"], "n_seeds": st["n"],
                             "keep_ratio": 1.0 - sm["mean"],
                             **{f"{k}_mean": _mean_at(recs, k, j) for k in
                                ("flops_dense", "flops_effective", "flops_compacted", "latency_ms",
                                 "latency_compacted_ms")}})
    return rows


def caption(results: list[dict]) -> Caption:
    r0 = results[0]["result"]
    t0 = results[0]["trial"]
    seeds = len({r["trial"]["seed"] for r in results})
    panels = [p for p in PANELS if any(p == q for r in results for q, _ in _panel_fields(r))]
    prot = protocols(t0)
    model = f"MLP {r0['d_in']}-{'-'.join(map(str, t0['widths']))}-{r0['n_classes']}, SGD {t0['epochs']} epochs"
    data = "scikit-learn digits" if t0["dataset"] == "digits" else "MNIST-1D"
    extra = "x: measured sparsity (mean over seeds)."
    methods = {r["trial"]["method"] for r in results}
    if methods & {"corenet", "sipp", "pfp"}:
        extra += (" corenet / sipp / pfp: the theorems' samplers (with replacement, reweighted 1/(mq));"
                  " their variance costs accuracy without retraining.")
    if methods & {"corenet_hybrid", "sipp_hybrid", "pfp_top"}:
        extra += " hybrid / top: entries with mq ≥ 1 kept exactly, the rest sampled; the same guarantee."
    if "pfp_det" in methods:
        extra += " pfp det: authors' deterministic PFP, no guarantee."
    if methods & {"pfp", "pfp_top", "pfp_det"}:
        extra += (" PFP removes whole neurons: compare it with structured methods (neuron merging),"
                  " not unstructured magnitude.")
    if methods & {"corenet", "sipp", "pfp", "corenet_hybrid", "sipp_hybrid", "pfp_top"}:
        extra += " At ≥ 50 % sparsity their relative ε is ≥ 1: the statement is vacuous there."
    return Caption(model=model, data=data, n=r0["n_train"], n_test=r0["n_test"], seeds=seeds,
                   bands=se_bands(seeds), protocols=tuple(prot[p] for p in panels), extra=extra)


def _style(k: int) -> dict:
    """Colour, marker and line style of the k-th line of a panel (distinct for up to 16 lines)."""
    return {"color": OKABE_ITO[k % len(OKABE_ITO)],
            "marker": MARKERS[(k + k // len(OKABE_ITO)) % len(MARKERS)],
            "linestyle": "-" if k < len(OKABE_ITO) else "--"}


@styled
def figure(results: list[dict]):
    """One panel per protocol (no retraining / retrained / sparse training from init), test error (mean ±
    standard error over seeds) against the measured sparsity (mean over seeds); the dense network's error as
    a dotted line. A method keeps its colour and marker in every panel; one legend, off the data."""
    groups = group_by(results, "method")
    panels = [p for p in PANELS if any(p == q for r in results for q, _ in _panel_fields(r))]
    fig, axes = new_figure(len(panels), 1, width=PAGE_WIDTH, aspect=0.45 if len(panels) > 2 else 0.62,
                           sharey=True)
    axes = np.atleast_1d(axes)
    dense = summary([r["result"]["dense_test_error"] for r in results])["mean"]
    style = {m: _style(k) for k, (m,) in enumerate(groups)}
    prot = protocols(results[0]["trial"])
    for ax, panel in zip(axes, panels):
        for (method,), recs in groups.items():
            fld = dict(_panel_fields(recs[0])).get(panel)
            if fld is None:
                continue
            x = stack_over_seeds(recs, "measured_sparsity").mean(axis=0)
            st = style[method]
            line_with_band(ax, x, stack_over_seeds(recs, fld), label=method.replace("_", " "), band=BAND,
                           alpha=0.15, **st)
        ax.axhline(dense, color="0.3", linestyle=":", linewidth=1.0, zorder=0, label="dense")
        ax.set_xlabel("sparsity (fraction of weights removed)")
        ax.set_title(f"{PANELS[panel]}" + (f" ({prot[panel].retrain_epochs} ep, lr {prot[panel].retrain_lr:g})"
                                           if panel == "retrained" else ""))
    axes[0].set_ylabel("test error (dotted: dense)")
    handles = {}
    for ax in axes:
        for ln in ax.get_lines():
            handles.setdefault(ln.get_label(), ln)
    axes[-1].legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    borderaxespad=0.0)
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
