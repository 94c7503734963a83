"""Compaction (issue 15): the smaller dense model computes what the masked model computes.

Every test compares outputs on fresh random inputs (not the example input the compaction checked itself on),
checks that something that was dead is really gone (parameter count strictly smaller, layer shapes), and that
a second compaction changes nothing (idempotent).
"""

import pytest
import torch
from torch import nn

from prunebound import zoo
from prunebound.compact import CompactReport, compact
from prunebound.conformance import reference_models
from prunebound.data import teacher_task
from prunebound.errors import DataError, InvalidParameterError, UnsupportedLayerError
from prunebound.network import Network, apply_masks, lenet5, masks_of, mlp

REF = {r.name: r for r in reference_models()}


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _same_function(masked: nn.Module, small: nn.Module, x: torch.Tensor, tol: float = 1e-5) -> float:
    masked.eval()
    small.eval()
    with torch.no_grad():
        y0, y1 = masked(x), small(x)
    assert y0.shape == y1.shape
    d = float((y0 - y1).abs().max())
    assert d <= tol * (1 + float(y0.abs().max())), d
    return d


def _check(masked: nn.Module, x_example: torch.Tensor, x_test: torch.Tensor, *, smaller: bool = True
           ) -> tuple[nn.Module, CompactReport]:
    small, rep = compact(masked, x_example)
    _same_function(masked, small, x_test)
    assert rep.parameters_before == _n_params(masked)  # weight_orig is the parameter; the mask is a buffer
    assert rep.parameters_after == _n_params(small)
    if smaller:
        assert rep.parameters_after < rep.parameters_before
    again, rep2 = compact(small, x_example)
    assert rep2.parameters_after == rep2.parameters_before == rep.parameters_after
    assert all(lc.removed_out == 0 and lc.removed_in == 0 for lc in rep2.layers)
    _same_function(small, again, x_test)
    return small, rep


def _random_structured(model: nn.Module, seed: int, frac: float = 0.5, *, zero_bias: float = 0.5) -> nn.Module:
    """Zero a random ``frac`` of the output rows of every weighted layer but the last (structured masks);
    the bias of a random part of those rows is zeroed too, so some units are dead and others constant."""
    g = torch.Generator().manual_seed(seed)
    net = Network(model) if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) \
        else None
    layers = net.layers if net is not None else _layers_with_bn(model)
    masks = {}
    for ly in layers[:-1]:
        w = ly.module.weight
        rows = torch.rand(w.shape[0], generator=g) < frac
        mk = torch.ones_like(w)
        mk[rows] = 0
        masks[ly.path] = mk
        if ly.module.bias is not None:
            kill = rows & (torch.rand(w.shape[0], generator=g) < zero_bias)
            with torch.no_grad():
                ly.module.bias[kill] = 0
    _apply_unfolded(model, masks)
    return model


class _L:
    def __init__(self, path, module):
        self.path, self.module = path, module


def _layers_with_bn(model: nn.Module) -> list[_L]:
    net = Network.from_module(model)  # folded copy: same paths as the original
    return [_L(ly.path, model.get_submodule(ly.path)) for ly in net.layers]


def _apply_unfolded(model: nn.Module, masks: dict) -> None:
    import torch.nn.utils.prune as tprune

    for path, mk in masks.items():
        tprune.custom_from_mask(model.get_submodule(path), "weight", mk)


# ----------------------------------------------------------------------------------------- hand-made cases
def test_mlp_dead_neurons_removed_and_constant_unit_folded():
    m = mlp(10, [20, 30], 5, seed=0)
    mk = masks_of(m)
    mk["0"][:7] = 0  # 7 hidden units with zero weights; units 0..2 also get bias 0 (dead), 3..6 stay constant
    with torch.no_grad():
        m[0].bias[:3] = 0
        m[0].bias[3:7] = torch.tensor([0.5, -0.5, 0.25, 1.0])  # relu: 0.5, 0, 0.25, 1.0 -> folded downstream
    mk["2"][5:9] = 0
    with torch.no_grad():
        m[2].bias[5:9] = 0
    apply_masks(m, mk)
    small, rep = _check(m, torch.randn(4, 10), torch.randn(64, 10))
    assert small[0].weight.shape == (13, 10) and small[2].weight.shape == (26, 13)
    assert small[4].weight.shape == (5, 26)
    layer2 = next(lc for lc in rep.layers if lc.path == "2")
    assert layer2.removed_in == 7 and layer2.folded_in == 3  # relu(-0.5) = 0 is dead, not folded


