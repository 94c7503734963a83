"""Side-by-side compression bounds: Occam, Zhou et al. 2019, coreset, Arora et al. 2018, Lotfi et al. 2022.

Lotfi, Finzi, Kapoor, Potapczynski, Goldblum & Wilson (NeurIPS 2022, "PAC-Bayes compression bounds so tight
that they can explain generalization", Table 1 / Fig. 1) compare their subspace bound with earlier
compression bounds on the same models and data.  We do the same on a teacher task (true risk measurable) and
on MNIST-1D (held-out test error).  Per data set and seed:

1. train a one-hidden-layer MLP ``d-width-k`` (:func:`prunebound.network.mlp`, SGD, cross-entropy);
2. certify, each method on *its own* compressed model (the model each certificate is about), at confidence
   ``1 - delta`` each:

   * ``occam`` -- Deep Compression (:func:`prunebound.pruning.deep_compression`: global magnitude pruning to
     ``sparsity`` with retraining, ``2^bits``-level k-means quantization, centroid fine-tuning, Huffman code)
     certified by the Occam kl bound with prior ``2^-|code|`` (certifier ``"occam"``);
   * ``zhou2019`` -- the noisy posterior around the same Deep-Compression model, Zhou et al. (2019) Thm. 4.3
     (certifier ``"zhou2019"``); its measured risk is the risk of the *noisy* network at the chosen noise
     scale, averaged over ``posterior_draws`` seeded draws (the quantity the PAC-Bayes bound is about);
   * ``coreset`` -- sensitivity-sampling pruning (default ``"data_independent"``, the data-independent
     sensitivities of Baykal et al.; CoreNet itself keeps the first layer of an MLP on signed inputs dense,
     so it cannot reach small keep ratios on a one-hidden-layer MLP) to ``coreset_keep_ratio`` with float16
     values (:func:`prunebound.bounds.coreset_bound.coreset_compress`), certifier ``"coreset"``;
   * ``arora2018`` -- Algorithm 2 of Arora et al. (2018) on the trained network (random projections fixed by
     the helper seed), Occam/binomial bound on the compressed network ``g``
     (:func:`prunebound.bounds.noise_stability.arora2018_bound`, the function behind ``"arora2018"``);
   * ``subspace`` -- Lotfi et al. (2022): training in random subspaces over the grid ``subspace_grid`` of
     (dimension ``d``, codebook size ``L``), learned quantization, arithmetic coding, Occam kl bound with the
     grid paid for (:func:`prunebound.bounds.subspace.subspace_compress`, certifier ``"subspace"``);
3. record per method the bound value, its empirical and complexity terms, the code length in bits, and the
   true risk (teacher: ``n_test`` fresh samples) or test error (MNIST-1D: held-out split) of the certified
   model.

Every bound is an upper bound on the risk of its model with probability ``>= 1 - delta``; the measured risk is
an estimate whose Hoeffding slack at confidence 0.99 is ``sqrt(ln(100) / (2 n_test))`` (tabulated as
``risk_slack``).  Deviations: the MNIST-1D data set is generated once (``mnist1d_seed``) and the seeds vary
the model initialisation and every method's randomness (the split is the standard held-out one); each method
is run at one fixed setting (no union over method hyperparameters is needed except the subspace grid, which
is paid for).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro._base import (
    Caption,
    check_config,
    config_dict,
    finish_figure,
    group_by,
    make_run,
    summary,
    write_outputs,
)
from prunebound.plotting import MARKERS, OKABE_ITO, new_figure, styled

NAME = "bound_comparison"
TITLE = "Compression bounds side by side (Occam, Zhou 2019, coreset, Arora 2018, subspace) vs measured risk"
METHODS = ("occam", "zhou2019", "coreset", "arora2018", "subspace")
METHOD_LABELS = {"occam": "Occam (DC)", "zhou2019": "Zhou 2019", "coreset": "coreset",
                 "arora2018": "Arora 2018", "subspace": "subspace"}
DATASETS = ("teacher", "mnist1d")
#: measured-risk slack confidence: the risk estimate is within sqrt(ln(1/RISK_ALPHA) / (2 n_test)) w.p. 0.99
RISK_ALPHA = 0.01
FIELDS = ("bound", "empirical", "complexity", "code_bits", "risk", "train_error")


@dataclass(frozen=True)
class Config:
    """``datasets`` among ``"teacher"`` and ``"mnist1d"``.  Teacher task (``d_in``, ``teacher_width``,
    ``n_classes``, ``label_noise``) with ``n_train`` training samples and ``n_test`` fresh samples for the
    true risk; MNIST-1D with ``mnist1d_samples`` examples (``mnist1d_train_fraction`` for training, the rest
    held out), generated with ``mnist1d_seed``.  Students: MLPs with one hidden layer of ``width``
    (teacher) or ``mnist1d_width`` units, trained ``epochs`` (SGD, ``lr``, ``batch_size``).  Method
    settings: Deep Compression (``sparsity``, ``bits``, ``prune_epochs``) for occam / zhou2019; Zhou et al.
    noise grids ``zhou_sigmas`` x ``zhou_taus`` with ``mc_samples`` Monte-Carlo draws, measured risk over
    ``posterior_draws`` noisy networks; coreset pruning with ``coreset_method`` (a
    :func:`prunebound.coresets.prune` method) to ``coreset_keep_ratio``; Arora et al. precision grid
    ``arora_bits_grid``; subspace grids ``subspace_grid`` (teacher) / ``mnist1d_subspace_grid`` of ``(d,
    L)`` with ``subspace_epochs`` + ``subspace_qat_epochs`` of training.  Confidence ``1 - delta`` each."""

    datasets: tuple[str, ...] = ("teacher",)
    d_in: int = 10
    teacher_width: int = 16
    n_classes: int = 2
    label_noise: float = 0.1
    n_train: int = 2000
    n_test: int = 100_000
    mnist1d_samples: int = 4000
    mnist1d_train_fraction: float = 0.8
    mnist1d_seed: int = 0
    width: int = 32
    mnist1d_width: int = 100
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 128
    sparsity: float = 0.8
    bits: int = 3
    prune_epochs: int = 2
    zhou_sigmas: tuple[float, ...] = (0.1, 0.3)
    zhou_taus: tuple[float, ...] = (0.3, 1.0)
    mc_samples: int = 50
    posterior_draws: int = 5
    coreset_method: str = "data_independent"
    coreset_keep_ratio: float = 0.5
    arora_bits_grid: tuple[int, ...] = (3, 4, 6, 8)
    subspace_grid: tuple[tuple[int, int], ...] = ((25, 8), (50, 8))
    mnist1d_subspace_grid: tuple[tuple[int, int], ...] = ((100, 16), (250, 16))
    subspace_epochs: int = 15
    subspace_qat_epochs: int = 3
    delta: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    @classmethod
    def quick(cls) -> Config:
        return cls()

    @classmethod
    def full(cls) -> Config:
        return cls(datasets=("teacher", "mnist1d"), n_train=10_000, mnist1d_samples=40_000, epochs=20,
                   prune_epochs=3, zhou_sigmas=(0.05, 0.1, 0.2, 0.3, 0.5), zhou_taus=(0.1, 0.3, 0.5, 1.0),
                   mc_samples=100, posterior_draws=10, arora_bits_grid=(2, 3, 4, 5, 6, 8, 10, 12),
                   subspace_grid=((25, 8), (50, 8), (100, 8)),
                   mnist1d_subspace_grid=((100, 16), (250, 16), (500, 16)),
                   subspace_epochs=30, subspace_qat_epochs=5, seeds=tuple(range(5)))

    def to_dict(self) -> dict:
        return config_dict(self)


def trials(config: Config) -> list[dict]:
    check_config(config, Config)
    for ds in config.datasets:
        if ds not in DATASETS:
            raise InvalidParameterError(f"datasets must be among {DATASETS}, got {ds!r}")
    if len(set(config.datasets)) != len(config.datasets):
        raise InvalidParameterError(f"datasets has duplicates: {config.datasets}")
    if not 0.0 < config.sparsity < 1.0:
        raise InvalidParameterError(f"sparsity must lie in (0, 1), got {config.sparsity}")
    from prunebound.coresets.prune import METHODS as CORESET_METHODS

    if config.coreset_method not in CORESET_METHODS:
        raise InvalidParameterError(
            f"coreset_method must be one of {CORESET_METHODS}, got {config.coreset_method!r}")
    if not 0.0 < config.coreset_keep_ratio <= 1.0:
        raise InvalidParameterError(f"coreset_keep_ratio must lie in (0, 1], got {config.coreset_keep_ratio}")
    base = {k: v for k, v in config_dict(config).items() if k not in ("datasets", "seeds")}
    return [{"experiment": NAME, **base, "dataset": ds, "seed": s} for ds in config.datasets
            for s in config.seeds]


def _data(t: dict):
    """``(train, risk_fn, n_test, width)`` for the trial's data set."""
    from prunebound.data import mnist1d, teacher_task
    from prunebound.train import evaluate

    if t["dataset"] == "teacher":
        task = teacher_task(t["d_in"], t["teacher_width"], t["n_classes"], t["label_noise"], seed=0)
        train = task.sample(t["n_train"], 1_000 + int(t["seed"]))

        def risk(m, _task=task):
            return float(_task.true_risk(m, n=t["n_test"], seed=99_991))

        return train, task.sample(t["n_test"], 99_991), risk, int(t["n_test"]), int(t["width"])
    split = mnist1d(t["mnist1d_samples"], seed=t["mnist1d_seed"], train_fraction=t["mnist1d_train_fraction"])

    def risk(m, _test=split.test):
        return float(evaluate(m, _test).error)

    return split.train, split.test, risk, len(split.test), int(t["mnist1d_width"])


