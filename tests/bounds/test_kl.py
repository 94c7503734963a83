"""kl and its inverses: checked against scipy brentq, edge cases, torch gradients, properties."""

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import entropy

from prunebound.bounds.kl import kl_bernoulli, kl_inverse_lower, kl_inverse_upper
from prunebound.errors import InvalidParameterError

ONE_MINUS = np.nextafter(1.0, 0.0)


def _kl_ref(q: float, p: float) -> float:
    """Independent scalar kl with math.log (0 ln 0 = 0)."""
    q, p = float(q), float(p)
    out = 0.0
    if q > 0:
        out += q * math.log(q / p) if p > 0 else math.inf
    if q < 1:
        out += (1 - q) * math.log((1 - q) / (1 - p)) if p < 1 else math.inf
    return out


def _ref_upper(q: float, c: float) -> float:
    if c == 0:
        return q
    if q == 1:
        return 1.0
    f = lambda p: _kl_ref(q, p) - c  # noqa: E731
    if f(ONE_MINUS) <= 0:
        return ONE_MINUS
    return brentq(f, q, ONE_MINUS, xtol=1e-15, rtol=1e-15, maxiter=500)


def _ref_lower(q: float, c: float) -> float:
    if c == 0:
        return q
    if q == 0:
        return 0.0
    f = lambda p: _kl_ref(q, p) - c  # noqa: E731
    lo = np.nextafter(0.0, 1.0)
    if f(lo) <= 0:
        return 0.0
    return brentq(f, lo, q, xtol=1e-15, rtol=1e-15, maxiter=500)


def _cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0, 1, n)
    k = n // 20
    q[:k] = 0.0
    q[k : 2 * k] = 1.0
    q[2 * k : 3 * k] = rng.uniform(0, 1e-6, k)
    q[3 * k : 4 * k] = 1 - rng.uniform(0, 1e-6, k)
    c = 10 ** rng.uniform(-9, 2, n)
    c[4 * k : 5 * k] = 0.0
    return q, c


def test_upper_matches_brentq_on_1e4_cases():
    q, c = _cases(10_000, 0)
    p = kl_inverse_upper(q, c)
    ref = np.array([_ref_upper(a, b) for a, b in zip(q, c)])
    assert np.max(np.abs(p - ref)) < 1e-10
    assert np.all(p >= q)


def test_lower_matches_brentq_on_1e4_cases():
    q, c = _cases(10_000, 1)
    p = kl_inverse_lower(q, c)
    ref = np.array([_ref_lower(a, b) for a, b in zip(q, c)])
    assert np.max(np.abs(p - ref)) < 1e-10
    assert np.all(p <= q)


def test_edges():
    assert kl_inverse_upper(0.0, 2.0) == pytest.approx(1 - math.exp(-2.0), abs=1e-15)
    assert kl_inverse_upper(0.0, 2.0) >= -math.expm1(-2.0)
    assert kl_inverse_upper(0.3, 0.0) == 0.3
    assert kl_inverse_upper(0.3, math.inf) == 1.0
    assert kl_inverse_upper(1.0, 0.5) == 1.0
    assert kl_inverse_upper(0.0, 0.0) == 0.0
    assert kl_inverse_upper(0.2, 1e6) >= 1 - 1e-15
    assert kl_inverse_upper(0.2, 1e300) >= 1 - 1e-15
    assert kl_inverse_lower(1.0, 2.0) == pytest.approx(math.exp(-2.0), abs=1e-15)
    assert kl_inverse_lower(0.0, 3.0) == 0.0
    assert kl_inverse_lower(0.7, math.inf) == 0.0
    assert kl_inverse_lower(0.7, 0.0) == 0.7
    assert isinstance(kl_inverse_upper(0.1, 0.1), float)
    # tiny budgets: second-order expansion p = q + sqrt(2 q (1-q) c)
    q, c = 0.3, 1e-12
    assert kl_inverse_upper(q, c) == pytest.approx(q + math.sqrt(2 * q * (1 - q) * c), rel=1e-4)


def test_broadcasting_shapes():
    q = np.linspace(0, 1, 5)[:, None]
    c = np.array([[0.0, 0.1, 1.0]])
    p = kl_inverse_upper(q, c)
    assert p.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            assert p[i, j] == pytest.approx(kl_inverse_upper(float(q[i, 0]), float(c[0, j])), abs=1e-15)


@pytest.mark.parametrize(
    "bad", [(-0.1, 0.1), (1.1, 0.1), (float("nan"), 0.1), (0.5, -1.0), (0.5, float("nan"))]
)
def test_domain_errors(bad):
    with pytest.raises(InvalidParameterError):
        kl_inverse_upper(*bad)
    with pytest.raises(InvalidParameterError):
        kl_inverse_lower(*bad)


