"""The experiment registry, run_experiment/make_figures, config validation and the Dask backend end to end."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro import EXPERIMENTS, get_experiment, list_experiments, make_figures, run_experiment
from prunebound.sweep import read_results


def test_every_listed_experiment_has_the_module_contract():
    names = list_experiments()
    assert "pruning_vs_sparsity" in names and set(names) <= set(EXPERIMENTS)
    for name in names:
        mod = get_experiment(name)
        assert mod.NAME == name and mod.TITLE
        for attr in ("Config", "trials", "run_trial", "run", "table", "caption", "figure", "plot"):
            assert callable(getattr(mod, attr)), (name, attr)
        q, f = mod.Config.quick(), mod.Config.full()
        assert isinstance(q, mod.Config) and isinstance(f, mod.Config)
        tq, tf = mod.trials(q), mod.trials(f)
        assert 0 < len(tq) <= len(tf)
        json.dumps(tq)  # trials are JSON
        assert json.loads(json.dumps(q.to_dict())) == q.to_dict()
        assert {fl.name for fl in fields(q)} == set(q.to_dict())
        # bands over seeds need enough seeds to mean something: one seed (no band) or at least five
        for preset in (q, f):
            seeds = getattr(preset, "seeds", (0,))
            assert len(seeds) == 1 or len(seeds) >= 5, (name, seeds)


def test_unknown_experiment_and_preset():
    with pytest.raises(InvalidParameterError, match="unknown experiment"):
        get_experiment("nope")
    with pytest.raises(InvalidParameterError, match="preset"):
        run_experiment("pruning_vs_sparsity", "medium")


def test_config_validation():
    mod = get_experiment("pruning_vs_sparsity")
    with pytest.raises(InvalidParameterError, match="method"):
        mod.trials(mod.Config(methods=("bogus",)))
    with pytest.raises(InvalidParameterError, match="sparsities"):
        mod.trials(mod.Config(sparsities=(1.0,)))
    with pytest.raises(InvalidParameterError, match="empty"):
        mod.trials(mod.Config(seeds=()))


@pytest.mark.slow
def test_tiny_sweep_on_dask_equals_local_and_make_figures(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    mod = get_experiment("pruning_vs_sparsity")
    cfg = mod.Config(sparsities=(0.0, 0.9), methods=("magnitude_global", "random"), seeds=(0,), epochs=3)
    local = mod.run(cfg, tmp_path / "local", progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask = mod.run(cfg, tmp_path / "dask", backend="dask", scheduler=client, progress=False)
    def det(r):  # measured CPU latency is the one field that is not reproducible
        return {k: v for k, v in r["result"].items() if not k.startswith("latency")}

    assert [det(r) for r in dask] == [det(r) for r in local]
    # make_figures runs the quick preset in work_dir/NAME; with finished results there it only plots
    monkeypatch.setattr(mod.Config, "quick", classmethod(lambda cls: cfg))
    monkeypatch.setattr(mod, "run_trial", _never)
    (tmp_path / "work").mkdir()
    (tmp_path / "local").rename(tmp_path / "work" / "pruning_vs_sparsity")
    out = make_figures(tmp_path / "figs", names=["pruning_vs_sparsity"], work_dir=tmp_path / "work")
    png = out["pruning_vs_sparsity"]
    assert png == tmp_path / "figs" / "pruning_vs_sparsity.png" and png.read_bytes().startswith(b"\x89PNG")
    assert len(read_results(tmp_path / "work" / "pruning_vs_sparsity" / "results.jsonl")) == len(local)


def _never(t):
    raise AssertionError("make_figures recomputed a finished trial")
