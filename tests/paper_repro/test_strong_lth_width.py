"""strong_lth_width quick preset: files, table, figure, certificates that hold, and the width scalings."""

from __future__ import annotations

import math

import numpy as np
import pytest

EXPERIMENT = "strong_lth_width"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_certificates_hold_and_respect_eps(quick_run):
    for rec in quick_run.results:
        r = rec["result"]
        for eps, cert, emp in zip(r["eps"], r["certified_error"], r["empirical_error"]):
            assert emp <= cert * (1 + 1e-9) + 1e-12  # the analytic sup bound dominates sampled errors
            assert cert <= eps


def test_width_scalings(quick_run):
    """Pensia/Orseau widths grow like log(1/eps); Malach's polynomially (Malach n ∝ 1/eps_w, eps_w ∝ eps)."""
    rows = quick_run.rows
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append((r["eps"], r["n_per_sign_mean"], r["random_params_mean"]))
    for m, pts in by.items():
        pts.sort(reverse=True)  # decreasing eps
        ns = [p[1] for p in pts]
        assert all(a <= b for a, b in zip(ns, ns[1:])), m  # smaller eps never needs fewer neurons
    e0, e1 = by["malach"][0][0], by["malach"][-1][0]
    ratio = by["malach"][-1][1] / by["malach"][0][1]
    assert ratio == pytest.approx(e0 / e1, rel=0.35)  # ~linear in 1/eps (log factor aside)
    for m in ("pensia", "orseau"):
        grow = by[m][-1][1] - by[m][0][1]
        assert 0 < grow <= 8 * math.log2(e0 / e1)  # additive O(log(1/eps)) growth per sign
        assert by[m][-1][2] < by["malach"][-1][2] / 100


def test_figure_content(quick_run):
    fig = quick_run.figure()
    ax, ax2 = fig.axes[:2]
    c = quick_run.config
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("paper")]
    assert len(lines) == len(c.methods)
    assert len(ax2.get_lines()) == 2 * len(c.methods) + 1
    for ln in lines:
        np.testing.assert_allclose(sorted(ln.get_xdata()), sorted(1 / np.asarray(c.eps_grid)))
        assert np.all(ln.get_ydata() > 0)
    # the published number: Pensia et al.'s 21 coefficients per weight at eps = 0.01, as a star
    star = [ln for ln in ax.get_lines() if ln.get_label().startswith("paper")]
    assert len(star) == 1 and star[0].get_marker() == "*"
    np.testing.assert_allclose(star[0].get_xydata(), [[100.0, 21.0]])
    rows = [r for r in quick_run.rows if r["paper"] is not None]
    assert [(r["method"], r["eps"], r["paper"], r["paper_quantity"]) for r in rows] == [
        ("pensia", 0.01, 21.0, "random_per_target_mean")]
    assert "Pensia" in rows[0]["paper_source"]


def test_caption_and_legends(quick_run):
    c = quick_run.config
    quick_run.check_caption(n=c.n_samples, seeds=len(c.seeds), delta=c.delta)
    quick_run.check_legends()