def test_kl_bernoulli_matches_scipy_entropy():
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 1, 200)
    p = rng.uniform(0.001, 0.999, 200)
    ref = np.array([entropy([a, 1 - a], [b, 1 - b]) for a, b in zip(q, p)])
    assert np.allclose(kl_bernoulli(q, p), ref, atol=1e-13)
    assert kl_bernoulli(0.0, 0.0) == 0.0
    assert kl_bernoulli(0.5, 1.0) == math.inf
    assert kl_bernoulli(1.0, 0.5) == pytest.approx(math.log(2))
    with pytest.raises(InvalidParameterError):
        kl_bernoulli(0.5, 1.5)


def test_torch_values_match_numpy_and_keep_device_dtype():
    q, c = _cases(500, 5)
    pt = kl_inverse_upper(torch.tensor(q), torch.tensor(c))
    assert isinstance(pt, torch.Tensor) and pt.dtype == torch.float64
    assert np.array_equal(pt.numpy(), kl_inverse_upper(q, c))
    lt = kl_inverse_lower(torch.tensor(q), c)  # mixed inputs
    assert np.array_equal(lt.numpy(), kl_inverse_lower(q, c))
    kt = kl_bernoulli(torch.tensor([0.2]), torch.tensor([0.5]))
    assert float(kt) == pytest.approx(kl_bernoulli(0.2, 0.5))


def test_torch_gradient_gradcheck_interior():
    rng = np.random.default_rng(7)
    q = torch.tensor(rng.uniform(0.05, 0.6, 6), requires_grad=True)
    c = torch.tensor(rng.uniform(0.01, 0.5, 6), requires_grad=True)
    assert torch.autograd.gradcheck(kl_inverse_upper, (q, c), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradcheck(kl_inverse_lower, (q, c), eps=1e-7, atol=1e-6)


def test_torch_gradient_broadcast_and_implicit_formula():
    q = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0.05, 0.2, 1.0], dtype=torch.float64, requires_grad=True)
    p = kl_inverse_upper(q, c)
    p.sum().backward()
    pd = p.detach()
    dc = pd * (1 - pd) / (pd - 0.1)
    assert torch.allclose(c.grad, dc, rtol=1e-10)
    dq = -(torch.log(0.1 * (1 - pd)) - torch.log(pd * 0.9)) * dc
    assert float(q.grad) == pytest.approx(float(dq.sum()), rel=1e-10)


