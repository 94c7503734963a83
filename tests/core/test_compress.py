"""prunebound.compress: the grid pipeline (subspace and prune -> quantize), union bound, resume, CLI."""

import json
import math

import pytest
import torch

from prunebound import compress as C
from prunebound import network as N
from prunebound.bounds import certify
from prunebound.bounds.subspace import subspace_bound
from prunebound.certificate import Certificate, verify
from prunebound.cli import main
from prunebound.data import teacher_task
from prunebound.errors import InvalidParameterError, UnsafeOutputError
from prunebound.io import load_model
from prunebound.sweep import read_results
from prunebound.train import fit

GRID = [(6, 4, 0.1), (12, 4, 0.1), (12, 4, 0.03)]


@pytest.fixture(scope="module")
def task():
    return teacher_task(d_in=5, width=16, seed=0)


@pytest.fixture(scope="module")
def train(task):
    return task.sample(1500, 1)


@pytest.fixture(scope="module")
def test_set(task):
    return task.sample(2000, 2)


def _run(out, train, test_set=None, **kw):
    kw.setdefault("grid", GRID)
    kw.setdefault("epochs", 3)
    kw.setdefault("qat_epochs", 1)
    return C.compress(N.mlp(5, [16], 2, seed=0), train, out=out, test=test_set, progress=False, quiet=True, **kw)


def test_subspace_grid_pays_for_every_point_and_verifies(tmp_path, train, test_set):
    r = _run(tmp_path / "run", train, test_set)
    cert = r.certificate
    assert cert.kind == "subspace" and cert.delta == 0.05
    assert cert.params["grid"] == [list(g) for g in GRID] and cert.parts["grid_size"] == 3
    # the reported bound is the Occam bound with log2|grid| bits paid, recomputed independently here
    emp, bits = cert.empirical, cert.parts["message_bits"]
    assert cert.value == pytest.approx(subspace_bound(emp, len(train), int(bits), delta=0.05, grid_size=3).value)
    assert cert.value == min(rec["bound"] for rec in r.records)
    assert "w.p. >= 0.95 overall, best of 3 grid points" in cert.summary()
    assert verify(cert, r.model, train).ok
    for f in ("model.pt", "certificate.json", "grid.csv", "bound_vs_error.png", "bound_vs_error.pdf",
              "summary.json", "results.jsonl"):
        assert (tmp_path / "run" / f).stat().st_size > 0
    assert len((tmp_path / "run" / "grid.csv").read_text().strip().splitlines()) == 4
    assert all(rec["test_error"] is not None for rec in r.records)
    saved = Certificate.load(tmp_path / "run" / "certificate.json")
    assert verify(saved, load_model(tmp_path / "run" / "model.pt"), train).ok


def test_killed_run_resumes_without_redoing_points_and_gives_the_same_certificate(tmp_path, train, monkeypatch):
    first = _run(tmp_path / "a", train)
    path = tmp_path / "a" / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    # a kill after the first point: one complete record and half of the next one
    path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    calls = []
    import prunebound.bounds.subspace as S

    orig = S.train_point

    def counting(*a, **k):
        calls.append((k["d"], k["levels"], k["lr"]))
        return orig(*a, **k)

    monkeypatch.setattr(S, "train_point", counting)
    again = _run(tmp_path / "a", train)
    done_first = json.loads(lines[0])["trial"]
    assert len(calls) == 2 and (done_first["d"], done_first["levels"], done_first["lr"]) not in calls
    assert again.certificate.value == first.certificate.value
    assert again.certificate.params == first.certificate.params
    assert again.certificate.model_sha256 == first.certificate.model_sha256
    assert len(read_results(path)) == 3
    calls.clear()
    _run(tmp_path / "a", train)  # everything done: nothing is retrained
    assert calls == []


def test_data_dependent_prior_records_the_split_and_checks_the_prior(tmp_path, train):
    r = _run(tmp_path / "p", train, prior_fraction=0.5, prior_epochs=3)
    c = r.certificate
    assert c.params["prior_fraction"] == 0.5 and c.params["split_seed"] == 0
    assert c.params["prior_threads"] == 1 and len(c.params["prior_sha256"]) == 64
    assert c.parts["n_bound"] == len(train) - round(0.5 * len(train))
    assert "data-dependent prior" in c.note
    assert verify(c, r.model, train).ok  # retrains the prior on the recorded split and checks its hash
    forged = Certificate.from_dict({**c.to_dict(), "params": {**c.params, "prior_sha256": "0" * 64}})
    rep = verify(forged, r.model, train)
    assert not rep.ok and any("did not reproduce" in d for d in rep.differences)


