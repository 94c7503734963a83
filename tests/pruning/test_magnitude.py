"""Han et al. (2015) magnitude pruning: the pruned weights are the smallest, q*std rule, retraining helps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prunebound.errors import InvalidParameterError
from prunebound.network import Network, masks_of
from prunebound.pruning import magnitude
from prunebound.pruning.magnitude import magnitude_masks


def _weights_and_masks(rep):
    net = Network.from_module(rep.module)
    mk = masks_of(net)
    return [(ly.module.weight_orig.detach(), mk[ly.path]) for ly in net.layers]


def test_layer_scope_removes_smallest(trained_mlp):
    rep = magnitude(trained_mlp, None, sparsity=0.7, scope="layer")
    orig = [trained_mlp[i].weight.detach() for i in (0, 2, 4)]
    for w, (_, m) in zip(orig, _weights_and_masks(rep)):
        assert int((m == 0).sum()) == round(0.7 * w.numel())
        assert w[m == 0].abs().max() <= w[m == 1].abs().min()


def test_global_scope_removes_globally_smallest(trained_mlp):
    rep = magnitude(trained_mlp, None, sparsity=0.8, scope="global")
    orig = torch.cat([trained_mlp[i].weight.detach().reshape(-1) for i in (0, 2, 4)])
    m = torch.cat([mk.reshape(-1) for _, mk in _weights_and_masks(rep)])
    assert int((m == 0).sum()) == round(0.8 * orig.numel())
    # independent route: numpy sort
    thr = np.sort(np.abs(orig.numpy()))[round(0.8 * orig.numel()) - 1]
    assert np.array_equal((np.abs(orig.numpy()) > thr), (m == 1).numpy())


def test_quality_times_std_rule(trained_mlp):
    q = 0.9
    rep = magnitude(trained_mlp, None, sparsity=None, quality=q)
    for i, (_, m) in zip((0, 2, 4), _weights_and_masks(rep)):
        w = trained_mlp[i].weight.detach().numpy()
        expected = np.abs(w) >= q * w.std(ddof=1)
        assert np.array_equal(expected, (m == 1).numpy())
    assert rep.requested is None


def test_std_scope_solves_quality(trained_mlp):
    net = Network.from_module(trained_mlp)
    masks, q = magnitude_masks(net, 0.6, "std")
    for ly, m in zip(net.layers, masks):
        w = ly.weight.detach()
        r = w.abs() / w.std()
        assert bool((r[m == 0] <= q + 1e-12).all()) and bool((r[m == 1] >= q - 1e-12).all())
    n = sum(m.numel() for m in masks)
    assert sum(int((m == 0).sum()) for m in masks) == round(0.6 * n)


def test_retraining_helps_and_keeps_masks(trained_mlp, train_data):
    a = magnitude(trained_mlp, None, sparsity=0.9, scope="layer")
    b = magnitude(trained_mlp, train_data, sparsity=0.9, scope="layer", epochs=3)
    for (_, ma), (_, mb) in zip(_weights_and_masks(a), _weights_and_masks(b)):
        assert torch.equal(ma, mb)
    with torch.no_grad():
        la = F.cross_entropy(a.module(train_data.x), train_data.y)
        lb = F.cross_entropy(b.module(train_data.x), train_data.y)
    assert lb < la
    assert b.retrained and a.retrained is None


def test_iterative_rounds_exact(trained_mlp, train_data):
    rep = magnitude(trained_mlp, train_data, sparsity=0.9, scope="layer", iterations=3, epochs=1)
    for p, s in rep.per_layer.items():
        n = dict(trained_mlp.named_parameters())[f"{p}.weight"].numel()
        assert abs(s * n - 0.9 * n) <= 1
    assert len(rep.info["quality_per_round"]) == 3


def test_argument_errors(trained_mlp):
    with pytest.raises(InvalidParameterError, match="quality"):
        magnitude(trained_mlp, sparsity=0.5, quality=1.0)
    with pytest.raises(InvalidParameterError, match="either sparsity"):
        magnitude(trained_mlp, sparsity=None)
    with pytest.raises(InvalidParameterError, match="scope"):
        magnitude(trained_mlp, sparsity=0.5, scope="rows")
