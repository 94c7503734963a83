import math

import pytest
import torch

from prunebound.coresets import prune
from prunebound.coresets.corenet import corenet
from prunebound.coresets.keep_ratio import RowKeep, solve_eps
from prunebound.coresets.pfp import pfp, pfp_plan
from prunebound.coresets.sampling import importance_sample
from prunebound.coresets.sipp import sipp
from prunebound.network import mlp

FNS = {"corenet": corenet, "sipp_abs": lambda *a, **k: sipp(*a, sensitivity="abs", **k), "pfp": pfp}


@pytest.mark.parametrize("method", ["corenet", "sipp_abs", "pfp"])
def test_keep_ratio_result_equals_a_plain_run_at_the_solved_eps(method):
    m = mlp(6, [40, 30], 3, seed=1)
    x = torch.rand(150, 6)
    res = prune(m, x, method=method, keep_ratio=0.4, seed=7)
    p, g = res.module, res.guarantee
    kw = {"propagate": False} if method == "corenet" else {}  # prune's default allocation for keep_ratio
    q, h = FNS[method](m, x, eps=g.eps, seed=7, _allow_large_eps=True, **kw)
    assert g.to_dict() == h.to_dict()
    for a, b in zip(p.state_dict().values(), q.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["sipp", "sipp_abs", "pfp"])
def test_keep_ratio_met_on_signed_inputs(method):
    m = mlp(10, [60, 40], 4, seed=2)
    x = torch.randn(200, 10)
    for k in (0.15, 0.3):  # (PFP cannot reach ~0.4-0.7 here: a layer jumps from dense to ~60 % of channels)
        g = prune(m, x, method=method, keep_ratio=k, seed=0).guarantee
        assert abs(g.keep_ratio - k) <= 0.03


def test_expected_distinct_count_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(3, 50, generator=gen) ** 3
    s[1, :10] = 0
    rk = RowKeep(s)
    m = torch.tensor([5, 30, 400])
    exp = rk.expected(m)
    counts = torch.stack([(importance_sample(s, m, gen) > 0).sum(1).double() for _ in range(2000)])
    mean, se = counts.mean(0), counts.std(0) / math.sqrt(2000)
    assert torch.all((exp[:2] - mean[:2]).abs() <= 5 * se[:2] + 1e-9)
    assert exp[2] == float((s[2] > 0).sum())  # m >= nnz: the row is kept dense


def test_expected_count_is_monotone_and_solver_brackets_the_target():
    m, x = mlp(6, [40, 30], 3, seed=3), torch.rand(100, 6)
    plan = pfp_plan(m, x, seed=0)
    eps = torch.logspace(-2, 3, 60).tolist()
    f = [plan.kept_fraction(e) for e in eps]
    assert all(b <= a + 1e-12 for a, b in zip(f, f[1:]))
    e = solve_eps(plan.kept_fraction, 0.5, eps_range=(1e-4, 1e9))
    # the kept fraction is a step function: no eps on a fine grid gets closer to the target than the solution
    grid = torch.logspace(-2, 3, 2000).tolist()
    assert abs(plan.kept_fraction(e) - 0.5) <= min(abs(plan.kept_fraction(t) - 0.5) for t in grid) + 1e-9


def test_expected_count_closed_forms_agree_with_the_sum():
    """Rows with m <= 1 or m >= nnz take closed forms and the others the sum over entries; every path gives
    what the plain formula sum_j 1 - (1 - q_j)^m gives (float64 reference)."""
    gen = torch.Generator().manual_seed(3)
    s = torch.rand(6, 40, generator=gen) ** 2
    s[2, 5:] = 0  # nnz = 5
    s[4] = 0  # no mass
    rk = RowKeep(s)
    q = (s.double() / s.double().sum(1, keepdim=True).clamp_min(1e-300))
    for m in ([0, 1, 7, 3, 2, 1000], [9, 12, 30, 2, 5, 17], [1, 1, 1, 1, 1, 1], [50, 50, 50, 50, 50, 50]):
        mt = torch.tensor(m)
        ref = (1 - (1 - q) ** mt.double()[:, None]).sum(1)
        nnz = (s > 0).sum(1)
        ref = torch.where(mt >= nnz, nnz.double(), ref)
        torch.testing.assert_close(rk.expected(mt), ref, rtol=1e-5, atol=1e-4)


def test_row_keep_leaves_the_callers_sensitivities_untouched():
    """Regression: RowKeep normalised and log-transformed its input in place when it was already float64, which
    corrupted a plan's cached sensitivities (the expected counts then drifted by ~1 % from the formula)."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    s = torch.rand(3, 40, generator=g, dtype=torch.float64) * (torch.rand(3, 40, generator=g) > 0.2)
    before = s.clone()
    rk = RowKeep(s)
    assert torch.equal(s, before)
    q = (s / s.sum(1, keepdim=True)).numpy()
    m = torch.tensor([5, 11, 20])
    plain = [(1 - (1 - q[r][q[r] > 0]) ** int(m[r])).sum() for r in range(3)]
    assert np.allclose(rk.expected(m).numpy(), plain, rtol=1e-5)
