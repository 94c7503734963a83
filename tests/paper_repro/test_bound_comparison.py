"""bound_comparison quick preset: files, table vs results, figure content, and every bound above its risk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro import EXPERIMENTS, get_experiment

EXPERIMENT = "bound_comparison"
pytestmark = pytest.mark.slow

METHODS = ("occam", "zhou2019", "coreset", "arora2018", "subspace")


def test_registered():
    assert EXPERIMENTS[EXPERIMENT] == "prunebound.paper_repro.bound_comparison"
    mod = get_experiment(EXPERIMENT)
    assert mod.METHODS == METHODS
    full = mod.Config.full()
    assert full.n_train == 10_000 and set(full.datasets) == {"teacher", "mnist1d"}
    assert full.mnist1d_samples == 40_000 and round(full.mnist1d_samples * full.mnist1d_train_fraction) == 32_000


def test_config_validation():
    mod = get_experiment(EXPERIMENT)
    with pytest.raises(InvalidParameterError, match="datasets"):
        mod.trials(mod.Config(datasets=("cifar",)))
    with pytest.raises(InvalidParameterError, match="sparsity"):
        mod.trials(mod.Config(sparsity=1.0))
    with pytest.raises(InvalidParameterError, match="empty"):
        mod.trials(mod.Config(seeds=()))


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_every_bound_is_above_the_measured_risk_of_its_model(quick_run):
    """The certificates hold (w.p. 1 - delta each) for the model they certify; the risk estimate on
    ``n_test`` fresh samples is within the Hoeffding slack sqrt(ln(100) / (2 n_test)) w.p. 0.99."""
    checked = 0
    for rec in quick_run.results:
        r = rec["result"]
        assert r["method"] == list(METHODS)
        slack = math.sqrt(math.log(100) / (2 * r["n_test"]))
        if rec["trial"]["dataset"] == "teacher":
            assert r["n_test"] == 100_000 and slack == pytest.approx(math.sqrt(math.log(100) / 2e5))
        for m, b, risk, emp, cx in zip(METHODS, r["bound"], r["risk"], r["empirical"], r["complexity"]):
            assert 0.0 <= risk <= 1.0 and 0.0 <= emp <= b <= 1.0, m
            assert b >= risk - slack, (m, b, risk)
            assert b == pytest.approx(emp + cx, abs=1e-12), m  # the terms add up to the value
            checked += 1
        # the deterministic models' empirical term is their training error
        for j in (0, 2, 3, 4):
            assert r["empirical"][j] == pytest.approx(r["train_error"][j], abs=1e-12), METHODS[j]
        assert all(bits > 0 for bits in r["code_bits"])
    assert checked == len(quick_run.results) * len(METHODS)


def test_occam_bound_matches_kl_inverse_of_code_bits(quick_run):
    """Occam and subspace values recomputed from (empirical, bits) by bisection on the Bernoulli kl."""
    c = quick_run.config

    def kl(q, p):
        t1 = 0.0 if q == 0 else q * math.log(q / p)
        t2 = 0.0 if q == 1 else (1 - q) * math.log((1 - q) / (1 - p))
        return t1 + t2

    def kl_inv(q, rhs):
        lo, hi = q, 1.0 - 1e-15
        if kl(q, hi) <= rhs:
            return 1.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if kl(q, mid) <= rhs else (lo, mid)
        return hi

    for rec in quick_run.results:
        r = rec["result"]
        n = r["n_train"]
        for j in (0, 4):  # occam (bits = Huffman code), subspace (bits = message + universal + grid)
            ref = kl_inv(r["empirical"][j], (r["code_bits"][j] * math.log(2) + math.log(1 / c.delta)) / n)
            assert r["bound"][j] == pytest.approx(ref, abs=1e-6), METHODS[j]


def test_table_matches_results(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.datasets) * len(METHODS)
    assert [r["method"] for r in rows] == list(METHODS) * len(c.datasets)
    for row in rows:
        recs = [rec["result"] for rec in quick_run.results if rec["trial"]["dataset"] == row["dataset"]]
        j = METHODS.index(row["method"])
        assert row["n_seeds"] == len(recs) == len(c.seeds)
        for f in ("bound", "risk", "code_bits", "empirical"):
            assert row[f"{f}_mean"] == pytest.approx(np.mean([r[f][j] for r in recs]), rel=1e-12)
        assert row["bound_minus_risk_min"] == pytest.approx(min(r["bound"][j] - r["risk"][j] for r in recs))
        assert row["risk_slack"] == pytest.approx(math.sqrt(math.log(100) / (2 * row["n_test"])))
        assert row["bound_minus_risk_min"] >= -row["risk_slack"]


def test_figure_one_bar_and_one_point_per_method_and_dataset(quick_run):
    fig = quick_run.figure()
    c = quick_run.config
    rows = quick_run.rows
    assert len(fig.axes) == len(c.datasets)
    heights, points = [], []
    for ax in fig.axes:
        (bars,) = [b for b in ax.containers if hasattr(b, "patches")]
        heights += [p.get_height() for p in bars.patches]
        (risk_line,) = [ln for ln in ax.get_lines() if ln.get_label() == "measured risk"]
        points += list(risk_line.get_ydata())
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "Occam (DC)", "Zhou 2019", "coreset", "Arora 2018", "subspace"]
    assert len(heights) == len(points) == len(METHODS) * len(c.datasets)
    np.testing.assert_allclose(heights, [r["bound_mean"] for r in rows], rtol=1e-12)
    np.testing.assert_allclose(points, [r["risk_mean"] for r in rows], rtol=1e-12)


def test_subspace_is_the_tightest_at_quick_size(quick_run):
    """Lotfi et al.'s claim on our teacher task: the subspace bound is below Zhou et al.'s, on every seed."""
    for rec in quick_run.results:
        r = rec["result"]
        assert r["bound"][4] < r["bound"][1]


def test_run_trial_is_deterministic():
    mod = get_experiment(EXPERIMENT)
    cfg = mod.Config(n_train=300, n_test=2000, epochs=2, prune_epochs=1, subspace_epochs=2, subspace_qat_epochs=1,
                     mc_samples=5, posterior_draws=2, subspace_grid=((8, 4),), seeds=(3,))
    (t,) = mod.trials(cfg)
    a, b = mod.run_trial(t), mod.run_trial(t)
    assert a == b
    assert a["n_train"] == 300 and a["n_test"] == 2000 and a["subspace_d"] == 8


def test_caption_and_legends(quick_run):
    c = quick_run.config
    n = quick_run.rows[0]["n_train"] if len(c.datasets) == 1 else ", ".join(
        f"{r['n_train']} ({'teacher task' if r['dataset'] == 'teacher' else 'MNIST-1D'})"
        for r in quick_run.rows if r["method"] == "occam")
    text = quick_run.check_caption(n=n, seeds=len(c.seeds), delta=c.delta)
    assert "standard error" in text and len(c.seeds) >= 5
    quick_run.check_legends()
