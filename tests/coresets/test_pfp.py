import copy

import pytest
import torch
from scipy import stats

from prunebound.coresets.pfp import channel_step, pfp
from prunebound.coresets.sampling import make_generator
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, conv1d_small, lenet5, mlp


def _alive(ly):
    return (ly.weight.reshape(ly.fan_out, -1) != 0).any(1)


def test_conv_filters_removed_consistently():
    m = conv1d_small(seed=0, channels=8)
    x = torch.randn(64, 40)
    res = pfp(m, x, eps=0.9, delta=0.5, seed=0, K=0.01)
    p, g = res.module, res.guarantee
    net = Network.from_module(p)
    for prod, cons in zip(net.layers[:-1], net.layers[1:]):
        alive = _alive(prod)
        w = cons.weight.reshape(cons.fan_out, prod.fan_out, -1)
        assert not bool((w[:, ~alive] != 0).any())  # consumer ignores every removed filter
    assert g.keep_ratio < 1.0
    assert g.extra["channels_kept"][0] < 8 or g.extra["channels_kept"][1] < 8


def test_conv2d_lenet5_runs_and_reduces_filters():
    m = lenet5(seed=0)
    res = pfp(m, torch.rand(16, 1, 28, 28), eps=0.9, delta=0.5, seed=0, K=0.002, n_points=16)
    p, g = res.module, res.guarantee
    assert g.keep_ratio < 1.0
    assert p(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_channel_step_unbiased_over_resamples():
    g = make_generator(0)
    q = torch.rand(12, generator=g, dtype=torch.float64) + 0.1
    c = torch.randn(12, generator=g, dtype=torch.float64)
    est = torch.stack([(channel_step(q, 5, g)[1] * c).sum() for _ in range(1500)])
    assert stats.ttest_1samp(est.numpy(), float(c.sum())).pvalue > 1e-3


def test_mlp_neurons_and_input_untouched():
    m = mlp(5, [30, 30], 2, seed=0)
    ref = copy.deepcopy(m.state_dict())
    res = pfp(m, torch.randn(100, 5), eps=0.9, delta=0.5, seed=0, K=0.01)
    g = res.guarantee
    assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
    assert min(g.extra["channels_kept"][:2]) < 30


def test_eps_validation():
    with pytest.raises(InvalidParameterError):
        pfp(mlp(2, [3], 2), torch.randn(3, 2), eps=2.0)
