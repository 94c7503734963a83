import math

import pytest
import torch
from scipy import stats

from prunebound.coresets.sampling import (
    bernstein_sample_size,
    corenet_sample_size,
    epsilon_sample_size,
    importance_sample,
    make_generator,
    sparsify_rows,
)
from prunebound.coresets.sensitivity import edge_sensitivity
from prunebound.errors import InvalidParameterError


def test_sample_size_formulas_by_hand():
    assert int(corenet_sample_size(2.5, eps=0.5, delta=0.1, eta=10, K=2.0)) == math.ceil(
        8 * 2.5 * 2.0 * math.log(800) / 0.25)
    assert int(bernstein_sample_size(2.5, eps=0.5, delta=0.1, eta=10, K=3.0)) == math.ceil(
        3 * 7 * 2.5 * math.log(800) / 0.25)
    assert epsilon_sample_size(4.0, eps=0.5, delta=0.1, d=5, c=1.0) == math.ceil(
        4 / 0.25 * (5 * math.log(4) + math.log(10)))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, float("nan")])
def test_delta_validation(bad):
    with pytest.raises(InvalidParameterError):
        corenet_sample_size(1.0, eps=0.5, delta=bad, eta=3)


def test_sample_sizes_shrink_as_sensitivity_concentrates():
    # hand-built layer: unit weights, points (1-alpha) 1 + alpha n e_k  =>  S = 1 + alpha (n - 1)
    n = 16
    ms = []
    for alpha in (1.0, 0.5, 0.1, 0.0):
        x = (1 - alpha) * torch.ones(n, n, dtype=torch.float64)
        x = x + alpha * n * torch.eye(n, dtype=torch.float64)
        S = float(edge_sensitivity(torch.ones(1, n, dtype=torch.float64), x).sum())
        assert S == pytest.approx(1 + alpha * (n - 1), rel=1e-12)
        m = int(corenet_sample_size(S, eps=0.5, delta=0.1, eta=1, K=1.0))
        assert m == math.ceil(8 * (1 + alpha * (n - 1)) * math.log(80) / 0.25)
        ms.append(m)
    assert ms == sorted(ms, reverse=True) and ms[0] > 10 * ms[-1]


def test_importance_sample_counts_and_distribution():
    g = make_generator(0)
    q = torch.tensor([[0.1, 0.2, 0.7, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    m = torch.tensor([20000, 5, 7])
    c = importance_sample(q, m, g)
    assert c[0].sum() == 20000 and c[1].sum() == 5 and c[2].sum() == 0
    assert c[0, 3] == 0
    p = stats.chisquare(c[0, :3].numpy(), 20000 * torch.tensor([0.1, 0.2, 0.7]).numpy()).pvalue
    assert p > 1e-3


def test_sparsify_rows_is_unbiased_t_test():
    # 2000 independent resamples of the same row, all drawn in one vectorised call
    g = make_generator(1)
    n, R = 50, 2000
    w = torch.randn(1, n, generator=g, dtype=torch.float64)
    s = torch.rand(1, n, generator=g, dtype=torch.float64) + 0.05
    x = torch.rand(n, generator=g, dtype=torch.float64)
    new, mask = sparsify_rows(w.repeat(R, 1), s.repeat(R, 1), torch.full((R,), 10), g)
    z = new @ x
    assert bool(((new != 0) <= (mask > 0)).all())
    assert stats.ttest_1samp(z.numpy(), float(w[0] @ x)).pvalue > 1e-3
    # and a biased estimator (no 1/(m q) reweighting) is rejected by the same test
    biased = (mask * w) @ x
    assert stats.ttest_1samp(biased.numpy(), float(w[0] @ x)).pvalue < 1e-6


def test_saturated_rows_are_kept_exactly():
    g = make_generator(2)
    w = torch.randn(3, 6, dtype=torch.float64)
    s = torch.rand(3, 6, dtype=torch.float64)
    new, mask = sparsify_rows(w, s, torch.tensor([6, 100, 6]), g)
    torch.testing.assert_close(new, w)
    assert bool((mask == 1).all())
