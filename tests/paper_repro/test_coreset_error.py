"""coreset_error: quick-preset files, table and figure, the full preset against issue 4, the keep-ratio-1
shortcut, and an independent recomputation of the relative output error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebound.errors import InvalidParameterError

EXPERIMENT = "coreset_error"


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
def test_table_rows_and_ranges(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.datasets) * len(c.methods) * len(c.keep_ratios)
    assert {(r["dataset"], r["method"], r["keep_ratio"]) for r in rows} == {
        (d, m, k) for d in c.datasets for m in c.methods for k in c.keep_ratios}
    totals = {rec["trial"]["dataset"]: rec["result"]["total_weights"] for rec in quick_run.results}
    for r in rows:
        total = totals[r["dataset"]]
        assert r["n_seeds"] == len(c.seeds)
        assert 0 < r["kept_weights_mean"] <= total
        assert r["achieved_keep_ratio_mean"] == pytest.approx(r["kept_weights_mean"] / total, rel=1e-12)
        assert r["relative_output_error_mean"] >= 0.0
        assert 0.0 <= r["test_error_mean"] <= 1.0
        if r["keep_ratio"] == 1.0:  # the dense network itself
            assert r["kept_weights_mean"] == total
            assert r["relative_output_error_mean"] == 0.0
            assert r["test_error_mean"] == pytest.approx(r["dense_test_error_mean"], abs=1e-15)
    for d in c.datasets:
        mag = [r for r in rows if r["method"] == "magnitude" and r["dataset"] == d]
        # magnitude pruning is deterministic given the trained net: kept count = ceil(keep_ratio * n_l) per layer
        for r in mag:
            assert abs(r["kept_weights_mean"] - r["keep_ratio"] * totals[d]) <= 3
        # more weights kept -> smaller output error, for the deterministic baseline
        rel = [r["relative_output_error_mean"] for r in mag]
        assert all(a > b for a, b in zip(rel, rel[1:]))


@pytest.mark.slow
def test_figure_grid_one_line_per_method(quick_run):
    fig = quick_run.figure()
    c = quick_run.config
    axes = fig.axes
    assert len(axes) == 2 * len(c.datasets)
    top, bottom = axes[: len(c.datasets)], axes[len(c.datasets):]
    labels = [m.replace("_", " ") for m in c.methods]
    assert [t.get_text() for t in top[0].get_legend().get_texts()] == labels
    by = {(r["dataset"], r["method"], r["keep_ratio"]): r for r in quick_run.rows}
    for d, a_top, a_bot in zip(c.datasets, top, bottom):
        method_lines = [ln for ln in a_top.get_lines() if ln.get_label() in labels]
        assert len(method_lines) == len(c.methods)
        assert len([ln for ln in a_bot.get_lines() if ln.get_label() in labels]) == len(c.methods)
        for m, ln in zip(c.methods, method_lines):
            np.testing.assert_allclose(ln.get_xdata(),
                                       [100 * by[(d, m, k)]["achieved_keep_ratio_mean"] for k in c.keep_ratios],
                                       rtol=1e-12)
            np.testing.assert_allclose(ln.get_ydata(), [by[(d, m, k)]["test_error_mean"] for k in c.keep_ratios],
                                       rtol=1e-12)
        assert a_bot.get_yscale() == "symlog"


@pytest.mark.slow
def test_science_magnitude_beats_uniform_at_low_keep_ratio(quick_run):
    by = {(r["dataset"], r["method"], r["keep_ratio"]): r for r in quick_run.rows}
    for d in quick_run.config.datasets:
        m, u = by[(d, "magnitude", 0.3)], by[(d, "uniform", 0.3)]
        assert m["relative_output_error_mean"] < u["relative_output_error_mean"]
        assert m["test_error_mean"] < u["test_error_mean"]


def test_full_preset_matches_issue_4(mod):
    full = mod.Config.full()
    assert full.methods == ("corenet", "data_independent", "sipp", "pfp", "uniform", "magnitude")
    assert full.datasets == ("mnist1d", "teacher")
    assert full.widths == (300, 100) and full.teacher_d_in == 40 and full.teacher_classes == 10
    np.testing.assert_allclose(full.keep_ratios, np.arange(1, 11) / 10)
    assert len(full.seeds) == 5
    ts = mod.trials(full)
    assert len(ts) == 2 * 6 * 5
    # a trial carries only the parameters of its own data set
    assert all(("teacher_d_in" in t) == (t["dataset"] == "teacher") for t in ts)
    assert all(("n_samples" in t) == (t["dataset"] == "mnist1d") for t in ts)


def test_trials_validation(mod):
    with pytest.raises(InvalidParameterError, match="unknown coreset method"):
        mod.trials(mod.Config(methods=("corenet", "snip")))
    with pytest.raises(InvalidParameterError, match="unknown dataset"):
        mod.trials(mod.Config(datasets=("cifar",)))
    with pytest.raises(InvalidParameterError, match="keep_ratios"):
        mod.trials(mod.Config(keep_ratios=(0.0, 0.5)))
    with pytest.raises(InvalidParameterError, match="empty"):
        mod.trials(mod.Config(seeds=()))


def test_coreset_prune_keep_ratio_one_is_the_dense_network(mod):
    from prunebound.network import count_nonzero, is_pruned, mlp

    m = mlp(5, [8], 3, seed=0)
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(0)).abs()
    p, g = mod.coreset_prune(m, x, method="corenet", keep_ratio=1.0, with_guarantee=True)
    assert g is None and p is not m and is_pruned(p[0])
    assert count_nonzero(p, include_bias=False) == count_nonzero(m, include_bias=False)
    with torch.no_grad():
        assert torch.equal(p(x), m(x))
    p2, g2 = mod.coreset_prune(m, x, method="magnitude", keep_ratio=0.5, with_guarantee=True)
    assert g2 is not None and g2.keep_ratio == pytest.approx(0.5, abs=0.05)
    with pytest.raises(InvalidParameterError):
        mod.coreset_prune(m, x, method="uniform", keep_ratio=1.5)


def test_relative_output_error_helper(mod):
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fa, fb = a(x).double(), b(x).double()
    ref = np.mean([float(torch.linalg.norm(fa[i] - fb[i]) / torch.linalg.norm(fa[i])) for i in range(7)])
    assert mod.relative_output_error(a, b, x) == pytest.approx(ref, rel=1e-12)
    assert mod.relative_output_error(a, a, x) == 0.0


@pytest.mark.slow
def test_caption_and_legends(quick_run):
    c = quick_run.config
    by = {}
    for r in quick_run.results:
        by.setdefault(r["trial"]["dataset"], r["result"]["n_train"])
    labels = {"mnist1d": "MNIST-1D", "teacher": "teacher task", "digits": "digits"}
    n = ", ".join(f"{by[d]} ({labels[d]})" for d in c.datasets)
    text = quick_run.check_caption(n=n, seeds=len(c.seeds))
    assert "no retraining" in text
    assert len(c.seeds) >= 5
    quick_run.check_legends()
