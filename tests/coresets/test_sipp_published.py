import os

import pytest
import torch

from prunebound.coresets import prune
from prunebound.coresets.sampling import make_generator, sparsify_rows
from prunebound.coresets.sipp import _rows, sipp_plan
from prunebound.coresets.sipp_budget import allocate_budget, sipp_alpha, sipp_error, sipp_sample_size
from prunebound.network import mlp
from prunebound.testing import binomial_upper_pvalue

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))


def test_sensitivities_equal_the_signed_split_definition_by_hand():
    m = mlp(3, [1], 2, seed=0)
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[2.0, -1.0, 3.0]]))
    x = torch.tensor([[1.0, -2.0, -1.0], [-1.0, 1.0, 2.0]])
    plan = sipp_plan(m, x, seed=0, n_points=2)
    # rows W+ = {w0 = 2, w2 = 3} and W- = {w1 = -1}; points a+ = (1,0,0), (0,1,2); a- = (0,2,1), (1,0,0)
    # W+: (1,0,0) -> (2/2, -, 0); (0,1,2) -> (0, -, 6/6); (0,2,1) -> (0, -, 3/3); (1,0,0) -> (1, -, 0)
    # W-: the single edge has ratio 1 wherever its input is non-zero
    expected = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(plan.sens[0].double(), expected.double())


def test_error_model_and_sample_size_are_inverse():
    alpha = torch.tensor([0.5, 10.0, 300.0], dtype=torch.float64)
    for eps in (0.05, 0.5, 3.0):
        m = sipp_sample_size(alpha, eps)
        assert torch.all(sipp_error(m, alpha) <= eps + 1e-12)
        assert torch.all(sipp_error((m - 1).clamp_min(1), alpha)[m > 1] > eps - 1e-12)


def test_budget_program_meets_constraints_and_beats_uniform():
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(120, generator=g, dtype=torch.float64) ** 3 * 200
    nnz = torch.randint(10, 80, (120,), generator=g)
    w = torch.full((120,), 1 / 120, dtype=torch.float64)
    for budget in (300.0, 1500.0, 4000.0):
        m = allocate_budget(alpha, nnz, w, budget)
        assert float(m.sum()) <= budget * (1 + 1e-6)
        assert torch.all(m >= -1e-9) and torch.all(m <= nnz.double() + 1e-6)
        uni = torch.minimum(torch.full((120,), budget / 120, dtype=torch.float64), nnz.double())
        assert float((w * sipp_error(m.clamp_min(1e-9), alpha)).sum()) < float((w * sipp_error(uni, alpha)).sum())


def _failures(m_scale, *, R, seed, eps=0.5, delta=0.05, n=3000):
    """R independent samplings of one first-layer neuron (signed inputs) at SiPP's m for eps, each checked on a
    fresh held-out input against eps * sum_j |w_j a_j(x)| (delta_f = delta/4: eta = 1)."""
    g = make_generator(seed)
    w = torch.randn(1, n, generator=g, dtype=torch.float64)
    S = torch.randn(60, n, generator=g, dtype=torch.float64)
    w_rows, s = _rows(w, S, True)
    tot = s.sum(1)
    m = torch.ceil(sipp_sample_size(sipp_alpha(tot, delta=delta, eta=1), eps).double() * m_scale).long()
    new, _ = sparsify_rows(w_rows.repeat(R, 1), s.repeat(R, 1), m.repeat(R), g)
    new = new.reshape(R, 2, n).sum(1)  # rows [W+; W-] of each repetition
    x = torch.randn(R, n, generator=g, dtype=torch.float64)
    err = ((new - w) * x).sum(1).abs() / (w * x).abs().sum(1)
    return int((err > eps).sum()), int(m.max())


@pytest.mark.statistical
def test_per_layer_guarantee_on_held_out_inputs():
    R = 2000 if FULL else 300
    v, m = _failures(1.0, R=R, seed=0)
    assert m < 1500
    assert binomial_upper_pvalue(v, R, 0.05) > 0.01


@pytest.mark.statistical
def test_guarantee_test_catches_a_broken_sampler():
    R = 2000 if FULL else 300
    v, _ = _failures(1.0 / 400, R=R, seed=1)
    assert binomial_upper_pvalue(v, R, 0.05) < 0.01


def test_keep_ratio_uses_the_budget_program_and_reports_its_eps():
    m, x = mlp(8, [40, 30], 3, seed=0), torch.randn(150, 8)
    g = prune(m, x, method="sipp", keep_ratio=0.4, seed=0).guarantee
    assert abs(g.keep_ratio - 0.4) <= 0.03
    assert g.extra["allocation"].startswith("budget") and g.eps == max(g.eps_per_layer)
    assert g.guaranteed == (g.eps < 1) and g.vacuous == (g.eps >= 1)
    h = prune(m, x, method="sipp_abs", keep_ratio=0.4, seed=0).guarantee
    assert h.method == "sipp_abs-rand" and abs(h.keep_ratio - 0.4) <= 0.03


def test_kkt_allocation_equals_the_cvxpy_solution_at_its_budget():
    from prunebound.coresets.sipp_budget import kkt_allocation

    g = torch.Generator().manual_seed(1)
    alpha = torch.rand(80, generator=g, dtype=torch.float64) ** 2 * 100
    nnz = torch.randint(5, 60, (80,), generator=g)
    w = torch.full((80,), 1 / 80, dtype=torch.float64)
    for lam in (1e-4, 1e-2):
        m = kkt_allocation(alpha, nnz, w, lam)
        c = allocate_budget(alpha, nnz, w, float(m.sum()))
        obj = float((w * sipp_error(m.clamp_min(1e-9), alpha)).sum())
        assert float((w * sipp_error(c.clamp_min(1e-9), alpha)).sum()) == pytest.approx(obj, rel=1e-4)
        torch.testing.assert_close(c, m, rtol=2e-2, atol=2e-2)