def test_pruning_pipeline_certifies_best_point_at_delta_over_grid(tmp_path, train, test_set):
    m = N.mlp(5, [32], 2, seed=0)
    fit(m, train, epochs=5, lr=0.01, optimizer="adam")
    grid = [(0.5, 3), (0.8, 4)]
    r = C.compress(m, train, out=tmp_path / "o", method="occam", test=test_set, grid=grid, finetune_epochs=1,
                   progress=False, quiet=True)
    c = r.certificate
    assert c.kind == "grid_best" and c.delta == 0.05
    assert c.parts["delta_each"] == pytest.approx(0.025) and c.parts["grid_size"] == 2
    assert c.params["grid"] == [{"sparsity": 0.5, "bits": 3}, {"sparsity": 0.8, "bits": 4}]
    inner = certify(r.model, train, method="occam", delta=0.025)
    assert c.value == inner.value and c.value == min(rec["bound"] for rec in r.records)
    assert c.value > certify(r.model, train, method="occam", delta=0.05).value  # paying costs something
    assert verify(c, r.model, train).ok
    assert "w.p. >= 0.95 overall, best of 2 grid points" in c.summary()
    assert (tmp_path / "o" / "points").is_dir() and len(list((tmp_path / "o" / "points").iterdir())) == 2


def test_unpaid_grid_is_labelled_invalid(tmp_path, train):
    r = _run(tmp_path / "u", train, pay_for_grid=False)
    assert "INVALID" in r.certificate.note and r.certificate.parts["grid_size"] == 1


def test_bad_input_is_refused(tmp_path, train):
    with pytest.raises(InvalidParameterError, match="method"):
        _run(tmp_path / "x", train, method="magic")
    with pytest.raises(InvalidParameterError, match="triples"):
        _run(tmp_path / "x", train, grid=[(6, 4)])
    with pytest.raises(InvalidParameterError, match="prior-fraction"):
        C.compress(N.mlp(5, [16], 2, seed=0), train, out=tmp_path / "y", method="occam", prior_fraction=0.3,
                   progress=False, quiet=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafeOutputError, match="not a folder"):
        _run(tmp_path / "file", train)


SPEC = "teacher:d=5,width=16,n=1500,seed=0"


def test_cli_compress_then_verify(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--threads", "1", "compress", "--arch", "mlp:5,16,2", "--data", SPEC, "--out", str(out),
                 "--grid-d", "6,12", "--grid-levels", "4", "--grid-lr", "0.1", "--epochs", "3",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("[compress] d=") == 2 and "w.p. >= 0.95 overall, best of 2 grid points" in printed
    assert main(["verify", str(out / "certificate.json"), "--model", str(out / "model.pt")]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["compress", "--method", "occam", "--data", SPEC, "--out", str(out)]) == 2
    assert "needs --model" in capsys.readouterr().err


def test_readme_pipeline_train_prune_quantize_certify_is_not_trivial(tmp_path, capsys):
    spec = "teacher:d=5,width=16,n=4000,seed=0"
    m, p, q, c = (str(tmp_path / f) for f in ("m.pt", "p.pt", "q.pt", "c.json"))
    assert main(["train", "--arch", "mlp:5,32,2", "--data", spec, "--epochs", "10", "--out", m]) == 0
    assert main(["prune", m, "--method", "magnitude", "--sparsity", "0.8", "--data", spec, "--out", p]) == 0
    certify_pruned = main(["certify", p, "--data", spec, "--method", "occam", "--out", c])
    assert certify_pruned == 0
    unquantized = json.loads((tmp_path / "c.json").read_text())["value"]
    assert main(["quantize", p, "--bits", "4", "--data", spec, "--out", q]) == 0
    assert "exact code" in capsys.readouterr().out
    assert main(["certify", q, "--data", spec, "--method", "occam", "--out", c]) == 0
    value = json.loads((tmp_path / "c.json").read_text())["value"]
    assert value < 0.5 < unquantized or value < unquantized - 0.2
    assert main(["verify", c, "--model", q]) == 0
    qm = load_model(q)
    for ly in N.Network.from_module(qm).layers:
        nz = ly.weight[ly.weight != 0]
        assert torch.unique(nz).numel() <= 16
    assert not math.isnan(value)


def test_subspace_grid_on_a_class_model_saves_and_verifies(tmp_path):
    from prunebound.conformance import ResidualMLP

    data = teacher_task(d_in=8, width=8, n_classes=3, seed=0).sample(300, 1)
    r = C.compress(ResidualMLP(), data, out=tmp_path / "run", grid=[(6, 4, 0.1), (12, 4, 0.1)], epochs=2,
                   qat_epochs=1, progress=False, quiet=True)
    assert isinstance(r.model, ResidualMLP)
    assert r.certificate.params["init"] == "reset_parameters"
    assert verify(r.certificate, r.model, data).ok
    # reloaded into the user's class, the saved model still verifies
    m = load_model(tmp_path / "run" / "model.pt", module=ResidualMLP())
    assert verify(Certificate.load(tmp_path / "run" / "certificate.json"), m, data).ok
