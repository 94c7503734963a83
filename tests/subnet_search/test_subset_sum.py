import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunebound.errors import DataError, InvalidParameterError
from prunebound.subnet_search.subset_sum import (
    LUEKER_C,
    lueker_experiment,
    subset_sum_brute_force,
    subset_sum_exact,
    subset_sum_exact_many,
    subset_sum_greedy,
    subset_sum_mip,
)


def _loop_brute(v, z, k=None):
    """Independent reference: a plain Python loop over all subsets (tiny n only)."""
    best = math.inf
    for r in range(len(v) + 1):
        if k is not None and r > k:
            break
        for c in itertools.combinations(range(len(v)), r):
            best = min(best, abs(z - sum(v[i] for i in c)))
    return best


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 13, 14, 16])
def test_exact_equals_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(10):
        v = rng.uniform(-1, 1, n) * rng.choice([1.0, 10.0])
        t = rng.uniform(-2, 2, 40)
        a = subset_sum_exact(v, t)
        b = subset_sum_brute_force(v, t)
        np.testing.assert_allclose(a.errors, b.errors, rtol=0, atol=1e-12)
        # returned masks really produce the reported sums
        np.testing.assert_allclose(a.masks.astype(float) @ v, a.sums, atol=1e-12)
        np.testing.assert_allclose(np.abs(t - a.sums), a.errors, atol=0)


def test_brute_force_matches_python_loop():
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, 8)
    for z in rng.uniform(-2, 2, 10):
        assert abs(subset_sum_brute_force(v, z).errors[0] - _loop_brute(v, z)) < 1e-12
        assert abs(subset_sum_brute_force(v, z, k=2).errors[0] - _loop_brute(v, z, 2)) < 1e-12


@pytest.mark.parametrize("k", [0, 1, 2, 4, 7])
def test_exact_with_size_limit(k):
    rng = np.random.default_rng(10 + k)
    for n in (5, 9, 12):
        v = rng.uniform(-1, 1, n)
        t = rng.uniform(-2, 2, 30)
        a = subset_sum_exact(v, t, k=k)
        b = subset_sum_brute_force(v, t, k=k)
        np.testing.assert_allclose(a.errors, b.errors, atol=1e-12)
        assert (a.masks.sum(1) <= k).all()


def test_exact_many_equals_brute_force():
    rng = np.random.default_rng(3)
    V = rng.uniform(0, 1, (25, 12)) * rng.uniform(-1, 1, (25, 12))
    T = rng.uniform(-0.5, 0.5, 25)
    r = subset_sum_exact_many(V, T)
    ref = np.array([subset_sum_brute_force(V[p], T[p]).errors[0] for p in range(25)])
    np.testing.assert_allclose(r.errors, ref, atol=1e-12)
    np.testing.assert_allclose((r.masks * V).sum(1), r.sums, atol=1e-12)


@pytest.mark.parametrize("n", [20, 25, 30])
def test_exact_equals_mip(n):
    """Integer instances: the MIP optimum is exact (no feasibility-tolerance slack), so both must agree."""
    rng = np.random.default_rng(100 + n)
    for backend in ("cvxpy", "scipy"):
        v = rng.integers(-10_000, 10_000, n).astype(float)
        z = float(rng.integers(-20_000, 20_000))
        a = subset_sum_exact(v, z)
        b = subset_sum_mip(v, z, backend=backend, time_limit=20)
        assert abs(a.errors[0] - b.errors[0]) <= 1e-9


def test_mip_size_limit_matches_exact():
    rng = np.random.default_rng(5)
    v = rng.integers(-100, 100, 12).astype(float)
    z = 250.0
    a = subset_sum_exact(v, z, k=2)
    b = subset_sum_mip(v, z, k=2, backend="scipy")
    assert abs(a.errors[0] - b.errors[0]) <= 1e-9
    assert b.masks.sum() <= 2


def test_greedy_is_feasible_and_not_better_than_exact():
    rng = np.random.default_rng(7)
    v = rng.uniform(-1, 1, 14)
    t = rng.uniform(-1, 1, 200)
    g = subset_sum_greedy(v, t)
    e = subset_sum_exact(v, t)
    np.testing.assert_allclose(g.masks.astype(float) @ v, g.sums, atol=1e-12)
    assert (g.errors >= e.errors - 1e-12).all()
    assert (g.errors <= np.abs(t) + 1e-12).all()  # never worse than the empty set
    assert g.errors.mean() > e.errors.mean()  # greedy is not optimal on random instances


def test_errors_are_clear():
    with pytest.raises(DataError):
        subset_sum_exact([], [0.0])
    with pytest.raises(DataError):
        subset_sum_exact([1.0, np.nan], [0.0])
    with pytest.raises(InvalidParameterError):
        subset_sum_exact(np.ones(41), [0.0])
    with pytest.raises(DataError):
        subset_sum_exact_many(np.ones((3, 4)), [0.0, 1.0])
    with pytest.raises(InvalidParameterError):
        lueker_experiment([4], [1.5], 2)


@pytest.mark.statistical
def test_lueker_success_increases_and_crosses_near_theory():
    full = bool(os.environ.get("PRUNEBOUND_FULL"))
    trials = 100 if full else 40
    eps = 0.02
    ns = list(range(4, 17, 2))
    rows = []
    r = lueker_experiment(ns, [eps], trials, seed=1, on_result=rows.append)
    p = r.success[:, 0]
    assert len(rows) == len(ns)  # incremental results
    # increasing in n (up to sampling noise of a few trials)
    assert all(p[i + 1] >= p[i] - 3.0 / math.sqrt(trials) * 0.5 for i in range(len(p) - 1))
    assert p[0] < 0.2 and p[-1] > 0.9
    theory = LUEKER_C * math.log2(1 / eps)
    n90 = r.n_at_90[0]
    assert n90 is not None and theory / 2 <= n90 <= 2 * theory


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False, allow_infinity=False), min_size=1, max_size=12),
    st.floats(-500, 500, allow_nan=False, allow_infinity=False),
    st.one_of(st.none(), st.integers(0, 12)),
)
def test_property_exact_equals_brute_force(values, z, k):
    a = subset_sum_exact(values, z, k=k)
    b = subset_sum_brute_force(values, z, k=k)
    assert abs(a.errors[0] - b.errors[0]) <= 1e-9
    # adding a value never makes the optimum worse (monotone in the candidate set), without a size limit
    if k is None:
        c = subset_sum_exact([*values, 0.5], z)
        assert c.errors[0] <= a.errors[0] + 1e-9
