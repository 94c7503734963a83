"""PAC-Bayes / Occam bounds: hand-computed values, independent routes, orderings and input validation."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from prunebound.bounds.kl import kl_bernoulli
from prunebound.bounds.pac_bayes import (
    catoni_bound,
    combine_deltas,
    kl_bound,
    kl_gaussians,
    mcallester_bound,
    occam_bound,
    sample_convergence_bound,
    split_delta,
)
from prunebound.certificate import BoundTerms
from prunebound.errors import InvalidParameterError


def test_mcallester_hand_value():
    t = mcallester_bound(0.1, 5.0, 1000, delta=0.05)
    expect = 0.1 + math.sqrt((5.0 + math.log(2 * math.sqrt(1000) / 0.05)) / 2000)
    assert isinstance(t, BoundTerms)
    assert t.value == pytest.approx(expect, rel=1e-14)
    assert t.empirical == 0.1 and t.complexity == pytest.approx(expect - 0.1, rel=1e-12)


def test_kl_bound_solves_the_kl_equation_and_beats_mcallester():
    rng = np.random.default_rng(0)
    for _ in range(50):
        emp, kl, n = rng.uniform(0, 0.5), rng.uniform(0, 200), int(rng.integers(50, 10_000))
        t = kl_bound(emp, kl, n, delta=0.05)
        budget = (kl + math.log(2 * math.sqrt(n) / 0.05)) / n
        if t.value < 1 - 1e-9:
            assert float(kl_bernoulli(emp, t.value)) == pytest.approx(budget, rel=1e-8)
        # Pinsker: kl >= 2 (p - q)^2, so the kl bound is never worse than the square-root form
        assert t.value <= mcallester_bound(emp, kl, n, delta=0.05).value + 1e-12
        assert t.parts["kl_budget"] == pytest.approx(budget)


def test_catoni_grid_union_is_brute_force_minimum():
    emp, kl, n, delta = 0.05, 30.0, 2000, 0.05
    grid = [0.5, 1.0, 2.0, 4.0]
    t = catoni_bound(emp, kl, n, delta=delta, grid=grid)
    vals = [
        (1 - math.exp(-C * emp - (kl + math.log(len(grid) / delta)) / n)) / (1 - math.exp(-C)) for C in grid
    ]
    assert t.value == pytest.approx(min(vals), rel=1e-13)
    assert t.parts["C"] == grid[int(np.argmin(vals))]
    # one-point grid pays nothing for the union, so it can only be lower than the same C inside a bigger grid
    single = catoni_bound(emp, kl, n, delta=delta, grid=[t.parts["C"]])
    assert single.value < t.value
    default = catoni_bound(emp, kl, n, delta=delta)
    assert default.parts["grid_size"] == 10


def test_occam_forms_and_order():
    emp, bits, n = 0.02, 500, 5000
    kl_form = occam_bound(emp, bits, n, delta=0.05)
    hoeff = occam_bound(emp, bits, n, delta=0.05, form="hoeffding")
    c = bits * math.log(2) + math.log(1 / 0.05)
    assert hoeff.value == pytest.approx(emp + math.sqrt(c / (2 * n)), rel=1e-14)
    assert float(kl_bernoulli(emp, kl_form.value)) == pytest.approx(c / n, rel=1e-9)
    assert kl_form.value < hoeff.value
    # more bits, larger bound
    assert occam_bound(emp, bits + 100, n, delta=0.05).value > kl_form.value
    with pytest.raises(InvalidParameterError):
        occam_bound(emp, bits, n, delta=0.05, form="bogus")


def test_occam_kl_form_is_an_upper_binomial_confidence_bound():
    """For bits = 0 the kl Occam bound is a Chernoff upper confidence limit for a binomial proportion:
    it must be at least the exact Clopper-Pearson one-sided limit (Chernoff is looser than the exact tail)"""
    n, delta = 200, 0.05
    for k in (0, 3, 20, 100):
        cp = 1.0 if k == n else stats.beta.ppf(1 - delta, k + 1, n - k)
        assert occam_bound(k / n, 0, n, delta=delta).value >= cp - 1e-12


def test_sample_convergence_covers_the_mean_in_simulation():
    """Monte-Carlo check: over 2000 simulated estimates from m Bernoulli(p) samples, the bound is below p at a
    rate <= delta (one-sided binomial test)."""
    rng = np.random.default_rng(1)
    p, m, delta = 0.1, 100, 0.1
    est = rng.binomial(m, p, size=2000) / m
    ub = np.array([sample_convergence_bound(e, m, delta=delta).value for e in est])
    viol = int((ub < p).sum())
    assert stats.binom.sf(viol - 1, 2000, delta) > 1e-3
    assert sample_convergence_bound(0.1, m, delta=delta).parts["m"] == m


def test_split_and_combine_deltas():
    a, b = split_delta(0.05, 0.2)
    assert a + b == pytest.approx(0.05) and b == pytest.approx(0.01)
    assert combine_deltas(a, b) == pytest.approx(0.05)
    with pytest.raises(InvalidParameterError):
        combine_deltas(0.6, 0.5)
    with pytest.raises(InvalidParameterError):
        split_delta(0.05, 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(emp_error=0.1, kl=1.0, n=100, delta=0.0),
        dict(emp_error=0.1, kl=1.0, n=100, delta=1.0),
        dict(emp_error=0.1, kl=1.0, n=0, delta=0.05),
        dict(emp_error=1.5, kl=1.0, n=100, delta=0.05),
        dict(emp_error=-0.1, kl=1.0, n=100, delta=0.05),
        dict(emp_error=0.1, kl=-1.0, n=100, delta=0.05),
        dict(emp_error=0.1, kl=float("nan"), n=100, delta=0.05),
        dict(emp_error=float("nan"), kl=1.0, n=100, delta=0.05),
    ],
)
def test_validation(kwargs):
    for fn in (mcallester_bound, kl_bound, catoni_bound):
        with pytest.raises(InvalidParameterError):
            fn(kwargs["emp_error"], kwargs["kl"], kwargs["n"], delta=kwargs["delta"])


def test_occam_validation():
    with pytest.raises(InvalidParameterError):
        occam_bound(0.1, -3, 100, delta=0.05)
    with pytest.raises(InvalidParameterError):
        occam_bound(0.1, 3, 100, delta=1.2)


def test_kl_gaussians_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, mp = (
        torch.randn(50, generator=g, dtype=torch.float64),
        torch.randn(50, generator=g, dtype=torch.float64),
    )
    sq = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    sp = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mq, sq), torch.distributions.Normal(mp, sp)
    )
    assert kl_gaussians(mq, sq, mp, sp) == pytest.approx(float(ref.sum()), rel=1e-12)
    # scalars broadcast
    assert kl_gaussians(mq.numpy(), 0.3, 0.0, 0.5) == pytest.approx(
        float(
            torch.distributions.kl_divergence(
                torch.distributions.Normal(mq, 0.3), torch.distributions.Normal(0.0, 0.5)
            ).sum()
        ),
        rel=1e-12,
    )
    assert kl_gaussians(np.ones(3), 0.2, np.ones(3), 0.2) == 0.0
    with pytest.raises(InvalidParameterError):
        kl_gaussians(0.0, 0.0, 0.0, 1.0)
    with pytest.raises(InvalidParameterError):
        kl_gaussians(np.ones(3), 1.0, np.ones(4), 1.0)
