import pytest
import torch

from prunebound.coresets.data_independent import data_independent
from prunebound.errors import UnsupportedLayerError
from prunebound.network import Network, conv1d_small, mlp


def test_additive_error_bound_holds_on_arbitrary_inputs():
    m = mlp(4, [200], 3, seed=0)
    res = data_independent(m, None, eps=0.5, delta=0.1, seed=0)
    p, g = res.module, res.guarantee
    assert g.keep_ratio < 1.0 and g.sample_sizes[0] > 0
    net, dense = Network.from_module(p), Network.from_module(m)
    x = torch.randn(2000, 4)
    x = 3.0 * x / x.norm(dim=1, keepdim=True)  # ||x|| = 3, so ||(x, 1)|| <= beta
    beta = (9.0 + 1.0) ** 0.5
    err = (net.trace(x).preacts[1] - dense.trace(x).preacts[1]).abs()
    w, b, u = m[0].weight.detach(), m[0].bias.detach(), m[2].weight.detach()
    scale = beta * (u.abs() * torch.cat([w, b[:, None]], 1).norm(dim=1)[None]).sum(1)  # per output unit
    assert bool((err <= 0.5 * scale[None]).all())
    assert float(err.max()) > 0  # something was actually approximated


def test_more_constant_means_more_neurons():
    m = mlp(4, [200], 3, seed=0)
    a = data_independent(m, None, eps=0.5, seed=0, c=0.05).guarantee
    b = data_independent(m, None, eps=0.5, seed=0, c=0.2).guarantee
    assert a.sample_sizes[0] < b.sample_sizes[0] and a.keep_ratio <= b.keep_ratio


def test_conv_rejected():
    with pytest.raises(UnsupportedLayerError):
        data_independent(conv1d_small(seed=0), None, eps=0.5)


def test_refuses_a_residual_mlp_naming_the_chain_assumption():
    """Removing a neuron of a layer whose output also feeds a residual add would change the residual stream,
    which the next layer's column reweighting (and the guarantee) does not cover: refused, not silently wrong."""
    from prunebound.conformance import ResidualMLP
    from prunebound.errors import AssumptionError

    with pytest.raises(AssumptionError, match="data-independent coresets assumes a single chain"):
        data_independent(ResidualMLP(), None, eps=0.5, seed=0)