def _zhou_posterior_risk(model, test, *, sigma_rel: float, draws: int, seed: int) -> float:
    """Mean 0-1 error on ``test`` of ``draws`` noisy copies of ``model`` with the posterior of Zhou et al.:
    ``N(0, (sigma_rel * Delta_l)^2)`` noise on every coded weight of layer ``l`` (as in
    :func:`prunebound.bounds.compression_bound.zhou2019_bound`)."""
    from prunebound.bounds.compression_bound import monte_carlo_error, quantized_layers

    by_path = {ly.path: ly for ly in quantized_layers(model)}

    def perturb(net, g):
        with torch.no_grad():
            for ly in net.layers:
                q = by_path[ly.path]
                w = ly.module.weight
                noise = torch.randn(w.shape, generator=g, dtype=torch.float64)
                w.add_((noise * (sigma_rel * q.scale) * q.positions.to(w.device)).to(w.dtype))

    return float(monte_carlo_error(model, test, perturb, m=draws, seed=seed).mean())


def run_trial(t: dict) -> dict:
    torch.set_num_threads(1)
    from prunebound.bounds import certify
    from prunebound.bounds.coreset_bound import coreset_compress
    from prunebound.bounds.noise_stability import arora2018_bound
    from prunebound.bounds.subspace import subspace_compress
    from prunebound.coding import code_length_bits
    from prunebound.network import count_parameters, mlp
    from prunebound.pruning.deep_compression import deep_compression
    from prunebound.train import evaluate, fit

    seed, delta = int(t["seed"]), float(t["delta"])
    train, test, risk, n_test, width = _data(t)
    d_in, k = int(train.x.shape[1]), int(train.n_classes)
    model = mlp(d_in, [width], k, seed=seed)
    fit(model, train, epochs=t["epochs"], lr=t["lr"], batch_size=t["batch_size"], seed=seed)
    out: dict[str, list] = {"method": list(METHODS), **{f: [] for f in FIELDS}}

    def record(bound, empirical, complexity, bits, m, risk_value=None):
        out["bound"].append(float(bound))
        out["empirical"].append(float(empirical))
        out["complexity"].append(float(complexity))
        out["code_bits"].append(float(bits))
        out["risk"].append(float(risk(m) if risk_value is None else risk_value))
        out["train_error"].append(float(evaluate(m, train).error))

    # occam and zhou2019: one Deep-Compression model
    dc = deep_compression(copy.deepcopy(model), train, sparsity=t["sparsity"], seed=seed, scope="global",
                          prune_epochs=t["prune_epochs"], lr=t["lr"], batch_size=t["batch_size"],
                          bits_linear=t["bits"]).module
    dc_bits = float(code_length_bits(dc).total_bits)
    c = certify(dc, train, method="occam", delta=delta)
    record(c.value, c.empirical, c.complexity, dc_bits, dc)
    zc = certify(dc, train, method="zhou2019", delta=delta, seed=seed, mc_samples=t["mc_samples"],
                 sigmas=t["zhou_sigmas"], taus=t["zhou_taus"])
    post = _zhou_posterior_risk(dc, test, sigma_rel=float(zc.parts["sigma_rel"]), draws=t["posterior_draws"],
                                seed=seed + 7)
    record(zc.value, zc.empirical, zc.complexity, zc.parts["bits"], dc, risk_value=post)
    # coreset
    cm, _ = coreset_compress(model, train, method=t["coreset_method"], keep_ratio=t["coreset_keep_ratio"],
                             seed=seed)
    c = certify(cm, train, method="coreset", delta=delta)
    record(c.value, c.empirical, c.complexity, c.parts["bits"], cm)
    # arora2018 (the certifier's own function, which also returns the compressed network)
    terms, cn = arora2018_bound(model, train, delta=delta, seed=seed, bits_grid=t["arora_bits_grid"])
    record(terms.value, terms.empirical, terms.complexity, terms.parts["code_bits"], cn.model)
    # subspace
    grid = t["subspace_grid"] if t["dataset"] == "teacher" else t["mnist1d_subspace_grid"]
    res = subspace_compress(model, train, grid=[tuple(g) for g in grid], delta=delta, seed=seed,
                            epochs=t["subspace_epochs"], qat_epochs=t["subspace_qat_epochs"],
                            batch_size=t["batch_size"])
    record(res.terms.value, res.terms.empirical, res.terms.complexity, res.terms.parts["total_bits"],
           res.model)
    out.update(n_train=len(train), n_test=n_test, n_params=count_parameters(model),
               model_risk=risk(model), model_train_error=float(evaluate(model, train).error),
               zhou_sigma_rel=float(zc.parts["sigma_rel"]), zhou_tau_rel=float(zc.parts["tau_rel"]),
               subspace_d=res.d, subspace_levels=res.levels)
    return out


