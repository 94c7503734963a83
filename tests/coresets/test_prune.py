import pytest
import torch

from prunebound.coresets import METHODS, prune
from prunebound.errors import InvalidParameterError
from prunebound.network import mlp


@pytest.mark.parametrize("method", ["corenet", "sipp", "pfp", "data_independent", "uniform", "magnitude"])
def test_keep_ratio_is_met(method):
    m = mlp(6, [40, 40], 3, seed=0)
    x = torch.rand(200, 6)
    p, g = prune(m, x, method=method, keep_ratio=0.5, iters=20)
    assert g.keep_ratio == pytest.approx(0.5, abs=0.08)
    assert p(x).shape == (200, 3)


def test_dispatch_errors():
    m, x = mlp(3, [4], 2), torch.rand(5, 3)
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="nope", eps=0.5)
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="corenet")
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="corenet", eps=0.5, keep_ratio=0.5)
    with pytest.raises(InvalidParameterError):
        prune(m, x, method="magnitude", eps=0.5)
    assert set(METHODS) >= {"corenet", "sipp", "pfp", "data_independent", "uniform", "magnitude"}
