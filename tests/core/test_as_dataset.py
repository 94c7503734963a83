"""Data as (x, y) tensors or a DataLoader is accepted wherever a Dataset is (prunebound.data.as_dataset)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from prunebound.data import Dataset, as_dataset
from prunebound.errors import DataError
from prunebound.network import mlp


def _xy(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_pair_loader_and_dataset_give_the_same_data():
    x, y = _xy()
    ds = Dataset(x, y)
    assert as_dataset(ds) is ds
    a = as_dataset((x, y))
    b = as_dataset(DataLoader(TensorDataset(x, y), batch_size=7, shuffle=False))
    c = as_dataset((x.numpy(), y.numpy().astype(np.int32)))
    for d in (a, b, c):
        assert d.sha256 == ds.sha256 and d.n_classes == 3


@pytest.mark.parametrize("bad", [42, "data.csv", (torch.randn(3, 2),), {"x": 1},
                                 (torch.randn(3, 2), torch.tensor([0.5, 1, 2])),
                                 DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)])
def test_bad_data_is_a_data_error(bad):
    with pytest.raises(DataError):
        as_dataset(bad)


def test_methods_accept_pairs_and_loaders():
    from prunebound.bounds.certify import certify
    from prunebound.certificate import verify
    from prunebound.coresets import prune as coreset_prune
    from prunebound.pruning import REGISTRY

    x, y = _xy(60)
    m = mlp(6, [10], 3, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    c1 = certify(m, Dataset(x, y), method="occam", delta=0.05)
    c2 = certify(m, (x, y), method="occam", delta=0.05)
    c3 = certify(m, loader, method="occam", delta=0.05)
    assert c1.value == c2.value == c3.value and c1.data_sha256 == c3.data_sha256
    assert verify(c2, m, loader).ok
    snip = REGISTRY["snip"]
    r1 = snip(m, sparsity=0.5, data=Dataset(x, y), seed=0)
    r2 = snip(m, sparsity=0.5, data=loader, seed=0)
    w1 = [p for n, p in r1.module.named_buffers() if n.endswith("weight_mask")]
    w2 = [p for n, p in r2.module.named_buffers() if n.endswith("weight_mask")]
    assert all(torch.equal(a, b) for a, b in zip(w1, w2))
    pa, _ = coreset_prune(m, (x, y), method="corenet", keep_ratio=0.5, seed=0)
    pb, _ = coreset_prune(m, x, method="corenet", keep_ratio=0.5, seed=0)
    torch.testing.assert_close(pa(x), pb(x))
