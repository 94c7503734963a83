import math

import pytest
import torch

from prunebound.errors import InvalidParameterError, UnsupportedLayerError
from prunebound.network import Network, mlp, sparsity
from prunebound.subnet_search.certify import approximation_error, target_weights
from prunebound.subnet_search.construct import (
    construct_ticket,
    measured_width,
    per_weight_tolerance,
    required_width,
)


@pytest.fixture(scope="module")
def target():
    """A random 3-layer bias-free ReLU target, d = 4 -> 8 -> 8 -> 2."""
    return mlp(4, [8, 8], 2, bias=False, seed=0)


@pytest.mark.parametrize(
    "method,eps", [("pensia", 0.05), ("pensia", 0.01), ("orseau", 0.05), ("malach", 0.2)]
)
def test_ticket_meets_eps_on_ball(target, method, eps):
    tk = construct_ticket(target, method=method, eps=eps, radius=1.0, seed=1)
    ae = approximation_error(target, tk, n_samples=100_000, seed=2)
    assert ae.n_samples >= 100_000
    assert ae.empirical <= ae.analytic  # the analytic certificate dominates
    assert ae.analytic <= eps  # and meets eps
    assert abs(ae.analytic - tk.certified_error) <= 1e-9 * max(1.0, eps)
    assert ae.empirical > 0  # a real approximation, not a copy


def test_width_matches_formula(target):
    ws = target_weights(target)
    P = sum(2 * w.numel() for w in ws)
    for method, eps in [("pensia", 0.05), ("orseau", 0.05), ("malach", 0.2)]:
        tk = construct_ticket(target, method=method, eps=eps, seed=3)
        ew = per_weight_tolerance(ws, eps, 1.0)
        w_max = max(float(w.abs().max()) for w in ws)
        n = required_width(method, eps_w=ew, n_problems=P, delta=0.05, w_max=w_max)
        assert tk.n_per_sign == (n, n, n)
        assert tk.hidden_widths == tuple(2 * n * w.shape[1] for w in ws)
        net = Network.from_module(tk.module)
        assert [ly.fan_out for ly in net.layers] == [2 * n * 4, 8, 2 * n * 8, 8, 2 * n * 8, 2]
        assert tk.random_params == sum(ly.n_weights for ly in net.layers)
    # Pensia: n = ceil(log2(2P / (delta eps_w))) -- hand check
    ew = per_weight_tolerance(ws, 0.05, 1.0)
    assert required_width("pensia", eps_w=ew, n_problems=P, delta=0.05) == math.ceil(
        math.log2(2 * P / (0.05 * ew)))


def test_width_orders_logarithmic_vs_polynomial(target):
    ws = target_weights(target)
    P = sum(2 * w.numel() for w in ws)
    # log width: squaring 1/eps_w at most ~doubles n (Pensia, Orseau); poly width: n scales like 1/eps_w
    # (Malach)
    for m in ("pensia", "orseau"):
        a = required_width(m, eps_w=1e-3, n_problems=P, delta=0.05)
        b = required_width(m, eps_w=1e-6, n_problems=P, delta=0.05)
        assert b <= 2 * a
    a = required_width("malach", eps_w=1e-3, n_problems=P, delta=0.05)
    b = required_width("malach", eps_w=1e-4, n_problems=P, delta=0.05)
    assert 9 <= b / a <= 11


def test_per_weight_tolerance_is_tight(target):
    from prunebound.subnet_search.certify import propagate_bound

    ws = target_weights(target)
    ew = per_weight_tolerance(ws, 0.05, 2.0)
    wn = [float(torch.linalg.matrix_norm(w, ord=2)) for w in ws]
    fro = [math.sqrt(2 * w.numel()) for w in ws]
    assert propagate_bound(wn, [f * ew for f in fro], 2.0)[-1] <= 0.05
    assert propagate_bound(wn, [f * ew * 1.001 for f in fro], 2.0)[-1] > 0.05


def test_ticket_is_a_pruned_random_network(target):
    tk = construct_ticket(target, method="pensia", eps=0.05, seed=4)
    rep = sparsity(tk.module)
    assert rep.nonzero == tk.kept_params < tk.random_params
    # each hidden neuron of the first layer of every pair sees exactly one input
    net = Network.from_module(tk.module)
    for ly in net.layers[::2]:
        assert bool(((ly.weight != 0).sum(1) == 1).all())


def test_rejects_bias_and_bad_args():
    with pytest.raises(UnsupportedLayerError):
        construct_ticket(mlp(3, [4], 1, bias=True, seed=0), method="pensia", eps=0.1)
    t = mlp(3, [4], 1, bias=False, seed=0)
    with pytest.raises(InvalidParameterError):
        construct_ticket(t, method="nope", eps=0.1)
    with pytest.raises(InvalidParameterError):
        construct_ticket(t, method="pensia", eps=1.5)
    with torch.no_grad():
        t[0].weight.mul_(10)
    with pytest.raises(InvalidParameterError):
        construct_ticket(t, method="malach", eps=0.1)  # max|W| >= 1: product density vanishes


def test_measured_width_below_theory(target):
    rows = {(m, e): measured_width(target, method=m, eps=e, seeds=(0, 1))
            for m in ("pensia", "malach") for e in (0.2, 0.05)}
    for r in rows.values():
        assert 1 <= r.measured_n <= r.theory_n
    # polynomial (Malach) vs logarithmic (Pensia) growth of the measured width as eps shrinks 4x
    grow_p = rows["pensia", 0.05].measured_n / rows["pensia", 0.2].measured_n
    grow_m = rows["malach", 0.05].measured_n / rows["malach", 0.2].measured_n
    assert grow_p < 1.6 < 2.5 < grow_m
