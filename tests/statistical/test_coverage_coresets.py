"""Coverage of the coreset compression bound on the teacher task (reduced reps by default)."""

import os

import pytest
import torch

from prunebound.bounds.coreset_bound import coreset_bound, coreset_compress
from prunebound.data import teacher_task
from prunebound.network import mlp
from prunebound.testing import coverage
from prunebound.train import fit

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))
TASK = teacher_task(d_in=8, width=16, n_classes=2, label_noise=0.05, seed=0)


def _make(train, seed, honest=True):
    torch.manual_seed(seed)
    m = mlp(8, [24], 2, seed=seed)
    fit(m, train, epochs=3, lr=0.1, batch_size=64, seed=seed)
    c, _ = coreset_compress(m, train, method="sipp", keep_ratio=0.4, seed=seed)
    t = coreset_bound(c, train, delta=0.1)
    return c, (t.value if honest else t.empirical)


def _broken(train, seed):
    return _make(train, seed, honest=False)


@pytest.mark.statistical
@pytest.mark.slow
def test_coreset_bound_coverage_and_broken_variant_caught():
    reps = 40 if FULL else 6
    res = coverage(_make, TASK, n=3000, reps=reps, delta=0.1, seed=0, n_test=20_000 if not FULL else 100_000)
    assert res.holds(0.01) and res.violations == 0
    assert all(b <= 1.0 for b in res.bounds)
    # the "bound" without its complexity term (empirical error only) fails far more often than delta
    bad = coverage(_broken, TASK, n=300, reps=reps, delta=0.1, seed=100, n_test=20_000)
    assert bad.violations >= max(3, reps // 2)
