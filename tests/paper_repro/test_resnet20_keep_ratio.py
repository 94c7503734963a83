"""resnet20_keep_ratio: a tiny sweep through the whole pipeline (files, caption, protocol in the JSON, resume),
the shared retraining budget, and a science check on a small but learnable configuration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prunebound.errors import InvalidParameterError
from prunebound.paper_repro import get_experiment
from prunebound.sweep import read_results

EXPERIMENT = "resnet20_keep_ratio"


@pytest.fixture(scope="module")
def mod():
    return get_experiment(EXPERIMENT)


#: the quick preset shrunk to seconds: width 1, 128 samples, 1 epoch (the pipeline, not the science)
def _tiny(mod, **kw):
    base = dict(n_train=128, n_test=256, width=1, epochs=1, keep_ratios=(0.5, 0.05), retrain_epochs=2,
                imp_rounds=2, seeds=(0,))
    return mod.Config(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny(mod, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp(EXPERIMENT)
    cfg = _tiny(mod)
    results = mod.run(cfg, out, progress=False)
    files = mod.plot(results, out)
    return {"mod": mod, "cfg": cfg, "out": out, "results": results, "files": files,
            "json": json.loads((out / f"{EXPERIMENT}.json").read_text())}


@pytest.mark.slow
def test_tiny_sweep_files_rows_and_resume(tiny, monkeypatch):
    mod, cfg, out = tiny["mod"], tiny["cfg"], tiny["out"]
    assert sorted(p.name for p in tiny["files"]) == sorted(f"{EXPERIMENT}.{e}" for e in ("pdf", "png", "csv", "json"))
    assert (out / f"{EXPERIMENT}.png").read_bytes().startswith(b"\x89PNG")
    js = tiny["json"]
    assert set(js) == {"experiment", "caption", "protocol", "columns", "rows"} and js["experiment"] == EXPERIMENT
    assert {(r["method"], r["keep_ratio"]) for r in js["rows"]} == {(m, k) for m in cfg.methods
                                                                    for k in cfg.keep_ratios}
    # every method ran on the same dense network of the seed
    assert len({r["result"]["dense_test_error"] for r in tiny["results"]}) == 1
    for rec in tiny["results"]:
        res = rec["result"]
        if res["refused"]:  # a refusal names the error class and the reason; no numbers are invented
            assert "Error:" in res["refused"] and all(e is None for e in res["test_error"])
            continue
        assert all(0.0 <= e <= 1.0 for e in res["test_error"])
        if rec["trial"]["method"] in ("magnitude", "imp"):  # exact counts
            np.testing.assert_allclose(res["measured_keep_ratio"], cfg.keep_ratios, atol=2e-3)
    # resume: a rerun recomputes nothing
    monkeypatch.setattr(mod, "run_trial", lambda t: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = mod.run(cfg, out, progress=False)
    assert [r["result"] for r in again] == [r["result"] for r in read_results(out / "results.jsonl")]


@pytest.mark.slow
def test_caption_and_protocol_state_the_budget(tiny):
    cfg, js = tiny["cfg"], tiny["json"]
    cap = js["caption"]
    assert cap["n"] == cfg.n_train and cap["n_test"] == cfg.n_test and cap["seeds"] == 1
    assert cap["bands"] is None  # one seed: no band is drawn, and the caption does not claim one
    assert js["protocol"] == cap["protocols"] and len(js["protocol"]) == 1
    p = js["protocol"][0]
    assert p["retrain_epochs"] == cfg.retrain_epochs and p["retrain_lr"] == cfg.retrain_lr
    assert f"{cfg.imp_rounds} prune/retrain rounds" in p["text"]
    assert "ResNet-20" in cap["text"] and "3x32x32" in cap["text"] and "fresh samples" in cap["text"]
    assert f"inputs upsampled {cfg.upsample}x" in cap["text"]  # the task's difficulty is stated
    assert "Reduced from the paper's setting" in cap["text"]
    fig = tiny["mod"].figure(tiny["results"])
    from prunebound.plotting import CAPTION_GID, legend_overlaps

    texts = [t.get_text() for t in fig.texts if t.get_gid() == CAPTION_GID]
    assert len(texts) == 1 and texts[0].split() == cap["text"].split()
    assert legend_overlaps(fig) == []


def test_every_method_gets_the_same_retraining_epochs(mod, monkeypatch):
    """Count the epochs each method trains after the dense network: one-shot methods R epochs in one call,
    IMP R / rounds epochs in each of its rounds (the same total)."""
    import prunebound.train as train_mod

    calls: list[int] = []
    real_fit = train_mod.fit

    def spy(module, data, *, epochs=10, **kw):
        calls.append(int(epochs))
        return real_fit(module, data, epochs=epochs, **kw)

    cfg = _tiny(mod, retrain_epochs=4, imp_rounds=2, keep_ratios=(0.5,), n_train=32, n_test=32)
    t = {m: tr for tr in mod.trials(cfg) for m in [tr["method"]]}
    train = mod._train_data(t["magnitude"])
    mod.dense_model(t["magnitude"])  # the dense network's training is not counted
    monkeypatch.setattr(train_mod, "fit", spy)
    for method in ("magnitude", "imp", "pfp"):
        calls.clear()
        mod.prune_and_retrain(t[method], 0.5, train)
        assert sum(calls) == cfg.retrain_epochs, (method, calls)
    calls.clear()
    mod.prune_and_retrain(t["imp"], 0.5, train)
    assert calls == [2, 2]


def test_config_validation(mod):
    with pytest.raises(InvalidParameterError, match="method"):
        mod.trials(mod.Config(methods=("magnitude", "obd")))
    with pytest.raises(InvalidParameterError, match="keep_ratios"):
        mod.trials(mod.Config(keep_ratios=(0.0,)))
    with pytest.raises(InvalidParameterError, match="upsample"):
        mod.trials(mod.Config(upsample=0))
    with pytest.raises(InvalidParameterError, match="multiple of imp_rounds"):
        mod.trials(mod.Config(retrain_epochs=3, imp_rounds=2))
    q, f = mod.Config.quick(), mod.Config.full()
    # the quick preset's task is easier (smoother inputs) than the full preset's, which keeps the harder default
    assert q.upsample == 16 and f.upsample == 4
    assert f.width == 16 and f.n_classes == 10 and len(f.seeds) >= 5 and f.n_train == 50_000
    assert set(q.methods) == set(f.methods) == {"magnitude", "imp", "pfp", "sipp"}
    assert len(mod.trials(q)) == len(q.methods) * len(q.seeds)


@pytest.mark.heavy
def test_science_dense_well_above_chance_and_heavy_pruning_hurts(mod, tmp_path):
    """The quick preset's setting, magnitude pruning only: the dense network's error on fresh samples is at most
    0.25 (chance: 0.5; the quick preset measured 0.185 for seed 0, so a regression to the old, barely-learnable
    task (0.437) fails), keeping 50 % of the weights costs at most 0.03 over the dense error after the shared
    retraining budget, and keeping 5 % is worse than keeping 50 % by more than 0.02 (binomial s.e. of one cell
    on 5,000 fresh samples: <= 0.007)."""
    import dataclasses

    torch.set_num_threads(1)
    cfg = dataclasses.replace(mod.Config.quick(), methods=("magnitude",), keep_ratios=(0.5, 0.05))
    res = mod.run(cfg, tmp_path, progress=False)[0]["result"]
    dense = res["dense_test_error"]
    assert dense <= 0.25, dense
    e50, e05 = res["test_error"]
    assert e50 <= dense + 0.03, (e50, dense)
    assert e50 + 0.02 < e05, (e50, e05)