def test_constant_unit_before_padded_conv_is_kept_not_folded():
    """A filter with zero weights and non-zero bias feeds a padded conv: at the border the constant meets the
    zero padding, so folding would be wrong; the channel must stay (its consumer slice is non-zero)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1), nn.Flatten())
    mk = masks_of(m)
    mk["0"][1] = 0
    with torch.no_grad():
        m[0].bias[1] = 0.7
    apply_masks(m, mk)
    small, rep = compact(m, torch.randn(2, 2, 6, 6))
    assert small[0].weight.shape[0] == 4  # kept
    _same_function(m, small, torch.randn(8, 2, 6, 6))
    with torch.no_grad():  # the same unit with bias 0 is dead: removed
        m[0].bias[1] = 0
    small, rep = _check(m, torch.randn(2, 2, 6, 6), torch.randn(8, 2, 6, 6))
    assert small[0].weight.shape[0] == 3 and small[2].weight.shape[1] == 3


def test_sigmoid_of_dead_unit_is_constant_and_folded():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 6), nn.Sigmoid(), nn.Linear(6, 2))
    mk = masks_of(m)
    mk["0"][:2] = 0
    with torch.no_grad():
        m[0].bias[:2] = 0  # sigmoid(0) = 0.5: constant, not dead
    apply_masks(m, mk)
    small, rep = _check(m, torch.randn(3, 5), torch.randn(32, 5))
    assert small[2].weight.shape == (2, 4) and rep.layers[-1].folded_in == 2


def test_residual_add_keeps_channel_live_on_one_branch():
    m = REF["residual_mlp"].make()
    mk = masks_of(m)
    mk["blocks.0.fc2"][:4] = 0  # branch output dead, but the skip carries channels 0..3: nothing removable there
    with torch.no_grad():
        m.blocks[0]["fc2"].bias[:4] = 0
    apply_masks(m, mk)
    small, rep = compact(m, REF["residual_mlp"].inputs(4))
    assert small.blocks[0]["fc2"].weight.shape[0] == 16
    _same_function(m, small, REF["residual_mlp"].inputs(64, seed=5))
    # now kill channels 0..3 on every branch of the residual stream: removed everywhere, consistently
    m = REF["residual_mlp"].make()
    mk = masks_of(m)
    for p in ("fc_in", "blocks.0.fc2", "blocks.1.fc2"):
        mk[p][:4] = 0
    apply_masks(m, mk)
    with torch.no_grad():
        for mod in (m.fc_in, m.blocks[0]["fc2"], m.blocks[1]["fc2"]):
            mod.bias[:4] = 0
    small, rep = _check(m, REF["residual_mlp"].inputs(4), REF["residual_mlp"].inputs(64, seed=5))
    assert small.fc_in.weight.shape[0] == 12 and small.blocks[1]["fc1"].weight.shape[1] == 12
    assert small.fc_out.weight.shape[1] == 12


def test_concat_offsets_shift():
    m = REF["dense_cat"].make()
    mk = masks_of(m)
    mk["f0"][[0, 2]] = 0
    mk["f1"][[5]] = 0
    with torch.no_grad():
        m.f0.bias[[0, 2]] = 0
        m.f1.bias[5] = 0
    apply_masks(m, mk)
    small, rep = _check(m, REF["dense_cat"].inputs(4), REF["dense_cat"].inputs(64, seed=3))
    assert small.f2.weight.shape == (6, 9) and small.head.weight.shape == (3, 15)


def test_mlp_structured_pruning_methods():
    from prunebound.coresets import prune as coreset_prune
    from prunebound.pruning import prune

    task = teacher_task(d_in=8, width=16, n_classes=3, seed=0)
    data = task.sample(300, seed=1)
    model = mlp(8, [24, 24], 3, seed=0)
    x_test = torch.randn(128, 8)
    for method in ("apoz", "neuron_merging", "lasso_channel"):
        kw = {"epochs": 1} if method == "apoz" else {}
        res = prune(model, data, method=method, sparsity=0.5, seed=0, **kw)
        small, rep = _check(res.module, data.x[:4], x_test)
        assert rep.layers and max(lc.removed_out for lc in rep.layers) >= 12 - 1, (method, rep)
    res = coreset_prune(model, data, method="data_independent", eps=0.9, seed=0)
    dead = sum(int((ly.weight.reshape(ly.fan_out, -1) == 0).all(1).sum()) for ly in Network(res.module).layers)
    small, rep = _check(res.module, data.x[:4], x_test, smaller=dead > 0)


def test_lenet5_structured_masks():
    m = _random_structured(lenet5(seed=0), seed=1)
    small, rep = _check(m, torch.randn(2, 1, 28, 28), torch.randn(16, 1, 28, 28))
    conv2 = next(lc for lc in rep.layers if lc.path == "3")
    assert conv2.removed_in > 0 and conv2.removed_out > 0
    fc = next(lc for lc in rep.layers if lc.path == "7")
    assert fc.removed_in % 25 == 0 and fc.removed_in > 0  # a removed filter is a 5x5 block of fc inputs


def test_resnet20_after_pfp_compacts_consistently():
    from prunebound.coresets.pfp import pfp

    model = zoo.build("resnet20", width=4, seed=0).eval()
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    res = pfp(model, x, eps=0.5, seed=0, n_points=16, _allow_large_eps=True)
    kept = res.extra["channels_kept"]
    assert sum(kept[:-1]) < sum(ly.fan_out for ly in Network.from_module(model).layers[:-1])
    small, rep = _check(res.module, x[:2], torch.randn(8, 3, 32, 32))
    # the residual stream (stem + every conv2) is united by the adds: only block-internal channels go
    for lc in rep.layers:
        if lc.path.endswith("conv2"):
            assert lc.removed_out == 0
    assert any(lc.path.endswith("conv1") and lc.removed_out > 0 for lc in rep.layers)


def test_densenet_cat_and_batchnorm_sliced():
    torch.manual_seed(0)
    model = zoo.build("densenet", width=4, layers=2, seed=0).eval()
    m = _random_structured(model, seed=2)  # fresh BatchNorm: shift 0, so a zero filter stays dead
    small, rep = _check(m, torch.randn(2, 3, 32, 32), torch.randn(8, 3, 32, 32))
    assert any(lc.kind.startswith("batchnorm") and lc.removed_out > 0 for lc in rep.layers)
    assert all(isinstance(a, type(b)) for a, b in zip(small.modules(), m.modules()))  # same classes


def test_mobilenet_depthwise_groups_follow_channels():
    model = zoo.build("mobilenet", width=4, seed=0).eval()
    m = _random_structured(model, seed=3, frac=0.4)
    small, rep = _check(m, torch.randn(2, 3, 32, 32), torch.randn(4, 3, 32, 32))
    for mod in small.modules():
        if isinstance(mod, nn.Conv2d) and mod.groups > 1:
            assert mod.groups == mod.in_channels == mod.out_channels
    assert any(lc.path.endswith(".dw") and lc.removed_out > 0 for lc in rep.layers)


@pytest.mark.parametrize("name", sorted(REF))
def test_random_structured_masks_on_reference_models(name):
    """Property test (seeded loop): any structured mask, BatchNorm with non-trivial statistics (constants that
    must be folded or kept), every supported graph: the compacted model computes the same function."""
    rm = REF[name]
    for seed in range(4):
        m = _random_structured(rm.make(seed), seed=seed, frac=0.3 + 0.15 * seed)
        small, rep = compact(m, rm.inputs(2))
        _same_function(m, small, rm.inputs(32, seed=seed + 10), tol=1e-5)
        assert rep.parameters_after <= rep.parameters_before == _n_params(m)
        _, rep2 = compact(small, rm.inputs(2))
        assert rep2.parameters_after == rep.parameters_after


def test_caller_model_untouched_and_training_flag_kept():
    m = _random_structured(mlp(6, [8], 2, seed=0), seed=0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    small, _ = compact(m, torch.randn(2, 6))
    assert small.training and m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not any(hasattr(mod, "weight_mask") for mod in small.modules())


def test_errors_name_what_is_missing():
    m = lenet5(seed=0)
    del_shape = nn.Sequential(*m)  # no input_shape attribute, first layer a conv
    with pytest.raises(InvalidParameterError, match="example_input"):
        compact(del_shape)

    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(UnsupportedLayerError):
        compact(Untraceable(), torch.randn(2, 3))
    bad = mlp(3, [4], 2, seed=0)
    with torch.no_grad():
        bad[0].weight[0, 0] = float("inf")
    with pytest.raises(DataError, match="non-finite"):
        compact(bad)
    with pytest.raises(DataError, match="example_input"):
        compact(mlp(3, [4], 2, seed=0), torch.randn(2, 5))


def test_report_to_dict():
    m = _random_structured(mlp(6, [8], 2, seed=0), seed=0)
    _, rep = compact(m)  # an MLP needs no example input
    d = rep.to_dict()
    assert d["removed_parameters"] == rep.parameters_before - rep.parameters_after
    assert d["layers"][0]["path"] == "0"


def test_bare_layer_and_float64():
    lin = nn.Linear(4, 3).double()
    small, rep = compact(lin, torch.randn(2, 4, dtype=torch.float64))
    assert isinstance(small, nn.Linear) and rep.parameters_after == rep.parameters_before == 15
    m = _random_structured(mlp(6, [10], 2, seed=0).double(), seed=1)
    small, rep = _check(m, torch.randn(2, 6, dtype=torch.float64), torch.randn(16, 6, dtype=torch.float64))
    assert small[0].weight.dtype == torch.float64


def test_self_check_catches_a_broken_analysis(monkeypatch):
    """Deliberately broken variant: residual adds no longer unite their channels. The branch's dead channels
    are then cut although the skip carries them; compact's own check must refuse the result."""
    import prunebound.compact as C
    from prunebound.errors import PruneboundError

    m = REF["residual_mlp"].make()
    mk = masks_of(m)
    mk["blocks.0.fc2"][:4] = 0
    with torch.no_grad():
        m.blocks[0]["fc2"].bias[:4] = 0
    apply_masks(m, mk)
    compact(m, REF["residual_mlp"].inputs(4))  # correct analysis: fine
    monkeypatch.setattr(C._Slots, "union", lambda self, a, b: None)
    with pytest.raises(PruneboundError, match="prunebound bug"):
        compact(m, REF["residual_mlp"].inputs(4))
