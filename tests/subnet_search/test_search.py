import pytest
import torch

from prunebound.data import Dataset
from prunebound.errors import InvalidParameterError, UnsupportedLayerError
from prunebound.network import Network, masks_of, mlp
from prunebound.subnet_search.planted import plant_ticket
from prunebound.subnet_search.search import (
    edge_popup,
    greedy_forward_selection,
    mask_loss,
    random_mask,
)
from prunebound.train import fit


@pytest.fixture(scope="module")
def task():
    return plant_ticket(10, [16], 4, width_factor=4, target_density=0.5, n_train=2000, n_test=2000, seed=0)


def test_edge_popup_exact_sparsity_and_beats_random(task):
    ep = edge_popup(task.random_net, task.data.train, sparsity=0.9, epochs=10, seed=0)
    net = Network.from_module(ep.module)
    masks = masks_of(ep.module)
    for ly, k in zip(net.layers, ep.keep):
        assert k == round(0.1 * ly.n_weights)
        assert int(masks[ly.path].sum()) == k  # exactly k kept
        assert int((ly.weight != 0).sum()) == k
    # weights are frozen: kept weights equal the random ones
    orig = Network.from_module(task.random_net)
    for a, b in zip(net.layers, orig.layers):
        m = a.mask.bool()
        assert torch.equal(a.weight[m], b.weight.detach()[m])
    rnd = random_mask(task.random_net, keep=ep.keep, seed=0)
    assert mask_loss(ep.module, task.data.test) < mask_loss(rnd, task.data.test)
    assert ep.losses[-1] < ep.losses[0]


def test_edge_popup_keep_counts_and_errors(task):
    ep = edge_popup(task.random_net, task.data.train, keep=[7, 5], epochs=1, seed=0)
    assert ep.keep == (7, 5)
    assert [int(m.sum()) for m in masks_of(ep.module).values()] == [7, 5]
    with pytest.raises(InvalidParameterError):
        edge_popup(task.random_net, task.data.train, epochs=1)
    with pytest.raises(InvalidParameterError):
        edge_popup(task.random_net, task.data.train, sparsity=1.5, epochs=1)
    with pytest.raises(InvalidParameterError):
        edge_popup(task.random_net, task.data.train, keep=[10**6, 1], epochs=1)


def test_greedy_forward_selection_curve(task):
    m = mlp(10, [64], 4, seed=0)
    small = Dataset(task.data.train.x[:600], task.data.train.y[:600], "small", 4)
    fit(m, small, epochs=30, lr=0.05, seed=0)
    r = greedy_forward_selection(m, small, n_select=128)
    curve = torch.tensor(r.loss_curve, dtype=torch.float64)
    assert len(r.selected) == 128
    # greedy decreases the loss substantially and ends near the full network's loss
    assert curve[-1] < curve[0]
    assert float(curve[-1]) <= r.full_loss + 0.1 * (float(curve[0]) - r.full_loss)
    # the reported subnetwork reproduces the last point of the curve
    assert mask_loss(r.module, small) == pytest.approx(r.loss_curve[-1], rel=1e-4)
    # it uses only the selected units
    net = Network.from_module(r.module)
    used = (net.layers[0].weight != 0).any(1).sum()
    assert int(used) == r.n_distinct <= 64
    # O(1/n) rate (Ye et al. 2020, Thm. 1): n (L(f_n) - L0) grows by less than 2x from n = 16 to n = 128
    # (an O(1/sqrt(n)) rate would grow it by sqrt(8) = 2.8x)
    floor = min(r.full_loss, float(curve.min()))
    assert 128 * float(curve[127] - floor) <= 2 * 16 * float(curve[15] - floor)
    assert len(r.rate_reference) == 128 and r.rate_reference[0] == pytest.approx(r.loss_curve[0])


def test_greedy_step_is_the_best_candidate(task):
    """Brute-force check of one greedy step: recompute every candidate's loss with the module itself."""
    m = mlp(10, [8], 4, seed=1)
    data = Dataset(task.data.train.x[:300], task.data.train.y[:300], "small", 4)
    r = greedy_forward_selection(m, data, n_select=1)
    w1, b1, w2, b2 = m[0].weight, m[0].bias, m[2].weight, m[2].bias
    losses = []
    with torch.no_grad():
        for j in range(8):
            z = 8 * torch.relu(data.x @ w1[j] + b1[j])[:, None] * w2[:, j][None] + b2
            losses.append(float(torch.nn.functional.cross_entropy(z, data.y)))
    assert r.selected[0] == int(torch.tensor(losses).argmin())
    assert r.loss_curve[0] == pytest.approx(min(losses), rel=1e-5)


def test_greedy_rejects_deep_nets(task):
    with pytest.raises(UnsupportedLayerError):
        greedy_forward_selection(mlp(10, [8, 8], 4), task.data.train, n_select=2)


def test_edge_popup_accepts_pruned_module(task):
    pruned = random_mask(task.random_net, keep=[300, 100], seed=1)
    ep = edge_popup(pruned, task.data.train, keep=[50, 20], epochs=1, seed=0)
    assert [int(m.sum()) for m in masks_of(ep.module).values()] == [50, 20]
    # the input module is untouched
    assert [int(m.sum()) for m in masks_of(pruned).values()] == [300, 100]
