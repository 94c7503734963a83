import math

import pytest
import torch
from torch import nn

from prunebound import network as N
from prunebound.errors import DataError, InvalidParameterError, UnsupportedLayerError


def _manual_mlp_trace(m: nn.Sequential, x: torch.Tensor):
    inputs, pre = [], []
    h = x
    for mod in m:
        if isinstance(mod, nn.Linear):
            inputs.append(h)
            h = h @ mod.weight.T + mod.bias
            pre.append(h)
        else:
            h = mod(h)
    return inputs, pre, h


def test_layers_records_mlp():
    m = N.mlp(10, [7, 5], 3, seed=0)
    net = N.Network.from_module(m)
    assert [ly.kind for ly in net.layers] == ["linear"] * 3
    assert [ly.fan_in for ly in net.layers] == [10, 7, 5]
    assert [ly.fan_out for ly in net.layers] == [7, 5, 3]
    assert [ly.activation for ly in net.layers][:2] == ["relu", "relu"]
    assert net.layers[-1].activation is None
    assert N.count_parameters(m) == 10 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3


def test_trace_matches_manual_forward_mlp():
    m = N.mlp(10, [7, 5], 3, seed=1)
    x = torch.randn(33, 10)
    net = N.Network.from_module(m)
    tr = net.trace(x, batch_size=8)
    ins, pre, out = _manual_mlp_trace(m, x)
    for a, b in zip(tr.inputs, ins):
        torch.testing.assert_close(a, b)
    for a, b in zip(tr.preacts, pre):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(tr.output, out)
    torch.testing.assert_close(net.forward(x), m(x))


def test_trace_cnn_matches_manual():
    m = N.lenet5(seed=0)
    x = torch.randn(4, 1, 28, 28)
    net = N.Network.from_module(m)
    assert [ly.kind for ly in net.layers] == ["conv2d", "conv2d", "linear", "linear", "linear"]
    tr = net.trace(x, batch_size=3)
    # manual: first conv pre-activation
    c1 = net.layers[0].module
    torch.testing.assert_close(tr.preacts[0], torch.nn.functional.conv2d(x, c1.weight, c1.bias, padding=c1.padding))
    torch.testing.assert_close(tr.output, m(x))
    assert N.count_parameters(m) == 61706


def test_zoo_parameter_counts():
    assert N.count_parameters(N.lenet300_100()) == 266610
    assert N.count_parameters(N.conv1d_small()) == 9610


def test_unsupported_layer_named():
    m = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Softplus()), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match=r"1\.0.*Softplus|Softplus.*1\.0"):
        N.Network.from_module(m)


def test_batchnorm_folding_exact():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                      nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    m.train()
    for _ in range(5):
        m(torch.randn(16, 2, 8, 8) * 3 + 1)
    m.eval()
    x = torch.randn(20, 2, 8, 8)
    folded = N.fold_batchnorm(m)
    assert not any(isinstance(c, (nn.BatchNorm1d, nn.BatchNorm2d)) for c in folded.modules())
    torch.testing.assert_close(folded(x), m(x), atol=1e-5, rtol=1e-5)
    net = N.Network.from_module(m)
    torch.testing.assert_close(net.forward(x), m(x), atol=1e-5, rtol=1e-5)


def test_vector_roundtrip_and_pruned():
    m = N.mlp(6, [5], 2, seed=0)
    v = N.to_vector(m)
    assert v.numel() == N.count_parameters(m)
    m2 = N.mlp(6, [5], 2, seed=1)
    N.load_vector(m2, v)
    torch.testing.assert_close(N.to_vector(m2), v)
    x = torch.randn(4, 6)
    torch.testing.assert_close(m2(x), m(x))
    with pytest.raises(DataError, match="flat vector"):
        N.load_vector(m2, v[:-1])


def test_masks_roundtrip_through_torch_prune():
    m = N.mlp(8, [6], 3, seed=0)
    g = torch.Generator().manual_seed(0)
    masks = {ly.path: (torch.rand(ly.weight.shape, generator=g) > 0.5).float() for ly in N.Network(m).layers}
    N.apply_masks(m, masks)
    assert N.is_pruned(m[0])
    got = N.masks_of(m)
    for k in masks:
        assert torch.equal(got[k], masks[k])
    eff = {k: m.get_submodule(k).weight.detach().clone() for k in masks}
    N.remove_masks(m)
    for k in masks:
        assert not N.is_pruned(m.get_submodule(k))
        assert torch.equal(m.get_submodule(k).weight.detach(), eff[k])
        assert torch.equal(m.get_submodule(k).weight.detach() == 0, masks[k] == 0) or (
            (eff[k] == 0).sum() >= (masks[k] == 0).sum())
    rep = N.sparsity(m)
    expected = sum(float((mk == 0).sum()) for mk in masks.values()) / sum(mk.numel() for mk in masks.values())
    assert math.isclose(rep.total, expected, rel_tol=1e-9)


def test_apply_mask_matches_torch_prune_convention():
    m = N.mlp(4, [3], 2, seed=0)
    mk = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]])
    N.apply_masks(m, {"0": mk})
    assert hasattr(m[0], "weight_orig") and hasattr(m[0], "weight_mask")
    torch.testing.assert_close(m[0].weight, m[0].weight_orig * mk)


def test_bad_masks():
    m = N.mlp(4, [3], 2, seed=0)
    with pytest.raises(InvalidParameterError, match="shape"):
        N.apply_masks(m, {"0": torch.ones(2, 2)})
    with pytest.raises(InvalidParameterError, match="unknown layer"):
        N.apply_masks(m, {"nope": torch.ones(3, 4)})
    with pytest.raises(InvalidParameterError, match="0 and 1"):
        N.apply_masks(m, {"0": torch.full((3, 4), 0.5)})


def test_nan_weights_rejected():
    m = N.mlp(4, [3], 2, seed=0)
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    with pytest.raises(DataError, match="non-finite"):
        N.Network.from_module(m).check_finite()


def test_shape_mismatch_clear_error():
    m = N.mlp(4, [3], 2, seed=0)
    with pytest.raises(DataError):
        N.Network.from_module(m).trace(torch.randn(5, 7))


def test_architecture_roundtrip():
    cases = [(N.mlp(5, [4, 3], 2, seed=0), (5,)), (N.lenet5(seed=0), (1, 28, 28)), (N.conv1d_small(seed=0), (40,))]
    for m, shape in cases:
        m2 = N.build_architecture(N.architecture(m))
        m2.load_state_dict(m.state_dict())
        x = torch.randn(2, *shape)
        torch.testing.assert_close(m2(x), m(x))


def test_clone_pruned_after_forward_and_fresh_weight():
    m = N.mlp(4, [3], 2, seed=0)
    N.apply_masks(m, {"0": torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]])})
    m(torch.randn(2, 4)).sum().backward()  # cached weight is now a non-leaf tensor
    c = N.clone(m)
    x = torch.randn(5, 4)
    torch.testing.assert_close(c(x), m(x))
    assert c[0].weight_orig is not m[0].weight_orig
    with torch.no_grad():
        m[0].weight_orig.mul_(2.0)
    ly = N.Network(m).layers[0]
    torch.testing.assert_close(ly.weight, m[0].weight_orig * m[0].weight_mask)
