import math

import numpy as np
import pytest
import torch

from prunebound.errors import DataError, InvalidParameterError, UnsupportedLayerError
from prunebound.network import Network, mlp, sparsity
from prunebound.subnet_search.certify import approximation_error, target_weights
from prunebound.subnet_search.construct import (
    _candidate_positions,
    construct_ticket,
    measured_width,
    pensia_work,
    per_weight_tolerance,
    required_width,
    ticket_error,
)
from prunebound.subnet_search.subset_sum import (
    subset_sum_brute_force,
    subset_sum_exact,
    subset_sum_exact_batched,
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


# ---------------------------------------------------------------------- batched / bounded Pensia solve


@pytest.mark.parametrize("n,n_use", [(9, None), (16, 11), (20, 20)])
def test_batched_solver_equals_per_row_exact(n, n_use):
    rng = np.random.default_rng(n)
    vals = rng.uniform(0, 1, (150, n)) * rng.uniform(-1, 1, (150, n))
    tg = rng.uniform(-0.5, 0.5, 150)
    r = subset_sum_exact_batched(vals, tg, n_use=n_use, chunk=2048)
    m = n if n_use is None else n_use
    assert not r.masks[:, m:].any()
    np.testing.assert_allclose(r.sums, np.where(r.masks, vals, 0).sum(1), atol=1e-15)
    for i in range(150):
        ref = subset_sum_exact(vals[i, :m], tg[i])
        assert abs(r.errors[i] - ref.errors[0]) <= 1e-12
    if m <= 12:  # and brute force over all subsets
        bf = np.array([subset_sum_brute_force(vals[i, :m], tg[i]).errors[0] for i in range(150)])
        np.testing.assert_allclose(r.errors, bf, atol=1e-12)


def test_batched_solver_validates():
    with pytest.raises(InvalidParameterError):
        subset_sum_exact_batched(np.ones((2, 3)), [0.0, 0.0], n_use=4)
    with pytest.raises(DataError):
        subset_sum_exact_batched(np.ones((2, 3)), [0.0])
    with pytest.raises(DataError):
        subset_sum_exact_batched(np.full((2, 3), np.nan), [0.0, 1.0])


def test_candidate_positions_balanced_ladder():
    rng = np.random.default_rng(3)
    vals = rng.uniform(-1, 1, (500, 30))
    vals[0] = np.abs(vals[0])  # a row with one sign only
    m = 10
    cols = _candidate_positions(vals, m)
    for i in range(500):
        c = cols[i]
        assert len(set(c.tolist())) == m
        v = vals[i]
        pos, neg = v[c][v[c] >= 0], v[c][v[c] < 0]
        n_pos = int((v >= 0).sum())
        assert len(pos) == min(n_pos, max(m // 2, m - (30 - n_pos)))
        if len(pos) >= 2:  # the smallest and the largest candidate of each sign are kept
            assert pos.min() == v[v >= 0].min() and pos.max() == v[v >= 0].max()
        if len(neg) >= 2:
            assert neg.max() == v[v < 0].max() and neg.min() == v[v < 0].min()


@pytest.fixture(scope="module")
def small_bounded():
    """A 6-10-4 target; max_work forces the bounded solve (m < n); both routes on the same draw."""
    t = mlp(6, [10], 4, bias=False, seed=0)
    ws = target_weights(t)
    kw = dict(method="pensia", eps=0.05, seed=1, max_work=pensia_work(ws, 12))
    return t, construct_ticket(t, solver="batched", **kw), construct_ticket(t, solver="per_weight", **kw)


def test_bounded_batched_route_equals_per_weight_route(small_bounded):
    t, tb, tp = small_bounded
    assert tb.width_mode == tp.width_mode == "bounded"
    assert tb.candidates == tp.candidates < tb.n_per_sign[0] == tb.n_theory
    assert (tb.solver, tp.solver) == ("batched", "per_weight")
    nb, np_ = Network.from_module(tb.module), Network.from_module(tp.module)
    for a, b in zip(nb.layers, np_.layers):
        assert torch.equal(a.mask, b.mask)  # same subsets chosen for every weight
        assert torch.equal(a.weight, b.weight)
    assert tb.certified_error == pytest.approx(tp.certified_error, rel=1e-12)
    assert tb.max_weight_error == pytest.approx(tp.max_weight_error, rel=1e-12)
    # each kept V weight belongs to at most `candidates` per (output, input, sign) instance
    v = nb.layers[1].mask.reshape(10, 6, 2, tb.n_per_sign[0])
    assert int(v.sum(-1).max()) <= tb.candidates


def test_bounded_ticket_certified_on_ball(small_bounded):
    t, tb, _ = small_bounded
    ae = approximation_error(t, tb, n_samples=100_000, seed=5)
    assert ae.n_samples >= 100_000
    assert 0 < ae.empirical <= ae.analytic <= tb.eps
    assert abs(ae.analytic - tb.certified_error) <= 1e-9
    # the collapsed evaluation route agrees with the dense one on the same points
    fe = ticket_error(t, tb, n_samples=100_000, seed=5)
    assert fe.analytic == pytest.approx(ae.analytic, rel=1e-12)
    assert fe.empirical == pytest.approx(ae.empirical, rel=1e-9)


def test_pilot_route_vs_exact_route():
    t = mlp(6, [10], 4, bias=False, seed=0)
    ws = target_weights(t)
    tk = construct_ticket(t, method="pensia", eps=0.05, seed=1)
    assert tk.width_mode == "bounded" and tk.candidates < tk.n_per_sign[0] == tk.n_theory
    ex = construct_ticket(t, method="pensia", eps=0.05, seed=1, candidates=tk.n_theory)
    assert ex.width_mode == "exact" and ex.candidates == ex.n_theory
    # same width, same draw: the exact route only certifies a (much) smaller error, at exponential cost
    assert ex.random_params == tk.random_params
    assert ex.certified_error < tk.certified_error <= 0.05
    assert pensia_work(ws, tk.candidates) < pensia_work(ws, tk.n_theory)
    with pytest.raises(InvalidParameterError):  # too small a budget cannot certify eps
        construct_ticket(t, method="pensia", eps=0.005, seed=1, max_work=pensia_work(ws, 4), max_attempts=2)
    with pytest.raises(InvalidParameterError):  # more candidates than the budget allows
        construct_ticket(t, method="pensia", eps=0.05, seed=1, candidates=12, max_work=pensia_work(ws, 8))


@pytest.mark.parametrize("arch,eps,seed", [((6, [10], 4), 0.05, 0), ((8, [12, 12], 3), 0.01, 1),
                                           ((20, [50], 10), 0.01, 2), ((5, [7], 2), 0.1, 3)])
def test_pilot_certificate_near_eps_and_sound(arch, eps, seed):
    """The pilot's candidate count puts the certificate below eps but not absurdly far below it, and the
    certificate dominates the empirical sup error (float64 evaluation of the float32 network)."""
    t = mlp(arch[0], arch[1], arch[2], bias=False, seed=seed)
    tk = construct_ticket(t, method="pensia", eps=eps, seed=seed)
    assert eps / 1000 <= tk.certified_error <= eps
    ae = ticket_error(t, tk, n_samples=20_000, seed=seed)
    assert 0 < ae.empirical <= ae.analytic
    assert ae.analytic == pytest.approx(tk.certified_error, rel=1e-9)
    assert next(tk.module.parameters()).dtype == torch.float32


def test_same_draw_is_resolved_with_more_candidates():
    """A too-small candidate count fails the certificate; the construction re-solves the subset sums of the
    same random network with more candidates instead of drawing a new one."""
    t = mlp(6, [10], 4, bias=False, seed=0)
    tk = construct_ticket(t, method="pensia", eps=0.05, seed=1, candidates=3)
    assert tk.attempts == 1 and tk.candidates > 3 and tk.certified_error <= 0.05
    ref = construct_ticket(t, method="pensia", eps=0.05, seed=1, candidates=tk.candidates)
    for a, b in zip(Network.from_module(tk.module).layers, Network.from_module(ref.module).layers):
        assert torch.equal(a.weight, b.weight)


def test_float64_storage_matches_float32_certificate_kind():
    t = mlp(6, [10], 4, bias=False, seed=0)
    tk = construct_ticket(t, method="pensia", eps=0.05, seed=1, dtype=torch.float64)
    assert next(tk.module.parameters()).dtype == torch.float64
    ae = approximation_error(t, tk, n_samples=20_000, seed=0)
    assert ae.empirical <= ae.analytic <= 0.05
    with pytest.raises(InvalidParameterError):
        construct_ticket(t, method="pensia", eps=0.05, dtype=torch.float16)


def test_collapsed_pair_equals_dense_product():
    from prunebound.subnet_search.certify import collapsed_pair

    g = torch.Generator().manual_seed(0)
    h, d_in, d_out = 40, 7, 5
    u = torch.zeros(h, d_in)
    k = torch.randint(0, d_in, (h,), generator=g)
    u[torch.arange(h), k] = torch.randn(h, generator=g)
    u[3] = 0.0  # a neuron without input
    v = torch.randn(d_out, h, generator=g)
    p, n_ = collapsed_pair(u, v)
    u64, v64 = u.double(), v.double()
    torch.testing.assert_close(p, v64 @ u64.clamp(min=0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(n_, v64 @ (-u64).clamp(min=0), rtol=1e-12, atol=1e-12)
    u[0, :2] = 1.0
    with pytest.raises(UnsupportedLayerError, match="neuron 0"):
        collapsed_pair(u, v)


def test_ticket_error_detects_a_broken_ticket(small_bounded):
    from prunebound.network import clone

    t, tb, _ = small_bounded
    bad = clone(tb.module)
    layer = Network.from_module(bad).layers[0]
    with torch.no_grad():  # a hidden neuron that sees two inputs breaks the collapsed identity
        layer.module.weight_mask[0, :] = 1.0
    with pytest.raises(UnsupportedLayerError):
        ticket_error(t, bad, radius=1.0, n_samples=1000)


def test_ticket_error_float32_screen_equals_the_float64_sweep(small_bounded, monkeypatch):
    """The float32 screen + float64 re-evaluation finds the same empirical maximum as the full float64 sweep
    (to rounding), and when the screen keeps too many points it falls back to that sweep."""
    import prunebound.subnet_search.construct as construct

    t, tb, _ = small_bounded
    full = ticket_error(t, tb, n_samples=30_000, seed=2, screen=False)
    fast = ticket_error(t, tb, n_samples=30_000, seed=2)
    assert fast.empirical == pytest.approx(full.empirical, rel=1e-12)
    assert fast.analytic == full.analytic
    monkeypatch.setattr(construct, "_SCREEN_CAP", 0)
    assert ticket_error(t, tb, n_samples=30_000, seed=2).empirical == full.empirical
