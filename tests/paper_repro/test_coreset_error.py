"""coreset_error quick preset: files, table, figure content, and an independent error recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

EXPERIMENT = "coreset_error"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_table_rows_and_ranges(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.methods) * len(c.keep_ratios)
    total = quick_run.results[0]["result"]["total_weights"]
    for r in rows:
        assert 0 < r["kept_weights_mean"] <= total
        assert r["relative_output_error_mean"] >= 0.0
        assert 0.0 <= r["test_error_mean"] <= 1.0
    # magnitude pruning is deterministic given the trained net: kept count = round(keep_ratio * weights)
    for r in rows:
        if r["method"] == "magnitude":
            assert abs(r["kept_weights_mean"] - r["keep_ratio"] * total) <= 2  # per-layer rounding
    # more weights kept -> smaller output error, for the deterministic baseline
    mag = [r["relative_output_error_mean"] for r in rows if r["method"] == "magnitude"]
    assert all(a > b for a, b in zip(mag, mag[1:]))


def test_relative_output_error_helper():
    mod = pytest.importorskip("prunebound.paper_repro.coreset_error")
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fa, fb = a(x).double(), b(x).double()
    ref = np.mean([float(torch.linalg.norm(fa[i] - fb[i]) / torch.linalg.norm(fa[i])) for i in range(7)])
    assert mod.relative_output_error(a, b, x) == pytest.approx(ref, rel=1e-12)
    assert mod.relative_output_error(a, a, x) == 0.0


def test_figure_two_panels_one_line_per_method(quick_run):
    fig = quick_run.figure()
    ax, ax2 = fig.axes[:2]
    c = quick_run.config
    for a in (ax, ax2):
        assert len(a.get_lines()) == len(c.methods)
        for ln in a.get_lines():
            assert len(ln.get_xdata()) == len(c.keep_ratios)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(c.methods)
    by = {(r["method"], r["keep_ratio"]): r["test_error_mean"] for r in quick_run.rows}
    for m, ln in zip(c.methods, ax2.get_lines()):
        np.testing.assert_allclose(ln.get_ydata(), [by[(m, k)] for k in c.keep_ratios], rtol=1e-12)