run = make_run(NAME, run_trial, trials)


def risk_slack(n_test: int) -> float:
    """Hoeffding slack of a risk estimated on ``n_test`` samples at confidence ``1 - RISK_ALPHA``."""
    return math.sqrt(math.log(1 / RISK_ALPHA) / (2 * int(n_test)))


def table(results: list[dict]) -> list[dict]:
    """One row per (data set, method): means/std over seeds, ``ratio_mean`` = mean bound / risk,
    ``bound_minus_risk_min`` over seeds and the measured risk's ``risk_slack``."""
    rows = []
    for (ds,), recs in group_by(results, "dataset").items():
        methods = recs[0]["result"]["method"]
        arr = {f: np.array([r["result"][f] for r in recs], dtype=np.float64) for f in FIELDS}
        n_test = min(int(r["result"]["n_test"]) for r in recs)
        for j, meth in enumerate(methods):
            row = {"dataset": ds, "method": meth, "n_train": int(recs[0]["result"]["n_train"]),
                   "n_test": n_test, "n_seeds": len(recs)}
            for f in FIELDS:
                st = summary(arr[f][:, j])
                row[f"{f}_mean"] = st["mean"]
                if f in ("bound", "risk"):
                    row[f"{f}_std"] = st["std"]
                    row[f"{f}_se"] = st["std"] / math.sqrt(st["n"]) if st["n"] else math.nan
            row["ratio_mean"] = row["bound_mean"] / row["risk_mean"] if row["risk_mean"] > 0 else math.inf
            row["bound_minus_risk_min"] = float((arr["bound"][:, j] - arr["risk"][:, j]).min())
            row["risk_slack"] = risk_slack(n_test)
            rows.append(row)
    return rows


