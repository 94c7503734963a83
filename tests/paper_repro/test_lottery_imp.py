"""lottery_imp quick preset: files, table, figure content, and the IMP schedule."""

from __future__ import annotations

import numpy as np
import pytest

EXPERIMENT = "lottery_imp"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_table_follows_the_imp_schedule(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert [r["round"] for r in rows] == list(range(c.rounds + 1))
    # round r keeps (1 - sparsity)^(r / rounds) of the weights (Frankle & Carbin, fixed per-round rate)
    for r in rows:
        assert r["remaining"] == pytest.approx((1 - c.sparsity) ** (r["round"] / c.rounds), abs=2e-3)
    for res in quick_run.results:
        assert res["result"]["final_sparsity"] == pytest.approx(c.sparsity, abs=2e-3)
    for r in rows:
        assert 0.0 <= r["ticket_test_error_mean"] <= 1.0 and 0.0 <= r["random_reinit_test_error_mean"] <= 1.0


def test_figure_ticket_and_control_lines(quick_run):
    fig = quick_run.figure()
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2
    c = quick_run.config
    rows = quick_run.rows
    for ln, key in zip(lines, ("ticket_test_error_mean", "random_reinit_test_error_mean")):
        assert len(ln.get_xdata()) == c.rounds + 1
        np.testing.assert_allclose(ln.get_xdata(), [100 * r["remaining"] for r in rows], rtol=1e-9)
        np.testing.assert_allclose(ln.get_ydata(), [r[key] for r in rows], rtol=1e-12)
    assert ax.xaxis_inverted()


def test_caption_and_legends(quick_run):
    c = quick_run.config
    r = quick_run.results[0]["result"]
    text = quick_run.check_caption(n=r["n_train"], seeds=len(c.seeds))
    assert f"retrained {c.epochs} epochs at lr {c.lr:g}" in text and len(c.seeds) >= 5
    quick_run.check_legends()
