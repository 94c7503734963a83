"""RigL: sparsity constant through training, connections actually swapped, cosine schedule, ERK budget."""

import math

import pytest
import torch

from prunebound.network import Network, masks_of, mlp
from prunebound.pruning import cosine_update_fraction, erk_densities, rigl


def test_sparsity_constant_over_training(train_data):
    m = mlp(10, [32, 16], 3, seed=2)
    rep = rigl(m, train_data, sparsity=0.8, epochs=3, delta_t=2, batch_size=32)
    hist = rep.info["history"]
    assert len(hist) >= 5
    expected = [n - round(0.8 * n) for n in (320, 512, 48)]
    for h in hist:
        assert h["active"] == expected
    assert sum(sum(h["swapped"]) for h in hist) > 0
    final = masks_of(rep.module)
    assert [int(v.sum()) for v in final.values()] == expected
    # pruned weights are exactly zero in the trained model
    for i in (0, 2, 4):
        assert bool((rep.module[i].weight[final[str(i)] == 0] == 0).all())


def test_update_drops_smallest_and_grows_largest_gradient(train_data):
    from prunebound.pruning.rigl import _update

    m = mlp(10, [8], 3, seed=1)
    rep = rigl(m, train_data, sparsity=0.5, epochs=0)
    net = Network.from_module(rep.module)
    opt = torch.optim.SGD(rep.module.parameters(), lr=0.1)
    before = {p: t.clone() for p, t in masks_of(net).items()}
    w_before = [ly.module.weight_orig.detach().clone() for ly in net.layers]
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(ly.weight.shape, generator=g) for ly in net.layers]
    out = _update(net, grads, 0.25, 1, opt)
    after = masks_of(net)
    for ly, wb, gr in zip(net.layers, w_before, grads):
        mb, ma = before[ly.path], after[ly.path]
        k = round(0.25 * int(mb.sum()))
        dropped = (mb == 1) & (ma == 0)
        grown = (mb == 0) & (ma == 1)
        assert int(dropped.sum()) <= k and int(ma.sum()) == int(mb.sum())
        if dropped.any():  # dropped = smallest-magnitude actives among the k chosen
            kept_old = (mb == 1) & (ma == 1)
            assert wb.abs()[dropped].max() <= wb.abs()[kept_old].max()
        if grown.any():
            assert bool((ly.module.weight_orig.detach()[grown] == 0).all())
            inactive_now = ma == 0
            assert gr.abs()[grown].min() >= gr.abs()[inactive_now].max()
    assert out["active"] == [int(v.sum()) for v in after.values()]


def test_cosine_schedule():
    assert cosine_update_fraction(0, alpha=0.3, t_end=100) == pytest.approx(0.3)
    assert cosine_update_fraction(50, alpha=0.3, t_end=100) == pytest.approx(0.15)
    assert cosine_update_fraction(25, alpha=0.3, t_end=100) == pytest.approx(
        0.15 * (1 + math.cos(math.pi / 4))
    )
    assert cosine_update_fraction(100, alpha=0.3, t_end=100) == 0.0


def test_erk_budget_and_ordering():
    net = Network.from_module(mlp(10, [300, 100], 3, seed=0))
    d = erk_densities(net, 0.9)
    n = [ly.n_weights for ly in net.layers]
    assert sum(di * ni for di, ni in zip(d, n)) == pytest.approx(0.1 * sum(n))
    assert all(0 < di <= 1 for di in d)
    assert d[1] < d[0]  # the big 300x100 layer is the sparsest
    rep = rigl(mlp(10, [300, 100], 3, seed=0), _tiny_data(), sparsity=0.9, epochs=0, distribution="erk")
    assert abs(rep.total - 0.9) * sum(n) <= 3


def _tiny_data():
    from prunebound.data import teacher_task

    return teacher_task(10, 8, 3, seed=0).sample(32, 0)


def test_erk_conv_uses_kernel_dimensions():
    from prunebound.network import conv1d_small

    net = Network.from_module(conv1d_small(channels=16, seed=0))
    n = [ly.n_weights for ly in net.layers]
    d = erk_densities(net, 0.95)  # nothing saturates
    # layers 1 and 2 are both 16x16x3 convs: equal densities; layer 0 (16x1x5) vs layer 1 by hand
    assert d[1] == pytest.approx(d[2])
    assert d[0] / d[1] == pytest.approx(((16 + 1 + 5) / (16 * 5)) / ((16 + 16 + 3) / (16 * 16 * 3)))
    assert sum(di * ni for di, ni in zip(d, n)) == pytest.approx(0.05 * sum(n))
    d = erk_densities(net, 0.5)  # the first layer saturates at density 1, the budget still holds
    assert d[0] == 1.0
    assert sum(di * ni for di, ni in zip(d, n)) == pytest.approx(0.5 * sum(n))
