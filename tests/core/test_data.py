import gzip
import struct

import numpy as np
import pytest
import torch

from prunebound import data as D
from prunebound.errors import DataError, InvalidParameterError
from prunebound.network import mlp


def test_dataset_validation():
    with pytest.raises(DataError, match="empty"):
        D.Dataset(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="must match"):
        D.Dataset(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(DataError, match="NaN"):
        D.Dataset(torch.tensor([[float("nan")]]), torch.tensor([0]))
    with pytest.raises(DataError, match="integers"):
        D.Dataset(torch.zeros(2, 1), torch.tensor([0.5, 1.0]))


def test_sha256_changes_with_content():
    a = D.Dataset(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    b = D.Dataset(torch.zeros(3, 2), torch.tensor([0, 1, 1]))
    assert a.sha256 != b.sha256
    assert a.sha256 == D.Dataset(torch.zeros(3, 2), torch.tensor([0, 1, 0])).sha256


def test_teacher_reproducible_and_fresh():
    t = D.teacher_task(d_in=5, width=16, seed=3)
    a, b = t.sample(100, 1), t.sample(100, 1)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    c = t.sample(100, 2)
    assert not torch.equal(a.x, c.x)
    # both classes occur
    assert set(t.sample(2000, 0).y.tolist()) == {0, 1}


def test_teacher_true_risk_of_teacher_equals_noise():
    eta = 0.1
    t = D.teacher_task(d_in=5, width=16, label_noise=eta, seed=0)
    r = t.true_risk(t.teacher, n=100_000, seed=5)
    # binomial standard error sqrt(.1*.9/1e5) ~ 0.00095; 5 sigma
    assert abs(r - eta) < 5 * (eta * (1 - eta) / 1e5) ** 0.5
    assert D.teacher_task(d_in=5, width=16, seed=0).true_risk(t.teacher, n=20_000) == 0.0


def test_teacher_risk_matches_manual_estimate():
    t = D.teacher_task(d_in=4, width=8, seed=1)
    m = mlp(4, [3], 2, seed=0)
    g = torch.Generator().manual_seed(9)
    r1 = t.true_risk(m, n=30_000, seed=torch.Generator().manual_seed(9))
    d = t.sample(30_000, g)
    r2 = int((m(d.x).argmax(1) != d.y).sum()) / 30_000
    assert r1 == pytest.approx(r2, abs=1e-12)


def test_mnist1d_offline_and_rng_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    s = D.mnist1d(200, seed=0)
    after = np.random.get_state()[1]
    assert np.array_equal(before, after)
    assert s.train.x.shape == (160, 40) and len(s.test) == 40
    assert s.train.n_classes == 10
    s2 = D.mnist1d(200, seed=0)
    assert s.train.sha256 == s2.train.sha256


def test_digits():
    s = D.digits()
    assert s.train.x.shape[1] == 64 and len(s.train) + len(s.test) == 1797
    assert float(s.train.x.max()) <= 1.0


def _write_idx(path, arr, gz=False):
    hdr = bytes([0, 0, 8, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = hdr + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_load_mnist_idx(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 7), ("t10k", 3)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), gz=True)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    s = D.load_mnist(tmp_path)
    assert s.train.x.shape == (7, 784) and s.test.x.shape == (3, 784)
    assert float(s.train.x.max()) <= 1.0


def test_load_mnist_errors(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        D.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 4)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(1))
    with pytest.raises(DataError, match="train-images"):
        D.load_mnist(tmp_path)


def test_load_cifar10_binary(tmp_path):
    rng = np.random.default_rng(0)
    for nm in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.concatenate([rng.integers(0, 10, (2, 1)), rng.integers(0, 256, (2, 3072))], axis=1)
        (tmp_path / nm).write_bytes(rec.astype(np.uint8).tobytes())
    s = D.load_cifar10(tmp_path)
    assert s.train.x.shape == (10, 3, 32, 32) and len(s.test) == 2
    (tmp_path / "test_batch.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(DataError, match="multiple"):
        D.load_cifar10(tmp_path)


def test_resolve_specs():
    d = D.resolve("teacher:d=3,width=4,n=50,seed=2")
    assert d.x.shape == (50, 3) and d.spec == "teacher:d=3,width=4,n=50,seed=2"
    assert D.resolve("teacher:d=3,width=4,n=50,seed=2").sha256 == d.sha256
    with pytest.raises(InvalidParameterError, match="unknown data set"):
        D.resolve("imagenet")
