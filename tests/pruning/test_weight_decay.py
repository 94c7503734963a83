"""Hanson & Pratt biases: penalty values by hand, shrinkage under training, exact sparsity."""

import math

import pytest
import torch

from prunebound.network import Network, mlp
from prunebound.pruning import hanson_pratt_penalty, weight_decay


def test_penalty_values_by_hand():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    net = Network.from_module(m)
    u = [3.0, 0.5]
    assert float(hanson_pratt_penalty(net, "l2").detach()) == pytest.approx(1 + 4 + 0.25)
    assert float(hanson_pratt_penalty(net, "hyperbolic").detach()) == pytest.approx(
        sum(x / (1 + x) for x in u)
    )
    b = 0.5
    hyp = float(hanson_pratt_penalty(net, "hyperbolic", beta=b).detach())
    assert hyp == pytest.approx(sum(x / (1 + b * x) for x in u))
    ex = float(hanson_pratt_penalty(net, "exponential", beta=b).detach())
    assert ex == pytest.approx(sum(1 - math.exp(-b * x) for x in u))
    assert float(hanson_pratt_penalty(net, "exponential").detach()) == pytest.approx(
        sum(1 - math.exp(-x) for x in u)
    )


@pytest.mark.parametrize("penalty", ["l2", "hyperbolic", "exponential"])
def test_penalty_shrinks_weights(train_data, penalty):
    m = mlp(10, [16], 3, seed=0)
    kw = dict(sparsity=0.5, epochs=3, penalty=penalty, seed=0)
    with_pen = weight_decay(m, train_data, lam=0.05, **kw)
    without = weight_decay(m, train_data, lam=0.0, **kw)
    assert with_pen.info["penalty_final"] < without.info["penalty_final"]
    zeros = sum(v * dict(m.named_parameters())[f"{p}.weight"].numel() for p, v in with_pen.per_layer.items())
    assert abs(zeros - 0.5 * (160 + 48)) <= 2


def test_bad_penalty(train_data):
    from prunebound.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="penalty"):
        weight_decay(mlp(10, [4], 3, seed=0), train_data, penalty="l7")
