import pytest
import torch

from prunebound.coresets.baselines import magnitude_global, magnitude_layerwise, uniform
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, mlp


def test_magnitude_layerwise_keeps_largest():
    m = mlp(10, [50], 5, seed=0)
    res = magnitude_layerwise(m, keep_ratio=0.2)
    p, g = res.module, res.guarantee
    for a, b in zip(Network.from_module(p).layers, Network.from_module(m).layers):
        kept = a.weight != 0
        assert int(kept.sum()) == int(torch.ceil(torch.tensor(0.2 * b.n_weights)))
        bw = b.weight.detach().abs()
        assert float(bw[kept].min()) >= float(bw[~kept].max())
    assert g.eps is None and not g.guaranteed


def test_magnitude_global_threshold_shared():
    m = mlp(10, [50], 5, seed=0)
    res = magnitude_global(m, keep_ratio=0.3)
    p, g = res.module, res.guarantee
    a = torch.cat([ly.weight.reshape(-1) for ly in Network.from_module(p).layers])
    b = torch.cat([ly.weight.detach().reshape(-1) for ly in Network.from_module(m).layers])
    assert float(b.abs()[a != 0].min()) >= float(b.abs()[a == 0].max())
    assert g.keep_ratio == pytest.approx(0.3, abs=1e-3)


def test_uniform_keep_ratio_and_unbiased_mean():
    m = mlp(10, [400], 2, seed=0)
    res = uniform(m, keep_ratio=0.4, seed=0)
    g = res.guarantee
    assert g.keep_ratio == pytest.approx(0.4, abs=0.03)
    with pytest.raises(InvalidParameterError):
        uniform(m, keep_ratio=0.0)


def test_uniform_high_keep_ratio_not_rounded_up_to_dense():
    # regression: with fan_in 64 and keep 0.7 the draw count exceeds 64; it must still sample, not keep all
    m = mlp(64, [64], 10, seed=0)
    g = uniform(m, keep_ratio=0.7, seed=0).guarantee
    assert g.keep_ratio == pytest.approx(0.7, abs=0.05)
