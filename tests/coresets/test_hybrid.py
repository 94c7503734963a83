"""Heavy hitters kept exactly + importance sampling of the rest (coresets/hybrid.py): the split against its
definition, unbiasedness, the (eps, delta) statement on fresh inputs (with a deliberately broken sampler that
the same test catches), and the methods behind prune()."""

import os
import warnings

import pytest
import torch
from scipy import stats

from prunebound.coresets import prune
from prunebound.coresets.hybrid import expected_kept, heavy_split, hybrid_sparsify_rows
from prunebound.coresets.sampling import bernstein_sample_size, corenet_sample_size, make_generator
from prunebound.coresets.sensitivity import edge_sensitivity
from prunebound.coresets.sipp_budget import sipp_alpha, sipp_sample_size
from prunebound.network import Network, mlp
from prunebound.testing import binomial_upper_pvalue

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))


def _corenet_m(eps=0.5, delta=0.05, scale=1.0):
    return lambda tot: torch.ceil(corenet_sample_size(tot, eps=eps, delta=delta, eta=1, K=1.0).double() * scale
                                  ).to(torch.int64)


def _pfp_m(eps=0.5, delta=0.05, scale=1.0):  # PFP's Bernstein size, K = 3 (one unit: eta = 1)
    return lambda tot: torch.ceil(bernstein_sample_size(tot, eps=eps, delta=delta, eta=1, K=3.0).double() * scale
                                  ).to(torch.int64)


def _sipp_m(eps=0.5, delta=0.05, scale=1.0):
    return lambda tot: torch.ceil(sipp_sample_size(sipp_alpha(tot, delta=delta, eta=1), eps).double() * scale
                                  ).to(torch.int64)


def test_heavy_split_matches_its_definition_by_hand():
    g = make_generator(0)
    s = torch.rand(6, 40, generator=g, dtype=torch.float64) ** 4
    s[0] = 0.0  # a row without candidates
    s[1, :30] = 0.0
    m_of = _corenet_m(eps=2.0)
    det, rest, m_r = heavy_split(s, m_of)
    for r in range(6):
        tot = float(s[r].sum())
        m = int(m_of(torch.tensor([tot], dtype=torch.float64))[0])
        want = [bool(s[r, j] > 0 and s[r, j] * m >= tot) for j in range(40)]
        assert det[r].tolist() == want
        assert int(m_r[r]) == int(m_of(torch.tensor([tot - float(s[r][det[r]].sum())], dtype=torch.float64))[0])
    assert not det[0].any() and int(m_r[0]) == 0
    torch.testing.assert_close(rest + s * det, s)


def _heavy_neuron(g, n):
    """One positive neuron whose 20 heaviest weights are 30x the rest (so heavy hitters exist)."""
    w = torch.rand(1, n, generator=g, dtype=torch.float64)
    w[0, :20] *= 30.0
    return w


def _binary(g, k, n, p=0.1):
    return (torch.rand(k, n, generator=g, dtype=torch.float64) < p).double()


def _failures(m_of, *, R, seed, eps=0.5, n=3000):
    """R independent hybrid samples of one positive neuron, each checked on its own fresh input."""
    g = make_generator(seed)
    w = _heavy_neuron(g, n)
    S = _binary(g, 60, n)
    s = edge_sensitivity(w, S)
    new, mask, det, m, s_rest = hybrid_sparsify_rows(w.repeat(R, 1), s.repeat(R, 1), m_of, g)
    x = _binary(g, R, n)
    z = (w * x).sum(1)
    rel = ((new * x).sum(1) - z).abs() / z
    return int((rel > eps).sum()), int(m[0]), int(det[0].sum()), int(s_rest[0] > 0)


SIZES = {"corenet": _corenet_m, "sipp": _sipp_m, "pfp": _pfp_m}


@pytest.mark.statistical
@pytest.mark.parametrize("size", list(SIZES))
def test_eps_delta_statement_on_fresh_inputs(size):
    """One unit with non-negative contributions (a sign group of a neuron for CoreNet / SiPP, the channels
    feeding a consumer unit for PFP) under each method's sample size: violation rate <= delta."""
    R = 2000 if FULL else 300
    m_of = SIZES[size]()
    v, m, n_det, _ = _failures(m_of, R=R, seed=0)
    assert 0 < n_det and m < 3000 - n_det  # not trivial: heavy hitters kept, the rest really sampled
    assert binomial_upper_pvalue(v, R, 0.05) > 0.01


@pytest.mark.statistical
@pytest.mark.parametrize("size", list(SIZES))
def test_statement_test_catches_a_sampler_with_too_few_samples(size):
    R = 2000 if FULL else 300
    m_of = SIZES[size](scale=1 / 200)
    v, *_ = _failures(m_of, R=R, seed=1)
    assert binomial_upper_pvalue(v, R, 0.05) < 0.01


