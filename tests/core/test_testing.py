"""The coverage harness must pass a bound that holds and catch one that does not."""

import math

import pytest
import torch
from scipy import stats
from torch import nn

from prunebound import data as D
from prunebound.network import mlp
from prunebound.testing import binomial_upper_pvalue, coverage

TASK = D.teacher_task(d_in=5, width=16, seed=0)
# label_noise=0.5 with 2 classes: labels independent of x, every classifier has true risk exactly 1/2,
# so picking the empirically best of K classifiers is pure over-fitting.
NOISE_TASK = D.teacher_task(d_in=5, width=16, label_noise=0.5, seed=0)
DELTA = 0.1


def test_binomial_pvalue_matches_scipy():
    for v, n, d in [(0, 10, 0.1), (3, 10, 0.1), (30, 100, 0.1), (100, 100, 0.5)]:
        want = 1.0 if v == 0 else stats.binomtest(v, n, d, alternative="greater").pvalue
        assert binomial_upper_pvalue(v, n, d) == pytest.approx(want, rel=1e-9)


_FIXED = mlp(5, [8], 2, seed=123)


def hoeffding_fixed(train, seed):
    """A classifier fixed before seeing data: Hoeffding bound holds w.p. >= 1-δ."""
    err = float((_FIXED(train.x).argmax(1) != train.y).double().mean())
    return _FIXED, err + math.sqrt(math.log(1 / DELTA) / (2 * len(train)))


K = 2000
_W = torch.randn(K, 2, 5, generator=torch.Generator().manual_seed(0))


def _select(train, complexity_nats: float):
    with torch.no_grad():
        logits = torch.einsum("kcd,nd->knc", _W, train.x)
        errs = (logits.argmax(2) != train.y[None]).double().mean(1)
    k = int(errs.argmin())
    model = nn.Linear(5, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(_W[k])
    return model, float(errs[k]) + math.sqrt((complexity_nats + math.log(1 / DELTA)) / (2 * len(train)))


def broken_selected(train, seed):
    """Picks the best of K classifiers but ignores the ln K complexity term: must be caught."""
    return _select(train, 0.0)


def occam_selected(train, seed):
    """The same selection with the union bound over K paid: holds."""
    return _select(train, math.log(K))


@pytest.mark.statistical
def test_harness_accepts_valid_hoeffding(full):
    res = coverage(hoeffding_fixed, TASK, n=100, reps=400 if full else 120, delta=DELTA, seed=0, n_test=100_000)
    assert res.reps == (400 if full else 120)
    assert res.holds(alpha=0.01), res.to_dict()
    assert all(b > 0 for b in res.bounds)


@pytest.mark.statistical
def test_harness_catches_missing_complexity_term(full):
    res = coverage(broken_selected, NOISE_TASK, n=50, reps=100 if full else 40, delta=DELTA, seed=0, n_test=100_000)
    assert res.rate > 0.5
    assert all(abs(r - 0.5) < 0.01 for r in res.risks)
    assert not res.holds(alpha=0.01), res.to_dict()
    ok = coverage(occam_selected, NOISE_TASK, n=50, reps=100 if full else 40, delta=DELTA, seed=0, n_test=100_000)
    assert ok.holds(alpha=0.01), ok.to_dict()


def test_coverage_reproducible_and_validated():
    a = coverage(hoeffding_fixed, TASK, n=30, reps=3, delta=DELTA, seed=5, n_test=1000)
    b = coverage(hoeffding_fixed, TASK, n=30, reps=3, delta=DELTA, seed=5, n_test=1000)
    assert a == b
    from prunebound.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        coverage(hoeffding_fixed, TASK, n=30, reps=3, delta=1.5)
    with pytest.raises(InvalidParameterError):
        coverage(hoeffding_fixed, TASK, n=30, reps=3, delta=0.1, backend="spark")


@pytest.mark.slow
def test_coverage_joblib_and_dask_agree():
    distributed = pytest.importorskip("distributed")
    base = coverage(hoeffding_fixed, TASK, n=30, reps=4, delta=DELTA, seed=1, n_test=2000)
    par = coverage(hoeffding_fixed, TASK, n=30, reps=4, delta=DELTA, seed=1, n_test=2000, n_jobs=2)
    assert par.bounds == base.bounds and par.risks == base.risks
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        dk = coverage(hoeffding_fixed, TASK, n=30, reps=4, delta=DELTA, seed=1, n_test=2000, backend="dask",
                      client=client)
    assert dk.bounds == base.bounds and dk.risks == base.risks


def test_risk_fn_hook_used():
    calls = []

    def half(model, task, n_test, g):
        calls.append(n_test)
        return 0.5

    res = coverage(hoeffding_fixed, TASK, n=30, reps=2, delta=DELTA, seed=0, n_test=500, risk_fn=half)
    assert res.risks == (0.5, 0.5) and calls == [500, 500]
