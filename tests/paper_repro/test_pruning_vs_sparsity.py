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
def test_table_has_one_row_per_method_and_sparsity(quick_run, mod):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.methods) * len(c.sparsities)
    assert {(r["method"], r["sparsity"]) for r in rows} == {(m, s) for m in c.methods for s in c.sparsities}
    assert {r["method"] for r in rows if r["family"] == "coreset"} == set(c.methods) & set(mod.CORESET)
    for r in rows:
        assert r["n_seeds"] == len(c.seeds)
        assert 0.0 <= r["test_error_mean"] <= 1.0
        gap = abs(r["measured_sparsity"] - r["sparsity"])
        if r["method"] in mod.STRUCTURED:  # whole neurons: within one neuron's share of the weights
            assert gap < 0.01
        elif r["method"] in mod.CORESET:  # bisection on eps, sampling with replacement
            assert gap < 0.03
        else:  # exact counts, up to rounding of one weight per layer
            assert gap < 1e-3
    # every trial of a seed uses the same trained dense network
    dense = {(rec["trial"]["seed"], rec["result"]["dense_test_error"]) for rec in quick_run.results}
    assert len(dense) == len(c.seeds)


@pytest.mark.slow
def test_figure_panels_lines_and_values(quick_run, mod):
    fig = quick_run.figure()
    c = quick_run.config
    fams = [f for f in ("classic", "coreset") if any(mod.family(m) == f for m in c.methods)]
    axes = fig.axes
    assert len(axes) == len(fams) == 2  # the quick preset has both families
    by = {(r["method"], r["sparsity"]): r for r in quick_run.rows}
    for ax, fam in zip(axes, fams):
        ms = [m for m in c.methods if mod.family(m) == fam]
        lines = [ln for ln in ax.get_lines() if ln.get_label() in {m.replace("_", " ") for m in ms}]
        assert [ln.get_label() for ln in lines] == [m.replace("_", " ") for m in ms]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [m.replace("_", " ") for m in ms]
        for m, ln in zip(ms, lines):  # x = measured sparsity, y = mean test error, both from the table
            np.testing.assert_allclose(ln.get_xdata(), [by[(m, s)]["measured_sparsity"] for s in c.sparsities],
                                       rtol=1e-12)
            np.testing.assert_allclose(ln.get_ydata(), [by[(m, s)]["test_error_mean"] for s in c.sparsities],
                                       rtol=1e-12)
        # the dotted dense reference line
        dense = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert len(dense) == 1
        assert dense[0].get_ydata()[0] == pytest.approx(quick_run.rows[0]["dense_test_error_mean"])
    # styles stay distinct even when a panel has more lines than the palette has colours
    styles = {(s["color"], s["marker"], s["linestyle"]) for s in map(mod._style, range(16))}
    assert len(styles) == 16


@pytest.mark.slow
def test_science_magnitude_beats_random_and_sparsity_hurts(quick_run):
    by = {(r["method"], r["sparsity"]): r["test_error_mean"] for r in quick_run.rows}
    assert quick_run.rows[0]["dense_test_error_mean"] < 0.1  # digits is easy
    for s in (0.5, 0.8):
        assert by[("magnitude_global", s)] + 0.1 < by[("random", s)]
    assert by[("magnitude_global", 0.95)] > by[("magnitude_global", 0.5)]


def test_full_preset_covers_both_registries(mod):
    from prunebound import pruning

    full = mod.Config.full()
    registry_names = {mod.CLASSIC[m][0] for m in full.methods if m in mod.CLASSIC}
    assert registry_names == set(pruning.REGISTRY)
    assert {"corenet", "sipp", "pfp", "data_independent", "uniform"} <= set(full.methods)
    assert len(full.seeds) >= 3 and full.widths == (300, 100) and full.dataset == "mnist1d"
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
