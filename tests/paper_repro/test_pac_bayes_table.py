"""pac_bayes_table quick preset: files, table, figure, and the Occam bound recomputed with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

EXPERIMENT = "pac_bayes_table"
pytestmark = pytest.mark.slow


def _kl(q: float, p: float) -> float:
    t1 = 0.0 if q == 0 else q * math.log(q / p)
    t2 = 0.0 if q == 1 else (1 - q) * math.log((1 - q) / (1 - p))
    return t1 + t2


def _kl_inv_upper(q: float, c: float) -> float:
    """Largest p >= q with kl(q || p) <= c, by scipy's brentq (independent of prunebound.bounds.kl)."""
    if _kl(q, 1 - 1e-15) <= c:
        return 1.0
    return brentq(lambda p: _kl(q, p) - c, q, 1 - 1e-15, xtol=1e-14)


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_occam_bound_matches_scipy_kl_inverse(quick_run):
    c = quick_run.config
    for rec in quick_run.results:
        r = rec["result"]
        for bits, emp, occ in zip(r["code_bits"], r["train_error"], r["occam"]):
            ref = _kl_inv_upper(emp, (bits * math.log(2) + math.log(1 / c.delta)) / c.n_train)
            assert occ == pytest.approx(ref, abs=1e-6)


def test_bounds_hold_and_are_ordered(quick_run):
    c = quick_run.config
    rows = [r for r in quick_run.rows if r["source"] == "ours (teacher task)"]
    assert len(rows) == len(c.widths) * len(c.sparsities) == len(quick_run.rows) - 1
    for r in rows:
        assert r["occam_minus_test_min"] > 0  # the certified bound is above the true risk for every seed
        assert r["occam_mean"] >= r["train_error_mean"]
        assert r["zhou2019_mean"] >= r["zhou_empirical_mean"]
        assert r["occam_mean"] < 1.0  # non-vacuous on the teacher task
    nz = [r["nonzero_mean"] for r in rows]
    assert all(a > b for a, b in zip(nz, nz[1:]))  # more sparsity, fewer parameters
    bits = [r["code_bits_mean"] for r in rows]
    assert all(a > b for a, b in zip(bits, bits[1:]))  # ... and a shorter code


def test_figure_has_four_quantities(quick_run):
    fig = quick_run.figure()
    (ax,) = fig.axes
    lines = ax.get_lines()
    c = quick_run.config
    assert len(lines) == 4 * len(c.widths)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Occam bound", "Zhou et al. bound", "test error", "train error"]
    rows = [r for r in quick_run.rows if r["source"] == "ours (teacher task)"]
    order = np.argsort([r["nonzero_mean"] for r in rows])
    np.testing.assert_allclose(lines[0].get_ydata(), [rows[i]["occam_mean"] for i in order], rtol=1e-12)
    np.testing.assert_allclose(lines[2].get_ydata(), [rows[i]["test_error_mean"] for i in order], rtol=1e-12)


@pytest.mark.slow
def test_caption_and_legends(quick_run):
    c = quick_run.config
    text = quick_run.check_caption(n=c.n_train, seeds=len(c.seeds), delta=c.delta)
    assert f"retrained {c.finetune_epochs} epochs" in text and len(c.seeds) >= 5
    quick_run.check_legends()


def test_zhou_imagenet_row_recomputed_not_hard_coded(quick_run):
    from prunebound.paper_repro.pac_bayes_table import ZHOU_IMAGENET, zhou_imagenet_row

    row = quick_run.rows[-1]
    assert row["source"].startswith("Zhou et al. 2019 ImageNet")
    bits = 350 * 1024 * 8
    assert row["code_bits_mean"] == bits and row["train_error_mean"] == 0.35
    ref = _kl_inv_upper(0.35, (bits * math.log(2) + math.log(1 / 0.05)) / 1_281_167)  # scipy route
    assert row["occam_mean"] == pytest.approx(ref, abs=1e-9)
    assert row["occam_mean"] == pytest.approx(0.9654, abs=5e-4)  # ~96.5 %, the paper's headline
    assert row["paper"] == 0.965
    # computed from its inputs: a smaller code gives a smaller bound
    smaller = zhou_imagenet_row({**ZHOU_IMAGENET, "code_kib": 200.0})
    assert smaller["occam_mean"] < row["occam_mean"]
