import copy
import os

import pytest
import torch
from scipy import stats
from torch import nn

from prunebound.coresets.corenet import corenet, corenet_constants, delta_hat, sparsify_layer
from prunebound.coresets.sampling import make_generator
from prunebound.errors import DataError, InvalidParameterError, UnsupportedLayerError
from prunebound.network import Network, is_pruned, mlp
from prunebound.testing import binomial_upper_pvalue

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))


def _binary(g, k, n, p=0.1):
    return (torch.rand(k, n, generator=g, dtype=torch.float64) < p).double()


def _guarantee_failures(m_scale: float, *, R: int, seed: int, eps=0.5, delta=0.05, n=3000):
    """R independent SPARSIFY runs of one positive neuron, each checked on its own fresh input."""
    g = make_generator(seed)
    w = torch.rand(1, n, generator=g, dtype=torch.float64)
    S = _binary(g, 60, n)
    new, _, m, _ = sparsify_layer(w.repeat(R, 1), S, eps=eps, delta=delta, eta=1, K=1.0, seed=g,
                                  m_scale=m_scale)
    x = _binary(g, R, n)
    z = (w * x).sum(1)
    rel = ((new * x).sum(1) - z).abs() / z
    return int((rel > eps).sum()), int(m[0, 0])


@pytest.mark.statistical
def test_eps_delta_guarantee_per_neuron_on_fresh_inputs():
    R = 2000 if FULL else 300
    v, m = _guarantee_failures(1.0, R=R, seed=0)
    assert m < 3000  # the test is not trivial: the theorem's m is below the number of edges
    assert binomial_upper_pvalue(v, R, 0.05) > 0.01


@pytest.mark.statistical
def test_guarantee_test_catches_sampler_with_twentieth_of_m():
    R = 2000 if FULL else 300
    v, _ = _guarantee_failures(1.0 / 20, R=R, seed=1)
    assert binomial_upper_pvalue(v, R, 0.05) < 0.01


def test_mixed_sign_neuron_error_relative_to_positive_plus_negative_parts():
    g = make_generator(3)
    n, R, eps = 800, 300, 0.5
    w = torch.randn(1, n, generator=g, dtype=torch.float64)
    S = _binary(g, 60, n)
    new, mask, m, tot = sparsify_layer(w.repeat(R, 1), S, eps=eps, delta=0.05, eta=1, K=1.0, seed=g)
    assert tot.shape == (2, R) and bool((m[:, 0] < (w > 0).sum()).all() | True)
    x = _binary(g, R, n)
    zp, zn = (w.clamp_min(0) * x).sum(1), ((-w).clamp_min(0) * x).sum(1)
    err = ((new * x).sum(1) - (zp - zn)).abs() / (zp + zn)
    assert binomial_upper_pvalue(int((err > eps).sum()), R, 0.05) > 0.01
    assert bool(((new != 0) <= (mask > 0)).all())


def test_unbiased_preactivation_over_1000_resamples():
    g = make_generator(4)
    n, R = 200, 1500
    w = torch.randn(1, n, generator=g, dtype=torch.float64)
    S = torch.rand(20, n, generator=g, dtype=torch.float64)
    new, _, m, _ = sparsify_layer(w.repeat(R, 1), S, eps=0.9, delta=0.5, eta=1, K=0.02, seed=g)
    assert int(m.max()) < (w > 0).sum()  # really sampled
    x = torch.rand(n, generator=g, dtype=torch.float64)
    z = (new @ x).numpy()
    assert stats.ttest_1samp(z, float(w[0] @ x)).pvalue > 1e-3
    assert z.std() > 0


def _model_and_data():
    m = mlp(6, [24, 24], 3, seed=0)
    x = torch.rand(300, 6)  # non-negative inputs: the first layer is sparsified too
    return m, x


def test_returns_masked_copy_and_leaves_input_untouched():
    m, x = _model_and_data()
    ref = copy.deepcopy(m.state_dict())
    res = corenet(m, x, eps=0.9, delta=0.1, seed=0, use_kappa=False, K=0.01)
    p, g = res.module, res.guarantee
    for k, v in m.state_dict().items():
        assert torch.equal(v, ref[k])
    net = Network.from_module(p)
    for ly in net.layers:
        assert is_pruned(ly.module)
        torch.testing.assert_close(ly.module.weight, ly.module.weight_orig * ly.module.weight_mask)
    assert g.keep_ratio < 1.0 and g.method == "corenet"
    assert len(g.eps_per_layer) == 3 and g.eps_per_layer[0] < g.eps_per_layer[-1]


def test_deterministic_given_seed():
    m, x = _model_and_data()
    a = corenet(m, x, eps=0.9, seed=5, use_kappa=False, K=0.01).module
    b = corenet(m, x, eps=0.9, seed=5, use_kappa=False, K=0.01).module
    for ka, kb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(ka, kb)


def test_first_layer_on_signed_inputs_is_pruned():
    m = mlp(6, [24], 3, seed=0)
    g = corenet(m, torch.randn(100, 6), eps=0.9, seed=0, use_kappa=False, K=0.01).guarantee
    assert g.extra["signed_input_layers"] == ["0"] and g.eps_per_layer[0] > 0.0
    assert g.sample_sizes[0] > 0


