"""lueker_subset_sum quick preset: files, table, figure content, and facts that must hold for any draw."""

from __future__ import annotations

import math

import numpy as np
import pytest

EXPERIMENT = "lueker_subset_sum"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_table_and_deterministic_facts(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.eps_grid) * len(c.n_grid)
    for r in rows:
        assert 0.0 <= r["success_mean"] <= 1.0
        assert r["theory_n"] == pytest.approx(2.0 * math.log2(1.0 / r["eps"]))
        # one value a gives sums {0, a}: both -1 and +1 cannot be within eps < 1/2
        if r["n"] == 1:
            assert r["success_mean"] == 0.0
    # 2^n sums spaced at most 2 eps apart cannot cover [-1, 1] unless 2^n * 2 eps >= 2
    for r in rows:
        if 2 ** r["n"] * 2 * r["eps"] < 2 - 1e-12:
            assert r["success_mean"] == 0.0, r
    # with the largest n, the coarsest eps is (nearly) always reached
    coarse = max(c.eps_grid)
    assert [r for r in rows if r["eps"] == coarse and r["n"] == max(c.n_grid)][0]["success_mean"] >= 0.9


def test_figure_content(quick_run):
    fig = quick_run.figure()
    ax, ax2 = fig.axes[:2]
    c = quick_run.config
    assert len(ax.get_lines()) == len(c.eps_grid) + 1  # one curve per eps + the 0.9 reference line
    for ln in ax.get_lines()[: len(c.eps_grid)]:
        np.testing.assert_array_equal(ln.get_xdata(), c.n_grid)
        assert np.all((ln.get_ydata() >= 0) & (ln.get_ydata() <= 1))
    assert len(ax2.get_lines()) == 1  # theory line
    pts = ax2.collections[0].get_offsets()
    n90 = [r["result"]["n_at_90"] for r in quick_run.results if r["result"]["n_at_90"] is not None]
    assert len(pts) == len(n90) > 0
    np.testing.assert_array_equal(sorted(pts[:, 1]), sorted(n90))


def test_caption_and_legends(quick_run):
    c = quick_run.config
    text = quick_run.check_caption(n=c.reps, seeds=len(c.seeds))
    assert "seed blocks" in text and len(c.seeds) >= 5
    quick_run.check_legends()
