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
    # 2^n sums spaced at most 2 eps apart cannot cover [-h, h] unless 2^n * 2 eps >= 2 h
    assert c.half_width == 0.5 and all(r["half_width"] == 0.5 for r in rows)  # Lueker's interval
    for r in rows:
        if 2 ** r["n"] * 2 * r["eps"] < 2 * c.half_width - 1e-12:
            assert r["success_mean"] == 0.0, r
    # with the largest n, the coarsest eps is (nearly) always reached
    coarse = max(c.eps_grid)
    assert [r for r in rows if r["eps"] == coarse and r["n"] == max(c.n_grid)][0]["success_mean"] >= 0.9


def test_figure_content(quick_run):
    from prunebound.paper_repro.lueker_subset_sum import consistent_C, lueker_bound

    fig = quick_run.figure()
    ax, ax2 = fig.axes[:2]
    c = quick_run.config
    c_star = consistent_C(quick_run.results)
    lines = ax.get_lines()
    # per eps: the measured curve, then the stated bound (dashed); then the legend proxy and the 0.9 line
    assert len(lines) == 2 * len(c.eps_grid) + 2
    for i, eps in enumerate(c.eps_grid):
        meas, bound = lines[2 * i], lines[2 * i + 1]
        np.testing.assert_array_equal(meas.get_xdata(), c.n_grid)
        assert np.all((meas.get_ydata() >= 0) & (meas.get_ydata() <= 1))
        assert bound.get_linestyle() == "--"
        np.testing.assert_allclose(bound.get_ydata(), lueker_bound(bound.get_xdata(), eps, c_star))
    assert len(ax2.get_lines()) == 2  # reference line and the stated bound's n at 0.9
    pts = ax2.collections[0].get_offsets()
    n90 = [r["result"]["n_at_90"] for r in quick_run.results if r["result"]["n_at_90"] is not None]
    assert len(pts) == len(n90) > 0
    np.testing.assert_array_equal(sorted(pts[:, 1]), sorted(n90))


def test_caption_and_legends(quick_run):
    c = quick_run.config
    text = quick_run.check_caption(n=c.reps, seeds=len(c.seeds))
    assert "seed blocks" in text and len(c.seeds) >= 5
    quick_run.check_legends()


def test_lueker_bound_formula_and_consistent_C(quick_run):
    from prunebound.paper_repro.lueker_subset_sum import (
        _C_GRID,
        _upper_limits,
        consistent_C,
        lueker_bound,
        n_at_90_stated,
    )

    # hand value: n = 40, eps = e^-2, C = 1: gap = 20 - 2 = 18, bound = 1 - exp(-324 / 80)
    assert lueker_bound(40, math.exp(-2), 1.0) == pytest.approx(1 - math.exp(-324 / 80))
    assert lueker_bound(3, math.exp(-2), 1.0) == 0.0  # n < 2 C ln(1/eps): no statement
    assert lueker_bound(n_at_90_stated(0.01, 1.5), 0.01, 1.5) == pytest.approx(0.9)
    c_star = consistent_C(quick_run.results)
    assert 0 < c_star < math.inf
    lims = _upper_limits(quick_run.results)
    assert all(np.all(lueker_bound(n, e, c_star) <= up + 1e-12) for n, e, up in lims)
    smaller = _C_GRID[_C_GRID < c_star]
    if smaller.size:  # the next smaller C on the grid is contradicted by some measurement
        assert any(np.any(lueker_bound(n, e, smaller[-1]) > up + 1e-12) for n, e, up in lims)
    assert {r["C_star"] for r in quick_run.rows} == {c_star}
