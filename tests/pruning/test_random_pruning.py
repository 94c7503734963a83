import torch

from prunebound.network import masks_of
from prunebound.pruning import random_pruning


def test_random_is_seeded_and_exact(trained_mlp):
    a = random_pruning(trained_mlp, sparsity=0.75, seed=1)
    b = random_pruning(trained_mlp, sparsity=0.75, seed=1)
    c = random_pruning(trained_mlp, sparsity=0.75, seed=2)
    ma, mb, mc = masks_of(a.module), masks_of(b.module), masks_of(c.module)
    assert all(torch.equal(ma[p], mb[p]) for p in ma)
    assert any(not torch.equal(ma[p], mc[p]) for p in ma)
    for m in ma.values():
        assert int((m == 0).sum()) == round(0.75 * m.numel())
