"""Heavy hitters kept exactly + importance sampling of the rest (coresets/hybrid.py): the split against its
definition, unbiasedness, the (eps, delta) statement on fresh inputs (with a deliberately broken sampler that
the same test catches), and the methods behind prune(); on a residual conv net with BatchNorm (ResNet-20) they run
the plain methods' plumbing (patches, PFP's graph pairs, the user's module returned with BatchNorm kept)."""

import os
import warnings

import pytest
import torch
from scipy import stats
from scipy.stats import binomtest
from torch import nn

from prunebound.coresets import prune
from prunebound.coresets.held_out import held_out_violations
from prunebound.coresets.hybrid import expected_kept, heavy_split, hybrid_sparsify_rows
from prunebound.coresets.sampling import bernstein_sample_size, corenet_sample_size, make_generator
from prunebound.coresets.sensitivity import edge_sensitivity
from prunebound.coresets.sipp_budget import sipp_alpha, sipp_sample_size
from prunebound.network import Network, mlp
from prunebound.testing import binomial_upper_pvalue, randomize_batchnorm

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


# ------------------------------------------------------- ResNet-20 (as tests/coresets/test_conv_coresets.py)
WIDTH, DELTA = 4, 0.05  # ResNet-20 with 4/8/16 filters per stage: the paper's graph, 16x fewer weights
CLAIM_LOW = 0.01  # a deliberately wrong claim: eps_l / 100 (the certified eps_l is loose at this size)
KEEP = {"corenet_hybrid": 0.5, "sipp_hybrid": 0.5, "pfp_top": 0.55, "pfp_det": 0.55}


@pytest.fixture(scope="module")
def task():
    from prunebound.data import ConvTeacherTask

    return ConvTeacherTask(seed=0)


@pytest.fixture(scope="module")
def resnet():
    from prunebound.zoo_models import resnet20

    return randomize_batchnorm(resnet20(width=WIDTH, seed=0))


@pytest.fixture(scope="module")
def resnet_results(task, resnet):
    """Each hybrid once on ResNet-20 (128 training inputs; sensitivities on 8 of them x 64-1024 positions)."""
    x = task.sample(128, seed=1).x
    return {k: prune(resnet, x, method=k, keep_ratio=kr, delta=DELTA, seed=0, n_points=8) for k, kr in KEEP.items()}


