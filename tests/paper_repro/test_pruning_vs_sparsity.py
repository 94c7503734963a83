"""pruning_vs_sparsity: quick-preset files, table and figure; the method table covers the registries; the
structured-sparsity conversion against the masks the methods actually install."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebound.errors import InvalidParameterError
from prunebound.network import Network, mlp, sparsity

EXPERIMENT = "pruning_vs_sparsity"


@pytest.fixture(scope="module")
def mod():
    from prunebound.paper_repro import get_experiment

    return get_experiment(EXPERIMENT)


@pytest.mark.slow
def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


@pytest.mark.slow
def test_table_has_one_row_per_method_sparsity_and_protocol(quick_run, mod):
    c = quick_run.config
    rows = quick_run.rows
    panels = lambda m: ("sparse_training",) if m in mod.SPARSE_TRAINING else ("none", "retrained")  # noqa: E731
    want = {(m, s, p) for m in c.methods for s in c.sparsities for p in panels(m)}
    assert {(r["method"], r["sparsity"], r["protocol"]) for r in rows} == want and len(rows) == len(want)
    assert {r["method"] for r in rows if r["family"] == "coreset"} == set(c.methods) & set(mod.CORESET)
    for r in rows:
        assert r["n_seeds"] == len(c.seeds) >= 5
        assert 0.0 <= r["test_error_mean"] <= 1.0
        assert r["test_error_se"] == pytest.approx(r["test_error_std"] / np.sqrt(r["n_seeds"]))
        gap = abs(r["measured_sparsity"] - r["sparsity"])
        if r["method"] in mod.STRUCTURED:  # whole neurons: within one neuron's share of the weights
            assert gap < 0.01
        elif r["method"] in mod.CORESET:  # bisection on eps, sampling with replacement (PFP: whole neurons)
            assert gap < 0.07
        else:  # exact counts, up to rounding of one weight per layer
            assert gap < 1e-3
    # every trial of a seed uses the same trained dense network
    dense = {(rec["trial"]["seed"], rec["result"]["dense_test_error"]) for rec in quick_run.results}
    assert len(dense) == len(c.seeds)


@pytest.mark.slow
def test_protocol_is_recorded_and_stated(quick_run, mod):
    """Both panels' protocols are in the JSON and on the figure; the retrained panel is k epochs at the
    stated learning rate for every method; the caption states n, seeds and the bands."""
    c = quick_run.config
    js = quick_run.json
    assert [p["retrain_epochs"] for p in js["protocol"]] == [0, c.finetune_epochs]
    assert js["protocol"][1]["retrain_lr"] == c.finetune_lr
    n_train = quick_run.results[0]["result"]["n_train"]
    text = quick_run.check_caption(n=n_train, seeds=len(c.seeds))
    assert "no retraining" in text and f"retrained {c.finetune_epochs} epochs at lr {c.finetune_lr:g}" in text
    for r in quick_run.rows:
        assert r["protocol_text"] == {"none": "no retraining",
                                      "retrained": js["protocol"][1]["text"]}.get(r["protocol"], r["protocol_text"])
    # retraining helps (or does not hurt by more than noise) every method at 80 % sparsity
    by = {(r["method"], r["sparsity"], r["protocol"]): r for r in quick_run.rows}
    for m in c.methods:
        a, b = by[(m, 0.8, "none")], by[(m, 0.8, "retrained")]
        assert b["test_error_mean"] <= a["test_error_mean"] + 3 * (a["test_error_se"] + b["test_error_se"]) + 0.01


@pytest.mark.slow
def test_legends_cover_no_data(quick_run):
    quick_run.check_legends()


@pytest.mark.slow
def test_figure_panels_lines_and_values(quick_run, mod):
    fig = quick_run.figure()
    c = quick_run.config
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" (")[0] for ax in axes] == ["no retraining", "retrained"]
    by = {(r["method"], r["sparsity"], r["protocol"]): r for r in quick_run.rows}
    labels = [m.replace("_", " ") for m in c.methods]
    for ax, panel in zip(axes, ("none", "retrained")):
        lines = [ln for ln in ax.get_lines() if ln.get_label() in labels]
        assert [ln.get_label() for ln in lines] == labels
        for m, ln in zip(c.methods, lines):  # x = measured sparsity, y = mean test error, both from the table
            np.testing.assert_allclose(ln.get_xdata(), [by[(m, s, panel)]["measured_sparsity"]
                                                        for s in c.sparsities], rtol=1e-12)
            np.testing.assert_allclose(ln.get_ydata(), [by[(m, s, panel)]["test_error_mean"]
                                                        for s in c.sparsities], rtol=1e-12)
        # the dotted dense reference line
        dense = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert len(dense) == 1
        assert dense[0].get_ydata()[0] == pytest.approx(quick_run.rows[0]["dense_test_error_mean"])
    # one legend naming every method once, plus the dense line
    legends = [ax.get_legend() for ax in axes if ax.get_legend()]
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == labels + ["dense"]
    # a method keeps its colour in both panels
    col = [{ln.get_label(): ln.get_color() for ln in ax.get_lines()} for ax in axes]
    assert all(col[0][lab] == col[1][lab] for lab in labels)
    # styles stay distinct even when a panel has more lines than the palette has colours
    styles = {(s["color"], s["marker"], s["linestyle"]) for s in map(mod._style, range(16))}
    assert len(styles) == 16


@pytest.mark.slow
def test_science_magnitude_beats_random_and_sparsity_hurts(quick_run):
    by = {(r["method"], r["sparsity"], r["protocol"]): r["test_error_mean"] for r in quick_run.rows}
    assert quick_run.rows[0]["dense_test_error_mean"] < 0.1  # digits is easy
    for p in ("none", "retrained"):
        for s in (0.5, 0.8):
            assert by[("magnitude_global", s, p)] + 0.05 < by[("random", s, p)]
        assert by[("magnitude_global", 0.95, p)] > by[("magnitude_global", 0.5, p)]


@pytest.mark.slow
def test_provable_samplers_near_magnitude_at_half_sparsity_without_retraining(quick_run, mod):
    """Issue 17, at 50 % sparsity without retraining (quick preset, 5 seeds, digits):

    * the samplers that keep their (eps, delta) statement with heavy hitters kept exactly (corenet_hybrid,
      sipp_hybrid) are within 1.5x of global magnitude pruning's test error;
    * PFP removes whole neurons: the deterministic PFP of the authors' experiments is within 1.5x of the
      structured comparator in the panel (neuron merging), as the PFP paper compares it with structured methods;
    * the theorems' plain samplers (with replacement, reweighted) are shown and are worse than their hybrids
      (the reweighting variance the caption names): the figure's claim is checked, not assumed.
    Measured on this preset before the hybrids (5 seeds): magnitude 0.041, CoreNet 0.090, SiPP-Rand 0.088,
    PFP 0.183; after: corenet_hybrid 0.053, sipp_hybrid 0.047, pfp_det 0.048 (neuron merging 0.047)."""
    by = {(r["method"], r["sparsity"], r["protocol"]): r for r in quick_run.rows}
    err = {m: by[(m, 0.5, "none")]["test_error_mean"] for m in quick_run.config.methods}
    mag = err["magnitude_global"]
    for m in ("corenet_hybrid", "sipp_hybrid"):
        assert err[m] <= 1.5 * mag, (m, err[m], mag)
    assert err["pfp_det"] <= 1.5 * err["neuron_merging"], (err["pfp_det"], err["neuron_merging"])
    for plain, hybrid in (("corenet", "corenet_hybrid"), ("sipp", "sipp_hybrid"), ("pfp", "pfp_det")):
        assert err[hybrid] < err[plain], (plain, err[plain], hybrid, err[hybrid])
    for m in ("corenet", "sipp", "pfp", "corenet_hybrid", "sipp_hybrid", "pfp_det"):  # same sparsity as compared
        assert abs(by[(m, 0.5, "none")]["measured_sparsity"] - 0.5) < 0.07
    caption = quick_run.check_caption(n=quick_run.results[0]["result"]["n_train"], seeds=len(quick_run.config.seeds))
    for needle in ("reweighted 1/(mq)", "mq ≥ 1 kept exactly", "no guarantee", "structured", "vacuous"):
        assert needle in " ".join(caption.split()), needle  # the figure's caption (line breaks undone)


def test_full_preset_covers_both_registries(mod):
    from prunebound import pruning

    full = mod.Config.full()
    registry_names = {mod.CLASSIC[m][0] for m in full.methods if m in mod.CLASSIC}
    assert registry_names == set(pruning.REGISTRY)
    assert {"corenet", "sipp", "pfp", "data_independent", "uniform"} <= set(full.methods)
    assert len(full.seeds) >= 5 and full.widths == (300, 100) and full.dataset == "mnist1d"
    assert {0.5, 0.8, 0.9, 0.95} <= set(full.sparsities)
    assert mod.STRUCTURED == set(pruning.STRUCTURED)
    # every method of the experiment is either a registry method or a coreset method
    from prunebound.coresets import METHODS as CORESET_METHODS

    for m in mod.METHODS:
        assert (m in mod.CLASSIC and mod.CLASSIC[m][0] in pruning.REGISTRY) or m in CORESET_METHODS


def test_trials_validation(mod):
    with pytest.raises(InvalidParameterError, match="unknown pruning method"):
        mod.trials(mod.Config(methods=("magnitude", "bogus")))
    with pytest.raises(InvalidParameterError, match="sparsities"):
        mod.trials(mod.Config(sparsities=(0.5, -0.1)))
    with pytest.raises(InvalidParameterError, match="dataset"):
        mod.trials(mod.Config(dataset="cifar"))
    with pytest.raises(InvalidParameterError, match="finetune_epochs"):
        mod.trials(mod.Config(finetune_epochs=0))
    ts = mod.trials(mod.Config())
    assert len(ts) == len(mod.Config().methods) * len(mod.Config().seeds)


@pytest.mark.parametrize("widths", [(7,), (9, 5)])
def test_structured_weight_sparsity_matches_brute_force(mod, widths):
    """The closed form against counting the weights left after masking whole neurons by hand."""
    m = mlp(6, list(widths), 3, seed=0)
    lin = [x for x in m if isinstance(x, torch.nn.Linear)]
    for u in (0.0, 0.2, 0.35, 0.5, 0.8):
        removed = [round(u * ly.out_features) for ly in lin[:-1]]
        kept_units = [ly.out_features - r for ly, r in zip(lin[:-1], removed)]
        ins = [6, *kept_units]
        outs = [*kept_units, 3]
        kept = sum(a * b for a, b in zip(ins, outs))
        total = sum(ly.weight.numel() for ly in lin)
        assert mod.structured_weight_sparsity(m, u)[0] == pytest.approx(1 - kept / total, abs=1e-12)


@pytest.mark.parametrize("method", ["apoz", "neuron_merging"])
def test_unit_sparsity_for_gives_the_closest_weight_sparsity_the_method_installs(mod, method):
    """Independent route: run the structured method at the chosen neuron fraction and read its masks."""
    from prunebound import pruning
    from prunebound.data import Dataset

    m = mlp(8, [20, 10], 3, seed=1)
    g = torch.Generator().manual_seed(0)
    data = Dataset(torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g), name="toy",
                   n_classes=3)
    achievable = {float(v) for v in mod.structured_weight_sparsity(m, np.linspace(0, 0.99, 500))}
    for s in (0.3, 0.6, 0.9):
        u = mod.unit_sparsity_for(m, s)
        kw = {"epochs": 0} if method == "apoz" else {}
        rep = pruning.prune(m, data, method=method, sparsity=u, **kw)
        got = sparsity(rep.module).total
        assert got == pytest.approx(float(mod.structured_weight_sparsity(m, u)[0]), abs=1e-12)
        assert abs(got - s) == pytest.approx(min(abs(a - s) for a in achievable), abs=1e-12)
    with pytest.raises(InvalidParameterError):
        mod.unit_sparsity_for(m, 1.0)


def test_prune_one_protocol_starts_from_the_right_network(mod, monkeypatch):
    """Methods defined from initialisation get theta_0; the others the trained network."""
    from prunebound import pruning

    t = mod.trials(mod.Config(methods=("snip", "magnitude"), seeds=(0,), epochs=1, sparsities=(0.5,)))
    seen = {}

    def spy(module, data=None, *, method, **kw):
        seen[method] = [p.detach().clone() for p in module.parameters()]
        return pruning.REGISTRY[method](module, data, **{**kw, "epochs": 0})

    monkeypatch.setattr(pruning, "prune", spy)
    for trial in t:
        mod.prune_one(trial, 0.5)
    init = mod._model(t[0], trained=False)
    trained = mod._model(t[0], trained=True)
    assert all(torch.equal(a, b) for a, b in zip(seen["snip"], init.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(seen["magnitude"], trained.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(init.parameters(), trained.parameters()))


def test_magnitude_masks_against_sorting(mod):
    """The mask helper (library-backed) against sorting the weights by hand."""
    m = mlp(6, [5], 3, seed=0)
    ws = [ly.weight.detach() for ly in Network.from_module(m).layers]
    flat = torch.cat([w.abs().flatten() for w in ws])
    for s in (0.3, 0.7):
        masks = mod.magnitude_masks(m, s, scope="global")
        kept = torch.cat([(w.abs() * mk).flatten() for w, mk in zip(ws, masks)])
        k = len(flat) - round(s * len(flat))
        assert int(sum(mk.sum() for mk in masks)) == k
        assert sorted(kept[kept > 0].tolist()) == sorted(flat.sort().values[-k:].tolist())
        for w, mk in zip(ws, mod.magnitude_masks(m, s, scope="layerwise")):
            kk = w.numel() - round(s * w.numel())
            assert int(mk.sum()) == kk
            assert (w.abs()[mk == 1].min() >= w.abs()[mk == 0].max()).item()
        r1 = mod.magnitude_masks(m, s, scope="random", seed=3)
        r2 = mod.magnitude_masks(m, s, scope="random", seed=3)
        assert all(torch.equal(a, b) for a, b in zip(r1, r2))
        assert [int(a.sum()) for a in r1] == [w.numel() - round(s * w.numel()) for w in ws]
    with pytest.raises(InvalidParameterError, match="scope"):
        mod.magnitude_masks(m, 0.5, scope="std")


@pytest.mark.slow
def test_provable_samplers_near_magnitude_on_lenet300_100_mnist1d(mod):
    """Issue 17 on the full preset's setting (MLP 40-300-100-10 on MNIST-1D, 40 epochs), with 2 seeds instead of
    5 to keep the suite fast: at 50 % sparsity without retraining the hybrid samplers are within 1.5x of global
    magnitude pruning, deterministic PFP within 1.5x of the structured comparator. Measured with 3 seeds
    (0-2): dense 0.37, magnitude 0.374, corenet 0.520, sipp 0.466, pfp 0.577, corenet_hybrid 0.476,
    sipp_hybrid 0.480, pfp_det 0.532, neuron merging 0.408."""
    from prunebound.train import evaluate

    torch.set_num_threads(1)
    full = mod.Config.full()
    methods = ("magnitude_global", "neuron_merging", "corenet_hybrid", "sipp_hybrid", "pfp_det")
    cfg = mod.Config(**{**{f: getattr(full, f) for f in ("dataset", "n_samples", "widths", "epochs", "lr",
                                                          "batch_size", "delta", "iters")},
                        "methods": methods, "seeds": (0, 1), "sparsities": (0.5,)})
    test = mod._data(cfg.dataset, cfg.n_samples).test
    err = {m: [] for m in methods}
    for t in mod.trials(cfg):
        pruned = mod.prune_one(t, 0.5)
        assert abs(sparsity(pruned).total - 0.5) < 0.03
        err[t["method"]].append(evaluate(pruned, test).error)
    err = {m: float(np.mean(v)) for m, v in err.items()}
    for m in ("corenet_hybrid", "sipp_hybrid"):
        assert err[m] <= 1.5 * err["magnitude_global"], (m, err)
    assert err["pfp_det"] <= 1.5 * err["neuron_merging"], err


def test_cost_columns_next_to_error(mod):
    """keep ratio, effective FLOPs, compacted FLOPs (structured methods only) and latency in every row."""
    from prunebound import pruning

    m = mlp(8, [20], 3, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, generator=g)
    from prunebound.data import Dataset

    data = Dataset(x, torch.randint(0, 3, (16,), generator=g), name="toy", n_classes=3)
    pruned = pruning.prune(m, data, method="neuron_merging", sparsity=0.5).module
    c = mod._cost(pruned, x, True)
    assert c["flops_dense"] == 2 * (8 * 20 + 20 * 3)
    assert c["flops_compacted"] == 2 * (8 * 10 + 10 * 3) and c["latency_compacted_ms"] > 0
    assert mod._cost(pruned, x, False)["flops_compacted"] is None
    res = {"sparsity": [0.5], "measured_sparsity": [0.4], "test_error": [0.2], "retrained_test_error": [0.1],
           "dense_test_error": 0.05, "protocol": "prune", **{k: [v] for k, v in c.items()}}
    old = {k: v for k, v in res.items() if not k.startswith(("flops", "latency"))}  # a record of an older run
    recs = [{"trial": {"method": "neuron_merging", "seed": 0, "finetune_epochs": 1, "finetune_lr": 0.01,
                       "epochs": 1, "lr": 0.1}, "result": r} for r in (res, old)]
    rows = mod.table(recs)
    assert {r["protocol"] for r in rows} == {"none", "retrained"}
    for r in rows:
        assert r["keep_ratio"] == pytest.approx(0.6)
        assert r["flops_compacted_mean"] == c["flops_compacted"]  # the older record has no cost: skipped
        assert r["flops_effective_mean"] == pytest.approx(c["flops_effective"])
        assert r["latency_ms_mean"] > 0
