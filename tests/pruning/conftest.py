"""Shared fixtures and checks for the classic pruning methods (tests/pruning)."""

import copy

import pytest
import torch
import torch.nn.utils.prune as tprune

from prunebound.data import teacher_task
from prunebound.network import Network, is_pruned, masks_of, mlp
from prunebound.train import fit


@pytest.fixture(scope="session")
def task():
    return teacher_task(10, 16, 3, seed=0)


@pytest.fixture(scope="session")
def train_data(task):
    return task.sample(400, 1)


@pytest.fixture(scope="session")
def test_data(task):
    return task.sample(2000, 2)


@pytest.fixture(scope="session")
def trained_mlp(train_data):
    torch.manual_seed(0)
    m = mlp(10, [32, 16], 3, seed=0)
    fit(m, train_data, epochs=15, lr=0.05, seed=0)
    return m


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module, snap):
    now = module.state_dict()
    assert set(now) == set(snap)
    for k, v in snap.items():
        assert torch.equal(now[k], v), f"input module changed at {k}"
    assert not any(is_pruned(m) for m in module.modules())


def check_masks_survive_remove(module):
    """Effective weights and outputs are identical after ``torch.nn.utils.prune.remove``; pruned stay zero."""
    net = Network.from_module(module)
    before = {ly.path: ly.weight.detach().clone() for ly in net.layers}
    masks = masks_of(net)
    x = torch.randn(7, *_input_shape(net))
    with torch.no_grad():
        out_before = module(x)
    m2 = copy.deepcopy(module)
    n2 = Network.from_module(m2)
    for ly in n2.layers:
        assert is_pruned(ly.module), f"layer {ly.path} carries no torch prune mask"
        tprune.remove(ly.module, "weight")
    for ly in n2.layers:
        assert torch.equal(ly.weight.detach(), before[ly.path])
        assert bool((ly.weight.detach()[masks[ly.path] == 0] == 0).all())
    with torch.no_grad():
        assert torch.equal(m2(x), out_before)


def _input_shape(net):
    first = net.layers[0]
    if first.kind == "linear":
        return (first.module.in_features,)
    return getattr(net, "_test_input_shape", (40,))


def mask_zero_counts(module):
    mk = masks_of(module)
    return {p: int((m == 0).sum()) for p, m in mk.items()}, {p: m.numel() for p, m in mk.items()}


@pytest.fixture(scope="session")
def mnist1d_small():
    from prunebound.data import mnist1d

    return mnist1d(300, 0).train
