import copy
import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats
from scipy.stats import binomtest

from prunebound.coresets import prune
from prunebound.coresets.held_out import held_out_violations
from prunebound.coresets.pfp import _eps_for_m, channel_step, filter_keep_allocation, pfp
from prunebound.coresets.sampling import bernstein_sample_size, make_generator
from prunebound.data import ConvTeacherTask
from prunebound.errors import InvalidParameterError
from prunebound.network import Network, conv1d_small, lenet5, mlp
from prunebound.testing import randomize_batchnorm
from prunebound.zoo_models import resnet20


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


# ---- per-layer allocations: filter_keep and eps_per_layer ---------------------------------------------------------

def test_filter_keep_allocation_is_the_closest_expected_count_brute_force():
    """The integer bisection against every m in 1..nnz, expectation in float64 numpy (independent of RowKeep)."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        C = int(rng.integers(5, 80))
        s = torch.tensor(rng.gamma(0.5, size=C) * (rng.random(C) > 0.2))
        f = float(rng.uniform(0.05, 0.95))
        m, e = filter_keep_allocation(s, C, f)
        q = s.numpy() / s.numpy().sum()
        nnz = int((q > 0).sum())
        ms = np.arange(1, nnz + 1)
        E = (1 - (1 - q[q > 0][None]) ** ms[:, None]).sum(1)
        E[-1] = nnz  # m >= nnz: the layer is kept whole
        if f * C >= nnz:
            assert m == nnz
            continue
        best = np.abs(E - f * C).min()
        assert abs(E[m - 1] - f * C) <= best + 1e-4, (trial, m, E[m - 1], f * C)
        assert abs(e - E[m - 1]) < 1e-3 * max(1.0, e)


def test_eps_for_m_is_the_smallest_eps_of_that_size():
    for tot, m in [(0.7, 3), (3.2, 17), (15.0, 1000), (1e-3, 2)]:
        e = _eps_for_m(tot, m, delta=1e-3, eta=500, K=3.0)
        assert int(bernstein_sample_size(tot, eps=e, delta=1e-3, eta=500, K=3.0)) == m
        assert int(bernstein_sample_size(tot, eps=e * (1 - 1e-9), delta=1e-3, eta=500, K=3.0)) > m
        # independent route: the root of the (real-valued) size formula
        A = 3.0 * tot * math.log(8 * 500 / 1e-3)
        r = optimize.brentq(lambda t, A=A, m=m: A * (6 + 2 * t) / t**2 - m, 1e-9, 1e12, xtol=1e-14, rtol=1e-13)
        assert e == pytest.approx(r, rel=1e-9)


def _producers(res):
    net = Network.from_module(res.module)
    return net, [net.layers.index(ly) for ly in net.layers if ly.path in set(res.extra["filter_pruned"])]


def test_filter_keep_meets_the_fraction_in_every_producer_layer():
    m = mlp(10, [256, 256, 256], 3, seed=0)
    x = torch.randn(200, 10, generator=torch.Generator().manual_seed(0))
    f = 0.4
    total_kept = total_expected = n_layers = 0
    for seed in range(4):
        res = pfp(m, x, filter_keep=f, delta=0.1, seed=seed, n_points=64)
        net, prods = _producers(res)
        assert len(prods) == 3
        for i in prods:
            C = net.layers[i].fan_out
            e = res.extra["expected_channels_kept"][i]
            assert abs(e - f * C) <= 1.0  # one more draw adds at most one expected distinct channel
            kept = res.extra["channels_kept"][i]
            # distinct-channel indicators are negatively associated: var <= C / 4
            assert abs(kept - e) <= 4 * math.sqrt(C / 4)
            total_kept, total_expected, n_layers = total_kept + kept, total_expected + e, n_layers + 1
    assert abs(total_kept - total_expected) <= 4 * math.sqrt(n_layers * 256 / 4)
    g = res.guarantee
    assert g.eps == max(g.eps_per_layer) and g.extra["allocation"] == "filter_keep"
    # the producers' consumers are the sampled layers; eps_l solved per layer
    assert sum(e > 0 for e in g.eps_per_layer) == 3


def test_eps_per_layer_equal_to_eps_reproduces_the_default_path():
    m = mlp(6, [40, 40], 2, seed=1)
    x = torch.randn(120, 6, generator=torch.Generator().manual_seed(1))
    a = pfp(m, x, eps=0.9, delta=0.5, seed=3, K=0.01, n_points=32)
    b = pfp(m, x, eps_per_layer=a.guarantee.eps_per_layer, delta=0.5, seed=3, K=0.01, n_points=32)
    assert a.guarantee.sample_sizes == b.guarantee.sample_sizes and a.guarantee.eps == b.guarantee.eps
    assert a.guarantee.keep_ratio < 1.0
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_filter_keep_is_the_per_layer_eps_run_at_its_solved_eps():
    """filter_keep only chooses eps_l; re-running with those eps_l gives the same network bit for bit."""
    m = mlp(6, [60, 60], 2, seed=2)
    x = torch.randn(120, 6, generator=torch.Generator().manual_seed(2))
    a = pfp(m, x, filter_keep=0.5, delta=0.5, seed=0, n_points=32)
    b = pfp(m, x, eps_per_layer=a.guarantee.eps_per_layer, delta=0.5, seed=0, n_points=32)
    assert a.guarantee.sample_sizes == b.guarantee.sample_sizes
    assert a.extra["channels_kept"] == b.extra["channels_kept"]
    for va, vb in zip(a.module.state_dict().values(), b.module.state_dict().values()):
        assert torch.equal(va, vb)


def test_per_layer_allocation_errors():
    m, x = mlp(4, [8, 8], 2, seed=0), torch.randn(20, 4)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        pfp(m, x, eps=0.5, filter_keep=0.5)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        pfp(m, x)
    with pytest.raises(InvalidParameterError, match="filter_keep"):
        pfp(m, x, filter_keep=1.5)
    with pytest.raises(InvalidParameterError, match="one value per weighted layer"):
        pfp(m, x, eps_per_layer=[0.5, 0.5])
    with pytest.raises(InvalidParameterError, match="does not sample"):
        pfp(m, x, eps_per_layer=[0.5, 0.5, 0.5])  # the first layer reads the network input
    with pytest.raises(InvalidParameterError, match="method='pfp'"):
        prune(m, x, method="corenet", filter_keep=0.5)
    with pytest.raises(InvalidParameterError, match="replace eps"):
        prune(m, x, method="pfp", filter_keep=0.5, keep_ratio=0.5)


def test_prune_passes_filter_keep_to_pfp():
    m, x = mlp(5, [50, 50], 2, seed=0), torch.randn(80, 5, generator=torch.Generator().manual_seed(0))
    a = prune(m, x, method="pfp", filter_keep=0.5, delta=0.5, seed=1, n_points=32)
    b = pfp(m, x, filter_keep=0.5, delta=0.5, seed=1, n_points=32)
    assert a.extra["channels_kept"] == b.extra["channels_kept"] and a.guarantee.eps == b.guarantee.eps


# ---- guarantee of the filter_keep allocation on held-out inputs (ResNet-20, 4/8/16 filters, BatchNorm) -----------

DELTA = 0.05


@pytest.fixture(scope="module")
def resnet_filter_keep():
    task = ConvTeacherTask(seed=0)
    model = randomize_batchnorm(resnet20(width=4, seed=0))
    res = prune(model, task.sample(128, seed=1).x, method="pfp", filter_keep=0.5, delta=DELTA, seed=0, n_points=8)
    return model, res, task.sample(16, seed=2).x


@pytest.mark.statistical
def test_filter_keep_guarantee_on_held_out_inputs(resnet_filter_keep):
    model, res, x = resnet_filter_keep
    net, prods = _producers(res)
    frac = sum(res.extra["channels_kept"][i] for i in prods) / sum(net.layers[i].fan_out for i in prods)
    assert 0.35 < frac < 0.65  # a real filter pruning (36 filters of 4-16 per layer: noisy around 0.5)
    v, n, sampled = held_out_violations(res, model, x, only_sparsified=False)
    assert sampled == 9  # every block's second conv (the readers of the pruned first-conv filters)
    assert binomtest(v, n, DELTA, alternative="greater").pvalue > 0.01, (v, n)


@pytest.mark.statistical
def test_filter_keep_guarantee_test_has_power(resnet_filter_keep):
    model, res, x = resnet_filter_keep
    v, n, _ = held_out_violations(res, model, x, claim=0.002, only_sparsified=False)
    assert binomtest(v, n, DELTA, alternative="greater").pvalue < 0.01, (v, n)