def _signed_failures(m_scale: float, *, R: int, seed: int, eps=0.5, delta=0.05, n=3000):
    """R independent SPARSIFY runs of one first-layer neuron on signed inputs, each checked on a fresh input
    against ``eps * sum_j |w_j a_j(x)|``; delta halved in the sample size as corenet does for such layers."""
    g = make_generator(seed)
    w = torch.randn(1, n, generator=g, dtype=torch.float64)

    def signed(k):
        return torch.randn(k, n, generator=g, dtype=torch.float64)

    new, _, m, _ = sparsify_layer(w.repeat(R, 1), signed(60), eps=eps, delta=delta / 2, eta=1, K=1.0,
                                  seed=g, m_scale=m_scale)
    x = signed(R)
    err = ((new - w) * x).sum(1).abs() / (w * x).abs().sum(1)
    return int((err > eps).sum()), int(m.max())


@pytest.mark.statistical
def test_eps_delta_guarantee_first_layer_signed_inputs_held_out():
    R = 2000 if FULL else 300
    v, m = _signed_failures(1.0, R=R, seed=10)
    assert m < 1500  # not trivial: far fewer samples than edges in a sign group
    assert binomial_upper_pvalue(v, R, 0.05) > 0.01


@pytest.mark.statistical
def test_first_layer_guarantee_test_catches_a_broken_sampler():
    R = 2000 if FULL else 300
    v, m = _signed_failures(1.0 / 400, R=R, seed=11)  # the theorem's m is conservative: 1/400 breaks
    assert m < 5 and binomial_upper_pvalue(v, R, 0.05) < 0.01


def test_vacuous_eps_is_not_guaranteed_and_says_so():
    m = mlp(6, [40, 30], 3, seed=0)
    x = torch.randn(200, 6)
    from prunebound.coresets import prune

    g = prune(m, x, method="corenet", keep_ratio=0.3, seed=0).guarantee
    assert g.eps >= 1.0  # this keep ratio needs a relative error beyond 1 on this net
    assert g.vacuous and not g.guaranteed
    assert "VACUOUS" in g.summary() and "no guarantee" in g.summary()
    assert g.to_dict()["vacuous"] is True
    h = corenet(m, x, eps=0.5, seed=0).guarantee
    assert not h.vacuous and h.guaranteed and "VACUOUS" not in h.summary()


def test_later_layers_see_sparsified_earlier_layers(monkeypatch):
    import importlib

    cn = importlib.import_module("prunebound.coresets.corenet")

    m, x = _model_and_data()
    seen = []
    orig = cn.sparsify_layer

    def spy(weight, inputs, **kw):
        seen.append(inputs.clone())
        return orig(weight, inputs, **kw)

    monkeypatch.setattr(cn, "sparsify_layer", spy)
    p, g = cn.corenet(m, x, eps=0.9, seed=0, use_kappa=False, K=0.01)
    S = x if g.extra["n_points_used"] == len(x) else None
    if S is not None:
        dense_in = Network.from_module(m).trace(S).inputs[1]
        assert not torch.allclose(seen[1], dense_in)  # layer 2 got inputs of the sparsified layer 1


def test_constants_match_algorithm_1():
    c = corenet_constants([10, 20, 3], 0.1)
    assert c["eta"] == 33 and c["eta_star"] == 20
    import math
    lam = math.log(660) / 2
    r = math.sqrt(2 * lam)
    assert c["kappa"] == pytest.approx(r * (1 + r * math.log(8 * 660 / 0.1)))
    assert c["n_points"] == math.ceil(math.log(8 * 660 / 0.1) * math.log(660))


def test_delta_hat_is_one_for_nonnegative_weights_and_inputs():
    w = torch.rand(4, 5)
    assert delta_hat(w, torch.rand(9, 5)) == pytest.approx(1.0)
    assert delta_hat(torch.tensor([[1.0, -1.0]]), torch.tensor([[2.0, 1.0]])) == pytest.approx(3.0)


def test_input_validation():
    m, x = _model_and_data()
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(InvalidParameterError):
            corenet(m, x, eps=bad)
        with pytest.raises(InvalidParameterError):
            corenet(m, x, eps=0.5, delta=bad)
    with pytest.raises(DataError):
        corenet(m, torch.rand(0, 6), eps=0.5)
    with pytest.raises(DataError):
        corenet(m, None, eps=0.5)
    bad_m = copy.deepcopy(m)
    with torch.no_grad():
        bad_m[0].weight[0, 0] = float("nan")
    with pytest.raises(DataError):
        corenet(bad_m, x, eps=0.5)
    depthwise = nn.Sequential(nn.Unflatten(1, (4, 10)), nn.Conv1d(4, 4, 3, groups=4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(32, 3))
    with pytest.raises(UnsupportedLayerError, match="groups=4"):
        corenet(depthwise, torch.rand(10, 40), eps=0.5)
    with pytest.raises(UnsupportedLayerError):
        corenet(nn.Sequential(nn.Linear(3, 3), nn.Softplus()), torch.rand(4, 3), eps=0.5)


def test_propagate_false_gives_every_layer_eps_prime():
    m, x = _model_and_data()
    a = corenet(m, x, eps=0.9, seed=0).guarantee
    b = corenet(m, x, eps=0.9, seed=0, propagate=False).guarantee
    assert a.guaranteed and not b.guaranteed
    assert all(e == pytest.approx(b.extra["eps_prime"]) for e in b.eps_per_layer)
    assert all(ea < eb for ea, eb in zip(a.eps_per_layer, b.eps_per_layer))
    assert a.eps_per_layer[0] < a.eps_per_layer[1] < a.eps_per_layer[2]  # Delta products shrink forward