_DATA_LABELS = {"teacher": "teacher task", "mnist1d": "MNIST-1D"}


def caption(results: list[dict]) -> Caption:
    t = results[0]["trial"]
    seeds = len({r["trial"]["seed"] for r in results})
    by = {ds: recs[0] for (ds,), recs in group_by(results, "dataset").items()}
    models, ns = [], []
    for ds, r in by.items():
        w = t["width"] if ds == "teacher" else t["mnist1d_width"]
        d_in, k = (t["d_in"], t["n_classes"]) if ds == "teacher" else (40, 10)
        models.append(f"{d_in}-{w}-{k} ({_DATA_LABELS[ds]})")
        ns.append(f"{r['result']['n_train']} ({_DATA_LABELS[ds]})")
    data = " / ".join(f"teacher task (label noise {t['label_noise']:g}, true risk on {t['n_test']} fresh samples)"
                      if ds == "teacher" else "MNIST-1D (held-out test error)" for ds in by)
    return Caption(model="MLP " + ", ".join(models) + f", SGD {t['epochs']} epochs", data=data,
                   n=", ".join(ns) if len(ns) > 1 else int(next(iter(by.values()))["result"]["n_train"]),
                   seeds=seeds, delta=t["delta"],
                   bands=f"error bars: standard error of the bound over {seeds} seeds",
                   extra="Each bound certifies its own compressed model; the dot is that model's measured risk.")


