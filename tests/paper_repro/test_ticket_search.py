"""ticket_search quick preset: files, table, figure content, and facts that must hold for any draw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunebound.errors import InvalidParameterError

EXPERIMENT = "ticket_search"
pytestmark = pytest.mark.slow

METHODS = ("edge_popup", "greedy", "random")


def test_outputs_exist_parse_and_resume(quick_run, monkeypatch):
    quick_run.check_files()
    quick_run.check_results_complete()
    quick_run.check_resume_runs_nothing(monkeypatch)


def test_budgets_are_matched_and_results_sane(quick_run):
    c = quick_run.config
    for r in quick_run.results:
        res = r["result"]
        assert res["n_select"] == list(c.n_select)
        # greedy's per-layer weight counts are the budget every method gets; fractions follow from them
        for keep, frac in zip(res["keep"], res["kept_fraction"]):
            assert frac == pytest.approx(sum(keep) / res["n_weights"])
            assert 0 < frac <= 1
        # more greedy steps can only add distinct units
        assert all(b >= a for a, b in zip(res["kept_fraction"], res["kept_fraction"][1:]))
        for m in METHODS:
            assert all(0.0 <= e <= 1.0 for e in res[f"{m}_test_error"])
            assert all(math.isfinite(v) and v > 0 for v in res[f"{m}_test_loss"])
        assert len(res["greedy_loss_curve"]) == max(c.n_select)
        if r["trial"]["task"] == "planted":
            # labels are the planted target's argmax: the planted ticket is exact
            assert res["planted_test_error"] == 0.0
            for m in METHODS:
                assert all(0.0 <= o <= 1.0 for o in res[f"{m}_overlap"])
        else:
            assert res["planted_test_error"] is None
            assert all(o is None for m in METHODS for o in res[f"{m}_overlap"])


def test_search_beats_a_random_mask(quick_run):
    # at the largest budget, both optimisers beat a random mask of the same size on the planted task
    rows = [r for r in quick_run.rows if r["task"] == "planted"]
    last = max(rows, key=lambda r: r["n_select"])
    assert last["greedy_test_error_mean"] < last["random_test_error_mean"]
    assert last["edge_popup_test_error_mean"] < last["random_test_error_mean"]


def test_table_rows(quick_run):
    c = quick_run.config
    rows = quick_run.rows
    assert len(rows) == len(c.tasks) * len(c.n_select)
    assert {r["task"] for r in rows} == set(c.tasks)
    for r in rows:
        assert r["n_seeds"] == len(c.seeds)
        rec = [x for x in quick_run.results if x["trial"]["task"] == r["task"]]
        j = list(c.n_select).index(r["n_select"])
        for m in METHODS:
            mean = np.mean([x["result"][f"{m}_test_error"][j] for x in rec])
            assert r[f"{m}_test_error_mean"] == pytest.approx(mean)


def test_figure_content(quick_run):
    fig = quick_run.figure()
    ax_p, ax_m, ax_o, ax_g = fig.axes[:4]
    c = quick_run.config
    by_task = {t: [x for x in quick_run.results if x["trial"]["task"] == t] for t in c.tasks}
    for task, ax in (("planted", ax_p), ("digits", ax_m)):
        lines = ax.get_lines()
        labels = [ln.get_label() for ln in lines]
        assert labels[:3] == ["edge-popup", "greedy", "random"]
        x = 100.0 * np.mean([r["result"]["kept_fraction"] for r in by_task[task]], axis=0)
        for ln, m in zip(lines[:3], METHODS):
            np.testing.assert_allclose(ln.get_xdata(), x)
            y = np.mean([r["result"][f"{m}_test_error"] for r in by_task[task]], axis=0)
            np.testing.assert_allclose(ln.get_ydata(), y)
        if task == "planted":
            assert labels[3] == "planted ticket" and lines[3].get_ydata()[0] == 0.0
    for ln, m in zip(ax_o.get_lines()[:3], METHODS):
        y = np.mean([r["result"][f"{m}_overlap"] for r in by_task["planted"]], axis=0)
        np.testing.assert_allclose(ln.get_ydata(), y)
    assert len(ax_g.get_lines()) == 2 * len(c.tasks)  # greedy curve + O(1/n) reference per task
    n = np.arange(1, max(c.n_select) + 1)
    np.testing.assert_array_equal(ax_g.get_lines()[0].get_xdata(), n)


def test_quick_preset_is_above_chance_with_five_seeds(quick_run):
    """Issue 17: a quick preset that means something -- on every task, the best search method's mean test
    error at the largest budget is below chance by more than 3 standard errors; >= 5 seeds."""
    c = quick_run.config
    assert len(c.seeds) >= 5
    for r in quick_run.rows:
        if r["n_select"] != max(c.n_select):
            continue
        k = next(x["result"]["n_classes"] for x in quick_run.results if x["trial"]["task"] == r["task"])
        chance = 1.0 - 1.0 / k
        best = min(("edge_popup", "greedy"), key=lambda m: r[f"{m}_test_error_mean"])
        se = r[f"{best}_test_error_std"] / math.sqrt(r["n_seeds"])
        assert r[f"{best}_test_error_mean"] + 3 * se < chance, (r["task"], r[f"{best}_test_error_mean"], chance)


def test_caption_and_legends(quick_run):
    ns = ", ".join(f"{next(x['result']['n_train'] for x in quick_run.results if x['trial']['task'] == t)} "
                   f"({'planted ticket' if t == 'planted' else t})" for t in quick_run.config.tasks)
    quick_run.check_caption(n=ns, seeds=len(quick_run.config.seeds))
    quick_run.check_legends()


def test_config_validation():
    from prunebound.paper_repro import ticket_search as ts

    with pytest.raises(InvalidParameterError):
        ts.trials(ts.Config(tasks=("cifar",)))
    with pytest.raises(InvalidParameterError):
        ts.trials(ts.Config(n_select=(0, 4)))
    full = ts.Config.full()
    assert len(ts.trials(full)) == len(full.tasks) * len(full.seeds) == 10
