"""SNIP: scores equal |g * w| / sum computed independently; kept connections are the top scores."""

import torch
import torch.nn.functional as F

from prunebound.network import Network, masks_of, mlp
from prunebound.pruning import snip, snip_scores


def test_scores_equal_abs_grad_times_weight(train_data):
    m = mlp(10, [32, 16], 3, seed=4)
    x, y = train_data.x[:50], train_data.y[:50]
    scores = snip_scores(Network.from_module(m), x, y)
    m.zero_grad()
    F.cross_entropy(m(x), y).backward()
    raw = [(m[i].weight.grad * m[i].weight).abs().detach() for i in (0, 2, 4)]
    tot = sum(r.sum() for r in raw)
    for s, r in zip(scores, raw):
        assert torch.allclose(s, r / tot, rtol=1e-5, atol=1e-12)
    assert abs(float(sum(s.sum() for s in scores)) - 1.0) < 1e-5


def test_snip_keeps_top_kappa(train_data):
    m = mlp(10, [32, 16], 3, seed=4)
    rep = snip(m, train_data, sparsity=0.8, batch_size=64, seed=3)
    g = torch.Generator().manual_seed(3)
    idx = torch.randperm(len(train_data), generator=g)[:64]
    s = torch.cat(
        [t.reshape(-1) for t in snip_scores(Network.from_module(m), train_data.x[idx], train_data.y[idx])]
    )
    mk = torch.cat([t.reshape(-1) for t in masks_of(rep.module).values()])
    kappa = mk.numel() - round(0.8 * mk.numel())
    assert int(mk.sum()) == kappa
    assert s[mk == 0].max() <= s[mk == 1].min()
    # at initialisation: surviving weights are the original init values
    for i in (0, 2, 4):
        assert torch.equal(rep.module[i].weight_orig, m[i].weight)


def test_snip_then_training(train_data):
    m = mlp(10, [32, 16], 3, seed=4)
    rep = snip(m, train_data, sparsity=0.5, epochs=2)
    assert rep.retrained is not None
    for p, t in masks_of(rep.module).items():
        assert bool((dict(rep.module.named_modules())[p].weight[t == 0] == 0).all())
