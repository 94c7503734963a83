"""``prunebound info``: footprint lines (parameters, non-zeros, bytes, FLOPs dense/effective/compacted, latency)
and one-line user errors (exit 2) when the input shape cannot be known or does not fit."""

import re

import pytest
import torch

from prunebound.cli import main
from prunebound.compact import compact
from prunebound.io import load_model, save_model
from prunebound.network import lenet5

SPEC = "teacher:d=6,width=16,n=200,seed=0"


@pytest.fixture
def mlp_file(tmp_path):
    p = tmp_path / "m.pt"
    assert main(["train", "--arch", "mlp:6,32,2", "--data", SPEC, "--epochs", "1", "--out", str(p)]) == 0
    return p


def _num(out: str, pattern: str) -> float:
    m = re.search(pattern, out)
    assert m, (pattern, out)
    return float(m.group(1))


def test_info_shows_compacted_numbers_of_a_structured_pruned_model(mlp_file, tmp_path, capsys):
    pruned = tmp_path / "p.pt"
    assert main(["prune", str(mlp_file), "--method", "neuron_merging", "--sparsity", "0.5", "--out",
                 str(pruned)]) == 0
    capsys.readouterr()
    assert main(["info", str(pruned), "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    params = _num(out, r"parameters +(\d+) \(")
    after = _num(out, r"; (\d+) after compaction")
    dense = _num(out, r"FLOPs +(\d+) dense")
    compacted = _num(out, r"(\d+) compacted \(dead")
    assert params == 6 * 32 + 32 + 32 * 2 + 2
    m = load_model(pruned)
    small, rep = compact(m, torch.randn(2, 6))
    assert after == rep.parameters_after < params  # 16 of 32 hidden units merged away
    assert compacted == 2 * (6 * 16 + 16 * 2) < dense == 2 * (6 * 32 + 32 * 2)
    assert "ms compacted" in out


def test_info_conv_model_needs_an_input_shape(tmp_path, capsys):
    p = tmp_path / "lenet.pt"
    save_model(lenet5(seed=0), p)
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunebound: error:") and "--input-shape" in err[0]
    assert main(["info", str(p), "--input-shape", "1,28,28", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert _num(out, r"FLOPs +(\d+) dense") > 0
    for bad in ("1,27", "a,b", "0,28,28"):
        assert main(["info", str(p), "--input-shape", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("prunebound: error:"), err
