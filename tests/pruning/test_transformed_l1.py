"""Ma et al. 2019 transformed l1: formula, l0/l1 limits, group term, regulariser lowers TL1 in training."""

import math

import pytest
import torch

from prunebound.network import Network, mlp
from prunebound.pruning import group_l1_penalty, tl1_penalty, transformed_l1


def test_tl1_formula_and_limits():
    w = torch.tensor([0.0, 0.5, -2.0, 3.0], dtype=torch.float64)
    a = 1.5
    expected = sum((a + 1) * abs(x) / (a + abs(x)) for x in w.tolist())
    assert float(tl1_penalty(w, a)) == pytest.approx(expected)
    assert float(tl1_penalty(w, 1e-9)) == pytest.approx(3.0, rel=1e-6)  # -> ||w||_0
    assert float(tl1_penalty(w, 1e9)) == pytest.approx(5.5, rel=1e-6)  # -> ||w||_1


def test_group_l1_by_hand():
    m = torch.nn.Sequential(torch.nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    assert float(group_l1_penalty(Network.from_module(m)).detach()) == pytest.approx(
        math.sqrt(4) * (5.0 + 2.0)
    )


def test_regulariser_lowers_tl1(train_data):
    m = mlp(10, [16], 3, seed=0)
    a = transformed_l1(m, train_data, sparsity=0.0, lam=0.01, lam_g=0.001, epochs=3)
    b = transformed_l1(m, train_data, sparsity=0.0, lam=0.0, epochs=3)

    def tl1(rep):
        return sum(float(tl1_penalty(rep.module[i].weight.detach(), 1.0)) for i in (0, 2))

    assert tl1(a) < tl1(b)
    c = transformed_l1(m, train_data, sparsity=0.7, epochs=1, scope="layer")
    for p, s in c.per_layer.items():
        n = dict(m.named_parameters())[f"{p}.weight"].numel()
        assert abs(s * n - 0.7 * n) <= 1
