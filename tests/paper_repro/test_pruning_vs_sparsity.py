"""pruning_vs_sparsity quick preset: files, table, figure content, and the expected ordering of methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebound.network import Network, mlp

EXPERIMENT = "pruning_vs_sparsity"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_table_has_one_row_per_method_and_sparsity(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.methods) * len(c.sparsities)
    assert {(r["method"], r["sparsity"]) for r in rows} == {(m, s) for m in c.methods for s in c.sparsities}
    for r in rows:
        assert r["n_seeds"] == len(c.seeds)
        assert 0.0 <= r["test_error_mean"] <= 1.0
        assert abs(r["measured_sparsity"] - r["sparsity"]) < 1e-3  # exact counts, up to rounding


def test_figure_has_one_band_line_per_method(quick_run):
    fig = quick_run.figure()
    (ax,) = fig.axes
    lines = ax.get_lines()
    c = quick_run.config
    assert len(lines) == len(c.methods)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [m.replace("_", " ") for m in c.methods]
    for ln in lines:
        np.testing.assert_allclose(ln.get_xdata(), c.sparsities)
    assert len(ax.collections) == len(c.methods)  # one band each (seeds differ)
    # the plotted means are the table's means
    by = {(r["method"], r["sparsity"]): r["test_error_mean"] for r in quick_run.rows}
    for m, ln in zip(c.methods, lines):
        np.testing.assert_allclose(ln.get_ydata(), [by[(m, s)] for s in c.sparsities], rtol=1e-12)


def test_science_dense_equal_and_magnitude_beats_random(quick_run):
    by = {(r["method"], r["sparsity"]): r["test_error_mean"] for r in quick_run.rows}
    dense = {by[(m, 0.0)] for m in quick_run.config.methods}
    assert len(dense) == 1 and dense.pop() < 0.1  # same trained network for every method; digits is easy
    assert by[("magnitude_global", 0.5)] + 0.1 < by[("random", 0.5)]
    assert by[("magnitude_global", 0.98)] > by[("magnitude_global", 0.5)]


def test_magnitude_masks_against_sorting():
    mod = pytest.importorskip("prunebound.paper_repro.pruning_vs_sparsity")
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