def test_gradient_edges_are_finite_where_saturated():
    q = torch.tensor([0.0, 0.3, 0.999], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([1e4, 1e4, 1e4], dtype=torch.float64, requires_grad=True)
    kl_inverse_upper(q, c).sum().backward()
    assert torch.all(torch.isfinite(q.grad)) and torch.all(torch.isfinite(c.grad))


probs = st.floats(0.0, 1.0, allow_nan=False)
budgets = st.floats(0.0, 50.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(q1=probs, q2=probs, c=budgets)
def test_monotone_in_q(q1, q2, c):
    lo, hi = sorted((q1, q2))
    assert kl_inverse_upper(lo, c) <= kl_inverse_upper(hi, c) + 1e-13
    assert kl_inverse_lower(lo, c) <= kl_inverse_lower(hi, c) + 1e-13


@settings(max_examples=200, deadline=None)
@given(q=probs, c1=budgets, c2=budgets)
def test_monotone_in_c(q, c1, c2):
    lo, hi = sorted((c1, c2))
    assert kl_inverse_upper(q, lo) <= kl_inverse_upper(q, hi) + 1e-13
    assert kl_inverse_lower(q, lo) >= kl_inverse_lower(q, hi) - 1e-13


@settings(max_examples=300, deadline=None)
@given(q=st.floats(0.0, 0.999, allow_nan=False), c=st.floats(1e-8, 20.0, allow_nan=False))
def test_inverse_identity(q, c):
    p = kl_inverse_upper(q, c)
    if p < 1 - 1e-9:  # not saturated at 1
        assert float(kl_bernoulli(q, p)) == pytest.approx(c, rel=1e-7, abs=1e-12)
    pl = kl_inverse_lower(q, c)
    if pl > 1e-9:
        assert float(kl_bernoulli(q, pl)) == pytest.approx(c, rel=1e-7, abs=1e-12)


# ------------------------------------------------------------------ outward rounding vs a 50-digit reference
mpmath = pytest.importorskip("mpmath")
N_MP = 2000 if os.environ.get("PRUNEBOUND_FULL") else 200  # cases per branch (full size under `make verify`)


def _mp_kl(q, p):
    """kl at the working precision; log1p keeps 1 - q and 1 - p exact for tiny q, p."""
    q, p = mpmath.mpf(q), mpmath.mpf(p)
    out = mpmath.mpf(0)
    if q > 0:
        out += q * mpmath.log(q / p)
    if q < 1:
        out += (1 - q) * (mpmath.log1p(-q) - mpmath.log1p(-p))
    return out


def _mp_root(q: float, c: float, upper: bool):
    """Exact root of kl(q||p) = c on the requested branch, by bisection in log(|p - q|) at 50+ digits."""
    with mpmath.workdps(60):
        q, c = mpmath.mpf(q), mpmath.mpf(c)
        if c == 0:
            return q
        if upper and q == 1 or not upper and q == 0:
            return q
        if upper and q == 0:
            return -mpmath.expm1(-c)
        if not upper and q == 1:
            return mpmath.exp(-c)
        s, edge = (1, 1 - q) if upper else (-1, q)
        lo, hi = mpmath.mpf(-1600), mpmath.log(edge)
        if _mp_kl(q, q + s * edge * (1 - mpmath.mpf(10) ** -40)) <= c:
            return q + s * edge
        for _ in range(190):  # bracket width 1600 / 2^190: far below 1e-50 relative
            mid = (lo + hi) / 2
            if _mp_kl(q, q + s * mpmath.exp(mid)) <= c:
                lo = mid
            else:
                hi = mid
        return q + s * mpmath.exp(hi)


def _wide_cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0, 1, n)
    k = n // 10
    q[:k] = 0.0
    q[k : 2 * k] = 1.0
    q[2 * k : 3 * k] = 10 ** rng.uniform(-12, -1, k)
    q[3 * k : 4 * k] = 1 - 10 ** rng.uniform(-12, -1, k)
    c = 10 ** rng.uniform(-300, 3, n)
    c[4 * k : 6 * k] = 10 ** rng.uniform(-10, -6, 2 * k)  # around c = 1e-8, where the old solver was optimistic
    return q, c


@pytest.mark.parametrize("upper", [True, False])
def test_inverse_rounds_outward_against_mpmath(upper):
    q, c = _wide_cases(N_MP, 11 if upper else 12)
    p = (kl_inverse_upper if upper else kl_inverse_lower)(q, c)
    wrong, worst = [], 0.0
    for a, b, x in zip(q, c, p):
        ref = _mp_root(float(a), float(b), upper)
        err = mpmath.mpf(float(x)) - ref
        if (err < 0) if upper else (err > 0):
            wrong.append((a, b, x))
        worst = max(worst, float(abs(err)))
    assert not wrong, f"{len(wrong)} inverses on the optimistic side, e.g. {wrong[:3]}"
    assert worst < 2e-13  # outward, but not loose


def test_bounds_that_are_roots_round_outward():
    from prunebound.bounds.pac_bayes import kl_bound, occam_bound, sample_convergence_bound

    rng = np.random.default_rng(5)
    for _ in range(60):
        emp = float(rng.choice([0.0, rng.uniform(0, 1e-6), rng.uniform(0, 0.5)]))
        n = int(10 ** rng.uniform(2, 9))
        kl = float(10 ** rng.uniform(-3, 4))
        bits = float(10 ** rng.uniform(0, 7))
        t1 = kl_bound(emp, kl, n, delta=0.05)
        t2 = occam_bound(emp, bits, n, delta=0.05)
        t3 = sample_convergence_bound(emp, n, delta=0.01)
        for terms in (t1, t2, t3):
            budget = {id(t1): (kl + math.log(2 * math.sqrt(n) / 0.05)) / n,
                      id(t2): (bits * math.log(2) + math.log(1 / 0.05)) / n,
                      id(t3): math.log(1 / 0.01) / n}[id(terms)]
            assert mpmath.mpf(terms.value) >= _mp_root(emp, budget, True)


def test_kl_accurate_relative_error_below_margin():
    from prunebound.bounds.kl import _KL_REL, _kl_accurate

    rng = np.random.default_rng(9)
    q = np.concatenate([rng.uniform(0, 1, 300), 10 ** rng.uniform(-200, -1, 100), [0.0] * 20])
    p = np.where(rng.uniform(size=q.size) < 0.5, q + (1 - q) * 10 ** rng.uniform(-17, 0, q.size),
                 q * (1 - 10 ** rng.uniform(-17, 0, q.size)))
    k = _kl_accurate(q, p)
    worst = 0.0
    for a, b, v in zip(q, p, k):
        with mpmath.workdps(60):
            ref = _mp_kl(mpmath.mpf(float(a)), mpmath.mpf(float(b)))
            if ref > 0:
                worst = max(worst, float(abs(mpmath.mpf(float(v)) - ref) / ref))
    assert worst < _KL_REL / 4
