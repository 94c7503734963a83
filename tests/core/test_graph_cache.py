"""The per-module capture cache behind Network.from_module: hits give the same graph as a fresh trace, every
structural change invalidates, and the cache never keeps a model alive."""

import gc

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn

from prunebound import graph as G
from prunebound import network as N
from prunebound.conformance import reference_models
from prunebound.errors import UnsupportedLayerError


def _sig(g):
    return [(n.name, n.kind, n.target, n.inputs, n.path, n.args, n.kwargs) for n in g.nodes]


@pytest.fixture
def count_traces(monkeypatch):
    calls = []
    real = G.capture

    def counting(module):
        calls.append(type(module).__name__)
        return real(module)

    monkeypatch.setattr(G, "capture", counting)
    G.clear_capture_cache()
    return calls


class Flag(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)
        self.skip = True

    def forward(self, x):
        h = F.relu(self.fc1(x))
        if self.skip:
            h = h + x
        return self.fc2(h)


def _check_fresh(m):
    """The (possibly cached) Network of m is the one a fresh trace gives, bound to m's current submodules."""
    net = N.Network.from_module(m)
    fresh = N.Network(m, _graph=G.capture(m)) if not any(
        isinstance(c, (nn.BatchNorm1d, nn.BatchNorm2d)) for c in m.modules()) else None
    if fresh is not None:
        assert _sig(net.graph) == _sig(fresh.graph)
        assert [ly.module for ly in net.layers] == [ly.module for ly in fresh.layers]
        for n in net.graph.nodes:
            if n.path:
                assert n.module is m.get_submodule(n.path)
    x = torch.randn(5, 4)
    torch.testing.assert_close(net.trace(x).output, m(x))
    return net


def test_second_call_is_a_hit_and_equals_a_fresh_trace(count_traces):
    m = Flag()
    a = N.Network.from_module(m)
    b = N.Network.from_module(m)
    assert count_traces == ["Flag"]  # traced once
    assert _sig(a.graph) == _sig(b.graph) == _sig(G.capture(m))
    assert [ly.module for ly in b.layers] == [m.fc1, m.fc2]


@pytest.mark.parametrize("change", ["flag", "replace_submodule", "replace_parameter", "prune", "hook",
                                    "instance_forward", "new_submodule_attr", "train_mode"])
def test_every_structural_change_invalidates(count_traces, change):
    m = Flag()
    before = _check_fresh(m)
    n0 = len(count_traces)
    if change == "flag":
        m.skip = False  # forward no longer adds: a stale graph would report an add that is not there
    elif change == "replace_submodule":
        m.fc2 = nn.Linear(4, 3)
    elif change == "replace_parameter":
        m.fc1.weight = nn.Parameter(torch.randn(4, 4))
    elif change == "prune":
        tprune.l1_unstructured(m.fc1, "weight", amount=0.5)
    elif change == "hook":
        m.fc1.register_forward_pre_hook(lambda mod, inp: None)
    elif change == "instance_forward":
        m.forward = lambda x: m.fc2(m.fc1(x))  # torch.fx would trace the class's forward: refused, never stale
        with pytest.raises(UnsupportedLayerError, match="instance attribute 'forward'"):
            N.Network.from_module(m)
        return
    elif change == "new_submodule_attr":
        m.fc1 = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    elif change == "train_mode":
        m.eval()
    after = _check_fresh(m)
    assert len(count_traces) > n0, "the change was not noticed"
    if change == "flag":
        assert any(n.kind == "add" for n in before.graph.nodes)
        assert not any(n.kind == "add" for n in after.graph.nodes)
    if change == "replace_submodule":
        assert after.layers[-1].fan_out == 3 and after.layers[-1].module is m.fc2
    if change == "prune":
        assert after.layers[0].mask is not None


def test_in_place_weight_edits_keep_the_hit_and_layers_see_new_values(count_traces):
    m = Flag()
    N.Network.from_module(m)
    with torch.no_grad():
        m.fc1.weight.mul_(2.0)
    net = N.Network.from_module(m)
    assert count_traces == ["Flag"]  # values are not structure
    assert torch.equal(net.layers[0].weight, m.fc1.weight)


def test_batchnorm_models_rebind_the_folded_copy_instead_of_retracing(count_traces):
    for rm in reference_models():
        m = rm.make()
        if not any(isinstance(c, (nn.BatchNorm1d, nn.BatchNorm2d)) for c in m.modules()):
            continue
        m.eval()
        net = N.Network.from_module(m)
        fresh = G.capture(net.module)  # a real trace of the folded copy
        assert _sig(net.graph) == _sig(fresh)
        for n, f in zip(net.graph.nodes, fresh.nodes):
            assert n.module is f.module
        x = rm.inputs(6)
        torch.testing.assert_close(net.trace(x).output, m(x), atol=1e-5, rtol=1e-5)
        # BN statistics are values: a second call re-folds them (never a stale fold)
        bn = next(c for c in m.modules() if isinstance(c, (nn.BatchNorm1d, nn.BatchNorm2d)))
        with torch.no_grad():
            bn.running_mean.add_(1.0)
        torch.testing.assert_close(N.Network.from_module(m).trace(x).output, m(x), atol=1e-5, rtol=1e-5)


def test_cache_does_not_keep_models_alive():
    G.clear_capture_cache()
    m = Flag()
    N.Network.from_module(m)
    assert len(G._CACHE) == 1
    del m
    gc.collect()
    assert len(G._CACHE) == 0


def test_every_reference_model_hit_equals_fresh_capture():
    G.clear_capture_cache()
    for rm in reference_models():
        m = rm.make()
        a = N.Network.from_module(m)
        b = N.Network.from_module(m)
        assert _sig(a.graph) == _sig(b.graph), rm.name
        assert [ly.path for ly in a.layers] == [ly.path for ly in b.layers]
        assert all(x.module is y.module for x, y in zip(a.layers, b.layers) if not any(
            isinstance(c, (nn.BatchNorm1d, nn.BatchNorm2d)) for c in m.modules()))