@styled
def figure(results: list[dict]):
    """One panel per data set: a bar per method (mean bound over seeds, standard error as error bar) and a
    point per method (mean measured risk of that method's certified model)."""
    from matplotlib.patches import Patch

    rows = table(results)
    sets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = new_figure(ncols=len(sets), width=3.3 * len(sets), aspect=0.8)
    axes = np.atleast_1d(axes)
    for ax, ds in zip(axes, sets):
        rs = [r for r in rows if r["dataset"] == ds]
        x = np.arange(len(rs))
        ax.bar(x, [r["bound_mean"] for r in rs], yerr=[r["bound_se"] for r in rs], width=0.6,
               color=[OKABE_ITO[METHODS.index(r["method"]) % len(OKABE_ITO)] for r in rs], alpha=0.85,
               error_kw={"linewidth": 0.8})
        (pts,) = ax.plot(x, [r["risk_mean"] for r in rs], linestyle="none", marker=MARKERS[0], color="black",
                         label="measured risk")
        ax.set_xticks(x, [METHOD_LABELS.get(r["method"], r["method"]) for r in rs], rotation=30, ha="right")
        ax.set_ylim(0.0, 1.2)
        ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.axhline(1.0, color="0.5", linewidth=0.6, linestyle=":")
        ax.set_title(f"{_DATA_LABELS.get(ds, ds)} (n = {rs[0]['n_train']}, δ = {results[0]['trial']['delta']:g})")
        ax.set_ylabel("risk (0-1)")
        ax.legend(handles=[Patch(facecolor="0.6", label="bound"), pts], loc="best", ncol=2)
    return finish_figure(fig, caption(results))


def plot(results: list[dict], out_dir) -> list[Path]:
    return write_outputs(figure(results), table(results), out_dir, NAME, caption=caption(results))
