import json

import pytest
import torch

from prunebound import network as N
from prunebound.cli import main
from prunebound.io import load_model, save_model

SPEC = "teacher:d=6,width=16,n=400,seed=0"


@pytest.fixture
def model_file(tmp_path):
    p = tmp_path / "m.pt"
    assert main(["train", "--arch", "mlp:6,32,2", "--data", SPEC, "--epochs", "5", "--out", str(p)]) == 0
    return p


def test_info(model_file, capsys):
    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "2 weighted layers" in out and str(6 * 32 + 32 + 32 * 2 + 2) in out


def test_prune_certify_verify(model_file, tmp_path, capsys):
    pruned = tmp_path / "p.pt"
    assert main(["prune", str(model_file), "--method", "magnitude", "--sparsity", "0.75", "--data", SPEC,
                 "--out", str(pruned)]) == 0
    m = load_model(pruned)
    assert N.sparsity(m).total == pytest.approx(0.75, abs=1.0 / 64)
    cert = tmp_path / "c.json"
    assert main(["certify", str(pruned), "--data", SPEC, "--method", "pac_bayes_gaussian", "--delta", "0.1",
                 "--out", str(cert)]) == 0
    d = json.loads(cert.read_text())
    assert d["kind"] == "pac_bayes_gaussian" and 0 < d["value"] <= 1 and d["data_spec"] == SPEC
    capsys.readouterr()
    assert main(["verify", str(cert), "--model", str(pruned)]) == 0
    assert "OK" in capsys.readouterr().out
    # a different model must not verify
    with torch.no_grad():
        m[0].bias += 0.01
    other = save_model(m, tmp_path / "other.pt")
    assert main(["verify", str(cert), "--model", str(other)]) == 1
    assert "model sha256 differs" in capsys.readouterr().out


def test_errors_exit_2(model_file, capsys):
    assert main(["prune", str(model_file), "--method", "nope", "--sparsity", "0.5", "--out", "x.pt"]) == 2
    assert "unknown pruning method" in capsys.readouterr().err
    assert main(["certify", str(model_file), "--data", SPEC, "--delta", "1.5"]) == 2
    assert main(["certify", str(model_file), "--data", "teacher:d=7,n=10"]) == 2


def test_repro_list(capsys):
    assert main(["repro", "list"]) == 0
    names = capsys.readouterr().out.split()
    assert "lueker_subset_sum" in names and len(names) >= 7


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    for f in ("certificate.json", "model.pt", "grid.csv", "bound_vs_error.png", "bound_vs_error.pdf"):
        assert (out / f).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "with probability >= 0.95 (over the 2 grid points tried)" in printed
    assert main(["verify", str(out / "certificate.json"), "--model", str(out / "model.pt")]) == 0
    rows = (out / "grid.csv").read_text().strip().splitlines()
    assert len(rows) == 3


def test_data_limits_and_help(model_file, capsys):
    big = "teacher:d=6,width=16,n=1500,seed=0"
    assert main(["certify", str(model_file), "--data", big, "--max-n", "1000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_n" in err and "--max-n" in err
    assert main(["certify", str(model_file), "--data", big, "--max-n", "2000"]) == 0
    assert main(["--help"]) == 0
    assert main(["certify", "--help"]) == 0


def test_declared_bits_flagged_in_output(model_file, tmp_path, capsys):
    assert main(["certify", str(model_file), "--data", SPEC, "--param", "bits=100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("UNVERIFIABLE") and "occam_declared_bits" in out
