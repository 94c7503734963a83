"""Srinivas & Babu: merging duplicated neurons is exact; the lowest-saliency pair is merged; data-free."""

import torch

from prunebound.network import mlp
from prunebound.pruning import neuron_merging


def _dup(seed=0, i=2, j=5):
    m = mlp(10, [8], 3, seed=seed)
    with torch.no_grad():
        m[0].weight[j] = m[0].weight[i]
        m[0].bias[j] = m[0].bias[i]
    return m


def test_merging_duplicates_is_exact():
    m = _dup()
    x = torch.randn(500, 10, generator=torch.Generator().manual_seed(0))
    rep = neuron_merging(m, None, sparsity=1 / 8)
    assert rep.info["merged_pairs"]["0"] in ([[2, 5]], [[5, 2]])
    with torch.no_grad():
        assert torch.allclose(rep.module(x), m(x), atol=1e-6, rtol=0)
    # the survivor carries both outgoing weight columns
    i, j = rep.info["merged_pairs"]["0"][0]
    assert torch.allclose(rep.module[2].weight[:, i], m[2].weight[:, i] + m[2].weight[:, j])
    assert bool((rep.module[2].weight[:, j] == 0).all()) and bool((rep.module[0].weight[j] == 0).all())


def test_lowest_saliency_pair_chosen():
    m = mlp(10, [6], 3, seed=1)
    rep = neuron_merging(m, sparsity=1 / 6)
    w = torch.cat([m[0].weight, m[0].bias[:, None]], 1).detach().double()
    a2 = (m[2].weight.detach().double() ** 2).mean(0)
    best, arg = float("inf"), None
    for i in range(6):  # brute force over all ordered pairs
        for j in range(6):
            if i != j:
                s = float(((w[i] - w[j]) ** 2).sum() * a2[j])
                if s < best:
                    best, arg = s, [i, j]
    assert rep.info["merged_pairs"]["0"] == [arg]


def test_approximation_degrades_gracefully():
    m = _dup()
    x = torch.randn(500, 10, generator=torch.Generator().manual_seed(0))
    errs = []
    for s in (1 / 8, 2 / 8, 4 / 8):
        rep = neuron_merging(m, sparsity=s)
        assert len(rep.info["removed_units"]["0"]) == round(8 * s)
        with torch.no_grad():
            errs.append(float((rep.module(x) - m(x)).abs().mean()))
    assert errs[0] < 1e-6 < errs[2]