@pytest.mark.parametrize("method", list(KEEP))
def test_resnet20_result_is_the_users_module_with_batchnorm_computing_the_masked_network(
        resnet_results, resnet, task, method):
    import torch.nn.utils.prune as tprune

    from prunebound.network import fold_batchnorm, is_pruned

    res = resnet_results[method]
    out = res.module
    assert abs(res.guarantee.keep_ratio - KEEP[method]) <= 0.05 and res.sparsity > 0.3
    assert type(out) is type(resnet) and out is not resnet
    assert [type(m) for m in out.modules()] == [type(m) for m in resnet.modules()]  # BatchNorm kept
    for (name, mod), ref in zip(out.named_modules(), resnet.modules()):
        if isinstance(mod, nn.BatchNorm2d):
            for key in ("weight", "bias", "running_mean", "running_var"):
                assert torch.equal(getattr(mod, key), getattr(ref, key)), (name, key)
    layers = Network.from_module(resnet).layers
    for ly in layers:  # every conv / the head carries a mask and computes with weight_orig * weight_mask
        mod = out.get_submodule(ly.path)
        assert is_pruned(mod)
        torch.testing.assert_close(mod.weight, mod.weight_orig * mod.weight_mask)
    # the same hybrid on the model folded beforehand (same sensitivities, same seed) gives the same function
    twin = prune(fold_batchnorm(resnet), task.sample(128, seed=1).x, method=method, keep_ratio=KEEP[method],
                 delta=DELTA, seed=0, n_points=8)
    xt = task.sample(32, seed=3).x
    with torch.no_grad():
        torch.testing.assert_close(out(xt), twin.module(xt), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(out(xt), resnet(xt), rtol=1e-3, atol=1e-3)  # it was pruned
    assert res.sparsity == pytest.approx(twin.sparsity)
    # the masks are what the masked computation uses: removing them leaves a plain state dict of the user's class
    from prunebound.zoo_models import resnet20

    for ly in layers:
        tprune.remove(out_l := out.get_submodule(ly.path), "weight")
        assert not is_pruned(out_l)
    fresh = resnet20(width=WIDTH, seed=1)
    fresh.load_state_dict(out.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(xt), twin.module(xt), rtol=1e-4, atol=1e-4)


def _block_first(path: str) -> bool:
    return path.endswith(".conv1") and path != "conv1"


@pytest.mark.parametrize("method", ["pfp_top", "pfp_det"])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet20_pfp_variants_remove_filters_only_in_block_first_convs(task, method, shortcut):
    """As plain PFP: filters only where the consumer (the block's conv2) is their sole reader; residual-stream
    producers (block conv2, projection shortcuts, the stem) keep every filter, their readers lose input slices.
    The old consecutive-layer pairing raised a RuntimeError here."""
    from prunebound.zoo_models import resnet20

    m = randomize_batchnorm(resnet20(width=WIDTH, shortcut=shortcut, seed=0))
    x = task.sample(64, seed=1).x
    res = prune(m, x, method=method, eps=0.9, delta=0.5, seed=0, K=0.01, n_points=8)
    plain = prune(m, x, method="pfp", eps=0.9, delta=0.5, seed=0, K=0.01, n_points=8)
    net = Network.from_module(res.module)
    want = sorted(ly.path for ly in net.layers if _block_first(ly.path))
    assert sorted(res.guarantee.extra["filter_pruned"]) == want
    for key in ("filter_pruned", "input_pruned"):  # the same pairs as plain PFP
        assert res.guarantee.extra[key] == plain.guarantee.extra[key]
    removed_any = False
    for ly in net.layers:
        dead = ~(ly.weight.reshape(ly.fan_out, -1) != 0).any(1)
        if not _block_first(ly.path):
            assert not bool(dead.any()), ly.path
            continue
        removed_any |= bool(dead.any())
        reader = net.layers[ly.index + 1]
        assert reader.path == ly.path[: -len("conv1")] + "conv2"
        assert not bool((reader.weight[:, dead] != 0).any())  # the block's conv2 ignores the removed channels
    assert removed_any and res.guarantee.keep_ratio < 1.0
    with torch.no_grad():
        assert torch.isfinite(res.module(task.sample(4, seed=3).x)).all()


@pytest.mark.statistical
@pytest.mark.parametrize("claim, holds", [(1.0, True), (CLAIM_LOW, False)])
def test_resnet20_sipp_hybrid_per_layer_guarantee_on_held_out_inputs(resnet_results, resnet, task, claim, holds):
    """SiPP-hybrid's per-neuron statement ``|z~ - z| <= eps_l sum_j |w_ij a_j|`` (``eps_l`` = the layer's largest
    row error ``err_f(m_R)``) fails on at most a ``delta`` fraction of held-out (input, channel, position) cases
    (one-sided binomial test); the same test rejects a claim ``CLAIM_LOW * eps_l`` (it has power)."""
    res = resnet_results["sipp_hybrid"]
    assert res.guarantee.extra["deterministic_fraction"] > 0  # heavy hitters present: not plain SiPP
    v, n, sparsified = held_out_violations(res, resnet, task.sample(16, seed=2).x, claim=claim)
    assert sparsified >= 5, f"only {sparsified} layers sparsified; the test would be trivial"
    p = binomtest(v, n, DELTA, alternative="greater").pvalue
    assert (p > 0.01) if holds else (p < 0.01), (claim, v, n)
