"""pensia_subset_sum quick preset: files, the paper column, and facts that must hold for any draw."""

from __future__ import annotations

import math

import numpy as np
import pytest

EXPERIMENT = "pensia_subset_sum"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_construction_matches_the_paper_setup(quick_run):
    c = quick_run.config
    (rec,) = quick_run.results
    r, t = rec["result"], rec["trial"]
    assert t["n"] == r["n"] == 3 * round(math.log2(1 / c.eps)) == 21  # the paper's n for eps = 0.01
    assert r["target_weights"] == 784 * c.hidden + c.hidden * 10
    # every weight within eps, and the subset-sum network classifies (almost) like the target
    assert r["fraction_within_eps"] == 1.0 and r["max_error"] <= c.eps
    assert r["fraction_within_eps_first_draw"] >= 1 - r["redrawn_weights"] / r["target_weights"]
    assert abs(r["accuracy_change"]) <= 0.01
    # histograms account for every weight; kept counts are consistent
    assert sum(r["error_hist"]) == sum(r["kept_hist"]) == r["target_weights"]
    kept = np.asarray(r["kept_hist"])
    assert int((kept * np.arange(len(kept))).sum()) == r["kept_weights"]
    assert r["kept_ratio"] == pytest.approx(r["kept_weights"] / r["target_weights"])
    # the closest subset of 21 coefficients uses about half of them (the paper's MIP: 9.39)
    assert 7 <= r["kept_ratio"] <= 14


def test_subset_sums_are_exact_optima_on_a_sample():
    """The solver route of the experiment equals brute force on a sample of instances of its distribution."""
    from prunebound.subnet_search.subset_sum import subset_sum_brute_force, subset_sum_exact_batched

    rng = np.random.default_rng(0)
    w = rng.uniform(-0.2, 0.25, 40)
    coef = rng.uniform(-0.2, 0.25, (40, 16))
    res = subset_sum_exact_batched(coef, w)
    ref = np.array([subset_sum_brute_force(coef[i], w[i]).errors[0] for i in range(40)])
    np.testing.assert_allclose(res.errors, ref, atol=1e-12)


def test_paper_column(quick_run):
    from prunebound.paper_repro.pensia_subset_sum import PAPER

    rows = {r["quantity"]: r for r in quick_run.rows}
    assert rows["kept / target weights"]["paper"] == PAPER["kept_ratio"] == 9.39
    assert rows["target weights"]["paper"] == 397_000
    assert rows["solve wall time (s)"]["paper"] == 77_266.0
    assert rows["largest |w - subset sum|"]["paper"] is None  # no published number: empty cell
    assert rows["solve core-seconds"]["paper"] == 77_266.0 * 36


def test_figure_marks_eps_and_the_paper_mean(quick_run):
    fig = quick_run.figure()
    ax, ax2 = fig.axes[:2]
    xs = [ln.get_xdata()[0] for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
    assert quick_run.config.eps in xs
    xs2 = [ln.get_xdata()[0] for ln in ax2.get_lines()]
    assert 9.39 in xs2
