import copy

import pytest
import torch
from scipy import stats
from torch import nn

from prunebound.coresets.sipp import sipp
from prunebound.errors import InvalidParameterError, UnsupportedLayerError
from prunebound.network import Network, mlp


def _setup():
    return mlp(5, [40], 2, seed=1), torch.randn(200, 5)


# the abs variant with a tiny Bernstein K; the published (signed) one at a large eps: both really prune here
KW = {"abs": {"sensitivity": "abs", "K": 0.01, "eps": 0.99},
      "signed": {"sensitivity": "signed", "eps": 30.0, "_allow_large_eps": True}}


@pytest.mark.parametrize("variant", ["abs", "signed"])
def test_rand_prunes_first_layer_on_signed_inputs_and_is_unbiased(variant):
    # the first layer sees the raw (signed) inputs; its pre-activation must be unbiased over resamples
    m, x = _setup()
    x0 = x[:1]
    z0 = Network.from_module(m).trace(x0).preacts[0][0]
    zs = []
    for seed in range(300):
        res = sipp(m, x, delta=0.5, seed=seed, n_points=50, **KW[variant])
        p, g = res.module, res.guarantee
        zs.append(Network.from_module(p).trace(x0).preacts[0][0])
    zs = torch.stack(zs)
    assert g.keep_ratio < 1.0 and g.sample_sizes[0] > 0
    assert float(zs[:, 0].std()) > 0
    assert stats.ttest_1samp(zs[:, 0].numpy(), float(z0[0])).pvalue > 1e-3


@pytest.mark.parametrize("variant", ["abs", "signed"])
def test_det_keeps_most_sensitive_edges_without_reweighting(variant):
    m, x = _setup()
    res = sipp(m, x, delta=0.5, seed=0, variant="det", **KW[variant])
    p, g = res.module, res.guarantee
    for a, b in zip(Network.from_module(p).layers, Network.from_module(m).layers):
        kept = a.weight != 0
        torch.testing.assert_close(a.weight[kept], b.weight[kept])
    assert not g.guaranteed and g.keep_ratio < 1.0


def test_smaller_eps_keeps_more():
    m, x = _setup()
    r = [sipp(m, x, eps=e, delta=0.1, seed=0, K=0.01, sensitivity="abs").guarantee.keep_ratio for e in (0.9, 0.3, 0.1)]
    assert r[0] < r[1] <= r[2]
    r = [sipp(m, x, eps=e, delta=0.1, seed=0, _allow_large_eps=True).guarantee.keep_ratio for e in (9.0, 3.0, 1.0)]
    assert r[0] < r[1] <= r[2]


def test_errors():
    m, x = _setup()
    with pytest.raises(InvalidParameterError):
        sipp(m, x, eps=0.5, variant="bogus")
    depthwise = nn.Sequential(nn.Unflatten(1, (4, 10)), nn.Conv1d(4, 4, 3, groups=4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(32, 3))
    with pytest.raises(UnsupportedLayerError, match="groups=4"):
        sipp(depthwise, torch.randn(4, 40), eps=0.5)
    ref = copy.deepcopy(m.state_dict())
    sipp(m, x, eps=0.5)
    assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