def test_unbiased_and_heavy_hitters_exact():
    g = make_generator(4)
    n, R = 300, 1500
    w = _heavy_neuron(g, n)
    S = torch.rand(20, n, generator=g, dtype=torch.float64)
    s = edge_sensitivity(w, S)
    new, mask, det, m, _ = hybrid_sparsify_rows(w.repeat(R, 1), s.repeat(R, 1), _corenet_m(eps=1.0), g)
    assert det[0].any() and int(m[0]) < int((~det[0]).sum())  # both parts present
    torch.testing.assert_close(new[:, det[0]], w.repeat(R, 1)[:, det[0]])  # kept exactly, weight unchanged
    x = torch.rand(n, generator=g, dtype=torch.float64)
    z = (new @ x).numpy()
    assert z.std() > 0 and stats.ttest_1samp(z, float(w[0] @ x)).pvalue > 1e-3
    # expected kept count against the empirical mean over the R draws
    kept = mask.sum(1).double()
    assert expected_kept(s, _corenet_m(eps=1.0)) == pytest.approx(float(kept.mean()), abs=4 * float(kept.std()) /
                                                                   R ** 0.5 + 1e-9)


@pytest.fixture(scope="module")
def small():
    return mlp(8, [40, 30], 3, seed=0), torch.randn(200, 8)


@pytest.mark.parametrize("method", ["corenet_hybrid", "sipp_hybrid", "pfp_top", "pfp_det"])
def test_prune_meets_keep_ratio_and_states_the_guarantee(small, method):
    m, x = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = prune(m, x, method=method, keep_ratio=0.5, seed=0, delta=0.1)
    g = res.guarantee
    assert abs(g.keep_ratio - 0.5) <= 0.06 and g.method == method
    if method == "pfp_det":  # deterministic: no sampling statement
        assert not g.guaranteed
    else:
        assert g.guaranteed == (not g.vacuous)
    kw = {"propagate": False} if method == "corenet_hybrid" else {}  # what prune() uses at a keep ratio
    again = prune(m, x, method=method, eps=g.eps, seed=0, delta=0.1, _allow_large_eps=True, **kw).module
    for a, b in zip(Network.from_module(again).layers, Network.from_module(res.module).layers):
        torch.testing.assert_close(a.weight, b.weight)  # prune(keep_ratio) == method(eps=solved eps), seeded


def test_hybrid_needs_a_smaller_eps_than_the_plain_sampler_at_the_same_size(small):
    """S_R <= S: for the same keep ratio the hybrid's statement is at least as strong."""
    m, x = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plain, hyb in (("corenet", "corenet_hybrid"),):
            a = prune(m, x, method=plain, keep_ratio=0.5, seed=0, delta=0.1).guarantee
            b = prune(m, x, method=hyb, keep_ratio=0.5, seed=0, delta=0.1).guarantee
            assert b.eps <= a.eps * 1.05, (plain, a.eps, b.eps)


def test_pfp_det_keeps_the_most_sensitive_neurons_unscaled(small):
    from prunebound.coresets.pfp import pfp_plan

    m, x = small
    res = prune(m, x, method="pfp_det", keep_ratio=0.5, seed=0, delta=0.1)
    plan = pfp_plan(m, x, delta=0.1, seed=0)
    layers, orig = Network.from_module(res.module).layers, Network.from_module(m).layers
    assert abs(res.guarantee.keep_ratio - 0.5) <= 0.03
    for i in range(1):  # layer 0: its sensitivities are the plan's (later ones are recomputed on the pruned net)
        kept = (layers[i].weight != 0).any(1)
        s = plan.sens[i]
        assert float(s[kept].min()) >= float(s[~kept].max())  # top-k by sensitivity
        nz = layers[i + 1].weight != 0
        assert bool(nz[:, kept].any()) and not bool(nz[:, ~kept].any())
        torch.testing.assert_close(layers[i + 1].weight[nz], orig[i + 1].weight[nz])  # no reweighting


def test_pfp_top_consumer_preactivation_unbiased_and_heavy_channels_unscaled():
    from prunebound.coresets.hybrid import pfp_top

    m, x = mlp(5, [30], 2, seed=0), torch.randn(100, 5)
    x0 = torch.randn(1, 5)
    z0 = Network.from_module(m).trace(x0).preacts[1][0]
    zs, dets = [], []
    for seed in range(300):
        res = pfp_top(m, x, eps=0.99, delta=0.5, seed=seed, K=0.05)
        zs.append(Network.from_module(res.module).trace(x0).preacts[1][0])
        dets.append(res.guarantee.extra["deterministic_channels"])
    zs = torch.stack(zs)
    assert 0 < min(dets) and res.guarantee.extra["channels_kept"][0] < 30  # both parts present
    assert float(zs[:, 0].std()) > 0
    assert stats.ttest_1samp(zs[:, 0].numpy(), float(z0[0])).pvalue > 1e-3


@pytest.mark.parametrize("method", ["pfp_top", "pfp_det"])
def test_pfp_variants_remove_conv_filters_consistently(method):
    from prunebound.network import conv1d_small

    m = conv1d_small(seed=0, channels=8)
    res = prune(m, torch.randn(64, 40), method=method, keep_ratio=0.6, seed=0, delta=0.5)
    net = Network.from_module(res.module)
    for prod, cons in zip(net.layers[:-1], net.layers[1:]):
        alive = (prod.weight.reshape(prod.fan_out, -1) != 0).any(1)
        assert not bool((cons.weight.reshape(cons.fan_out, prod.fan_out, -1)[:, ~alive] != 0).any())
    assert res.guarantee.keep_ratio < 1.0
