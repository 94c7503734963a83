"""APoZ: scores equal an independent count of zero ReLU outputs; the highest-APoZ units are trimmed."""

import torch

from prunebound.network import Network, conv1d_small
from prunebound.pruning import apoz, apoz_scores


def test_scores_match_manual_count(trained_mlp, train_data):
    x = train_data.x
    s = apoz_scores(Network.from_module(trained_mlp), x)
    with torch.no_grad():
        h1 = torch.relu(trained_mlp[0](x))
        h2 = torch.relu(trained_mlp[2](h1))
    assert torch.allclose(s[0], (h1 == 0).double().mean(0))
    assert torch.allclose(s[1], (h2 == 0).double().mean(0))
    assert set(s) == {0, 1}


def test_conv_scores_average_positions(mnist1d_small):
    d = mnist1d_small
    m = conv1d_small(channels=4, seed=0)
    s = apoz_scores(Network.from_module(m), d.x)
    with torch.no_grad():
        a = torch.relu(m[1](m[0](d.x)))  # (N, C, L)
    assert torch.allclose(s[0], (a == 0).double().mean((0, 2)))


def test_trims_highest_apoz_units(trained_mlp, train_data):
    rep = apoz(trained_mlp, train_data, sparsity=0.25, epochs=0, n_eval=None)
    s = apoz_scores(Network.from_module(trained_mlp), train_data.x)
    for i, path, nxt in ((0, "0", 2), (1, "2", 4)):
        removed = rep.info["removed_units"][path]
        n = s[i].numel()
        assert len(removed) == round(0.25 * n)
        kept = [u for u in range(n) if u not in removed]
        assert s[i][removed].min() >= s[i][kept].max()
        lay = int(path)
        assert bool((rep.module[lay].weight[removed] == 0).all())
        assert bool((rep.module[nxt].weight[:, removed] == 0).all())
    assert rep.unit == "neuron"


def test_retraining_warm_start_keeps_trim(trained_mlp, train_data):
    rep = apoz(trained_mlp, train_data, sparsity=0.5, epochs=2, iterations=2)
    for path, rem in rep.info["removed_units"].items():
        if path in ("0", "2"):
            n = dict(rep.module.named_modules())[path].weight.shape[0]
            assert len(rem) == round(0.5 * n)
    assert "warm start" in rep.retrained
