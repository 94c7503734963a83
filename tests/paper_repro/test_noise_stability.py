"""noise_stability quick preset: files, table, figure, parameter count, and run_trial determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebound.network import count_parameters, mlp

EXPERIMENT = "noise_stability"
pytestmark = pytest.mark.slow


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_table(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert [r["epoch"] for r in rows] == list(c.checkpoints)
    n_params = count_parameters(mlp(64, list(c.widths), 10))
    for r in rows:
        assert r["log10_params_mean"] == pytest.approx(math.log10(n_params), rel=1e-12)
        assert r["gamma_mean"] > 0
        # the capacity measures are effective parameter counts far above 1 for an untuned net
        for k in ("arora2018", "spectral_bartlett2017", "spectral_neyshabur2018"):
            assert np.isfinite(r[f"log10_{k}_mean"])
    assert rows[-1]["train_error_mean"] < rows[0]["train_error_mean"]  # training makes progress


def test_figure_four_lines(quick_run):
    fig = quick_run.figure()
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 4
    c = quick_run.config
    for ln in lines:
        np.testing.assert_array_equal(ln.get_xdata(), c.checkpoints)
    np.testing.assert_allclose(lines[0].get_ydata(), [r["log10_arora2018_mean"] for r in quick_run.rows])


def test_run_trial_is_deterministic(quick_run):
    t = dict(quick_run.mod.trials(quick_run.config)[0], checkpoints=[1, 2], seeds=None)
    t.pop("seeds")
    a, b = quick_run.mod.run_trial(t), quick_run.mod.run_trial(t)
    assert a == b
    # and the first checkpoints agree with the full trial's (same continuous training run)
    full = quick_run.results[0]["result"]
    assert a["arora2018"] == full["arora2018"][:2]


def test_caption_and_legends(quick_run):
    c = quick_run.config
    quick_run.check_caption(n=quick_run.results[0]["result"]["n_train"], seeds=len(c.seeds))
    assert len(c.seeds) >= 5
    quick_run.check_legends()
